/**
 * What a hashing thread runs (hash-pool.ts), as plain CommonJS source evaluated in each thread:
 * no file to locate next to the compiled module. `FILE_SERVE_JS` also runs on the event loop
 * (InlineHashes), so it stands alone.
 *
 * `serve`, `readAt` and `tick` are `let`s: a test's prelude (inserted before `LISTEN_JS`) may wrap
 * them (slow a thread, kill it, make its reads block), and the pool's threads set `tick`.
 */
import { DIRECT_READ_JS } from "./medium-read.js";

/**
 * Drive-file hashing (file-hasher.ts, `HashRequest` -> `HashResult`): the thread reads the ranges
 * itself through the open file's descriptor (plainly, or O_DIRECT from the medium), so no bytes
 * cross threads. `tick()` after every read: the pool's proof that the thread still moves (a read
 * a dying drive never answers stops the count; hash-pool.ts writes that thread off).
 */
export const FILE_SERVE_JS = `
const { readSync } = require("node:fs");
const { createHash } = require("node:crypto");
${DIRECT_READ_JS}
let tick = () => undefined;
let readAt = (fd, buf, off, len, pos) => readSync(fd, buf, off, len, pos);
const readTicking = (fd, buf, off, len, pos) => { const n = readAt(fd, buf, off, len, pos); tick(); return n; };
const fileBuf = Buffer.allocUnsafe(1 << 20);
let alignedBuf; // page-aligned (a WebAssembly memory), for O_DIRECT reads; made on first use
const aligned = () => (alignedBuf ??= Buffer.from(new WebAssembly.Memory({ initial: 16, maximum: 16 }).buffer));
const fileZeros = Buffer.alloc(64 << 10);
const fileStreams = new Map();
const padFile = (h, n) => { for (; n > 0; n -= fileZeros.length) h.update(fileZeros.subarray(0, Math.min(n, fileZeros.length))); };
function serveFile({ fd, ranges, each, wholeLength, stream, discard, direct }) {
  if (discard) { fileStreams.delete(stream); return { each: [], short: false }; }
  let st = stream === undefined ? undefined : fileStreams.get(stream);
  if (!st) {
    const whole = stream !== undefined || wholeLength !== undefined ? createHash("md5") : undefined;
    st = { whole, pos: 0, short: false };
    if (stream !== undefined) fileStreams.set(stream, st);
  }
  const out = [];
  for (const [offset, length] of ranges) {
    if (st.short) break;
    if (st.whole) padFile(st.whole, offset - st.pos);
    const h = each ? createHash("md5") : undefined;
    let got = 0;
    const take = (piece) => { if (h) h.update(piece); if (st.whole) st.whole.update(piece); };
    if (direct) {
      got = readDirect(readTicking, fd, aligned(), offset, length, take);
      if (got < length) st.short = true;
    } else while (got < length) {
      const n = readTicking(fd, fileBuf, 0, Math.min(fileBuf.length, length - got), offset + got);
      if (n === 0) { st.short = true; break; }
      take(fileBuf.subarray(0, n));
      got += n;
    }
    if (h) out.push(h.digest("hex").toUpperCase());
    st.pos = offset + got;
  }
  const r = { each: out, short: st.short };
  if (wholeLength !== undefined) {
    if (!st.short) { padFile(st.whole, wholeLength - st.pos); r.whole = st.whole.digest("base64"); }
    if (stream !== undefined) fileStreams.delete(stream);
  }
  return r;
}
`;

/** Block hashing (`BlockHashes`): MD5s of shared memory, and whole-blob streams fed in order. */
const BLOCK_SERVE_JS = `
const zeros = Buffer.alloc(1 << 20);
const streams = new Map();
const view = (m) => Buffer.from(m.buf, m.off, m.len);
const pad = (st, upTo) => {
  while (st.at < upTo) { const n = Math.min(zeros.length, upTo - st.at); st.hash.update(zeros.subarray(0, n)); st.at += n; }
};
let serve = (m) => {
  switch (m.op) {
    case "md5": return createHash("md5").update(view(m)).digest();
    case "update": {
      let st = streams.get(m.stream);
      if (!st) { st = { hash: createHash("md5"), at: 0 }; streams.set(m.stream, st); }
      pad(st, m.offset);
      st.hash.update(view(m));
      st.at = m.offset + m.len;
      return undefined;
    }
    case "digest": {
      const st = streams.get(m.stream) ?? { hash: createHash("md5"), at: 0 };
      streams.delete(m.stream);
      if (m.length !== undefined) pad(st, m.length);
      return st.hash.digest();
    }
    case "discard": streams.delete(m.stream); return undefined;
    case "file": return serveFile(m.req);
    default: throw new Error("unknown hashing request " + m.op);
  }
};
`;

/** Everything a pool thread serves, before a test's prelude. */
export const SERVE_JS = `${FILE_SERVE_JS}\n${BLOCK_SERVE_JS}`;

/**
 * The thread's message loop, after the prelude. Every request and every read ticks the shared
 * counter the pool watches. A file request's failure (EIO, EBADF) is the drive's: it goes back
 * with its code, apart from a thread's own fault.
 */
export const LISTEN_JS = `
const { parentPort, workerData } = require("node:worker_threads");
const ticks = new Int32Array(workerData.ticks);
tick = () => Atomics.add(ticks, 0, 1);
parentPort.on("message", (m) => {
  tick();
  let r;
  try {
    const out = serve(m);
    // A digest: a 16-byte copy (a view of a larger buffer would be cloned whole).
    r = m.op === "file" ? { id: m.id, file: out } : { id: m.id, md5: out && new Uint8Array(out) };
  } catch (e) {
    const message = String((e && e.message) || e);
    r = m.op === "file" && e && e.code ? { id: m.id, ioError: { message, code: e.code } } : { id: m.id, error: message };
  }
  if (m.id !== undefined) parentPort.postMessage(r);
});
`;
