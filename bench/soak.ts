/**
 * Soak: one large import on a real loop image (found by the agent's own detection), a real
 * Azurite behind a counting proxy, and N random events while it runs (seeded): kill -9 of the
 * agent, SIGTERM (exit 0 within the stop deadline, no mount left), or a pull (the image leaves
 * the watched directory and its loop device is detached, then comes back after a random pause).
 * Each kill/SIGTERM is followed by a restart on the same data dir. After the last event the
 * import runs to its end; then every blob is audited against the source files. Prints figures.
 * Needs root (loop devices, mount). Never part of the tests or CI.
 *   npm run soak [-- --seed 42 --events 20 --kinds kill,term,pull --large-files 5 --large-mib 256
 *                   --small-files 2000 --small-kib 64 --logs DIR --keep]
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { prepareDrive } from "../src/prepare/prepare-drive.js";
import {
  AgentProcess,
  type Exit,
  jobPath,
  shipJob,
  stationLocation,
  writeAgentConfig,
} from "../src/staging/agent-process.js";
import { countingProxy } from "../src/staging/counting-proxy.js";
import { attach, detach, makeDriveImage } from "../src/staging/images.js";
import { startAzurite } from "../src/storage/embedded-azurite.js";
import { audit, prng, threadStates, writeSource } from "./soak-support.js";
import { freePort, MiB } from "./tools.js";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    events: { type: "string", default: "20" },
    "large-files": { type: "string", default: "5" },
    "large-mib": { type: "string", default: "256" },
    "small-files": { type: "string", default: "2000" },
    "small-kib": { type: "string", default: "64" },
    /** Which events to draw from: kill, term, pull. */
    kinds: { type: "string", default: "kill,term,pull" },
    /** Write each agent run's log to DIR/run-N.log (they hold this soak's random tokens). */
    logs: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const EVENTS = Number(values.events);
/** The agent's graceful-stop deadline (agent/main.ts); systemd's TimeoutStopSec is 30 s. */
const STOP_DEADLINE_MS = 20_000;
const rand = prng(seed);
const NAMES: Record<string, string> = { kill: "kill -9", term: "SIGTERM", pull: "pull" };
const KINDS = values.kinds.split(",").map((k) => {
  if (!NAMES[k]) throw new Error(`--kinds: '${k}' is not one of kill, term, pull`);
  return NAMES[k];
});
if (values.logs) mkdirSync(values.logs, { recursive: true });
const between = (lo: number, hi: number) => lo + rand() * (hi - lo);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const ACCOUNT = "soakacct";
const ACCOUNT_KEY = randomBytes(32).toString("base64");
const OPERATOR = `op-${randomBytes(16).toString("hex")}`;
const CUSTOMER = `cust-${randomBytes(16).toString("hex")}`;
const SUB = "sub-soak";
const DRIVE_ID = "SOAK-0001";
const JOB = "soakjob";

const root = mkdtempSync(join(tmpdir(), "soak-"));
say(`seed ${seed}; ${EVENTS} events; work dir ${root}`);

const azurite = await startAzurite({
  location: join(root, "azurite"),
  host: "127.0.0.1",
  port: freePort(),
  accounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
});
const azuritePort = Number(new URL(azurite.endpointFor(ACCOUNT)).port);
const proxy = await countingProxy(azuritePort, ACCOUNT, "soak");
const apiPort = freePort();
const config = writeAgentConfig({
  root,
  apiPort,
  tokens: [
    { name: "op", token: OPERATOR, role: "operator" },
    { name: "cust", token: CUSTOMER, role: "customer", scopes: [{ subscriptionId: SUB }] },
  ],
  station: { location: stationLocation },

  storage: { mode: "azure", endpointTemplate: `http://127.0.0.1:${proxy.port}/{account}` },
  // The agent's own transfer defaults, with quicker retries so a restart is not spent backing off.
  transfer: { retry: { attempts: 8, baseMs: 200, maxMs: 2000 } },
});
const agent = new AgentProcess({
  config,
  url: `http://127.0.0.1:${apiPort}`,
  operatorToken: OPERATOR,
  mountRoot: join(root, "mnt"),
  secrets: [OPERATOR, CUSTOMER, ACCOUNT_KEY],
  // As systemd/drive-station.service runs it.
  env: { UV_THREADPOOL_SIZE: "32" },
  // e.g. "--cpu-prof --cpu-prof-dir=DIR" to see where a slow stop spends its time.
  nodeArgs: process.env.SOAK_AGENT_NODE_ARGS?.split(" ").filter(Boolean) ?? [],
});

// Ctrl-C: leave no agent, mount, loop device or Azurite behind.
process.once("SIGINT", () => {
  say("interrupted: cleaning up");
  void agent
    .cleanup()
    .then(() => proxy.close())
    .then(() => azurite.stop())
    .finally(() => {
      if (!values.keep) rmSync(root, { recursive: true, force: true });
      process.exit(130);
    });
});

/** Figures kept across runs (each run's log starts afresh). */
const tally = { runs: 0, uploadedLogged: 0, unhandled: 0, errors: 0, secretsLogged: 0 };
const closeRun = () => {
  tally.runs++;
  if (values.logs) writeFileSync(join(values.logs, `run-${tally.runs}.log`), agent.output);
  const lines = agent.lines();
  tally.unhandled += lines.filter((l) => String(l.msg).includes("unhandled")).length;
  tally.errors += lines.filter((l) => Number(l.level) >= 50).length;
  for (const l of lines)
    if (l.msg === "drive import finished") tally.uploadedLogged += Number(l.bytesUploaded);
  if ([OPERATOR, CUSTOMER, ACCOUNT_KEY].some((s) => agent.output.includes(s))) tally.secretsLogged++;
};

let failure: unknown;
const started = Date.now();
const terms: Exit[] = [];
const findings: string[] = [];
const pulls: { ackMs: number | undefined; pauseMs: number }[] = [];
const fired: string[] = [];
let totalBytes = 0;
let source: Awaited<ReturnType<typeof writeSource>> = [];
try {
  // The customer's drive: files written, then `station prepare` copies them and writes the manifest.
  const src = join(root, "src");
  source = await writeSource(src, {
    large: Number(values["large-files"]),
    largeMiB: Number(values["large-mib"]),
    small: Number(values["small-files"]),
    smallKiB: Number(values["small-kib"]),
    rand,
  });
  totalBytes = source.reduce((s, f) => s + f.size, 0);
  say(`source: ${source.length} files, ${(totalBytes / MiB).toFixed(0)} MiB; preparing the drive image`);
  const image = join(root, "soak.img");
  let entry: { driveId: string; manifestFile: string; manifestHash: string } | undefined;
  const imageMiB = Math.ceil((totalBytes * 1.1) / MiB) + source.length / 64 + 128;
  await makeDriveImage(image, "ext4", Math.ceil(imageMiB), async (mnt) => {
    const r = await prepareDrive({
      driveRoot: mnt,
      source: src,
      sessionId: "session1",
      destination: "soak/",
      driveId: DRIVE_ID,
      credential: { kind: "accountKey", key: ACCOUNT_KEY },
      blobType: "BlockBlob",
      disposition: "rename",
    });
    entry = { driveId: DRIVE_ID, manifestFile: r.manifestFile, manifestHash: r.manifestHash };
  });

  agent.start();
  await agent.ready();
  const { put, patch } = await shipJob(agent, {
    customerToken: CUSTOMER,
    sub: SUB,
    name: JOB,
    account: ACCOUNT,
    properties: {
      jobType: "Import",
      returnAddress: {
        recipientName: "Soak",
        streetAddress1: "1 Street",
        city: "Redmond",
        postalCode: "98007",
        countryOrRegion: "USA",
        phone: "4250000000",
        email: "soak@example.com",
      },
      driveList: [entry],
    },
  });
  if (put.status !== 201 || patch.status !== 200)
    throw new Error(`job not created: PUT ${put.status} ${JSON.stringify(put.json)}; PATCH ${patch.status}`);
  const plugged = join(root, "plugged", "soak.img");
  const shelf = join(root, "pulled.img");
  renameSync(image, plugged);
  agent.devices.push(attach(plugged));
  say("drive plugged; the import runs");

  const drive = async () =>
    (await agent.api("GET", jobPath(SUB, JOB), CUSTOMER)).json?.properties?.driveList?.[0] as
      | { state: string; bytesSucceeded?: number }
      | undefined;
  const progress = async () =>
    ((await agent.api("GET", "/station/v1/attached")).json?.value ?? []).find(
      (d: { driveId?: string }) => d.driveId === DRIVE_ID,
    )?.progress?.bytesSucceeded as number | undefined;
  const done = (state?: string) => state === "Completed" || state === "CompletedMoreInfo";

  // Event points spread over the import, one per slice so the events cover its whole length.
  const points = Array.from({ length: EVENTS }, (_, i) => ((i + between(0.1, 0.9)) / EVENTS) * 0.95);
  for (const [i, point] of points.entries()) {
    const reached = await agent.waitFor(
      `progress past ${(point * 100).toFixed(1)} %`,
      async () => {
        if (done((await drive())?.state)) return "finished";
        return ((await progress()) ?? 0) >= point * totalBytes ? "reached" : undefined;
      },
      15 * 60_000,
      100,
    );
    if (reached === "finished") {
      findings.push(`the drive finished before event ${i + 1}; ${EVENTS - i} events not fired`);
      break;
    }
    await sleep(between(0, 1500));
    const kind = KINDS[Math.floor(rand() * KINDS.length)]!;
    fired.push(kind);
    say(`event ${i + 1}/${EVENTS} at ${(point * 100).toFixed(1)} %: ${kind}`);
    if (kind === "kill -9") {
      await agent.kill();
      closeRun();
      await agent.restart();
    } else if (kind === "SIGTERM") {
      // A stop still running after 3 s: where its threads wait (D: blocked in the kernel, e.g. a read).
      const pid = agent.pid;
      const probes: string[] = [];
      const probe = setInterval(() => probes.push(threadStates(pid)), 3000);
      const exit = await agent
        .signal("SIGTERM", STOP_DEADLINE_MS + 10_000)
        .finally(() => clearInterval(probe));
      if (probes.length) say(`slow stop (${exit.ms} ms); threads every 3 s:\n  ${probes.join("\n  ")}`);
      terms.push(exit);
      closeRun();
      if (exit.code !== 0)
        findings.push(`SIGTERM (event ${i + 1}) exited ${exit.code ?? exit.signal} after ${exit.ms} ms`);
      if (exit.ms > STOP_DEADLINE_MS) findings.push(`SIGTERM (event ${i + 1}) took ${exit.ms} ms`);
      const left = agent.mounts();
      if (left.length) findings.push(`SIGTERM (event ${i + 1}) left mounts: ${left.join(", ")}`);
      await agent.restart();
    } else {
      const device = agent.devices.at(-1)!;
      renameSync(plugged, shelf);
      detach(device);
      const t0 = Date.now();
      // The agent let go once the (autoclear) loop device is gone: it unmounted the drive.
      const ack = await agent
        .waitFor(
          "the pulled drive released",
          async () => (existsSync(`/sys/block/${device.slice(5)}/loop/backing_file`) ? undefined : true),
          30_000,
        )
        .then(() => Date.now() - t0)
        .catch(() => undefined);
      if (ack === undefined)
        findings.push(`pull (event ${i + 1}): the agent still held ${device} after 30 s`);
      if (!agent.running) findings.push(`pull (event ${i + 1}): the agent exited`);
      const pauseMs = between(500, 5000);
      pulls.push({ ackMs: ack, pauseMs });
      await sleep(pauseMs);
      renameSync(shelf, plugged);
      agent.devices.push(attach(plugged));
    }
  }
  say("events over; waiting for the import to finish");
  await agent.waitFor(
    "the drive to finish",
    async () => (done((await drive())?.state) ? true : undefined),
    30 * 60_000,
    500,
  );
} catch (e) {
  failure = e;
}
const wall = (Date.now() - started) / 1000;

// Figures.
const client = new BlobServiceClient(
  azurite.endpointFor(ACCOUNT),
  new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
);
const final = agent.running
  ? (await agent.api("GET", jobPath(SUB, JOB), CUSTOMER).catch(() => undefined))?.json?.properties
  : undefined;
if (agent.running) closeRun();
const a = source.length
  ? await audit(client.getContainerClient("soak"), source, join(root, "src"))
  : undefined;
const sent = proxy.sent();
const list = (xs: string[]) =>
  xs.length ? `${xs.length} (${xs.slice(0, 5).join(", ")}${xs.length > 5 ? ", …" : ""})` : "0";
console.log(`\n=== soak: seed ${seed} ===`);
console.log(
  `events fired: ${fired.length} of ${EVENTS} — kill -9 ${fired.filter((k) => k === "kill -9").length}, SIGTERM ${terms.length}, pull ${pulls.length}; agent runs: ${tally.runs}`,
);
console.log(
  `drive: ${final?.driveList?.[0]?.state ?? "unknown"} (job ${final?.state ?? "unknown"}), ${source.length} files, ${totalBytes} bytes`,
);
if (a) {
  console.log(
    `blobs: ${a.complete} of ${source.length} complete and byte-exact (MD5 of the whole blob vs the source file)`,
  );
  console.log(`corrupt: ${list(a.corrupt)}; missing: ${list(a.missing)}`);
  console.log(
    `partial: wrong length ${list(a.wrongLength)}; with uncommitted blocks ${list(a.uncommitted)}; not in the manifest ${list(a.strangers)}`,
  );
}
console.log(
  `bytes sent to storage (counting proxy, all runs): ${sent}; re-sent: ${sent - totalBytes} (${((100 * (sent - totalBytes)) / Math.max(totalBytes, 1)).toFixed(2)} % of the drive)`,
);
console.log(`bytesUploaded logged by runs that finished the drive: ${tally.uploadedLogged}`);
console.log(
  `SIGTERM exits: ${terms.map((t) => `${t.code ?? t.signal} in ${(t.ms / 1000).toFixed(2)} s`).join("; ") || "none"}`,
);
console.log(
  `pulls: ${pulls.map((p) => `released in ${p.ackMs === undefined ? "never" : `${(p.ackMs / 1000).toFixed(2)} s`}, back after ${(p.pauseMs / 1000).toFixed(1)} s`).join("; ") || "none"}`,
);
console.log(
  `agent log: ${tally.errors} error lines, ${tally.unhandled} unhandled-rejection lines, secrets in ${tally.secretsLogged} runs' logs`,
);
console.log(`wall time: ${wall.toFixed(0)} s`);
for (const f of findings) console.log(`FINDING: ${f}`);
if (failure) console.log(`FAILED: ${failure instanceof Error ? failure.message : String(failure)}`);
const bad =
  failure !== undefined ||
  findings.some((f) => !f.startsWith("the drive finished before")) ||
  !a ||
  a.corrupt.length + a.missing.length + a.wrongLength.length + a.uncommitted.length + a.strangers.length >
    0 ||
  final?.driveList?.[0]?.state !== "Completed" ||
  tally.secretsLogged > 0;
console.log(bad ? "RESULT: problems found (above)" : "RESULT: clean");

await agent.cleanup();
await proxy.close();
await azurite.stop();
if (!values.keep) rmSync(root, { recursive: true, force: true });
else console.log(`kept ${root}`);
process.exit(bad ? 1 : 0);
