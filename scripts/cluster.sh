#!/usr/bin/env bash
# A local Halyard deployment on loopback, for trying OVN against it: a 3-member Northbound
# cluster, a 3-member Southbound cluster and ovn-northd between them.
#   scripts/cluster.sh start [DIR] [MEMBERS] [BASEPORT]   (defaults: /tmp/halyard-cluster, 3, 16640)
#   scripts/cluster.sh stop [DIR]
# Northbound member i serves clients on tcp:127.0.0.1:BASEPORT+i and unix:DIR/mI.sock, Raft on
# 127.0.0.1:BASEPORT+10+i; Southbound member i on BASEPORT+20+i (unix:DIR/sI.sock), Raft on
# BASEPORT+30+i. OVN=0 starts the Northbound cluster only (no Southbound, no ovn-northd);
# SCHEMA=path starts one cluster of that schema only. HTTP=1 also serves each member's
# /metrics and /health (`serve --http`) on 127.0.0.1:BASEPORT+40+i (Northbound) and +60+i (Southbound).
set -euo pipefail
cmd=${1:-start} dir=${2:-/tmp/halyard-cluster} n=${3:-3} base=${4:-16640}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}
bin=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
ovn=${OVN:-1}
[ -z "${SCHEMA:-}" ] || ovn=0

# start_cluster PREFIX SCHEMA CLIENT_BASE RAFT_BASE: members PREFIX1..PREFIXn; sets `list`.
start_cluster() {
  local prefix=$1 schema=$2 cbase=$3 rbase=$4 i raft http dbs=()
  for i in $(seq 1 "$n"); do
    raft="127.0.0.1:$((rbase + i))"
    if [ "$i" = 1 ]; then
      "$bin" create-cluster --data-dir "$dir/$prefix$i" --schema "$schema" --raft-addr "$raft" >/dev/null
    else
      "$bin" join-cluster --data-dir "$dir/$prefix$i" --raft-addr "$raft" --peer "127.0.0.1:$((rbase + 1))" >/dev/null
    fi
    http=()
    [ "${HTTP:-0}" = 0 ] || http=(--http "127.0.0.1:$((rbase + 30 + i))")
    "$bin" serve --data-dir "$dir/$prefix$i" --remote "ptcp:$((cbase + i)):127.0.0.1" \
      --remote "punix:$dir/$prefix$i.sock" "${http[@]}" >"$dir/$prefix$i.log" 2>&1 &
    echo $! >"$dir/$prefix$i.pid"
    dbs+=("tcp:127.0.0.1:$((cbase + i))")
    # Members join one at a time: wait until this one answers before adding the next.
    for _ in $(seq 1 300); do
      ovsdb-client --timeout=1 list-dbs "tcp:127.0.0.1:$((cbase + i))" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  list=$(IFS=,; echo "${dbs[*]}")
}

case $cmd in
start)
  bash "$root/scripts/install-deps.sh"
  [ -n "${HALYARD_BIN:-}" ] || cargo build -q --release -p halyard --manifest-path "$root/Cargo.toml"
  mkdir -p "$dir"
  "$0" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"/m* "$dir"/s* "$dir"/northd*
  start_cluster m "${SCHEMA:-/usr/share/ovn/ovn-nb.ovsschema}" "$base" "$((base + 10))"
  nb=$list
  if [ "$ovn" = 1 ]; then
    start_cluster s /usr/share/ovn/ovn-sb.ovsschema "$((base + 20))" "$((base + 30))"
    sb=$list
    ovn-nbctl --db="$nb" --timeout=30 init
    ovn-sbctl --db="$sb" --timeout=30 init
    ovn-northd --ovnnb-db="$nb" --ovnsb-db="$sb" --no-chdir --unixctl="$dir/northd.ctl" \
      --log-file="$dir/northd.log" -vconsole:off >/dev/null 2>&1 &
    echo $! >"$dir/northd.pid"
  fi
  echo "Halyard: $n Northbound members${sb:+, $n Southbound members and ovn-northd}; logs in $dir/*.log"
  echo "  Northbound, any one member:  ovn-nbctl --db=tcp:127.0.0.1:$((base + 1)) ls-add sw0"
  echo "  Northbound, all members:     ovn-nbctl --db=$nb show"
  if [ -n "${sb:-}" ]; then
    echo "  Southbound, any one member:  ovn-sbctl --db=tcp:127.0.0.1:$((base + 22)) lflow-list sw0"
    echo "  Southbound, all members:     ovn-sbctl --db=$sb show"
  fi
  echo "  stop:                        $0 stop $dir"
  ;;
stop)
  for pid in "$dir"/northd.pid "$dir"/m*.pid "$dir"/s*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
  ;;
*) echo "usage: $0 start|stop [DIR] [MEMBERS] [BASEPORT]" >&2; exit 2 ;;
esac
