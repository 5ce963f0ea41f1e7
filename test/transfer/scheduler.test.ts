/**
 * The station scheduler: request slots and buffers handed out fairly across drives (a lane each),
 * work-conserving, and a lane closed by its drive's abort. Deterministic: requests are promises the
 * test settles, never timings.
 */
import { describe, expect, it } from "vitest";
import { FairShare } from "../../src/transfer/core/fair-share.js";
import { type DriveLane, StationScheduler } from "../../src/transfer/core/scheduler.js";

/** Lets every settled promise's continuations run. */
const flush = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** Requests of one lane that run until the test ends them; counts how many run at once. */
function requests(lane: DriveLane) {
  const open: (() => void)[] = [];
  const s = { running: 0, peak: 0, done: 0, finishOne: () => open.shift()?.() };
  const add = (n: number) =>
    Array.from({ length: n }, () =>
      lane.queue.add(async () => {
        s.running++;
        s.peak = Math.max(s.peak, s.running);
        await new Promise<void>((r) => open.push(r));
        s.running--;
        s.done++;
      }),
    );
  return Object.assign(s, { add });
}

describe("StationScheduler", () => {
  it("a lone drive uses every slot (work-conserving)", async () => {
    const sched = new StationScheduler(4, 16, 6);
    const a = requests(sched.lane());
    a.add(10);
    await flush();
    expect(a.running).toBe(4);
    expect(sched.depth()).toEqual({ queued: 6, inFlight: 4 });
  });

  it("a drive arriving beside a busy one gets every freed slot until both hold their fair share", async () => {
    const sched = new StationScheduler(4, 16, 6);
    const a = requests(sched.lane());
    const b = requests(sched.lane());
    a.add(20);
    await flush();
    expect(a.running).toBe(4);
    b.add(20);
    await flush();
    expect(b.running).toBe(0); // nothing is taken back from a running request
    a.finishOne();
    await flush();
    expect([a.running, b.running]).toEqual([3, 1]);
    a.finishOne();
    await flush();
    expect([a.running, b.running]).toEqual([2, 2]);
    // From here each freed slot goes to the drive holding fewer: the split stays even.
    for (let i = 0; i < 6; i++) {
      (i % 2 ? a : b).finishOne();
      await flush();
      expect([a.running, b.running]).toEqual([2, 2]);
    }
  });

  it("a drive whose requests never finish holds no more than its share; the other drive keeps going", async () => {
    const sched = new StationScheduler(4, 16, 6);
    const slow = requests(sched.lane());
    slow.add(50); // its storage hangs: these never finish in this test
    await flush();
    const fastLane = sched.lane();
    let fastDone = 0;
    let slowPeakMeanwhile = 0;
    const fast = Array.from({ length: 30 }, () =>
      fastLane.queue.add(async () => {
        slowPeakMeanwhile = Math.max(slowPeakMeanwhile, slow.running);
        fastDone++;
      }),
    );
    // The slow drive took every slot before the fast one came; one of them finishing is enough.
    slow.finishOne();
    slow.finishOne();
    await Promise.all(fast);
    expect(fastDone).toBe(30);
    // While the fast drive had work, the stuck one held no more than half of the 4 slots.
    expect(slowPeakMeanwhile).toBe(2);
  });

  it("three drives started at different times all progress, each close to an equal share", async () => {
    const sched = new StationScheduler(6, 16, 6);
    const lanes = [requests(sched.lane()), requests(sched.lane()), requests(sched.lane())];
    lanes[0]!.add(100);
    await flush();
    const finishRound = async () => {
      for (const l of lanes) {
        l.finishOne();
        l.finishOne();
        await flush();
      }
    };
    await finishRound();
    lanes[1]!.add(100);
    await finishRound();
    await finishRound();
    lanes[2]!.add(100);
    for (let r = 0; r < 5; r++) await finishRound();
    expect(lanes.map((l) => l.running)).toEqual([2, 2, 2]);
    for (const l of lanes) expect(l.done).toBeGreaterThan(0);
  });

  it("buffers: a drive with many readers cannot hold them all while another drive waits", async () => {
    const sched = new StationScheduler(4, 16, 4);
    const a = sched.lane();
    const b = sched.lane();
    const held = await Promise.all([a.pool.acquire(), a.pool.acquire(), a.pool.acquire(), a.pool.acquire()]);
    const moreA = a.pool.acquire();
    const forB = b.pool.acquire();
    let got = "";
    void moreA.then(() => (got ||= "a"));
    void forB.then(() => (got ||= "b"));
    a.pool.release(held[0]!);
    await flush();
    expect(got).toBe("b"); // B waited later, but holds fewer
    expect((await forB).length).toBe(16);
    a.pool.forfeit(held[1]!); // a forfeited buffer is replaced by a fresh one, but
    await flush();
    expect(got).toBe("b"); // A holds its share (2 of 4) while B, below its own, is working
    b.pool.release(await forB); // B is idle again: A may take everything
    expect((await moreA).length).toBe(16);
    expect(sched.buffersInUse).toBe(3);
  });

  it("buffers: a drive alone leaves two buffers for a drive that comes next", async () => {
    const sched = new StationScheduler(4, 16, 6);
    const a = sched.lane();
    await Promise.all(Array.from({ length: 4 }, () => a.pool.acquire()));
    let fifth = false;
    void a.pool.acquire().then(() => (fifth = true));
    await flush();
    expect(fifth).toBe(false); // every request slot can still have its buffer
    const b = sched.lane();
    expect((await Promise.all([b.pool.acquire(), b.pool.acquire()])).length).toBe(2);
  });

  it("a pulled drive's waiting requests and buffers are rejected with the pull, through one listener", async () => {
    const sched = new StationScheduler(1, 16, 1);
    const other = requests(sched.lane());
    other.add(1);
    const buf = await sched.lane().pool.acquire();
    const pull = new AbortController();
    const lane = sched.lane(pull.signal);
    const waiting = Array.from({ length: 20 }, () => lane.queue.add(async () => "ran"));
    const buffer = lane.pool.acquire();
    for (const w of [...waiting, buffer]) w.catch(() => undefined);
    await flush();
    pull.abort(new Error("the drive was pulled"));
    await expect(Promise.all(waiting)).rejects.toThrow("the drive was pulled");
    await expect(buffer).rejects.toThrow("the drive was pulled");
    await expect(lane.queue.add(async () => "late")).rejects.toThrow("the drive was pulled");
    expect(sched.depth().queued).toBe(0);
    expect(buf.length).toBe(16);
  });
});

describe("FairShare", () => {
  it("a closed lane leaves once it gives back what it held", async () => {
    const share = new FairShare(2);
    const a = share.join();
    const b = share.join();
    await share.take(a);
    await share.take(a);
    const waitB = share.take(b);
    share.close(a, new Error("done"));
    await expect(share.take(a)).rejects.toThrow("done");
    share.give(a);
    await waitB;
    expect(share.used).toBe(2);
    share.give(a);
    expect(share.used).toBe(1);
  });
});
