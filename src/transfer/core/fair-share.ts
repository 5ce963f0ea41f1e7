/**
 * A fixed number of units (request slots, block buffers) shared by lanes (one per drive). The
 * fair share is the units over the active lanes (those holding or waiting for units here or in
 * their peer share: a drive reading its next block holds a buffer and will want a slot). A free
 * unit goes to the waiting lane that holds the fewest, ties taken round-robin; a lane at its share
 * takes no more while another active lane is below its own. A lane alone, or beside idle ones,
 * takes every unit but the reserve (work-conserving). Nothing is taken back: a lane over its share
 * gives units up as its work finishes, and they go to the lanes below it. The price: a drive that
 * holds a buffer without asking for slots (an export reading back a file) still caps the others'
 * slots at their share meanwhile.
 */

interface Waiter {
  resolve(): void;
  reject(reason: unknown): void;
}

export class ShareLane {
  held = 0;
  readonly waiting: Waiter[] = [];
  /** Set by `close`: later takes are rejected with `closedBy`. */
  isClosed = false;
  closedBy: unknown;
  /** The same drive's lane in the other share (slots for buffers, buffers for slots). */
  peer: ShareLane | undefined;

  get busy(): boolean {
    return this.held > 0 || this.waiting.length > 0;
  }

  get active(): boolean {
    return this.busy || (this.peer?.busy ?? false);
  }
}

export class FairShare {
  private inUse = 0;
  private readonly lanes: ShareLane[] = [];
  private next = 0;

  /**
   * `reserve`: units no single lane takes, so a drive that arrives beside one holding its units for
   * long (its requests retrying keep their buffers) starts at once.
   */
  constructor(
    readonly capacity: number,
    readonly reserve = 0,
  ) {
    if (capacity - reserve < 1) throw new RangeError("a fair share needs at least one unit per lane");
  }

  join(): ShareLane {
    const lane = new ShareLane();
    this.lanes.push(lane);
    return lane;
  }

  /** No more takes: the lane's waiters are rejected with `reason`; it leaves once it holds nothing. */
  close(lane: ShareLane, reason: unknown): void {
    lane.isClosed = true;
    lane.closedBy = reason;
    for (const w of lane.waiting.splice(0)) w.reject(reason);
    this.leaveIfIdle(lane);
  }

  /** Resolves once the lane holds one more unit. */
  take(lane: ShareLane): Promise<void> {
    if (lane.isClosed) return Promise.reject(lane.closedBy);
    return new Promise<void>((resolve, reject) => {
      lane.waiting.push({ resolve, reject });
      this.pump();
    });
  }

  give(lane: ShareLane): void {
    lane.held--;
    this.inUse--;
    this.leaveIfIdle(lane);
    this.pump();
  }

  /** Units waited for, summed over the lanes. */
  get queued(): number {
    return this.lanes.reduce((n, l) => n + l.waiting.length, 0);
  }

  get used(): number {
    return this.inUse;
  }

  private leaveIfIdle(lane: ShareLane): void {
    if (!lane.isClosed || lane.held > 0) return;
    const i = this.lanes.indexOf(lane);
    if (i < 0) return;
    this.lanes.splice(i, 1);
    if (this.next > i) this.next--;
  }

  /** Hands out free units; run again when a peer lane's activity changed. */
  pump(): void {
    while (this.inUse < this.capacity) {
      const i = this.pick();
      if (i < 0) return;
      const lane = this.lanes[i]!;
      this.next = (i + 1) % this.lanes.length;
      lane.held++;
      this.inUse++;
      lane.waiting.shift()!.resolve();
    }
  }

  /**
   * The waiting lane holding the fewest, among equals the first from the round-robin point; a lane
   * at its share only when no other active lane is below its own.
   */
  private pick(): number {
    const active = this.lanes.filter((l) => l.active);
    const share = Math.ceil(this.capacity / Math.max(1, active.length));
    const below = active.filter((l) => l.held < share);
    let best = -1;
    const n = this.lanes.length;
    for (let j = 0; j < n; j++) {
      const i = (this.next + j) % n;
      const lane = this.lanes[i]!;
      if (!lane.waiting.length || lane.held >= this.capacity - this.reserve) continue;
      if (lane.held >= share && below.some((l) => l !== lane)) continue;
      if (best < 0 || lane.held < this.lanes[best]!.held) best = i;
    }
    return best;
  }
}
