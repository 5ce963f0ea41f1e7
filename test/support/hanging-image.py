#!/usr/bin/python3
"""
A drive image served through FUSE whose reads of chosen byte ranges hang in the kernel, as a
dying disk's do: the image appears as MOUNTPOINT/NAME, and a read overlapping a hanging range
blocks until the file RELEASE exists, then fails with EIO. Every other read is passed through.

usage: hanging-image.py IMAGE MOUNTPOINT NAME RELEASE START:END[,START:END...]

One line per event on stdout: "hang OFFSET LENGTH" when a read starts hanging, "released OFFSET
LENGTH" when it is let go. Runs in the foreground, multi-threaded, with direct_io so no page
cache hides reads from it. A loop device serves its reads in turn, so once one hangs, nothing
more comes off that drive (as with a dying disk); libfuse 2 offers no asynchronous direct I/O
that would let a loop device get past it.
"""
import errno
import os
import stat
import sys
import threading
import time

try:
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:  # fusepy from pip names its module fuse
    from fuse import FUSE, FuseOSError, Operations


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class HangingImage(Operations):
    def __init__(self, image, name, release, ranges):
        self.image = image
        self.name = "/" + name
        self.release = release
        self.ranges = ranges
        self.size = os.path.getsize(image)
        self.mutex = threading.Lock()
        self.fds = {}
        self.next_fh = 1

    def getattr(self, path, fh=None):
        now = time.time()
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_size=0, st_ctime=now, st_mtime=now, st_atime=now)
        if path == self.name:
            return dict(st_mode=stat.S_IFREG | 0o644, st_nlink=1, st_size=self.size, st_ctime=now, st_mtime=now, st_atime=now)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        if path != "/":
            raise FuseOSError(errno.ENOTDIR)
        return [".", "..", self.name[1:]]

    def open(self, path, flags):
        if path != self.name:
            raise FuseOSError(errno.ENOENT)
        # The loop device may open it read-write; writes are refused below.
        fd = os.open(self.image, os.O_RDONLY)
        with self.mutex:
            fh = self.next_fh
            self.next_fh += 1
            self.fds[fh] = fd
        return fh

    def release(self, path, fh):
        with self.mutex:
            fd = self.fds.pop(fh, None)
        if fd is not None:
            os.close(fd)
        return 0

    def read(self, path, size, offset, fh):
        end = offset + size
        if any(offset < e and s < end for s, e in self.ranges):
            say("hang %d %d" % (offset, size))
            while not os.path.exists(self.release):
                time.sleep(0.1)
            say("released %d %d" % (offset, size))
            raise FuseOSError(errno.EIO)
        return os.pread(self.fds[fh], size, offset)

    def write(self, path, data, offset, fh):
        raise FuseOSError(errno.EROFS)

    def truncate(self, path, length, fh=None):
        raise FuseOSError(errno.EROFS)

    def statfs(self, path):
        return dict(f_bsize=4096, f_frsize=4096, f_blocks=self.size // 4096, f_bfree=0, f_bavail=0, f_namemax=255)


def main():
    if len(sys.argv) != 6:
        sys.stderr.write(__doc__)
        sys.exit(2)
    image, mountpoint, name, release, spec = sys.argv[1:]
    ranges = []
    for part in spec.split(","):
        s, e = part.split(":")
        ranges.append((int(s), int(e)))
    ops = HangingImage(image, name, release, ranges)
    FUSE(ops, mountpoint, foreground=True, nothreads=False, direct_io=True, ro=False, allow_other=True)


if __name__ == "__main__":
    main()
