/**
 * `station verify-drive DIR`: the customer's check of a drive against its manifest, every byte
 * read from the medium. Exit 0 only when everything matches; otherwise the report names each bad
 * file and chunk (`--json`: as JSON) and the exit code is 1.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { md5Hex } from "../../formats/blob-properties.js";
import { type VerifyReport, verifyDrive } from "../../verify/verify-drive.js";
import { CliError, EXIT_FAILED } from "../errors.js";
import { emit } from "./common.js";

interface Flags {
  manifestHash?: string;
  entry?: string;
  manifestFile?: string;
  driveId?: string;
  json?: boolean;
}

interface Entry {
  driveId?: string;
  manifestFile?: string;
  manifestHash?: string;
}

/** The driveList entry: one object, or the array `prepare --out` writes (one per drive). */
function entryFrom(file: string, driveId: string | undefined): Entry[] {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new CliError(
      `verify-drive: ${file} is not a driveList entry (${(e as Error).message}). Next: give the file 'station prepare --out' wrote, or --manifest-hash.`,
    );
  }
  const all = (Array.isArray(data) ? data : [data]) as Entry[];
  return driveId ? all.filter((e) => e.driveId === driveId) : all;
}

/** One entry: the only one, or (several drives in one file) the one whose hash the drive's manifest has. */
function pickEntry(entries: Entry[], dir: string, manifestFile = "\\DriveManifest.xml"): Entry | undefined {
  if (entries.length <= 1) return entries[0];
  let onDisk: string | undefined;
  try {
    onDisk = md5Hex(readFileSync(join(dir, ...manifestFile.split("\\").filter(Boolean))));
  } catch {
    return undefined;
  }
  return entries.find((e) => e.manifestHash?.toUpperCase() === onDisk);
}

export function renderVerify(r: VerifyReport): string {
  const lines = [
    `drive ${r.manifest.driveId ?? "?"} at ${r.driveRoot} (${r.manifest.kind ?? "?"} manifest ${r.manifest.file})`,
    `read from the medium: ${r.checked.blobs} files, ${r.checked.chunks} blocks and page ranges, ${r.checked.infoFiles} metadata/properties files, ${r.checked.bytes} bytes`,
  ];
  for (const p of r.problems) {
    const what = p.expected ? ` (expected ${p.expected}, found ${p.actual})` : "";
    lines.push(`BAD ${p.filePath}${p.blobPath ? ` -> ${p.blobPath}` : ""}: ${p.message}${what}`);
  }
  if (r.problemCount > r.problems.length)
    lines.push(`… and ${r.problemCount - r.problems.length} more problems`);
  lines.push(r.ok ? "OK: every byte matches the manifest." : `FAILED: ${r.problemCount} problem(s).`);
  return lines.join("\n");
}

export function registerVerifyDriveCommand(program: Command): void {
  program
    .command("verify-drive")
    .description("offline: check a mounted drive against its manifest, reading every byte from the medium")
    .argument("<dir>", "where the drive is mounted")
    .option("--manifest-hash <md5>", "the job's manifestHash for this drive")
    .option("--entry <file>", "the driveList entry (or 'station prepare --out' file) holding manifestHash")
    .option("--drive-id <serial>", "with --entry holding several drives: this drive's driveId")
    .option("--manifest-file <path>", "the manifest's path on the drive", "\\DriveManifest.xml")
    .option("--json", "print the report as JSON")
    .action(async (dir: string, o: Flags) => {
      let manifestHash = o.manifestHash;
      let manifestFile = o.manifestFile;
      let driveId: string | undefined;
      if (o.entry) {
        const entry = pickEntry(entryFrom(o.entry, o.driveId), dir, manifestFile);
        if (!entry?.manifestHash)
          throw new CliError(
            `verify-drive: ${o.entry} holds no manifestHash for the drive at ${dir}. Next: pass --drive-id, or --manifest-hash from the job's driveList.`,
          );
        manifestHash = entry.manifestHash;
        if (entry.manifestFile) manifestFile = entry.manifestFile;
        driveId = entry.driveId;
      }
      if (!manifestHash)
        throw new CliError(
          "verify-drive: give the job's manifestHash with --manifest-hash or --entry FILE. See 'station verify-drive --help'.",
        );
      if (!/^[0-9A-Fa-f]{32}$/.test(manifestHash))
        throw new CliError(
          `verify-drive: --manifest-hash '${manifestHash}' is not a hex MD5 (32 hex digits).`,
        );
      const report = await verifyDrive({
        driveRoot: dir,
        manifestHash,
        ...(manifestFile ? { manifestFile } : {}),
        ...(driveId ? { driveId } : {}),
      });
      emit(o.json, report, () => renderVerify(report));
      if (!report.ok)
        throw new CliError(
          `verify-drive: ${report.problemCount} problem(s) on the drive at ${dir}. Next: fix or replace the named files (an import drive: prepare it again; an export drive: station repair-export).`,
          EXIT_FAILED,
        );
    });
}
