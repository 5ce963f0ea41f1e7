/**
 * Bearer-token authentication. Tokens come from config with a role: a customer token calls the
 * ARM-shaped job routes; an operator token also calls the station's operator routes.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { StationError } from "../errors.js";

export type Role = "customer" | "operator";

export interface ApiToken {
  name: string;
  token: string;
  role: Role;
}

export interface Principal {
  name: string;
  role: Role;
}

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

export class TokenAuthenticator {
  private readonly entries: { name: string; role: Role; digest: Buffer }[];

  constructor(tokens: ApiToken[]) {
    this.entries = tokens.map((t) => ({ name: t.name, role: t.role, digest: digest(t.token) }));
  }

  /** Checks an Authorization header; compares digests in constant time. Never echoes the token. */
  authenticate(header: string | undefined): Principal {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (!match) {
      throw new StationError(
        "AuthenticationFailed",
        "Missing bearer token: send 'Authorization: Bearer <token>'.",
      );
    }
    const given = digest(match[1]!);
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, given)) found = { name: e.name, role: e.role };
    }
    if (!found)
      throw new StationError("AuthenticationFailed", "The bearer token is not valid for this station.");
    return found;
  }
}

export function requireOperator(p: Principal): void {
  if (p.role !== "operator") {
    throw new StationError(
      "AuthorizationFailed",
      `Token '${p.name}' is a customer token; station routes need an operator token.`,
    );
  }
}
