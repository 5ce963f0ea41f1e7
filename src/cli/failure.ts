/**
 * What the CLI prints when a command fails: one line on stderr (plus the stack with
 * NODE_DEBUG=station), always through the secret scrubber, since messages may quote a URL, an
 * agent's reply or a file.
 */
import { PrepareError } from "../prepare/prepare-drive.js";
import { scrubSecrets } from "../secrets.js";
import { CliError, EXIT_FAILED, EXIT_USAGE } from "./errors.js";

export function failureOutput(e: unknown, debug = false): { text: string; exitCode: number } {
  const line = (s: string) => `station: ${scrubSecrets(s)}\n`;
  if (e instanceof CliError) return { text: line(e.message), exitCode: e.exitCode };
  if (e instanceof PrepareError) return { text: line(e.message), exitCode: EXIT_USAGE };
  // Not expected: still one line, and where to look next.
  const err = e as NodeJS.ErrnoException;
  const text = line(
    `${err?.code ? `${err.code}: ` : ""}${err?.message ?? String(e)}. Next: retry; if it persists, run with NODE_DEBUG=station and report it.`,
  );
  return { text: debug ? `${text}${scrubSecrets(String(err?.stack))}\n` : text, exitCode: EXIT_FAILED };
}
