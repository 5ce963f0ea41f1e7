/**
 * What the SQLite and PostgreSQL adapters share: the list query's filter and keyset cursor, and
 * the mapping between rows and domain records. Only the SQL dialect (placeholders, upserts, JSON
 * columns) stays in each adapter, so both keep one contract (test/jobs/store-contract.ts).
 */
import { StationError } from "../errors.js";
import type { Job, JobKey, Notice } from "../lifecycle/model.js";
import type { BlobCheckpoint } from "../transfer/checkpoints.js";
import type { SelectedBlob } from "../transfer/export/planner.js";
import type { JobPage, JobScope } from "./store.js";

/** The keyset position after the last job of a page (created_at, then the key). */
interface Cursor {
  c: string;
  s: string;
  r: string;
  n: string;
}

const encodeCursor = (c: Cursor): string => Buffer.from(JSON.stringify(c)).toString("base64url");

function decodeCursor(token: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Cursor;
    if ([c.c, c.s, c.r, c.n].every((v) => typeof v === "string")) return c;
  } catch {
    // fall through
  }
  throw new StationError("InvalidRequestContent", "The $skiptoken is not one this station issued.", {
    target: "$skiptoken",
  });
}

/**
 * The WHERE terms of a job listing; `arg` binds a value and returns its placeholder in the
 * adapter's dialect. Undefined when the scope matches nothing (no resource group granted).
 */
export function listFilter(
  scope: JobScope,
  skipToken: string | undefined,
  arg: (value: string) => string,
): string[] | undefined {
  const where: string[] = [];
  if (scope.subscriptionId !== undefined) where.push(`subscription_id = ${arg(scope.subscriptionId)}`);
  if (scope.resourceGroup !== undefined) where.push(`resource_group = ${arg(scope.resourceGroup)}`);
  if (scope.resourceGroups !== undefined) {
    // A customer granted some resource groups of the subscription (compared case-insensitively).
    if (scope.resourceGroups.length === 0) return undefined;
    where.push(
      `lower(resource_group) IN (${scope.resourceGroups.map((g) => arg(g.toLowerCase())).join(", ")})`,
    );
  }
  if (skipToken) {
    const c = decodeCursor(skipToken);
    where.push(
      `(created_at, subscription_id, resource_group, name) > (${arg(c.c)}, ${arg(c.s)}, ${arg(c.r)}, ${arg(c.n)})`,
    );
  }
  return where;
}

export const LIST_ORDER = "ORDER BY created_at, subscription_id, resource_group, name";

/** A page from `top + 1` rows: the extra row only says there is a next page. */
export function jobPage(jobs: Job[], top: number): JobPage {
  const page: JobPage = { jobs: jobs.slice(0, top) };
  const last = page.jobs[page.jobs.length - 1];
  if (jobs.length > top && last) {
    page.skipToken = encodeCursor({
      c: last.timestamps.createdAt,
      s: last.subscriptionId,
      r: last.resourceGroup,
      n: last.name,
    });
  }
  return page;
}

export const versionConflict = (name: string) =>
  new StationError("VersionConflict", `Job ${name} was changed by someone else; retry.`, {
    retryable: true,
    target: name,
  });

export const jobKeyOf = (r: { subscription_id: string; resource_group: string; name: string }): JobKey => ({
  subscriptionId: r.subscription_id,
  resourceGroup: r.resource_group,
  name: r.name,
});

/** The notices table's columns, in the order the adapters insert them. */
export const noticeValues = (n: Notice): (string | null)[] => [
  n.at,
  n.code,
  n.job?.subscriptionId ?? null,
  n.job?.resourceGroup ?? null,
  n.job?.name ?? null,
  n.driveId ?? null,
  n.message,
];

export interface NoticeRow {
  /** PostgreSQL returns a bigserial as a string. */
  id: number | string;
  at: string;
  code: Notice["code"];
  subscription_id: string | null;
  resource_group: string | null;
  job_name: string | null;
  drive_id: string | null;
  message: string;
}

export function noticeFromRow(r: NoticeRow): Notice & { id: number } {
  const n: Notice & { id: number } = { id: Number(r.id), at: r.at, code: r.code, message: r.message };
  if (r.subscription_id && r.resource_group && r.job_name)
    n.job = { subscriptionId: r.subscription_id, resourceGroup: r.resource_group, name: r.job_name };
  if (r.drive_id) n.driveId = r.drive_id;
  return n;
}

/** PostgreSQL returns a bigint as a string. */
type Bytes = number | string;

/** A drive's checkpoint rows: blobs done (and their bytes) and blobs started with their target. */
export function checkpointProgress(
  rows: Iterable<{ blob_index: number; state: string; target: string; bytes: Bytes }>,
): { done: Set<number>; started: Map<number, string>; bytesSucceeded: number } {
  const done = new Set<number>();
  const started = new Map<number, string>();
  let bytesSucceeded = 0;
  for (const r of rows) {
    if (r.state === "done") {
      done.add(r.blob_index);
      bytesSucceeded += Number(r.bytes);
    } else started.set(r.blob_index, r.target);
  }
  return { done, started, bytesSucceeded };
}

export function doneCheckpoint(
  r: { blob_index: number; target: string; bytes: Bytes },
  log: BlobCheckpoint["log"] | null,
): BlobCheckpoint {
  const c: BlobCheckpoint = {
    blobIndex: r.blob_index,
    state: "done",
    target: r.target,
    bytesSucceeded: Number(r.bytes),
  };
  if (log) c.log = log;
  return c;
}

/** An export selection's blob as stored (JSON): its date comes back a string. */
export const reviveSelectedBlob = (b: SelectedBlob & { lastModified: string }): SelectedBlob => ({
  ...b,
  lastModified: new Date(b.lastModified),
});
