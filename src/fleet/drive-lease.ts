/**
 * One drive's claim by this station: taken before the first byte moves (waiting while another
 * station's lease is live), renewed by a heartbeat every third of the lease, given up when the
 * run ends. The claim is a row in the shared store, so a station that dies loses its drives
 * when their leases run out, and a second station can never run the same drive at once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Clock } from "../jobs/service.js";
import type { DriveClaims, DriveRef, Lease } from "../jobs/store.js";

export interface LeaseSettings {
  claims: DriveClaims;
  stationId: string;
  leaseMs: number;
  clock: Clock;
}

export class DriveLease {
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly s: LeaseSettings,
    readonly drive: DriveRef,
  ) {}

  /**
   * Resolves once this station holds the drive. While another station's lease is live it calls
   * `onHeld` (once per holder) and tries again when that lease would run out.
   */
  async acquire(signal: AbortSignal, onHeld: (holder: Lease) => Promise<void> | void): Promise<void> {
    let told: string | undefined;
    for (;;) {
      const now = this.s.clock.now();
      const r = await this.s.claims.claim(this.drive, this.s.stationId, now, this.s.leaseMs);
      if (r.granted) return;
      if (told !== r.holder.stationId) {
        told = r.holder.stationId;
        await onHeld(r.holder);
      }
      const untilExpiry = r.holder.expiresAt.getTime() - now.getTime() + 50;
      await sleep(Math.max(200, Math.min(untilExpiry, this.s.leaseMs / 3)), undefined, { signal });
    }
  }

  /** Renews every third of the lease; `onLost` when another station holds the drive now. */
  keepAlive(onLost: () => void, onError: (e: unknown) => void): void {
    this.heartbeat = setInterval(() => {
      this.s.claims
        .renew(this.drive, this.s.stationId, this.s.clock.now(), this.s.leaseMs)
        .then((ours) => (ours ? undefined : onLost()), onError);
    }, this.s.leaseMs / 3);
    this.heartbeat.unref();
  }

  /** Stops the heartbeat and frees the drive for the fleet (best effort: otherwise the lease runs out). */
  async release(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    await this.s.claims.release(this.drive, this.s.stationId).catch(() => undefined);
  }
}
