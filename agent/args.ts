/**
 * The agent's command line: `drive-station [--config FILE]`, `--help`, `--version`. A bad
 * argument is one line on stderr and exit 2 (EX_USAGE would be 64; 2 is what shells expect).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, CommanderError } from "commander";

export interface AgentArgs {
  /** The config file, absolute. */
  configFile: string;
}

export type ParsedArgs = { kind: "run"; args: AgentArgs } | { kind: "exit"; code: number };

export function packageVersion(packageRoot: string): string {
  try {
    return (JSON.parse(readFileSync(resolve(packageRoot, "package.json"), "utf8")) as { version: string })
      .version;
  } catch {
    return "0.0.0";
  }
}

export function parseAgentArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
  packageRoot: string,
  write: { out(s: string): void; err(s: string): void } = {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
  },
): ParsedArgs {
  const defaultConfig = resolve(packageRoot, "config", "default.json");
  const program = new Command("drive-station")
    .description(
      "The drive-station agent: watches the dock for drives, copies them to or from Blob Storage, and serves the Import/Export jobs API.",
    )
    .version(packageVersion(packageRoot), "-V, --version")
    .option("-c, --config <file>", `config file (default: DRIVE_STATION_CONFIG or ${defaultConfig})`)
    .addHelpText(
      "after",
      "\nExit codes: 0 stopped cleanly, 78 bad config (the message names the key), 2 bad arguments, 1 failure.\nThe operator's CLI is 'station' (npm run station -- --help).",
    )
    .exitOverride()
    .configureOutput({
      writeOut: write.out,
      writeErr: write.err,
      outputError: (message, w) =>
        w(
          `drive-station: ${message
            .replace(/^error:\s*/i, "")
            .replace(/\s*\n\s*/g, " ")
            .trim()}. See 'drive-station --help'.\n`,
        ),
    });
  try {
    program.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError)
      return {
        kind: "exit",
        code: e.code === "commander.helpDisplayed" || e.code === "commander.version" ? 0 : 2,
      };
    throw e;
  }
  const opts = program.opts<{ config?: string }>();
  return {
    kind: "run",
    args: { configFile: resolve(opts.config ?? env.DRIVE_STATION_CONFIG ?? defaultConfig) },
  };
}
