/**
 * One running agent per data directory. Two agents on one directory would both hold the same
 * station's drive leases and write the same blobs; that happens for a moment after a kill -9 of a
 * relaunch front (its child ends only once it sees the front gone) or when an operator starts a
 * second agent by hand. The lock is SQLite's exclusive lock on `<dataDir>/agent.lock`: an fcntl lock
 * the kernel lets go of when the holder dies, however it dies, so no stale lock file can block a
 * restart. A new agent waits for the old one to end, then fails with a clear error.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { StationError } from "../src/errors.js";

export interface InstanceLock {
  readonly file: string;
  release(): void;
}

const isBusy = (e: unknown): boolean =>
  /SQLITE_BUSY|SQLITE_LOCKED|database is locked/i.test(String((e as Error)?.message ?? e)) ||
  ["SQLITE_BUSY", "SQLITE_LOCKED"].includes((e as { code?: string })?.code ?? "");

/** Held connections: a collected connection would close, and let go of the lock, by itself. */
const held = new Set<Database.Database>();

/** Takes the lock once, or returns undefined while another process holds it. */
function tryLock(file: string): InstanceLock | undefined {
  const db = new Database(file, { timeout: 0 });
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    // An open write transaction holds the exclusive lock until the connection (the process) ends.
    db.exec("BEGIN EXCLUSIVE");
    held.add(db);
    return {
      file,
      release: () => {
        held.delete(db);
        if (db.open) db.close();
      },
    };
  } catch (e) {
    db.close();
    if (isBusy(e)) return undefined;
    throw e;
  }
}

/**
 * Holds the data directory's lock, waiting up to `waitMs` (calling `onWait` once) for an agent that
 * still holds it to end.
 */
export async function holdInstanceLock(
  dataDir: string,
  o: { waitMs: number; onWait?: (file: string) => void; pollMs?: number },
): Promise<InstanceLock> {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "agent.lock");
  const until = Date.now() + o.waitMs;
  let told = false;
  for (;;) {
    const lock = tryLock(file);
    if (lock) return lock;
    if (Date.now() >= until)
      throw new StationError(
        "AgentAlreadyRunning",
        `another drive-station agent is running on the data directory ${dataDir} (it holds ${file}) and did not end within ${Math.round(o.waitMs / 1000)} s. Stop it (systemctl stop drive-station, or end the process that has the file open: fuser -v ${file}), then start this one again; or give this agent its own dataDir.`,
      );
    if (!told) o.onWait?.(file);
    told = true;
    await sleep(o.pollMs ?? 100);
  }
}
