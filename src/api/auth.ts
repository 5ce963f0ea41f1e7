/**
 * Who is calling: bearer tokens from config (kept as SHA-256 digests, compared in constant time)
 * and, optionally, JWTs from an identity provider (jwt.ts). Either yields a Principal: a role and,
 * for a customer, the role assignments (subscriptions, optionally resource groups) it was granted.
 * What the principal may do is decided in scope.ts and gate.ts.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { StationError } from "../errors.js";

export type Role = "customer" | "operator";

/** An ARM-like role assignment: a whole subscription, or one resource group in it. */
export interface RoleAssignment {
  subscriptionId: string;
  resourceGroup?: string;
}

export interface ApiToken {
  name: string;
  role: Role;
  /** The token itself, or ... */
  token?: string;
  /** ... its SHA-256 digest (64 hex digits), so the config file holds no usable secret. */
  tokenSha256?: string;
  /** Customer tokens: what they may see. Operator tokens see everything. */
  scopes?: RoleAssignment[];
}

export interface Principal {
  name: string;
  role: Role;
  /** Ignored for operators. An empty list sees nothing. */
  scopes: readonly RoleAssignment[];
}

/** Checks a bearer credential. Every failure is a StationError AuthenticationFailed (401). */
export interface Authenticator {
  authenticate(authorizationHeader: string | undefined): Promise<Principal>;
}

/** A JWT verifier (jwt.ts): resolves the token's principal or throws AuthenticationFailed. */
export interface BearerVerifier {
  verify(token: string): Promise<Principal>;
}

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

export const sha256Hex = (s: string): string => digest(s).toString("hex");

/** A JWT is three base64url parts; a static token never needs to look like one. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

export class TokenAuthenticator implements Authenticator {
  private readonly entries: { principal: Principal; digest: Buffer }[];

  constructor(
    tokens: ApiToken[],
    private readonly jwt?: BearerVerifier,
  ) {
    this.entries = tokens.map((t) => {
      const d = t.tokenSha256 ? Buffer.from(t.tokenSha256, "hex") : t.token ? digest(t.token) : undefined;
      if (d?.length !== 32) {
        throw new StationError(
          "ConfigInvalid",
          `API token '${t.name}' needs 'token' or a 64-hex-digit 'tokenSha256'.`,
          { target: t.name },
        );
      }
      return { principal: { name: t.name, role: t.role, scopes: t.scopes ?? [] }, digest: d };
    });
  }

  /** Static tokens first (every entry compared, in constant time), then the JWT verifier. */
  async authenticate(header: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (!match) {
      throw new StationError(
        "AuthenticationFailed",
        "Missing bearer token: send 'Authorization: Bearer <token>'.",
      );
    }
    const token = match[1]!;
    const given = digest(token);
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, given)) found = e.principal;
    }
    if (found) return found;
    if (this.jwt && JWT_SHAPE.test(token)) return this.jwt.verify(token);
    throw new StationError("AuthenticationFailed", "The bearer token is not valid for this station.");
  }
}
