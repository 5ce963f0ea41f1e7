/**
 * Authorization over ARM scopes, as ARM role assignments work: a customer granted a subscription
 * may act on every job in it; one granted a resource group, only on the jobs in that group.
 * Subscription ids and resource group names compare case-insensitively, as in ARM.
 * Operators may act everywhere. Pure functions: no I/O, decided before any job is read.
 */
import { StationError } from "../errors.js";
import type { Principal, RoleAssignment } from "./auth.js";
import { PROVIDER } from "./views.js";

export type ArmAction =
  | "Microsoft.ImportExport/jobs/read"
  | "Microsoft.ImportExport/jobs/write"
  | "Microsoft.ImportExport/jobs/delete"
  | "Microsoft.ImportExport/jobs/listBitLockerKeys/action"
  | "Microsoft.ImportExport/locations/read"
  | "Microsoft.ImportExport/operations/read";

/** The ARM scope a request addresses, from the matched route's parameters. */
export interface ArmScope {
  subscriptionId?: string;
  resourceGroup?: string;
  jobName?: string;
}

/** What ARM allows (the config schema uses the same rules): no wildcards, no separators. */
export const SUBSCRIPTION_ID = /^[A-Za-z0-9-]{1,64}$/;
export const RESOURCE_GROUP = /^[-\p{L}\p{N}_.()]{1,90}$/u;

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export function scopePath(s: ArmScope): string {
  let p = "";
  if (s.subscriptionId !== undefined) p += `/subscriptions/${s.subscriptionId}`;
  if (s.resourceGroup !== undefined) p += `/resourceGroups/${s.resourceGroup}`;
  if (s.jobName !== undefined) p += `/providers/${PROVIDER}/jobs/${s.jobName}`;
  return p || "/";
}

const covers = (a: RoleAssignment, subscriptionId: string, resourceGroup: string | undefined) =>
  same(a.subscriptionId, subscriptionId) &&
  (a.resourceGroup === undefined || (resourceGroup !== undefined && same(a.resourceGroup, resourceGroup)));

/**
 * True when the principal may act on the scope. A subscription-wide scope (a list by subscription)
 * is allowed when any assignment lies in that subscription; the list is then filtered by
 * `visibleResourceGroups`.
 */
export function allowed(p: Principal, s: ArmScope): boolean {
  if (p.role === "operator") return true;
  if (s.subscriptionId === undefined) return s.resourceGroup === undefined && s.jobName === undefined;
  const sub = s.subscriptionId;
  if (s.resourceGroup === undefined) return p.scopes.some((a) => same(a.subscriptionId, sub));
  return p.scopes.some((a) => covers(a, sub, s.resourceGroup));
}

/** ARM's answer, naming the caller, the action and the scope, and nothing about the job. */
export function authorizationFailed(p: Principal, action: ArmAction, s: ArmScope): StationError {
  const scope = scopePath(s);
  return new StationError(
    "AuthorizationFailed",
    `The client '${p.name}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    { target: scope },
  );
}

export function authorize(p: Principal, action: ArmAction, s: ArmScope): void {
  if (!allowed(p, s)) throw authorizationFailed(p, action, s);
}

/**
 * For a list by subscription: undefined when the principal sees the whole subscription, else the
 * resource groups it was granted there (lower-cased).
 */
export function visibleResourceGroups(p: Principal, subscriptionId: string): string[] | undefined {
  if (p.role === "operator") return undefined;
  const inSub = p.scopes.filter((a) => same(a.subscriptionId, subscriptionId));
  if (inSub.some((a) => a.resourceGroup === undefined)) return undefined;
  return [...new Set(inSub.map((a) => a.resourceGroup!.toLowerCase()))];
}

/**
 * A job's `storageAccountId` is a linked resource: a customer may only point a job at an account
 * in a subscription (and resource group) it was granted, as ARM's linked authorization checks.
 */
export function authorizeLinkedAccount(p: Principal, storageAccountId: string): void {
  if (p.role === "operator") return;
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\//i.exec(storageAccountId);
  if (m && p.scopes.some((a) => covers(a, m[1]!, m[2]!))) return;
  throw new StationError(
    "LinkedAuthorizationFailed",
    `The client '${p.name}' does not have authorization over the linked scope '${storageAccountId}': a job may only name a storage account in a subscription or resource group the client was granted.`,
    { target: "properties.storageAccountId" },
  );
}

/**
 * The station holds keys for some accounts (export reads with them), each owned by a subscription
 * (and maybe a resource group). A job may name such an account only where it lives: otherwise a
 * customer could name another tenant's account under its own subscription and export it.
 */
/** The account name at the end of a storage account resource ID, lower-cased (DNS names). */
export const accountName = (storageAccountId: string): string =>
  (storageAccountId.split("/").pop() ?? "").toLowerCase();

export function checkAccountOwner(storageAccountId: string, owner: RoleAssignment | undefined): void {
  if (!owner) return;
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\//i.exec(storageAccountId);
  if (m && covers(owner, m[1]!, m[2]!)) return;
  throw new StationError(
    "LinkedAuthorizationFailed",
    `The storage account in '${storageAccountId}' does not belong to that subscription and resource group; name the account by its real resource ID.`,
    { target: "properties.storageAccountId" },
  );
}

/**
 * Parses ARM scope strings as an identity provider would put them in a token:
 * `/subscriptions/<id>`, `/subscriptions/<id>/resourceGroups/<name>`, or a bare subscription id.
 * Returns undefined for anything else (the caller refuses the token).
 */
export function parseScopeString(s: string): RoleAssignment | undefined {
  const m = /^\/subscriptions\/([^/]+)(?:\/resourceGroups\/([^/]+))?\/?$/i.exec(s) ?? [s, s];
  const [, sub, group] = m;
  if (!sub || !SUBSCRIPTION_ID.test(sub)) return undefined;
  if (group === undefined) return { subscriptionId: sub };
  return RESOURCE_GROUP.test(group) ? { subscriptionId: sub, resourceGroup: group } : undefined;
}
