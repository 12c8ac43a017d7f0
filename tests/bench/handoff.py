#!/usr/bin/env python3
"""What one hand-off to a sleeping thread costs on this machine, on its own CPU or on another.

    handoff.py [--trips N] [--gap-us US] [--json]

Two processes ping-pong one byte over a pair of pipes, each blocked in `read` between trips (as a
server's threads are in `epoll_wait` between a write's steps), with a pause between trips so the
machine goes idle as it does between one writer's transactions. Run twice: both processes pinned
to one CPU, then to two different CPUs (CPU 0 and the last one). A round trip is two hand-offs.

On a virtual machine whose idle vCPUs halt at once (`/sys/module/haltpoll/parameters/
guest_halt_poll_ns` = 0), a hand-off to a thread on another, idle vCPU goes through the
hypervisor: tens of microseconds, against a few on the same CPU. Every step of a replicated write
that wakes a thread elsewhere (client to server, session to Raft thread, leader to follower and
back, Raft thread to session) pays it; docs/performance.md ("Session 30") counts them.
"""

import argparse
import json
import os
import statistics
import sys
import time


def trips(cpus, n, gap_s):
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {cpus[1]})
        for _ in range(n):
            os.read(a_r, 1)
            os.write(b_w, b"x")
        os._exit(0)
    os.sched_setaffinity(0, {cpus[0]})
    times = []
    for _ in range(n):
        time.sleep(gap_s)
        t0 = time.perf_counter()
        os.write(a_w, b"x")
        os.read(b_r, 1)
        times.append((time.perf_counter() - t0) * 1e6)
    os.waitpid(pid, 0)
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    times.sort()
    return {
        "p50_us": statistics.median(times),
        "p90_us": times[len(times) * 9 // 10],
        "p99_us": times[len(times) * 99 // 100],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=3000)
    ap.add_argument("--gap-us", type=int, default=200, help="idle time between trips")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("handoff.py: needs two CPUs")
    gap = args.gap_us / 1e6
    result = {
        "same_cpu": trips((cpus[0], cpus[0]), args.trips, gap),
        "other_cpu": trips((cpus[0], cpus[-1]), args.trips, gap),
    }
    try:
        with open("/sys/module/haltpoll/parameters/guest_halt_poll_ns") as f:
            result["guest_halt_poll_ns"] = int(f.read())
    except OSError:
        result["guest_halt_poll_ns"] = None
    if args.json:
        print(json.dumps(result))
        return
    for k, label in (("same_cpu", "same CPU"), ("other_cpu", "another CPU")):
        r = result[k]
        print(f"round trip (two hand-offs), {label:<11}: p50 {r['p50_us']:6.1f} us  p90 {r['p90_us']:6.1f} us  p99 {r['p99_us']:6.1f} us")
    print(f"guest_halt_poll_ns: {result['guest_halt_poll_ns']}")


if __name__ == "__main__":
    main()
