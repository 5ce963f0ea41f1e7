/**
 * `station demo`: a first import, end to end, against a running agent on its embedded default.
 * It builds a drive image with a real filesystem and `station prepare`'s logic, creates and ships
 * an import job through the ARM API with the customer token, plugs the drive in (attaches the
 * image as a loop device in a directory the agent watches), shows live progress until the drive
 * is done, then prints the Get Job view and where the blobs are.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { attach, detach, type Fs, preparedDrive } from "../../staging/images.js";
import { DEV_ACCOUNT, DEV_ACCOUNT_KEY } from "../../storage/embedded-azurite.js";
import { readTokenFile, type StationClient } from "../client.js";
import { watchAttached } from "../commands/attached.js";
import { CliError, EXIT_FAILED } from "../errors.js";
import { bytes, duration, jobView } from "../render.js";
import type { Attached, Job } from "../views.js";

/** The subscription the agent's generated customer token is granted when it names none. */
export const DEMO_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";
const FINISHED = new Set(["done", "failed", "error", "processed", "conflict", "unknown", "extra", "held"]);

export interface DemoOptions {
  dataDir: string;
  /** The directory the agent watches for loop images (drives.loopImageDirs). */
  imagesDir: string;
  dataMiB: number;
  fs: Fs;
  account: string;
  accountKeyFile?: string;
  /** Blob endpoint, `{account}` replaced: where the embedded Azurite serves. */
  blobEndpoint: string;
  timeoutSeconds: number;
  keep: boolean;
  say: (line: string) => void;
}

interface ArmJob {
  name: string;
  properties: {
    state: string;
    percentComplete?: number;
    driveList?: {
      driveId: string;
      state: string;
      bytesSucceeded?: number;
      copyStatus?: string;
      verboseLogUri?: string;
    }[];
  };
}

function needRoot(): void {
  if (process.getuid?.() !== 0)
    throw new CliError(
      "station demo needs root: it makes a drive image, attaches it as a loop device and the agent mounts it. Next: sudo npm run station -- demo",
      EXIT_FAILED,
    );
  for (const tool of ["losetup", "sfdisk", "partx", "mkfs.ext4"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      throw new CliError(
        `station demo needs ${tool}. Next: apt-get install util-linux fdisk e2fsprogs, then run it again.`,
        EXIT_FAILED,
      );
    }
  }
}

/** The customer token and the subscription it may use (the agent's generated pair, by default). */
function customerCredentials(dataDir: string): { token?: string; subscription: string } {
  const file = readTokenFile(dataDir);
  const customer = file?.tokens.find((t) => t.role === "customer") as
    | { token: string; scopes?: { subscriptionId?: string }[] }
    | undefined;
  const scoped = customer?.scopes?.find((s) => s.subscriptionId)?.subscriptionId;
  return { ...(customer ? { token: customer.token } : {}), subscription: scoped ?? DEMO_SUBSCRIPTION };
}

/** A few files of a customer's shape: photos, a document tree, one large video. */
function sampleFiles(dataMiB: number): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    "README.txt": Buffer.from("A drive-station demo drive: every file here lands as a block blob.\n"),
    "docs/report-2026.txt": Buffer.from("Quarterly figures\n".repeat(2000)),
  };
  const photoBytes = 512 * 1024;
  for (let i = 1; i <= 8; i++)
    files[`photos/beach-${String(i).padStart(4, "0")}.jpg`] = randomBytes(photoBytes);
  const rest = Math.max(1, dataMiB * 1024 * 1024 - 8 * photoBytes);
  files["video/holiday.mp4"] = randomBytes(rest);
  return files;
}

export async function runDemo(client: StationClient, o: DemoOptions): Promise<void> {
  const { say } = o;
  needRoot();
  const started = Date.now();
  const elapsed = () => duration((Date.now() - started) / 1000);
  await client.call("GET", "/station/v1/attached"); // the agent answers, with the operator token

  const stamp = new Date().toISOString().replace(/[-:T]/g, "").replace(/\..*$/, "");
  const jobName = `demo-${stamp}`;
  const driveId = `DEMO${stamp}`;
  const resourceGroup = "demo";
  const container = "demo";
  const prefix = `${jobName}/`;
  const { token: customerToken, subscription } = customerCredentials(o.dataDir);
  const accountKey = o.accountKeyFile ? readFileSync(o.accountKeyFile, "utf8").trim() : DEV_ACCOUNT_KEY;

  mkdirSync(o.imagesDir, { recursive: true });
  const imagesDir = realpathSync(o.imagesDir);
  // Built outside the watched directory: formatting attaches the image, which must not look plugged in.
  const work = join(imagesDir, "..", `demo-work-${stamp}`);
  mkdirSync(work, { recursive: true });
  const shelf = join(work, `${driveId}.img`);
  const plugged = join(imagesDir, `${driveId}.img`);
  let device: string | undefined;
  try {
    say(
      `[1/5] Building drive ${driveId}: ${o.fs} image, ${o.dataMiB} MiB of sample files, prepared with 'station prepare' ...`,
    );
    const entry = await preparedDrive({
      image: shelf,
      fs: o.fs,
      sizeMiB: Math.ceil(o.dataMiB * 1.3) + 40,
      driveId,
      accountKey,
      workDir: work,
      sessions: [{ files: sampleFiles(o.dataMiB), dest: `${container}/${prefix}` }],
    });
    say(`      manifest ${entry.manifestFile}, hash ${entry.manifestHash}  (${elapsed()})`);

    const arm = `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/providers/Microsoft.ImportExport/jobs/${jobName}?api-version=2021-01-01`;
    say(
      `[2/5] Creating import job ${jobName} in subscription ${subscription} (PUT ${arm.split("?")[0]}) ...`,
    );
    await client.call(
      "PUT",
      arm,
      {
        properties: {
          storageAccountId: `/subscriptions/${subscription}/resourceGroups/${resourceGroup}/providers/Microsoft.Storage/storageAccounts/${o.account}`,
          jobType: "Import",
          returnAddress: {
            recipientName: "Demo Customer",
            streetAddress1: "1 Demo Street",
            city: "Redmond",
            stateOrProvince: "WA",
            postalCode: "98052",
            countryOrRegion: "USA",
            phone: "4250000000",
            email: "demo@example.com",
          },
          returnShipping: { carrierName: "FedEx", carrierAccountNumber: "000000000" },
          logLevel: "Verbose",
          backupDriveManifest: true,
          driveList: [entry],
        },
      },
      customerToken,
    );
    say("[3/5] Shipping it (PATCH state Shipping with the delivery package) ...");
    await client.call(
      "PATCH",
      arm,
      {
        properties: {
          state: "Shipping",
          deliveryPackage: { carrierName: "FedEx", trackingNumber: `DEMO-${stamp}` },
        },
      },
      customerToken,
    );

    say(`[4/5] Plugging the drive in: ${plugged} as a loop device ...`);
    writeFileSync(`${plugged}.serial`, `${driveId}\n`);
    renameSync(shelf, plugged);
    device = attach(plugged);
    say(`      ${device}  (${elapsed()})`);

    say("[5/5] Importing (live progress):");
    const deadline = Date.now() + o.timeoutSeconds * 1000;
    const seenBy = Date.now() + 30_000;
    let seen = false;
    const ours = (drives: Attached[]) => drives.find((d) => d.serial === driveId || d.driveId === driveId);
    const last = await watchAttached(client, {
      intervalSeconds: 0.5,
      until: (drives) => {
        const d = ours(drives);
        seen ||= Boolean(d);
        if (!seen && Date.now() > seenBy)
          throw new CliError(
            `The agent did not see the drive within 30 s: it does not watch ${imagesDir}. Next: add it to drives.loopImageDirs in the agent's config (config/default.json watches ./data/demo-drives), restart the agent, run the demo again.`,
            EXIT_FAILED,
          );
        if (Date.now() > deadline)
          throw new CliError(
            `The import did not finish within ${o.timeoutSeconds} s. Next: 'station attached --watch' and the agent's log.`,
            EXIT_FAILED,
          );
        return Boolean(d && FINISHED.has(d.status));
      },
    });
    const final = ours(last);
    if (final?.status !== "done")
      throw new CliError(
        `Drive ${driveId} ended ${final?.status ?? "unseen"}: ${final?.message ?? "interrupted"} Next: 'station show ${jobName}' and 'station notices'.`,
        EXIT_FAILED,
      );

    const job = await client.call<ArmJob>("GET", arm, undefined, customerToken);
    const drive = job.properties.driveList?.find((d) => d.driveId === driveId);
    say("");
    say(
      `Drive ${driveId}: ${drive?.state} (${drive?.copyStatus}), ${bytes(drive?.bytesSucceeded ?? 0)}, total time ${elapsed()}.`,
    );
    say("");
    say(`Get Job (GET ${arm.split("?")[0]}):`);
    say(JSON.stringify(job, null, 2));
    const { job: stationJob } = await client.findJob(jobName);
    say("");
    say(jobView(stationJob as Job));
    say("");
    await printBlobs(o, container, prefix, accountKey, say);
    say("");
    say(`Try next: 'station jobs', 'station show ${jobName}', 'station attached', 'station notices'.`);
  } finally {
    if (device && !o.keep) detach(device);
    if (!o.keep) {
      rmSync(work, { recursive: true, force: true });
      if (device) {
        rmSync(plugged, { force: true });
        rmSync(`${plugged}.serial`, { force: true });
      }
    }
  }
}

async function printBlobs(
  o: DemoOptions,
  container: string,
  prefix: string,
  accountKey: string,
  say: (l: string) => void,
): Promise<void> {
  const base = o.blobEndpoint.replace("{account}", o.account).replace(/\/$/, "");
  say(`Blobs: container '${container}', prefix '${prefix}', at ${base}/${container}/${prefix}`);
  try {
    const client = new ContainerClient(
      `${base}/${container}`,
      new StorageSharedKeyCredential(o.account, accountKey),
    );
    for await (const b of client.listBlobsFlat({ prefix }))
      say(`  ${b.name}  ${bytes(b.properties.contentLength ?? 0)}  ${b.properties.blobType}`);
  } catch (e) {
    say(`  (could not list them: ${(e as Error).message})`);
  }
  say(
    `List them yourself: az storage blob list --connection-string "DefaultEndpointsProtocol=http;AccountName=${o.account};AccountKey=<key>;BlobEndpoint=${base}" -c ${container} --prefix ${prefix} -o table`,
  );
  say(`Copy logs (verbose log, manifest backup): container 'waimportexport' of the same account.`);
}

export { DEV_ACCOUNT };
