/**
 * Staged: real disk images (NTFS, ext4, exFAT) attached with losetup -P and found by the agent's
 * own detection; real mounts; the agent's job store and API. Drives are "plugged in" by attaching
 * their image, "pulled" by moving the image out of the staging directory.
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import type { JobSpec } from "../../src/lifecycle/machine.js";
import type { Actor, JobKey } from "../../src/lifecycle/model.js";
import { prepareDrive } from "../../src/prepare/prepare-drive.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { returnAddress } from "../support/jobs.js";
import {
  attach,
  detach,
  type Fs,
  loopDrives,
  makeDriveImage,
  stagedDeadlines,
  stagedGate,
} from "./loop-images.js";

const RUN = stagedGate("drives");
stagedDeadlines();
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const actor: Actor = { name: "test", type: "User" };
const SUB = "sub-staged";
const RG = "rg";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });

let root: string;
let images: string;
let station: TestAgent;
const devices: string[] = [];
const entries: Record<string, { driveId: string; manifestFile: string; manifestHash: string }> = {};

/** A drive with a prepared manifest (its DriveId = driveId). `serial` writes the staging serial sidecar. */
async function drive(
  name: string,
  fs: Fs,
  driveId: string,
  opts: { serial?: string; manifest?: boolean } = {},
): Promise<string> {
  const image = join(root, "shelf", `${name}.img`);
  await makeDriveImage(image, fs, 24, async (mnt) => {
    if (opts.manifest === false) {
      await writeFile(join(mnt, "readme.txt"), "no manifest here");
      return;
    }
    const src = join(root, "src", name);
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), `drive ${name}\n`);
    writeFileSync(join(src, "sub", "b.bin"), Buffer.alloc(70_000, 7));
    const r = await prepareDrive({
      driveRoot: mnt,
      source: src,
      sessionId: "session1",
      destination: "data/",
      driveId,
      credential: { kind: "accountKey", key: KEY },
    });
    entries[name] = { driveId, manifestFile: r.manifestFile, manifestHash: r.manifestHash };
  });
  if (opts.serial) writeFileSync(`${image}.serial`, opts.serial);
  return image;
}

function plugIn(image: string): void {
  const dest = join(images, image.split("/").pop()!);
  renameSync(image, dest);
  try {
    renameSync(`${image}.serial`, `${dest}.serial`);
  } catch {
    // no serial sidecar
  }
  devices.push(attach(dest));
}

async function docked(image: string, timeoutMs = 20_000): Promise<DockedDrive> {
  const name = image.split("/").pop()!;
  const until = Date.now() + timeoutMs;
  for (;;) {
    await station.agent.dock!.settled();
    const d = station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`));
    if (d && d.status !== "identifying") return d;
    if (Date.now() > until) throw new Error(`drive ${name} was not handled within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const mounts = () => readFileSync("/proc/mounts", "utf8");

const spec = (drives: JobSpec["driveList"]): JobSpec => ({
  location: "West US",
  type: "Import",
  storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/acct`,
  returnAddress,
  driveList: drives,
});

async function shipping(name: string, drives: JobSpec["driveList"]): Promise<void> {
  await station.agent.service.create(key(name), spec(drives), actor);
  await station.agent.service.update(
    key(name),
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `TRK-${name}` } },
    actor,
  );
}

describe.skipIf(!RUN)("staged: drives at the door", () => {
  const img: Record<string, string> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-drives-"));
    images = join(root, "plugged");
    mkdirSync(images);
    mkdirSync(join(root, "shelf"));
    img.ntfs = await drive("ntfs", "ntfs", "WD-NTFS-0001", { serial: "WD-NTFS-0001" });
    img.ext4 = await drive("ext4", "ext4", "EXT4-NOSERIAL-1");
    img.exfat = await drive("exfat", "exfat", "SAM-EXFAT-0001", { serial: "SAM-EXFAT-0001" });
    img.held = await drive("held", "ext4", "HELD-0001", { serial: "HELD-0001" });
    img.unknown = await drive("unknown", "ext4", "NOBODY-0001");
    img.badhash = await drive("badhash", "ntfs", "BAD-HASH-01", { serial: "BAD-HASH-01" });
    img.nomanifest = await drive("nomanifest", "ext4", "NO-MANIFEST-1", {
      serial: "NO-MANIFEST-1",
      manifest: false,
    });
    img.minix = await drive("minix", "xfs-like", "ODD-FS-0001", { serial: "ODD-FS-0001", manifest: false });
    img.extra = await drive("extra", "ext4", "EXTRA-0001", { serial: "EXTRA-0001" });
    img.late = await drive("late", "ext4", "LATE-0001", { serial: "LATE-0001" });
    img.export = await drive("export", "ntfs", "EXPORT-0001", { serial: "EXPORT-0001", manifest: false });

    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(images, root),
      transfer: { enabled: false }, // this suite is about the door; the import suite moves the bytes
    });
    await shipping("job-main", [
      entries.ntfs!,
      entries.ext4!,
      entries.exfat!,
      { ...entries.badhash!, manifestHash: "0123456789ABCDEF0123456789ABCDEF" },
      {
        driveId: "NO-MANIFEST-1",
        manifestFile: "\\DriveManifest.xml",
        manifestHash: "0123456789ABCDEF0123456789ABCDEF",
      },
      {
        driveId: "ODD-FS-0001",
        manifestFile: "\\DriveManifest.xml",
        manifestHash: "0123456789ABCDEF0123456789ABCDEF",
      },
    ]);
    await station.agent.service.create(key("job-creating"), spec([entries.held!]), actor);
    await shipping("job-late", [
      entries.late!,
      {
        driveId: "OTHER-0001",
        manifestFile: "\\DriveManifest.xml",
        manifestHash: "0123456789ABCDEF0123456789ABCDEF",
      },
    ]);
    // An export job whose package the operator checked in: its drives are known by serial.
    await station.agent.service.create(
      key("job-export"),
      {
        location: "West US",
        type: "Export",
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/acct`,
        returnAddress,
        export: { blobList: { blobPathPrefix: ["/"] } },
      },
      actor,
    );
    await station.agent.service.update(
      key("job-export"),
      { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "TRK-export" } },
      actor,
    );
    await station.agent.service.station(key("job-export"), {
      type: "CheckInPackage",
      trackingNumber: "TRK-export",
      driveIds: ["EXPORT-0001"],
    });
    // The package of job-late held OTHER-0001 and a stray EXTRA-0001, but not LATE-0001.
    await station.agent.service.station(key("job-late"), {
      type: "CheckInPackage",
      trackingNumber: "TRK-late",
      driveIds: ["OTHER-0001", "EXTRA-0001"],
    });
  });

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("NTFS by serial: detected, identified, mounted read-only, matched, job checked in", async () => {
    plugIn(img.ntfs!);
    const d = await docked(img.ntfs!);
    expect(d).toMatchObject({
      status: "ready",
      serial: "WD-NTFS-0001",
      fsType: "ntfs",
      mode: "ro",
      driveId: "WD-NTFS-0001",
      job: key("job-main"),
    });
    expect(mounts()).toContain(`${d.mountpoint} fuseblk ro,`);
    expect(() => writeFileSync(join(d.mountpoint!, "x"), "no")).toThrow(/EROFS|read-only/);
    const job = await station.agent.service.get(key("job-main"));
    expect(job.state).toBe("Received");
    expect(job.drives.find((x) => x.driveId === "WD-NTFS-0001")!.state).toBe("Received");
  });

  it("ext4 with no serial: matched through its manifest's DriveId and hash", async () => {
    plugIn(img.ext4!);
    const d = await docked(img.ext4!);
    expect(d).toMatchObject({ status: "ready", fsType: "ext4", mode: "ro", driveId: "EXT4-NOSERIAL-1" });
    expect(d.serial).toBeUndefined();
    expect(mounts()).toMatch(new RegExp(`${d.mountpoint} ext4 ro,`));
  });

  it("exFAT: mounted read-only and matched", async () => {
    plugIn(img.exfat!);
    const d = await docked(img.exfat!);
    expect(d).toMatchObject({ status: "ready", fsType: "exfat", mode: "ro", driveId: "SAM-EXFAT-0001" });
    expect(mounts()).toContain(`${d.mountpoint} fuseblk ro,`);
  });

  it("a drive of a Creating job is held with a notice, never processed", async () => {
    plugIn(img.held!);
    const d = await docked(img.held!);
    expect(d.status).toBe("held");
    expect(d.message).toContain("Creating, not Shipping");
    expect(d.mountpoint).toBeUndefined();
    const job = await station.agent.service.get(key("job-creating"));
    expect(job.state).toBe("Creating");
    expect(job.drives[0]!.state).toBe("Specified");
    expect(job.heldPackages.map((h) => h.driveIds)).toEqual([["HELD-0001"]]);
  });

  it("an unknown drive is flagged, with an operator notice", async () => {
    plugIn(img.unknown!);
    const d = await docked(img.unknown!);
    expect(d.status).toBe("unknown");
    expect(d.message).toContain("no manifest matching any job");
    const notices = await (
      await fetch(`${station.agent.url}/station/v1/notices`, {
        headers: { authorization: "Bearer operator-token-0123456789abcdef" },
      })
    ).json();
    expect(notices.value.map((n: { code: string }) => n.code)).toContain("UnknownDrive");
  });

  it("a wrong manifest hash: ManifestCorrupted, the drive ends CompletedMoreInfo, visible in Get Job", async () => {
    plugIn(img.badhash!);
    const d = await docked(img.badhash!);
    expect(d).toMatchObject({ status: "failed", code: "ManifestCorrupted" });
    const res = await fetch(
      `${station.agent.url}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/job-main?api-version=2021-01-01`,
      { headers: { authorization: "Bearer customer-token-0123456789abcdef" } },
    );
    const job = await res.json();
    const entry = job.properties.driveList.find((x: { driveId: string }) => x.driveId === "BAD-HASH-01");
    expect(entry).toMatchObject({ state: "CompletedMoreInfo", copyStatus: "ManifestCorrupted" });
  });

  it("no manifest on the drive: ManifestNotFound", async () => {
    plugIn(img.nomanifest!);
    const d = await docked(img.nomanifest!);
    expect(d).toMatchObject({ status: "failed", code: "ManifestNotFound" });
    const job = await station.agent.service.get(key("job-main"));
    expect(job.drives.find((x) => x.driveId === "NO-MANIFEST-1")).toMatchObject({
      state: "CompletedMoreInfo",
      copyStatus: "ManifestNotFound",
    });
  });

  it("a filesystem the station cannot mount: a clear status, other drives unaffected", async () => {
    plugIn(img.minix!);
    const d = await docked(img.minix!);
    expect(d).toMatchObject({ status: "failed", code: "VolumeNotNtfs", fsType: "minix" });
    expect(d.message).toContain("minix");
    const ntfs = await docked(img.ntfs!);
    expect(ntfs.status).toBe("ready");
    expect(mounts()).toContain(ntfs.mountpoint!);
  });

  it("an extra drive that came in a job's package is flagged extra, not processed", async () => {
    plugIn(img.extra!);
    const d = await docked(img.extra!);
    expect(d).toMatchObject({ status: "extra", job: key("job-late") });
    expect(d.message).toContain("package TRK-late");
  });

  it("a NeverReceived drive that turns up moves to Received", async () => {
    expect(
      (await station.agent.service.get(key("job-late"))).drives.find((x) => x.driveId === "LATE-0001")!.state,
    ).toBe("NeverReceived");
    plugIn(img.late!);
    const d = await docked(img.late!);
    expect(d.status).toBe("ready");
    expect(
      (await station.agent.service.get(key("job-late"))).drives.find((x) => x.driveId === "LATE-0001")!.state,
    ).toBe("Received");
  });

  it("an export drive is matched by the serial checked in, and only it is mounted read-write", async () => {
    plugIn(img.export!);
    const d = await docked(img.export!);
    expect(d).toMatchObject({
      status: "ready",
      jobType: "Export",
      driveId: "EXPORT-0001",
      mode: "rw",
      fsType: "ntfs",
    });
    expect(mounts()).toContain(`${d.mountpoint} fuseblk rw,`);
    const ro = station.agent.dock!.list().filter((x) => x.status === "ready" && x.jobType === "Import");
    expect(ro.length).toBeGreaterThan(0);
    for (const x of ro) expect(x.mode).toBe("ro");
  });

  it("pulled: the detach is noticed, the volume unmounted, and the drive shown pulled", async () => {
    const d = await docked(img.ext4!);
    const mp = d.mountpoint!;
    expect(mounts()).toContain(mp);
    const plugged = join(images, "ext4.img");
    renameSync(plugged, join(root, "shelf", "ext4-pulled.img")); // out of the staging dir: the drive is gone
    const until = Date.now() + UNTIL_HANG.timeout;
    while (station.agent.dock!.get(d.key)?.status !== "pulled" && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    await station.agent.dock!.settled();
    const after = station.agent.dock!.get(d.key);
    expect(after?.status).toBe("pulled");
    expect(after?.message).toContain("pulled — plug it in again to resume");
    expect(after?.mountpoint).toBeUndefined();
    expect(mounts()).not.toContain(mp);
  });

  it("lists attached drives for the operator", async () => {
    const res = await fetch(`${station.agent.url}/station/v1/attached`, {
      headers: { authorization: "Bearer operator-token-0123456789abcdef" },
    });
    const { value } = (await res.json()) as { value: DockedDrive[] };
    expect(value.map((d) => d.status).sort()).toEqual([
      "extra",
      "failed",
      "failed",
      "failed",
      "held",
      "pulled",
      "ready",
      "ready",
      "ready",
      "ready",
      "unknown",
    ]);
  });
});
