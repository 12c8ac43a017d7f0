#!/usr/bin/env python3
"""What one `fdatasync` of a log append costs on a filesystem, with the log's space reserved
in the two ways a log can reserve it.

    sync-cost.py [--dir DIR] [--syncs N] [--sizes 600,6000] [--rounds R]

For each append size (bytes written between two syncs: 600 is one `lsp-add` log entry, 6000 a
batch of them as under many writers) and each way, appends to a 64 MiB file under DIR (default:
a fresh directory under /tmp, where the benchmarks' clusters live) and syncs after each one:

- `fallocate`: the space reserved with `posix_fallocate` only. ext4 and XFS reserve it as
  unwritten extents, so a sync whose data enters a new block also records the block as written
  (the inode's extent tree; a journal commit on a journalled filesystem).
- `zeros-ahead`: the same, and zeros written 256 KiB past the data whenever the data comes within
  64 KiB of the written region, as Halyard's log does (`crates/storage/src/log_files.rs`,
  "Zeros written ahead").

Prints p50, p90, p99 and mean per size and way. docs/performance.md, "Session 29", has this
machine's figures, on its own (unjournalled) ext4 and on a journalled ext4 image.
"""
import argparse
import os
import tempfile
import time

SEGMENT = 64 << 20
AHEAD = 256 * 1024
SLACK = 64 * 1024


def run(directory, way, size, syncs):
    path = os.path.join(directory, f"sync-cost.{way}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, SEGMENT)
        os.fsync(fd)
        data, zeros = b"x" * size, bytes(AHEAD)
        end = written = 0
        times = []
        for _ in range(syncs):
            os.pwrite(fd, data, end)
            end += size
            written = max(written, end)
            if way == "zeros-ahead" and end + SLACK > written and end < SEGMENT:
                to = min(end + AHEAD, SEGMENT)
                os.pwrite(fd, zeros[: to - written], written)
                written = to
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
            if end + size > SEGMENT:
                break
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(len(times) * q))] * 1e6
    return pick(0.5), pick(0.9), pick(0.99), sum(times) / len(times) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="directory on the filesystem to measure (default: under /tmp)")
    ap.add_argument("--syncs", type=int, default=1500, help="syncs per size, way and round")
    ap.add_argument("--sizes", default="600,6000", help="bytes appended between syncs, comma-separated")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, the ways alternated")
    args = ap.parse_args()
    own = args.dir is None
    directory = args.dir or tempfile.mkdtemp(prefix="halyard-sync-cost.")
    try:
        print(f"{'bytes':>6} {'way':<12} {'p50 us':>7} {'p90 us':>7} {'p99 us':>7} {'mean us':>8}")
        for size in (int(s) for s in args.sizes.split(",")):
            for _ in range(args.rounds):
                for way in ("fallocate", "zeros-ahead"):
                    p50, p90, p99, mean = run(directory, way, size, args.syncs)
                    print(f"{size:>6} {way:<12} {p50:>7.0f} {p90:>7.0f} {p99:>7.0f} {mean:>8.0f}")
    finally:
        if own:
            os.rmdir(directory)


if __name__ == "__main__":
    main()
