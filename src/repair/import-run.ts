/**
 * `station repair-import`, the run: the copy log's failed blobs, each resolved to its original
 * file (sources, path map), repaired one after another (blocks in parallel through the block
 * pipeline), the progress file kept, the path map rewritten with what is still unresolved.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import PQueue from "p-queue";
import type pino from "pino";
import { md5Hex, readMetadataFile, readPropertiesFile } from "../formats/blob-properties.js";
import type { LogFileInfo } from "../formats/drive-log.js";
import type { BlobPort } from "../storage/blob-port.js";
import { BufferPool } from "../transfer/core/buffer-pool.js";
import { HashPool } from "../transfer/core/hash-pool.js";
import { retrier } from "../transfer/core/retry.js";
import { type Attributes, repairBlob } from "./import-blob.js";
import { parsePathMap, planRepair, type RepairItem, renderPathMap, resolveFile } from "./import-plan.js";
import { type RepairOutcome, RepairProgress } from "./import-progress.js";

const MiB = 1024 * 1024;

export interface RepairImportOptions {
  log: Buffer;
  /** The log blob's name, for the job name of derived block IDs (logs without `Id`). */
  logName?: string;
  jobName?: string;
  sources: string[];
  progressFile: string;
  pathMapFile: string;
  port: BlobPort;
  logger: pino.Logger;
  signal?: AbortSignal;
  concurrency?: number;
  /** Told of bytes read and verified, against the total of the blobs to repair. */
  onProgress?(done: number, total: number): void;
}

export interface RepairSummary {
  repaired: string[];
  fine: string[];
  /** Left alone: the name holds other data and the disposition is no-overwrite. */
  kept: string[];
  /** Drive paths written to the path map. */
  unresolved: { filePath: string; why: string }[];
  failed: { blobPath: string; reason: string }[];
  sent: { chunks: number; bytes: number };
}

const isFile = async (p: string) => (await stat(p).catch(() => undefined))?.isFile() ?? false;

export async function repairImport(o: RepairImportOptions): Promise<RepairSummary> {
  const signal = o.signal ?? new AbortController().signal;
  const logId = createHash("md5").update(o.log).digest("hex");
  const plan = await planRepair(o.log, {
    ...(o.jobName ? { jobName: o.jobName } : {}),
    ...(o.logName ? { logName: o.logName } : {}),
  });
  const progress = RepairProgress.open(o.progressFile, logId);
  const pathMap = existsSync(o.pathMapFile)
    ? parsePathMap(readFileSync(o.pathMapFile, "utf8"), o.pathMapFile)
    : new Map<string, string | undefined>();
  const summary: RepairSummary = {
    repaired: [],
    fine: [],
    kept: [],
    unresolved: [],
    failed: plan.refused.map((r) => ({ blobPath: r.blobPath, reason: r.reason })),
    sent: { chunks: 0, bytes: 0 },
  };
  const record = (blobPath: string, outcome: RepairOutcome) =>
    (outcome === "repaired" ? summary.repaired : outcome === "fine" ? summary.fine : summary.kept).push(
      blobPath,
    );

  const concurrency = o.concurrency ?? 8;
  // Both digests of every byte on threads, as the agent's import does; closed when the run ends.
  const hashes = new HashPool({ threads: Math.max(1, availableParallelism()) });
  const ctx = {
    port: o.port,
    pipeline: { queue: new PQueue({ concurrency }), pool: new BufferPool(4 * MiB, concurrency + 4), hashes },
    signal,
    retrying: retrier({ signal, policy: { attempts: 6, baseMs: 500, maxMs: 15_000 }, log: o.logger }),
    progress,
    sent: summary.sent,
    onRead: (n: number) => {
      done += n;
      o.onProgress?.(done, total);
    },
  };
  const fs = { isFile, realpath: (p: string) => realpath(p) };
  const todo: { item: RepairItem; path: string }[] = [];
  for (const item of plan.items) {
    const before = progress.done.get(item.blobPath);
    if (before) {
      record(item.blobPath, before);
      continue;
    }
    const r = await resolveFile(item.filePath, o.sources, pathMap, fs);
    if (r.kind === "found") todo.push({ item, path: r.path });
    else
      summary.unresolved.push({
        filePath: item.filePath,
        why: r.kind === "ambiguous" ? `found as different files: ${r.candidates.join(", ")}` : "not found",
      });
  }
  let done = 0;
  const total = todo.reduce((n, t) => n + t.item.length, 0);
  o.onProgress?.(0, total);

  try {
    for (const { item, path } of todo) {
      const attrs = await attributes(item, o.sources, pathMap);
      if ("failed" in attrs) {
        summary.failed.push({ blobPath: item.blobPath, reason: attrs.failed });
        continue;
      }
      await ctx.port.ensureContainer(item.container, signal).catch(() => undefined);
      const r = await repairBlob(ctx, item, path, attrs.value, attrs.needed);
      if (r.outcome === "failed") summary.failed.push({ blobPath: item.blobPath, reason: r.reason });
      else {
        progress.finish(item.blobPath, r.outcome);
        record(item.blobPath, r.outcome);
      }
    }
  } finally {
    await hashes.close();
  }

  // The path map: what was located stays, what is still unresolved is added for the user to fill in.
  const text = renderPathMap(
    pathMap,
    summary.unresolved.map((u) => u.filePath),
  );
  if (text || existsSync(o.pathMapFile)) writeFileSync(o.pathMapFile, text);
  return summary;
}

/** The blob's metadata and properties, from the files the log names (resolved like the data file). */
async function attributes(
  item: RepairItem,
  sources: string[],
  pathMap: Map<string, string | undefined>,
): Promise<{ value: Attributes; needed: boolean } | { failed: string }> {
  const value: Attributes = { headers: {}, metadata: {} };
  const fs = { isFile, realpath: (p: string) => realpath(p) };
  const files = (info: LogFileInfo | undefined) =>
    [info?.globalPath, info?.path].filter((f) => f !== undefined);
  for (const kind of ["metadata", "properties"] as const) {
    for (const f of files(item.log[kind])) {
      const r = await resolveFile(f.path, sources, pathMap, fs);
      if (r.kind !== "found")
        return { failed: `its ${kind} file ${f.path} is not under the sources (add it to the path map)` };
      const data = readFileSync(r.path);
      const hash = f.hash ?? md5Hex(data);
      if (kind === "metadata") {
        const m = await readMetadataFile(data, hash);
        if (!m.ok) return { failed: `${r.path}: ${m.message}` };
        value.metadata = { ...value.metadata, ...m.value };
      } else {
        const p = await readPropertiesFile(data, hash, "import");
        if (!p.ok) return { failed: `${r.path}: ${p.message}` };
        const v = p.value;
        value.headers = {
          ...value.headers,
          ...(v["Content-Type"] ? { contentType: v["Content-Type"] } : {}),
          ...(v["Content-Encoding"] ? { contentEncoding: v["Content-Encoding"] } : {}),
          ...(v["Content-Language"] ? { contentLanguage: v["Content-Language"] } : {}),
          ...(v["Cache-Control"] ? { cacheControl: v["Cache-Control"] } : {}),
        };
      }
    }
  }
  const needed = [item.log.metadata, item.log.properties].some((i) => i && i.status !== "Completed");
  return { value, needed };
}
