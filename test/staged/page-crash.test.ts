/**
 * Staged page-blob crash test: the agent imports page blobs and is killed with SIGKILL mid-blob,
 * twice, then restarted. A resumed page blob must not send again the ranges its partial blob
 * already holds, nothing partial may appear under a final name, and every final blob must carry
 * the right whole-blob Content-MD5.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CountingProxy, countingProxy } from "../../src/staging/counting-proxy.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { type ChildStation, childStation, killAtPointsAndResume } from "./child-agent.js";
import { preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("page-crash");
stagedDeadlines();
const MiB = 1024 * 1024;
const PARTIAL = ".drive-station-partial";

let station: ChildStation;
let storage: TestAzurite | undefined;
let proxy: CountingProxy | undefined;
// Random bytes: every 4 MiB range is listed (no zero ranges to leave out).
const files: Record<string, Buffer> = {
  "disk-a.vhd": randomBytes(64 * MiB),
  "disk-b.vhd": randomBytes(64 * MiB + 512 * 7),
};
const total = Object.values(files).reduce((s, b) => s + b.length, 0);

/**
 * Bytes that reached storage: a final blob whole (its bytes and Content-MD5 must be right), else
 * the ranges its partial blob holds.
 */
async function landed(): Promise<number> {
  const c = storage!.client.getContainerClient("pages");
  let bytes = 0;
  for (const [name, data] of Object.entries(files)) {
    const final = c.getPageBlobClient(name);
    const props = await final.getProperties().catch((e) => {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw e;
    });
    if (props) {
      expect((await final.downloadToBuffer()).equals(data), `${name} in place with the wrong bytes`).toBe(
        true,
      );
      expect(Buffer.from(props.contentMD5 ?? []).toString("base64"), `${name} Content-MD5`).toBe(
        createHash("md5").update(data).digest("base64"),
      );
      bytes += data.length;
      continue;
    }
    const partial = c.getPageBlobClient(`${name}${PARTIAL}`);
    try {
      for await (const page of partial.listPageRanges().byPage())
        for (const r of page.pageRange ?? []) bytes += r.end - r.start + 1;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
  }
  return bytes;
}

describe.skipIf(!RUN)("staged: kill -9 mid page-blob import, restart, resume range by range", () => {
  beforeAll(async () => {
    station = await childStation({
      prefix: "staged-page-crash-",
      sub: "sub-page-crash",
      storage: async (root) => {
        storage = await startTestAzurite(join(root, "azurite"));
        proxy = await countingProxy(storage.port, ACCOUNT, "pages");
        return { mode: "azure", endpointTemplate: `http://127.0.0.1:${proxy.port}/{account}` };
      },
    });
    const image = join(station.root, "pages.img");
    const entry = await preparedDrive({
      image,
      fs: "ext4",
      sizeMiB: 200,
      driveId: "PAGES-0001",
      accountKey: ACCOUNT_KEY,
      workDir: station.root,
      sessions: [{ files, dest: "pages/", blobType: "PageBlob" }],
    });
    station.agent.start();
    await station.agent.ready(30_000);
    await station.ship("pagejob", { jobType: "Import", driveList: [entry] }, "T1");
    station.plug(image, "pages");
  });

  afterAll(async () => {
    await station?.cleanup();
    await proxy?.close();
    await storage?.stop();
  });

  it("resends no range that had landed; the final blobs carry their Content-MD5; no partial blob is left", async () => {
    // Mid-way through the first blob, then mid-way through the second.
    await killAtPointsAndResume(station, {
      points: [0.15 + Math.random() * 0.25, 0.6 + Math.random() * 0.25],
      total,
      landed,
      proxy: proxy!,
    });

    const c = storage!.client.getContainerClient("pages");
    for (const [name, data] of Object.entries(files)) {
      const blob = c.getBlobClient(name);
      expect((await blob.downloadToBuffer()).equals(data), name).toBe(true);
      const props = await blob.getProperties();
      expect(props.blobType).toBe("PageBlob");
      expect(Buffer.from(props.contentMD5 ?? []).toString("base64"), `${name} Content-MD5`).toBe(
        createHash("md5").update(data).digest("base64"),
      );
    }
    const left: string[] = [];
    for await (const b of c.listBlobsFlat()) left.push(b.name);
    expect(left.sort()).toEqual(Object.keys(files).sort());
    const job = await station.customer("GET", station.path("pagejob"));
    expect(job.json.properties.driveList[0]).toMatchObject({
      state: "Completed",
      bytesSucceeded: total,
      percentComplete: 100,
    });
    expect(job.json.properties.state).toBe("Packaging");
  });
});
