/**
 * Where the blobs go: the embedded Azurite (started here) or the configured Azure endpoint, the
 * station's account keys (export reads with them, never logged) and which subscription owns which account.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import type { RoleAssignment } from "../src/api/auth.js";
import { accountName, checkAccountOwner } from "../src/api/scope.js";
import { StationError } from "../src/errors.js";
import { AzureExportSource } from "../src/storage/azure-export-source.js";
import { accountFromResourceId } from "../src/storage/blob-access.js";
import {
  DEV_ACCOUNT,
  DEV_ACCOUNT_KEY,
  type RunningAzurite,
  startAzurite,
} from "../src/storage/embedded-azurite.js";
import type { AgentConfig } from "./config.js";

export interface StationStorage {
  /** The embedded Azurite, when storage.mode is embedded: the caller stops it. */
  azurite: RunningAzurite | undefined;
  /** Blob endpoint template, `{account}` replaced per job. */
  endpoint: string;
  /** The subscription (and resource group) that owns a storage account, when the config says. */
  accountOwner(account: string): RoleAssignment | undefined;
  /** An export source reading the job's account with this station's key for it. */
  exportSourceFor(storageAccountId: string): AzureExportSource;
}

export async function startStorage(
  config: AgentConfig,
  dataDir: string,
  log: Logger,
): Promise<StationStorage> {
  let azurite: RunningAzurite | undefined;
  let endpoint: string;
  if (config.storage.mode === "embedded") {
    const accounts = config.storage.accounts.length
      ? config.storage.accounts
      : [{ name: DEV_ACCOUNT, key: DEV_ACCOUNT_KEY }];
    azurite = await startAzurite({
      location: join(dataDir, "azurite"),
      host: config.storage.host,
      port: config.storage.port,
      accounts,
      onOrphan: (h) =>
        log.warn(
          { pid: h.pid, command: h.command },
          "an embedded Azurite left by an earlier agent still held the storage port: stopping it (not reusing it)",
        ),
    });
    // Azurite serves accounts path-style: http://host:port/<account>/<container>/<blob>
    endpoint = `http://${config.storage.host}:${config.storage.port}/{account}`;
    log.info({ endpoint }, "embedded Azurite started");
  } else {
    endpoint = config.storage.endpointTemplate;
  }
  // Export reads the job's account with the station's own key for it (never logged).
  const accountKeys = new Map<string, string>(
    (config.storage.mode === "embedded" && !config.storage.accounts.length
      ? [{ name: DEV_ACCOUNT, key: DEV_ACCOUNT_KEY }]
      : config.storage.accounts
    ).map((a) => [a.name, a.key]),
  );
  const owners = new Map<string, RoleAssignment>();
  for (const a of config.storage.accounts) {
    if (a.subscriptionId) {
      owners.set(a.name, {
        subscriptionId: a.subscriptionId,
        ...(a.resourceGroup ? { resourceGroup: a.resourceGroup } : {}),
      });
    } else if (config.storage.mode === "azure") {
      log.warn(
        { account: a.name },
        "storage account key without an owning subscriptionId: any customer job naming this account can export from it; set storage.accounts[].subscriptionId",
      );
    }
  }
  const accountOwner = (account: string) => owners.get(account.toLowerCase());
  const exportSourceFor = (storageAccountId: string) => {
    // Defence in depth: the API refused such a job already (checkAccountOwner at PUT).
    checkAccountOwner(storageAccountId, accountOwner(accountName(storageAccountId)));
    const account = accountFromResourceId(storageAccountId);
    const accountKey = accountKeys.get(account);
    if (!accountKey)
      throw new StationError(
        "StorageUnavailable",
        `This station holds no key for storage account '${account}': add it to storage.accounts in the config to export from it.`,
        { target: account },
      );
    return new AzureExportSource({ endpoint: { template: endpoint }, storageAccountId, accountKey });
  };
  return { azurite, endpoint, accountOwner, exportSourceFor };
}
