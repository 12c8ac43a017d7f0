#!/usr/bin/env python3
"""The floor of one replicated write on this machine: what any 3-member server could reach.

    floor.py [--writes N] [--dir DIR] [--json]

Three processes stand in for a leader and two followers, on loopback and on the disk under DIR
(default: a fresh directory under /tmp, where the benchmarks' clusters live), doing nothing but
what a replicated write cannot skip:

- the client sends a 600-byte request (the size of one `lsp-add` log entry) to the leader and
  waits for the answer;
- the leader sends it to both followers, appends it to its own log file (`pwrite` +
  `fdatasync`, in parallel with the followers), and answers the client once its own append and
  one follower's are durable (a majority of three);
- each follower appends it (`pwrite` + `fdatasync` on a preallocated file) and answers.

No parsing, no database, no Raft bookkeeping, one thread per process. The p50 and p99 printed
are a lower bound for `halyard-bench latency` against a leader (and for ovsdb-server's): the
rest of Halyard's and ovsdb-server's time is their own work. tests/bench/compare.sh prints it in
the same run as the one-writer loads (docs/performance.md, "The floor of one write").
"""

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

RECORD = 600
SEGMENT = 64 << 20


def listen():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def accept(s):
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def connect(port):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise EOFError
        buf += d
    return buf


class Log:
    """An append-only file, preallocated as Halyard's segments are."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.posix_fallocate(self.fd, 0, SEGMENT)
        os.fsync(self.fd)
        self.off = 0

    def append(self, data):
        if self.off + len(data) > SEGMENT:
            self.off = 0
        os.pwrite(self.fd, data, self.off)
        self.off += len(data)
        os.fdatasync(self.fd)


def follower(path, ready):
    log, s = Log(path), listen()
    ready.write(f"{s.getsockname()[1]}\n")
    ready.flush()
    c = accept(s)
    try:
        while True:
            log.append(recv_exact(c, RECORD))
            c.sendall(b"k")
    except (EOFError, ConnectionResetError):
        pass  # the run is over


def leader(path, ports, ready):
    log, s = Log(path), listen()
    peers = [connect(p) for p in ports]
    ready.write(f"{s.getsockname()[1]}\n")
    ready.flush()
    c = accept(s)
    sel = selectors.DefaultSelector()
    for p in peers:
        sel.register(p, selectors.EVENT_READ)
    owed = {p: 0 for p in peers}  # answers not yet read from each follower
    try:
        while True:
            req = recv_exact(c, RECORD)
            for p in peers:
                p.sendall(req)
                owed[p] += 1
            log.append(req)
            acked = False
            while not acked:
                for key, _ in sel.select():
                    got = len(key.fileobj.recv(64))
                    if not got:
                        raise EOFError
                    # An answer for this request only when the follower owes no earlier one.
                    acked |= owed[key.fileobj] - got == 0
                    owed[key.fileobj] -= got
            c.sendall(b"k")
    except (EOFError, ConnectionResetError):
        pass  # the run is over


def spawn(role, *args):
    p = subprocess.Popen(
        [sys.executable, __file__, "--role", role, *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
    )
    return p, int(p.stdout.readline())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writes", type=int, default=5000)
    ap.add_argument("--dir")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role == "follower":
        return follower(a.rest[0], sys.stdout)
    if a.role == "leader":
        return leader(a.rest[0], [int(x) for x in a.rest[1:]], sys.stdout)

    d = a.dir or tempfile.mkdtemp(prefix="halyard-floor.")
    procs = []
    try:
        f1, p1 = spawn("follower", os.path.join(d, "f1.log"))
        f2, p2 = spawn("follower", os.path.join(d, "f2.log"))
        ld, pl = spawn("leader", os.path.join(d, "l.log"), p1, p2)
        procs = [f1, f2, ld]
        c = connect(pl)
        req, lat = b"x" * RECORD, []
        for i in range(a.writes):
            t = time.perf_counter()
            c.sendall(req)
            recv_exact(c, 1)
            if i >= 200:  # warm-up, as halyard-bench latency
                lat.append((time.perf_counter() - t) * 1e3)
        c.close()
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[len(lat) * 99 // 100]
        mean = statistics.mean(lat)
        if a.json:
            print(json.dumps({"writes": len(lat), "p50_ms": p50, "p99_ms": p99, "mean_ms": mean}))
        else:
            print(f"floor: {len(lat)} writes p50={p50:.3f}ms p99={p99:.2f}ms mean={mean:.3f}ms")
    finally:
        for p in procs:
            p.wait(timeout=10)
        # The three preallocated logs (192 MiB) are of no use after the run, whoever owns DIR.
        for f in ("f1.log", "f2.log", "l.log"):
            try:
                os.unlink(os.path.join(d, f))
            except FileNotFoundError:
                pass
        if not a.dir:
            os.rmdir(d)


if __name__ == "__main__":
    main()
