/**
 * The station's scheduler: its storage request slots and its block buffers, shared fairly by the
 * drives transferring now. Each drive gets a lane, a view of both with the shape the engines use
 * (`queue.add(fn)`, a pool with acquire/release/forfeit). Slots and buffers are handed out to the
 * waiting drive that holds the fewest, and a drive at its fair share takes no more while another
 * working drive is below its own (fair-share.ts), so a drive whose storage is slow or retrying, or
 * that runs more readers, cannot starve the others; a drive alone uses everything.
 * The lane is tied to the drive's abort signal by one listener: on a pull or a stop, what the
 * drive still waits for is rejected with the signal's reason.
 */
import { sharedBuffer } from "./buffer-pool.js";
import { FairShare, type ShareLane } from "./fair-share.js";

/** Storage requests of one drive: `fn` runs once a request slot is free. */
export interface RequestQueue {
  add<T>(fn: () => Promise<T>): Promise<T>;
}

/** Block buffers of one drive; together with the queue, what bounds a transfer's memory. */
export interface BlockPool {
  /** A buffer of the pool's size; waits while the drive's share is lent out. */
  acquire(): Promise<Buffer>;
  release(b: Buffer): void;
  /** Gives up a buffer for good (a hung read may still write into it); a fresh one takes its place. */
  forfeit(b: Buffer): void;
}

/** One drive's view of the scheduler. */
export interface DriveLane {
  queue: RequestQueue;
  pool: BlockPool;
  /** The drive's run is over: anything it still waits for is rejected. */
  close(): void;
}

export class StationScheduler {
  private readonly slots: FairShare;
  private readonly buffers: FairShare;
  private readonly free: Buffer[] = [];

  constructor(
    concurrency: number,
    readonly bufferSize: number,
    maxBuffers: number,
  ) {
    this.slots = new FairShare(concurrency);
    // Two buffers no drive takes alone (while one drive alone can still fill every request slot):
    // a drive plugged in beside one whose requests keep retrying, buffers held, starts at once.
    this.buffers = new FairShare(maxBuffers, Math.max(0, Math.min(2, maxBuffers - concurrency)));
  }

  /** Storage requests waiting for a slot, and in flight (metrics). */
  depth(): { queued: number; inFlight: number } {
    return { queued: this.slots.queued, inFlight: this.slots.used };
  }

  /** Buffers lent out now. */
  get buffersInUse(): number {
    return this.buffers.used;
  }

  /** A lane for one drive's run; `signal` (the run's) closes it when aborted. */
  lane(signal?: AbortSignal): DriveLane {
    const slots = this.slots.join();
    const buffers = this.buffers.join();
    slots.peer = buffers;
    buffers.peer = slots;
    const close = (reason: unknown) => {
      this.slots.close(slots, reason);
      this.buffers.close(buffers, reason);
      this.pump();
    };
    const onAbort = () => close(signal?.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    return {
      queue: { add: (fn) => this.run(slots, fn) },
      pool: {
        acquire: () => this.acquire(buffers),
        release: (b) => this.release(buffers, b),
        forfeit: () => {
          this.buffers.give(buffers);
          this.pump();
        },
      },
      close: () => {
        signal?.removeEventListener("abort", onAbort);
        close(new Error("the drive's run is over"));
      },
    };
  }

  private async run<T>(lane: ShareLane, fn: () => Promise<T>): Promise<T> {
    const taking = this.slots.take(lane);
    this.buffers.pump(); // the lane's activity changed: the buffer shares did too
    await taking;
    try {
      return await fn();
    } finally {
      this.slots.give(lane);
      this.buffers.pump();
    }
  }

  /** Both shares hand out what they can: a drive's activity in one changes its share of the other. */
  private pump(): void {
    this.slots.pump();
    this.buffers.pump();
  }

  private async acquire(lane: ShareLane): Promise<Buffer> {
    const taking = this.buffers.take(lane);
    this.slots.pump();
    await taking;
    // A forfeited buffer is dropped, so the free list may be short: allocate then.
    return this.free.pop() ?? sharedBuffer(this.bufferSize);
  }

  private release(lane: ShareLane, b: Buffer): void {
    const full =
      b.byteOffset === 0 && b.buffer.byteLength === this.bufferSize
        ? b
        : Buffer.from(b.buffer, 0, this.bufferSize);
    this.free.push(full);
    this.buffers.give(lane);
    this.slots.pump();
  }
}
