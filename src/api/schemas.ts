/**
 * Request bodies of the ARM-shaped API (reference §4) and the operator routes, as zod schemas.
 * Unknown properties are dropped (ARM tolerates read-only fields sent back by clients), and so are
 * the JobDetails fields the service owns (state, cancelRequested, percentComplete, drive state ...)
 * on PUT: SDKs send their spec defaults (`state: "Creating"`, `cancelRequested: false`, drive
 * `state: "Specified"`) on every create. An optional field given as null or "" is not given.
 */
import { z } from "zod";
import { StationError } from "../errors.js";
import type { JobPatch, JobSpec } from "../lifecycle/machine.js";

export const API_VERSIONS = ["2016-11-01", "2020-08-01", "2021-01-01"] as const;
export type ApiVersion = (typeof API_VERSIONS)[number];

export const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const DRIVE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MD5_HEX = /^[0-9A-Fa-f]{32}$/;
// The 2021-01-01 examples show a 64-hex manifestHash: tolerated as an opaque value (reference §1.1).
const MANIFEST_HASH = /^([0-9A-Fa-f]{32}|[0-9A-Fa-f]{64})$/;
const BITLOCKER_PASSWORD = /^\d{6}(-\d{6}){7}$/;
const STORAGE_ACCOUNT_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.(Classic)?Storage\/storageAccounts\/[a-z0-9]{3,24}$/i;

const text = (max = 256) => z.string().trim().min(1).max(max);

/** Optional, where null and "" mean "not given" (SDKs and hand-written clients send each). */
const opt = <S extends z.ZodType>(schema: S) =>
  z.preprocess((v) => (v === null || v === "" ? undefined : v), schema.optional());

/** A spec string with known values, matched without regard to case and given back in its canonical spelling. */
const known = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.preprocess(
    (v) => (typeof v === "string" ? (values.find((k) => k.toLowerCase() === v.toLowerCase()) ?? v) : v),
    z.enum(values),
  );

const returnAddress = z.object({
  recipientName: text(),
  streetAddress1: text(),
  streetAddress2: opt(z.string().max(256)),
  city: text(),
  stateOrProvince: opt(z.string().max(256)),
  postalCode: text(32),
  countryOrRegion: text(64),
  phone: text(64),
  email: z.string().regex(/^[^@\s]+@[^@\s]+$/, "must be an e-mail address"),
});

const returnShipping = z.object({ carrierName: text(), carrierAccountNumber: text() });

const deliveryPackage = z.object({
  carrierName: text(),
  trackingNumber: text(),
  driveCount: opt(z.number().int().min(0).max(10)),
  shipDate: opt(z.string().max(64)),
});

const manifestFile = z
  .string()
  .min(1)
  .max(1024)
  .refine(
    (p) => !p.includes("\0") && !p.split(/[\\/]/).includes(".."),
    "must stay inside the drive (no '..', no NUL)",
  );

const driveSpec = z.object({
  driveId: z
    .string()
    .regex(DRIVE_ID, "must be the drive's serial number without spaces (letters, digits, . _ -)"),
  bitLockerKey: opt(
    z
      .string()
      .regex(BITLOCKER_PASSWORD, "must be a 48-digit BitLocker recovery password, 8 groups of 6 digits"),
  ),
  manifestFile: opt(manifestFile),
  manifestHash: opt(z.string().regex(MANIFEST_HASH, "must be the hex MD5 of the manifest file")),
  driveHeaderHash: opt(z.string().max(4096)),
});

const exportSelection = z
  .object({
    blobList: opt(
      z.object({
        blobPath: opt(z.array(z.string().min(1).max(1024)).max(10_000)),
        blobPathPrefix: opt(
          z
            .array(
              z
                .string()
                .min(1)
                .max(1024)
                .refine((p) => p.startsWith("/"), "a prefix starts with '/'"),
            )
            .max(10_000),
        ),
      }),
    ),
    blobListBlobPath: opt(z.string().max(1024)),
    // early 2016-11-01 clients spell it with a lower-case b (reference §4.5)
    blobListblobPath: opt(z.string().max(1024)),
  })
  .transform(({ blobListblobPath, ...rest }) => {
    const path = rest.blobListBlobPath ?? blobListblobPath;
    return path === undefined ? rest : { ...rest, blobListBlobPath: path };
  });

const logLevel = known(["Error", "Verbose"]);
const tags = z.record(z.string().max(512), z.string().max(256));

export const putJobBody = z.object({
  location: opt(z.string().max(64)),
  tags: opt(tags),
  properties: z.object({
    storageAccountId: z
      .string()
      .regex(STORAGE_ACCOUNT_ID, "must be the ARM resource ID of a storage account"),
    jobType: known(["Import", "Export"]),
    returnAddress: opt(returnAddress),
    returnShipping: opt(returnShipping),
    deliveryPackage: opt(deliveryPackage),
    diagnosticsPath: opt(
      z
        .string()
        .regex(/^[a-z0-9](?:[a-z0-9-/]{1,61}[a-z0-9])?$/, "must be a container name or virtual directory"),
    ),
    logLevel: opt(logLevel),
    backupDriveManifest: opt(z.boolean()),
    driveList: opt(z.array(driveSpec).max(10)),
    export: opt(exportSelection),
    encryptionKey: opt(
      z.object({
        kekType: opt(known(["MicrosoftManaged", "CustomerManaged"])),
        kekUrl: opt(z.string().max(2048)),
        kekVaultResourceID: opt(z.string().max(2048)),
      }),
    ),
  }),
});

export const updateJobBody = z.object({
  tags: opt(tags),
  properties: opt(
    z.object({
      // false is the spec's default, sent by SDKs on every update: it asks for nothing.
      cancelRequested: opt(z.boolean()),
      state: opt(z.string().max(32)),
      returnAddress: opt(returnAddress),
      returnShipping: opt(returnShipping),
      deliveryPackage: opt(deliveryPackage),
      logLevel: opt(logLevel),
      backupDriveManifest: opt(z.boolean()),
      driveList: opt(z.array(driveSpec).max(10)),
    }),
  ),
});

// ---- operator routes

export const checkInBody = z.object({
  trackingNumber: text(),
  driveIds: z.array(z.string().regex(DRIVE_ID, "must be a drive serial number")).max(100),
});
export const driveArrivedBody = z.object({ trackingNumber: text().optional() });
export const faultBody = z.object({ reason: text(512), driveId: z.string().regex(DRIVE_ID).optional() });
export const resolveBody = z.object({ driveId: z.string().regex(DRIVE_ID).optional() });
export const shipBackBody = z.object({
  carrierName: text(),
  trackingNumber: text(),
  driveCount: z.number().int().min(0).max(100).optional(),
  shipDate: z.string().max(64).optional(),
});

/** A POST that takes no fields: any object, its properties ignored. */
export const noBody = z.object({});
const digits = z.string().regex(/^\d{1,6}$/, "must be a whole number");
export const jobsQuery = z.object({
  $top: digits.optional(),
  $skiptoken: z.string().max(1024).optional(),
  name: z.string().max(64).optional(),
});
export const noticesQuery = z.object({ limit: digits.optional() });

/** Parses or throws InvalidRequestContent naming the first offending field. */
export function parse<S extends z.ZodType>(schema: S, body: unknown, where = "body"): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (r.success) return withoutUndefined(r.data) as z.output<S>;
  const details = r.error.issues.slice(0, 10).map((i) => ({
    code: "InvalidField",
    target: i.path.map(String).join(".") || where,
    message: i.message,
  }));
  const first = details[0]!;
  throw new StationError("InvalidRequestContent", `Invalid ${where}: ${first.target}: ${first.message}.`, {
    target: first.target,
    details,
  });
}

/** Drops the keys a null or "" turned into undefined, so no default is overwritten by them. */
function withoutUndefined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutUndefined);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [k, withoutUndefined(x)]),
  );
}

export function toJobSpec(body: z.output<typeof putJobBody>, defaultLocation: string): JobSpec {
  const p = body.properties;
  const spec: JobSpec = {
    location: body.location ?? defaultLocation,
    type: p.jobType,
    storageAccountId: p.storageAccountId,
  };
  if (body.tags) spec.tags = body.tags;
  if (p.returnAddress) spec.returnAddress = p.returnAddress;
  if (p.returnShipping) spec.returnShipping = p.returnShipping;
  if (p.deliveryPackage) spec.deliveryPackage = p.deliveryPackage;
  if (p.diagnosticsPath) spec.diagnosticsPath = p.diagnosticsPath;
  if (p.logLevel) spec.logLevel = p.logLevel;
  if (p.backupDriveManifest !== undefined) spec.backupDriveManifest = p.backupDriveManifest;
  if (p.driveList)
    spec.driveList = p.driveList.map((d) => ({ ...d, manifestHash: d.manifestHash?.toUpperCase() }));
  if (p.export) spec.export = p.export;
  if (p.encryptionKey) spec.encryptionKey = { kekType: "MicrosoftManaged", ...p.encryptionKey };
  return spec;
}

export function toJobPatch(body: z.output<typeof updateJobBody>): JobPatch {
  const patch: JobPatch = { ...(body.properties ?? {}) } as JobPatch;
  if (body.tags) patch.tags = body.tags;
  if (patch.driveList)
    patch.driveList = patch.driveList.map((d) => ({ ...d, manifestHash: d.manifestHash?.toUpperCase() }));
  return patch;
}

export { MD5_HEX };
