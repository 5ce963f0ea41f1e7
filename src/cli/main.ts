#!/usr/bin/env node
/**
 * `station`: the operator's command line, a thin client of the agent's HTTP API.
 * It finds the API URL and operator token from flags, the environment, or ./data/api-tokens.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { PrepareError } from "../prepare/prepare-drive.js";
import type { PreviewReport } from "../transfer/export/planner.js";
import { formatPreview, PREVIEW_USAGE } from "./export.js";
import { request } from "./http.js";
import { runPrepare } from "./prepare.js";

const USAGE = `usage: station [--url URL] [--token TOKEN] [--ca CERT.pem] [--data-dir DIR] COMMAND

commands:
  jobs                                   list jobs: state, percent complete, drives
  drives                                 list every drive of every job
  attached                               the drives plugged into this station now, and what happened to each
  show JOB                               the Get Job view, with faults, extra and held drives
  check-in JOB --tracking T --drive ID…  a package arrived at the dock
  arrived JOB DRIVE [--tracking T]       one drive turned up (plugged in, or a later package)
  fault JOB --reason TEXT [--drive ID]   put the job or a drive in Faulted
  resolve JOB [--drive ID]               return it to the state it left
  ship-back JOB --carrier C --tracking T [--drive-count N]
  close JOB                              close an overdue job whose customer did not answer for 30 days
  notices [--limit N]                    what needs a person, newest first
${PREVIEW_USAGE}
  prepare --drive DIR --source PATH --session ID --dest container/prefix/ --drive-id SERIAL
          (--sas-file F | --account-key-file F) [--blob-type BlockBlob|PageBlob]
          [--disposition rename|no-overwrite|overwrite] [--skip-write] [--append] [--out entry.json]
          [--metadata-file F] [--properties-file F]
                                         offline: lay out an import drive and write its manifest

JOB is a job name; add --subscription S --resource-group G when the name is not unique.`;

interface Job {
  name: string;
  properties: {
    state: string;
    jobType: string;
    percentComplete: number;
    cancelRequested: boolean;
    driveList: {
      driveId: string;
      state: string;
      percentComplete: number;
      bytesSucceeded: number;
      copyStatus?: string;
      errorLogUri?: string;
      verboseLogUri?: string;
    }[];
  };
  station: {
    subscriptionId: string;
    resourceGroup: string;
    faulted?: { from: string; reason: string; at: string };
    drives: { driveId: string; faulted?: { from: string; reason: string } }[];
    extraDrives: { driveId: string; trackingNumber?: string; shippedBack: boolean }[];
    heldPackages: { trackingNumber: string; driveIds: string[]; heldAt: string }[];
  };
}

class CliError extends Error {}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function bar(percent: number): string {
  const filled = Math.round(percent / 5);
  return `[${"#".repeat(filled)}${".".repeat(20 - filled)}] ${String(percent).padStart(3)}%`;
}

async function main(argv: string[]): Promise<void> {
  // prepare is offline and has its own options
  if (argv[0] === "prepare") return runPrepare(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      token: { type: "string" },
      ca: { type: "string" },
      "data-dir": { type: "string" },
      subscription: { type: "string" },
      "resource-group": { type: "string" },
      tracking: { type: "string" },
      drive: { type: "string", multiple: true },
      reason: { type: "string" },
      carrier: { type: "string" },
      "drive-count": { type: "string" },
      limit: { type: "string" },
      "drive-size": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }

  const dataDir = resolve(values["data-dir"] ?? "data");
  const tokensFile = resolve(dataDir, "api-tokens.json");
  let token = values.token ?? process.env.DRIVE_STATION_TOKEN;
  if (!token && existsSync(tokensFile)) {
    const parsed = JSON.parse(readFileSync(tokensFile, "utf8")) as {
      tokens: { role: string; token: string }[];
    };
    token = parsed.tokens.find((t) => t.role === "operator")?.token;
  }
  if (!token)
    throw new CliError(
      `No operator token: pass --token, set DRIVE_STATION_TOKEN, or run where ${tokensFile} exists.`,
    );
  const url = (values.url ?? process.env.DRIVE_STATION_URL ?? "http://127.0.0.1:7480").replace(/\/$/, "");
  const ca = values.ca ? readFileSync(values.ca) : undefined;

  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(ca ? { ca } : {}),
      });
    } catch (e) {
      throw new CliError(`Cannot reach the agent at ${url}: ${(e as Error).message}. Is it running?`);
    }
    const json = res.text
      ? (JSON.parse(res.text) as T & { error?: { code: string; message: string } })
      : ({} as T & { error?: undefined });
    if (res.status >= 400)
      throw new CliError(`${json.error?.code ?? res.status}: ${json.error?.message ?? res.text}`);
    return json;
  };

  const listAll = async (name?: string): Promise<Job[]> => {
    const out: Job[] = [];
    let next: string | undefined = `/station/v1/jobs${name ? `?name=${encodeURIComponent(name)}` : ""}`;
    while (next) {
      const page: { value: Job[]; nextLink?: string } = await call("GET", next);
      out.push(...page.value);
      next = page.nextLink ? new URL(page.nextLink).pathname + new URL(page.nextLink).search : undefined;
    }
    return out;
  };

  const findJob = async (name: string | undefined): Promise<{ path: string; job: Job }> => {
    if (!name) throw new CliError(`${command}: which job? (station ${command} JOB)`);
    const matches = (await listAll(name)).filter(
      (j) =>
        (!values.subscription || j.station.subscriptionId === values.subscription) &&
        (!values["resource-group"] || j.station.resourceGroup === values["resource-group"]),
    );
    if (matches.length === 0) throw new CliError(`No job named ${name} on this station.`);
    if (matches.length > 1) {
      throw new CliError(
        `${matches.length} jobs are named ${name}: add --subscription and --resource-group (${matches.map((j) => `${j.station.subscriptionId}/${j.station.resourceGroup}`).join(", ")}).`,
      );
    }
    const job = matches[0]!;
    return {
      job,
      path: `/station/v1/subscriptions/${encodeURIComponent(job.station.subscriptionId)}/resourceGroups/${encodeURIComponent(job.station.resourceGroup)}/jobs/${encodeURIComponent(job.name)}`,
    };
  };

  const show = (job: Job): string => {
    const p = job.properties;
    const lines = [
      `job ${job.name}  (${job.station.subscriptionId}/${job.station.resourceGroup})`,
      `  type ${p.jobType}   state ${p.state}${job.station.faulted ? ` (from ${job.station.faulted.from}: ${job.station.faulted.reason})` : ""}${p.cancelRequested ? "   CANCEL REQUESTED" : ""}`,
      `  ${bar(p.percentComplete)}`,
      "",
    ];
    if (p.driveList.length) {
      lines.push(
        pad([
          ["  DRIVE", "STATE", "PROGRESS", "BYTES", "COPY STATUS", "ERROR LOG"],
          ...p.driveList.map((d) => {
            const fault = job.station.drives.find((s) => s.driveId === d.driveId)?.faulted;
            return [
              `  ${d.driveId}`,
              fault ? `Faulted (${fault.reason})` : d.state,
              bar(d.percentComplete),
              String(d.bytesSucceeded),
              d.copyStatus ?? "",
              d.errorLogUri ?? "",
            ];
          }),
        ]),
      );
    } else lines.push("  no drives yet");
    for (const e of job.station.extraDrives)
      lines.push(
        `  extra drive ${e.driveId}${e.trackingNumber ? ` (package ${e.trackingNumber})` : ""}${e.shippedBack ? ", shipped back" : ", to return with the job"}`,
      );
    for (const h of job.station.heldPackages)
      lines.push(
        `  HELD package ${h.trackingNumber}: drives ${h.driveIds.join(", ") || "none"} since ${h.heldAt}`,
      );
    return lines.join("\n");
  };

  const out = (s: string): void => {
    process.stdout.write(`${s}\n`);
  };

  switch (command) {
    case "jobs": {
      const jobs = await listAll();
      if (!jobs.length) return out("no jobs");
      return out(
        pad([
          ["JOB", "TYPE", "STATE", "PROGRESS", "DRIVES", "SUBSCRIPTION/RESOURCE GROUP"],
          ...jobs.map((j) => [
            j.name,
            j.properties.jobType,
            j.properties.state,
            bar(j.properties.percentComplete),
            String(j.properties.driveList.length),
            `${j.station.subscriptionId}/${j.station.resourceGroup}`,
          ]),
        ]),
      );
    }
    case "drives": {
      const rows = (await listAll()).flatMap((j) =>
        j.properties.driveList.map((d) => [
          d.driveId,
          j.name,
          d.state,
          bar(d.percentComplete),
          String(d.bytesSucceeded),
        ]),
      );
      if (!rows.length) return out("no drives");
      return out(pad([["DRIVE", "JOB", "STATE", "PROGRESS", "BYTES"], ...rows]));
    }
    case "attached": {
      type Attached = {
        device: string;
        serial?: string;
        fsType?: string;
        status: string;
        code?: string;
        driveId?: string;
        job?: { name: string };
        message: string;
        progress?: {
          bytesSucceeded: number;
          bytesTotal: number;
          bytesPerSecond: number;
          etaSeconds?: number;
        };
      };
      const { value } = await call<{ value: Attached[] }>("GET", "/station/v1/attached");
      if (!value.length) return out("no drives attached");
      const progressOf = (d: Attached) => {
        const p = d.progress;
        if (!p || !p.bytesTotal) return "-";
        const pct = Math.floor((p.bytesSucceeded * 100) / p.bytesTotal);
        const eta =
          p.etaSeconds === undefined
            ? ""
            : ` ETA ${Math.floor(p.etaSeconds / 60)}m${String(p.etaSeconds % 60).padStart(2, "0")}s`;
        return `${bar(pct)} ${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s${eta}`;
      };
      return out(
        pad([
          ["DEVICE", "SERIAL", "FS", "STATUS", "JOB", "DRIVE", "PROGRESS", "DETAIL"],
          ...value.map((d) => [
            d.device,
            d.serial ?? "-",
            d.fsType ?? "-",
            d.code ? `${d.status} (${d.code})` : d.status,
            d.job?.name ?? "-",
            d.driveId ?? "-",
            progressOf(d),
            d.message,
          ]),
        ]),
      );
    }
    case "show":
      return out(show((await findJob(args[0])).job));
    case "check-in": {
      const { path } = await findJob(args[0]);
      if (!values.tracking) throw new CliError("check-in: --tracking NUMBER is required.");
      return out(
        show(
          await call<Job>("POST", `${path}/packages`, {
            trackingNumber: values.tracking,
            driveIds: values.drive ?? [],
          }),
        ),
      );
    }
    case "arrived": {
      const { path } = await findJob(args[0]);
      if (!args[1]) throw new CliError("arrived: which drive? (station arrived JOB DRIVE)");
      return out(
        show(
          await call<Job>(
            "POST",
            `${path}/drives/${encodeURIComponent(args[1])}/arrived`,
            values.tracking ? { trackingNumber: values.tracking } : {},
          ),
        ),
      );
    }
    case "fault": {
      const { path } = await findJob(args[0]);
      if (!values.reason) throw new CliError("fault: --reason TEXT is required.");
      return out(
        show(
          await call<Job>("POST", `${path}/fault`, {
            reason: values.reason,
            ...(values.drive?.[0] ? { driveId: values.drive[0] } : {}),
          }),
        ),
      );
    }
    case "resolve": {
      const { path } = await findJob(args[0]);
      return out(
        show(
          await call<Job>("POST", `${path}/resolve`, values.drive?.[0] ? { driveId: values.drive[0] } : {}),
        ),
      );
    }
    case "ship-back": {
      const { path } = await findJob(args[0]);
      if (!values.carrier || !values.tracking)
        throw new CliError("ship-back: --carrier and --tracking are required.");
      const body: Record<string, unknown> = { carrierName: values.carrier, trackingNumber: values.tracking };
      if (values["drive-count"]) body.driveCount = Number(values["drive-count"]);
      return out(show(await call<Job>("POST", `${path}/shipBack`, body)));
    }
    case "close": {
      const { path } = await findJob(args[0]);
      return out(show(await call<Job>("POST", `${path}/close`, {})));
    }
    case "notices": {
      const { value } = await call<{ value: { at: string; code: string; message: string }[] }>(
        "GET",
        `/station/v1/notices?limit=${Number(values.limit ?? 50)}`,
      );
      if (!value.length) return out("no notices");
      return out(value.map((n) => `${n.at}  ${n.code.padEnd(18)} ${n.message}`).join("\n"));
    }
    case "preview-export": {
      const { path } = await findJob(args[0]);
      const body = values["drive-size"] ? { driveSize: values["drive-size"] } : {};
      return out(formatPreview(await call<PreviewReport>("POST", `${path}/exportPreview`, body)));
    }
    case "confirm-export-drive": {
      const { path } = await findJob(args[0]);
      if (!args[1]) throw new CliError("confirm-export-drive: give the job and the drive id.");
      const r = await call<{ message: string }>(
        "POST",
        `${path}/drives/${encodeURIComponent(args[1])}/confirmExport`,
        {},
      );
      return out(r.message);
    }
    default:
      throw new CliError(`unknown command '${command}'.\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const known = e instanceof CliError || e instanceof PrepareError;
  process.stderr.write(`station: ${known ? (e as Error).message : String((e as Error)?.stack ?? e)}\n`);
  process.exit(known ? 2 : 1);
});
