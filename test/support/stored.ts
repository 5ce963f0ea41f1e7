/** Reads the agent's SQLite database directly: what is stored, byte for byte, not a view of it. */
import Database from "better-sqlite3";
import type { JobKey } from "../../src/lifecycle/model.js";

export interface StoredSnapshot {
  jobs: { subscription_id: string; resource_group: string; name: string; version: number; doc: string }[];
  notices: number;
}

export function storedSnapshot(dbFile: string): StoredSnapshot {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const jobs = db
      .prepare(
        "SELECT subscription_id, resource_group, name, version, doc FROM jobs ORDER BY subscription_id, resource_group, name",
      )
      .all() as StoredSnapshot["jobs"];
    const { n } = db.prepare("SELECT count(*) AS n FROM notices").get() as { n: number };
    return { jobs, notices: n };
  } finally {
    db.close();
  }
}

/** One job's stored row (version and JSON document), or undefined. */
export function storedJob(dbFile: string, key: JobKey): { version: number; doc: string } | undefined {
  return storedSnapshot(dbFile).jobs.find(
    (j) =>
      j.subscription_id === key.subscriptionId &&
      j.resource_group === key.resourceGroup &&
      j.name === key.name,
  );
}
