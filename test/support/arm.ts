/** The real @azure/arm-storageimportexport client pointed at a station over TLS (self-signed CA). */
import { Agent } from "node:https";
import { StorageImportExport } from "@azure/arm-storageimportexport";
import type { AccessToken, TokenCredential } from "@azure/core-auth";

export function armClient(
  url: string,
  ca: Buffer,
  token: string,
  subscriptionId: string,
): StorageImportExport {
  const credential: TokenCredential = {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
  const agent = new Agent({ ca, keepAlive: false });
  return new StorageImportExport(credential, subscriptionId, {
    endpoint: url,
    additionalPolicies: [
      {
        policy: {
          name: "testCa",
          sendRequest: (req, next) => {
            req.agent = agent;
            return next(req);
          },
        },
        position: "perCall",
      },
    ],
    retryOptions: { maxRetries: 0 },
  });
}
