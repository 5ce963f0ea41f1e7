/**
 * `station prepare`: lay out an import drive and write its manifest (offline, the Linux
 * PrepImport). Credentials come from files, never from the command line.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type Command, Option } from "commander";
import type { Credential } from "../../formats/manifest.js";
import { IMPORT_DISPOSITIONS, type ImportDisposition } from "../../formats/status.js";
import { PrepareError, prepareDrive } from "../../prepare/prepare-drive.js";
import { positiveInt, print } from "./common.js";
import { prepareMany } from "./prepare-many.js";

interface PrepareFlags {
  drive?: string;
  source?: string;
  session: string;
  dest?: string;
  driveId?: string;
  dataset?: string;
  driveset?: string;
  journalDir?: string;
  resume?: boolean;
  abort?: boolean;
  sasFile?: string;
  accountKeyFile?: string;
  blobType: "BlockBlob" | "PageBlob";
  disposition: ImportDisposition;
  skipWrite?: boolean;
  append?: boolean;
  blockSize?: number;
  out?: string;
  metadataFile?: string;
  propertiesFile?: string;
}

function credentialFrom(o: { sasFile?: string; accountKeyFile?: string }): Credential {
  if (o.sasFile && o.accountKeyFile)
    throw new PrepareError("prepare: give --sas-file or --account-key-file, not both.");
  if (o.sasFile) {
    const sas = readFileSync(o.sasFile, "utf8").trim();
    const q = sas.indexOf("?");
    if (q <= 0) throw new PrepareError(`prepare: ${o.sasFile} must hold <container>?<sas-token>.`);
    return { kind: "containerSas", container: sas.slice(0, q), token: sas.slice(q + 1) };
  }
  if (o.accountKeyFile) return { kind: "accountKey", key: readFileSync(o.accountKeyFile, "utf8").trim() };
  throw new PrepareError(
    "prepare: --sas-file or --account-key-file is required (the manifest carries the credential).",
  );
}

export function registerPrepareCommand(program: Command): void {
  program
    .command("prepare")
    .description("offline: lay out an import drive and write its manifest (the Linux PrepImport)")
    .option("--drive <dir>", "the mounted target drive (one drive)")
    .option("--source <path>", "a directory or file to copy (one drive)")
    .requiredOption("--session <id>", "session id: 3-30 letters, digits, '_', '-' or '#'")
    .option("--dest <container/prefix/>", "blob destination: container/prefix/ or container/blob (one drive)")
    .option("--drive-id <serial>", "the drive's serial number (lsblk -dno SERIAL /dev/sdX) (one drive)")
    .option("--dataset <csv>", "many drives (WAImportExport v2): the sources, one per row")
    .option("--driveset <csv>", "many drives: the mounted drives, one per row")
    .option(
      "--journal-dir <dir>",
      "many drives: where the session journal lives (default: next to the driveset)",
    )
    .option("--resume", "many drives: finish an interrupted session")
    .option("--abort", "many drives: remove an interrupted session from its drives")
    .option("--sas-file <file>", "a file holding <container>?<sas-token>")
    .option("--account-key-file <file>", "a file holding the storage account key")
    .addOption(
      new Option("--blob-type <type>", "blob type").choices(["BlockBlob", "PageBlob"]).default("BlockBlob"),
    )
    .addOption(
      new Option("--disposition <d>", "when the blob exists")
        .choices([...IMPORT_DISPOSITIONS])
        .default("rename"),
    )
    .option("--skip-write", "the data is already on the drive: index it, copy nothing")
    .option("--append", "add a session to the drive's existing manifest")
    .option("--block-size <bytes>", "block size of the manifest", positiveInt("--block-size"))
    .option("--out <file>", "also write the drive entry for the job's driveList to this file")
    .option("--metadata-file <file>", "blob metadata file (XML) for every blob of the session")
    .option("--properties-file <file>", "blob properties file (XML) for every blob of the session")
    .action(async (o: PrepareFlags) => {
      if (o.dataset || o.driveset) return prepareMany(o, () => credentialFrom(o));
      for (const [flag, v] of [
        ["--drive <dir>", o.drive],
        ["--source <path>", o.source],
        ["--dest <container/prefix/>", o.dest],
        ["--drive-id <serial>", o.driveId],
      ] as const)
        if (!v)
          throw new PrepareError(
            `prepare: required option '${flag}' not specified (or --dataset and --driveset for many drives). See 'station prepare --help'.`,
          );
      const result = await prepareDrive({
        driveRoot: o.drive!,
        source: o.source!,
        sessionId: o.session,
        destination: o.dest!,
        driveId: o.driveId!,
        credential: credentialFrom(o),
        blobType: o.blobType,
        disposition: o.disposition,
        skipWrite: o.skipWrite ?? false,
        append: o.append ?? false,
        ...(o.blockSize ? { blockSize: o.blockSize } : {}),
        ...(o.metadataFile ? { metadataFile: o.metadataFile } : {}),
        ...(o.propertiesFile ? { propertiesFile: o.propertiesFile } : {}),
      });
      const entry = {
        driveId: result.driveId,
        manifestFile: result.manifestFile,
        manifestHash: result.manifestHash,
      };
      for (const s of result.skipped) process.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
      print(
        `${result.blobs} files, ${result.bytes} bytes prepared on drive ${result.driveId}.\nDrive entry for the job's driveList:\n${JSON.stringify(entry, null, 2)}`,
      );
      if (o.out) writeFileSync(o.out, `${JSON.stringify(entry, null, 2)}\n`);
    });
}
