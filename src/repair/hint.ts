/**
 * The customer's next step for an import drive that ended CompletedMoreInfo: the copy log and
 * the `station repair-import` command that re-sends what failed (issue 20 item 5). The API has
 * no documented field for it (reference §4.4: `copyStatus` is the log's drive status), so it
 * goes where people look: the drive's message on the station, its `DriveNeedsRepair` notice
 * and `station show`.
 */
export function repairImportHint(errorLogUri: string): string {
  return `Repair from the original files: station repair-import --log-url ${errorLogUri} --source <directory of the original files> --progress <drive>.progress --account-key-file <key file>`;
}

/** The customer's next step for an export drive that ended CompletedMoreInfo, once it is back. */
export function repairExportHint(errorLogUri: string): string {
  return `Repair the returned drive from storage: download the copy log ${errorLogUri}, then station repair-export --copy-log <log file> --drive <mounted drive> --account <account> --account-key-file <key file> --manifest`;
}
