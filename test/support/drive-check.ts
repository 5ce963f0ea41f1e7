/** Verifies every block/page-range hash of a manifest against the files on a drive directory. */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { md5Hex } from "../../src/formats/blob-properties.js";
import { type ManifestBlob, type ManifestHeader, readManifest } from "../../src/formats/manifest.js";

export async function readDriveManifest(driveRoot: string, manifestFile = "DriveManifest.xml") {
  let header: ManifestHeader | undefined;
  const blobs: ManifestBlob[] = [];
  for await (const item of readManifest(createReadStream(join(driveRoot, manifestFile)), {
    kind: "import",
  })) {
    if (item.type === "header") header = item.header;
    if (item.type === "blob") {
      if (item.problem) throw new Error(item.problem.message);
      blobs.push(item.blob);
    }
  }
  return { header: header!, blobs };
}

/** Returns the number of chunks verified; throws on the first mismatch. */
export async function verifyChunks(driveRoot: string, blobs: ManifestBlob[]): Promise<number> {
  let verified = 0;
  for (const b of blobs) {
    const fh = await open(join(driveRoot, ...b.filePath.replace(/^\\/, "").split("\\")), "r");
    try {
      const size = (await fh.stat()).size;
      if (size !== b.length)
        throw new Error(`${b.filePath}: ${size} bytes on the drive, ${b.length} in the manifest`);
      for (const c of b.chunks) {
        const buf = Buffer.alloc(c.length);
        await fh.read(buf, 0, c.length, c.offset);
        if (md5Hex(buf) !== c.hash) throw new Error(`${b.filePath} @${c.offset}: MD5 differs`);
        verified++;
      }
    } finally {
      await fh.close();
    }
  }
  return verified;
}
