#!/usr/bin/env bash
# A local Halyard cluster on loopback, for trying OVN tools against it.
#   scripts/cluster.sh start [DIR] [MEMBERS] [BASEPORT]   (defaults: /tmp/halyard-cluster, 3, 16640)
#   scripts/cluster.sh stop [DIR]
# Member i serves OVSDB clients on tcp:127.0.0.1:BASEPORT+i and unix:DIR/mI.sock, and Raft on
# 127.0.0.1:BASEPORT+10+i. SCHEMA=path picks the schema (default: OVN Northbound).
set -euo pipefail
cmd=${1:-start} dir=${2:-/tmp/halyard-cluster} n=${3:-3} base=${4:-16640}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}
bin=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
case $cmd in
start)
  bash "$root/scripts/install-deps.sh"
  [ -n "${HALYARD_BIN:-}" ] || cargo build -q --release -p halyard --manifest-path "$root/Cargo.toml"
  schema=${SCHEMA:-/usr/share/ovn/ovn-nb.ovsschema}
  mkdir -p "$dir"
  "$0" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"/m*
  dbs=()
  for i in $(seq 1 "$n"); do
    raft="127.0.0.1:$((base + 10 + i))"
    if [ "$i" = 1 ]; then
      "$bin" create-cluster --data-dir "$dir/m$i" --schema "$schema" --raft-addr "$raft" >/dev/null
    else
      "$bin" join-cluster --data-dir "$dir/m$i" --raft-addr "$raft" --peer "127.0.0.1:$((base + 11))" >/dev/null
    fi
    "$bin" serve --data-dir "$dir/m$i" --remote "ptcp:$((base + i)):127.0.0.1" --remote "punix:$dir/m$i.sock" \
      >"$dir/m$i.log" 2>&1 &
    echo $! >"$dir/m$i.pid"
    dbs+=("tcp:127.0.0.1:$((base + i))")
    # Members join one at a time: wait until this one answers before adding the next.
    for _ in $(seq 1 300); do
      ovsdb-client --timeout=1 list-dbs "tcp:127.0.0.1:$((base + i))" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  list=$(IFS=,; echo "${dbs[*]}")
  echo "Halyard: $n members; logs in $dir/m*.log"
  echo "  any one member:  ovn-nbctl --db=${dbs[0]} show"
  echo "  all members:     ovn-nbctl --db=$list show"
  echo "  stop:            $0 stop $dir"
  ;;
stop)
  for pid in "$dir"/m*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
  ;;
*) echo "usage: $0 start|stop [DIR] [MEMBERS] [BASEPORT]" >&2; exit 2 ;;
esac
