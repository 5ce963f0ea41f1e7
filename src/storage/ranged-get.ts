/**
 * One ranged GET of a blob's bytes, straight into the caller's buffer: the request export makes
 * for every 4 MiB of every blob. The SDK's `download()` (its policies, the typed deserialization
 * of some sixty response headers, its retriable stream, an async iteration over it, a copy of
 * each piece) cost ~2.0 CPU s per GB on the event loop, node:http alone ~1.2 (measured side by
 * side, 4 MiB ranges from Azurite); socket-get.ts has the kernel read the body into the buffer.
 * It does what export needs and no more: Range, If-Match, the range MD5, keep-alive connections,
 * an idle timeout, the abort signal.
 *
 * Authorization is a SAS in the query: the caller's own, or a read-only SAS the SDK signs from
 * the account key (held in memory, renewed an hour before it expires). The URL never goes into
 * an error: errors name the blob and the offset, and carry the SDK's shape (`statusCode`, `code`
 * = x-ms-error-code), so classify() (blob-access.ts) sorts them as before; a dropped connection
 * keeps Node's code (ECONNRESET, ...): retryable.
 */
import {
  BlobSASPermissions,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  type StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { blobUrlPath, type ExportBlobRef } from "./export-source.js";
import { SocketGet } from "./socket-get.js";

/** The service version the requests name (any the service and Azurite accept for a ranged GET). */
const VERSION = "2021-08-06";
const SAS_LIFETIME_MS = 4 * 3600_000;
const SAS_RENEW_BEFORE_MS = 3600_000;

export interface RangeGot {
  /** Bytes written at the start of the caller's buffer. */
  got: number;
  /** The service's MD5 of the range, when asked for and given. */
  md5?: Buffer;
}

/** The SAS a container's reads carry: the caller's, or signed from the account key. */
export type SasSource = { sas: string } | { key: StorageSharedKeyCredential };

/** True when the environment routes the SDK's requests through a proxy (the variables it reads); this client does not. */
export function proxyConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return ["HTTPS_PROXY", "ALL_PROXY", "HTTP_PROXY"].some((k) => env[k] || env[k.toLowerCase()]);
}

export class RangedGet {
  private readonly client: SocketGet;
  private readonly signed = new Map<string, { sas: string; renewAt: number }>();

  constructor(
    /** The account's blob endpoint, e.g. https://acct.blob.core.windows.net or http://127.0.0.1:10000/acct. */
    private readonly base: URL,
    private readonly auth: SasSource,
    idleTimeoutMs = 120_000,
  ) {
    this.client = new SocketGet(base, idleTimeoutMs);
  }

  /** A container SAS (read) for base blobs; a snapshot gets its own (Azurite refuses a container SAS there). */
  private sasFor(ref: ExportBlobRef): string {
    if ("sas" in this.auth) return this.auth.sas;
    const now = Date.now();
    const id = ref.snapshot ? `${ref.container}/${ref.name}?${ref.snapshot}` : ref.container;
    const cached = this.signed.get(id);
    if (cached && cached.renewAt > now) return cached.sas;
    const times = {
      startsOn: new Date(now - 15 * 60_000), // the service's clock may run behind ours
      expiresOn: new Date(now + SAS_LIFETIME_MS),
    };
    const sas = generateBlobSASQueryParameters(
      ref.snapshot
        ? {
            containerName: ref.container,
            blobName: ref.name,
            snapshotTime: ref.snapshot,
            permissions: BlobSASPermissions.parse("r"),
            ...times,
          }
        : { containerName: ref.container, permissions: ContainerSASPermissions.parse("r"), ...times },
      this.auth.key,
    ).toString();
    if (this.signed.size > 10_000) this.signed.clear(); // snapshots' SASs are one each: bound them
    this.signed.set(id, { sas, renewAt: now + SAS_LIFETIME_MS - SAS_RENEW_BEFORE_MS });
    return sas;
  }

  /**
   * `length` bytes of `ref` at `offset` into `into` (from its start), only while its ETag is
   * `etag`. Rejects when the service sends more than `length` bytes.
   */
  async read(
    ref: ExportBlobRef,
    offset: number,
    length: number,
    etag: string,
    into: Buffer,
    rangeMd5: boolean,
    signal: AbortSignal,
  ): Promise<RangeGot> {
    const at = `${ref.container}/${ref.name}${ref.snapshot ? ` (snapshot ${ref.snapshot})` : ""} at ${offset}`;
    if (length > into.length) throw new Error(`${at}: ${length} bytes do not fit the buffer`);
    if (signal.aborted) throw signal.reason;
    const path = `${this.base.pathname.replace(/\/$/, "")}${blobUrlPath(ref)}`;
    const sas = this.sasFor(ref);
    const a = await this.client
      .get(
        `${path}${ref.snapshot ? "&" : "?"}${sas}`,
        {
          Range: `bytes=${offset}-${offset + length - 1}`,
          "If-Match": etag,
          "x-ms-version": VERSION,
          ...(rangeMd5 ? { "x-ms-range-get-content-md5": "true" } : {}),
        },
        into,
        length,
        signal,
      )
      .catch((e: unknown) => {
        if (signal.aborted) throw e;
        const err = e as NodeJS.ErrnoException;
        // Our own message, with the blob and offset; Node's code (retryable or not) kept.
        throw Object.assign(new Error(`${at}: ${err.message}`), err.code ? { code: err.code } : {});
      });
    if (a.status !== 200 && a.status !== 206) {
      const code = a.headers.get("x-ms-error-code");
      const e = new Error(`${at}: the service answered ${a.status}${code ? ` ${code}` : ""}`);
      throw Object.assign(e, { statusCode: a.status, ...(code ? { code } : {}) });
    }
    const md5 = rangeMd5 ? a.headers.get("content-md5") : undefined;
    return { got: a.got, ...(md5 ? { md5: Buffer.from(md5, "base64") } : {}) };
  }
}
