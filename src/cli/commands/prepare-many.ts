/**
 * `station prepare --dataset --driveset`: many drives in one session (WAImportExport v2 on
 * Linux). Prints each drive's share and writes the job's driveList entries (`--out`).
 */
import { writeFileSync } from "node:fs";
import type { Credential } from "../../formats/manifest.js";
import { PrepareError } from "../../prepare/prepare-drive.js";
import { prepareSession } from "../../prepare/v2-session.js";
import { print } from "./common.js";

export interface ManyFlags {
  session: string;
  dataset?: string;
  driveset?: string;
  journalDir?: string;
  resume?: boolean;
  abort?: boolean;
  blockSize?: number;
  out?: string;
  drive?: string;
  source?: string;
  dest?: string;
  driveId?: string;
  skipWrite?: boolean;
  append?: boolean;
  metadataFile?: string;
  propertiesFile?: string;
}

export async function prepareMany(o: ManyFlags, credential: () => Credential): Promise<void> {
  if (!o.dataset || !o.driveset)
    throw new PrepareError(
      "prepare: many drives need both --dataset <csv> and --driveset <csv>. See 'station prepare --help'.",
    );
  const oneDrive = [
    "drive",
    "source",
    "dest",
    "driveId",
    "skipWrite",
    "append",
    "metadataFile",
    "propertiesFile",
  ];
  const mixed = oneDrive.find((k) => o[k as keyof ManyFlags] !== undefined);
  if (mixed)
    throw new PrepareError(
      `prepare: --${mixed.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for one drive; with --dataset, give it in the dataset's columns. See 'station prepare --help'.`,
    );
  if (o.resume && o.abort) throw new PrepareError("prepare: give --resume or --abort, not both.");
  const mode = o.abort ? "abort" : o.resume ? "resume" : "start";
  const result = await prepareSession({
    datasetFile: o.dataset,
    drivesetFile: o.driveset,
    sessionId: o.session,
    // Abort needs no credential: it only removes what the session wrote.
    credential: mode === "abort" ? { kind: "accountKey", key: "" } : credential(),
    mode,
    ...(o.journalDir ? { journalDir: o.journalDir } : {}),
    ...(o.blockSize ? { blockSize: o.blockSize } : {}),
    onEvent: (line) => process.stderr.write(`${line}\n`),
  });
  if (mode === "abort") {
    print(`Session ${o.session} aborted: its files and journal are removed from the drives.`);
    return;
  }
  for (const s of result.skipped) process.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
  const lines = result.drives.map(
    (d) => `  ${d.driveId}  ${d.mountPoint}  ${d.files} files, ${d.bytes} bytes`,
  );
  const resumed =
    mode === "resume"
      ? ` Resumed: ${result.alreadyDone} files were already on the drives, ${result.copied} copied now.`
      : "";
  // The BitLocker keys go to the --out file (mode 0600) only; the customer gave them in the driveset.
  const masked = result.entries.map((e) => (e.bitLockerKey ? { ...e, bitLockerKey: "*******" } : e));
  print(
    `Session ${o.session} prepared on ${result.drives.length} drives.${resumed}\n${lines.join("\n")}\nDrive entries for the job's driveList${o.out ? ` (also in ${o.out})` : ""}:\n${JSON.stringify(masked, null, 2)}`,
  );
  if (o.out) writeFileSync(o.out, `${JSON.stringify(result.entries, null, 2)}\n`, { mode: 0o600 });
}
