/**
 * Staged import repair (issue 20): a drive prepared with `station prepare`, two files damaged
 * and a third deleted after preparation, imported by the real agent into a real Azurite; then
 * `station repair-import` (the built CLI, as a customer runs it) with the error log's URL and
 * the original files. A counting proxy in front of Azurite sees every block the repair sends.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobKey } from "../../src/lifecycle/model.js";
import { type CountingProxy, countingProxy } from "../../src/staging/counting-proxy.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("repair-import");
stagedDeadlines();
const SUB = "sub-staged";
const key: JobKey = { subscriptionId: SUB, resourceGroup: "rg", name: "repairjob" };
const MiB = 1024 * 1024;
const md5b64 = (b: Buffer) => createHash("md5").update(b).digest("base64");

describe.skipIf(!RUN)("staged: station repair-import", () => {
  let root: string;
  let station: TestAgent;
  let storage: TestAzurite;
  let proxy: CountingProxy;
  let endpoint: string;
  const devices: string[] = [];
  const files = {
    "one.bin": randomBytes(3 * 4 * MiB + 1000), // block 1 damaged on the drive
    "two.bin": randomBytes(2 * 4 * MiB + 7), // block 0 damaged on the drive
    "three.bin": randomBytes(5 * MiB), // deleted from the drive
    "ok.txt": Buffer.from("arrives fine\n"),
  };
  let originals: string;
  let moved: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-repair-"));
    mkdirSync(join(root, "plugged"));
    mkdirSync(join(root, "shelf"));
    originals = join(root, "originals");
    moved = join(root, "moved-away");
    mkdirSync(originals);
    mkdirSync(moved);
    for (const [n, d] of Object.entries(files))
      writeFileSync(join(n === "three.bin" ? moved : originals, n), d);
    storage = await startTestAzurite(join(root, "azurite"));
    proxy = await countingProxy(storage.port, ACCOUNT, "repaired");
    endpoint = `http://127.0.0.1:${proxy.port}/{account}`;
    const image = join(root, "shelf", "damaged.img");
    const entry = await preparedDrive({
      image,
      fs: "ext4",
      sizeMiB: 64,
      driveId: "REPAIR-0001",
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [{ files, dest: "repaired/" }],
      tamper: async (mnt) => {
        const flip = (name: string, at: number) => {
          const fd = openSync(join(mnt, "session1", name), "r+");
          writeSync(fd, Buffer.from([files[name as "one.bin"][at]! ^ 0xff]), 0, 1, at);
          closeSync(fd);
        };
        flip("one.bin", 4 * MiB + 10);
        flip("two.bin", 100);
        rmSync(join(mnt, "session1", "three.bin"));
      },
    });
    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(join(root, "plugged"), root),
      storageEndpoint: storage.template,
      transfer: {
        concurrency: 4,
        blobConcurrency: 4,
        retry: { attempts: 6, baseMs: 100, maxMs: 1000 },
        outageRetrySeconds: 2,
      },
    });
    await station.agent.service.create(
      key,
      {
        location: "West US",
        type: "Import",
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        returnAddress,
        driveList: [entry],
      },
      { name: "test", type: "User" },
    );
    await station.agent.service.update(
      key,
      { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "T-repair" } },
      { name: "test", type: "User" },
    );
    const dest = join(root, "plugged", "damaged.img");
    renameSync(image, dest);
    devices.push(attach(dest));
  });

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    await proxy?.close();
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const download = (name: string) =>
    storage.client.getContainerClient("repaired").getBlobClient(name).downloadToBuffer();

  function repair(logUrl: string): {
    child: ChildProcess;
    done: Promise<{ code: number | null; out: string; err: string }>;
  } {
    const keyFile = join(root, "account.key");
    writeFileSync(keyFile, ACCOUNT_KEY);
    const child = spawn(
      process.execPath,
      [
        built("src/cli/main.js"),
        "repair-import",
        "--log-url",
        logUrl,
        "--source",
        originals,
        "--progress",
        join(root, "repair.progress"),
        "--account-key-file",
        keyFile,
        "--blob-endpoint",
        endpoint,
        "--json",
      ],
      { env: { ...process.env, CI: "true" } },
    );
    let out = "";
    let err = "";
    child.stdout!.on("data", (c) => (out += c));
    child.stderr!.on("data", (c) => (err += c));
    const done = new Promise<{ code: number | null; out: string; err: string }>((r) =>
      child.on("exit", (code) => r({ code, out, err })),
    );
    return { child, done };
  }

  it("the damaged drive ends CompletedMoreInfo with the error log; bytesSucceeded counts only ok.txt", async () => {
    const end = Date.now() + 180_000;
    let drive: Record<string, unknown> | undefined;
    for (;;) {
      const res = await fetch(
        `${station.agent.url}/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/${key.name}?api-version=2021-01-01`,
        { headers: { authorization: `Bearer ${CUSTOMER_TOKEN}` } },
      );
      drive = ((await res.json()) as { properties: { driveList: Record<string, unknown>[] } }).properties
        .driveList[0];
      if (drive?.state === "CompletedMoreInfo" || drive?.state === "Completed") break;
      if (Date.now() > end) throw new Error(`drive still ${String(drive?.state)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(drive).toMatchObject({ state: "CompletedMoreInfo", copyStatus: "CompletedWithErrors" });
    expect(drive!.errorLogUri).toMatch(/_error\.xml$/);
    expect(drive!.bytesSucceeded).toBe(files["ok.txt"].length);
    errorLogUri = drive!.errorLogUri as string;
    // The station points the way: the drive's message names the log and the repair command.
    const docked = station.agent.dock!.list().find((x) => x.key.endsWith("/damaged.img"));
    expect(docked?.message).toContain(`station repair-import --log-url ${errorLogUri} --source`);
    // ... and so does the notice the operator passes on to the customer.
    const notices = (await (
      await fetch(`${station.agent.url}/station/v1/notices`, {
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
      })
    ).json()) as { value: { code: string; driveId?: string; message: string }[] };
    const n = notices.value.find((x) => x.code === "DriveNeedsRepair" && x.driveId === "REPAIR-0001");
    expect(n?.message).toContain(`error log ${errorLogUri}`);
    expect(n?.message).toContain(`station repair-import --log-url ${errorLogUri} --source`);
  });

  let errorLogUri = "";

  it("repair-import: killed -9 mid-repair, rerun, path map, every blob byte-exact, only failed blocks sent once", async () => {
    expect(errorLogUri).not.toBe("");
    expect(proxy.landed()).toHaveLength(0); // the agent talks to Azurite directly

    // Run 1: killed -9 the moment its first block has landed at storage (before it hears so).
    const first = repair(errorLogUri);
    proxy.onNextLanded(() => first.child.kill("SIGKILL"));
    const r1 = await first.done;
    expect(r1.code, r1.err).toBe(null);
    expect(proxy.landed()).toHaveLength(1);

    // Run 2, same progress file: what landed is not sent again; three.bin is not under the source.
    const r2 = await repair(errorLogUri).done;
    expect(r2.code, r2.err).toBe(1);
    const s2 = JSON.parse(r2.out) as {
      repaired: string[];
      unresolved: { filePath: string }[];
      pathMap: string;
    };
    expect(s2.repaired.sort()).toEqual(["repaired/one.bin", "repaired/two.bin"]);
    expect(s2.unresolved.map((u) => u.filePath)).toEqual(["\\session1\\three.bin"]);
    expect(readFileSync(s2.pathMap, "utf8")).toBe("\\session1\\three.bin\n");
    for (const n of ["one.bin", "two.bin"] as const) {
      expect((await download(n)).equals(files[n]), n).toBe(true);
    }

    // The user fills in the path map; run 3 finishes.
    writeFileSync(s2.pathMap, `\\session1\\three.bin\t${join(moved, "three.bin")}\n`);
    const r3 = await repair(errorLogUri).done;
    expect(r3.code, r3.err).toBe(0);
    const s3 = JSON.parse(r3.out) as { repaired: string[]; unresolved: unknown[] };
    expect(s3.repaired.sort()).toEqual(["repaired/one.bin", "repaired/three.bin", "repaired/two.bin"]);
    expect(s3.unresolved).toEqual([]);

    for (const [n, d] of Object.entries(files)) {
      expect((await download(n)).equals(d), n).toBe(true);
      const p = await storage.client.getContainerClient("repaired").getBlobClient(n).getProperties();
      expect(Buffer.from(p.contentMD5!).toString("base64"), n).toBe(md5b64(d));
    }
    // Only the failed blocks went out, each once over the three runs: block 1 of one.bin, block 0
    // of two.bin, both blocks of three.bin.
    // Every data write the proxy saw is one of them: no Put Blob or page slipped past the count.
    const sent = proxy
      .landed()
      .map((w) => `${w.kind}:${w.blob.split("/").pop()}:${w.bytes}`)
      .sort();
    expect(sent).toEqual([
      `block:one.bin:${4 * MiB}`,
      `block:three.bin:${MiB}`,
      `block:three.bin:${4 * MiB}`,
      `block:two.bin:${4 * MiB}`,
    ]);
    const ids = proxy.landed().map((w) => `${w.blob}|${w.blockId}`);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
