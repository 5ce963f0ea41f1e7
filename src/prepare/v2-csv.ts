/**
 * The WAImportExport v2 input files on Linux (reference §6.3 dataset CSV, §6.4 driveset CSV).
 * Pure parsing and validation: each problem is one line naming `file:line`, the cause and the
 * next step, thrown before anything is written.
 */
import { BITLOCKER_PASSWORD } from "../drives/bitlocker.js";
import { IMPORT_DISPOSITIONS, type ImportDisposition } from "../formats/status.js";
import { PrepareError } from "./prepare-drive.js";

export interface CsvRecord {
  /** 1-based line of the file where the record starts. */
  line: number;
  fields: string[];
}

/** RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks. */
export function parseCsv(text: string, file: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = "";
  let quoted = false;
  let wasQuoted = false;
  let line = 1;
  let start = 1;
  const endField = () => {
    fields.push(wasQuoted ? field : field.trim());
    field = "";
    wasQuoted = false;
  };
  const endRecord = () => {
    endField();
    if (!(fields.length === 1 && fields[0] === "")) records.push({ line: start, fields });
    fields = [];
  };
  const body = text.replace(/^\uFEFF/, "");
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === "\n") line++;
        field += c;
      }
    } else if (c === '"' && field.trim() === "") {
      quoted = true;
      wasQuoted = true;
      field = "";
    } else if (c === ",") endField();
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && body[i + 1] === "\n") i++;
      endRecord();
      line++;
      start = line;
    } else field += c;
  }
  if (quoted)
    throw new PrepareError(`${file}:${start}: a quoted field is never closed. Next: close the quote.`);
  endRecord();
  return records;
}

interface Table {
  file: string;
  rows: { line: number; get(column: string): string | undefined }[];
}

/** The header names the columns (any case, any order); unknown and missing ones are refused. */
function table(
  text: string,
  file: string,
  columns: readonly string[],
  required: readonly string[],
  hint: (unknown: string) => string,
): Table {
  const [head, ...records] = parseCsv(text, file);
  if (!head)
    throw new PrepareError(`${file}: the file is empty. Next: write the header line ${columns.join(",")}.`);
  const index = new Map<string, number>();
  for (const [i, raw] of head.fields.entries()) {
    const name = columns.find((c) => c.toLowerCase() === raw.toLowerCase());
    if (!name) throw new PrepareError(`${file}:${head.line}: unknown column '${raw}'. Next: ${hint(raw)}`);
    if (index.has(name))
      throw new PrepareError(`${file}:${head.line}: column ${name} appears twice. Next: keep one.`);
    index.set(name, i);
  }
  for (const r of required)
    if (!index.has(r))
      throw new PrepareError(
        `${file}:${head.line}: the header has no ${r} column. Next: use the header ${columns.join(",")}.`,
      );
  if (records.length === 0)
    throw new PrepareError(
      `${file}: no rows after the header. Next: add a row for each ${file.includes("drive") ? "drive" : "source"}.`,
    );
  return {
    file,
    rows: records.map((rec) => {
      if (rec.fields.length !== head.fields.length)
        throw new PrepareError(
          `${file}:${rec.line}: ${rec.fields.length} fields, the header has ${head.fields.length}. Next: quote a value that holds a comma, or fill in the missing fields.`,
        );
      return {
        line: rec.line,
        get: (column: string) => {
          const i = index.get(column);
          const v = i === undefined ? undefined : rec.fields[i];
          return v === undefined || v === "" ? undefined : v;
        },
      };
    }),
  };
}

const noneToUndefined = (v: string | undefined) => (v === undefined || /^none$/i.test(v) ? undefined : v);

export interface DatasetRow {
  /** `dataset.csv:3`: how errors and the journal name the row. */
  where: string;
  /** Absolute path; a trailing `/` means a directory. */
  basePath: string;
  isDirectory: boolean;
  destination: string;
  /** Undefined: block blobs, except `*.vhd`/`*.vhdx` files, which become page blobs (as v2). */
  blobType?: "BlockBlob" | "PageBlob";
  disposition: ImportDisposition;
  metadataFile?: string;
  propertiesFile?: string;
}

export const DATASET_COLUMNS = [
  "BasePath",
  "DstBlobPathOrPrefix",
  "BlobType",
  "Disposition",
  "MetadataFile",
  "PropertiesFile",
] as const;

export function parseDataset(text: string, file: string): DatasetRow[] {
  const t = table(text, file, DATASET_COLUMNS, ["BasePath", "DstBlobPathOrPrefix"], (c) =>
    /^DstItemPathOrPrefix$|^ItemType$/i.test(c)
      ? "that is the Azure Files dataset; blob import needs DstBlobPathOrPrefix (and no ItemType)."
      : `the columns are ${DATASET_COLUMNS.join(",")}.`,
  );
  return t.rows.map((r) => {
    const where = `${file}:${r.line}`;
    const fail = (msg: string): never => {
      throw new PrepareError(`${where}: ${msg}`);
    };
    const basePath =
      r.get("BasePath") ??
      fail("BasePath is empty. Next: give the absolute path of a directory (ending in /) or a file.");
    if (/^[A-Za-z]:\\|^\\\\/.test(basePath))
      fail(
        `BasePath ${basePath} is a Windows path. Next: give the Linux path, e.g. /data/photos/ for a directory.`,
      );
    if (!basePath.startsWith("/")) fail(`BasePath ${basePath} is not absolute. Next: start it with /.`);
    if (/[*?]/.test(basePath))
      fail(`BasePath ${basePath} has a wildcard. Next: name the directory (ending in /) instead.`);
    const isDirectory = basePath.endsWith("/");
    const destination =
      r.get("DstBlobPathOrPrefix") ??
      fail(
        "DstBlobPathOrPrefix is empty. Next: give container/ or container/prefix/ (container/blob for a file).",
      );
    if (isDirectory && !destination.endsWith("/"))
      fail(
        `for the directory ${basePath} the destination must end with '/': '${destination}/'. Next: add the '/'.`,
      );
    if (!isDirectory && destination.endsWith("/"))
      fail(
        `for the file ${basePath} the destination is container/blob, not '${destination}'. Next: add the blob name, or end BasePath with '/' for a directory.`,
      );
    const type = r.get("BlobType");
    let blobType: DatasetRow["blobType"];
    if (type !== undefined) {
      if (/^(block|blockblob)$/i.test(type)) blobType = "BlockBlob";
      else if (/^(page|pageblob)$/i.test(type)) blobType = "PageBlob";
      else
        fail(
          `BlobType '${type}' is not block or page. Next: write BlockBlob or PageBlob, or leave it empty.`,
        );
    }
    const disp = (r.get("Disposition") ?? "rename").toLowerCase();
    if (!(IMPORT_DISPOSITIONS as readonly string[]).includes(disp))
      fail(
        `Disposition '${disp}' is not ${IMPORT_DISPOSITIONS.join(", ")}. Next: use one of them, or leave it empty (rename).`,
      );
    const metadataFile = noneToUndefined(r.get("MetadataFile"));
    const propertiesFile = noneToUndefined(r.get("PropertiesFile"));
    return {
      where,
      basePath,
      isDirectory,
      destination,
      ...(blobType ? { blobType } : {}),
      disposition: disp as ImportDisposition,
      ...(metadataFile ? { metadataFile } : {}),
      ...(propertiesFile ? { propertiesFile } : {}),
    };
  });
}

export interface DrivesetRow {
  where: string;
  /** The mounted filesystem of the drive (Linux has no drive letters). */
  mountPoint: string;
  /** The drive's serial number; read with lsblk when the column is empty. */
  driveId?: string;
  /** An AlreadyEncrypted drive's recovery password: it goes into the driveList entry. */
  bitLockerKey?: string;
}

export const DRIVESET_COLUMNS = [
  "MountPoint",
  "DriveId",
  "FormatOption",
  "SilentOrPromptOnFormat",
  "Encryption",
  "ExistingBitLockerKey",
] as const;

export function parseDriveset(text: string, file: string): DrivesetRow[] {
  const t = table(text, file, DRIVESET_COLUMNS, ["MountPoint"], (c) =>
    /^DriveLetter$/i.test(c)
      ? "Linux has no drive letters; name each drive's mounted directory in a MountPoint column (e.g. /mnt/drive1)."
      : `the columns are ${DRIVESET_COLUMNS.join(",")}.`,
  );
  const seen = new Map<string, string>();
  return t.rows.map((r) => {
    const where = `${file}:${r.line}`;
    const fail = (msg: string): never => {
      throw new PrepareError(`${where}: ${msg}`);
    };
    const mountPoint =
      r.get("MountPoint") ?? fail("MountPoint is empty. Next: give the directory the drive is mounted on.");
    if (!mountPoint.startsWith("/")) fail(`MountPoint ${mountPoint} is not absolute. Next: start it with /.`);
    const key = mountPoint.replace(/\/+$/, "");
    if (seen.has(key))
      fail(`MountPoint ${mountPoint} is also on ${seen.get(key)}. Next: list each drive once.`);
    seen.set(key, where);
    const format = r.get("FormatOption") ?? "AlreadyFormatted";
    if (/^format$/i.test(format))
      fail(
        "FormatOption Format cannot run here (WAImportExport formats and encrypts with BitLocker on Windows). Next: make the filesystem yourself (e.g. mkfs.ntfs -Q -L IMPORT /dev/sdX1), mount it, and write AlreadyFormatted.",
      );
    if (!/^alreadyformatted$/i.test(format))
      fail(`FormatOption '${format}' is not AlreadyFormatted. Next: write AlreadyFormatted.`);
    const prompt = r.get("SilentOrPromptOnFormat");
    if (prompt !== undefined && !/^(silentmode|promptonformat)$/i.test(prompt))
      fail(
        `SilentOrPromptOnFormat '${prompt}' is not SilentMode or PromptOnFormat. Next: write SilentMode or leave it empty.`,
      );
    const encryption = r.get("Encryption") ?? "None";
    const key48 = r.get("ExistingBitLockerKey");
    if (/^encrypt$/i.test(encryption))
      fail(
        "Encryption Encrypt is not available on Linux (BitLocker encryption needs Windows). Next: encrypt the drive on Windows (manage-bde -on), unlock it here (cryptsetup open --type bitlk), mount it and write AlreadyEncrypted with its recovery password; or write None to ship it unencrypted.",
      );
    let bitLockerKey: string | undefined;
    if (/^alreadyencrypted$/i.test(encryption)) {
      if (!key48)
        fail(
          "AlreadyEncrypted needs the drive's recovery password in ExistingBitLockerKey. Next: add it (manage-bde -protectors -get X:).",
        );
      if (!BITLOCKER_PASSWORD.test(key48!))
        fail(
          "ExistingBitLockerKey is not a 48-digit recovery password (8 groups of 6 digits). Next: copy it again from manage-bde -protectors -get.",
        );
      bitLockerKey = key48;
    } else if (/^none$/i.test(encryption)) {
      if (key48)
        fail(
          "ExistingBitLockerKey is given for a drive that is not encrypted. Next: write AlreadyEncrypted, or clear the key.",
        );
    } else fail(`Encryption '${encryption}' is not AlreadyEncrypted or None. Next: write one of them.`);
    const driveId = r.get("DriveId");
    if (driveId !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(driveId))
      fail(
        `DriveId '${driveId}' is not a serial number (letters, digits, . _ -). Next: copy it from lsblk -dno SERIAL /dev/sdX.`,
      );
    return { where, mountPoint, ...(driveId ? { driveId } : {}), ...(bitLockerKey ? { bitLockerKey } : {}) };
  });
}
