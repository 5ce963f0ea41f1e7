/** A real Azurite (the official emulator) for a test suite, on a free port, with the given accounts. */
import { createServer } from "node:net";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { type RunningAzurite, startAzurite } from "../../src/storage/embedded-azurite.js";

export const ACCOUNT = "stationacct";
export const ACCOUNT_KEY = Buffer.from("drive-station-test-account-key-0123456789").toString("base64");

/**
 * A port free now, for a process that binds it later. Chosen at random BELOW the kernel's
 * ephemeral range (ip_local_port_range, 32768+ by default): a port the kernel picked for
 * `listen(0)` could be handed to any other test's listen(0) or outgoing connection before the
 * process binds it (CI once saw EADDRINUSE that way). Below the range only another caller of this
 * function can take it, and a random pick makes that unlikely.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canBind(port)) return port;
    if (tries > 200) throw new Error("no free port found in 20000-31999");
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
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
