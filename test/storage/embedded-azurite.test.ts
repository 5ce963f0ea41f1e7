/** The embedded Azurite cannot be orphaned or mistaken for another server. */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startAzurite } from "../../src/storage/embedded-azurite.js";
import { portHolders } from "../../src/storage/port-holder.js";
import { freePort } from "../support/azurite.js";
import { built } from "../support/built.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "ds-azurite-"));
  dirs.push(d);
  return d;
};
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(safeStat(pid));
const safeStat = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return "";
  }
};
async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("embedded Azurite", () => {
  it("refuses a port another process holds, naming the port and the process", async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
    try {
      await expect(startAzurite({ location: temp(), host: "127.0.0.1", port })).rejects.toThrow(
        new RegExp(`127\\.0\\.0\\.1:${port} is already held by pid ${process.pid} \\(`),
      );
    } finally {
      squatter.close();
    }
  });

  it("answers as Azurite on a socket its own child holds, and stop leaves no process", async () => {
    const port = await freePort();
    const az = await startAzurite({ location: temp(), host: "127.0.0.1", port });
    const pid = az.process.pid!;
    expect(portHolders(port).holders.map((h) => h.pid)).toEqual([pid]);
    await az.stop();
    await until("the child to go", () => !alive(pid), 5000);
    expect(portHolders(port).listening).toBe(false);
  });

  it("leaves by itself when the agent that started it is killed with SIGKILL", async () => {
    const port = await freePort();
    const location = temp();
    const script = `
      const { startAzurite } = await import(${JSON.stringify(built("src/storage/embedded-azurite.js"))});
      const az = await startAzurite({ location: ${JSON.stringify(location)}, host: "127.0.0.1", port: ${port} });
      console.log("AZURITE " + az.process.pid);
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    parent.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await until("the embedded Azurite", () => /AZURITE \d+/.test(out), 30_000);
    const child = Number(/AZURITE (\d+)/.exec(out)![1]);
    expect(alive(child)).toBe(true);
    parent.kill("SIGKILL");
    await until("the orphan to leave", () => !alive(child), 15_000);
    expect(portHolders(port).listening).toBe(false);
    // The next start gets its own server.
    const next = await startAzurite({ location, host: "127.0.0.1", port });
    expect(next.process.pid).not.toBe(child);
    await next.stop();
  });
});
