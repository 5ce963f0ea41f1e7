/**
 * The export manifest (reference §1.9) at the drive root, `\<DriveId>.manifest` as in the
 * RepairExport example: every blob whose data is on the drive, with per-block MD5s and the
 * properties/metadata files' hashes. Written under a temporary name, synced, read back and
 * hashed, then renamed: a drive never carries a half-written manifest.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename } from "node:fs/promises";
import { join } from "node:path";

import { ManifestWriter } from "../../formats/manifest-writer.js";
import { fileSegments, PARTIAL_SUFFIX } from "./drive-paths.js";
import { manifestFileName } from "./planner.js";
import type { DoneBlob } from "./store.js";

export interface WrittenManifest {
  /** Drive-relative, e.g. `\DRIVE1.manifest`: the job's manifestFile for this drive. */
  file: string;
  /** Upper-case hex MD5 of the file: the job's manifestHash. */
  hash: string;
  /** The file's bytes (the manifest backup blob). */
  read(): AsyncIterable<Buffer>;
}

export async function writeExportManifest(
  root: string,
  driveId: string,
  entries: AsyncIterable<DoneBlob>,
): Promise<WrittenManifest> {
  const file = manifestFileName(driveId);
  const path = join(root, ...fileSegments(file));
  const tmp = path + PARTIAL_SUFFIX;
  const fh = await open(tmp, "w", 0o644);
  const md5 = createHash("md5");
  try {
    let pending = "";
    const w = new ManifestWriter(
      (s) => {
        pending += s;
      },
      { driveId, kind: "export" },
    );
    const flush = async () => {
      if (!pending) return;
      const buf = Buffer.from(pending, "utf8");
      pending = "";
      md5.update(buf);
      await fh.write(buf);
    };
    w.blobList();
    for await (const d of entries) {
      if (!d.manifest) continue;
      w.blob(d.manifest);
      if (pending.length > 256 * 1024) await flush();
    }
    w.end();
    await flush();
    await fh.datasync();
  } finally {
    await fh.close();
  }
  const hash = md5.digest("hex").toUpperCase();
  const check = createHash("md5");
  for await (const c of createReadStream(tmp)) check.update(c as Buffer);
  if (check.digest("hex").toUpperCase() !== hash)
    throw new Error(`the export manifest read back from drive ${driveId} differs from what was written`);
  await rename(tmp, path);
  return { file, hash, read: () => createReadStream(path) as AsyncIterable<Buffer> };
}
