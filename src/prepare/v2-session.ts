/**
 * `station prepare --dataset --driveset`: a WAImportExport v2 session on Linux (reference
 * §6.3-6.4). Validates everything first (nothing is written on a bad row), lays the plan down
 * in a journal next to the driveset, copies batch by batch (one worker per drive), records
 * each finished file with its chunk MD5s, then writes every drive's manifest and the job's
 * driveList entries. A killed session resumes from the journal; an aborted one is removed.
 */
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { md5Hex } from "../formats/blob-properties.js";
import { type Credential, MAX_CHUNK } from "../formats/manifest.js";
import { ManifestWriter } from "../formats/manifest-writer.js";
import {
  checkedListFile,
  hashAndCopy,
  MANIFEST_NAME,
  manifestChunks,
  PrepareError,
  type PrepareResult,
  SESSION_ID,
  writeManifestFile,
} from "./prepare-drive.js";
import { type DatasetRow, type DrivesetRow, parseDataset, parseDriveset } from "./v2-csv.js";
import { enumerateDataset, freeBytesOf, type PlannedFile, spreadBySize } from "./v2-plan.js";
import { driveSerial } from "./v2-serial.js";

export interface DriveEntry {
  driveId: string;
  manifestFile: string;
  manifestHash: string;
  bitLockerKey?: string;
}

export interface V2Options {
  datasetFile: string;
  drivesetFile: string;
  sessionId: string;
  credential: Credential;
  /** Where the session journal lives (never on a target drive); default: the driveset's directory. */
  journalDir?: string;
  mode: "start" | "resume" | "abort";
  blockSize?: number;
  batchFiles?: number;
  /** Progress lines (batch started, file copied). */
  onEvent?: (line: string) => void;
}

export interface V2Result {
  entries: DriveEntry[];
  drives: { mountPoint: string; driveId: string; files: number; bytes: number }[];
  /** Files found finished in the journal when resuming, and files copied by this run. */
  alreadyDone: number;
  copied: number;
  skipped: PrepareResult["skipped"];
}

interface Plan {
  sessionId: string;
  blockSize: number;
  rows: DatasetRow[];
  drives: { mountPoint: string; driveId: string; where: string }[];
  files: PlannedFile[];
  skipped: PrepareResult["skipped"];
}

const journalOf = (o: V2Options) =>
  join(resolve(o.journalDir ?? dirname(resolve(o.drivesetFile))), `${o.sessionId}.prep-journal`);

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw new PrepareError(
      `${file}: ${(e as NodeJS.ErrnoException).code ?? "unreadable"}. Next: check the path.`,
    );
  }
}

/** Parses and checks both CSV files and every source; returns the plan without writing anything. */
async function makePlan(o: V2Options, drives: DrivesetRow[], journal: string): Promise<Plan> {
  const rows = parseDataset(await readText(o.datasetFile), o.datasetFile);
  const blockSize = o.blockSize ?? MAX_CHUNK;
  for (const r of rows)
    for (const [kind, f] of [
      ["metadata", r.metadataFile],
      ["properties", r.propertiesFile],
    ] as const)
      if (f)
        await checkedListFile(kind, f).catch((e: Error) => {
          throw new PrepareError(`${r.where}: ${e.message}. Next: fix the ${kind} file or write None.`);
        });
  const resolved: Plan["drives"] = [];
  const free: number[] = [];
  for (const d of drives) {
    const mount = resolve(d.mountPoint);
    if (!(await stat(mount).catch(() => undefined))?.isDirectory())
      throw new PrepareError(`${d.where}: ${mount} is not a directory. Next: mount the drive there.`);
    if (`${journal}${sep}`.startsWith(`${mount}${sep}`))
      throw new PrepareError(
        `${d.where}: the session journal ${journal} would be on this drive. Next: pass --journal-dir on another disk.`,
      );
    if (existsSync(join(mount, MANIFEST_NAME)))
      throw new PrepareError(
        `${d.where}: ${mount} already has a ${MANIFEST_NAME} (an earlier preparation). Next: use an empty drive, or delete it to start over.`,
      );
    if (existsSync(join(mount, o.sessionId)))
      throw new PrepareError(
        `${d.where}: ${join(mount, o.sessionId)} exists already. Next: use a new session id.`,
      );
    const driveId = d.driveId ?? (await driveSerial(mount));
    if (!driveId)
      throw new PrepareError(
        `${d.where}: cannot read the serial number of the drive mounted at ${mount}. Next: add a DriveId column with the drive's serial (lsblk -dno SERIAL /dev/sdX).`,
      );
    if (resolved.some((r) => r.driveId === driveId))
      throw new PrepareError(`${d.where}: drive ${driveId} is listed twice. Next: list each drive once.`);
    resolved.push({ mountPoint: mount, driveId, where: d.where });
    free.push(await freeBytesOf(mount));
  }
  const { files, skipped } = await enumerateDataset(rows, o.sessionId, blockSize);
  const where = files.map((f) => ({ size: f.size, source: f.source, where: rows[f.row]!.where }));
  const placed = spreadBySize(where, free, o.batchFiles);
  return {
    sessionId: o.sessionId,
    blockSize,
    rows,
    drives: resolved,
    files: files.map((f, id) => ({ ...f, id, ...placed[id]! })),
    skipped,
  };
}

async function writeDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, "w");
  await fh.writeFile(text);
  await fh.sync();
  await fh.close();
  await rename(tmp, file);
}

/** The finished files of the journal: id -> chunk MD5s (hex). A torn last line is ignored. */
async function doneFiles(journal: string): Promise<Map<number, string[]>> {
  const done = new Map<number, string[]>();
  const text = await readFile(join(journal, "done.jsonl"), "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as { id: number; md5: string[] };
      done.set(r.id, r.md5);
    } catch {
      // the line being written when the process died: that file is copied again
    }
  }
  return done;
}

export async function prepareSession(o: V2Options): Promise<V2Result> {
  if (!SESSION_ID.test(o.sessionId))
    throw new PrepareError(`Session id '${o.sessionId}' must be 3-30 letters, digits, '_', '-' or '#'.`);
  const journal = journalOf(o);
  const drivesetRows = parseDriveset(await readText(o.drivesetFile), o.drivesetFile);
  const planFile = join(journal, "plan.json");
  if (o.mode === "abort") return abortSession(journal, planFile, o);
  let plan: Plan;
  if (o.mode === "resume") {
    if (!existsSync(planFile))
      throw new PrepareError(
        `No session ${o.sessionId} to resume in ${journal}. Next: start it without --resume (or pass its --journal-dir).`,
      );
    plan = JSON.parse(await readFile(planFile, "utf8")) as Plan;
    const mounts = drivesetRows.map((d) => resolve(d.mountPoint)).join("\n");
    if (mounts !== plan.drives.map((d) => d.mountPoint).join("\n"))
      throw new PrepareError(
        `${o.drivesetFile}: the drives differ from those session ${o.sessionId} started with. Next: mount the same drives at the same places.`,
      );
  } else {
    if (existsSync(journal))
      throw new PrepareError(
        `Session ${o.sessionId} was started before (${journal}). Next: --resume to finish it or --abort to remove it.`,
      );
    plan = await makePlan(o, drivesetRows, journal);
    await mkdir(journal, { recursive: true });
    await writeDurably(planFile, JSON.stringify(plan));
  }
  const done = await doneFiles(journal);
  const alreadyDone = done.size;
  let copied = 0;
  const log = await open(join(journal, "done.jsonl"), "a");
  let logTail = Promise.resolve();
  const record = (id: number, md5: string[]) => {
    logTail = logTail.then(async () => {
      await log.write(`${JSON.stringify({ id, md5 })}\n`);
      await log.sync();
    });
    return logTail;
  };
  try {
    const batches = Math.max(0, ...plan.files.map((f) => f.batch + 1));
    for (let batch = 0; batch < batches; batch++) {
      const todo = plan.files.filter((f) => f.batch === batch && !done.has(f.id));
      o.onEvent?.(`batch ${batch + 1}/${batches}: ${todo.length} files to copy`);
      await Promise.all(
        plan.drives.map(async (d, di) => {
          for (const f of todo.filter((x) => x.drive === di)) {
            const target = join(d.mountPoint, ...f.onDrive.split("/"));
            await unlink(target).catch(() => undefined); // a half-copied file from a killed run
            const chunk = f.blobType === "PageBlob" ? MAX_CHUNK : plan.blockSize;
            const hashes = await hashAndCopy(f.source, f.size, chunk, target);
            const md5 = hashes.map((h) => h.toString("hex").toUpperCase());
            await record(f.id, md5);
            done.set(f.id, md5);
            copied++;
          }
        }),
      );
    }
  } finally {
    await logTail.catch(() => undefined);
    await log.close();
  }
  const entries = await writeManifests(plan, done, o.credential, drivesetRows);
  // The journal keeps no BitLocker key (as v2's masks it).
  const kept = entries.map(({ bitLockerKey: _, ...e }) => e);
  await writeDurably(join(journal, "entries.json"), JSON.stringify(kept, null, 2));
  return {
    entries,
    drives: plan.drives.map((d, di) => {
      const mine = plan.files.filter((f) => f.drive === di);
      return {
        mountPoint: d.mountPoint,
        driveId: d.driveId,
        files: mine.length,
        bytes: mine.reduce((s, f) => s + f.size, 0),
      };
    }),
    alreadyDone,
    copied,
    skipped: plan.skipped,
  };
}

/** One manifest per drive: a BlobList per dataset row with files there, its files' chunks. */
async function writeManifests(
  plan: Plan,
  done: Map<number, string[]>,
  credential: Credential,
  drivesetRows: DrivesetRow[],
): Promise<DriveEntry[]> {
  const entries: DriveEntry[] = [];
  for (const [di, d] of plan.drives.entries()) {
    const text: string[] = [];
    const writer = new ManifestWriter((c) => text.push(c), {
      driveId: d.driveId,
      kind: "import",
      credential,
    });
    for (const [ri, row] of plan.rows.entries()) {
      const files = plan.files.filter((f) => f.drive === di && f.row === ri);
      if (files.length === 0) continue;
      const listFiles: {
        metadata?: { path: string; hash: string };
        properties?: { path: string; hash: string };
      } = {};
      for (const [kind, file] of [
        ["metadata", row.metadataFile],
        ["properties", row.propertiesFile],
      ] as const) {
        if (!file) continue;
        const data = await checkedListFile(kind, file);
        const name = `${ri + 1}-${kind}.xml`;
        await mkdir(join(d.mountPoint, plan.sessionId), { recursive: true });
        await writeFile(join(d.mountPoint, plan.sessionId, name), data);
        listFiles[kind] = { path: `\\${plan.sessionId}\\${name}`, hash: md5Hex(data) };
      }
      writer.blobList({ id: `${plan.sessionId}#${ri + 1}-0`, ...listFiles });
      for (const f of files) {
        const md5 = done.get(f.id);
        if (!md5) throw new PrepareError(`${f.source} was not copied. Next: run again with --resume.`);
        const chunk = f.blobType === "PageBlob" ? MAX_CHUNK : plan.blockSize;
        writer.blob({
          blobPath: f.blobPath,
          filePath: `\\${f.onDrive.split("/").join("\\")}`,
          length: f.size,
          kind: f.blobType === "PageBlob" ? "page" : "block",
          chunks: manifestChunks(
            md5.map((h) => Buffer.from(h, "hex")),
            f.size,
            chunk,
            f.blobType,
          ),
          disposition: row.disposition,
        });
      }
    }
    writer.end();
    const manifestHash = await writeManifestFile(d.mountPoint, text.join(""));
    const key = drivesetRows.find((r) => resolve(r.mountPoint) === d.mountPoint)?.bitLockerKey;
    entries.push({
      driveId: d.driveId,
      manifestFile: `\\${MANIFEST_NAME}`,
      manifestHash,
      ...(key ? { bitLockerKey: key } : {}),
    });
  }
  return entries;
}

/** Removes what an unfinished session put on its drives, then its journal. */
async function abortSession(journal: string, planFile: string, o: V2Options): Promise<V2Result> {
  if (!existsSync(planFile))
    throw new PrepareError(
      `No session ${o.sessionId} to abort in ${journal}. Next: check --session and --journal-dir.`,
    );
  if (existsSync(join(journal, "entries.json")))
    throw new PrepareError(
      `Session ${o.sessionId} finished; its drives are ready. Next: to start over, delete ${MANIFEST_NAME} and the ${o.sessionId} folder on each drive, and ${journal}.`,
    );
  const plan = JSON.parse(await readFile(planFile, "utf8")) as Plan;
  for (const d of plan.drives) {
    await rm(join(d.mountPoint, plan.sessionId), { recursive: true, force: true });
    await rm(join(d.mountPoint, MANIFEST_NAME), { force: true });
  }
  await rm(journal, { recursive: true, force: true });
  return { entries: [], drives: [], alreadyDone: 0, copied: 0, skipped: [] };
}
