/** Runs system tools (lsblk, blkid, partx, mount, ntfs-3g, dislocker) with a timeout. */
import { spawn } from "node:child_process";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult | undefined,
    message: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

export type Exec = (
  command: string,
  args: string[],
  options?: { input?: string; timeoutMs?: number; allowFailure?: boolean },
) => Promise<ExecResult>;

/**
 * The real runner. `input` goes to stdin (how secrets such as a BitLocker recovery password are
 * passed: never on the command line, where every process can read it).
 */
export const exec: Exec = (command, args, options = {}) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(
        new CommandError(
          command,
          undefined,
          `${command} could not be run: ${(e as NodeJS.ErrnoException).code ?? e.message}. Is it installed?`,
        ),
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (result.code !== 0 && !options.allowFailure) {
        reject(
          new CommandError(
            command,
            result,
            `${command} ${signal === "SIGKILL" ? "timed out" : `exited ${result.code}`}: ${stderr.trim().split("\n").slice(-2).join(" ") || stdout.trim().slice(0, 200)}`,
          ),
        );
      } else resolve(result);
    });
    // A tool that exits without reading its stdin must not crash us with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
