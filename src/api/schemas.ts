/**
 * Request bodies of the ARM-shaped API (reference §4) and the operator routes, as zod schemas.
 * Unknown properties are dropped (ARM tolerates read-only fields sent back by clients).
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

const returnAddress = z.object({
  recipientName: text(),
  streetAddress1: text(),
  streetAddress2: z.string().max(256).optional(),
  city: text(),
  stateOrProvince: z.string().max(256).optional(),
  postalCode: text(32),
  countryOrRegion: text(64),
  phone: text(64),
  email: z.string().regex(/^[^@\s]+@[^@\s]+$/, "must be an e-mail address"),
});

const returnShipping = z.object({ carrierName: text(), carrierAccountNumber: text() });

const deliveryPackage = z.object({
  carrierName: text(),
  trackingNumber: text(),
  driveCount: z.number().int().min(0).max(10).optional(),
  shipDate: z.string().max(64).optional(),
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
  bitLockerKey: z
    .string()
    .regex(BITLOCKER_PASSWORD, "must be a 48-digit BitLocker recovery password, 8 groups of 6 digits")
    .optional(),
  manifestFile: manifestFile.optional(),
  manifestHash: z.string().regex(MANIFEST_HASH, "must be the hex MD5 of the manifest file").optional(),
  driveHeaderHash: z.string().max(4096).optional(),
});

const exportSelection = z
  .object({
    blobList: z
      .object({
        blobPath: z.array(z.string().min(1).max(1024)).max(10_000).optional(),
        blobPathPrefix: z
          .array(
            z
              .string()
              .min(1)
              .max(1024)
              .refine((p) => p.startsWith("/"), "a prefix starts with '/'"),
          )
          .max(10_000)
          .optional(),
      })
      .optional(),
    blobListBlobPath: z.string().min(1).max(1024).optional(),
    // early 2016-11-01 clients spell it with a lower-case b (reference §4.5)
    blobListblobPath: z.string().min(1).max(1024).optional(),
  })
  .transform(({ blobListblobPath, ...rest }) => {
    const path = rest.blobListBlobPath ?? blobListblobPath;
    return path === undefined ? rest : { ...rest, blobListBlobPath: path };
  });

const logLevel = z.enum(["Error", "Verbose"]);
const tags = z.record(z.string().max(512), z.string().max(256));

export const putJobBody = z.object({
  location: z.string().min(1).max(64).optional(),
  tags: tags.optional(),
  properties: z.object({
    storageAccountId: z
      .string()
      .regex(STORAGE_ACCOUNT_ID, "must be the ARM resource ID of a storage account"),
    jobType: z.enum(["Import", "Export"]),
    returnAddress: returnAddress.optional(),
    returnShipping: returnShipping.optional(),
    deliveryPackage: deliveryPackage.optional(),
    diagnosticsPath: z
      .string()
      .regex(/^[a-z0-9](?:[a-z0-9-/]{1,61}[a-z0-9])?$/, "must be a container name or virtual directory")
      .optional(),
    logLevel: logLevel.optional(),
    backupDriveManifest: z.boolean().optional(),
    driveList: z.array(driveSpec).max(10).optional(),
    export: exportSelection.optional(),
    encryptionKey: z
      .object({
        kekType: z.enum(["MicrosoftManaged", "CustomerManaged"]).optional(),
        kekUrl: z.string().max(2048).optional(),
        kekVaultResourceID: z.string().max(2048).optional(),
      })
      .optional(),
  }),
});

export const updateJobBody = z.object({
  tags: tags.optional(),
  properties: z
    .object({
      cancelRequested: z.boolean().optional(),
      state: z.string().max(32).optional(),
      returnAddress: returnAddress.optional(),
      returnShipping: returnShipping.optional(),
      deliveryPackage: deliveryPackage.optional(),
      logLevel: logLevel.optional(),
      backupDriveManifest: z.boolean().optional(),
      driveList: z.array(driveSpec).max(10).optional(),
    })
    .optional(),
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

/** Parses or throws InvalidRequestContent naming the first offending field. */
export function parse<S extends z.ZodType>(schema: S, body: unknown, where = "body"): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
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
