/**
 * DriveWatcher: polls scan adapters, diffs by key, emits attach/detach. A failing scan emits an
 * error and keeps that adapter's last good view, so a flaky lsblk call never looks like every
 * drive being pulled. Re-checks `running` after every await (a stop during a scan wins).
 */
import { EventEmitter } from "node:events";
import type { AttachedDrive } from "./model.js";
import type { Scan } from "./sources.js";

export interface DriveWatcherEvents {
  attach: [AttachedDrive];
  detach: [AttachedDrive];
  error: [Error, string];
  ready: [];
}

export class DriveWatcher extends EventEmitter<DriveWatcherEvents> {
  private readonly current = new Map<string, AttachedDrive>();
  private readonly lastGood = new Map<string, AttachedDrive[]>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private scanning: Promise<void> | undefined;
  /** When the last poll of every adapter finished (readiness: detection is running). */
  lastScanAt: number | undefined;

  constructor(
    private readonly scans: Record<string, Scan>,
    private readonly intervalMs: number,
  ) {
    super();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.scanOnce();
    this.emit("ready");
    this.schedule();
  }

  get isRunning(): boolean {
    return this.running;
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.scanning;
  }

  drives(): AttachedDrive[] {
    return [...this.current.values()];
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.scanOnce().finally(() => this.schedule());
    }, this.intervalMs);
  }

  /** One poll of every adapter. Public for tests that want a scan now. */
  scanOnce(): Promise<void> {
    this.scanning ??= this.doScan().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async doScan(): Promise<void> {
    const seen = new Map<string, AttachedDrive>();
    for (const [name, scan] of Object.entries(this.scans)) {
      let drives: AttachedDrive[];
      try {
        drives = await scan();
        this.lastGood.set(name, drives);
      } catch (e) {
        drives = this.lastGood.get(name) ?? [];
        this.emit("error", e as Error, name);
      }
      if (!this.running) return;
      for (const d of drives) seen.set(d.key, d);
    }
    for (const [key, d] of this.current) {
      if (!seen.has(key)) {
        this.current.delete(key);
        this.emit("detach", d);
      }
    }
    for (const [key, d] of seen) {
      if (!this.current.has(key)) {
        this.current.set(key, d);
        this.emit("attach", d);
      }
    }
    this.lastScanAt = Date.now();
  }
}
