/** Operator commands of the export engine: preview a job's selection, confirm a drive that holds data. */
import type { Command } from "commander";
import type { PreviewReport } from "../../transfer/export/planner.js";
import { formatPreview } from "../export.js";
import { connect, emit } from "./common.js";

export function registerExportCommands(program: Command): void {
  program
    .command("preview-export")
    .description("how many drives an export job needs, and its selection (fixes the selection)")
    .argument("<job>", "export job name")
    .option("--drive-size <size>", "the drives' size, e.g. 2TB or 500GB")
    .option("--json", "print the report as JSON")
    .action(async (name: string, o: { driveSize?: string; json?: boolean }, cmd: Command) => {
      const client = connect(cmd);
      const { path } = await client.findJob(name);
      const report = await client.call<PreviewReport>(
        "POST",
        `${path}/exportPreview`,
        o.driveSize ? { driveSize: o.driveSize } : {},
      );
      emit(o.json, report, () => formatPreview(report));
    });

  program
    .command("confirm-export-drive")
    .description(
      "write an export onto a drive that already holds data (after checking it is the right drive)",
    )
    .argument("<job>", "export job name")
    .argument("<drive>", "drive id")
    .option("--json", "print the answer as JSON")
    .action(async (name: string, drive: string, o: { json?: boolean }, cmd: Command) => {
      const client = connect(cmd);
      const { path } = await client.findJob(name);
      const r = await client.call<{ message: string }>(
        "POST",
        `${path}/drives/${encodeURIComponent(drive)}/confirmExport`,
        {},
      );
      emit(o.json, r, () => r.message);
    });
}
