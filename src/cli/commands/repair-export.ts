/**
 * `station repair-export`: RepairExport on Linux. The storage account key (or a SAS) comes from a
 * file or the environment, never from the command line.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { checkFilePath } from "../../formats/names.js";
import { type RepairExportReport, repairExport } from "../../repair/export-repair.js";
import { AzureExportSource } from "../../storage/azure-export-source.js";
import { CliError, EXIT_FAILED } from "../errors.js";
import { emit } from "./common.js";

interface Flags {
  copyLog: string;
  drive: string;
  account: string;
  accountKeyFile?: string;
  sasFile?: string;
  endpoint: string;
  manifest?: string | boolean;
  json?: boolean;
}

const read = (file: string, what: string): Buffer => {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CliError(
      `repair-export: cannot read the ${what} ${file} (${(e as NodeJS.ErrnoException).code}). Next: check the path.`,
    );
  }
};

/** The credential: the account key, or a SAS with read and list rights on the exported containers. */
function credential(o: Flags): { accountKey: string } | { sas: string } {
  const sas = o.sasFile
    ? read(o.sasFile, "SAS file").toString("utf8").trim()
    : o.accountKeyFile
      ? undefined
      : process.env.AZURE_STORAGE_SAS_TOKEN?.trim();
  if (sas) {
    if (!/(^|[?&])sig=/.test(sas))
      throw new CliError(
        "repair-export: the SAS has no signature (sig=). Next: copy the whole SAS token, from 'sv=' to the end.",
      );
    return { sas };
  }
  const key = o.accountKeyFile
    ? read(o.accountKeyFile, "account key file").toString("utf8").trim()
    : process.env.AZURE_STORAGE_KEY?.trim();
  if (!key)
    throw new CliError(
      "repair-export: a credential is needed: --account-key-file FILE (or AZURE_STORAGE_KEY), or --sas-file FILE (or AZURE_STORAGE_SAS_TOKEN). See 'station repair-export --help'.",
    );
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key))
    throw new CliError(
      "repair-export: the account key is not Base64. Next: copy it again from the portal (Access keys).",
    );
  return { accountKey: key };
}

function render(r: RepairExportReport): string {
  const failed = r.outcomes.filter((x) => x.result === "failed");
  return [
    `${r.logged} files named by the copy log; ${r.repaired} repaired, ${r.fine} already fine, ${r.failed} failed.`,
    ...failed.map((f) => `FAILED ${f.filePath} ${f.what}: ${f.reason}`),
  ].join("\n");
}

export function registerRepairExportCommand(program: Command): void {
  program
    .command("repair-export")
    .description(
      "offline: fetch what an export's copy log names as failed into the export drive (RepairExport)",
    )
    .requiredOption("--copy-log <file>", "the export copy log (verbose or error)")
    .requiredOption("--drive <dir>", "the export drive's root (mounted), or a copy of it")
    .requiredOption("--account <name>", "the storage account the export read")
    .option("--account-key-file <file>", "a file holding the account key (default: AZURE_STORAGE_KEY)")
    .option(
      "--sas-file <file>",
      "instead of the key: a file holding a SAS with read and list rights (default: AZURE_STORAGE_SAS_TOKEN)",
    )
    .option(
      "--endpoint <template>",
      "blob endpoint; {account} is replaced",
      "https://{account}.blob.core.windows.net",
    )
    .option(
      "--manifest [file]",
      "then check every block and file the drive's manifest lists (default \\DriveManifest.xml on the drive)",
    )
    .option("--json", "print the outcome of every repair as JSON")
    .action(async (o: Flags) => {
      if (!/^[a-z0-9]{3,24}$/.test(o.account))
        throw new CliError(
          `repair-export: --account '${o.account}' is not a storage account name (3-24 lowercase letters and digits).`,
        );
      const source = new AzureExportSource({
        endpoint: { template: o.endpoint },
        storageAccountId: `/subscriptions/-/resourceGroups/-/providers/Microsoft.Storage/storageAccounts/${o.account}`,
        ...credential(o),
      });
      let manifest: Buffer | undefined;
      if (o.manifest === true) {
        const fp = checkFilePath("\\DriveManifest.xml");
        manifest = read(join(o.drive, ...(fp.ok ? fp.segments : [])), "manifest");
      } else if (typeof o.manifest === "string") manifest = read(o.manifest, "manifest");
      const report = await repairExport({
        copyLog: read(o.copyLog, "copy log"),
        driveRoot: o.drive,
        source,
        ...(manifest ? { manifest } : {}),
        ...(o.json ? {} : { onLine: (l: string) => process.stderr.write(`${l}\n`) }),
      });
      emit(o.json, report, () => render(report));
      if (report.failed > 0)
        throw new CliError(
          `repair-export: ${report.failed} repair(s) failed on ${o.drive}. Next: see the reasons above; a blob that changed since the export needs a new export job.`,
          EXIT_FAILED,
        );
    });
}
