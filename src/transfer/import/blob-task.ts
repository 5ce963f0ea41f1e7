/**
 * The import of one blob: checks its name, opens its file on the drive, reads its metadata and
 * properties files, settles where it goes (the disposition), and hands it to the writer for its
 * kind. Every outcome ends in exactly one `done` checkpoint carrying its copy-log entry.
 */
import { StationError } from "../../errors.js";
import { cancelBlob } from "../../formats/drive-log.js";
import type { ManifestBlob } from "../../formats/manifest.js";
import { checkBlobPath } from "../../formats/names.js";
import type { BlobStatus } from "../../formats/status.js";
import { classify } from "../../storage/blob-access.js";
import { driveGone, FileFailure, openInside } from "../core/drive-files.js";
import { ReadHung } from "../core/drive-reads.js";
import { HashingFailed } from "../core/hash-pool.js";
import { StorageOutage } from "../core/retry.js";
import { blobAttributes } from "./blob-files.js";
import { uploadBlockBlob } from "./block-blob.js";
import { Disposition } from "./disposition.js";
import { uploadPageBlob } from "./page-blob.js";
import { BlobTask, existing, type ImportSession } from "./session.js";
import { putSmallBlob, SMALL_BLOB } from "./small-blob.js";

export async function importBlob(
  s: ImportSession,
  index: number,
  blob: ManifestBlob,
  problem: { status: BlobStatus; message: string } | undefined,
): Promise<void> {
  const t = new BlobTask(s, index, blob);
  const { entry } = t;
  if (problem) return t.fail(problem.status, problem.message);
  // A refused credential fails every request the same way (reference §3.5.1): no request at all.
  if (s.refusal) return t.finish(blob.blobPath, cancelBlob(entry, "BlobRequestForbidden"));
  if (s.reads.wedged) return t.fail("IOFailed", `${blob.filePath}: ${s.reads.wedgedMessage}`);

  const name = checkBlobPath(blob.blobPath);
  if (!name.ok) return t.fail("Failed", name.reason);
  const { container } = name;
  if (s.port.sasContainer && container !== s.port.sasContainer) {
    return t.fail(
      "BlobRequestForbidden",
      `${blob.blobPath} is outside the SAS container ${s.port.sasContainer}`,
    );
  }

  try {
    t.fh = await s.reads.open(blob.filePath, openInside(s.run.root, blob.filePath));
  } catch (e) {
    if (e instanceof FileFailure && e.status !== "FileAccessDenied") await cancelIfGone(s.run.root);
    if (e instanceof FileFailure) return t.fail(e.status, `${blob.blobPath}: ${e.message}`);
    throw e;
  }
  const d = new Disposition(container, name.name, blob.disposition, entry, t.startedTarget);
  try {
    const attrs = await blobAttributes(s.run.root, blob, entry, s.reads);
    await s.ensureContainer(container);

    if (blob.kind === "block" && blob.length <= SMALL_BLOB && blob.chunks.length <= 1 && !t.startedTarget)
      return await putSmallBlob(t, d, container, attrs);

    // Where it goes, by disposition. A resumed blob whose target already holds its exact bytes is done.
    if (!t.startedTarget) {
      let fileMd5: string | undefined;
      const ours = async (md5: string | undefined) => {
        if (!t.mayBeOurs) return false;
        // The whole file's MD5, read only when a resumed run compares it with an existing blob.
        if (fileMd5 === undefined) {
          const h = s.run.pipeline.hashes.stream();
          try {
            for (let off = 0; off < blob.length; off += SMALL_BLOB) {
              const data = await s.reads.read(
                t.fh,
                blob.filePath,
                off,
                Math.min(SMALL_BLOB, blob.length - off),
              );
              await h.update(off, data);
            }
          } catch (e) {
            h.discard();
            throw e;
          }
          fileMd5 = (await h.digest()).toString("base64");
        }
        return md5 === fileMd5;
      };
      for (;;) {
        const found = await existing(s, { container, name: d.target });
        if (!found) break;
        const step = await d.taken(found, () => ours(found.md5));
        if (step === "ours") {
          t.allCompleted();
          t.landed(blob.length);
          d.settle();
          return t.finish(d.target);
        }
        if (step === "skipped") return t.finish(d.target);
        if (step === "no-name")
          return t.fail("RenameFailed", `${blob.blobPath}: no free name after 1000 renames`);
        if (d.overwrite) break;
      }
    }
    d.settle();
    const ref = { container, name: d.target };
    const write = {
      headers: attrs.headers,
      metadata: attrs.metadata,
      conditions: blob.disposition === "overwrite" ? {} : { ifNoneMatch: "*" },
    };
    if (blob.kind === "page") await uploadPageBlob(t, ref, write);
    else await uploadBlockBlob(t, ref, write);
    if (entry.status === "Completed" && attrs.bad) t.withErrors();
    t.finish(d.target);
  } catch (e) {
    if (s.run.signal.aborted || e instanceof StorageOutage) throw e;
    if (s.noteRefusal(e)) return t.finish(blob.blobPath, cancelBlob(entry, "BlobRequestForbidden"));
    const kind = classify(e);
    if (kind === "conflict" || kind === "precondition") {
      // Someone created the blob between our check and our commit.
      if (d.raced() === "skipped") return t.finish(blob.blobPath);
      return t.fail("RenameFailed", `${blob.blobPath}: the name was taken while the blob was being written`);
    }
    if (kind === "forbidden")
      return t.fail(
        "BlobRequestForbidden",
        `${blob.blobPath}: the storage account refused the request (key or SAS)`,
      );
    if (e instanceof FileFailure) {
      // A hung read is the drive's fault, not a pull: pulls fail reads, they do not hang them.
      // A hashing thread's failure is the station's, and fails this blob only.
      if (!(e instanceof ReadHung || e instanceof HashingFailed)) await cancelIfGone(s.run.root);
      return t.fail(e.status, e.message);
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (code && !("statusCode" in (e as object))) {
      await cancelIfGone(s.run.root);
      return t.fail("IOFailed", `${blob.filePath}: read failed (${code})`);
    }
    return t.fail("BlobRequestFailed", `${blob.blobPath}: ${(e as Error).message}`);
  } finally {
    // Closing waits for pending reads: after a hung one, the handle is closed without waiting.
    if (s.reads.hasHung(t.fh)) void t.fh.close().catch(() => undefined);
    else await t.fh.close();
  }
}

/** A read that failed because the drive went away is a cancellation (the drive pauses), not a blob failure. */
async function cancelIfGone(root: string): Promise<void> {
  if (await driveGone(root))
    throw new StationError("Cancelled", "the drive went away mid-transfer", { target: "pulled" });
}
