/** `station demo`: the first-run import (as root, against `npm start`). */
import { join, resolve } from "node:path";
import { type Command, Option } from "commander";
import { DEV_ACCOUNT, runDemo } from "../demo/demo.js";
import { connect, positiveInt, print } from "./common.js";

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "as root: build a demo drive, create and ship an import job, plug the drive in, watch it import",
    )
    .option("--images <dir>", "the loop-image directory the agent watches (default: DATA_DIR/demo-drives)")
    .option("--data-mib <n>", "MiB of sample data on the drive", positiveInt("--data-mib", 4096), 48)
    .addOption(
      new Option("--fs <type>", "the drive's filesystem").choices(["ext4", "ntfs", "exfat"]).default("ext4"),
    )
    .option("--account <name>", "storage account of the job", DEV_ACCOUNT)
    .option("--account-key-file <file>", "the account's key (default: Azurite's well-known dev key)")
    .option("--blob-endpoint <url>", "blob endpoint, {account} replaced", "http://127.0.0.1:10000/{account}")
    .option("--timeout <seconds>", "give up after this long", positiveInt("--timeout", 86_400), 600)
    .option("--keep", "keep the drive plugged in and its image afterwards")
    .action(
      async (
        o: {
          images?: string;
          dataMib: number;
          fs: "ext4" | "ntfs" | "exfat";
          account: string;
          accountKeyFile?: string;
          blobEndpoint: string;
          timeout: number;
          keep?: boolean;
        },
        cmd: Command,
      ) => {
        const dataDir = resolve(cmd.optsWithGlobals<{ dataDir: string }>().dataDir);
        await runDemo(connect(cmd), {
          dataDir,
          imagesDir: resolve(o.images ?? join(dataDir, "demo-drives")),
          dataMiB: o.dataMib,
          fs: o.fs,
          account: o.account,
          ...(o.accountKeyFile ? { accountKeyFile: o.accountKeyFile } : {}),
          blobEndpoint: o.blobEndpoint,
          timeoutSeconds: o.timeout,
          keep: Boolean(o.keep),
          say: print,
        });
      },
    );
}
