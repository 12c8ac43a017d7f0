#!/usr/bin/env bash
# What a snapshot costs in memory, Halyard beside ovsdb-server 3.1 (same run). A 3-member
# Northbound cluster of each is loaded with ROWS Logical_Switch rows carrying 16,000-character
# values (halyard-bench bulk-large, 100 rows per transaction: about ROWS x 16 kB of data), then
# each member in turn compacts (`ovsdb-server/compact`, which writes a snapshot). Printed per
# member: RSS before, the peak during its compaction (VmHWM, reset just before through
# /proc/PID/clear_refs), RSS after, and how long the compaction took. Halyard's third member is
# stopped before the load and started after the others compacted: it catches up by receiving and
# installing a snapshot; its peak RSS is printed too. Figures are printed, never asserted.
#
#   tests/bench/snapshot-memory.sh [--skip-build] [--keep]
#
# Environment: HALYARD_BIN, BENCH_BIN (default: release builds in CARGO_TARGET_DIR), REF_CLUSTER,
# WORK (default: mktemp -d), ROWS (25000), M3_LOG (log filter of the member that installs).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_options '2,14p' "$@"
find_ref_cluster
rows=${ROWS:-25000}
sb_bench_setup snapshot-memory
NB_SCHEMA=/usr/share/ovn/ovn-nb.ovsschema

kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
# compact_one NAME CTL PID ARGS...: resets PID's peak RSS, compacts through CTL, prints one line.
compact_one() {
  local name=$1 ctl=$2 pid=$3 before t0 t1 out
  shift 3
  before=$(kib "$pid" VmRSS)
  echo 5 >"/proc/$pid/clear_refs"
  t0=$(date +%s.%N)
  out=$(ovs-appctl -t "$ctl" --timeout=600 ovsdb-server/compact "$@" 2>&1) || true
  t1=$(date +%s.%N)
  printf '  %-22s %8.0f %10.0f %9.0f %9.2f   %s\n' "$name" "$(echo "$before/1024" | bc -l)" \
    "$(echo "$(kib "$pid" VmHWM)/1024" | bc -l)" "$(echo "$(kib "$pid" VmRSS)/1024" | bc -l)" \
    "$(echo "$t1 - $t0" | bc -l)" "${out:-ok}"
}
role_of() { ovs-appctl -t "$1" cluster/status OVN_Northbound 2>/dev/null | sed -n 's/^Role: //p'; }
header() { printf '  %-22s %8s %10s %9s %9s\n' member "RSS MB" "peak MB" "after MB" "seconds"; }

h_base=26640
echo "== Halyard: $rows rows of 16 kB"
OVN=0 HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" start "$work/h" 3 $h_base >/dev/null
kill "$(cat "$work/h/m3.pid")"
while kill -0 "$(cat "$work/h/m3.pid")" 2>/dev/null; do sleep 0.1; done
leader=1
for i in 1 2; do [ "$(role_of "$work/h/m$i/halyard.ctl")" = leader ] && leader=$i; done
"$bench" --db "tcp:127.0.0.1:$((h_base + leader))" --timeout 600 bulk-large --rows "$rows" \
  --per-txn 100 --value-len 16000 --clients 8 >"$work/h-load.txt"
# Small transactions after the load, so that the log the leader keeps behind its snapshot
# (5,000 entries) no longer reaches back to the third member's last entry.
"$bench" --db "tcp:127.0.0.1:$((h_base + leader))" --timeout 600 write --clients 8 --duration 8 \
  >"$work/h-write.txt"
header
for i in 1 2; do
  compact_one "halyard m$i" "$work/h/m$i/halyard.ctl" "$(cat "$work/h/m$i.pid")"
done
"$bin" serve --data-dir "$work/h/m3" --remote "ptcp:$((h_base + 3)):127.0.0.1" \
  --remote "punix:$work/h/m3.sock" ${M3_LOG:+--log "$M3_LOG"} >"$work/h/m3.restart.log" 2>&1 &
echo $! >"$work/h/m3.pid"
t0=$(date +%s.%N)
for _ in $(seq 1 1200); do
  grep -q "snapshot installed" "$work/h/m3.restart.log" && break
  sleep 0.1
done
t1=$(date +%s.%N)
pid=$(cat "$work/h/m3.pid")
if grep -q "snapshot installed" "$work/h/m3.restart.log"; then
  printf '  %-22s %8s %10.0f %9.0f %9.2f   %s\n' "halyard m3 (install)" - \
    "$(echo "$(kib "$pid" VmHWM)/1024" | bc -l)" "$(echo "$(kib "$pid" VmRSS)/1024" | bc -l)" \
    "$(echo "$t1 - $t0" | bc -l)" "from start to installed"
else
  echo "  halyard m3: no snapshot installed within 120 s (see $work/h/m3.restart.log)"
fi
HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" stop "$work/h" >/dev/null

r_base=27640
echo "== ovsdb-server: $rows rows of 16 kB"
SCHEMA=$NB_SCHEMA bash "$ref" start "$work/r" $r_base 3 >/dev/null
leader=1
for i in 1 2 3; do [ "$(role_of "$work/r/s$i.ctl")" = leader ] && leader=$i; done
"$bench" --db "tcp:127.0.0.1:$((r_base + leader))" --timeout 600 bulk-large --rows "$rows" \
  --per-txn 100 --value-len 16000 --clients 8 >"$work/r-load.txt"
header
for i in 1 2 3; do
  compact_one "ovsdb-server s$i" "$work/r/s$i.ctl" "$(cat "$work/r/s$i.pid")" OVN_Northbound
done
