/**
 * Staged: the agent exports to a real drive as its own process, is killed with SIGKILL mid-way,
 * and restarted. The export must finish byte-identical, and the resumed run must write exactly the
 * chunks the killed run had not recorded as written (nothing written twice beyond those in flight).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { type ChildStation, childStation } from "./child-agent.js";
import { makeDriveImage, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("export-crash");
stagedDeadlines();
const MiB = 1024 * 1024;
const blobs: Record<string, Buffer> = {
  "one.bin": randomBytes(64 * MiB),
  "two.bin": randomBytes(64 * MiB),
  "three.bin": randomBytes(64 * MiB),
};
const total = Object.values(blobs).reduce((s, b) => s + b.length, 0);

let station: ChildStation;
let storage: TestAzurite | undefined;

const attached = async () => (await station.agent.api("GET", "/station/v1/attached")).json?.value?.[0];

describe.skipIf(!RUN)("staged: kill -9 mid-export, restart, resume", () => {
  beforeAll(async () => {
    station = await childStation({
      prefix: "staged-xcrash-",
      sub: "sub-xcrash",
      storage: async (root) => {
        storage = await startTestAzurite(join(root, "azurite"));
        return {
          mode: "azure",
          endpointTemplate: storage.template,
          accounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
        };
      },
    });
    const c = storage!.client.getContainerClient("xcrash");
    await c.createIfNotExists();
    for (const [name, data] of Object.entries(blobs)) await c.getBlockBlobClient(name).uploadData(data);
    const image = join(station.root, "XCRASH-1.img");
    await makeDriveImage(image, "ext4", 280);
    station.agent.start();
    await station.agent.ready(180_000);
    await station.ship(
      "xjob",
      { jobType: "Export", export: { blobList: { blobPathPrefix: ["/xcrash/"] } } },
      "TX",
    );
    const checkIn = await station.agent.api(
      "POST",
      `/station/v1/subscriptions/${station.sub}/resourceGroups/rg/jobs/xjob/packages`,
      OPERATOR_TOKEN,
      { trackingNumber: "TX", driveIds: ["XCRASH-1"] },
    );
    expect(checkIn.status, JSON.stringify(checkIn.json)).toBe(200);
    station.plug(image, "XCRASH-1", "XCRASH-1");
  });

  afterAll(async () => {
    await station?.cleanup();
    await storage?.stop();
  });

  it("resumes, finishes byte-identical, and writes only what the killed run had not recorded", async () => {
    const agent = station.agent;
    const point = 0.25 + Math.random() * 0.4;
    await agent.waitFor(
      "export progress",
      async () => ((await attached())?.progress?.bytesSucceeded ?? 0) >= point * total || undefined,
      180_000,
    );
    expect((await agent.kill()).signal).toBe("SIGKILL");
    // What the killed run had recorded as on the drive: finished blobs and written chunks (4 MiB each).
    const db = new Database(join(station.root, "data", "export.db"), { readonly: true });
    const doneBytes = (db.prepare("SELECT COALESCE(SUM(bytes), 0) AS n FROM done").get() as { n: number }).n;
    const chunks = (db.prepare("SELECT COUNT(*) AS n FROM blocks").get() as { n: number }).n;
    db.close();
    const recorded = doneBytes + chunks * 4 * MiB;
    expect(recorded).toBeGreaterThan(0);
    console.log(
      `killed at ${Math.round(point * 100)} %: ${recorded} of ${total} bytes recorded on the drive`,
    );

    agent.start();
    const finished = await agent.logged<{ bytesWritten: number; status: string; chunksRewritten: number }>(
      "drive export finished",
    );
    expect(finished.status).toBe("Completed");
    expect(finished.chunksRewritten).toBe(0);
    expect(finished.bytesWritten).toBe(total - recorded);

    const d = await attached();
    for (const [name, data] of Object.entries(blobs)) {
      const got = readFileSync(join(d.mountpoint, "xcrash", name));
      expect(createHash("md5").update(got).digest("hex"), name).toBe(
        createHash("md5").update(data).digest("hex"),
      );
    }
    const manifest = readFileSync(join(d.mountpoint, "XCRASH-1.manifest"), "utf8");
    expect(manifest.match(/<Blob>/g)).toHaveLength(3);
    const job = await station.customer("GET", station.path("xjob"));
    expect(job.json.properties.driveList[0]).toMatchObject({
      state: "Completed",
      bytesSucceeded: total,
      percentComplete: 100,
    });
    expect(agent.output).not.toContain(ACCOUNT_KEY);
    expect(agent.output).not.toContain(CUSTOMER_TOKEN);
  });
});
