/**
 * Benchmark: stream-parse a generated 1,000,000-blob drive manifest; print seconds and peak RSS.
 * Usage: npm run bench:manifest [-- --blobs N]
 * The parse runs in a child process, so its peak RSS is the reader's, not the generator's.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readManifest } from "../src/formats/manifest.js";
import { indexBlockId, ManifestWriter } from "../src/formats/manifest-writer.js";

async function generate(file: string, blobs: number): Promise<void> {
  const out = createWriteStream(file);
  let buf: string[] = [];
  let size = 0;
  const flush = async () => {
    if (!out.write(buf.join(""))) await new Promise<void>((r) => out.once("drain", () => r()));
    buf = [];
    size = 0;
  };
  const pending: string[] = [];
  const w = new ManifestWriter((c) => pending.push(c), {
    driveId: "BENCH0001",
    kind: "import",
    credential: {
      kind: "accountKey",
      key: "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    },
  });
  for (let i = 0; i < blobs; i++) {
    const length = 1 + (i % 9000);
    w.blob({
      blobPath: `bench/dir${i % 1000}/file-${i}.dat`,
      filePath: `\\session1\\dir${i % 1000}\\file-${i}.dat`,
      length,
      kind: "block",
      chunks: [{ offset: 0, length, id: indexBlockId(0), hash: "9C8AE14A55241F98533C4D80D85CDC68" }],
    });
    for (const c of pending.splice(0)) {
      buf.push(c);
      size += c.length;
    }
    if (size > 1 << 20) await flush();
  }
  w.end();
  buf.push(...pending);
  await flush();
  await new Promise<void>((r) => out.end(r));
}

async function parseChild(file: string): Promise<void> {
  const t0 = process.hrtime.bigint();
  const md5 = createHash("md5");
  async function* hashed() {
    for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 })) {
      md5.update(chunk as Buffer);
      yield chunk as Buffer;
    }
  }
  let blobs = 0;
  let problems = 0;
  let bytes = 0;
  for await (const item of readManifest(hashed(), { kind: "import" })) {
    if (item.type === "blob") {
      blobs++;
      bytes += item.blob.length;
      if (item.problem) problems++;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(
    JSON.stringify({
      blobs,
      problems,
      bytes,
      seconds,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      md5: md5.digest("hex").toUpperCase(),
    }),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { blobs: { type: "string", default: "1000000" }, child: { type: "string" } },
  });
  if (values.child) return parseChild(values.child);
  const blobs = Number(values.blobs);
  const dir = mkdtempSync(join(tmpdir(), "bench-manifest-"));
  try {
    const file = join(dir, "DriveManifest.xml");
    const g0 = Date.now();
    await generate(file, blobs);
    const mb = statSync(file).size / 1e6;
    console.log(
      `generated ${blobs.toLocaleString("en-US")} blobs, ${mb.toFixed(1)} MB, in ${((Date.now() - g0) / 1000).toFixed(1)} s`,
    );
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "--child", file], {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    });
    const r = JSON.parse(out) as {
      blobs: number;
      problems: number;
      seconds: number;
      peakRssMiB: number;
      md5: string;
    };
    console.log(
      `stream-parsed and MD5-hashed in one read: ${r.blobs.toLocaleString("en-US")} blobs (${r.problems} with problems) in ${r.seconds.toFixed(2)} s = ${(mb / r.seconds).toFixed(1)} MB/s, ${(r.blobs / r.seconds).toFixed(0)} blobs/s`,
    );
    console.log(`peak RSS of the parsing process: ${r.peakRssMiB.toFixed(1)} MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
