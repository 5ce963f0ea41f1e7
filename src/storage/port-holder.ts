/**
 * Who listens on a TCP port, read from /proc (Linux): the socket inode from /proc/net/tcp{,6},
 * then the process whose /proc/<pid>/fd links to `socket:[inode]`. Used to refuse a start on a
 * port something else holds, naming the process, and to check that the server answering on our
 * port is the child we started.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface PortHolder {
  pid: number;
  /** The command line, arguments joined by spaces (shortened). */
  command: string;
  /** The parent's pid (1, or a subreaper, for an orphan). */
  ppid: number;
}

const LISTEN = "0A";

/** Inodes of sockets listening on `port` (any address), from /proc/net/tcp and tcp6. */
export function listeningInodes(port: number, procRoot = "/proc"): Set<string> {
  const inodes = new Set<string>();
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = f[1]!;
      const localPort = Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
      if (localPort === port && f[3] === LISTEN && f[9] !== "0") inodes.add(f[9]!);
    }
  }
  return inodes;
}

export function processInfo(pid: number, procRoot = "/proc"): { command: string; ppid: number } | undefined {
  try {
    const command = readFileSync(`${procRoot}/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    const stat = readFileSync(`${procRoot}/${pid}/stat`, "utf8");
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return { command: command.length > 300 ? `${command.slice(0, 300)}…` : command, ppid };
  } catch {
    return undefined;
  }
}

/**
 * The processes holding a listening socket on `port`. Empty when the port is free, or when the
 * holder cannot be seen (another network namespace, no permission): then `listening` tells which.
 */
export function portHolders(port: number, procRoot = "/proc"): { listening: boolean; holders: PortHolder[] } {
  const inodes = listeningInodes(port, procRoot);
  if (!inodes.size) return { listening: false, holders: [] };
  const holders: PortHolder[] = [];
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`${procRoot}/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1]!)) {
        const info = processInfo(Number(entry), procRoot);
        if (info) holders.push({ pid: Number(entry), ...info });
        break;
      }
    }
  }
  return { listening: true, holders };
}

export function describeHolders(h: { listening: boolean; holders: PortHolder[] }): string {
  if (!h.holders.length) return "a process this agent cannot see (another network namespace?)";
  return h.holders.map((p) => `pid ${p.pid} (${p.command})`).join(", ");
}
