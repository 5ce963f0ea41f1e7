/**
 * Blob access for one job: the job's storage account (from storageAccountId and the endpoint
 * rule) and the drive manifest's credential (account key or container SAS). The same code path
 * serves the embedded Azurite and a real account. Errors are classified once, here: retryable
 * (network, 408, 429, 5xx) vs permanent, from the SDK's statusCode and error code.
 */
import {
  AnonymousCredential,
  BlobClient,
  BlockBlobClient,
  ContainerClient,
  newPipeline,
  PageBlobClient,
  type Pipeline,
  RestError,
  type StoragePipelineOptions,
  StorageRetryPolicyType,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { StationError } from "../errors.js";
import type { Credential } from "../formats/manifest.js";
import { checkContainerName } from "../formats/names.js";
import { assertConfined, blobUrl, containerUrl, encodeBlobName } from "./blob-address.js";
import type { UploadTarget } from "./upload-threads.js";

export interface StorageEndpoint {
  /** `https://{account}.blob.core.windows.net` or, for Azurite, `http://127.0.0.1:10000/{account}`. */
  template: string;
}

export const accountFromResourceId = (storageAccountId: string): string =>
  storageAccountId.split("/").filter(Boolean).pop() ?? "";

export type StorageFailure =
  | "retryable"
  | "forbidden"
  | "conflict"
  | "not-found"
  | "precondition"
  | "permanent";

export function classify(e: unknown): StorageFailure {
  if (
    e instanceof RestError ||
    (e as { statusCode?: number }).statusCode !== undefined ||
    (e as { code?: string }).code
  ) {
    const status = (e as { statusCode?: number }).statusCode;
    const code = (e as { code?: string }).code ?? (e as RestError).details?.toString();
    if (status === undefined || status === 0) return "retryable"; // no response: network
    if (status === 403 || status === 401) return "forbidden";
    if (status === 404) return "not-found";
    if (status === 409) return "conflict";
    if (status === 412) return "precondition";
    if (status === 408 || status === 429 || status >= 500) return "retryable";
    if (code === "REQUEST_SEND_ERROR" || code === "ECONNREFUSED" || code === "ECONNRESET") return "retryable";
    return "permanent";
  }
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && /^E(CONN|TIMEDOUT|PIPE|AI_AGAIN|HOSTUNREACH|NETUNREACH)/.test(code)) return "retryable";
  return "permanent";
}

const statusOf = (e: unknown): number | undefined => (e as { statusCode?: number })?.statusCode;
/** The service's error code (`x-ms-error-code`), e.g. `AuthenticationFailed`, when there is one. */
export const storageErrorCode = (e: unknown): string | undefined => {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && !/^(REQUEST_SEND_ERROR|E[A-Z_]+)$/.test(code) ? code : undefined;
};

/** Why the account refused the drive's credential: status and service code only, never the key or SAS. */
export interface CredentialRefusal {
  status: number;
  code: string;
  cause: string;
}

/**
 * Whether `e` means the account refuses this credential itself, so every request made with it
 * will fail the same way: 401/403 (a wrong key, an expired, read-only or other container's SAS,
 * an account firewall), and with a SAS a missing container (a SAS cannot create it).
 */
export function credentialRefusal(e: unknown, sas: boolean): CredentialRefusal | undefined {
  const status = statusOf(e);
  const code = storageErrorCode(e);
  const what = sas ? "the drive's container SAS" : "the drive's account key";
  if (status === 401 || status === 403) {
    const c = code ?? "Forbidden";
    const why = !sas
      ? `the storage account refused ${what}`
      : c === "AuthorizationPermissionMismatch"
        ? `${what} lacks a permission the import needs (read, write, delete)`
        : c === "AuthorizationResourceTypeMismatch"
          ? `${what} does not grant access to this container or resource`
          : `the storage account refused ${what} (expired, revoked, signed for another container, or a firewall rule)`;
    return { status, code: c, cause: `${why} (${status} ${c})` };
  }
  if (sas && status === 404 && code === "ContainerNotFound")
    return {
      status,
      code,
      cause: `the container named by ${what} does not exist, and a SAS cannot create it (404 ContainerNotFound)`,
    };
  return undefined;
}

export interface JobStorageOptions {
  endpoint: StorageEndpoint;
  storageAccountId: string;
  credential: Credential;
  /** SDK-level retries for one request; the engine retries whole operations on top. */
  retry?: { maxTries: number; retryDelayInMs: number; maxRetryDelayInMs: number; tryTimeoutInMs: number };
}

const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

/**
 * Storage of one job, seen through one credential. Blob clients are built from URLs this class
 * encodes itself and checks (`assertConfined`) before any request: see blob-address.ts.
 */
export class JobStorage {
  readonly account: string;
  /** Set when the credential cannot work at all (a SAS naming an invalid container): no request is made. */
  readonly credentialProblem: string | undefined;
  private readonly pipeline: Pipeline;
  /** The SAS token (without '?') appended to every URL, or "" with an account key. */
  private readonly query: string;
  private readonly baseUrl: string;
  /** What an upload thread needs to make this job's requests as the event loop would. */
  readonly uploadTarget: UploadTarget;

  constructor(readonly opts: JobStorageOptions) {
    this.account = accountFromResourceId(opts.storageAccountId);
    this.baseUrl = opts.endpoint.template.replace("{account}", this.account).replace(/\/$/, "");
    const r = opts.retry ?? {
      maxTries: 4,
      retryDelayInMs: 400,
      maxRetryDelayInMs: 4000,
      tryTimeoutInMs: 120_000,
    };
    this.uploadTarget = {
      credential: {
        account: this.account,
        ...(opts.credential.kind === "accountKey" ? { key: opts.credential.key } : {}),
      },
      retry: r,
    };
    const pipeline: StoragePipelineOptions = {
      retryOptions: { retryPolicyType: StorageRetryPolicyType.EXPONENTIAL, ...r },
      keepAliveOptions: { enable: true },
    };
    if (!ACCOUNT_NAME.test(this.account))
      throw new StationError(
        "InvalidRequestContent",
        `'${this.account}' is not a storage account name (3-24 lower-case letters and digits)`,
      );
    if (opts.credential.kind === "accountKey") {
      this.pipeline = newPipeline(
        new StorageSharedKeyCredential(this.account, opts.credential.key),
        pipeline,
      );
      this.query = "";
      this.credentialProblem = undefined;
    } else {
      this.pipeline = newPipeline(new AnonymousCredential(), pipeline);
      this.query = opts.credential.token.replace(/^\?/, "");
      const bad = checkContainerName(opts.credential.container);
      this.credentialProblem = bad
        ? `the manifest's ContainerSas names no usable container: ${bad}`
        : undefined;
    }
  }

  /** With a container SAS every blob must be in that container (reference §1.7). */
  get sasContainerName(): string | undefined {
    return this.opts.credential.kind === "containerSas" ? this.opts.credential.container : undefined;
  }

  /** The container's client, for container operations only: blob clients come from `blob`/`block`/`page`. */
  container(name: string): ContainerClient {
    this.checkSas(name);
    return new ContainerClient(containerUrl(this.baseUrl, name, this.query), this.pipeline);
  }

  blob(container: string, name: string): BlobClient {
    return this.confined(container, name, (url) => new BlobClient(url, this.pipeline));
  }

  block(container: string, name: string): BlockBlobClient {
    return this.confined(container, name, (url) => new BlockBlobClient(url, this.pipeline));
  }

  page(container: string, name: string): PageBlobClient {
    return this.confined(container, name, (url) => new PageBlobClient(url, this.pipeline));
  }

  private checkSas(container: string): void {
    const sas = this.sasContainerName;
    if (sas !== undefined && container !== sas)
      throw new StationError(
        "AuthorizationFailed",
        `container ${container} is outside the SAS container ${sas}`,
        {
          target: container,
        },
      );
  }

  /** Builds the client from our own encoded URL, then checks the URL it will really send. */
  private confined<T extends BlobClient>(container: string, name: string, make: (url: string) => T): T {
    this.checkSas(container);
    const address = { container, name };
    const client = make(blobUrl(this.baseUrl, address, this.query));
    assertConfined(client.url, this.baseUrl, address);
    return client;
  }

  /** The blob's URL without any SAS token: safe to store, log and return in Get Job. */
  publicUrl(container: string, name: string): string {
    return `${this.baseUrl}/${container}/${encodeBlobName(name)}`;
  }

  async ensureContainer(name: string, signal?: AbortSignal): Promise<void> {
    if (this.opts.credential.kind === "containerSas") return; // a SAS cannot create containers; the SAS container exists
    try {
      await this.container(name).createIfNotExists({ abortSignal: signal });
    } catch (e) {
      if (classify(e) !== "conflict") throw e;
    }
  }
}
