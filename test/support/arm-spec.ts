/**
 * The Microsoft.ImportExport API as its official OpenAPI specification defines it, for the three
 * versions the station serves (Azure/azure-rest-api-specs,
 * specification/storageimportexport/resource-manager/Microsoft.ImportExport, 2016-11-01,
 * 2020-08-01 and 2021-01-01, definitions and examples). A compact extraction written for these
 * tests, not the spec's files: each definition's properties, their JSON types, integer widths,
 * enums and required lists, as JSON Schema for ajv.
 *
 * One deliberate strengthening: response objects get `additionalProperties: false`, so a property
 * the spec does not name (a typo, a station-only field) fails the test. Request bodies stay open,
 * as the spec leaves them.
 */
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

export const SPEC_VERSIONS = ["2016-11-01", "2020-08-01", "2021-01-01"] as const;
export type SpecVersion = (typeof SPEC_VERSIONS)[number];

type Schema = Record<string, unknown>;

const INT32 = { type: "integer", minimum: -2147483648, maximum: 2147483647 };
const INT64 = { type: "integer" };
const str = { type: "string" };
const strings = { type: "array", items: str };

/** Integer widths: the only differences between the three versions' definitions. */
const WIDTHS: Record<SpecVersion, { jobPercent: Schema; drivePercent: Schema; returnDriveCount: Schema }> = {
  "2016-11-01": { jobPercent: INT32, drivePercent: INT64, returnDriveCount: INT32 },
  "2020-08-01": { jobPercent: INT32, drivePercent: INT32, returnDriveCount: INT64 },
  "2021-01-01": { jobPercent: INT64, drivePercent: INT64, returnDriveCount: INT64 },
};

const object = (properties: Record<string, Schema>, required: string[] = [], closed = true): Schema => ({
  type: "object",
  properties,
  ...(required.length ? { required } : {}),
  ...(closed ? { additionalProperties: false } : {}),
});

/** The definitions of one version; `closed` makes every object refuse unnamed properties. */
function definitions(v: SpecVersion, closed: boolean): Record<string, Schema> {
  const o = (p: Record<string, Schema>, req: string[] = []) => object(p, req, closed);
  const w = WIDTHS[v];
  const address = {
    recipientName: str,
    streetAddress1: str,
    streetAddress2: str,
    city: str,
    stateOrProvince: str,
    postalCode: str,
    countryOrRegion: str,
    phone: str,
  };
  const ref = (name: string) => ({ $ref: `#/definitions/${name}` });
  return {
    ErrorResponse: o({
      error: o({
        code: str,
        message: str,
        target: str,
        details: { type: "array", items: o({ code: str, target: str, message: str }) },
        innererror: { type: "object" },
      }),
    }),
    ReturnAddress: o({ ...address, email: str }, [
      "recipientName",
      "streetAddress1",
      "city",
      "postalCode",
      "countryOrRegion",
      "phone",
      "email",
    ]),
    ReturnShipping: o({ carrierName: str, carrierAccountNumber: str }, [
      "carrierName",
      "carrierAccountNumber",
    ]),
    ShippingInformation: o({ ...address, additionalInformation: str }),
    // 2016-11-01 spells this definition PackageInfomation; the shape is the same.
    PackageInformation: o(
      { carrierName: str, trackingNumber: str, driveCount: w.returnDriveCount, shipDate: str },
      ["carrierName", "trackingNumber", "driveCount", "shipDate"],
    ),
    DeliveryPackageInformation: o(
      { carrierName: str, trackingNumber: str, driveCount: INT64, shipDate: str },
      ["carrierName", "trackingNumber"],
    ),
    DriveStatus: o({
      driveId: str,
      bitLockerKey: str,
      manifestFile: str,
      manifestHash: str,
      driveHeaderHash: str,
      // modelAsString: clients accept other values (Faulted, reference §8.3)
      state: str,
      copyStatus: str,
      percentComplete: w.drivePercent,
      verboseLogUri: str,
      errorLogUri: str,
      manifestUri: str,
      bytesSucceeded: INT64,
    }),
    Export: o({
      blobList: o({ blobPath: strings, blobPathPrefix: strings }),
      blobListBlobPath: str,
    }),
    EncryptionKeyDetails: o({ kekType: str, kekUrl: str, kekVaultResourceID: str }),
    IdentityDetails: o({ type: str, principalId: str, tenantId: str }),
    SystemData: o({
      createdBy: str,
      createdByType: { enum: ["User", "Application", "ManagedIdentity", "Key"] },
      createdAt: { type: "string", format: "date-time" },
      lastModifiedBy: str,
      lastModifiedByType: { enum: ["User", "Application", "ManagedIdentity", "Key"] },
      lastModifiedAt: { type: "string", format: "date-time" },
    }),
    JobDetails: o({
      storageAccountId: str,
      jobType: str,
      returnAddress: ref("ReturnAddress"),
      returnShipping: ref("ReturnShipping"),
      shippingInformation: ref("ShippingInformation"),
      deliveryPackage: ref("DeliveryPackageInformation"),
      returnPackage: ref("PackageInformation"),
      diagnosticsPath: str,
      logLevel: str,
      backupDriveManifest: { type: "boolean" },
      state: str,
      cancelRequested: { type: "boolean" },
      percentComplete: w.jobPercent,
      incompleteBlobListUri: str,
      driveList: { type: "array", items: ref("DriveStatus") },
      export: ref("Export"),
      provisioningState: str,
      encryptionKey: ref("EncryptionKeyDetails"),
    }),
    JobResponse: o({
      systemData: ref("SystemData"),
      id: str,
      name: str,
      type: str,
      location: str,
      tags: { type: "object", additionalProperties: str },
      properties: ref("JobDetails"),
      identity: ref("IdentityDetails"),
    }),
    ListJobsResponse: o({ nextLink: str, value: { type: "array", items: ref("JobResponse") } }),
    PutJobParameters: o({ location: str, tags: { type: "object" }, properties: ref("JobDetails") }),
    UpdateJobParameters: o({
      tags: { type: "object" },
      properties: o({
        cancelRequested: { type: "boolean" },
        state: str,
        returnAddress: ref("ReturnAddress"),
        returnShipping: ref("ReturnShipping"),
        deliveryPackage: ref("DeliveryPackageInformation"),
        logLevel: str,
        backupDriveManifest: { type: "boolean" },
        driveList: { type: "array", items: ref("DriveStatus") },
      }),
    }),
    Location: o({
      id: str,
      name: str,
      type: str,
      properties: o({
        ...address,
        additionalShippingInformation: str,
        supportedCarriers: strings,
        alternateLocations: strings,
      }),
    }),
    LocationsResponse: o({ value: { type: "array", items: ref("Location") } }),
    GetBitLockerKeysResponse: o({ value: { type: "array", items: o({ bitLockerKey: str, driveId: str }) } }),
    Operation: o(
      { name: str, display: o({ provider: str, resource: str, operation: str, description: str }) },
      ["name", "display"],
    ),
    ListOperationsResponse: o({ value: { type: "array", items: ref("Operation") } }),
  };
}

/** Each operation of the spec: method, path template, request body definition, success responses. */
export const SPEC_OPERATIONS = {
  Operations_List: {
    method: "GET",
    path: "/providers/Microsoft.ImportExport/operations",
    ok: { 200: "ListOperationsResponse" },
  },
  Locations_List: {
    method: "GET",
    path: "/providers/Microsoft.ImportExport/locations",
    ok: { 200: "LocationsResponse" },
  },
  Locations_Get: {
    method: "GET",
    path: "/providers/Microsoft.ImportExport/locations/{locationName}",
    ok: { 200: "Location" },
  },
  Jobs_ListBySubscription: {
    method: "GET",
    path: "/subscriptions/{subscriptionId}/providers/Microsoft.ImportExport/jobs",
    ok: { 200: "ListJobsResponse" },
  },
  Jobs_ListByResourceGroup: {
    method: "GET",
    path: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ImportExport/jobs",
    ok: { 200: "ListJobsResponse" },
  },
  Jobs_Get: { method: "GET", path: "{job}", ok: { 200: "JobResponse" } },
  Jobs_Create: {
    method: "PUT",
    path: "{job}",
    body: "PutJobParameters",
    ok: { 200: "JobResponse", 201: "JobResponse" },
  },
  Jobs_Update: { method: "PATCH", path: "{job}", body: "UpdateJobParameters", ok: { 200: "JobResponse" } },
  Jobs_Delete: { method: "DELETE", path: "{job}", ok: { 200: null } },
  BitLockerKeys_List: {
    method: "POST",
    path: "{job}/listBitLockerKeys",
    ok: { 200: "GetBitLockerKeysResponse" },
  },
} as const;
export type SpecOperation = keyof typeof SPEC_OPERATIONS;

export interface SpecValidators {
  /** Validates a response body; returns ajv's error text or "" when it conforms. */
  response(definition: string, body: unknown): string;
  /** Validates a request body as the spec defines it (open objects). */
  request(definition: string, body: unknown): string;
}

export function specValidators(v: SpecVersion): SpecValidators {
  const make = (closed: boolean) => {
    const ajv = new Ajv({ allErrors: true, strict: true });
    addFormats(ajv);
    ajv.addSchema({ $id: "spec", definitions: definitions(v, closed) });
    const cache = new Map<string, ValidateFunction>();
    return (definition: string, body: unknown): string => {
      let check = cache.get(definition);
      if (!check) {
        check = ajv.compile({ $ref: `spec#/definitions/${definition}` });
        cache.set(definition, check);
      }
      return check(body) ? "" : ajv.errorsText(check.errors, { dataVar: definition });
    };
  };
  return { response: make(true), request: make(false) };
}
