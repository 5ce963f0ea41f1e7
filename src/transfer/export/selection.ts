/**
 * Which blobs an export job takes (reference §4.5, §7): explicit blob paths (with or without
 * their snapshots, or one snapshot), prefixes, or the same two read from the job's blob-list
 * blob. Pure rules plus one walk over a small listing port.
 *
 * Prefix semantics (§4.5), exactly: a prefix matches when `/container/blobname` starts with it as
 * a plain string. `/` is every blob of every container (the root container included), `/book`
 * every blob of every container whose name starts with `book`, `/bob/` container `bob` only,
 * `/music/love` blobs of `music` whose names start with `love`, `/$root/` the root container.
 * Prefixes select base blobs; snapshots are taken only through `BlobPath` (IncludeSnapshots,
 * default true, or SnapshotTime), the one place the format names them.
 *
 * Order: every selected blob once, sorted by container, name, then snapshot (snapshots before
 * the base blob, oldest first): stable whatever order the job lists its selectors in.
 */
import type { BlobListEntry } from "../../formats/blob-list.js";
import { checkBlobPath } from "../../formats/names.js";
import type { ExportSelection } from "../../lifecycle/model.js";
import { classify } from "../../storage/blob-access.js";
import type { ExportBlobInfo, ExportSource } from "../../storage/export-source.js";

export type Selector = BlobListEntry;

/** A selector that selected nothing, for the copy log and preview-export ("nonexistent"). */
export interface Missing {
  /** The blob path or prefix as the job gave it. */
  selector: string;
  reason: string;
}

/** The job's inline selection as selectors; a `blobListBlobPath` is read by the caller. */
export function inlineSelectors(sel: ExportSelection): Selector[] {
  const out: Selector[] = [];
  for (const p of sel.blobList?.blobPath ?? []) out.push({ kind: "path", path: p, includeSnapshots: true });
  for (const p of sel.blobList?.blobPathPrefix ?? []) out.push({ kind: "prefix", prefix: p });
  return out;
}

/** Does `/container/name` start with the prefix (§4.5)? */
export function prefixMatches(prefix: string, container: string, name: string): boolean {
  return `/${container}/${name}`.startsWith(prefix);
}

/**
 * Where a prefix must be listed: containers starting with `containerPrefix` (all of their blobs),
 * or one container and a name prefix once the prefix names a whole container.
 */
export function prefixScope(
  prefix: string,
):
  | { kind: "containers"; containerPrefix: string }
  | { kind: "container"; container: string; namePrefix: string } {
  const rest = prefix.slice(1);
  const slash = rest.indexOf("/");
  if (slash < 0) return { kind: "containers", containerPrefix: rest };
  return { kind: "container", container: rest.slice(0, slash), namePrefix: rest.slice(slash + 1) };
}

/** The stable export order: container, name, then snapshots (oldest first) before the base blob. */
export function compareBlobs(a: ExportBlobInfo, b: ExportBlobInfo): number {
  if (a.container !== b.container) return a.container < b.container ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  const sa = a.snapshot ?? "\uffff";
  const sb = b.snapshot ?? "\uffff";
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}

export const blobKey = (b: { container: string; name: string; snapshot?: string }): string =>
  `${b.container}/${b.name}${b.snapshot ? `\0${b.snapshot}` : ""}`;

export interface SelectionResult {
  blobs: ExportBlobInfo[];
  missing: Missing[];
  /** Selectors that repeat an earlier one (PreviewExport's "duplicate blob paths/prefixes"). */
  duplicates: number;
  /** Selected but not exportable (Archive tier): reported like missing ones. */
  unreadable: Missing[];
}

/** Resolves selectors against storage. Retries are the caller's (`call` wraps every request). */
export async function selectBlobs(
  selectors: Selector[],
  source: ExportSource,
  signal: AbortSignal,
  call: <T>(what: string, op: (s: AbortSignal) => Promise<T>) => Promise<T> = (_w, op) => op(signal),
): Promise<SelectionResult> {
  const found = new Map<string, ExportBlobInfo>();
  const missing: Missing[] = [];
  const seen = new Set<string>();
  let duplicates = 0;
  const add = (b: ExportBlobInfo) => found.set(blobKey(b), b);
  const drain = async (it: AsyncIterable<ExportBlobInfo>, keep: (b: ExportBlobInfo) => boolean) =>
    call("listing blobs", async () => {
      let n = 0;
      for await (const b of it) {
        if (signal.aborted) throw signal.reason;
        if (keep(b)) {
          add(b);
          n++;
        }
      }
      return n;
    });

  for (const s of selectors) {
    const id =
      s.kind === "prefix" ? `prefix:${s.prefix}` : `path:${s.path}:${s.snapshotTime ?? s.includeSnapshots}`;
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    if (s.kind === "prefix") {
      if (!s.prefix.startsWith("/")) {
        missing.push({ selector: s.prefix, reason: "a prefix starts with '/'" });
        continue;
      }
      const scope = prefixScope(s.prefix);
      let n = 0;
      if (scope.kind === "container") {
        n = await listIfExists(scope.container, scope.namePrefix);
      } else {
        const containers = await call("listing containers", async () => {
          const names: string[] = [];
          for await (const c of source.listContainers(scope.containerPrefix, signal)) names.push(c);
          return names;
        });
        for (const c of containers) n += await listIfExists(c, "");
      }
      if (n === 0) missing.push({ selector: s.prefix, reason: "no blob starts with this prefix" });
      continue;
    }
    const path = checkBlobPath(s.path.replace(/^\//, ""));
    if (!path.ok) {
      missing.push({ selector: s.path, reason: path.reason });
      continue;
    }
    const { container, name } = path;
    if (s.includeSnapshots) {
      const n = await listIfExists(container, name, true, (b) => b.name === name);
      if (n === 0) missing.push({ selector: s.path, reason: "no such blob" });
      continue;
    }
    try {
      const ref = { container, name, ...(s.snapshotTime ? { snapshot: s.snapshotTime } : {}) };
      add(await call(`reading ${s.path}`, (sig) => source.getBlob(ref, sig)));
    } catch (e) {
      if (classify(e) !== "not-found") throw e;
      missing.push({
        selector: s.snapshotTime ? `${s.path}?snapshot=${s.snapshotTime}` : s.path,
        reason: s.snapshotTime ? "no such snapshot" : "no such blob",
      });
    }
  }

  async function listIfExists(
    container: string,
    prefix: string,
    snapshots = false,
    keep: (b: ExportBlobInfo) => boolean = () => true,
  ): Promise<number> {
    try {
      return await drain(source.listBlobs(container, prefix, snapshots, signal), keep);
    } catch (e) {
      if (classify(e) === "not-found") return 0; // no such container
      throw e;
    }
  }

  const unreadable: Missing[] = [];
  const blobs: ExportBlobInfo[] = [];
  for (const b of found.values()) {
    if (b.archived)
      unreadable.push({ selector: `${b.container}/${b.name}`, reason: "the blob is in the Archive tier" });
    else blobs.push(b);
  }
  blobs.sort(compareBlobs);
  return { blobs, missing, duplicates, unreadable };
}
