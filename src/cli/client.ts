/**
 * The CLI's connection to the agent. The URL: --url, DRIVE_STATION_URL, or http://127.0.0.1:7480.
 * The operator token, first found of: --token-file, --token, DRIVE_STATION_TOKEN_FILE,
 * DRIVE_STATION_TOKEN, the running agent's ./data/api-tokens.json (which holds tokens only). A
 * file or the environment keeps the token out of `ps` and shell history. JSON requests; errors as
 * ApiError with a next step.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ApiError, CliError, EXIT_FAILED } from "./errors.js";
import { request } from "./http.js";
import type { Job } from "./views.js";

export interface ConnectionOptions {
  url?: string;
  token?: string;
  /** A file holding the token (its first line); keeps it off the command line. */
  tokenFile?: string;
  ca?: string;
  dataDir?: string;
  subscription?: string;
  resourceGroup?: string;
}

export const DEFAULT_URL = "http://127.0.0.1:7480";

interface TokenFile {
  tokens: { role: string; token: string; name?: string }[];
}

/** The generated tokens of a local agent (`npm start` writes them into data/api-tokens.json). */
export function readTokenFile(dataDir: string): TokenFile | undefined {
  const file = resolve(dataDir, "api-tokens.json");
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as TokenFile;
  } catch (e) {
    // Not the parser's message: some Node versions quote the text around the error (a token).
    const why =
      e instanceof SyntaxError ? "it is not valid JSON" : ((e as NodeJS.ErrnoException).code ?? "unreadable");
    throw new CliError(`Cannot read ${file}: ${why}. Pass --token-file or set DRIVE_STATION_TOKEN instead.`);
  }
}

/** The token in a file: its first line, trimmed (`echo TOKEN > file` adds a newline). */
export function readSecretFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new CliError(
      `Cannot read the token file ${file}: ${(e as NodeJS.ErrnoException).code ?? "unreadable"}. Next: check the path and that you may read it (chmod 600, owned by you).`,
    );
  }
  const token = text.split(/\r?\n/)[0]?.trim();
  if (!token)
    throw new CliError(`The token file ${file} is empty. Next: put the operator token on its first line.`);
  return token;
}

export class StationClient {
  readonly url: string;
  private readonly token: string;
  private readonly ca: Buffer | undefined;

  constructor(readonly opts: ConnectionOptions) {
    const dataDir = resolve(opts.dataDir ?? "data");
    const env = process.env;
    const fromFile = opts.tokenFile ?? (opts.token === undefined ? env.DRIVE_STATION_TOKEN_FILE : undefined);
    let token = fromFile !== undefined ? readSecretFile(fromFile) : (opts.token ?? env.DRIVE_STATION_TOKEN);
    token ??= readTokenFile(dataDir)?.tokens.find((t) => t.role === "operator")?.token;
    if (!token)
      throw new CliError(
        `No operator token: pass --token-file FILE, set DRIVE_STATION_TOKEN_FILE or DRIVE_STATION_TOKEN, or run where ${resolve(dataDir, "api-tokens.json")} exists (the directory 'npm start' runs in).`,
      );
    this.token = token;
    this.url = (opts.url ?? process.env.DRIVE_STATION_URL ?? DEFAULT_URL).replace(/\/$/, "");
    this.ca = opts.ca ? readFileSync(opts.ca) : undefined;
  }

  /** A request with this client's URL and CA but another bearer token (the demo's customer calls). */
  async call<T>(method: string, path: string, body?: unknown, token = this.token): Promise<T> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(this.ca ? { ca: this.ca } : {}),
      });
    } catch (e) {
      throw new CliError(
        `Cannot reach the agent at ${this.url}: ${(e as Error).message}. Next: start it ('npm start', or systemctl start drive-station) or pass --url.`,
        EXIT_FAILED,
      );
    }
    let json: (T & { error?: { code?: string; message?: string } }) | undefined;
    try {
      json = res.text ? JSON.parse(res.text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status >= 400)
      throw new ApiError(
        json?.error?.code ?? `HTTP${res.status}`,
        res.status,
        json?.error?.message ?? (res.text.slice(0, 200) || "no detail"),
      );
    return (json ?? {}) as T;
  }

  async listJobs(name?: string): Promise<Job[]> {
    const out: Job[] = [];
    let next: string | undefined = `/station/v1/jobs${name ? `?name=${encodeURIComponent(name)}` : ""}`;
    while (next) {
      const page: { value: Job[]; nextLink?: string } = await this.call("GET", next);
      out.push(...page.value);
      next = page.nextLink ? new URL(page.nextLink).pathname + new URL(page.nextLink).search : undefined;
    }
    return out;
  }

  /** One job by name; --subscription/--resource-group pick among jobs sharing a name. */
  async findJob(name: string): Promise<{ path: string; job: Job }> {
    const { subscription, resourceGroup } = this.opts;
    const matches = (await this.listJobs(name)).filter(
      (j) =>
        (!subscription || j.station.subscriptionId === subscription) &&
        (!resourceGroup || j.station.resourceGroup === resourceGroup),
    );
    if (matches.length === 0)
      throw new CliError(`No job named ${name} on this station. Next: list the jobs with 'station jobs'.`);
    if (matches.length > 1)
      throw new CliError(
        `${matches.length} jobs are named ${name}: add --subscription and --resource-group (${matches.map((j) => `${j.station.subscriptionId}/${j.station.resourceGroup}`).join(", ")}).`,
      );
    const job = matches[0]!;
    return { job, path: operatorJobPath(job.station.subscriptionId, job.station.resourceGroup, job.name) };
  }
}

export const operatorJobPath = (subscriptionId: string, resourceGroup: string, name: string): string =>
  `/station/v1/subscriptions/${encodeURIComponent(subscriptionId)}/resourceGroups/${encodeURIComponent(resourceGroup)}/jobs/${encodeURIComponent(name)}`;
