/**
 * One agent per data directory (agent/instance-lock.ts). The race it closes: kill -9 of a relaunch
 * front leaves its child running until the child sees the front gone; a restart in that moment
 * would run two agents on one station's drives. Made deterministic by stopping the old child
 * (SIGSTOP) before its front is killed: it cannot end until it is let go (SIGCONT).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { holdInstanceLock } from "../../agent/instance-lock.js";
import { agentEntry, childrenOf } from "../../src/staging/agent-process.js";
import { relaunchingAgent } from "../support/relaunching-agent.js";
import { useTempDir } from "../support/tmp.js";

const tmp = useTempDir();
const running: (() => void)[] = [];
afterEach(() => {
  for (const end of running.splice(0)) end();
});

/** A process holding the lock on `dataDir` from the built module; resolves once it holds it. */
async function holderProcess(dataDir: string): Promise<number> {
  const module = pathToFileURL(join(agentEntry(), "..", "instance-lock.js")).href;
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(module)}); await m.holdInstanceLock(${JSON.stringify(dataDir)}, { waitMs: 0 }); console.log("held"); setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  running.push(() => child.kill("SIGKILL"));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => d.toString().includes("held") && resolve());
    child.on("exit", (code) => reject(new Error(`the holder exited (${code}) before it held the lock`)));
  });
  return child.pid!;
}

const gone = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

describe("one agent per data directory", () => {
  it("a second holder waits, then fails naming the directory and the next step; a kill -9 frees the lock", async () => {
    const dataDir = join(tmp(), "data");
    const holder = await holderProcess(dataDir);
    const refused = await holdInstanceLock(dataDir, { waitMs: 300, pollMs: 20 }).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(refused?.code).toBe("AgentAlreadyRunning");
    expect(refused?.message).toContain(dataDir);
    expect(refused?.message).toMatch(/systemctl stop drive-station/);

    let waitedFor: string | undefined;
    const taking = holdInstanceLock(dataDir, { waitMs: 60_000, pollMs: 20, onWait: (f) => (waitedFor = f) });
    await expect.poll(() => waitedFor, { timeout: 10_000 }).toBe(join(dataDir, "agent.lock"));
    process.kill(holder, "SIGKILL");
    const lock = await taking;
    lock.release();
    // Released: taken again at once.
    (await holdInstanceLock(dataDir, { waitMs: 0 })).release();
  });

  it("an agent restarted while its killed front's child still runs waits for that child to end", async () => {
    const agent = await relaunchingAgent(tmp());
    const first = agent();
    const second = agent();
    running.push(() => void first.cleanup().catch(() => undefined));
    running.push(() => void second.cleanup().catch(() => undefined));
    first.start();
    await first.ready(30_000);
    const [oldChild] = childrenOf(first.pid).filter((c) => !gone(c));
    expect(oldChild, "the relaunched agent").toBeGreaterThan(0);
    running.push(() => {
      try {
        process.kill(oldChild!, "SIGKILL");
      } catch {
        // gone
      }
    });

    process.kill(oldChild!, "SIGSTOP");
    process.kill(first.pid, "SIGKILL");
    await first.waitFor("the front to die", async () => (first.running ? undefined : true), 20_000);
    second.start();
    await second.waitFor(
      "the new agent to wait for the old one",
      async () => /waiting for the agent that holds .*agent\.lock/.test(second.output) || undefined,
      20_000,
    );
    // The old agent still holds the data directory: the new one has not opened its API.
    expect(second.output).not.toMatch(/listening on/);
    expect(gone(oldChild!)).toBe(false);

    process.kill(oldChild!, "SIGCONT"); // it sees its front gone and ends itself
    await second.ready(20_000);
    expect(gone(oldChild!) || isZombie(oldChild!)).toBe(true);
    const stopped = await second.signal("SIGTERM");
    expect(stopped.code === 0 || stopped.signal === "SIGTERM").toBe(true);
  });
});

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}
