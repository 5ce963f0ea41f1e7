/**
 * Defence in depth for secrets: the code never puts a secret into a log line or an error message
 * on purpose, and these filters catch the ones that would slip through (an SDK error quoting a
 * SAS URL, a connection string in a stack trace).
 */

/** Object keys whose values pino replaces with "[redacted]", at any of the first three levels. */
const SECRET_KEYS = [
  "bitLockerKey",
  "token",
  "tokens",
  "accountKey",
  "storageAccountKey",
  "containerSas",
  "sas",
  "authorization",
  "password",
  "connectionString",
];

export const REDACT_PATHS: string[] = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]).concat([
  "req.headers.authorization",
]);

const PATTERNS: [RegExp, string][] = [
  // The password in a URL's user info (postgres://station:secret@db/...).
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s"']*:)[^@/?#\s"']*@/gi, "$1[redacted]@"],
  [/([?&]sig=)[^&\s"']+/gi, "$1[redacted]"],
  [/(AccountKey=)[^;\s"']+/gi, "$1[redacted]"],
  [/(SharedAccessSignature=)[^;\s"']+/gi, "$1[redacted]"],
  [/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, "$1[redacted]"],
  [/\b\d{6}(?:-\d{6}){7}\b/g, "[redacted-bitlocker-password]"],
  [/(<StorageAccountKey>)[^<]*/g, "$1[redacted]"],
  [/(<ContainerSas>)[^<]*/g, "$1[redacted]"],
];

export function scrubSecrets(text: string): string {
  let out = text;
  for (const [re, repl] of PATTERNS) out = out.replace(re, repl);
  return out;
}
