/**
 * One table from StationError codes to HTTP status, and the ARM ErrorResponse body (reference §4.12).
 */
import type { StationError, StationErrorCode } from "../errors.js";
import { scrubSecrets } from "../secrets.js";

export const HTTP_STATUS: Record<StationErrorCode, number> = {
  InvalidTransition: 409,
  InvalidJobState: 409,
  ShippingInfoMissing: 400,
  JobNotFound: 404,
  JobAlreadyExists: 409,
  DriveNotFound: 404,
  NotYetAllowed: 409,
  VersionConflict: 409,
  InvalidRequestContent: 400,
  MissingApiVersionParameter: 400,
  InvalidApiVersionParameter: 400,
  RequestTooLarge: 413,
  UnsupportedMediaType: 415,
  RouteNotFound: 404,
  AuthenticationFailed: 401,
  AuthorizationFailed: 403,
  LinkedAuthorizationFailed: 403,
  ConfigInvalid: 500,
  StorageUnavailable: 503,
  StoragePortTaken: 503,
  AgentAlreadyRunning: 503,
  Cancelled: 503,
  StoreUnavailable: 503,
  InternalError: 500,
};

/** The body every API failure sends; its texts pass the secret scrubber (they may quote a request). */
export function errorResponse(e: StationError) {
  const scrub = (s: string | undefined) => (s === undefined ? undefined : scrubSecrets(s));
  return {
    error: {
      code: e.code,
      message: scrubSecrets(e.message),
      target: scrub(e.target),
      details: e.details.map((d) => ({
        code: d.code,
        message: scrubSecrets(d.message),
        ...(d.target === undefined ? {} : { target: scrubSecrets(d.target) }),
      })),
      innererror: {},
    },
  };
}
