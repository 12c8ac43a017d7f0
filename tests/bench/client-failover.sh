#!/usr/bin/env bash
# How long a real client (the Python IDL of python3-openvswitch, as ovsdbapp and Neutron use it,
# given all three members) takes to carry on after the member it uses is SIGKILLed: until it has
# its contents again from another member, and until its next write commits. Halyard with the
# client on a follower and on the leader, then the real ovsdb-server (whose leader-only clients
# are always on the leader), 3-member clusters on loopback, TRIALS runs each (default 3).
#
#   tests/bench/client-failover.sh [--skip-build] [--keep]
#
# HALYARD_BIN: the halyard binary (default: the release build in CARGO_TARGET_DIR). CASES: which
# of halyard-follower, halyard-leader, ovsdb-server-leader to run (default all, comma-separated).
# Prints one line per run and the median per case. Nothing is asserted.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_options '2,13p' "$@"
find_ref_cluster
bin=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
if [ "$build" = 1 ] && [ -z "${HALYARD_BIN:-}" ]; then
  (cd "$root" && cargo build -q --release -p halyard)
fi
schema=/usr/share/ovn/ovn-nb.ovsschema
trials=${TRIALS:-3}
base=${BASEPORT:-18640}
work=$(mktemp -d /tmp/halyard-failover.XXXXXX)
results=$work/results
client=(/usr/bin/python3 "$root/tests/bench/client_failover.py" "$schema")
remotes="tcp:127.0.0.1:$((base + 1)),tcp:127.0.0.1:$((base + 2)),tcp:127.0.0.1:$((base + 3))"

cleanup() {
  for pid in "$work"/*/m*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  for d in "$work"/ref*; do
    [ -d "$d" ] && "$ref" stop "$d" >/dev/null 2>&1 || true
  done
  [ "$keep" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# halyard_cluster DIR: members m1..m3, clients on base+i, Raft on base+10+i.
halyard_cluster() {
  local dir=$1 i
  mkdir -p "$dir"
  for i in 1 2 3; do
    if [ "$i" = 1 ]; then
      "$bin" create-cluster --data-dir "$dir/m$i" --schema "$schema" --raft-addr "127.0.0.1:$((base + 10 + i))" >"$dir/create.log" 2>&1
    else
      "$bin" join-cluster --data-dir "$dir/m$i" --raft-addr "127.0.0.1:$((base + 10 + i))" --peer "127.0.0.1:$((base + 11))" >"$dir/join$i.log" 2>&1
    fi
    "$bin" serve --data-dir "$dir/m$i" --remote "ptcp:$((base + i)):127.0.0.1" >"$dir/m$i.log" 2>&1 &
    echo $! >"$dir/m$i.pid"
    disown # its SIGKILL is the point, not a job to report
    ovsdb-client --timeout=30 wait "tcp:127.0.0.1:$((base + i))" OVN_Northbound connected >/dev/null 2>&1
  done
}

# halyard_leader: the member number of the leader.
halyard_leader() {
  local addr
  addr=$("$bin" status --remote "127.0.0.1:$((base + 11))" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"]["address"])')
  echo $((${addr##*:} - base - 10))
}

run() { # CASE TARGET_PORT PIDFILE
  local line
  line=$("${client[@]}" "$remotes" "tcp:127.0.0.1:$2" "$3" 2>>"$work/client.log")
  echo "$1 $line"
  echo "$1 $line" >>"$results"
}

cases=${CASES:-halyard-follower,halyard-leader,ovsdb-server-leader}
for t in $(seq 1 "$trials"); do
  for role in follower leader; do
    [[ ,$cases, == *,halyard-$role,* ]] || continue
    dir=$work/h$t-$role
    halyard_cluster "$dir"
    leader=$(halyard_leader)
    target=$leader
    [ "$role" = follower ] && target=$((leader % 3 + 1))
    run "halyard-$role" $((base + target)) "$dir/m$target.pid"
    for pid in "$dir"/m*.pid; do kill "$(cat "$pid")" 2>/dev/null || true; done
    # The next cluster reuses the ports.
    for i in 1 2 3; do
      while ss -ltn "sport = :$((base + i))" | grep -q LISTEN; do sleep 0.1; done
    done
    rm -f "$dir"/m*.pid
  done
  [[ ,$cases, == *,ovsdb-server-leader,* ]] || continue
  dir=$work/ref$t
  "$ref" start "$dir" "$base" 3 >/dev/null
  leader=
  for i in 1 2 3; do
    if ovs-appctl -t "$dir/s$i.ctl" cluster/status OVN_Northbound | grep -q '^Role: leader'; then
      leader=$i
    fi
  done
  run "ovsdb-server-leader" $((base + leader)) "$dir/s$leader.pid"
  "$ref" stop "$dir" >/dev/null 2>&1 || true
done

echo
echo "median over $trials runs: case, seconds until the client has its contents again, until its next write commits"
python3 - "$results" <<'EOF'
import json, statistics, sys
cases = {}
for line in open(sys.argv[1]):
    case, doc = line.split(" ", 1)
    cases.setdefault(case, []).append(json.loads(doc))
for case, runs in cases.items():
    rec = [r["reconnect_s"] for r in runs if r["reconnect_s"] is not None]
    com = [r["commit_s"] for r in runs]
    print(f"{case:22} reconnect {statistics.median(rec) if rec else 'n/a':>6}  commit {statistics.median(com):>6}")
EOF
