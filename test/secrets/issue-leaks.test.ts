/**
 * The leaks issue 22 found, each as a new user would meet it: the built agent started on a bad
 * config prints the reason on stderr (and so into the journal), never the secret.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { stationLocation } from "../support/agent.js";
import { built } from "../support/built.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "ds-leaks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY = Buffer.alloc(64, 7).toString("base64");
const PASSWORD = "hunter2-correct-horse";

async function startWith(name: string, config: unknown): Promise<string> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ station: { location: stationLocation }, ...(config as object) }));
  const err = (await run(process.execPath, [built("agent/main.js"), "--config", file]).catch((e) => e)) as {
    code: number;
    stderr: string;
  };
  expect(err.code).toBe(78);
  return err.stderr;
}

describe("the config leaks of issue 22", () => {
  it("storage.accounts written as an object: names the key and the shape expected, not the key", async () => {
    const stderr = await startWith("object", { storage: { mode: "azure", accounts: { acct1: KEY } } });
    expect(stderr).not.toContain(KEY); // the leak first: it fails here on the old code
    expect(stderr).toContain(
      "storage.accounts = (hidden: an object with 1 other key): Invalid input: expected array, received object",
    );
    expect(stderr).toContain(
      "storage.accounts holds secrets, which are never shown; write it as an array of objects with name (the account), key (its base64 key)",
    );
  });

  it('an account written as the string "name:key"', async () => {
    const stderr = await startWith("string", { storage: { mode: "azure", accounts: [`acct1:${KEY}`] } });
    expect(stderr).not.toContain(KEY); // the leak first: it fails here on the old code
    expect(stderr).toContain(
      "storage.accounts.0 = (hidden: a string of 94 characters): Invalid input: expected object, received string",
    );
  });

  it("store.url with a password= query: the URL's non-secret parts, not the password", async () => {
    const stderr = await startWith("url", {
      store: { kind: "postgres", url: `mysql://db.example:3306/jobs?user=station&password=${PASSWORD}` },
    });
    expect(stderr).not.toContain(PASSWORD); // the leak first: it fails here on the old code
    expect(stderr).toContain(
      "store.url = mysql://db.example:3306/jobs?user=[redacted]&password=[redacted] (credentials hidden): must be a postgres:// URL",
    );
  });
});
