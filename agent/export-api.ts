/** The export routes wired to this station: a dry-run preview over the docked drives, and the confirm step. */
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { exportRoutes } from "../src/api/export-routes.js";
import type { Dock } from "../src/drives/door.js";
import { StationError } from "../src/errors.js";
import type { JobService } from "../src/jobs/service.js";
import { jobLabel } from "../src/lifecycle/model.js";
import type { RetryPolicy } from "../src/transfer/core/retry.js";
import { previewJob } from "../src/transfer/export/preview.js";
import type { TransferManager, TransferManagerDeps } from "../src/transfer/manager.js";

export interface ExportApiDeps {
  service: JobService;
  exports: Omit<NonNullable<TransferManagerDeps["exports"]>, "hasher">;
  /** Undefined when drives are disabled on this station. */
  dock: Dock | undefined;
  transfers: TransferManager | undefined;
  retry: RetryPolicy;
  log: Logger;
}

export function exportApi(deps: ExportApiDeps): (app: FastifyInstance) => void {
  const { service, dock, transfers } = deps;
  return exportRoutes({
    service,
    preview: async (key, driveSize) => {
      const job = await service.get(key);
      const docked = (dock?.list() ?? []).filter(
        (d) => d.job && d.driveId && d.mountpoint && jobLabel(d.job) === jobLabel(key),
      );
      return previewJob(
        { ...deps.exports, log: deps.log, retry: deps.retry },
        job,
        docked.map((d) => ({
          driveId: d.driveId!,
          mountpoint: d.mountpoint!,
          ...(d.fsType ? { fsType: d.fsType } : {}),
        })),
        driveSize,
        AbortSignal.timeout(10 * 60_000),
      );
    },
    confirm: async (key, driveId, by) => {
      if (!transfers)
        throw new StationError(
          "NotYetAllowed",
          "Drives are disabled on this station: no export drive can be written.",
        );
      return transfers.confirmExportDrive(key, driveId, by);
    },
  });
}
