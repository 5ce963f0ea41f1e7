/**
 * How a config error shows the value it rejects. Some parts of the config hold secrets (account
 * keys, the store URL's password, API tokens, the JWT key sources): a value written there is never
 * shown, whatever shape it was wrongly written in (an object instead of an array, "name:key" in
 * one string, a password in a query): the error names the key, the shape it found and the shape
 * expected. Elsewhere the value is shown, scrubbed (src/secrets.ts), so a key pasted into the
 * wrong field is still caught by what it is.
 */
import { describeHidden, isSecretName, scrubSecrets, scrubValue } from "../src/secrets.js";

interface SecretSubtree {
  path: string[];
  /** Key names the schema has there (other keys are user text: counted, not named). */
  keys: string[];
  expected: string;
}

export const SECRET_SUBTREES: SecretSubtree[] = [
  {
    path: ["storage", "accounts"],
    keys: ["name", "key", "subscriptionId", "resourceGroup"],
    // No `"key": "..."` here: the scrubber would hide the example itself.
    expected:
      "an array of objects with name (the account), key (its base64 key), and optionally subscriptionId, resourceGroup",
  },
  { path: ["store", "url"], keys: [], expected: "a postgres://user:password@host:5432/db URL" },
  {
    path: ["api", "tokens"],
    keys: ["name", "role", "token", "tokenSha256", "scopes"],
    expected: "an array of objects with name, role, tokenSha256 (or token) and scopes",
  },
  { path: ["api", "jwt", "jwksUrl"], keys: [], expected: "an https:// URL of the identity provider's keys" },
  { path: ["api", "jwt", "jwksFile"], keys: [], expected: "the path of a JWKS file" },
  { path: ["api", "jwt", "publicKeyFile"], keys: [], expected: "the path of a PEM public key file" },
  { path: ["api", "tls", "keyFile"], keys: [], expected: "the path of the PEM private key file" },
];

const startsWith = (a: readonly string[], prefix: readonly string[]) =>
  prefix.length <= a.length && prefix.every((p, i) => a[i] === p);

/** The secret subtree this path lies in (a field with a secret's name counts as one). */
export function secretSubtreeOf(path: readonly string[]): SecretSubtree | undefined {
  const found = SECRET_SUBTREES.find((s) => startsWith(path, s.path));
  if (found) return found;
  const i = path.findIndex(isSecretName);
  return i < 0 ? undefined : { path: path.slice(0, i + 1), keys: [], expected: "a value" };
}

/** Whether a secret subtree lies below this path (its value holds one). */
const holdsSubtree = (path: readonly string[]) =>
  SECRET_SUBTREES.some((s) => s.path.length > path.length && startsWith(s.path, path));

const MAX_SHOWN = 200;

/** The rejected value as a config error shows it, with why it is hidden when it is. */
export function shownConfigValue(path: readonly string[], value: unknown): { shown: string; note?: string } {
  if (value === undefined) return { shown: "(missing)" };
  const subtree = secretSubtreeOf(path);
  if (subtree) {
    const where = subtree.path.join(".");
    return {
      shown: describeHidden(value, path.length === subtree.path.length ? subtree.keys : []),
      note: `${where} holds secrets, which are never shown; write it as ${subtree.expected}`,
    };
  }
  // An object or string above a secret subtree (`store` written as a URL string) may hold its secret.
  if (typeof value === "string" && holdsSubtree(path)) return { shown: describeHidden(value) };
  if (typeof value === "object" && value !== null && holdsSubtree(path))
    return {
      shown: describeHidden(
        value,
        Object.keys(value).filter((k) => /^[A-Za-z]{1,24}$/.test(k)),
      ),
    };
  const text = JSON.stringify(scrubValue(value)) ?? String(value);
  return { shown: scrubSecrets(text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text) };
}

/** Secrets the schema accepts are at least this long (tokens, keys): a shorter key name is a typo, not a secret. */
const SHORTEST_SECRET = 16;

/**
 * An unknown key's dotted path. In a secret subtree a long name is hidden: a token or key written
 * as a key name (`"tokens": { "<token>": "operator" }`) would otherwise be printed.
 */
export function shownUnknownKey(path: readonly string[]): string {
  const parent = path.slice(0, -1);
  const name = path.at(-1) ?? "";
  if (secretSubtreeOf(parent) && (name.length >= SHORTEST_SECRET || scrubSecrets(name) !== name))
    return `${parent.join(".")}.(a key of ${name.length} characters, name hidden)`;
  return scrubSecrets(path.join("."));
}
