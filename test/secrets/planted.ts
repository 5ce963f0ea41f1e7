/**
 * Secrets to plant, and the check that an output holds none of them. Two kinds:
 *  - shaped: recognisable by what they are (an account key, a SAS, a connection string, a URL
 *    with a password, a bearer token, a JWT, a BitLocker recovery password, a private key);
 *    planted anywhere, under any field name;
 *  - opaque: any string of 16+ characters (a token, a password); only recognisable by where it
 *    is (a secret-bearing config subtree, a field named `password`, an Authorization header).
 * Every planting and every output checked is counted, for the summary line.
 */
import fc from "fast-check";

export interface Planted {
  /** What is planted (the secret inside its usual wrapping). */
  text: string;
  /** What must never appear in output. */
  secrets: string[];
  shape: string;
}

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b));
const b64 = (n: number) => bytes(n).map((b) => b.toString("base64"));
const b64url = (n: number) => bytes(n).map((b) => b.toString("base64url"));
const password = fc.stringMatching(/^[A-Za-z0-9!*$._~-]{12,28}$/);

export const opaque = fc.stringMatching(/^[A-Za-z0-9!*$._~+-]{16,40}$/);

const jwt = fc
  .tuple(b64url(24), b64url(32))
  .map(
    ([payload, sig]) =>
      `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString("base64url")}.${Buffer.from(`{"sub":"${payload}"}`).toString("base64url")}.${sig}`,
  );

export const shaped: fc.Arbitrary<Planted> = fc.oneof(
  b64(64).map((k) => ({ text: k, secrets: [k], shape: "account key" })),
  b64(64).map((k) => ({
    text: `DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey=${k};EndpointSuffix=core.windows.net`,
    secrets: [k],
    shape: "connection string",
  })),
  b64(32).map((s) => ({
    text: `https://acct1.blob.core.windows.net/photos/beach.jpg?sv=2022-11-02&sr=c&sp=rwdl&se=2030-01-01T00%3A00%3A00Z&sig=${encodeURIComponent(s)}`,
    secrets: [s, encodeURIComponent(s)],
    shape: "SAS URL",
  })),
  b64(32).map((s) => ({
    text: `sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&sig=${encodeURIComponent(s)}`,
    secrets: [s, encodeURIComponent(s)],
    shape: "container SAS",
  })),
  b64(32).map((s) => ({
    text: `BlobEndpoint=https://acct1.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=${encodeURIComponent(s)}`,
    secrets: [s, encodeURIComponent(s)],
    shape: "SAS connection string",
  })),
  password.map((p) => ({
    text: `postgres://station:${p}@db.example:5432/jobs`,
    secrets: [p],
    shape: "URL with password",
  })),
  password.map((p) => ({
    text: `mysql://db.example/jobs?user=station&password=${p}`,
    secrets: [p],
    shape: "URL with password query",
  })),
  b64url(24).map((t) => ({ text: `Bearer ${t}`, secrets: [t], shape: "bearer token" })),
  jwt.map((t) => ({ text: t, secrets: [t.split(".").slice(1).join(".")], shape: "JWT" })),
  fc.array(fc.integer({ min: 0, max: 999_999 }), { minLength: 8, maxLength: 8 }).map((g) => {
    const k = g.map((n) => String(n).padStart(6, "0")).join("-");
    return { text: k, secrets: [k, k.replaceAll("-", "")], shape: "BitLocker recovery password" };
  }),
  b64(96).map((k) => ({
    text: `-----BEGIN PRIVATE KEY-----\n${k.slice(0, 64)}\n${k.slice(64)}\n-----END PRIVATE KEY-----`,
    secrets: [k.slice(0, 64), k.slice(64)],
    shape: "private key",
  })),
);

export const stats = { planted: 0, outputs: 0 };

/** The forms a secret can take in output: as is, JSON-escaped, URL-encoded. */
function needles(secret: string): string[] {
  const forms = new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]);
  return [...forms].filter((f) => f.length >= 8);
}

export const plant = (secrets: string[]): string[] => {
  stats.planted += secrets.length;
  return secrets;
};

/** Throws (failing the property) when the output holds a planted secret. */
export function expectClean(output: string, secrets: readonly string[], where: string): void {
  stats.outputs++;
  for (const s of secrets)
    for (const n of needles(s))
      if (output.includes(n))
        throw new Error(`${where}: the output holds the planted secret ${JSON.stringify(n)}:\n${output}`);
}
