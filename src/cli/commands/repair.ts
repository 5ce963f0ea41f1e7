/**
 * `station repair-import`: the Linux RepairImport (reference §6.7). Offline from the station: it
 * talks to the customer's storage account only, through the same storage code as the agent.
 * Credentials come from files or the environment, never from the command line.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import pino from "pino";
import type { Credential } from "../../formats/manifest.js";
import { RepairInputError } from "../../repair/import-plan.js";
import { type RepairSummary, repairImport } from "../../repair/import-run.js";
import { scrubSecrets } from "../../secrets.js";
import { AzureBlobPort } from "../../storage/azure-blob-port.js";
import { JobStorage } from "../../storage/blob-access.js";
import { CliError, EXIT_FAILED } from "../errors.js";
import { collect, print } from "./common.js";

interface RepairFlags {
  log?: string;
  logUrl?: string;
  source: string[];
  progress: string;
  pathMap?: string;
  accountKeyFile?: string;
  sasFile?: string;
  account?: string;
  blobEndpoint?: string;
  job?: string;
  json?: boolean;
}

const AZURE = "https://{account}.blob.core.windows.net";

/** The credential from a file or the environment (STATION_ACCOUNT_KEY, STATION_CONTAINER_SAS). */
function credentialFrom(o: RepairFlags): Credential {
  const sas = o.sasFile ? readFileSync(o.sasFile, "utf8").trim() : process.env.STATION_CONTAINER_SAS?.trim();
  const key = o.accountKeyFile
    ? readFileSync(o.accountKeyFile, "utf8").trim()
    : process.env.STATION_ACCOUNT_KEY?.trim();
  if (o.sasFile && o.accountKeyFile)
    throw new CliError("repair-import: give --sas-file or --account-key-file, not both.");
  if (sas && (o.sasFile || !key)) {
    const q = sas.indexOf("?");
    if (q <= 0)
      throw new CliError(
        `repair-import: ${o.sasFile ?? "STATION_CONTAINER_SAS"} must hold <container>?<sas-token>.`,
      );
    return { kind: "containerSas", container: sas.slice(0, q), token: sas.slice(q + 1) };
  }
  if (key) return { kind: "accountKey", key };
  throw new CliError(
    "repair-import: the storage account's credential is required: --account-key-file, --sas-file, or STATION_ACCOUNT_KEY / STATION_CONTAINER_SAS in the environment.",
  );
}

/** Account, endpoint template, container and blob of a log blob's URL (Azure or path-style Azurite). */
export function parseLogUrl(url: string): {
  account: string;
  template: string;
  container: string;
  name: string;
} {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`repair-import: --log-url ${url} is not a URL; give the errorLogUri of Get Job.`);
  }
  if (u.search)
    throw new CliError("repair-import: give --log-url without a SAS token; put the SAS in --sas-file.");
  const parts = u.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const azure = /^([a-z0-9]{3,24})\.blob\.core\.windows\.net$/.exec(u.hostname);
  const [account, rest] = azure ? [azure[1]!, parts] : [parts[0] ?? "", parts.slice(1)];
  if (!account || rest.length < 2)
    throw new CliError(
      `repair-import: --log-url ${url} names no container and blob; give the errorLogUri of Get Job.`,
    );
  const template = azure ? AZURE : `${u.protocol}//${u.host}/{account}`;
  return { account, template, container: rest[0]!, name: rest.slice(1).join("/") };
}

function portFor(account: string, template: string, credential: Credential): AzureBlobPort {
  return new AzureBlobPort(
    new JobStorage({ endpoint: { template }, storageAccountId: `/storageAccounts/${account}`, credential }),
  );
}

async function readLog(o: RepairFlags, credential: Credential) {
  if (!!o.log === !!o.logUrl)
    throw new CliError("repair-import: give the copy log as --log <file> or --log-url <url>, one of them.");
  if (o.log) {
    const account = o.account;
    if (!account)
      throw new CliError("repair-import: with --log <file>, give --account <storage account name>.");
    return {
      log: readFileSync(o.log),
      name: o.log,
      port: portFor(account, o.blobEndpoint ?? AZURE, credential),
    };
  }
  const u = parseLogUrl(o.logUrl!);
  const port = portFor(o.account ?? u.account, o.blobEndpoint ?? u.template, credential);
  const ref = { container: u.container, name: u.name };
  const signal = AbortSignal.timeout(120_000);
  const props = await port.getProperties(ref, signal);
  return { log: await port.readRange(ref, 0, props.length, signal), name: u.name, port };
}

function progressBar(done: number, total: number): void {
  const width = 30;
  const f = total ? done / total : 1;
  const bar = "#".repeat(Math.round(f * width)).padEnd(width, "-");
  process.stderr.write(
    `\r[${bar}] ${(f * 100).toFixed(0).padStart(3)}% ${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB`,
  );
}

function render(s: RepairSummary, pathMap: string): string {
  const lines = [
    `repaired: ${s.repaired.length}, already fine: ${s.fine.length}, unresolved: ${s.unresolved.length}${s.kept.length ? `, kept (no-overwrite): ${s.kept.length}` : ""}${s.failed.length ? `, failed: ${s.failed.length}` : ""}`,
    `sent: ${s.sent.chunks} blocks/ranges, ${s.sent.bytes} bytes`,
  ];
  for (const b of s.repaired) lines.push(`  repaired  ${b}`);
  for (const b of s.fine) lines.push(`  fine      ${b}`);
  for (const b of s.kept)
    lines.push(`  kept      ${b} (the name holds other data; disposition no-overwrite)`);
  for (const u of s.unresolved) lines.push(`  unresolved ${u.filePath}: ${u.why}`);
  for (const f of s.failed) lines.push(`  failed    ${f.blobPath}: ${f.reason}`);
  if (s.unresolved.length)
    lines.push(
      `Next: in ${pathMap}, add a TAB and the file's real location after each path, then run the same command again.`,
    );
  return lines.join("\n");
}

export function registerRepairImportCommand(program: Command): void {
  program
    .command("repair-import")
    .description("customer tool: re-send what a copy log says failed, from the original files (RepairImport)")
    .option("--log <file>", "the drive's copy log (error or verbose), as a file")
    .option("--log-url <url>", "the copy log's URL (errorLogUri of Get Job); read with the credential")
    .requiredOption("--source <dir>", "a directory holding the original files (repeat for more)", collect)
    .requiredOption("--progress <file>", "progress file, one per drive: new to start, the same to resume")
    .option(
      "--path-map <file>",
      "paths not found: one per line; add a TAB and the real location (default: <progress>.paths)",
    )
    .option("--account-key-file <file>", "a file holding the storage account key")
    .option("--sas-file <file>", "a file holding <container>?<sas-token>")
    .option("--account <name>", "the storage account (default: from --log-url)")
    .option(
      "--blob-endpoint <template>",
      "blob endpoint, {account} replaced (default: from --log-url, else Azure)",
    )
    .option("--job <name>", "the job's name, for logs without block IDs (default: from the log's name)")
    .option("--json", "print the summary as JSON")
    .action(async (o: RepairFlags) => {
      const credential = credentialFrom(o);
      const { log, name, port } = await readLog(o, credential);
      const pathMap = o.pathMap ?? `${o.progress}.paths`;
      const tty = process.stderr.isTTY && !o.json;
      const logger = pino(
        {
          level: "warn",
          hooks: {
            logMethod: (args, method) =>
              method.apply(logger, args.map((a) => (typeof a === "string" ? scrubSecrets(a) : a)) as never),
          },
        },
        pino.destination(2),
      );
      let summary: RepairSummary;
      try {
        summary = await repairImport({
          log,
          sources: o.source,
          progressFile: o.progress,
          pathMapFile: pathMap,
          port,
          logger,
          logName: name,
          ...(o.job ? { jobName: o.job } : {}),
          ...(tty ? { onProgress: progressBar } : {}),
        });
      } catch (e) {
        if (e instanceof RepairInputError) throw new CliError(`repair-import: ${e.message}`);
        throw e;
      } finally {
        if (tty) process.stderr.write("\n");
      }
      print(o.json ? JSON.stringify({ ...summary, pathMap }, null, 2) : render(summary, pathMap));
      if (summary.unresolved.length || summary.failed.length)
        throw new CliError(
          `repair-import: ${summary.unresolved.length} unresolved, ${summary.failed.length} failed; the rest is done.${summary.unresolved.length ? ` Fill in ${pathMap} and run again.` : ""}`,
          EXIT_FAILED,
        );
    });
}
