#!/usr/bin/env python3
"""The time budget of one write, read off the system calls of a 3-member Halyard cluster.

    write_budget.py SCRIPT THREADS ORIGIN LEADER

SCRIPT is `perf script -F tid,time,event,trace` of `perf record -e raw_syscalls:sys_enter
-e raw_syscalls:sys_exit` over the three members while ONE client writes (halyard-bench latency);
THREADS lists `TID MEMBER COMM` for every thread of the members; ORIGIN is the member the client
is connected to and LEADER the Raft leader (member names as in THREADS). Run by
tests/bench/write-budget.sh, which says how.

Each write is cut out of the timeline by the client's requests: from the end of the `recvfrom`
that reads one request on ORIGIN's session threads to the next such read. In it, the first
system call of each kind marks a step (the log append's `pwrite64`, the `fdatasync`, the first
`writev` to a peer...). Printed per step: the median time since the request was read and the
median time since the step before (over every write in which both were seen). What is between
two marks is whatever ran there: a task or thread hand-off, encoding, the scheduler.

The marks are read from system calls, not from Halyard's code, so the binary measured is the
release binary as shipped; recording every system call costs a few microseconds each, so the
timeline is somewhat longer than an untraced write.
"""

import statistics
import sys

NR = {
    1: "write",
    3: "close",
    18: "pwrite64",
    20: "writev",
    44: "sendto",
    45: "recvfrom",
    75: "fdatasync",
}
# The committed high-water mark (index + CRC-32) is written with a 12-byte `pwrite64` at every
# commit; log appends are larger.
MARK = 12
# A request, a forwarded batch or an AppendEntries with one entry is larger than this; Raft
# answers (46 bytes) and commit-only heartbeats (about 140 bytes) are smaller.
BIG = 300


def load(script_path, threads_path):
    member_of, comm_of = {}, {}
    for line in open(threads_path):
        tid, member, comm = line.rstrip("\n").split(" ", 2)
        member_of[int(tid)] = member
        comm_of[int(tid)] = comm
    pending, events = {}, []
    for line in open(script_path):
        p = line.split()
        if len(p) < 6 or not p[0].isdigit():
            continue
        tid = int(p[0])
        if tid not in member_of:
            continue
        t = float(p[1].rstrip(":")) * 1e6
        nr = int(p[4].rstrip("("))
        if "sys_enter" in p[2]:
            fd = int(p[5].strip("(,"), 16) if len(p) > 5 else -1
            pending[tid] = (t, nr, fd)
        elif tid in pending:
            start, nr0, fd = pending.pop(tid)
            name = NR.get(nr0)
            if name is None:
                continue
            ret = int(p[6]) if len(p) > 6 and p[5] == "=" else 0
            events.append((start, t, member_of[tid], comm_of[tid], name, fd, ret))
    events.sort()
    return events


def is_session(comm):
    return comm.startswith("tokio-rt-worker")


def budget(events, origin, leader):
    members = sorted({e[2] for e in events})
    followers = [m for m in members if m != leader]
    requests = [
        e
        for e in events
        if e[2] == origin and is_session(e[3]) and e[4] == "recvfrom" and e[6] > BIG
    ]
    rows = []
    for req, nxt in zip(requests, requests[1:]):
        t0, t1 = req[1], nxt[0]
        seg = [e for e in events if t0 <= e[0] < t1]

        def first(member, name, after=0.0, end=False, pred=lambda e: True):
            for e in seg:
                if e[2] == member and e[4] == name and e[0] - t0 >= after and pred(e):
                    return (e[1] if end else e[0]) - t0
            return None

        big = lambda e: e[6] > BIG
        log = lambda e: e[6] != MARK
        mark = lambda e: e[6] == MARK
        marks = []
        after = 0.0
        if origin != leader:
            sent = first(origin, "writev")
            marks.append(("forward sent (origin)", sent))
            got = first(leader, "recvfrom", sent or 0, True, big)
            marks.append(("forward read (leader)", got))
            after = got or 0.0
        append = first(leader, "pwrite64", after, pred=log)
        marks.append(("log append (leader)", append))
        marks.append(("first AppendEntries sent (leader)", first(leader, "writev", append or 0)))
        per = {}
        for f in followers:
            read = first(f, "recvfrom", append or 0, True, big)
            fa = first(f, "pwrite64", read or 0, pred=log)
            fs = first(f, "fdatasync", fa or 0)
            fe = first(f, "fdatasync", fa or 0, True)
            fr = first(f, "writev", fe or 1e12) if fe is not None else None
            per[f] = (read, fa, fs, fe, fr)
        # The follower whose answer makes the quorum is on the critical path.
        quorum = min(followers, key=lambda f: per[f][4] if per[f][4] is not None else 1e12)
        read, fa, fs, fe, fr = per[quorum]
        marks += [
            ("AppendEntries read (quorum follower)", read),
            ("log append (quorum follower)", fa),
            ("fdatasync starts (quorum follower)", fs),
            ("fdatasync ends (quorum follower)", fe),
            ("answer sent (quorum follower)", fr),
            ("answer read (leader)", first(leader, "recvfrom", fr or 1e12, True)),
        ]
        commit = first(leader, "pwrite64", fr or 1e12, pred=mark)
        marks.append(("commit recorded (leader)", commit))
        if origin != leader:
            marks.append(("commit sent (leader)", first(leader, "writev", commit or 1e12)))
            got = first(origin, "recvfrom", commit or 1e12, True)
            marks.append(("commit read (origin)", got))
            marks.append(("commit recorded (origin)", first(origin, "pwrite64", got or 1e12, pred=mark)))
        # The apply ends by waking the client's session on the other runtime: the first `write`
        # (an eventfd) after the committed high-water mark is written. (When that runtime's
        # thread then runs is not marked: a parked tokio worker may sleep in `epoll_wait` or on a
        # futex, and which one wakes is not told by the system calls alone.)
        recorded = marks[-1][1]
        closed = (
            first(origin, "pwrite64", recorded, True, mark) if recorded is not None else None
        )
        woke = None
        if closed is not None:
            woke = first(origin, "write", closed, pred=lambda e: not is_session(e[3]))
        marks.append(("apply done, session woken (origin)", woke))
        reply = None
        for e in seg:
            if e[2] == origin and is_session(e[3]) and e[4] == "sendto":
                reply = e[0] - t0
                break
        marks.append(("reply sent to the client (origin)", reply))
        side = {
            "leader's own fdatasync": (
                first(leader, "fdatasync", append or 0),
                first(leader, "fdatasync", append or 0, True),
            ),
        }
        rows.append((marks, side, t1 - t0))
    return rows


def report(rows, origin, leader):
    print(f"writes: {len(rows)} (client at {origin}, leader {leader})")
    print(f"{'step':40} {'since request':>14} {'since the step before':>22}")
    names = [m[0] for m in rows[0][0]]
    for i, name in enumerate(names):
        at = [r[0][i][1] for r in rows if r[0][i][1] is not None]
        steps = [
            r[0][i][1] - r[0][i - 1][1]
            for r in rows
            if i > 0 and r[0][i][1] is not None and r[0][i - 1][1] is not None
        ]
        at_s = f"{statistics.median(at):10.0f} us" if at else "             -"
        step_s = f"{statistics.median(steps):18.0f} us" if steps else ""
        print(f"{name:40} {at_s:>14} {step_s:>22}")
    for name in rows[0][1]:
        s = [r[1][name][0] for r in rows if r[1][name][0] is not None]
        e = [r[1][name][1] for r in rows if r[1][name][1] is not None]
        if s and e:
            print(
                f"{name:40} {statistics.median(s):10.0f} us to {statistics.median(e):.0f} us"
                " (in parallel with replication)"
            )
    cycle = [r[2] for r in rows]
    print(f"{'next request read (client turnaround)':40} {statistics.median(cycle):10.0f} us")


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    events = load(sys.argv[1], sys.argv[2])
    rows = budget(events, sys.argv[3], sys.argv[4])
    if not rows:
        sys.exit("write_budget.py: no client requests found in the trace")
    report(rows, sys.argv[3], sys.argv[4])


if __name__ == "__main__":
    main()
