import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { bitlockerFailure, dislockerArgs, unlockBitLocker } from "../../src/drives/bitlocker.js";
import { CommandError, type Exec } from "../../src/drives/exec.js";
import { dataVolume, parseBlkidExport, parseVpdPage80 } from "../../src/drives/identity.js";
import type { AttachedDrive } from "../../src/drives/model.js";
import { DriveError, mountVolume } from "../../src/drives/mount.js";
import { loopScan, mountedScan, physicalScan } from "../../src/drives/sources.js";
import { DriveWatcher } from "../../src/drives/watcher.js";

const drive = (key: string): AttachedDrive => ({ key, kind: "physical", device: `/dev/${key}`, size: 1 });

afterEach(() => {
  vi.useRealTimers();
});

describe("DriveWatcher", () => {
  it("notices a drive within two poll intervals, and its removal", async () => {
    vi.useFakeTimers();
    let now: AttachedDrive[] = [];
    const w = new DriveWatcher({ disks: async () => now }, 1000);
    const attached: string[] = [];
    const detached: string[] = [];
    w.on("attach", (d) => attached.push(d.key));
    w.on("detach", (d) => detached.push(d.key));
    await w.start();
    now = [drive("sdb")];
    await vi.advanceTimersByTimeAsync(2000);
    expect(attached).toEqual(["sdb"]);
    now = [];
    await vi.advanceTimersByTimeAsync(2000);
    expect(detached).toEqual(["sdb"]);
    await w.stop();
  });

  it("survives failing scans without reporting drives as pulled", async () => {
    vi.useFakeTimers();
    let calls = 0;
    const flaky = async () => {
      calls++;
      if (calls % 2 === 0) throw new Error("lsblk: exited 1");
      return [drive("sdc")];
    };
    const w = new DriveWatcher({ flaky }, 500);
    const events: string[] = [];
    w.on("attach", (d) => events.push(`+${d.key}`));
    w.on("detach", (d) => events.push(`-${d.key}`));
    w.on("error", (e, source) => events.push(`!${source}:${e.message}`));
    await w.start();
    await vi.advanceTimersByTimeAsync(2000);
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(events.filter((e) => e.startsWith("-"))).toEqual([]);
    expect(events[0]).toBe("+sdc");
    expect(events).toContain("!flaky:lsblk: exited 1");
    expect(w.drives().map((d) => d.key)).toEqual(["sdc"]);
    await w.stop();
  });

  it("a source that always fails does not stop the others", async () => {
    const w = new DriveWatcher(
      {
        broken: async () => Promise.reject(new Error("drivelist crashed")),
        good: async () => [drive("sdd")],
      },
      10_000,
    );
    const errors: string[] = [];
    w.on("error", (e) => errors.push(e.message));
    await w.start();
    expect(w.drives().map((d) => d.key)).toEqual(["sdd"]);
    expect(errors).toEqual(["drivelist crashed"]);
    await w.stop();
  });
});

describe("scan adapters", () => {
  it("physical: never the system disk, virtual disks, or excluded devices", async () => {
    const scan = physicalScan(
      async () => [
        {
          device: "/dev/vda",
          size: 100,
          description: "system",
          isSystem: true,
          isVirtual: false,
          mountpoints: [{ path: "/" }],
        },
        {
          device: "/dev/sdb",
          size: 200,
          description: "WDC",
          isSystem: false,
          isVirtual: false,
          mountpoints: [],
        },
        {
          device: "/dev/sdc",
          size: 300,
          description: "boot",
          isSystem: false,
          isVirtual: false,
          mountpoints: [{ path: "/boot/efi" }],
        },
        { device: "/dev/zram0", size: 1, description: "", isSystem: false, isVirtual: true, mountpoints: [] },
        {
          device: "/dev/sdd",
          size: 400,
          description: "spare",
          isSystem: false,
          isVirtual: false,
          mountpoints: [],
        },
      ],
      ["/dev/sdd"],
    );
    expect((await scan()).map((d) => d.device)).toEqual(["/dev/sdb"]);
  });

  it("loop: only images inside the staging directories; a moved or deleted image is gone", async () => {
    const root = mkdtempSync(join(tmpdir(), "sysblock-"));
    const mk = (name: string, backing: string) => {
      mkdirSync(join(root, name, "loop"), { recursive: true });
      writeFileSync(join(root, name, "loop", "backing_file"), `${backing}\n`);
      writeFileSync(join(root, name, "size"), "2048\n");
    };
    const images = mkdtempSync(join(tmpdir(), "images-"));
    writeFileSync(join(images, "a.img.serial"), "SER-A\n");
    mk("loop0", join(images, "a.img"));
    mk("loop1", "/var/lib/snapd/snap.img");
    mk("loop2", `${join(images, "b.img")} (deleted)`);
    mkdirSync(join(root, "loop3")); // unattached loop device: no backing_file
    mkdirSync(join(root, "sda"));
    const found = await loopScan([images], root)();
    expect(found).toEqual([
      {
        key: `loop:loop0:${join(images, "a.img")}`,
        kind: "loop",
        device: "/dev/loop0",
        size: 2048 * 512,
        backingFile: join(images, "a.img"),
        serial: "SER-A",
      },
    ]);
  });

  it("mounted: volumes below the configured roots only", async () => {
    const scan = mountedScan(
      async () => [
        { filesystem: "/dev/vda", mounted: "/", blocks: 10 },
        { filesystem: "/dev/sde1", mounted: "/media/dock/e", blocks: 10 },
        { filesystem: "/dev/sdf1", mounted: "/media/dockother", blocks: 10 },
      ],
      ["/media/dock"],
    );
    expect((await scan()).map((d) => d.mountpoint)).toEqual(["/media/dock/e"]);
  });
});

describe("identity helpers", () => {
  it("parses blkid export output and VPD page 0x80", () => {
    expect(parseBlkidExport("DEVNAME=/dev/sdb1\nTYPE=ntfs\nLABEL=My Disk\n")).toEqual({
      DEVNAME: "/dev/sdb1",
      TYPE: "ntfs",
      LABEL: "My Disk",
    });
    expect(parseVpdPage80(Buffer.from([0, 0x80, 0, 9, ...Buffer.from("  WD-1234"), 0, 0]))).toBe("WD-1234");
    expect(parseVpdPage80(Buffer.from([0, 0x83, 0, 1, 65]))).toBeUndefined();
  });

  it("picks the first partition with a filesystem as the data volume", () => {
    const base = { key: "k", kind: "physical" as const, device: "/dev/sdb", size: 1 };
    expect(
      dataVolume({
        ...base,
        partitions: [
          { device: "/dev/sdb1", number: 1, size: 1, fsType: "swap" },
          { device: "/dev/sdb2", number: 2, size: 1, fsType: "ntfs" },
        ],
      }),
    ).toEqual({ device: "/dev/sdb2", fsType: "ntfs" });
    expect(dataVolume({ ...base, partitions: [], fsType: "exfat" })).toEqual({
      device: "/dev/sdb",
      fsType: "exfat",
    });
    expect(dataVolume({ ...base, partitions: [] })).toBeUndefined();
  });
});

describe("mount and BitLocker", () => {
  const recorder = () => {
    const calls: { cmd: string; args: string[]; input?: string }[] = [];
    const fake: Exec = async (cmd, args, o) => {
      calls.push({ cmd, args, ...(o?.input !== undefined ? { input: o.input } : {}) });
      return { code: 0, stdout: "", stderr: "" };
    };
    return { calls, fake };
  };

  it("mounts read-only without journal replay for import, read-write only when asked", async () => {
    const { calls, fake } = recorder();
    const mp = mkdtempSync(join(tmpdir(), "mp-"));
    await mountVolume(fake, "/dev/sdb1", "ext4", mp, "ro");
    await mountVolume(fake, "/dev/sdb1", "ntfs", mp, "ro");
    await mountVolume(fake, "/dev/sdb1", "ntfs", mp, "rw");
    expect(calls.map((c) => `${c.cmd} ${c.args.join(" ")}`)).toEqual([
      `mount -t ext4 -o ro,nosuid,nodev,noexec,noload /dev/sdb1 ${mp}`,
      `ntfs-3g -o ro,nosuid,nodev,noexec /dev/sdb1 ${mp}`,
      `ntfs-3g -o rw,nosuid,nodev,noexec,windows_names /dev/sdb1 ${mp}`,
    ]);
  });

  it("refuses filesystems it does not read, with the copy-log status", async () => {
    const { fake } = recorder();
    await expect(mountVolume(fake, "/dev/sdb1", "xfs", "/tmp/x", "ro")).rejects.toMatchObject({
      status: "VolumeNotNtfs",
      message: expect.stringContaining("xfs"),
    });
    await expect(mountVolume(fake, "/dev/sdb1", undefined, "/tmp/x", "ro")).rejects.toBeInstanceOf(
      DriveError,
    );
  });

  it("passes the recovery password on stdin, never on the command line", async () => {
    const { calls, fake } = recorder();
    const key = "238810-662376-448998-450120-652806-203390-606320-483076";
    const file = await unlockBitLocker(fake, "/dev/sdb1", key, mkdtempSync(join(tmpdir(), "dl-")), "ro");
    expect(file).toMatch(/dislocker-file$/);
    expect(calls[0]!.cmd).toBe("dislocker");
    expect(calls[0]!.args.join(" ")).not.toContain("238810");
    expect(calls[0]!.args.slice(0, 4)).toEqual(["-V", "/dev/sdb1", "-p", "-r"]);
    expect(calls[0]!.input).toBe(`${key}\n`);
    expect(dislockerArgs("/dev/x", "/d", "rw")).toEqual(["-V", "/dev/x", "-p", "--", "/d"]);
  });

  it.each([
    ["Cannot parse volume header. Abort.", "BitLockerNotActivated"],
    ["None of the provided decryption mean is decrypting the keys. Abort.", "BitLockerKeyInvalid"],
    ["Error, can't find a valid and matching VMK datum. Abort.", "BitLockerProtectorNotFound"],
    ["Failed to open /dev/sdz1: No such file or directory", "BitLockerVolumeNotFound"],
    ["something new", "BitLockerFailed"],
  ])("maps dislocker's %j to %s", async (message, status) => {
    expect(bitlockerFailure(message).status).toBe(status);
    const failing: Exec = async () => {
      throw new CommandError(
        "dislocker",
        { code: 1, stdout: `[CRITICAL] ${message}`, stderr: "" },
        "dislocker exited 1",
      );
    };
    const err = await unlockBitLocker(
      failing,
      "/dev/sdb1",
      "000000-000000-000000-000000-000000-000000-000000-000000",
      mkdtempSync(join(tmpdir(), "dl-")),
      "ro",
    ).catch((e) => e);
    expect(err).toBeInstanceOf(DriveError);
    expect(err.status).toBe(status);
    expect(err.message).not.toContain("000000-000000");
  });

  it("a malformed key is BitLockerKeyInvalid before dislocker runs", async () => {
    const { calls, fake } = recorder();
    await expect(unlockBitLocker(fake, "/dev/sdb1", "not-a-key", "/tmp/x", "ro")).rejects.toMatchObject({
      status: "BitLockerKeyInvalid",
    });
    expect(calls).toEqual([]);
  });
});
