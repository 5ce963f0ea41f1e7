/**
 * Bearer JWTs from an identity provider, verified with `jose`: signature against a JWKS (URL or
 * file) or a PEM public key, an allow-list of asymmetric algorithms (never `none`, never HS*, so a
 * public key can never be used as an HMAC secret), issuer, audience, expiry and not-before with a
 * small clock tolerance. The claims map to the same principal a static token has: the operator
 * role, or the customer role with ARM scope strings as role assignments.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { StationError } from "../errors.js";
import type { BearerVerifier, Principal, RoleAssignment } from "./auth.js";
import { parseScopeString } from "./scope.js";

export interface JwtSettings {
  key: { jwksUrl: string } | { jwks: JSONWebKeySet } | { publicKeyPem: string };
  issuer: string;
  audience: string | string[];
  algorithms: string[];
  clockToleranceSeconds: number;
  claims: { name: string; roles: string; scopes: string };
  operatorRole: string;
  customerRole: string;
  /** The injected clock. */
  now: () => Date;
}

const refused = (why: string) =>
  new StationError("AuthenticationFailed", `The bearer token was refused: ${why}.`);

/** A claim as a list of strings: a JSON array, or one space-separated string (as OAuth `scp`). */
function stringList(payload: JWTPayload, claim: string): string[] | undefined {
  const v = payload[claim];
  if (v === undefined) return [];
  if (typeof v === "string") return v.split(/\s+/).filter(Boolean);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  return undefined;
}

function reason(e: unknown): string {
  if (e instanceof errors.JWTExpired) return "it has expired";
  if (e instanceof errors.JWTClaimValidationFailed)
    return `its '${e.claim}' claim is not accepted (${e.reason})`;
  if (e instanceof errors.JOSEAlgNotAllowed) return "its signing algorithm is not accepted";
  if (e instanceof errors.JWSSignatureVerificationFailed) return "its signature does not verify";
  if (e instanceof errors.JWKSNoMatchingKey) return "no trusted key matches it";
  if (e instanceof errors.JWKSTimeout) return "the identity provider's key set could not be fetched in time";
  if (e instanceof errors.JWTInvalid || e instanceof errors.JWSInvalid) return "it is not a well-formed JWT";
  if (e instanceof errors.JOSEError) return `it failed verification (${e.code})`;
  return "it could not be verified";
}

export class JwtVerifier implements BearerVerifier {
  private readonly key: JWTVerifyGetKey | KeyObject;

  constructor(private readonly s: JwtSettings) {
    const k = s.key;
    if ("jwksUrl" in k) this.key = createRemoteJWKSet(new URL(k.jwksUrl));
    else if ("jwks" in k) this.key = createLocalJWKSet(k.jwks);
    else this.key = createPublicKey(k.publicKeyPem);
    if ("type" in this.key && this.key.type !== "public") {
      throw new StationError("ConfigInvalid", "api.jwt.publicKeyFile must hold a PEM public key.");
    }
  }

  async verify(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      const opts = {
        issuer: this.s.issuer,
        audience: this.s.audience,
        algorithms: this.s.algorithms,
        clockTolerance: this.s.clockToleranceSeconds,
        currentDate: this.s.now(),
        requiredClaims: ["exp"],
      };
      // Two calls only to satisfy the overloads (a key-set function vs a key).
      payload =
        typeof this.key === "function"
          ? (await jwtVerify(token, this.key, opts)).payload
          : (await jwtVerify(token, this.key, opts)).payload;
    } catch (e) {
      throw refused(reason(e));
    }
    const { claims } = this.s;
    const nameValue = payload[claims.name];
    const name = typeof nameValue === "string" && nameValue ? nameValue.slice(0, 128) : "jwt-caller";
    const roles = stringList(payload, claims.roles);
    if (!roles) throw refused(`its '${claims.roles}' claim is not a list of strings`);
    if (roles.includes(this.s.operatorRole)) return { name, role: "operator", scopes: [] };
    if (!roles.includes(this.s.customerRole)) {
      throw new StationError(
        "AuthorizationFailed",
        `The client '${name}' holds neither the '${this.s.operatorRole}' nor the '${this.s.customerRole}' role of this station.`,
      );
    }
    const raw = stringList(payload, claims.scopes);
    if (!raw) throw refused(`its '${claims.scopes}' claim is not a list of strings`);
    const scopes: RoleAssignment[] = [];
    for (const s of raw) {
      const a = parseScopeString(s);
      if (!a) throw refused(`its '${claims.scopes}' claim holds '${s.slice(0, 200)}', not an ARM scope`);
      scopes.push(a);
    }
    return { name, role: "customer", scopes };
  }
}
