/**
 * The one scrubber for every output (log lines, config errors, CLI error lines, notices, API error
 * bodies). The code never puts a secret into output on purpose; this catches what slips through
 * (an SDK error quoting a SAS URL, a connection string in a stack, a key pasted into the wrong
 * config field). It decides by what a value IS (a URL with a password, a SAS signature, a base64
 * account key, a BitLocker recovery password, a bearer token, a private key) and by the name of
 * the field that holds it (`password`, `accountKey`, `token`, ...), at any depth.
 */

export const REDACTED = "[redacted]";

/** Field and query-parameter names whose value is a secret, whatever it looks like (compared lower-case, without `_` and `-`). */
const SECRET_NAMES = new Set([
  "password",
  "passwd",
  "pwd",
  "pass",
  "secret",
  "clientsecret",
  "token",
  "tokens",
  "accesstoken",
  "refreshtoken",
  "idtoken",
  "apikey",
  "key",
  "keys",
  "accountkey",
  "storageaccountkey",
  "sharedaccesskey",
  "sharedaccesssignature",
  "sas",
  "containersas",
  "sassig",
  "sig",
  "signature",
  "bitlockerkey",
  "recoverypassword",
  "privatekey",
  "connectionstring",
  "authorization",
  "proxyauthorization",
  "cookie",
  "setcookie",
  "credential",
  "credentials",
]);

const normalName = (name: string) => name.toLowerCase().replace(/[_-]/g, "");

/** Whether a field of this name holds a secret (`hasBitLockerKey`, `keyFile`, `tokenSha256` do not). */
export function isSecretName(name: string): boolean {
  const n = normalName(name);
  if (SECRET_NAMES.has(n)) return true;
  if (/^has|file$|path$|sha256$|count$|id$/.test(n)) return false;
  return /password|secret|accountkey|privatekey|apikey|accesstoken|connectionstring|bitlockerkey|credential|sas$/.test(
    n,
  );
}

const PARAM_NAMES = [...SECRET_NAMES].filter((n) => !/^(keys|tokens|cookie|setcookie|credentials)$/.test(n));
/** `name=value` in a query string or connection string (also `Account_Key`, `SAS-SIG` spellings). */
const PARAM = new RegExp(
  `(?<![A-Za-z0-9])((?:${PARAM_NAMES.map((n) => n.split("").join("[_-]?")).join("|")})=)[^&;\\s"'<>,]+`,
  "gi",
);
/** `"name": "value"` in JSON or JavaScript text (a body, a config excerpt, a util.inspect dump). */
const QUOTED = new RegExp(
  `((["']?)(?:${[...SECRET_NAMES].map((n) => n.split("").join("[_-]?")).join("|")})\\2\\s*[:=]\\s*(["']))(?:(?!\\3)[^\\\\]|\\\\.)*\\3`,
  "gi",
);

/** Base64 of a key (Azure account keys are 64 bytes: 88 characters with `==`), padded. */
const PADDED_BASE64 = /(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/]{38,}={1,2}(?![A-Za-z0-9+/=_-])/g;
/** Unpadded base64 / base64url runs; only random-looking ones are redacted (see randomLooking). */
const LONG_RUN = /(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,}(?![A-Za-z0-9+/=_-])/g;

/** Mixed upper, lower and digits, switching character class often: a key or token, not a word or a path. */
function randomLooking(s: string): boolean {
  if (!/[A-Z]/.test(s) || !/[a-z]/.test(s) || !/[0-9]/.test(s)) return false;
  if (s.includes("/") && !s.includes("+")) return false; // a path
  const cls = (c: string) => (/[A-Z]/.test(c) ? 0 : /[a-z]/.test(c) ? 1 : /[0-9]/.test(c) ? 2 : 3);
  let switches = 0;
  for (let i = 1; i < s.length; i++) if (cls(s[i]!) !== cls(s[i - 1]!)) switches++;
  return switches / (s.length - 1) >= 0.4;
}

const PATTERNS: [RegExp, string | ((m: string) => string)][] = [
  [
    /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g,
    "[redacted-private-key]",
  ],
  // The password in a URL's user info (postgres://station:secret@db/...), up to the last `@`.
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s"'<>]*:)[^\s"'<>]*@/gi, `$1${REDACTED}@`],
  // Before the name=value rules: `password=Bearer <token>` would otherwise lose only "Bearer".
  [/\b((?:Bearer|Basic|SharedKey)\s+)[A-Za-z0-9._~+/:-]{8,}=*/gi, `$1${REDACTED}`],
  [QUOTED, `$1${REDACTED}$3`],
  [PARAM, `$1${REDACTED}`],
  [/(<(StorageAccountKey|ContainerSas|BitLockerKey|AccountKey|Sas)>)[^<]*/gi, `$1${REDACTED}`],
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, "[redacted-jwt]"],
  // BitLocker recovery password: 48 digits, 8 groups of 6 (with or without separators).
  [/(?<!\d)\d{6}(?:[- ]?\d{6}){7}(?!\d)/g, "[redacted-bitlocker-password]"],
  [PADDED_BASE64, "[redacted-key]"],
  [LONG_RUN, (m) => (randomLooking(m) ? "[redacted-key]" : m)],
];

/** A run of URL-encoded text (a path or query quoted in a message). */
const ENCODED_RUN = /[^\s"'<>]*%[0-9A-Fa-f]{2}[^\s"'<>]*/g;

/** The text with every secret it recognises replaced, also inside URL-encoded runs. */
export function scrubSecrets(text: string, depth = 0): string {
  let out = text;
  if (depth < 3)
    out = out.replace(ENCODED_RUN, (run) => {
      let decoded: string;
      try {
        decoded = decodeURIComponent(run);
      } catch {
        return run;
      }
      const scrubbed = scrubSecrets(decoded, depth + 1);
      // Shown decoded only when it held a secret: the encoded form is what the caller sent.
      return scrubbed === decoded ? run : scrubbed;
    });
  for (const [re, repl] of PATTERNS)
    out = typeof repl === "string" ? out.replace(re, repl) : out.replace(re, repl);
  return out;
}

const MAX_DEPTH = 8;
const MAX_ITEMS = 100;

/**
 * A copy of any value fit for output: strings scrubbed, fields with secret names replaced by
 * REDACTED, Errors as plain objects (type, message, code, stack, cause and their own properties,
 * all scrubbed), cycles and depth bounded. Keys are scrubbed too (a key can be pasted as a name).
 */
export function scrubValue(value: unknown): unknown {
  return walk(value, 0, new WeakSet());
}

function walk(v: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof v === "string") return scrubSecrets(v);
  if (typeof v === "bigint") return scrubSecrets(String(v));
  if (v === null || typeof v !== "object") return typeof v === "function" ? undefined : v;
  if (seen.has(v)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[too deep]";
  seen.add(v);
  try {
    if (Buffer.isBuffer(v)) return `[${v.length} bytes]`;
    if (v instanceof Date) return Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString();
    if (v instanceof Error) return errorFields(v, depth, seen);
    if (Array.isArray(v)) {
      const out = v.slice(0, MAX_ITEMS).map((x) => walk(x, depth + 1, seen));
      if (v.length > MAX_ITEMS) out.push(`[${v.length - MAX_ITEMS} more]`);
      return out;
    }
    if (v instanceof Map) return walk(Object.fromEntries(v), depth, seen);
    if (v instanceof Set) return walk([...v], depth, seen);
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return walk(toJSON.call(v), depth + 1, seen);
    return fields(Object.entries(v), depth, seen);
  } finally {
    seen.delete(v);
  }
}

function fields(entries: [string, unknown][], depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries.slice(0, MAX_ITEMS)) {
    if (x === undefined || typeof x === "function") continue;
    out[scrubSecrets(k)] =
      isSecretName(k) && x !== null && typeof x !== "boolean" ? REDACTED : walk(x, depth + 1, seen);
  }
  return out;
}

function errorFields(e: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const own = Object.entries(e).filter(([k]) => !["message", "stack", "cause", "name"].includes(k));
  const base: [string, unknown][] = [
    ["type", e.name],
    ["message", e.message],
    ["stack", e.stack],
  ];
  if ("cause" in e) base.push(["cause", e.cause]);
  if (e instanceof AggregateError) base.push(["errors", e.errors]);
  return fields([...base, ...own], depth, seen);
}

/**
 * What a value that must stay hidden looks like, for an error message that has to say what is
 * wrong without showing it: its shape only, and for a URL its scheme, host and path (query values
 * and password hidden). `knownKeys`: the key names this spot's schema has (other keys are user
 * text: only counted).
 */
export function describeHidden(value: unknown, knownKeys: readonly string[] = []): string {
  if (value === undefined) return "(missing)";
  if (value === null) return "null";
  if (typeof value === "string") {
    const url = safeUrl(value);
    return url ? `${url} (credentials hidden)` : `(hidden: a string of ${value.length} characters)`;
  }
  if (Array.isArray(value))
    return `(hidden: an array of ${value.length} item${value.length === 1 ? "" : "s"})`;
  if (typeof value === "object") {
    const keys = Object.keys(value);
    const named = keys.filter((k) => knownKeys.includes(k));
    const others = keys.length - named.length;
    const parts = [...named, ...(others ? [`${others} other key${others === 1 ? "" : "s"}`] : [])];
    return `(hidden: an object${keys.length ? ` with ${parts.join(", ")}` : ", empty"})`;
  }
  return `(hidden: a ${typeof value})`;
}

/** A URL with its password and query values hidden, or undefined when the text is no URL. */
function safeUrl(text: string): string | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^\s]+$/i.test(text)) return undefined;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return undefined;
  }
  const user = u.username
    ? `${scrubSecrets(decodeURIComponent(u.username))}${u.password ? `:${REDACTED}` : ""}@`
    : u.password
      ? `:${REDACTED}@`
      : "";
  const query = [...u.searchParams.keys()].map((k) => `${scrubSecrets(k)}=${REDACTED}`).join("&");
  const shown = `${u.protocol}//${user}${u.host}${scrubSecrets(u.pathname)}${query ? `?${query}` : ""}`;
  return scrubSecrets(shown);
}
