/**
 * The repair's progress file (RepairImport's `/r`): one JSON line per fact, appended and synced
 * before the step it guards goes on, so a run killed at any point resumes from it. Which blocks
 * landed is not recorded here: storage's uncommitted block list says so (as the import's resume).
 * The first line ties the file to one copy log: a progress file of another log is refused.
 */
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync } from "node:fs";
import { RepairInputError } from "./import-plan.js";

export type RepairOutcome = "repaired" | "fine" | "kept";

interface Line {
  log?: string;
  blob?: string;
  target?: string;
  done?: RepairOutcome;
}

export class RepairProgress {
  /** Blob → the name its repair writes (a rename picks a new one once, before the first block). */
  readonly targets = new Map<string, string>();
  readonly done = new Map<string, RepairOutcome>();

  private constructor(private readonly path: string) {}

  /** Opens (resumes) or starts the file for the log whose MD5 is `logId`. */
  static open(path: string, logId: string): RepairProgress {
    const p = new RepairProgress(path);
    if (existsSync(path)) {
      const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
      for (const [i, text] of lines.entries()) {
        let l: Line;
        try {
          l = JSON.parse(text) as Line;
        } catch {
          // A line cut by a crash mid-write can only be the last one.
          if (i === lines.length - 1) break;
          throw new RepairInputError(
            `${path} line ${i + 1} is not a progress record; start with a new --progress file`,
          );
        }
        if (i === 0) {
          if (l.log !== logId)
            throw new RepairInputError(
              `${path} is the progress of another copy log; give each log its own --progress file`,
            );
          continue;
        }
        if (l.blob && l.target) p.targets.set(l.blob, l.target);
        if (l.blob && l.done) p.done.set(l.blob, l.done);
      }
      if (lines.length > 0) return p;
    }
    p.append({ log: logId });
    return p;
  }

  private append(l: Line): void {
    const fd = openSync(this.path, "a");
    try {
      appendFileSync(fd, `${JSON.stringify(l)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** The blob's repair writes to `target`: recorded before its first request. */
  claim(blob: string, target: string): void {
    if (this.targets.get(blob) === target) return;
    this.targets.set(blob, target);
    this.append({ blob, target });
  }

  finish(blob: string, outcome: RepairOutcome): void {
    this.done.set(blob, outcome);
    this.append({ blob, done: outcome });
  }
}
