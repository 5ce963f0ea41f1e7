/** API identities in config and in the generated token file. */
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEMO_SUBSCRIPTION } from "../../agent/agent.js";
import { parseConfig } from "../../agent/config.js";
import { startTestAgent, stationLocation } from "../support/agent.js";
import { rawRequest } from "../support/raw-http.js";
import { useTempDir } from "../support/tmp.js";

const temp = useTempDir();
const withTokens = (tokens: unknown[]) => ({ station: { location: stationLocation }, api: { tokens } });
const SECRET = "a-customer-secret-0123456789";

describe("token config", () => {
  it("a customer token needs a scope; an operator token takes none; exactly one of token and tokenSha256", () => {
    expect(() => parseConfig(withTokens([{ name: "c", role: "customer", token: SECRET }]), "x.json")).toThrow(
      /api\.tokens\.0\.scopes = \(missing\): a customer token needs at least one scope/,
    );
    expect(() =>
      parseConfig(
        withTokens([{ name: "o", role: "operator", token: SECRET, scopes: [{ subscriptionId: "s1" }] }]),
        "x.json",
      ),
    ).toThrow(/operator tokens see everything/);
    const digest = createHash("sha256").update(SECRET).digest("hex");
    const scopes = [{ subscriptionId: "s1" }];
    expect(() =>
      parseConfig(
        withTokens([{ name: "c", role: "customer", token: SECRET, tokenSha256: digest, scopes }]),
        "x.json",
      ),
    ).toThrow(/exactly one of token or tokenSha256/);
    expect(() =>
      parseConfig(withTokens([{ name: "c", role: "customer", tokenSha256: "abc", scopes }]), "x.json"),
    ).toThrow(/64 hex digits/);
    expect(() =>
      parseConfig(
        withTokens([
          { name: "c", role: "customer", token: SECRET, scopes: [{ subscriptionId: "s1/../s2" }] },
        ]),
        "x.json",
      ),
    ).toThrow(/subscription id/);
    const ok = parseConfig(
      withTokens([{ name: "c", role: "customer", tokenSha256: digest, scopes }]),
      "x.json",
    );
    expect(ok.api.tokens[0]?.tokenSha256).toBe(digest);
  });

  it("a token given as its SHA-256 digest authenticates", async () => {
    const digest = createHash("sha256").update(SECRET).digest("hex");
    const s = await startTestAgent(join(temp(), "data"), {
      tokens: [{ name: "c", role: "customer", tokenSha256: digest, scopes: [{ subscriptionId: "s1" }] }],
    });
    try {
      const path = "/subscriptions/s1/providers/Microsoft.ImportExport/jobs?api-version=2021-01-01";
      expect((await rawRequest(s.agent.url, "GET", path, { token: SECRET })).status).toBe(200);
      expect((await rawRequest(s.agent.url, "GET", path, { token: digest })).status).toBe(401);
      expect(s.logText()).not.toContain(SECRET);
    } finally {
      await s.agent.stop();
    }
  });
});

describe("the generated token file", () => {
  it("is 0600, and its customer token is granted the demo subscription only", async () => {
    const dataDir = join(temp(), "data");
    const s = await startTestAgent(dataDir, { tokens: [] });
    try {
      const file = s.agent.tokensFile!;
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const { tokens } = JSON.parse(readFileSync(file, "utf8")) as {
        tokens: { role: string; token: string; scopes?: { subscriptionId: string }[] }[];
      };
      const customer = tokens.find((t) => t.role === "customer")!;
      expect(customer.scopes).toEqual([{ subscriptionId: DEMO_SUBSCRIPTION }]);
      const list = (sub: string) =>
        rawRequest(
          s.agent.url,
          "GET",
          `/subscriptions/${sub}/providers/Microsoft.ImportExport/jobs?api-version=2021-01-01`,
          {
            token: customer.token,
          },
        );
      expect((await list(DEMO_SUBSCRIPTION)).status).toBe(200);
      expect((await list("some-other-subscription")).status).toBe(403);
      for (const t of tokens) expect(s.logText()).not.toContain(t.token);
    } finally {
      await s.agent.stop();
    }
  });

  it("a file from before scopes (a customer without any) stops the agent with what to do", async () => {
    const dataDir = join(temp(), "data");
    const s = await startTestAgent(dataDir, { tokens: [] });
    const file = s.agent.tokensFile!;
    await s.agent.stop();
    const old = JSON.parse(readFileSync(file, "utf8")) as { tokens: { scopes?: unknown }[] };
    for (const t of old.tokens) delete t.scopes;
    writeFileSync(file, JSON.stringify(old));
    await expect(startTestAgent(dataDir, { tokens: [] })).rejects.toThrow(
      /api-tokens\.json: tokens\.1\.scopes: a customer token needs at least one scope.*delete it to regenerate/,
    );
  });
});
