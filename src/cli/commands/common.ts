/** Helpers every command module shares: the connection, output, and argument parsers. */
import { type Command, InvalidArgumentError } from "commander";
import { type ConnectionOptions, StationClient } from "../client.js";

export function connect(cmd: Command): StationClient {
  return new StationClient(cmd.optsWithGlobals<ConnectionOptions>());
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** `--json` prints the data as JSON (one document), otherwise the text view. */
export function emit(json: boolean | undefined, data: unknown, text: () => string): void {
  print(json ? JSON.stringify(data, null, 2) : text());
}

export function positiveInt(name: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from 1 to ${max}.`);
    return n;
  };
}

export function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number above 0.`);
    return n;
  };
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Offline customer tools whose report `--json` prints (they need no agent). */
export const OFFLINE_JSON_COMMANDS = ["verify-drive", "repair-export", "repair-import"] as const;
