/**
 * Staged crash test: the agent runs as its own process and is killed with SIGKILL at random
 * points of a large import, twice, then restarted. It must finish with every blob right, never
 * show a partial blob as committed, and the final run must not resend anything that had landed
 * (counted at storage, by a proxy in front of Azurite).
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CountingProxy, countingProxy } from "../../src/staging/counting-proxy.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { type ChildStation, childStation, killAtPointsAndResume } from "./child-agent.js";
import { preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("crash");
stagedDeadlines();
const MiB = 1024 * 1024;

let station: ChildStation;
let storage: TestAzurite | undefined;
let proxy: CountingProxy | undefined;
const files: Record<string, Buffer> = {
  "one.bin": randomBytes(72 * MiB),
  "two.bin": randomBytes(72 * MiB + 12345),
  "three.bin": randomBytes(72 * MiB),
};
const total = Object.values(files).reduce((s, b) => s + b.length, 0);

/** Bytes that reached storage: committed blobs whole, plus staged blocks of uncommitted ones. Committed ones must be right. */
async function landed(): Promise<number> {
  const c = storage!.client.getContainerClient("crash");
  let bytes = 0;
  for (const [name, data] of Object.entries(files)) {
    const blob = c.getBlockBlobClient(name);
    try {
      const props = await blob.getProperties();
      expect(
        Buffer.from(props.contentMD5!).toString("base64"),
        `${name} committed with the wrong bytes`,
      ).toBe(createHash("md5").update(data).digest("base64"));
      bytes += props.contentLength!;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
      // No blob and no staged block is a 404 too: nothing landed. Any other error is the test's to see.
      const list = await blob.getBlockList("uncommitted").catch((e2) => {
        if ((e2 as { statusCode?: number }).statusCode === 404) return { uncommittedBlocks: [] };
        throw e2;
      });
      bytes += (list.uncommittedBlocks ?? []).reduce((s, b) => s + b.size, 0);
    }
  }
  return bytes;
}

describe.skipIf(!RUN)("staged: kill -9 mid-import, restart, resume", () => {
  beforeAll(async () => {
    station = await childStation({
      prefix: "staged-crash-",
      sub: "sub-crash",
      storage: async (root) => {
        storage = await startTestAzurite(join(root, "azurite"));
        proxy = await countingProxy(storage.port, ACCOUNT, "crash");
        return { mode: "azure", endpointTemplate: `http://127.0.0.1:${proxy.port}/{account}` };
      },
    });
    const image = join(station.root, "crash.img");
    const entry = await preparedDrive({
      image,
      fs: "ext4",
      sizeMiB: 260,
      driveId: "CRASH-0001",
      accountKey: ACCOUNT_KEY,
      workDir: station.root,
      sessions: [{ files, dest: "crash/" }],
    });
    station.agent.start();
    await station.agent.ready(30_000);
    await station.ship("crashjob", { jobType: "Import", driveList: [entry] }, "T1");
    station.plug(image, "crash");
  });

  afterAll(async () => {
    await station?.cleanup();
    await proxy?.close();
    await storage?.stop();
  });

  it("finishes with every blob right and resends nothing that had landed", async () => {
    await killAtPointsAndResume(station, {
      points: [0.1 + Math.random() * 0.3, 0.55 + Math.random() * 0.3],
      total,
      landed,
      proxy: proxy!,
    });

    for (const [name, data] of Object.entries(files)) {
      const got = await storage!.client.getContainerClient("crash").getBlobClient(name).downloadToBuffer();
      expect(got.equals(data), name).toBe(true);
    }
    const job = await station.customer("GET", station.path("crashjob"));
    expect(job.json.properties.driveList[0]).toMatchObject({
      state: "Completed",
      bytesSucceeded: total,
      percentComplete: 100,
    });
    expect(job.json.properties.state).toBe("Packaging");
  });
});
