/** What `station preview-export` prints: PreviewExport's report (reference §6.8). */
import type { PreviewReport } from "../transfer/export/planner.js";

const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;

/** PreviewExport's report (reference §6.8), plus where each drive's figures come from. */
export function formatPreview(p: PreviewReport): string {
  const lines = [
    `Number of blob paths/prefixes:            ${p.selectors}`,
    `Number of duplicate blob paths/prefixes:  ${p.duplicateSelectors}`,
    `Number of nonexistent blob paths/prefixes: ${p.nonexistent.length}`,
    ...p.nonexistent.map((m) => `        ${m.selector}: ${m.reason}`),
    `Blobs selected:                           ${p.blobsSelected} (${gb(p.bytesSelected)})`,
    `Number of blobs that can be exported:     ${p.blobsExportable}`,
    `Number of blobs that cannot be exported:  ${p.blobsNotExportable}`,
    `Number of drives needed:                  ${p.drivesNeeded}`,
  ];
  for (const d of p.drives) {
    const what = d.driveId ? `${d.driveId}, ${d.source}` : `assumed drive of ${gb(d.freeBytes)}`;
    lines.push(
      `        Drive #${d.ordinal} (${what}): blobs = ${d.blobs}, occupied space = ${gb(d.usedBytes)} (${d.usedBytes} bytes, data ${d.dataBytes})`,
    );
  }
  return lines.join("\n");
}
