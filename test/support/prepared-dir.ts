/**
 * A drive as a plain directory, prepared by `station prepare`'s own code from `files` (relative
 * paths, folders made as needed): what the import engine's unit tests read, without a loop device.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { prepareDrive } from "../../src/prepare/prepare-drive.js";

export const UNIT_TEST_KEY = Buffer.from("unit-test-account-key-0123456789").toString("base64");

export async function preparedDir(
  dirs: { root: string; src: string },
  files: Record<string, Buffer>,
  o: {
    driveId?: string;
    sessionId?: string;
    destination?: string;
    blobType?: "BlockBlob" | "PageBlob";
    disposition?: "rename" | "no-overwrite" | "overwrite";
  } = {},
): Promise<{ root: string; manifestPath: string }> {
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(join(dirs.src, rel, ".."), { recursive: true });
    writeFileSync(join(dirs.src, rel), data);
  }
  mkdirSync(dirs.root, { recursive: true });
  await prepareDrive({
    driveRoot: dirs.root,
    source: dirs.src,
    sessionId: o.sessionId ?? "session1",
    destination: o.destination ?? "data/",
    driveId: o.driveId ?? "DRIVE-1",
    credential: { kind: "accountKey", key: UNIT_TEST_KEY },
    blobType: o.blobType ?? "BlockBlob",
    disposition: o.disposition ?? "rename",
  });
  return { root: dirs.root, manifestPath: join(dirs.root, "DriveManifest.xml") };
}
