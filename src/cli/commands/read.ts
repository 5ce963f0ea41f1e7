/** Read commands: jobs, drives, show, notices. Each takes --json. */
import type { Command } from "commander";
import { bar, jobView, table } from "../render.js";
import type { Notice } from "../views.js";
import { connect, emit, positiveInt } from "./common.js";

/** Commands that only read (each takes --json). */
export const READ_COMMANDS = ["jobs", "drives", "show", "notices", "attached"] as const;

export function registerReadCommands(program: Command): void {
  program
    .command("jobs")
    .description("list jobs: state, percent complete, drives")
    .option("--json", "print the jobs as JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const jobs = await connect(cmd).listJobs();
      emit(opts.json, jobs, () =>
        jobs.length
          ? table([
              ["JOB", "TYPE", "STATE", "PROGRESS", "DRIVES", "SUBSCRIPTION/RESOURCE GROUP"],
              ...jobs.map((j) => [
                j.name,
                j.properties.jobType,
                j.properties.state,
                bar(j.properties.percentComplete),
                String(j.properties.driveList.length),
                `${j.station.subscriptionId}/${j.station.resourceGroup}`,
              ]),
            ])
          : "no jobs",
      );
    });

  program
    .command("drives")
    .description("list every drive of every job")
    .option("--json", "print the drives as JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const drives = (await connect(cmd).listJobs()).flatMap((j) =>
        j.properties.driveList.map((d) => ({
          job: j.name,
          subscriptionId: j.station.subscriptionId,
          resourceGroup: j.station.resourceGroup,
          ...d,
        })),
      );
      emit(opts.json, drives, () =>
        drives.length
          ? table([
              ["DRIVE", "JOB", "STATE", "PROGRESS", "BYTES"],
              ...drives.map((d) => [
                d.driveId,
                d.job,
                d.state,
                bar(d.percentComplete),
                String(d.bytesSucceeded),
              ]),
            ])
          : "no drives",
      );
    });

  program
    .command("show")
    .description("the Get Job view, with faults, extra and held drives")
    .argument("<job>", "job name")
    .option("--json", "print the job as JSON")
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const { job } = await connect(cmd).findJob(name);
      emit(opts.json, job, () => jobView(job));
    });

  program
    .command("notices")
    .description("what needs a person, newest first")
    .option("--limit <n>", "how many (1-1000)", positiveInt("--limit", 1000), 50)
    .option("--json", "print the notices as JSON")
    .action(async (opts: { json?: boolean; limit: number }, cmd: Command) => {
      const { value } = await connect(cmd).call<{ value: Notice[] }>(
        "GET",
        `/station/v1/notices?limit=${opts.limit}`,
      );
      emit(opts.json, value, () =>
        value.length
          ? value.map((n) => `${n.at}  ${n.code.padEnd(18)} ${n.message}`).join("\n")
          : "no notices",
      );
    });
}
