/**
 * A fixed set of block buffers shared by every transfer on the station. A block is read into a
 * pooled buffer and the buffer comes back when its upload is done, so memory is exactly
 * (buffers) x (block size) whatever the file sizes, and a reader waits when all are in flight:
 * the pool is the backpressure. (Allocating a fresh 4 MiB buffer per block let RSS climb to
 * 600 MiB on a 1 GB import before V8 collected them.) The buffers are SharedArrayBuffer-backed:
 * a hashing thread (hash-pool.ts) hashes the very memory the read filled, no copy.
 */

/** A block buffer a hashing thread can read without a copy. */
export const sharedBuffer = (size: number): Buffer => Buffer.from(new SharedArrayBuffer(size));

export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiters: ((b: Buffer) => void)[] = [];
  private created = 0;

  constructor(
    readonly bufferSize: number,
    readonly maxBuffers: number,
  ) {}

  /** A buffer of `bufferSize` bytes; waits while all are lent out. */
  acquire(): Promise<Buffer> {
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    if (this.created < this.maxBuffers) {
      this.created++;
      return Promise.resolve(sharedBuffer(this.bufferSize));
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(b: Buffer): void {
    const full =
      b.byteOffset === 0 && b.buffer.byteLength === this.bufferSize
        ? b
        : Buffer.from(b.buffer, 0, this.bufferSize);
    const next = this.waiters.shift();
    if (next) next(full);
    else this.free.push(full);
  }

  /**
   * Gives up a buffer for good: a hung read may still write into it, so it must never be lent
   * again. A fresh buffer takes its place.
   */
  forfeit(_b: Buffer): void {
    this.created--;
    const next = this.waiters.shift();
    if (next) {
      this.created++;
      next(sharedBuffer(this.bufferSize));
    }
  }

  get inUse(): number {
    return this.created - this.free.length;
  }
}
