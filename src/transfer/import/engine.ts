/**
 * Import of one drive: streams the manifest, and for each blob reads its file once, checks every
 * block's MD5 against the manifest before it leaves the station, sends it with that MD5 as the
 * transactional MD5 (the service checks it again), and commits with the whole-blob Content-MD5
 * computed from the same read. A blob with any bad block is never committed. Blobs start in
 * manifest order, `blobConcurrency` at a time; memory is bounded by the shared buffer pool.
 */
import type { ManifestHeader } from "../../formats/manifest.js";
import { credentialRefusal } from "../../storage/blob-access.js";
import { CheckpointBatcher } from "../core/checkpoint-batch.js";
import { writeCopyLogs } from "../core/copy-log.js";
import { DriveReads, readDriveManifest, readFileStream } from "../core/drive-reads.js";
import { retrier, throwIfCancelled } from "../core/retry.js";
import type { DriveEngine, DriveRunResult } from "../engine.js";
import { importBlob } from "./blob-task.js";
import type { ImportSession } from "./session.js";

export const importDrive: DriveEngine = async (run) => {
  const { signal, job, driveId } = run;
  const manifestPath = run.manifestPath;
  if (!manifestPath) throw new Error(`drive ${driveId} of job ${job.name}: no matched manifest to import`);
  const reads = new DriveReads(run.readLimits, run.root);
  // The manifest's reads are bounded like the blobs': a manifest that hangs ends the drive
  // CompletedMoreInfo (ReadManifestFailed) rather than holding it, and the stop, for good.
  const manifestItems = () =>
    readDriveManifest(
      manifestPath,
      reads,
      { kind: "import", expectedDriveId: driveId },
      `drive ${driveId} of job ${job.name}`,
    );

  // Pass 1: the header (credential) and the drive's total bytes, for percent complete.
  let header: ManifestHeader | undefined;
  let bytesTotal = 0;
  let blobCount = 0;
  for await (const item of manifestItems()) {
    if (item.type === "header") header = item.header;
    else if (item.type === "blob") {
      bytesTotal += item.blob.length;
      blobCount++;
    }
  }
  if (!header?.credential)
    throw new Error(`drive ${driveId} of job ${job.name}: manifest without a credential`);
  const port = run.portFor(header.credential);
  const resume = await run.checkpoints.progress(job.name, driveId);
  run.progress.start(bytesTotal, resume.bytesSucceeded);
  const retrying = retrier({
    signal,
    policy: run.retry,
    log: run.log,
    ...(run.onRetry ? { onRetry: run.onRetry } : {}),
  });
  const containers = new Map<string, Promise<void>>();
  let bytesTransferred = 0;
  const session: ImportSession = {
    run,
    port,
    retrying,
    ensureContainer(name) {
      let p = containers.get(name);
      if (!p) {
        p = retrying(`creating container ${name}`, (s) => port.ensureContainer(name, s));
        containers.set(name, p);
      }
      return p;
    },
    batch: new CheckpointBatcher(run.checkpoints, job.name, driveId, run.log),
    reads,
    resume,
    sent: (bytes) => {
      bytesTransferred += bytes;
    },
    noteRefusal(e) {
      const r = credentialRefusal(e, port.sasContainer !== undefined);
      if (r && !session.refusal) {
        session.refusal = r;
        run.log.error(
          { status: r.status, code: r.code },
          `${r.cause}: the drive stops here; blobs not yet imported are logged BlobRequestForbidden`,
        );
      }
      return r;
    },
  };

  // Pass 2: the transfer.
  const running = new Set<Promise<void>>();
  let firstError: unknown;
  let index = -1;
  try {
    for await (const item of manifestItems()) {
      if (item.type !== "blob") continue;
      index++;
      if (resume.done.has(index)) continue;
      if (firstError || signal.aborted) break;
      while (running.size >= run.blobConcurrency) await Promise.race(running);
      if (firstError || signal.aborted) break; // no blob starts after a cancellation
      const task = importBlob(session, index, item.blob, item.problem).catch((e) => {
        firstError ??= e;
      });
      running.add(task);
      void task.finally(() => running.delete(task));
    }
    await Promise.all(running);
  } finally {
    await session.batch.close();
  }
  throwIfCancelled(signal);
  if (firstError) throw firstError;
  run.progress.publish();

  const logs = await writeCopyLogs({
    port,
    retrying,
    ensureContainer: session.ensureContainer,
    entries: () => run.checkpoints.entries(job.name, driveId),
    jobName: job.name,
    driveId,
    diagnosticsPath: job.diagnosticsPath,
    logLevel: job.logLevel,
    ...(job.backupDriveManifest
      ? {
          manifestBackup: async function* () {
            yield await readWhole(readFileStream(manifestPath, reads));
          },
        }
      : {}),
    at: run.clock.now(),
    ...(session.refusal ? { status: "BlobRequestForbidden" as const } : {}),
    refusedBy: (e) => credentialRefusal(e, port.sasContainer !== undefined)?.cause,
  });
  const result: DriveRunResult = {
    ...logs,
    bytesSucceeded: run.progress.bytesSucceeded,
    bytesTotal,
    bytesTransferred,
    blobs: blobCount,
    ...(session.refusal ? { refusal: session.refusal } : {}),
  };
  return result;
};

async function readWhole(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(c);
  return Buffer.concat(parts);
}
