/**
 * One error type for the whole station. Callers branch on `code`, never on message text.
 * The API maps codes to HTTP status and ARM error codes (src/api/errors.ts); the transfer
 * engine maps them to copy-log status strings.
 */
export type StationErrorCode =
  // lifecycle and job rules
  | "InvalidTransition"
  | "InvalidJobState"
  | "ShippingInfoMissing"
  | "JobNotFound"
  | "JobAlreadyExists"
  | "DriveNotFound"
  | "NotYetAllowed"
  | "VersionConflict"
  // request shape
  | "InvalidRequestContent"
  | "MissingApiVersionParameter"
  | "InvalidApiVersionParameter"
  | "RequestTooLarge"
  | "UnsupportedMediaType"
  | "RouteNotFound"
  // auth
  | "AuthenticationFailed"
  | "AuthorizationFailed"
  | "LinkedAuthorizationFailed"
  // station
  | "ConfigInvalid"
  | "StorageUnavailable"
  | "StoragePortTaken"
  | "AgentAlreadyRunning"
  // a transfer stopped on purpose (drive pulled, agent stopping): not a failure of any blob
  | "Cancelled"
  | "StoreUnavailable"
  | "InternalError";

export interface StationErrorOptions {
  cause?: unknown;
  retryable?: boolean;
  /** What the error is about: a field path, a job name, a drive id. */
  target?: string;
  details?: { code: string; message: string; target?: string }[];
}

export class StationError extends Error {
  readonly code: StationErrorCode;
  readonly retryable: boolean;
  readonly target: string | undefined;
  readonly details: { code: string; message: string; target?: string }[];

  constructor(code: StationErrorCode, message: string, options: StationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StationError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.target = options.target;
    this.details = options.details ?? [];
  }
}

export const isStationError = (e: unknown): e is StationError => e instanceof StationError;

/** An abort on purpose (the drive was pulled, the agent is stopping): never a blob's failure. */
export const isCancellation = (e: unknown): boolean => isStationError(e) && e.code === "Cancelled";
