/**
 * Blob access for one job: the job's storage account (from storageAccountId and the endpoint
 * rule) and the drive manifest's credential (account key or container SAS). The same code path
 * serves the embedded Azurite and a real account. Errors are classified once, here: retryable
 * (network, 408, 429, 5xx) vs permanent, from the SDK's statusCode and error code.
 */
import {
  AnonymousCredential,
  BlobServiceClient,
  type BlockBlobClient,
  ContainerClient,
  type PageBlobClient,
  RestError,
  type StoragePipelineOptions,
  StorageRetryPolicyType,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import type { Credential } from "../formats/manifest.js";

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

export interface JobStorageOptions {
  endpoint: StorageEndpoint;
  storageAccountId: string;
  credential: Credential;
  /** SDK-level retries for one request; the engine retries whole operations on top. */
  retry?: { maxTries: number; retryDelayInMs: number; maxRetryDelayInMs: number; tryTimeoutInMs: number };
}

/** Storage of one job, seen through one credential. */
export class JobStorage {
  readonly account: string;
  private readonly service?: BlobServiceClient;
  private readonly sasContainer?: ContainerClient;
  private readonly baseUrl: string;

  constructor(readonly opts: JobStorageOptions) {
    this.account = accountFromResourceId(opts.storageAccountId);
    this.baseUrl = opts.endpoint.template.replace("{account}", this.account).replace(/\/$/, "");
    const r = opts.retry ?? {
      maxTries: 4,
      retryDelayInMs: 400,
      maxRetryDelayInMs: 4000,
      tryTimeoutInMs: 120_000,
    };
    const pipeline: StoragePipelineOptions = {
      retryOptions: { retryPolicyType: StorageRetryPolicyType.EXPONENTIAL, ...r },
      keepAliveOptions: { enable: true },
    };
    if (opts.credential.kind === "accountKey") {
      this.service = new BlobServiceClient(
        this.baseUrl,
        new StorageSharedKeyCredential(this.account, opts.credential.key),
        pipeline,
      );
    } else {
      this.sasContainer = new ContainerClient(
        `${this.baseUrl}/${opts.credential.container}?${opts.credential.token}`,
        new AnonymousCredential(),
        pipeline,
      );
    }
  }

  /** With a container SAS every blob must be in that container (reference §1.7). */
  get sasContainerName(): string | undefined {
    return this.opts.credential.kind === "containerSas" ? this.opts.credential.container : undefined;
  }

  container(name: string): ContainerClient {
    if (this.service) return this.service.getContainerClient(name);
    if (name !== this.sasContainerName)
      throw new Error(`container ${name} is outside the SAS container ${this.sasContainerName}`);
    return this.sasContainer!;
  }

  block(container: string, name: string): BlockBlobClient {
    return this.container(container).getBlockBlobClient(name);
  }

  page(container: string, name: string): PageBlobClient {
    return this.container(container).getPageBlobClient(name);
  }

  /** The blob's URL without any SAS token: safe to store, log and return in Get Job. */
  publicUrl(container: string, name: string): string {
    return `${this.baseUrl}/${container}/${name.split("/").map(encodeURIComponent).join("/")}`;
  }

  async ensureContainer(name: string, signal?: AbortSignal): Promise<void> {
    if (!this.service) return; // a SAS cannot create containers; the SAS container exists
    try {
      await this.service.getContainerClient(name).createIfNotExists({ abortSignal: signal });
    } catch (e) {
      if (classify(e) !== "conflict") throw e;
    }
  }
}
