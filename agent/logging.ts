/**
 * The agent's logger. One pino logger (every argument and binding goes through the one scrubber,
 * src/secrets.ts, at any depth: fields, errors with their stack and cause) whose lines go out in
 * one of three shapes:
 *  - pretty: levelled, human text on a terminal (pino-pretty, formatted in-process);
 *  - journal: JSON lines under systemd, each prefixed `<N>` with its syslog priority (systemd's
 *    SyslogLevelPrefix), so `journalctl -p warning` finds the warnings;
 *  - json: plain JSON lines (a pipe, a file, a log shipper).
 * The shape is chosen from the environment here, in the composition root.
 */
import { fstatSync } from "node:fs";
import pino, { type DestinationStream, type Logger } from "pino";
import { prettyFactory } from "pino-pretty";
import { scrubSecrets, scrubValue } from "../src/secrets.js";

export type LogFormat = "pretty" | "journal" | "json";

/**
 * systemd sets JOURNAL_STREAM=<dev>:<inode> for the stream it connected to the journal; it only
 * counts when stdout is still that stream (not redirected by a wrapper).
 */
export function chooseLogFormat(o: {
  env: NodeJS.ProcessEnv;
  stdoutIsTTY: boolean;
  stdoutId?: { dev: number; ino: number };
}): LogFormat {
  const journal = o.env.JOURNAL_STREAM?.split(":");
  if (
    journal?.length === 2 &&
    o.stdoutId &&
    journal[0] === String(o.stdoutId.dev) &&
    journal[1] === String(o.stdoutId.ino)
  )
    return "journal";
  return o.stdoutIsTTY ? "pretty" : "json";
}

/** The format for this process's stdout. */
export function detectLogFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  let stdoutId: { dev: number; ino: number } | undefined;
  try {
    const s = fstatSync(1);
    stdoutId = { dev: s.dev, ino: s.ino };
  } catch {
    stdoutId = undefined;
  }
  return chooseLogFormat({
    env,
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    ...(stdoutId ? { stdoutId } : {}),
  });
}

/** pino level -> syslog priority: fatal crit(2), error err(3), warn warning(4), info info(6), debug/trace debug(7). */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

const LEVEL = /"level":(\d+)/;

/** A destination that reshapes each JSON line before writing it to `sink`. */
export function formattedDestination(
  format: LogFormat,
  sink: DestinationStream,
  colorize = false,
): DestinationStream {
  if (format === "json") return sink;
  if (format === "journal")
    return {
      write(line: string) {
        const level = Number(LEVEL.exec(line)?.[1] ?? 30);
        sink.write(`<${syslogPriority(level)}>${line}`);
      },
    };
  const pretty = prettyFactory({
    colorize,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,service",
    singleLine: true,
  });
  return {
    write(line: string) {
      sink.write(pretty(line));
    },
  };
}

export interface LoggerOptions {
  level: string;
  format: LogFormat;
  /** Where the lines go (default: stdout). */
  sink?: DestinationStream;
  /** Colour pretty output (default: when stdout is a terminal). */
  colorize?: boolean;
}

/**
 * A log call's arguments fit for output: the merging object (or Error) scrubbed at any depth, the
 * message and printf arguments scrubbed. A bare Error becomes `{ err }` with its scrubbed message
 * as the message (pino would otherwise take the raw `err.message`).
 */
export function scrubLogArgs(args: unknown[]): unknown[] {
  const [first, ...rest] = args;
  if (first instanceof Error) {
    const err = scrubValue(first) as { message: string };
    return [{ err }, ...(rest.length ? rest.map(scrubArg) : [err.message])];
  }
  if (first !== null && typeof first === "object") {
    const obj = scrubValue(first) as { err?: { message?: unknown }; msg?: unknown };
    // pino takes a missing message from err.message: give it the scrubbed one.
    if (rest.length === 0 && obj.msg === undefined && typeof obj.err?.message === "string")
      return [obj, obj.err.message];
    return [obj, ...rest.map(scrubArg)];
  }
  return args.map(scrubArg);
}

const scrubArg = (a: unknown): unknown => (typeof a === "string" ? scrubSecrets(a) : scrubValue(a));

export function createLogger(o: LoggerOptions): Logger {
  const sink = o.sink ?? pino.destination(1);
  const logger = pino(
    {
      level: o.level,
      base: { service: "drive-station" },
      hooks: {
        logMethod(args, method) {
          method.apply(this, scrubLogArgs(args) as Parameters<typeof method>);
        },
      },
      // Errors arrive here already scrubbed into plain objects (scrubLogArgs): keep them as they are.
      serializers: { err: (e: unknown) => e },
    },
    formattedDestination(
      o.format,
      sink,
      o.colorize ?? (o.sink === undefined && Boolean(process.stdout.isTTY)),
    ),
  );
  // A child's bindings are on every line it writes (pino applies no formatter to a child's):
  // scrubbed as they are bound. Children inherit this `child`, so grandchildren are scrubbed too.
  const pinoChild = logger.child as unknown as (
    this: Logger,
    b: pino.Bindings,
    o?: pino.ChildLoggerOptions,
  ) => Logger;
  logger.child = function (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) {
    return pinoChild.call(this, scrubValue(bindings) as pino.Bindings, options);
  } as unknown as Logger["child"];
  return logger;
}
