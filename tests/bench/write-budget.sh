#!/usr/bin/env bash
# The time budget of one write (issue 12): where the ~1 ms of one client's write goes, step by
# step, on a 3-member Halyard cluster, read off the members' system calls.
#
#   tests/bench/write-budget.sh [--skip-build] [--keep]      (needs root, for perf)
#
# Starts a 3-member Northbound cluster (scripts/cluster.sh, OVN=0), runs `halyard-bench latency`
# (one client, one row per transaction) against the leader, then against a follower, records
# every system call of the three members for RECORD_S seconds in the middle of each run
# (`perf record -e raw_syscalls:*`, kept in memory-mapped buffers, a few us per call), and
# prints, per step of a write (log append, AppendEntries sent and read, fdatasync, answers,
# commit, reply), the median time since the client's request was read and since the step
# before (tests/bench/write_budget.py says how the steps are recognised). Not part of CI.
#
# Environment: HALYARD_BIN, BENCH_BIN (default: the release builds), WORK (default: a fresh
# /tmp/halyard-budget.*), RECORD_S (default 2), BASE (client base port, default 27640).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_options '2,16p' "$@"

[ "$(id -u)" = 0 ] || { echo "write-budget.sh: needs root (perf record of the members)" >&2; exit 2; }
bash "$root/scripts/install-deps.sh" >/dev/null
if ! command -v perf >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null
fi
if [ "$build" = 1 ]; then
  echo "== building halyard and halyard-bench (release)"
  cargo build -q --release -p halyard -p halyard-bench --manifest-path "$root/Cargo.toml"
fi
bin=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
bench=${BENCH_BIN:-$CARGO_TARGET_DIR/release/halyard-bench}
work=${WORK:-$(mktemp -d /tmp/halyard-budget.XXXXXX)}
record_s=${RECORD_S:-2} base=${BASE:-27640}
mkdir -p "$work"
cleanup() {
  HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" stop "$work/c" >/dev/null 2>&1 || true
  [ "$keep" = 1 ] && echo "kept: $work" || rm -rf "$work"
}
trap cleanup EXIT

OVN=0 HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" start "$work/c" 3 "$base" >"$work/start.log" 2>&1 ||
  { cat "$work/start.log" >&2; exit 1; }
leader="" follower=""
for _ in $(seq 1 60); do
  for i in 1 2 3; do
    role=$(ovs-appctl -t "$work/c/m$i/halyard.ctl" cluster/status OVN_Northbound 2>/dev/null | sed -n 's/^Role: //p')
    case $role in leader) leader=m$i ;; follower) follower=${follower:-m$i} ;; esac
  done
  [ -n "$leader" ] && [ -n "$follower" ] && break
  leader="" follower=""
  sleep 0.5
done
[ -n "$leader" ] || { echo "write-budget.sh: no leader" >&2; exit 1; }

pids=()
for i in 1 2 3; do pids+=("$(cat "$work/c/m$i.pid")"); done
# TID MEMBER COMM for every thread of the three members (comm may hold spaces).
: >"$work/threads"
for i in 1 2 3; do
  for t in /proc/"${pids[$((i - 1))]}"/task/*; do
    echo "${t##*/} m$i $(cat "$t/comm")" >>"$work/threads"
  done
done

for origin in "$leader" "$follower"; do
  port=$((base + ${origin#m}))
  "$bench" --db "tcp:127.0.0.1:$port" latency --duration $((record_s + 4)) >"$work/bench-$origin.txt" 2>&1 &
  bench_pid=$!
  sleep 2
  perf record -q -e raw_syscalls:sys_enter -e raw_syscalls:sys_exit \
    -p "$(IFS=,; echo "${pids[*]}")" -o "$work/$origin.data" -- sleep "$record_s" >/dev/null 2>&1
  wait "$bench_pid"
  perf script -i "$work/$origin.data" -F tid,time,event,trace 2>/dev/null >"$work/$origin.txt"
  what="at the leader"; [ "$origin" = "$leader" ] || what="at a follower"
  echo "== one writer $what ($(grep -o 'p50=[0-9.]*' "$work/bench-$origin.txt" | head -1) ms over the whole run, of which ${record_s} s traced)"
  python3 "$root/tests/bench/write_budget.py" "$work/$origin.txt" "$work/threads" "$origin" "$leader"
done
