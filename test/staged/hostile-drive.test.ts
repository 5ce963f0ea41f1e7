/**
 * Staged: one drive cannot wedge the station. One import job, two drives plugged in together,
 * the agent as its own process with its embedded Azurite and its own drive detection:
 * - an ordinary drive, which must end `Completed`, byte-exact (and a third drive, plugged in
 *   while the hostile drive's read is hung, too);
 * - a hostile drive whose manifest lists a FIFO, a character device node, a file whose reads
 *   hang in the kernel, and ordinary files. The hang is real: the drive's ext4 image is served
 *   through a FUSE file (test/support/hanging-image.py) that blocks every read overlapping that
 *   file's extents, and the loop device sits on that FUSE file, so the agent's read waits inside
 *   the kernel as on a dying disk. The drive must end `CompletedMoreInfo` with each file's status
 *   in its copy logs, its ordinary files byte-exact; the API answers throughout; and the agent
 *   still stops gracefully while the read is hung.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readDriveLog } from "../../src/formats/drive-log.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, stationLocation } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, freePort } from "../support/azurite.js";
import { built } from "../support/built.js";
import { readDriveManifest } from "../support/drive-check.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, preparedDrive, stagedDeadlines, stagedUnavailable } from "./loop-images.js";

const MiB = 1024 * 1024;
const SUB = "sub-hostile";
const JOB = "hostilejob";
const READ_TIMEOUT_S = 3;
const PYTHON = "/usr/bin/python3";
const HANGING_IMAGE = join(process.cwd(), "test", "support", "hanging-image.py");

/** What this suite needs beyond the other staged suites: FUSE, fusepy, filefrag. */
function hostileUnavailable(): string | undefined {
  const staged = stagedUnavailable();
  if (staged) return staged;
  if (!existsSync("/dev/fuse")) return "no /dev/fuse: FUSE is not available";
  for (const tool of ["filefrag", "mkfifo", "mknod"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `${tool} is not installed (Debian packages: fuse3, e2fsprogs, coreutils)`;
    }
  }
  try {
    execFileSync(PYTHON, ["-c", "import fusepy"], { stdio: "ignore" });
  } catch {
    return "python3-fusepy is not installed (apt-get install python3-fusepy)";
  }
  return undefined;
}

function gate(): boolean {
  const why = hostileUnavailable();
  if (!why) return true;
  if (process.env.CI) throw new Error(`Staged suite "hostile-drive" cannot run in CI: ${why}.`);
  console.warn(`SKIPPING staged suite "hostile-drive": ${why}.`);
  return false;
}
const RUN = gate();
stagedDeadlines();

let root = "";
let url = "";
let storagePort = 0;
let config = "";
let agent: ChildProcess | undefined;
let output = "";
let fuse: ChildProcess | undefined;
let fuseOutput = "";
let fuseDir = "";
let releaseFile = "";
const devices: string[] = [];

const ordinaryFiles: Record<string, Buffer> = {
  "one.bin": randomBytes(24 * MiB + 5),
  "two.bin": randomBytes(24 * MiB),
  "sub/three.txt": randomBytes(3000),
};
const lateFiles: Record<string, Buffer> = {
  "late-1.bin": randomBytes(4 * MiB + 3),
  "late-2.bin": randomBytes(2 * MiB),
};
/** Named so that the manifest lists the ordinary files first, then the hanging file, then two more. */
const hostileFiles: Record<string, Buffer> = {
  "a-plain.bin": randomBytes(2 * MiB + 17),
  "b-fifo": randomBytes(1000),
  "c-device": randomBytes(1000),
  "d-plain.txt": randomBytes(5000),
  "z-hang.bin": randomBytes(6 * MiB),
  // After the hang: the drive serves nothing more, so each of these ends IOFailed, the first at
  // its own timeout, the second at once (hungReadsPerDrive reached).
  "zz-after-1.bin": randomBytes(MiB),
  "zz-after-2.bin": randomBytes(MiB),
};

const api = async (method: string, path: string, token: string, body?: unknown) => {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
    // Only a hang reaches it: an API held up by a hung drive read never answers.
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
};

const agentTail = () =>
  output
    .split("\n")
    .filter((l) => !l.includes("api request"))
    .join("\n")
    .slice(-6000);

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}\n--- fuse ---\n${fuseOutput.slice(-2000)}\n--- agent ---\n${agentTail()}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

const jobPath = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/${JOB}?api-version=2021-01-01`;
interface DriveView {
  driveId: string;
  state: string;
  percentComplete?: number;
  errorLogUri?: string;
  verboseLogUri?: string;
}
const driveOf = async (driveId: string): Promise<DriveView | undefined> =>
  ((await api("GET", jobPath, CUSTOMER_TOKEN)).json?.properties?.driveList ?? []).find(
    (d: DriveView) => d.driveId === driveId,
  );
const attachedOf = async (driveId: string) =>
  ((await api("GET", "/station/v1/attached", OPERATOR_TOKEN)).json?.value ?? []).find(
    (d: { driveId?: string }) => d.driveId === driveId,
  ) as { status?: string; progress?: { bytesSucceeded: number; bytesTotal: number } } | undefined;

const blobs = () =>
  new BlobServiceClient(
    `http://127.0.0.1:${storagePort}/${ACCOUNT}`,
    new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
  );
async function logBlob(uri: string): Promise<string> {
  const path = new URL(uri).pathname.split("/").slice(2); // /<account>/<container>/<blob…>
  const blob = blobs()
    .getContainerClient(path[0]!)
    .getBlobClient(decodeURIComponent(path.slice(1).join("/")));
  return (await blob.downloadToBuffer()).toString("utf8");
}

const ourMounts = () =>
  readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m): m is string => Boolean(m?.startsWith(join(root, "mnt"))));

/** The byte ranges of `file`'s data inside the whole-disk image (filefrag on the mounted partition). */
function extentsOf(file: string, partitionStart: number): [number, number][] {
  const out = execFileSync("filefrag", ["-v", file], { encoding: "utf8" });
  const block = Number(/blocks of (\d+) bytes/.exec(out)?.[1]);
  if (!block) throw new Error(`filefrag gave no block size for ${file}:\n${out}`);
  const ranges: [number, number][] = [];
  for (const m of out.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)) {
    const first = Number(m[1]);
    const last = Number(m[2]);
    ranges.push([partitionStart + first * block, partitionStart + (last + 1) * block]);
  }
  if (!ranges.length) throw new Error(`no extents for ${file}:\n${out}`);
  return ranges;
}

function partitionStart(image: string): number {
  const t = JSON.parse(execFileSync("sfdisk", ["-J", image], { encoding: "utf8" })).partitiontable;
  return t.partitions[0].start * (t.sectorsize ?? 512);
}

describe.skipIf(!RUN)("staged: a hostile drive beside an ordinary one", () => {
  const ordinary = { driveId: "ORDINARY-01", image: "", entry: undefined as unknown };
  const late = { driveId: "LATE-01", image: "", entry: undefined as unknown };
  const hostile = {
    driveId: "HOSTILE-01",
    image: "",
    entry: undefined as unknown,
    hang: [] as [number, number][],
  };
  const onDrive: Record<string, string> = {}; // hostile file name -> its FilePath on the drive

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-hostile-"));
    for (const d of ["plugged", "shelf", "fuse", "config"]) mkdirSync(join(root, d));
    fuseDir = join(root, "fuse");
    releaseFile = join(root, "release-hung-reads");

    ordinary.image = join(root, "shelf", "ordinary.img");
    ordinary.entry = await preparedDrive({
      image: ordinary.image,
      fs: "ext4",
      sizeMiB: 120,
      driveId: ordinary.driveId,
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [{ files: ordinaryFiles, dest: "ordinary/" }],
    });

    late.image = join(root, "shelf", "late.img");
    late.entry = await preparedDrive({
      image: late.image,
      fs: "ext4",
      sizeMiB: 48,
      driveId: late.driveId,
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [{ files: lateFiles, dest: "late/" }],
    });

    hostile.image = join(root, "shelf", "hostile.img");
    let hangOnDisk: [number, number][] = [];
    hostile.entry = await preparedDrive({
      image: hostile.image,
      fs: "ext4",
      sizeMiB: 64,
      driveId: hostile.driveId,
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [{ files: hostileFiles, dest: "hostile/" }],
      // The prepared drive, still mounted read-write: the placeholders become a FIFO and a
      // device node (the manifest keeps listing them), and the hanging file's extents are found.
      tamper: async (mnt) => {
        const { blobs: listed } = await readDriveManifest(mnt);
        for (const b of listed) {
          const name = b.filePath.split("\\").at(-1)!;
          onDrive[name] = b.filePath;
        }
        const local = (name: string) => join(mnt, ...onDrive[name]!.replace(/^\\/, "").split("\\"));
        rmSync(local("b-fifo"));
        execFileSync("mkfifo", [local("b-fifo")]);
        rmSync(local("c-device"));
        execFileSync("mknod", [local("c-device"), "c", "1", "3"]);
        execFileSync("sync");
        hangOnDisk = extentsOf(local("z-hang.bin"), 0);
      },
    });
    const start = partitionStart(hostile.image);
    hostile.hang = hangOnDisk.map(([s, e]) => [s + start, e + start]);

    // The hostile image is served through FUSE; its loop device will sit on the FUSE file.
    fuse = spawn(
      PYTHON,
      [
        HANGING_IMAGE,
        hostile.image,
        fuseDir,
        "hostile.img",
        releaseFile,
        hostile.hang.map(([s, e]) => `${s}:${e}`).join(","),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    fuse.stdout!.on("data", (d: Buffer) => {
      fuseOutput += d.toString();
    });
    fuse.stderr!.on("data", (d: Buffer) => {
      fuseOutput += d.toString();
    });
    await waitFor(
      "the FUSE image",
      async () => (existsSync(join(fuseDir, "hostile.img")) ? true : undefined),
      120_000,
    );

    const port = await freePort();
    storagePort = await freePort();
    url = `http://127.0.0.1:${port}`;
    config = join(root, "config", "agent.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: join(root, "data"),
        api: {
          host: "127.0.0.1",
          port,
          tokens: [
            { name: "op", token: OPERATOR_TOKEN, role: "operator" },
            { name: "cust", token: CUSTOMER_TOKEN, role: "customer", scopes: [{ subscriptionId: SUB }] },
          ],
        },
        station: { location: stationLocation },
        storage: {
          mode: "embedded",
          host: "127.0.0.1",
          port: storagePort,
          accounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
        },
        drives: {
          physical: false,
          pollIntervalMs: 200,
          loopImageDirs: [join(root, "plugged"), fuseDir],
          mountRoot: join(root, "mnt"),
        },
        // One blob at a time per drive: the hostile drive's ordinary files are read before its
        // hanging file (a loop device serves its reads in turn, so after a hung read nothing
        // more comes off that drive, as on a dying disk).
        transfer: {
          concurrency: 2,
          blobConcurrency: 1,
          readTimeoutSeconds: READ_TIMEOUT_S,
          hungReadsPerDrive: 2,
          retry: { attempts: 6, baseMs: 200, maxMs: 1000 },
        },
      }),
    );
    agent = spawn(process.execPath, [built("agent/main.js"), "--config", config], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    agent.stdout!.on("data", (d: Buffer) => {
      output += d.toString();
    });
    agent.stderr!.on("data", (d: Buffer) => {
      output += d.toString();
    });
    await waitFor(
      "the agent API",
      async () => ((await api("GET", "/station/v1/jobs", OPERATOR_TOKEN)).status === 200 ? true : undefined),
      60_000,
    );
  });

  afterAll(async () => {
    // Let every hung read go first (they fail with EIO), so nothing stays blocked in the kernel.
    if (releaseFile) writeFileSync(releaseFile, "");
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const p = agent;
      const gone = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await gone;
    }
    for (const m of ourMounts()) spawnSyncQuiet("umount", ["-l", m]);
    for (const d of devices) detach(d);
    if (fuseDir) {
      for (const d of loopsOf(join(fuseDir, "hostile.img"))) detach(d);
      spawnSyncQuiet("umount", ["-l", fuseDir]);
    }
    if (fuse && fuse.exitCode === null && fuse.signalCode === null) {
      const f = fuse;
      const gone = new Promise((r) => f.once("exit", r));
      setTimeout(() => f.kill("SIGKILL"), 5000).unref();
      await gone;
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("the ordinary drive completes byte-exact while the hostile one hangs; the hostile one ends CompletedMoreInfo with each file's status; the agent still stops", async () => {
    const put = await api("PUT", jobPath, CUSTOMER_TOKEN, {
      location: "West US",
      properties: {
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        jobType: "Import",
        logLevel: "Verbose",
        returnAddress,
        driveList: [ordinary.entry, hostile.entry, late.entry],
      },
    });
    expect(put.status).toBe(201);
    const patch = await api("PATCH", jobPath, CUSTOMER_TOKEN, {
      properties: {
        state: "Shipping",
        deliveryPackage: { carrierName: "FedEx", trackingNumber: "T-HOSTILE" },
      },
    });
    expect(patch.status).toBe(200);

    // Both drives plugged in together.
    const plugged = join(root, "plugged", "ordinary.img");
    renameSync(ordinary.image, plugged);
    const t0 = Date.now();
    devices.push(attach(plugged));
    devices.push(attach(join(fuseDir, "hostile.img")));

    // The hanging file's read reaches the FUSE daemon and blocks there.
    await waitFor(
      "a read of the hanging file",
      async () => (fuseOutput.includes("hang ") ? true : undefined),
      120_000,
    );
    const hungAt = Date.now();
    const before = (await attachedOf(ordinary.driveId))?.progress?.bytesSucceeded ?? 0;
    // While it hangs: the operator API and Get Job answer (api() gives up only after 30 s).
    for (const [path, token] of [
      ["/station/v1/jobs", OPERATOR_TOKEN],
      ["/station/v1/attached", OPERATOR_TOKEN],
      [jobPath, CUSTOMER_TOKEN],
    ] as const) {
      expect((await api("GET", path, token)).status, path).toBe(200);
    }
    expect(fuseOutput).not.toContain("released");
    // A drive plugged in now is detected, mounted and imported while the read stays hung.
    const latePlugged = join(root, "plugged", "late.img");
    renameSync(late.image, latePlugged);
    devices.push(attach(latePlugged));
    const lateDone = await waitFor(
      "the drive plugged in during the hang to complete",
      async () => ((await driveOf(late.driveId))?.state === "Completed" ? Date.now() : undefined),
      180_000,
    );
    expect(fuseOutput).not.toContain("released");
    // The ordinary drive keeps going (or has already finished) while the hostile read hangs.
    const ordinaryDone = await waitFor(
      "the ordinary drive to complete",
      async () => ((await driveOf(ordinary.driveId))?.state === "Completed" ? Date.now() : undefined),
      180_000,
    );
    const after = (await attachedOf(ordinary.driveId))?.progress?.bytesSucceeded ?? 0;
    expect(after).toBe(Object.values(ordinaryFiles).reduce((n, b) => n + b.length, 0));
    expect(after).toBeGreaterThanOrEqual(before);

    const hostileEnd = await waitFor(
      "the hostile drive to end",
      async () => {
        const d = await driveOf(hostile.driveId);
        return d && ["Completed", "CompletedMoreInfo"].includes(d.state) ? d : undefined;
      },
      120_000,
    );
    const hostileSeconds = (Date.now() - t0) / 1000;
    console.info(
      `hostile drive ended ${hostileEnd.state} ${hostileSeconds.toFixed(1)} s after the plug-in (hang began after ${((hungAt - t0) / 1000).toFixed(1)} s; ordinary drive completed after ${((ordinaryDone - t0) / 1000).toFixed(1)} s, the drive plugged in during the hang ${((lateDone - hungAt) / 1000).toFixed(1)} s after the hang began)`,
    );
    expect(hostileEnd.state).toBe("CompletedMoreInfo");
    // The read timeout, not the hang, decided when the drive ended: by the agent's own clock the
    // drive finished after its read timed out, while the hung read was never released (the
    // kernel still holds it), so the hang had not ended.
    expect(fuseOutput).not.toContain("released");
    expect(output).toContain(`did not complete within ${READ_TIMEOUT_S * 1000} ms`);
    const loggedLines = () =>
      output
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { time: number; msg?: string; driveId?: string }];
          } catch {
            return []; // stderr interleaved with a stdout line
          }
        });
    const isEnd = (l: { msg?: string; driveId?: string }) =>
      l.msg === "drive import finished" && l.driveId === hostile.driveId;
    // The drive's state can reach the API a moment before its log line reaches our pipe.
    await waitFor("the hostile drive's end logged", async () =>
      loggedLines().some(isEnd) ? true : undefined,
    );
    const logged = loggedLines();
    const timedOutAt = logged.find((l) => JSON.stringify(l).includes("did not complete within"))?.time;
    const endedAt = logged.find(isEnd)?.time;
    expect(timedOutAt, "the read timeout logged").toBeDefined();
    expect(endedAt, "the hostile drive's end logged").toBeDefined();
    expect(endedAt!).toBeGreaterThanOrEqual(timedOutAt!);
    console.info(
      `hostile drive: ended ${endedAt! - timedOutAt!} ms after its first read timed out (agent's clock)`,
    );

    // Each hostile file's documented status.
    const verbose = await readDriveLog(await logBlob(hostileEnd.verboseLogUri!));
    const status = Object.fromEntries(verbose.blobs.map((b) => [b.filePath.split("\\").at(-1)!, b.status]));
    console.info(`hostile drive statuses: ${JSON.stringify(status)}`);
    expect(status).toEqual({
      "a-plain.bin": "Completed",
      "b-fifo": "FileAccessDenied",
      "c-device": "FileAccessDenied",
      "d-plain.txt": "Completed",
      "z-hang.bin": "IOFailed",
      "zz-after-1.bin": "IOFailed",
      "zz-after-2.bin": "IOFailed",
    });
    expect(verbose.status).toBe("CompletedWithErrors");
    const errorLog = await readDriveLog(await logBlob(hostileEnd.errorLogUri!));
    expect(Object.fromEntries(errorLog.blobs.map((b) => [b.filePath.split("\\").at(-1)!, b.status]))).toEqual(
      {
        "b-fifo": "FileAccessDenied",
        "c-device": "FileAccessDenied",
        "z-hang.bin": "IOFailed",
        "zz-after-1.bin": "IOFailed",
        "zz-after-2.bin": "IOFailed",
      },
    );
    expect(output).toContain(`not read: 2 reads on this drive hung for over ${READ_TIMEOUT_S * 1000} ms`);

    // Byte-exact: every ordinary file, on all three drives.
    const container = (name: string) => blobs().getContainerClient(name);
    for (const [file, data] of Object.entries(ordinaryFiles)) {
      const got = await container("ordinary").getBlobClient(file).downloadToBuffer();
      expect(got.equals(data), `ordinary/${file}`).toBe(true);
    }
    for (const [file, data] of Object.entries(lateFiles)) {
      const got = await container("late").getBlobClient(file).downloadToBuffer();
      expect(got.equals(data), `late/${file}`).toBe(true);
    }
    for (const file of ["a-plain.bin", "d-plain.txt"]) {
      const got = await container("hostile").getBlobClient(file).downloadToBuffer();
      expect(got.equals(hostileFiles[file]!), `hostile/${file}`).toBe(true);
    }
    for (const file of ["b-fifo", "c-device", "z-hang.bin", "zz-after-1.bin", "zz-after-2.bin"])
      expect(await container("hostile").getBlobClient(file).exists(), `hostile/${file} committed`).toBe(
        false,
      );
    expect((await driveOf(ordinary.driveId))?.percentComplete).toBe(100);
    expect(agent!.exitCode).toBeNull();
    expect(output).not.toMatch(/uncaught exception|unhandled promise rejection/i);

    // A graceful stop with the read still hung in the kernel: the process ends in bounded time,
    // by SIGTERM (a clean stop for systemd) since exit() would wait for the stuck I/O thread.
    const p = agent!;
    // "close": the process ended and its output was read to the end.
    const exited = new Promise<string>((r) => p.once("close", (code, signal) => r(`${code ?? signal}`)));
    const stopAt = Date.now();
    p.kill("SIGTERM");
    const how = await Promise.race([
      exited,
      new Promise<string>((r) => setTimeout(() => r("still running"), 25_000)),
    ]);
    console.info(
      `agent ended (${how}) ${((Date.now() - stopAt) / 1000).toFixed(1)} s after SIGTERM, the read still hung`,
    );
    expect(how, agentTail()).toBe("SIGTERM");
    expect(output).toContain("drive-station agent stopped");
    expect(output).toMatch(
      /2 drive reads are still hung in the kernel and would hold the exit: ending the process by SIGTERM/,
    );
    // The ordinary drive is unmounted; the hung one is left mounted (tearing it down would wait
    // for the read) and named in the log, for the operator to unmount once it is pulled.
    const left = ourMounts();
    expect(left).toHaveLength(1);
    expect(left[0]).toContain("hostile.img");
    expect(output).toContain(`left mounted at ${left[0]}: a read of this drive is still hung in the kernel`);
    expect(fuseOutput).not.toContain("released");
  });
});

function spawnSyncQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
  } catch {
    // already gone
  }
}

function loopsOf(file: string): string[] {
  try {
    return execFileSync("losetup", ["-j", file, "-n", "-O", "NAME"], { encoding: "utf8", timeout: 10_000 })
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}
