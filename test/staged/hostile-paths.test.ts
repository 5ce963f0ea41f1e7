/**
 * Staged: blob paths that try to leave their container (dot segments, encoded dots, backslashes,
 * empty segments, look-alike dots, control characters, invalid or system containers), on a real
 * loop-image drive, imported by the real agent into a real Azurite. Nothing lands outside the
 * named container, each hostile blob has its copy-log status, the good blobs on the same drive
 * land byte-exact under exactly their names.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDriveLog } from "../../src/formats/drive-log.js";
import { ACCOUNT_KEY } from "../support/azurite.js";
import { stagedDeadlines, stagedGate } from "./loop-images.js";
import { BLOCK, type DriveBlob, type DriveEntry, StationFixture } from "./station-fixture.js";

const RUN = stagedGate("hostile blob paths");
stagedDeadlines();
const f = new StationFixture("staged-paths-", "sub-import");

describe.skipIf(!RUN)("staged: hostile blob paths", () => {
  const good: DriveBlob[] = [
    { blobPath: "mycontainer/good.txt", data: Buffer.from("good\n") },
    { blobPath: "mycontainer/dir/naïve 日本.txt", data: Buffer.from("unicode\n") },
    { blobPath: "mycontainer/caf\u00e9.txt", data: Buffer.from("NFC\n") },
    { blobPath: "mycontainer/cafe\u0301.txt", data: Buffer.from("NFD\n") },
    { blobPath: "mycontainer/q?x#y&z=1+2;'(!)*.txt", data: Buffer.from("reserved characters\n") },
    { blobPath: "mycontainer/.hidden", data: Buffer.from("leading dot\n") },
    { blobPath: "mycontainer/a..b/..c", data: Buffer.from("dots inside segments\n") },
    { blobPath: "mycontainer/multi-block.bin", data: randomBytes(2 * BLOCK + 123) },
  ];
  // Each hostile path, with what it would become if a layer normalised it.
  const hostile: DriveBlob[] = [
    "mycontainer/../other-container/dot-dot", // → other-container/dot-dot
    "mycontainer/a/../../other-container/deep", // → other-container/deep
    "mycontainer/./dot", // → mycontainer/dot
    "mycontainer/%2e%2e/other-container/encoded", // → other-container/encoded, by a decoding layer
    "mycontainer/%2E%2E%2Fother-container%2Fencoded-slash",
    "mycontainer/..\\other-container\\backslash", // WHATWG URLs read '\' as '/'
    "mycontainer/a//empty-segment", // → mycontainer/a/empty-segment
    "mycontainer/trailing-slash/",
    "mycontainer/trailing-dot.", // the service does not keep the dot
    "mycontainer/dir./in-dot-ending-dir",
    "mycontainer/\uFF0E\uFF0E/other-container/fullwidth", // NFKC folds to '..'
    "mycontainer/tab\tname", // a control character
    "Other-Container/upper-case", // not a container name
    "my--container/double-hyphen",
    "$logs/system-container", // Storage Analytics' container
    "$root/a/b", // the root container has no directories
  ].map((blobPath, i) => ({ blobPath, data: Buffer.from(`hostile ${i}\n`) }));
  let drive: { image: string; entry: DriveEntry };

  beforeAll(async () => {
    await f.startStorage();
    drive = await f.manifestDrive("hostile", "HOSTILE-0001", { kind: "accountKey", key: ACCOUNT_KEY }, [
      ...good.slice(0, 4),
      ...hostile,
      ...good.slice(4),
    ]);
    await f.startAgent();
  });

  afterAll(() => f.stop());

  it("nothing outside the named container, each hostile blob refused in the copy log, the good blobs byte-exact", async () => {
    await f.createJob("hostile", drive.entry);
    f.plugIn(drive.image);
    const d = await f.until(drive.image);
    expect(d.status, d.message).toBe("done");

    // Every container and blob of the account: exactly the good blobs, plus the two copy logs.
    const all = await f.everything();
    expect(all.filter((p) => !p.startsWith("waimportexport/"))).toEqual(
      ["mycontainer/", ...good.map((b) => b.blobPath)].sort(),
    );
    expect(all.filter((p) => p.startsWith("waimportexport/waies/hostile_HOSTILE-0001_"))).toHaveLength(2);
    expect(all.filter((p) => p.startsWith("waimportexport/"))).toHaveLength(3);
    for (const b of good) {
      const name = b.blobPath.slice("mycontainer/".length);
      expect((await f.download("mycontainer", name)).equals(b.data), b.blobPath).toBe(true);
    }
    // NFC and NFD spellings are two blobs, each under exactly its own name.
    expect((await f.download("mycontainer", "caf\u00e9.txt")).toString()).toBe("NFC\n");
    expect((await f.download("mycontainer", "cafe\u0301.txt")).toString()).toBe("NFD\n");

    const { body } = await f.getJob("hostile");
    const entry = body.properties.driveList[0] as {
      state: string;
      copyStatus: string;
      verboseLogUri: string;
      errorLogUri: string;
    };
    expect(entry).toMatchObject({ state: "CompletedMoreInfo", copyStatus: "CompletedWithErrors" });
    const verbose = await readDriveLog(await f.logBlob(entry.verboseLogUri));
    expect(verbose.blobs).toHaveLength(good.length + hostile.length);
    const status = new Map(verbose.blobs.map((b) => [b.blobPath, b.status]));
    for (const b of hostile) expect(status.get(b.blobPath), b.blobPath).toBe("Failed");
    for (const b of good) expect(status.get(b.blobPath), b.blobPath).toBe("Completed");
    const errorLog = await readDriveLog(await f.logBlob(entry.errorLogUri));
    expect(errorLog.blobs.map((b) => b.blobPath).sort()).toEqual(hostile.map((b) => b.blobPath).sort());
    // The operator's log says why each one was refused.
    const log = f.station.logText();
    expect(log).toMatch(/'\.\.' path segment/);
    expect(log).toMatch(/backslash/);
    expect(log).toMatch(/'%'/);
    expect(log).toMatch(/empty path segment/);
    expect(log).toMatch(/not a valid container name/);
  });
});
