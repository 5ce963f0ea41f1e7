/**
 * Bearer JWTs from an identity provider: the test is the provider. It generates a key pair,
 * serves the public key as a JWKS over HTTP, as a JWKS file and as a PEM file (one agent each), and signs
 * tokens. A valid token in scope works; every forged, stale or misdirected one is refused with 401
 * or 403 and writes nothing. Static tokens keep working beside JWTs.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT, UnsecuredJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config.js";
import { OPERATOR_TOKEN, startTestAgent, stationLocation, type TestAgent } from "../support/agent.js";
import { rawRequest } from "../support/raw-http.js";
import { storedSnapshot } from "../support/stored.js";

const ISSUER = "https://idp.example.test/tenant-1/";
const AUDIENCE = "api://drive-station";
const SUB_J = "cccccccc-3333-4333-8333-cccccccccccc";
const SUB_OTHER = "dddddddd-4444-4444-8444-dddddddddddd";
const V = "api-version=2021-01-01";

type Keys = Awaited<ReturnType<typeof generateKeyPair>>;
let keys: Keys;
let otherKeys: Keys;
let pem: string;
let jwksServer: Server;
let dir: string;
let viaJwks: TestAgent;
let viaPem: TestAgent;
let viaJwksFile: TestAgent;

const now = () => Math.floor(Date.now() / 1000);
const customerClaims = (scopes: string[] = [`/subscriptions/${SUB_J}/resourceGroups/rg-j`]): JWTPayload => ({
  sub: "user-jane@contoso.example",
  roles: ["Station.Customer"],
  scopes,
});

async function sign(
  claims: JWTPayload,
  opts: {
    key?: Keys["privateKey"];
    iss?: string;
    aud?: string;
    exp?: number;
    nbf?: number;
    kid?: string;
  } = {},
): Promise<string> {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: opts.kid ?? "k1" })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? now() + 600);
  if (opts.nbf !== undefined) jwt.setNotBefore(opts.nbf);
  return jwt.sign(opts.key ?? keys.privateKey);
}

/** The classic confusion: HS256 with the server's public key (PEM text) as the HMAC secret. */
async function hsWithPublicKey(): Promise<string> {
  return new SignJWT(customerClaims())
    .setProtectedHeader({ alg: "HS256", kid: "k1" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setExpirationTime(now() + 600)
    .sign(new TextEncoder().encode(pem));
}

const jobPath = (sub: string, name: string) =>
  `/subscriptions/${sub}/resourceGroups/rg-j/providers/Microsoft.ImportExport/jobs/${name}?${V}`;
const putBody = (sub: string) =>
  JSON.stringify({
    location: "West US",
    properties: {
      storageAccountId: `/subscriptions/${sub}/resourceGroups/rg-j/providers/Microsoft.Storage/storageAccounts/acct`,
      jobType: "Export",
      export: { blobList: { blobPathPrefix: ["/"] } },
    },
  });

const jwtSettings = (key: Record<string, unknown>) => ({ ...key, issuer: ISSUER, audience: AUDIENCE });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ds-jwt-"));
  keys = await generateKeyPair("RS256", { extractable: true });
  otherKeys = await generateKeyPair("RS256", { extractable: true });
  pem = await exportSPKI(keys.publicKey);
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  jwksServer = createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwksServer.listen(0, "127.0.0.1", r));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/keys`;
  const pemFile = join(dir, "idp.pem");
  writeFileSync(pemFile, pem);
  const staticOperator = [{ name: "op-alice", token: OPERATOR_TOKEN, role: "operator" }];
  viaJwks = await startTestAgent(join(dir, "jwks"), {
    tokens: staticOperator,
    jwt: jwtSettings({ jwksUrl }),
  });
  viaPem = await startTestAgent(join(dir, "pem"), {
    tokens: [],
    jwt: jwtSettings({ publicKeyFile: pemFile }),
  });
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  viaJwksFile = await startTestAgent(join(dir, "jwks-file"), { tokens: [], jwt: jwtSettings({ jwksFile }) });
});
afterAll(async () => {
  await viaJwks?.agent.stop();
  await viaPem?.agent.stop();
  await viaJwksFile?.agent.stop();
  await new Promise((r) => jwksServer?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const agents = () =>
  [
    ["JWKS URL", viaJwks, join(dir, "jwks", "jobs.db")],
    ["PEM public key", viaPem, join(dir, "pem", "jobs.db")],
    ["JWKS file", viaJwksFile, join(dir, "jwks-file", "jobs.db")],
  ] as const;

describe("JWT bearer tokens", () => {
  it("a valid customer token works within its scope, an operator token everywhere, static tokens beside them", async () => {
    for (const [how, s] of agents()) {
      const token = await sign(customerClaims());
      const put = await rawRequest(s.agent.url, "PUT", jobPath(SUB_J, "jwt-job"), {
        token,
        body: putBody(SUB_J),
      });
      expect(put.status, `${how}: ${put.body}`).toBe(201);
      expect(JSON.parse(put.body).systemData.createdBy).toBe("user-jane@contoso.example");
      expect((await rawRequest(s.agent.url, "GET", jobPath(SUB_J, "jwt-job"), { token })).status).toBe(200);
      // Customer JWTs stay out of operator routes.
      expect((await rawRequest(s.agent.url, "GET", "/station/v1/jobs", { token })).status).toBe(403);
      const op = await sign({ sub: "ops-svc", roles: ["Station.Operator"] });
      expect((await rawRequest(s.agent.url, "GET", "/station/v1/jobs", { token: op })).status, how).toBe(200);
      // Within the clock tolerance (30 s) a just-expired token still passes.
      const late = await sign(customerClaims(), { exp: now() - 10 });
      expect((await rawRequest(s.agent.url, "GET", jobPath(SUB_J, "jwt-job"), { token: late })).status).toBe(
        200,
      );
    }
    expect(
      (await rawRequest(viaJwks.agent.url, "GET", "/station/v1/jobs", { token: OPERATOR_TOKEN })).status,
    ).toBe(200);
  });

  it("refuses expired, not-yet-valid, wrong-audience, wrong-issuer, wrong-key, unknown-kid, alg none, HS256-with-the-public-key, no-exp and malformed tokens with 401, writing nothing", async () => {
    const cases: [string, () => Promise<string>][] = [
      ["expired", () => sign(customerClaims(), { exp: now() - 600 })],
      ["not yet valid", () => sign(customerClaims(), { nbf: now() + 600 })],
      ["wrong audience", () => sign(customerClaims(), { aud: "api://someone-else" })],
      ["wrong issuer", () => sign(customerClaims(), { iss: "https://evil.example.test/" })],
      ["wrong key", () => sign(customerClaims(), { key: otherKeys.privateKey })],
      ["unknown kid, wrong key", () => sign(customerClaims(), { key: otherKeys.privateKey, kid: "k2" })],
      [
        "alg none",
        async () =>
          new UnsecuredJWT(customerClaims())
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .setExpirationTime(now() + 600)
            .encode(),
      ],
      ["HS256 signed with the public key", hsWithPublicKey],
      [
        "no exp",
        () =>
          new SignJWT(customerClaims())
            .setProtectedHeader({ alg: "RS256", kid: "k1" })
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .sign(keys.privateKey),
      ],
      [
        "payload altered after signing",
        async () => {
          const [h, , sig] = (await sign(customerClaims([`/subscriptions/${SUB_OTHER}`]))).split(".");
          const forged = Buffer.from(
            JSON.stringify({ ...customerClaims(), iss: ISSUER, aud: AUDIENCE, exp: now() + 600 }),
          );
          return `${h}.${forged.toString("base64url")}.${sig}`;
        },
      ],
      ["scopes claim not an ARM scope", () => sign(customerClaims(["../../etc/passwd"]))],
      ["roles claim not a list of strings", () => sign({ ...customerClaims(), roles: { admin: true } })],
    ];
    for (const [how, s, db] of agents()) {
      const before = storedSnapshot(db);
      for (const [name, make] of cases) {
        const token = await make();
        const r = await rawRequest(
          s.agent.url,
          "PUT",
          jobPath(SUB_J, `refused-${name.replace(/\W+/g, "-")}`),
          {
            token,
            body: putBody(SUB_J),
          },
        );
        expect(r.status, `${how}: ${name}`).toBe(401);
        const e = JSON.parse(r.body).error;
        expect(e.code).toBe("AuthenticationFailed");
        expect(e.message).toMatch(/^The bearer token (was refused|is not valid)/);
        expect(r.body).not.toContain(token);
      }
      expect(storedSnapshot(db), how).toEqual(before);
    }
  });

  it("refuses out-of-scope and role-less tokens with 403, writing nothing", async () => {
    for (const [how, s, db] of agents()) {
      const before = storedSnapshot(db);
      const token = await sign(customerClaims());
      const r = await rawRequest(s.agent.url, "PUT", jobPath(SUB_OTHER, "elsewhere"), {
        token,
        body: putBody(SUB_OTHER),
      });
      expect(r.status, how).toBe(403);
      expect(JSON.parse(r.body).error.message).toContain(
        "The client 'user-jane@contoso.example' does not have authorization",
      );
      // Another resource group of the same subscription is outside an rg-scoped grant.
      const otherRg = `/subscriptions/${SUB_J}/resourceGroups/rg-x/providers/Microsoft.ImportExport/jobs/x?${V}`;
      expect((await rawRequest(s.agent.url, "GET", otherRg, { token })).status).toBe(403);
      const noRole = await sign({ sub: "nobody", scopes: [`/subscriptions/${SUB_J}`] });
      const n = await rawRequest(s.agent.url, "PUT", jobPath(SUB_J, "no-role"), {
        token: noRole,
        body: putBody(SUB_J),
      });
      expect(n.status).toBe(403);
      expect(JSON.parse(n.body).error.message).toContain(
        "holds neither the 'Station.Operator' nor the 'Station.Customer' role",
      );
      expect(storedSnapshot(db)).toEqual(before);
    }
  });

  it("no JWT or static token reaches a log line", async () => {
    const token = await sign(customerClaims());
    await rawRequest(viaJwks.agent.url, "GET", jobPath(SUB_J, "jwt-job"), { token });
    await rawRequest(viaJwks.agent.url, "GET", jobPath(SUB_J, "jwt-job"), { token: `${token}x` });
    for (const s of [viaJwks, viaPem, viaJwksFile]) {
      const log = s.logText();
      expect(log).toContain("api request");
      expect(log).not.toContain(token);
      expect(log).not.toContain(token.split(".")[2]!);
      expect(log).not.toContain(OPERATOR_TOKEN);
    }
  });
});

describe("JWT configuration", () => {
  const base = (jwt: Record<string, unknown>) => ({
    station: { location: stationLocation },
    api: { jwt: { issuer: ISSUER, audience: AUDIENCE, publicKeyFile: "/x.pem", ...jwt } },
  });
  it("refuses `none` and HS* algorithms, a missing key source or two of them, and a missing issuer", () => {
    expect(() => parseConfig(base({ algorithms: ["none"] }), "c.json")).toThrow(/api\.jwt\.algorithms\.0/);
    expect(() => parseConfig(base({ algorithms: ["HS256"] }), "c.json")).toThrow(/api\.jwt\.algorithms\.0/);
    expect(() => parseConfig(base({ publicKeyFile: undefined }), "c.json")).toThrow(/exactly one of jwksUrl/);
    expect(() => parseConfig(base({ jwksUrl: "https://idp/keys" }), "c.json")).toThrow(
      /exactly one of jwksUrl/,
    );
    expect(() => parseConfig(base({ issuer: undefined }), "c.json")).toThrow(/api\.jwt\.issuer/);
    expect(parseConfig(base({}), "c.json").api.jwt?.algorithms).toEqual(["RS256", "PS256", "ES256", "EdDSA"]);
  });
});
