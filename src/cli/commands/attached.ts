/**
 * `station attached [--watch]`: the drives plugged in now. --watch is a live view, one progress
 * bar per drive, redrawn in place on a terminal and printed as plain lines (one per change)
 * otherwise; Ctrl-C ends it with exit 0.
 */
import type { Command } from "commander";
import type { StationClient } from "../client.js";
import { CliError } from "../errors.js";
import { attachedTable, attachedWatchLines, progress } from "../render.js";
import type { Attached } from "../views.js";
import { connect, emit, positiveNumber } from "./common.js";

export interface WatchOptions {
  intervalSeconds: number;
  json?: boolean;
  /** Stop when this says so (the demo stops once its drive is done). */
  until?: (drives: Attached[]) => boolean;
  out?: NodeJS.WriteStream;
}

export const fetchAttached = async (client: StationClient): Promise<Attached[]> =>
  (await client.call<{ value: Attached[] }>("GET", "/station/v1/attached")).value;

/** Runs until Ctrl-C (resolves normally) or until `until` holds; returns the last view. */
export async function watchAttached(client: StationClient, o: WatchOptions): Promise<Attached[]> {
  const out = o.out ?? process.stdout;
  const tty = Boolean(out.isTTY) && !o.json;
  let stopped = false;
  let wake: () => void = () => undefined;
  const onSignal = () => {
    stopped = true;
    wake();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let drawn = 0;
  const lastLine = new Map<string, string>();
  let last: Attached[] = [];
  let unreachable: string | undefined;
  try {
    while (!stopped) {
      let lines: string[];
      try {
        last = await fetchAttached(client);
        unreachable = undefined;
        lines = attachedWatchLines(last, out.columns || 160);
      } catch (e) {
        if (!(e instanceof CliError)) throw e;
        if (!tty && unreachable === e.message) lines = [];
        else lines = [`${new Date().toISOString()}  ${e.message} (retrying)`];
        unreachable = e.message;
      }
      if (o.json) {
        if (!unreachable) out.write(`${JSON.stringify({ at: new Date().toISOString(), drives: last })}\n`);
      } else if (tty) {
        // Move to the first line drawn last time, clear to the end of the screen, draw again.
        out.write(`${drawn ? `\x1b[${drawn}F\x1b[0J` : ""}${lines.join("\n")}\n`);
        drawn = lines.length;
      } else if (unreachable) {
        for (const l of lines) out.write(`${l}\n`);
      } else {
        // Plain lines: one per drive whose status or whole percent changed.
        const empty = last.length === 0 ? "empty" : "some";
        if (lastLine.get("") !== empty && empty === "empty")
          out.write(`${new Date().toISOString()}  no drives attached\n`);
        lastLine.set("", empty);
        for (const d of last) {
          const pct = d.progress?.bytesTotal
            ? Math.floor((d.progress.bytesSucceeded * 100) / d.progress.bytesTotal)
            : -1;
          const sig = `${d.status}|${pct}|${d.job?.name ?? ""}`;
          const id = d.key ?? d.device;
          if (lastLine.get(id) === sig) continue;
          lastLine.set(id, sig);
          const who = d.job ? `${d.job.name}/${d.driveId ?? "?"}` : (d.serial ?? "no-serial");
          const p = progress(d.status, d.progress);
          out.write(
            `${new Date().toISOString()}  ${d.device}  ${who}  ${d.status}  ${p === "-" ? d.message : p}\n`,
          );
        }
      }
      if (o.until?.(last)) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.intervalSeconds * 1000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return last;
}

export function registerAttachedCommand(program: Command): void {
  program
    .command("attached")
    .description("the drives plugged into this station now, and what happened to each")
    .option("--watch", "live view: a progress bar per drive with bytes, speed and ETA (Ctrl-C stops)")
    .option("--interval <seconds>", "refresh interval of --watch", positiveNumber("--interval"), 1)
    .option("--json", "print JSON (with --watch: one JSON document per line and refresh)")
    .action(async (opts: { watch?: boolean; interval: number; json?: boolean }, cmd: Command) => {
      const client = connect(cmd);
      if (opts.watch) {
        await watchAttached(client, { intervalSeconds: opts.interval, ...(opts.json ? { json: true } : {}) });
        return;
      }
      const drives = await fetchAttached(client);
      emit(opts.json, drives, () => attachedTable(drives));
    });
}
