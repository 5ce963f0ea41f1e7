/**
 * Where a secret can be planted in a config: every node (object, array, leaf) of two full configs
 * (between them every key of the schema: azure and embedded storage with accounts, postgres and
 * sqlite stores, tokens, TLS, each JWT key source), each replaced by every malformed shape; and
 * every secret leaf holding a secret while another key anywhere is wrong (the error is elsewhere).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../agent/config.js";

type Obj = Record<string, unknown>;

export interface ConfigCase {
  name: string;
  /** Random secrets tried for this placement. */
  runs: number;
  /** Whether the planted spot lies in a secret-bearing subtree (any string is a secret there). */
  inSecretSubtree: boolean;
  build(secret: string): unknown;
}

/** The config's secret-bearing subtrees, as the issue lists them (independent of the code's own list). */
const SECRET_SUBTREES = [
  "storage.accounts",
  "store.url",
  "api.tokens",
  "api.jwt.jwksUrl",
  "api.jwt.jwksFile",
  "api.jwt.publicKeyFile",
  "api.tls.keyFile",
];
const inSecret = (path: string[]) => SECRET_SUBTREES.some((s) => `${path.join(".")}.`.startsWith(`${s}.`));

const KEY = `${"a".repeat(86)}==`;

function fullConfigs(): Obj[] {
  const raw = JSON.parse(readFileSync(join(process.cwd(), "config", "default.json"), "utf8")) as Obj;
  const base = parseConfig(raw, "default.json") as unknown as Obj;
  const tokens = [
    { name: "op", role: "operator", token: "operator-token-0123456789" },
    {
      name: "cust",
      role: "customer",
      tokenSha256: "ab".repeat(32),
      scopes: [{ subscriptionId: "sub-1", resourceGroup: "rg-1" }],
    },
  ];
  const account = { name: "acct1", key: KEY, subscriptionId: "sub-1", resourceGroup: "rg-1" };
  const jwt = { issuer: "https://idp.example", audience: ["station"], clockToleranceSeconds: 30 };
  const a = structuredClone(base);
  Object.assign(a.api as Obj, {
    tokens,
    tls: { certFile: "c.pem", keyFile: "k.pem" },
    jwt: { ...jwt, jwksUrl: "https://idp.example/keys" },
  });
  a.storage = {
    mode: "azure",
    endpointTemplate: "https://{account}.blob.core.windows.net",
    accounts: [account],
  };
  a.store = {
    kind: "postgres",
    url: "postgres://station:pw@db:5432/jobs",
    poolSize: 10,
    connectTimeoutSeconds: 5,
  };
  const b = structuredClone(base);
  Object.assign(b.api as Obj, { tokens, jwt: { ...jwt, publicKeyFile: "idp.pem" } });
  (b.storage as Obj).accounts = [account];
  const c = structuredClone(base);
  Object.assign(c.api as Obj, { jwt: { ...jwt, jwksFile: "jwks.json" } });
  for (const cfg of [a, b, c]) parseConfig(cfg, "full.json"); // each is valid as it stands
  return [a, b, c];
}

/** Every node's path in a config. */
function paths(value: unknown, path: string[] = []): string[][] {
  const here = path.length ? [path] : [];
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => paths(v, [...path, String(i)]))];
  if (typeof value === "object" && value !== null)
    return [...here, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...path, k]))];
  return here;
}

function setAt(root: Obj, path: string[], value: unknown): Obj {
  const copy = structuredClone(root);
  let o = copy as Record<string, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  o[path.at(-1)!] = value;
  return copy;
}

/** The shapes a secret is wrongly written in. */
const SHAPES: Record<string, (s: string) => unknown> = {
  string: (s) => s,
  "name:key string": (s) => `acct1:${s}`,
  "object instead of array": (s) => ({ acct1: s }),
  "secret as a key name": (s) => ({ [s]: "operator" }),
  "array of strings": (s) => [s],
  nested: (s) => ({ a: { b: [{ c: s }] } }),
  "URL with password query": (s) => `mysql://db.example/jobs?password=${s}`,
  "URL with user info": (s) => `https://station:${s}@db.example/jobs`,
  number: (s) => Number.parseInt(s.replace(/\D/g, "").slice(0, 15) || "7", 10),
};

/** A wrong value for a node, of another type than it has. */
const wrong = (v: unknown) => (typeof v === "number" ? "not-a-number" : typeof v === "string" ? 12345 : 7);

export function configCases(): ConfigCase[] {
  const cases: ConfigCase[] = [];
  for (const [i, cfg] of fullConfigs().entries()) {
    const all = paths(cfg);
    for (const path of all)
      for (const [shape, make] of Object.entries(SHAPES))
        cases.push({
          name: `#${i} ${path.join(".")} as ${shape}`,
          inSecretSubtree: inSecret(path),
          runs: 3,
          build: (s) => setAt(cfg, path, make(s)),
        });
    // A secret in its right place while the error is somewhere else.
    const secretLeaves = all.filter((p) => inSecret(p) && typeof at(cfg, p) === "string");
    for (const leaf of secretLeaves)
      for (const other of all)
        if (other.join(".") !== leaf.join("."))
          cases.push({
            name: `#${i} ${leaf.join(".")} holds the secret, ${other.join(".")} is wrong`,
            inSecretSubtree: true,
            runs: 1,
            build: (s) => setAt(setAt(cfg, leaf, s), other, wrong(at(cfg, other))),
          });
  }
  return cases;
}

const at = (root: unknown, path: string[]): unknown =>
  path.reduce((o, k) => (o as Record<string, unknown>)[k], root);
