/** The Dock runs the attach, detach and re-attach of one device strictly in order; other devices run alongside. */
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Dock } from "../../src/drives/door.js";
import type { AttachedDrive } from "../../src/drives/model.js";
import type { DriveWatcher } from "../../src/drives/watcher.js";
import type { JobService } from "../../src/jobs/service.js";
import type { NoticeLog } from "../../src/jobs/store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function harness() {
  const events: string[] = [];
  const watcher = new EventEmitter() as unknown as DriveWatcher;
  let calls = 0;
  const service = {
    // Slow, so an attach is still running when the detach of its device arrives.
    async list() {
      const n = ++calls;
      events.push(`list ${n} start`);
      await new Promise((r) => setTimeout(r, 60));
      events.push(`list ${n} end`);
      return { jobs: [] };
    },
  } as unknown as JobService;
  const log = {
    info: (o: unknown, msg?: string) => {
      if (msg === "drive detached") events.push(`detached ${(o as { drive: string }).drive}`);
    },
    warn: () => undefined,
    error: (_o: unknown, msg?: string) => events.push(`error ${msg}`),
  } as unknown as Logger;
  const dock = new Dock({
    watcher,
    exec: async () => ({ code: 0, stdout: "", stderr: "" }),
    service,
    notices: { add: async () => undefined } as unknown as NoticeLog,
    log,
    clock: { now: () => new Date("2026-01-01T00:00:00Z") },
    mountRoot: "/nonexistent",
  });
  return { events, watcher: watcher as unknown as EventEmitter, dock };
}

const drive = (key: string): AttachedDrive => {
  const root = mkdtempSync(join(tmpdir(), "ds-dock-"));
  dirs.push(root);
  return { key, kind: "mounted", device: root, size: 1, mountpoint: root } as AttachedDrive;
};

describe("dock serialisation", () => {
  it("handles attach, detach and re-attach of one device in order", async () => {
    const { events, watcher, dock } = harness();
    const a = drive("mounted:a");
    watcher.emit("attach", a);
    watcher.emit("detach", a);
    watcher.emit("attach", a);
    await dock.settled();
    expect(events).toEqual([
      "list 1 start",
      "list 1 end",
      "detached mounted:a",
      "list 2 start",
      "list 2 end",
    ]);
    expect(dock.list().map((d) => [d.key, d.status])).toEqual([["mounted:a", "unknown"]]);
  });

  it("a detach that arrives mid-attach leaves no drive behind", async () => {
    const { events, watcher, dock } = harness();
    const a = drive("mounted:a");
    watcher.emit("attach", a);
    watcher.emit("detach", a);
    await dock.settled();
    expect(events.at(-1)).toBe("detached mounted:a");
    expect(dock.list()).toEqual([]);
  });

  it("runs different devices side by side", async () => {
    const { events, watcher, dock } = harness();
    watcher.emit("attach", drive("mounted:a"));
    watcher.emit("attach", drive("mounted:b"));
    await dock.settled();
    // Both attaches started before either finished.
    expect(events.slice(0, 2)).toEqual(["list 1 start", "list 2 start"]);
    expect(dock.list()).toHaveLength(2);
  });
});
