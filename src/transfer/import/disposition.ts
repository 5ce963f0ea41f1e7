/**
 * The import disposition (reference §1.6), decided in one place for every blob kind: what to do
 * when the target name turns out to be taken. Small blobs find out from their conditional Put
 * (If-None-Match: *), large ones by probing before the first block; both ask `taken()`.
 */
import type { LogBlob } from "../../formats/drive-log.js";
import type { ImportDisposition } from "../../formats/status.js";

const MAX_RENAMES = 1000;

/** The blob name after the n-th rename: `a.jpg` → `a (2).jpg`, `name` → `name (2)` (reference §1.6). */
export function renamed(name: string, n: number): string {
  if (n <= 1) return name;
  const slash = name.lastIndexOf("/");
  const dot = name.lastIndexOf(".");
  if (dot > slash + 1) return `${name.slice(0, dot)} (${n})${name.slice(dot)}`;
  return `${name} (${n})`;
}

/**
 * - `write`: write to `target` (the same name again, a renamed one, or unconditionally when `overwrite`);
 * - `ours`: the name holds this blob's exact bytes from an earlier run of ours: done, nothing sent;
 * - `skipped`: no-overwrite and the name is taken (the entry says Skipped);
 * - `no-name`: no free name after 1000 renames.
 */
export type Step = "write" | "ours" | "skipped" | "no-name";

export class Disposition {
  target: string;
  /** Write without If-None-Match (overwrite, after the name was found taken). */
  overwrite = false;
  private n = 1;

  constructor(
    private readonly container: string,
    private readonly name: string,
    private readonly requested: ImportDisposition,
    private readonly entry: LogBlob,
    start = name,
  ) {
    this.target = start;
  }

  get conditions(): { ifNoneMatch?: string } {
    return this.overwrite ? {} : { ifNoneMatch: "*" };
  }

  /**
   * `target` is taken by `found` (undefined: it was deleted meanwhile). `ours` tells whether the
   * blob there holds exactly this blob's bytes written by an earlier run of this drive.
   */
  async taken(found: object | undefined, ours: () => Promise<boolean>): Promise<Step> {
    if (!found) return "write";
    if (await ours()) return "ours";
    if (this.requested === "no-overwrite") {
      this.entry.disposition = { requested: this.requested, status: "Skipped" };
      delete this.entry.chunks;
      return "skipped";
    }
    if (this.requested === "overwrite") {
      this.overwrite = true;
      this.entry.disposition = { requested: this.requested, status: "Overwritten" };
      return "write";
    }
    this.n++;
    if (this.n > MAX_RENAMES) return "no-name";
    this.target = renamed(this.name, this.n);
    return "write";
  }

  /** Records a rename in the entry once the blob is written (or found ours) under `target`. */
  settle(): void {
    if (this.n > 1) {
      this.entry.disposition = { requested: this.requested, status: "Renamed" };
      this.entry.blobPath = `${this.container}/${this.target}`;
    }
  }

  /** The name was taken between the check and the commit (a large blob): the entry's outcome. */
  raced(): "skipped" | "no-name" {
    if (this.requested !== "no-overwrite") return "no-name";
    this.entry.disposition = { requested: this.requested, status: "Skipped" };
    delete this.entry.chunks;
    return "skipped";
  }
}
