/** A real Azurite (the official emulator) for a test suite, on a free port, with the given accounts. */
import { createServer } from "node:net";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { type RunningAzurite, startAzurite } from "../../src/storage/embedded-azurite.js";

export const ACCOUNT = "stationacct";
export const ACCOUNT_KEY = Buffer.from("drive-station-test-account-key-0123456789").toString("base64");

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

export interface TestAzurite {
  port: number;
  template: string;
  azurite: RunningAzurite;
  client: BlobServiceClient;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestAzurite(location: string): Promise<TestAzurite> {
  const port = await freePort();
  const opts = { location, host: "127.0.0.1", port, accounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }] };
  const t: TestAzurite = {
    port,
    template: `http://127.0.0.1:${port}/{account}`,
    azurite: await startAzurite(opts),
    client: new BlobServiceClient(
      `http://127.0.0.1:${port}/${ACCOUNT}`,
      new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
    ),
    async restart() {
      t.azurite = await startAzurite(opts);
    },
    async stop() {
      await t.azurite.stop();
    },
  };
  return t;
}
