#!/usr/bin/env node
/**
 * `station`: the operator's command line, a thin client of the agent's HTTP API (plus the
 * offline `prepare` and the first-run `demo`). Every failure is one line on stderr with the next
 * step: exit 2 for a bad command line, 1 when the station failed or refused.
 */
import { readFileSync } from "node:fs";
import { CommanderError } from "commander";
import { PrepareError } from "../prepare/prepare-drive.js";
import { scrubSecrets } from "../secrets.js";
import { CliError, EXIT_FAILED, EXIT_USAGE } from "./errors.js";
import { buildProgram } from "./program.js";

function packageVersion(): string {
  try {
    return (
      JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
        version: string;
      }
    ).version;
  } catch {
    return "0.0.0";
  }
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram(packageVersion());
  if (argv.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError)
      return e.code === "commander.helpDisplayed" || e.code === "commander.version" ? 0 : EXIT_USAGE;
    // Every line goes through the secret scrubber: messages may quote a URL, a reply, a file.
    const say = (line: string) => process.stderr.write(`station: ${scrubSecrets(line)}\n`);
    if (e instanceof CliError) {
      say(e.message);
      return e.exitCode;
    }
    if (e instanceof PrepareError) {
      say(e.message);
      return EXIT_USAGE;
    }
    // Not expected: still one line, and where to look next.
    const err = e as NodeJS.ErrnoException;
    say(
      `${err?.code ? `${err.code}: ` : ""}${err?.message ?? String(e)}. Next: retry; if it persists, run with NODE_DEBUG=station and report it.`,
    );
    if (process.env.NODE_DEBUG?.includes("station"))
      process.stderr.write(`${scrubSecrets(String(err?.stack))}\n`);
    return EXIT_FAILED;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
