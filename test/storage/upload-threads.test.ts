/**
 * The upload threads (src/storage/upload-threads.ts) against a real Azurite, through the blob
 * port as the import engine uses it: blocks and pages land byte-exact from the station's shared
 * buffers; the service's MD5 check still refuses a body that does not match; failures keep the
 * SDK's shape for classify(); an abort ends a request; a thread that dies fails its request as a
 * retryable network error and is replaced; no error carries the account key.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AzureBlobPort } from "../../src/storage/azure-blob-port.js";
import { classify, JobStorage } from "../../src/storage/blob-access.js";
import { UploadThreads } from "../../src/storage/upload-threads.js";
import { sharedBuffer } from "../../src/transfer/core/buffer-pool.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";

let dir: string;
let storage: TestAzurite;
const pools: UploadThreads[] = [];
const md5 = (b: Buffer) => createHash("md5").update(b).digest();
const signal = () => new AbortController().signal;

function port(uploads: UploadThreads): AzureBlobPort {
  return new AzureBlobPort(
    new JobStorage({
      endpoint: { template: storage.template },
      storageAccountId: `/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      credential: { kind: "accountKey", key: ACCOUNT_KEY },
      retry: { maxTries: 1, retryDelayInMs: 10, maxRetryDelayInMs: 10, tryTimeoutInMs: 30_000 },
    }),
    uploads,
  );
}

const filled = (bytes: Buffer): Buffer => {
  const b = sharedBuffer(bytes.length);
  bytes.copy(b);
  return b;
};

function threads(o: Partial<ConstructorParameters<typeof UploadThreads>[0]> = {}): UploadThreads {
  const t = new UploadThreads({ threads: 2, ...o });
  pools.push(t);
  return t;
}

describe("upload threads", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "upload-threads-"));
    storage = await startTestAzurite(join(dir, "azurite"));
    await storage.client.getContainerClient("uploads").create();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await storage?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stage blocks and pages from the shared buffers, byte-exact, on the threads", async () => {
    const up = threads();
    const p = port(up);
    const ref = { container: "uploads", name: "blocks.bin" };
    const parts = [randomBytes(300_000), randomBytes(4 * 1024 * 1024), randomBytes(17)];
    const ids = parts.map((_, k) => Buffer.from(`block-${k}`).toString("base64"));
    await Promise.all(parts.map((b, k) => p.stageBlock(ref, ids[k]!, filled(b), md5(b), signal())));
    expect(up.started).toBe(2); // three requests in flight at once: both threads took some
    await p.commitBlockList(ref, ids, { headers: {}, metadata: {}, conditions: {} }, signal());
    const got = await storage.client
      .getContainerClient("uploads")
      .getBlobClient("blocks.bin")
      .downloadToBuffer();
    expect(got.equals(Buffer.concat(parts))).toBe(true);

    const page = { container: "uploads", name: "pages.vhd" };
    await p.createPageBlob(page, 8192, { headers: {}, metadata: {} }, signal());
    const pageBytes = randomBytes(4096);
    await p.putPages(page, 4096, filled(pageBytes), md5(pageBytes), signal());
    const pages = await storage.client
      .getContainerClient("uploads")
      .getBlobClient("pages.vhd")
      .downloadToBuffer();
    expect(pages.subarray(4096).equals(pageBytes)).toBe(true);
    expect(pages.subarray(0, 4096).equals(Buffer.alloc(4096))).toBe(true);
  });

  it("put a small blob whole with its headers, metadata and condition; a taken name is a conflict", async () => {
    const up = threads({ threads: 1 });
    const p = port(up);
    const ref = { container: "uploads", name: "small/one.txt" };
    const body = randomBytes(4096);
    const write = {
      headers: { contentType: "text/plain", contentMd5: md5(body) },
      metadata: { origin: "drive-1" },
      conditions: { ifNoneMatch: "*" },
    };
    await p.putBlob(ref, filled(body), write, signal());
    expect(up.started).toBe(1);
    const blob = storage.client.getContainerClient("uploads").getBlobClient("small/one.txt");
    expect((await blob.downloadToBuffer()).equals(body)).toBe(true);
    const props = await blob.getProperties();
    expect([props.contentType, Buffer.from(props.contentMD5 ?? []).toString("hex"), props.metadata]).toEqual([
      "text/plain",
      md5(body).toString("hex"),
      { origin: "drive-1" },
    ]);
    const again = await p.putBlob(ref, filled(body), write, signal()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(classify(again)).toBe("conflict");
    const badMd5 = await p
      .putBlob(
        { container: "uploads", name: "small/two.txt" },
        filled(body),
        { ...write, headers: { contentMd5: md5(randomBytes(8)) } },
        signal(),
      )
      .then(
        () => undefined,
        (e: { statusCode?: number }) => e,
      );
    expect(badMd5?.statusCode).toBe(400);
  });

  it("a body that does not match its MD5 is refused by the service, with the same error as from the event loop, without the key", async () => {
    const body = randomBytes(65_536);
    const wrong = md5(randomBytes(16));
    const ref = { container: "uploads", name: "bad.bin" };
    const failure = (send: Promise<void>) =>
      send.then(
        () => undefined,
        (x: unknown) => x as { statusCode?: number; code?: string; message: string },
      );
    const fromThread = await failure(port(threads()).stageBlock(ref, "YjA=", filled(body), wrong, signal()));
    const fromLoop = await failure(
      port(threads()).stageBlock(ref, "YjA=", Buffer.from(body), wrong, signal()),
    );
    expect(fromLoop?.statusCode).toBe(400);
    expect([fromThread?.statusCode, fromThread?.code]).toEqual([fromLoop!.statusCode, fromLoop!.code]);
    expect(classify(fromThread)).toBe("permanent");
    expect(JSON.stringify({ ...fromThread, message: fromThread!.message })).not.toContain(ACCOUNT_KEY);
    const list = await storage.client
      .getContainerClient("uploads")
      .getBlockBlobClient("bad.bin")
      .getBlockList("all")
      .catch(() => undefined);
    expect(list?.uncommittedBlocks?.length ?? 0).toBe(0);
  });

  it("an abort ends a request in hand", async () => {
    // The thread holds every request until it is aborted: only the abort can end it.
    const up = threads({
      threads: 1,
      prelude:
        "send = (m, s) => new Promise((_, reject) => s.addEventListener('abort', () => reject(Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' }))));",
    });
    const p = port(up);
    const ac = new AbortController();
    const body = randomBytes(1024);
    const sending = p
      .stageBlock({ container: "uploads", name: "held.bin" }, "aGVsZA==", filled(body), md5(body), ac.signal)
      .then(
        () => "sent",
        (e: Error) => e.name,
      );
    ac.abort();
    expect(await sending).toBe("AbortError");
  });

  it("a thread that dies fails its request as retryable and a fresh one takes its place", async () => {
    const faults: string[] = [];
    const up = threads({
      threads: 1,
      // The first request kills its thread; the replacement sends normally.
      prelude:
        "const inner = send; send = async (m, s) => { if (m.blockId === 'ZGll') process.exit(3); return inner(m, s); };",
      onFault: (m) => faults.push(m),
    });
    const p = port(up);
    const ref = { container: "uploads", name: "dies.bin" };
    const body = randomBytes(2048);
    const e = await p.stageBlock(ref, "ZGll", filled(body), md5(body), signal()).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(classify(e)).toBe("retryable");
    expect(faults.join()).toMatch(/upload thread died \(exit code 3\)/);
    await p.stageBlock(ref, "b2s=", filled(body), md5(body), signal());
    expect(up.started).toBe(2);
    expect(up.size).toBe(1);
  });

  it("a plain buffer (not a station block buffer) is sent from the event loop", async () => {
    const up = threads({ threads: 1 });
    const p = port(up);
    const body = randomBytes(1000);
    await p.stageBlock({ container: "uploads", name: "plain.bin" }, "cGxhaW4=", body, md5(body), signal());
    expect(up.started).toBe(0);
  });
});
