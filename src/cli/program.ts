/**
 * The `station` command tree (commander). Building it has no side effects, so tests can walk
 * every command; main.ts parses argv with it and turns failures into one-line errors.
 */
import { Command } from "commander";
import { registerActionCommands } from "./commands/actions.js";
import { registerAttachedCommand } from "./commands/attached.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerExportCommands } from "./commands/export.js";
import { registerPrepareCommand } from "./commands/prepare.js";
import { registerReadCommands } from "./commands/read.js";
import { registerRepairImportCommand } from "./commands/repair.js";
import { registerRepairExportCommand } from "./commands/repair-export.js";
import { registerVerifyDriveCommand } from "./commands/verify-drive.js";
import { oneLine } from "./errors.js";

export function buildProgram(version = "0.0.0"): Command {
  const program = new Command("station")
    .description("Operate a drive-station copy station: jobs, drives, the dock, and drive preparation.")
    .version(version, "-V, --version")
    .option("--url <url>", "the agent's API (default: DRIVE_STATION_URL or http://127.0.0.1:7480)")
    .option(
      "--token-file <file>",
      "read the operator token from this file (default: DRIVE_STATION_TOKEN_FILE, DRIVE_STATION_TOKEN, or DATA_DIR/api-tokens.json)",
    )
    .option(
      "--token <token>",
      "operator token on the command line: avoid it, ps and shell history show it; use --token-file",
    )
    .option("--ca <cert.pem>", "trust this certificate (a station with a self-signed certificate)")
    .option("--data-dir <dir>", "the running agent's data directory, for its generated tokens", "data")
    .option("--subscription <id>", "pick the job among jobs of the same name")
    .option("--resource-group <name>", "pick the job among jobs of the same name")
    .addHelpText(
      "after",
      "\nJOB is a job name; add --subscription and --resource-group when the name is not unique.\nThe token: --token-file FILE, or the environment (DRIVE_STATION_TOKEN_FILE, DRIVE_STATION_TOKEN), or the\nrunning agent's DATA_DIR/api-tokens.json; --token puts it where ps and shell history show it.\nFirst time here? Start the agent ('npm start'), then run 'station demo' as root.",
    );
  registerReadCommands(program);
  registerAttachedCommand(program);
  registerActionCommands(program);
  registerExportCommands(program);
  registerPrepareCommand(program);
  registerRepairImportCommand(program);
  registerVerifyDriveCommand(program);
  registerRepairExportCommand(program);
  registerDemoCommand(program);
  for (const cmd of allCommands(program)) {
    const path = commandPath(cmd);
    cmd.exitOverride();
    cmd.configureOutput({ outputError: (message, write) => write(`${oneLine(message, path)}\n`) });
  }
  return program;
}

export function allCommands(root: Command): Command[] {
  return [root, ...root.commands.flatMap((c) => allCommands(c))];
}

export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}
