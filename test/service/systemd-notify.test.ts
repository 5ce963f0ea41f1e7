/**
 * systemd integration without systemd: the real agent under a fake NOTIFY_SOCKET (a python3
 * datagram receiver) must send READY=1, STATUS=, WATCHDOG=1 and, on SIGTERM, STOPPING=1, then exit 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { watchdogIntervalMs } from "../../agent/systemd.js";
import { OPERATOR_TOKEN, stationLocation } from "../support/agent.js";
import { built } from "../support/built.js";

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv(65536).decode().replace("\\n", "|"), flush=True)
`;

const procs: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill("SIGKILL");
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function collect(p: ChildProcess): () => string {
  let out = "";
  p.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  p.stderr!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return () => out;
}

async function until(what: string, ok: () => boolean, text: () => string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${text()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("watchdog interval", () => {
  it("is half of WATCHDOG_USEC, and only for this pid", () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000" }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "42" }, 42)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: "30000000", WATCHDOG_PID: "7" }, 42)).toBeUndefined();
    expect(watchdogIntervalMs({}, 42)).toBeUndefined();
  });
});

describe("sd_notify (fake NOTIFY_SOCKET)", () => {
  it("sends READY=1 once the API answers, STATUS= and WATCHDOG=1, and STOPPING=1 on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ds-notify-"));
    dirs.push(dir);
    const socket = join(dir, "notify.sock");
    const receiver = spawn("python3", ["-c", RECEIVER, socket], { stdio: ["ignore", "pipe", "pipe"] });
    procs.push(receiver);
    const received = collect(receiver);
    await until("the receiver", () => received().includes("bound"), received);

    const config = join(dir, "agent.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: join(dir, "data"),
        api: {
          host: "127.0.0.1",
          port: 0,
          tokens: [{ name: "op", token: OPERATOR_TOKEN, role: "operator" }],
        },
        station: { location: stationLocation },
        storage: { mode: "azure", endpointTemplate: "http://127.0.0.1:9/{account}" },
        drives: { enabled: false },
      }),
    );
    const agent = spawn(process.execPath, [built("agent/main.js"), "--config", config], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: "400000", WATCHDOG_PID: "" },
    });
    procs.push(agent);
    const output = collect(agent);
    const both = () => `--- notifications ---\n${received()}\n--- agent ---\n${output()}`;
    await until("READY=1", () => received().includes("READY=1"), both);
    // READY=1 comes after the API listens: the agent printed its URL, and it answers.
    const url = /listening on (\S+)/.exec(output())?.[1];
    expect(url).toBeDefined();
    expect(
      (await fetch(`${url}/station/v1/jobs`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } }))
        .status,
    ).toBe(200);
    const ready = received()
      .split("\n")
      .find((l) => l.includes("READY=1"))!;
    expect(ready).toContain(`MAINPID=${agent.pid}`);
    expect(ready).toContain("STATUS=0 drives attached, 0 transferring");
    await until("two WATCHDOG=1", () => received().split("WATCHDOG=1").length > 2, both);

    const exited = new Promise<number | null>((r) => agent.once("exit", (code) => r(code)));
    agent.kill("SIGTERM");
    expect(await exited).toBe(0);
    await until("STOPPING=1", () => received().includes("STOPPING=1"), both);
    const lines = received().split("\n");
    expect(lines.findIndex((l) => l.includes("STOPPING=1"))).toBeGreaterThan(
      lines.findIndex((l) => l.includes("READY=1")),
    );
  });
});
