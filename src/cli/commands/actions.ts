/** Operator actions on a job: each prints the job afterwards (or its JSON with --json). */
import type { Command } from "commander";
import { jobView } from "../render.js";
import type { Job } from "../views.js";
import { collect, connect, emit, positiveInt } from "./common.js";

type JsonOpt = { json?: boolean };

async function act(cmd: Command, name: string, suffix: string, body: unknown, json?: boolean) {
  const client = connect(cmd);
  const { path } = await client.findJob(name);
  const job = await client.call<Job>("POST", `${path}${suffix}`, body);
  emit(json, job, () => jobView(job));
}

/** Commands that act on a job (each prints the outcome, or its JSON with --json). */
export const ACTION_COMMANDS = [
  "check-in",
  "arrived",
  "fault",
  "resolve",
  "ship-back",
  "close",
  "preview-export",
  "confirm-export-drive",
] as const;

export function registerActionCommands(program: Command): void {
  program
    .command("check-in")
    .description("a package arrived at the dock: record its tracking number and drives")
    .argument("<job>", "job name")
    .requiredOption("--tracking <number>", "the package's tracking number")
    .option("--drive <id>", "a drive in the package (repeat for each)", collect, [])
    .option("--json", "print the job as JSON")
    .action(async (name: string, o: JsonOpt & { tracking: string; drive: string[] }, cmd: Command) =>
      act(cmd, name, "/packages", { trackingNumber: o.tracking, driveIds: o.drive }, o.json),
    );

  program
    .command("arrived")
    .description("one drive turned up (plugged in, or a later package): NeverReceived -> Received")
    .argument("<job>", "job name")
    .argument("<drive>", "drive id")
    .option("--tracking <number>", "the package it came in")
    .option("--json", "print the job as JSON")
    .action(async (name: string, drive: string, o: JsonOpt & { tracking?: string }, cmd: Command) =>
      act(
        cmd,
        name,
        `/drives/${encodeURIComponent(drive)}/arrived`,
        o.tracking ? { trackingNumber: o.tracking } : {},
        o.json,
      ),
    );

  program
    .command("fault")
    .description("put the job, or one drive, in Faulted")
    .argument("<job>", "job name")
    .requiredOption("--reason <text>", "why (shown to the operator and kept on the job)")
    .option("--drive <id>", "fault this drive only")
    .option("--json", "print the job as JSON")
    .action(async (name: string, o: JsonOpt & { reason: string; drive?: string }, cmd: Command) =>
      act(cmd, name, "/fault", { reason: o.reason, ...(o.drive ? { driveId: o.drive } : {}) }, o.json),
    );

  program
    .command("resolve")
    .description("return a faulted job or drive to the state it left")
    .argument("<job>", "job name")
    .option("--drive <id>", "resolve this drive only")
    .option("--json", "print the job as JSON")
    .action(async (name: string, o: JsonOpt & { drive?: string }, cmd: Command) =>
      act(cmd, name, "/resolve", o.drive ? { driveId: o.drive } : {}, o.json),
    );

  program
    .command("ship-back")
    .description("the job's drives went back to the customer")
    .argument("<job>", "job name")
    .requiredOption("--carrier <name>", "carrier name")
    .requiredOption("--tracking <number>", "the return package's tracking number")
    .option("--drive-count <n>", "drives in the return package", positiveInt("--drive-count", 1000))
    .option("--json", "print the job as JSON")
    .action(
      async (
        name: string,
        o: JsonOpt & { carrier: string; tracking: string; driveCount?: number },
        cmd: Command,
      ) =>
        act(
          cmd,
          name,
          "/shipBack",
          {
            carrierName: o.carrier,
            trackingNumber: o.tracking,
            ...(o.driveCount !== undefined ? { driveCount: o.driveCount } : {}),
          },
          o.json,
        ),
    );

  program
    .command("close")
    .description("close an overdue job whose customer did not answer for 30 days")
    .argument("<job>", "job name")
    .option("--json", "print the job as JSON")
    .action(async (name: string, o: JsonOpt, cmd: Command) => act(cmd, name, "/close", {}, o.json));
}
