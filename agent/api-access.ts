/** Who may call the API: bearer tokens (configured, or a generated pair in dataDir) and the JWT verifier. */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import type { ApiToken } from "../src/api/auth.js";
import { JwtVerifier } from "../src/api/jwt.js";
import { StationError } from "../src/errors.js";
import type { Clock } from "../src/jobs/service.js";
import { type AgentConfig, tokenSchema } from "./config.js";

/** The subscription the generated customer token is granted (edit the token file to change it). */
export const DEMO_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";

/**
 * Tokens from config; with neither tokens nor JWT configured, a generated operator+customer pair
 * kept in dataDir (mode 0600), the customer granted DEMO_SUBSCRIPTION only.
 */
export function loadTokens(
  config: AgentConfig,
  dataDir: string,
  log: Logger,
): { tokens: ApiToken[]; file: string | undefined } {
  if (config.api.tokens.length > 0 || config.api.jwt) return { tokens: config.api.tokens, file: undefined };
  const file = join(dataDir, "api-tokens.json");
  if (!existsSync(file)) {
    const tokens: ApiToken[] = [
      { name: "operator", role: "operator", token: randomBytes(24).toString("base64url") },
      {
        name: "customer",
        role: "customer",
        token: randomBytes(24).toString("base64url"),
        scopes: [{ subscriptionId: DEMO_SUBSCRIPTION }],
      },
    ];
    writeFileSync(file, `${JSON.stringify({ tokens }, null, 2)}\n`, { mode: 0o600 });
    log.info({ file }, "no API tokens configured: generated an operator and a customer token");
  }
  chmodSync(file, 0o600);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new StationError(
      "ConfigInvalid",
      `Token file ${file} is not valid JSON; delete it to regenerate.`,
      {
        cause: e,
      },
    );
  }
  const parsed = z.object({ tokens: z.array(tokenSchema).min(1) }).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StationError(
      "ConfigInvalid",
      `Token file ${file}: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}. Fix it, or delete it to regenerate.`,
    );
  }
  return { tokens: parsed.data.tokens, file };
}

/** The JWT verifier, its key read here (the composition root is the only reader of files). */
export function jwtVerifier(
  config: AgentConfig,
  abs: (p: string) => string,
  clock: Clock,
): JwtVerifier | undefined {
  const j = config.api.jwt;
  if (!j) return undefined;
  const read = (f: string, key: string) => {
    try {
      return readFileSync(abs(f), "utf8");
    } catch (e) {
      throw new StationError(
        "ConfigInvalid",
        `Config api.jwt.${key}: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? e}.`,
        { cause: e },
      );
    }
  };
  let key: ConstructorParameters<typeof JwtVerifier>[0]["key"];
  if (j.jwksUrl) key = { jwksUrl: j.jwksUrl };
  else if (j.jwksFile) {
    try {
      key = { jwks: JSON.parse(read(j.jwksFile, "jwksFile")) };
    } catch (e) {
      if (e instanceof StationError) throw e;
      throw new StationError("ConfigInvalid", `Config api.jwt.jwksFile: ${j.jwksFile} is not valid JSON.`);
    }
  } else key = { publicKeyPem: read(j.publicKeyFile!, "publicKeyFile") };
  return new JwtVerifier({
    key,
    issuer: j.issuer,
    audience: j.audience,
    algorithms: j.algorithms,
    clockToleranceSeconds: j.clockToleranceSeconds,
    claims: j.claims,
    operatorRole: j.operatorRole,
    customerRole: j.customerRole,
    now: () => clock.now(),
  });
}
