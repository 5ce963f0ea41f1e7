/**
 * How the CLI fails: one line on stderr naming what is wrong and what to do next. Exit 2 for a
 * bad command line (the operator can fix the arguments), 1 for a failure of the station or of a
 * request the station refused.
 */
import { scrubSecrets } from "../secrets.js";

export const EXIT_USAGE = 2;
export const EXIT_FAILED = 1;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
  ) {
    super(message);
  }
}

/** The station refused a request: its error code, its message and the next step. */
export class ApiError extends CliError {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(`${code}: ${message}${endWithStop(message)} Next: ${nextStep(code, status)}`, EXIT_FAILED);
  }
}

const endWithStop = (s: string) => (/[.!?)]$/.test(s.trim()) ? "" : ".");

export function nextStep(code: string, status: number): string {
  if (status === 401)
    return "check the token (--token-file, DRIVE_STATION_TOKEN_FILE, DRIVE_STATION_TOKEN, or data/api-tokens.json of the running agent).";
  if (status === 403 || code === "AuthorizationFailed")
    return "use an operator token (--token-file or DRIVE_STATION_TOKEN_FILE).";
  if (code === "JobNotFound" || status === 404) return "list the jobs with 'station jobs'.";
  if (code === "InvalidJobState" || code === "InvalidDriveState" || status === 409)
    return "see the job's state and drives with 'station show JOB'.";
  if (status >= 500) return "check the agent's log (journalctl -u drive-station, or its terminal).";
  return "check the arguments with 'station COMMAND --help'.";
}

/**
 * Flattens commander's messages ("error: unknown option '--x'\n(Did you mean --y?)") to one line.
 * An option's value is never echoed (`unknown option '--tokn=SECRET'`: a mistyped --token), and
 * the rest passes the secret scrubber.
 */
export function oneLine(message: string, commandPath: string): string {
  const text = scrubSecrets(
    message
      .replace(/^error:\s*/i, "")
      // up to the quote that closes commander's '--opt=value' (the value may hold quotes, spaces, newlines)
      .replace(/(--?[A-Za-z][\w-]*=)[\s\S]*'/, "$1…'")
      .replace(/(--?[A-Za-z][\w-]*=)[^'"\s]+/g, "$1…")
      .replace(/\s*\n\s*/g, " ")
      .trim(),
  );
  return `${commandPath}: ${text}${endWithStop(text)} See '${commandPath} --help'.`;
}
