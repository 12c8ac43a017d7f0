#!/usr/bin/env bash
# One writer's latency while snapshots are built, sent and installed: Halyard beside
# ovsdb-server 3.1 (same run). A 3-member Northbound cluster of each is loaded with ROWS
# Logical_Switch rows of 16,000-character values (halyard-bench bulk-large: about ROWS x 16 kB),
# then one client writes at the leader (`halyard-bench latency`) for a quiet phase and for a busy
# one. In the busy phase a follower is stopped, the leader and the other follower compact
# (`ovsdb-server/compact`: each writes a snapshot), and the stopped follower is started again
# and catches up from a snapshot sent by the leader. Printed per server and phase: p50, p99,
# p99.9 and the longest write, and how many terms (elections) the phase saw. Figures are printed,
# never asserted: this is what docs/performance.md, "Snapshot work and one writer", quotes.
#
#   tests/bench/snapshot-latency.sh [--skip-build] [--keep]
#
# Environment: HALYARD_BIN, BENCH_BIN (default: release builds in CARGO_TARGET_DIR), REF_CLUSTER,
# WORK (default: mktemp -d), ROWS (15000), QUIET (8 s), BUSY (30 s), ONLY (halyard or
# ovsdb-server: one side only).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_options '2,16p' "$@"
find_ref_cluster
rows=${ROWS:-15000} quiet=${QUIET:-8} busy=${BUSY:-30} only=${ONLY:-}
sb_bench_setup snapshot-latency
NB_SCHEMA=/usr/share/ovn/ovn-nb.ovsschema

term_of() { ovs-appctl -t "$1" cluster/status OVN_Northbound 2>/dev/null | sed -n 's/^Term: //p'; }
role_of() { ovs-appctl -t "$1" cluster/status OVN_Northbound 2>/dev/null | sed -n 's/^Role: //p'; }
compact() { ovs-appctl -t "$1" --timeout=600 ovsdb-server/compact "${@:2}" >/dev/null 2>&1 || echo "  (compaction of $1 failed)"; }
figures() {
  sed -n 's/.*n=\([0-9]*\) p50=\([0-9.]*\) p99=\([0-9.]*\) p999=\([0-9.]*\) max=\([0-9.]*\).*/\1 \2 \3 \4 \5/p' "$1" | head -1
}
row() { # SERVER PHASE FILE TERMS
  local f
  f=$(figures "$3")
  [ -n "$f" ] || { printf '  %-13s %-6s no figures (see %s)\n' "$1" "$2" "$3"; return; }
  set -- "$1" "$2" $f "$4"
  printf '  %-13s %-6s %7s %8s %8s %8s %9s %6s\n' "$@"
}

# busy_phase SERVER CTL_OF STOP START LEADER FOLLOWER STOPPED PORT: the busy phase's script.
busy_phase() {
  local server=$1 ctl_of=$2 stop_cmd=$3 start_cmd=$4 l=$5 f=$6 s=$7 port=$8 t0 t1
  t0=$(term_of "$($ctl_of "$l")")
  "$bench" --db "tcp:127.0.0.1:$port" --timeout 120 latency --duration "$busy" \
    >"$work/$server-busy.txt" 2>&1 &
  local load=$!
  sleep 1
  $stop_cmd "$s"
  # Long enough for the log the leader keeps behind a snapshot (5,000 entries) to be passed:
  # the stopped follower then needs a snapshot.
  sleep 7
  compact "$($ctl_of "$l")" "${compact_args[@]}"
  sleep 3
  compact "$($ctl_of "$f")" "${compact_args[@]}"
  sleep 2
  $start_cmd "$s"
  wait "$load" || true
  t1=$(term_of "$($ctl_of "$l")")
  busy_terms=$((t1 - t0))
}

# The load's writeback and the snapshots it set off (every 256 MiB applied) end before the quiet
# phase.
settle() { sleep 10; sync; }
# load_and_measure SERVER CTL_OF STOP START BASE: the load, the quiet phase and the busy one on a
# started cluster whose member i serves clients on BASE+i; sets busy_terms.
load_and_measure() {
  local server=$1 ctl_of=$2 stop_cmd=$3 start_cmd=$4 base=$5 leader=1 i followers
  for i in 1 2 3; do [ "$(role_of "$($ctl_of $i)")" = leader ] && leader=$i; done
  followers=($(for i in 1 2 3; do [ $i = $leader ] || echo $i; done))
  "$bench" --db "tcp:127.0.0.1:$((base + leader))" --timeout 600 bulk-large --rows "$rows" \
    --per-txn 100 --value-len 16000 --clients 8 >"$work/$server-load.txt"
  settle
  "$bench" --db "tcp:127.0.0.1:$((base + leader))" --timeout 120 latency --duration "$quiet" \
    >"$work/$server-quiet.txt" 2>&1
  busy_phase "$server" "$ctl_of" "$stop_cmd" "$start_cmd" $leader "${followers[0]}" \
    "${followers[1]}" $((base + leader))
  restarted=${followers[1]}
}

header() { printf '  %-13s %-6s %7s %8s %8s %8s %9s %6s\n' server phase writes "p50 ms" "p99 ms" \
  "p999 ms" "max ms" terms; }

if [ "$only" != ovsdb-server ]; then
  h_base=28640
  echo "== Halyard: $rows rows of 16 kB ($bin)"
  OVN=0 HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" start "$work/h" 3 $h_base >/dev/null 2>&1
  h_ctl() { echo "$work/h/m$1/halyard.ctl"; }
  h_stop() {
    kill "$(cat "$work/h/m$1.pid")"
    while kill -0 "$(cat "$work/h/m$1.pid")" 2>/dev/null; do sleep 0.1; done
  }
  h_start() {
    "$bin" serve --data-dir "$work/h/m$1" --remote "ptcp:$((h_base + $1)):127.0.0.1" \
      --remote "punix:$work/h/m$1.sock" >>"$work/h/m$1.restart.log" 2>&1 &
    echo $! >"$work/h/m$1.pid"
  }
  compact_args=()
  load_and_measure halyard h_ctl h_stop h_start $h_base
  h_terms=$busy_terms
  for _ in $(seq 1 600); do
    grep -q "snapshot installed" "$work/h/m$restarted.restart.log" && break
    sleep 0.1
  done
  grep -q "snapshot installed" "$work/h/m$restarted.restart.log" ||
    echo "  (the restarted follower installed no snapshot: see $work/h/m$restarted.restart.log)"
  HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" stop "$work/h" >/dev/null
fi

if [ "$only" != halyard ]; then
  r_base=29640
  echo "== ovsdb-server: $rows rows of 16 kB"
  SCHEMA=$NB_SCHEMA bash "$ref" start "$work/r" $r_base 3 >/dev/null 2>&1
  r_ctl() { echo "$work/r/s$1.ctl"; }
  r_stop() {
    local pid
    pid=$(cat "$work/r/s$1.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  }
  r_start() {
    ovsdb-server --detach --no-chdir --pidfile="$work/r/s$1.pid" --unixctl="$work/r/s$1.ctl" \
      --log-file="$work/r/s$1.log" --remote="ptcp:$((r_base + $1)):127.0.0.1" "$work/r/s$1.db" \
      2>>"$work/r/ref.log"
  }
  compact_args=(OVN_Northbound)
  load_and_measure ovsdb-server r_ctl r_stop r_start $r_base
  r_terms=$busy_terms
  bash "$ref" stop "$work/r" >/dev/null
fi

echo "== one writer at the leader; busy: a follower stopped, two compactions, the follower back"
header
if [ "$only" != ovsdb-server ]; then
  row halyard quiet "$work/halyard-quiet.txt" -
  row halyard busy "$work/halyard-busy.txt" "$h_terms"
fi
if [ "$only" != halyard ]; then
  row ovsdb-server quiet "$work/ovsdb-server-quiet.txt" -
  row ovsdb-server busy "$work/ovsdb-server-busy.txt" "$r_terms"
fi
