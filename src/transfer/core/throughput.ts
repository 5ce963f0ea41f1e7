/**
 * A drive's throughput over the last minutes, for the console's and `station attached --watch`'s
 * sparklines: one value (bytes per second) per wall-clock bucket of `sampleSeconds`, newest last,
 * at most `keep` of them. Buckets are aligned to the clock (bucket n covers [n, n+1) × sample), so
 * the station's total is the sum of its drives' values in the same bucket. A bucket with no record
 * (a stall, a pause between runs) counts 0 bytes. Pure: the caller passes the time.
 */
export interface ThroughputView {
  sampleSeconds: number;
  /** The bucket number of the last value (clock ms / sample ms, floored). */
  lastBucket: number;
  /** Bytes per second, oldest first. */
  values: number[];
}

export const SAMPLE_SECONDS = 1;
/** Five minutes of one-second samples. */
export const SAMPLES_KEPT = 300;

export class ThroughputSamples {
  private readonly values: number[] = [];
  private lastBucket: number | undefined;
  private base: { bucket: number; bytes: number } | undefined;

  constructor(
    private readonly sampleSeconds = SAMPLE_SECONDS,
    private readonly keep = SAMPLES_KEPT,
  ) {}

  /** A new run starts: its first record is the baseline (a resume's earlier bytes are no burst). */
  restart(): void {
    this.base = undefined;
  }

  /** The drive's verified bytes so far, at `nowMs`. The first record of a run only sets the baseline. */
  record(nowMs: number, bytesSucceeded: number): void {
    const bucket = Math.floor(nowMs / (this.sampleSeconds * 1000));
    if (!this.base) {
      this.base = { bucket, bytes: bytesSucceeded };
      return;
    }
    if (bucket <= this.base.bucket) return; // same bucket: wait for it to close
    const perSecond =
      Math.max(0, bytesSucceeded - this.base.bytes) / ((bucket - this.base.bucket) * this.sampleSeconds);
    // Buckets between the last value and this one: idle before the baseline, the average over it since.
    const from = this.lastBucket === undefined ? this.base.bucket : this.lastBucket;
    for (let b = from + 1; b <= bucket; b++)
      this.values.push(b <= this.base.bucket ? 0 : Math.round(perSecond));
    if (this.values.length > this.keep) this.values.splice(0, this.values.length - this.keep);
    this.lastBucket = bucket;
    this.base = { bucket, bytes: bytesSucceeded };
  }

  view(): ThroughputView | undefined {
    if (this.lastBucket === undefined) return undefined;
    return { sampleSeconds: this.sampleSeconds, lastBucket: this.lastBucket, values: [...this.values] };
  }
}

/** The station's throughput: its drives' values summed bucket by bucket, over the newest `keep` buckets. */
export function stationThroughput(
  drives: readonly (ThroughputView | undefined)[],
  keep = SAMPLES_KEPT,
): ThroughputView | undefined {
  const views = drives.filter((v): v is ThroughputView => v !== undefined && v.values.length > 0);
  if (!views.length) return undefined;
  const last = Math.max(...views.map((v) => v.lastBucket));
  const values = new Array<number>(keep).fill(0);
  for (const v of views)
    v.values.forEach((x, i) => {
      const at = keep - 1 - (last - (v.lastBucket - (v.values.length - 1 - i)));
      if (at >= 0) values[at]! += x;
    });
  const first = values.findIndex((x, i) => x > 0 || i === keep - 1);
  return {
    sampleSeconds: views[0]!.sampleSeconds,
    lastBucket: last,
    values: values.slice(Math.max(0, first - 1)),
  };
}
