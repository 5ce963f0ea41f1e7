/**
 * The export's ranged GETs off the SDK (src/storage/ranged-get.ts), through AzureExportSource as
 * the export engine uses it, against a real Azurite: bytes and range MD5 exact, a snapshot read,
 * the customer's SAS as well as the station's key; failures in the SDK's shape for classify()
 * (412 on a changed blob, 404, 403 on a wrong key, a dropped connection retryable), an abort,
 * a service that sends too much; and no error carrying the key, the signature or the SAS.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AzureExportSource } from "../../src/storage/azure-export-source.js";
import { classify } from "../../src/storage/blob-access.js";
import { proxyConfigured } from "../../src/storage/ranged-get.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";

const MiB = 1024 * 1024;
const ACCOUNT_ID = `/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`;
let dir: string;
let storage: TestAzurite;
const data = randomBytes(9 * MiB + 123);
let etag: string;
const md5 = (b: Buffer) => createHash("md5").update(b).digest();
const live = () => new AbortController().signal;

const source = (o: { key?: string; sas?: string; template?: string } = { key: ACCOUNT_KEY }) =>
  new AzureExportSource({
    endpoint: { template: o.template ?? storage.template },
    storageAccountId: ACCOUNT_ID,
    ...(o.key ? { accountKey: o.key } : {}),
    ...(o.sas ? { sas: o.sas } : {}),
  });

/** What no error may carry: the key, a SAS signature, the query. */
function expectNoSecret(e: unknown): void {
  const text = `${String(e)} ${JSON.stringify(e)} ${(e as Error).stack ?? ""}`;
  expect(text).not.toContain(ACCOUNT_KEY);
  expect(text).not.toMatch(/sig=|sv=|se=/);
}

async function failure(p: Promise<unknown>): Promise<Error & { statusCode?: number; code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { statusCode?: number; code?: string };
  }
  throw new Error("expected the read to fail");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ranged-get-"));
  storage = await startTestAzurite(join(dir, "azurite"));
  const cont = storage.client.getContainerClient("export-src");
  await cont.createIfNotExists();
  const blob = cont.getBlockBlobClient("dir/a file+name.bin");
  etag = (await blob.uploadData(data, { blockSize: 4 * MiB })).etag!;
}, 60_000);

afterAll(async () => {
  await storage?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("ranged GETs off the SDK", () => {
  const ref = { container: "export-src", name: "dir/a file+name.bin" };

  it("reads a range byte-exact into the caller's buffer, with the service's range MD5", async () => {
    const into = Buffer.alloc(4 * MiB);
    const r = await source().readRange(ref, 4 * MiB, 4 * MiB, etag, into, live());
    expect(r.data.buffer).toBe(into.buffer);
    expect(r.data.equals(data.subarray(4 * MiB, 8 * MiB))).toBe(true);
    expect(r.md5?.equals(md5(data.subarray(4 * MiB, 8 * MiB)))).toBe(true);
    // The last range is short: the blob ends.
    const tail = await source().readRange(ref, 8 * MiB, 4 * MiB, etag, into, live());
    expect(tail.data.equals(data.subarray(8 * MiB))).toBe(true);
  });

  it("reads a snapshot, and reads with the customer's SAS instead of the key", async () => {
    const blob = storage.client.getContainerClient("export-src").getBlockBlobClient(ref.name);
    const snap = await blob.createSnapshot();
    const snapRef = { ...ref, snapshot: snap.snapshot! };
    const into = Buffer.alloc(MiB);
    const r = await source().readRange(snapRef, 0, MiB, etag, into, live());
    expect(r.data.equals(data.subarray(0, MiB))).toBe(true);
    const sas = generateBlobSASQueryParameters(
      {
        containerName: "export-src",
        permissions: ContainerSASPermissions.parse("rl"),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
    ).toString();
    const viaSas = await source({ sas }).readRange(ref, MiB, MiB, etag, into, live());
    expect(viaSas.data.equals(data.subarray(MiB, 2 * MiB))).toBe(true);
  });

  it("a changed blob is a 412 (precondition), a missing container a 404, a wrong key a 403: the SDK's shape, no secret", async () => {
    const into = Buffer.alloc(MiB);
    const changed = await failure(source().readRange(ref, 0, MiB, '"0x8D000000000000"', into, live()));
    expect(changed.statusCode).toBe(412);
    expect(changed.code).toBe("ConditionNotMet");
    expect(classify(changed)).toBe("precondition");
    expect(changed.message).toContain("export-src/dir/a file+name.bin at 0");
    expectNoSecret(changed);

    const missing = await failure(
      source().readRange({ ...ref, container: "no-such-container" }, 0, MiB, etag, into, live()),
    );
    expect(classify(missing)).toBe("not-found");
    expectNoSecret(missing);

    const wrongKey = Buffer.from("not-the-key-of-this-account-000000").toString("base64");
    const refused = await failure(source({ key: wrongKey }).readRange(ref, 0, MiB, etag, into, live()));
    expect(refused.statusCode).toBe(403);
    expect(classify(refused)).toBe("forbidden");
    expectNoSecret(refused);
    expect(String(refused)).not.toContain(wrongKey);
  });

  it("an abort ends the request with the signal's reason", async () => {
    const abort = new AbortController();
    const p = source().readRange(ref, 0, 4 * MiB, etag, Buffer.alloc(4 * MiB), abort.signal);
    abort.abort(new Error("drive pulled"));
    await expect(p).rejects.toThrow("drive pulled");
  });

  it("a connection dropped mid-body is retryable, and a service that sends more than asked is refused", async () => {
    let mode: "drop" | "more" = "drop";
    const server = http.createServer((_req, res) => {
      res.writeHead(206, { "content-length": String(2 * MiB) });
      if (mode === "drop") {
        res.write(Buffer.alloc(MiB));
        setImmediate(() => res.socket?.destroy());
      } else res.end(Buffer.alloc(2 * MiB));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const template = `http://127.0.0.1:${(server.address() as AddressInfo).port}/{account}`;
      const into = Buffer.alloc(2 * MiB);
      const dropped = await failure(
        source({ key: ACCOUNT_KEY, template }).readRange(ref, 0, 2 * MiB, etag, into, live()),
      );
      expect(classify(dropped)).toBe("retryable");
      expectNoSecret(dropped);
      mode = "more";
      const more = await failure(
        source({ key: ACCOUNT_KEY, template }).readRange(ref, 0, MiB, etag, into, live()),
      );
      expect(more.message).toMatch(/sent more than 1048576 bytes/);
      expect(classify(more)).toBe("permanent");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("a proxy in the environment sends the reads through the SDK, which honours it", async () => {
    expect(proxyConfigured({})).toBe(false);
    expect(proxyConfigured({ https_proxy: "http://proxy:3128" })).toBe(true);
    expect(proxyConfigured({ HTTP_PROXY: "http://proxy:3128" })).toBe(true);
    // A forward proxy that passes each request on and counts the ranged GETs it carried.
    let proxiedGets = 0;
    const proxy = http.createServer((req, res) => {
      if (req.method === "GET" && (req.headers.range || req.headers["x-ms-range"])) proxiedGets++;
      const out = http.request(req.url!, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      });
      req.pipe(out);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const before = process.env.HTTP_PROXY;
    process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const into = Buffer.alloc(MiB);
      const r = await source().readRange(ref, 2 * MiB, MiB, etag, into, live());
      expect(r.data.equals(data.subarray(2 * MiB, 3 * MiB))).toBe(true);
      expect(r.md5?.equals(md5(data.subarray(2 * MiB, 3 * MiB)))).toBe(true);
      expect(proxiedGets).toBe(1);
    } finally {
      if (before === undefined) delete process.env.HTTP_PROXY;
      else process.env.HTTP_PROXY = before;
      proxy.closeAllConnections();
      proxy.close();
    }
  });
});
