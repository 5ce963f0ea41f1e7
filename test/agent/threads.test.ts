/**
 * The agent sizes its own threads. libuv's I/O pool is fixed when it first runs, which an ES module
 * entry has done before its first line: setting UV_THREADPOOL_SIZE there changes nothing (shown
 * below), so the agent relaunches itself with the size (agent/relaunch.ts). Proven with blocking
 * thread-pool work: K opens of FIFOs nobody writes hold K I/O threads; a stat then completes only
 * when the pool has more than K threads.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { threadSizes } from "../../agent/threads.js";
import { agentEntry } from "../../src/staging/agent-process.js";
import { useTempDir } from "../support/tmp.js";

const tmp = useTempDir();
const relaunchModule = () => pathToFileURL(join(dirname(agentEntry()), "relaunch.js")).href;

/** Blocks 6 I/O threads on FIFO opens, then says whether a stat still got a thread; frees them after. */
const PROBE = `
const { execFileSync } = await import("node:child_process");
const fs = (await import("node:fs")).default;
const fifos = [];
for (let i = 0; i < 6; i++) {
  const p = process.env.PROBE_DIR + "/fifo" + process.pid + "-" + i;
  execFileSync("mkfifo", [p]);
  fifos.push(p);
  fs.promises.open(p, "r").then((h) => h.close());
}
const verdict = await Promise.race([
  fs.promises.stat("/").then(() => "parallel"),
  new Promise((r) => setTimeout(() => r("starved"), 3000)),
]);
for (const p of fifos) fs.closeSync(fs.openSync(p, "w"));
console.log(verdict + " pool=" + process.env.UV_THREADPOOL_SIZE + " pid=" + process.pid);
`;

function run(
  script: string,
  env: Record<string, string> = {},
): Promise<{ out: string; code: number | null }> {
  const dir = tmp();
  const file = join(dir, "probe.mjs");
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, UV_THREADPOOL_SIZE: "", PROBE_DIR: dir, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ out, code })));
}

describe("thread sizes", () => {
  it("come from the config, else from the cores", () => {
    expect(threadSizes({}, 2)).toEqual({ io: 32, hash: 2, upload: 1 });
    expect(threadSizes({}, 16)).toEqual({ io: 64, hash: 16, upload: 8 });
    expect(threadSizes({}, 64)).toEqual({ io: 256, hash: 64, upload: 8 });
    expect(threadSizes({ ioThreads: 8, hashThreads: 0, uploadThreads: 0 }, 16)).toEqual({
      io: 8,
      hash: 0,
      upload: 0,
    });
  });
});

describe("libuv I/O threads", () => {
  it("setting UV_THREADPOOL_SIZE in an ES module entry comes too late: the pool keeps libuv's 4", async () => {
    const r = await run(`process.env.UV_THREADPOOL_SIZE = "8";\n${PROBE}`);
    expect(r.out).toMatch(/^starved pool=8/);
  }, 30_000);

  it("an entry that relaunches itself with its size gets the threads, started without the variable", async () => {
    const r = await run(
      `const { ensureIoThreads } = await import(${JSON.stringify(relaunchModule())});
if (ensureIoThreads(8, () => undefined) === "run") {\n${PROBE}\nprocess.exit(0); }`,
    );
    expect(r.out).toMatch(/^parallel pool=8/);
    expect(r.code).toBe(0);
  }, 30_000);

  it("the relaunched agent dies with its front, even by kill -9", async () => {
    const dir = tmp();
    const file = join(dir, "front.mjs");
    writeFileSync(
      file,
      `const { ensureIoThreads } = await import(${JSON.stringify(relaunchModule())});
if (ensureIoThreads(8, () => undefined) === "run") { console.log("child " + process.pid); setInterval(() => undefined, 1000); }`,
    );
    const front = spawn(process.execPath, [file], {
      env: { ...process.env, UV_THREADPOOL_SIZE: "" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    front.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 20_000;
    while (!/child \d+/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const child = Number(/child (\d+)/.exec(out)?.[1]);
    expect(child).not.toBe(front.pid);
    expect(alive(child)).toBe(true);
    front.kill("SIGKILL");
    while (alive(child) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(child)).toBe(false);
  }, 30_000);
});
