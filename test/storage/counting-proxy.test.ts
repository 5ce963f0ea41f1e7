/**
 * The instrument the crash suites and the soak trust to count resent bytes
 * (src/staging/counting-proxy.ts): every data write's body into the container counts, each time
 * it is sent; reads, metadata and other containers do not.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CountingProxy, countingProxy } from "../../src/staging/counting-proxy.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";

let dir: string;
let storage: TestAzurite;
let proxy: CountingProxy;
let client: BlobServiceClient;

describe("counting proxy", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "counting-proxy-"));
    storage = await startTestAzurite(join(dir, "azurite"));
    proxy = await countingProxy(storage.port, ACCOUNT, "counted");
    client = new BlobServiceClient(
      `http://127.0.0.1:${proxy.port}/${ACCOUNT}`,
      new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await storage?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("counts Put Blob, Put Block and Put Page bodies each time they are sent, and nothing else", async () => {
    const counted = client.getContainerClient("counted");
    const other = client.getContainerClient("other");
    await counted.create();
    await other.create();
    expect(proxy.sent()).toBe(0);

    const small = randomBytes(3000);
    await counted.getBlockBlobClient("small.bin").upload(small, small.length); // Put Blob
    expect(proxy.sent()).toBe(3000);

    const block = randomBytes(256 * 1024);
    const blob = counted.getBlockBlobClient("big.bin");
    const id = Buffer.from("block-0").toString("base64");
    await blob.stageBlock(id, block, block.length);
    await blob.stageBlock(id, block, block.length); // the same block again: a resend counts again
    await blob.commitBlockList([id]); // no data body
    expect(proxy.sent()).toBe(3000 + 2 * block.length);

    const page = counted.getPageBlobClient("disk.vhd");
    await page.create(4096);
    await page.uploadPages(randomBytes(4096), 0, 4096);
    expect(proxy.sent()).toBe(3000 + 2 * block.length + 4096);

    // Reads, properties and another container's writes pass through uncounted.
    expect((await blob.downloadToBuffer()).equals(block)).toBe(true);
    await blob.getProperties();
    await other.getBlockBlobClient("x.bin").upload(small, small.length);
    expect(proxy.sent()).toBe(3000 + 2 * block.length + 4096);
    expect(proxy.open()).toBe(0);
  });
});
