#!/usr/bin/env node
/**
 * `station`: the operator's command line, a thin client of the agent's HTTP API (plus the
 * offline `prepare` and the first-run `demo`). Every failure is one line on stderr with the next
 * step: exit 2 for a bad command line, 1 when the station failed or refused.
 */
import { readFileSync } from "node:fs";
import { CommanderError } from "commander";
import { EXIT_USAGE } from "./errors.js";
import { failureOutput } from "./failure.js";
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
    const { text, exitCode } = failureOutput(e, Boolean(process.env.NODE_DEBUG?.includes("station")));
    process.stderr.write(text);
    return exitCode;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
