/**
 * A slow disk for bench:bays: cgroup v1 blkio throttling of each loop device's reads, for the
 * agent's process only (a cgroup the bench makes and puts the agent in).
 *
 * Why here, and why this way: the limit must sit at the block layer so that the agent's reads
 * see a slow disk (a file-level limit inside the agent or a slowed mount would measure something
 * else). On this machine (kernel 6.x, cgroup v1 hierarchy with the blkio controller mounted,
 * cgroup v2 mounted without the io controller) blkio.throttle.read_bps_device works on loop
 * devices: `dd` from a throttled /dev/loopN reads at the set rate, buffered and O_DIRECT. The
 * rule is keyed by the whole disk's major:minor and covers its partitions; reads of a mounted
 * filesystem are throttled in the reading task's context (the agent's I/O threads, readahead
 * included). A FUSE rate-limited backing file (as test/support/hanging-image.py serves) would
 * also work but costs a Python process and a copy per read, which shares the 2 cores with the
 * agent and would count against it. Where cgroup v2 has the io controller, `io.max` with `rbps=`
 * is the same rule; the bench says so and stops when neither is available.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const V1 = "/sys/fs/cgroup/blkio";

export interface ReadThrottle {
  /** Puts a process (all its threads) under the limits. */
  add(pid: number): void;
  /** Holds `device` (a whole-disk node, e.g. /dev/loop3) to `bytesPerSecond` of reads. */
  limit(device: string, bytesPerSecond: number): void;
  /** Bytes the cgroup's processes read from `device` (the throttle's own count). */
  readBytes(device: string): number;
  remove(): void;
}

/** The whole disk's major:minor, as the kernel shows it (the rule's key). */
const majMin = (device: string) => readFileSync(`/sys/block/${basename(device)}/dev`, "utf8").trim();

export function readThrottle(name: string): ReadThrottle {
  if (!existsSync(join(V1, "blkio.throttle.read_bps_device")))
    throw new Error(
      `no cgroup v1 blkio controller at ${V1} (blkio.throttle.read_bps_device): the bench cannot slow the drives at the block layer here. On a cgroup v2 machine with the io controller, io.max rbps= is the equivalent; add it in bench/throttle.ts.`,
    );
  const dir = join(V1, name);
  mkdirSync(dir, { recursive: true });
  const file = (f: string) => join(dir, f);
  return {
    add(pid) {
      writeFileSync(file("cgroup.procs"), String(pid));
    },
    limit(device, bps) {
      writeFileSync(file("blkio.throttle.read_bps_device"), `${majMin(device)} ${Math.round(bps)}`);
    },
    readBytes(device) {
      const key = `${majMin(device)} Read `;
      const line = readFileSync(file("blkio.throttle.io_service_bytes"), "utf8")
        .split("\n")
        .find((l) => l.startsWith(key));
      return line ? Number(line.slice(key.length)) : 0;
    },
    remove() {
      // Processes still in it (the agent not yet reaped) go back to the root group first.
      for (const pid of readFileSync(file("cgroup.procs"), "utf8").split("\n").filter(Boolean))
        try {
          writeFileSync(join(V1, "cgroup.procs"), pid);
        } catch {
          // exited meanwhile
        }
      try {
        rmdirSync(dir);
      } catch {
        // still busy: left for the kernel to reap with its last task
      }
    },
  };
}
