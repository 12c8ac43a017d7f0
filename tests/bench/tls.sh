#!/usr/bin/env bash
# The cost of TLS: the same halyard-bench loads against a 3-member Halyard cluster with plain
# client and Raft connections, then one with TLS for both (pssl: remotes, ssl: Raft addresses),
# then the same two ways against a 3-member ovsdb-server 3.1 cluster, in one run. Certificates
# come from ovs-pki. Figures are printed, never asserted (the issue's target: TLS costs Halyard
# less than 15% of its throughput).
#
#   tests/bench/tls.sh [--skip-build] [--keep]
#
# Environment: HALYARD_BIN, BENCH_BIN (default: release builds in CARGO_TARGET_DIR), WORK (default:
# a fresh mktemp -d), CLIENTS (default 32), WRITE_S (default 8), READ_S (default 4).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_options '2,12p' "$@"
clients=${CLIENTS:-32} write_s=${WRITE_S:-8} read_s=${READ_S:-4}
for tool in ovsdb-server ovsdb-tool ovsdb-client ovs-pki python3; do
  command -v "$tool" >/dev/null || { echo "tls.sh: $tool not installed (scripts/install-deps.sh)" >&2; exit 2; }
done
if [ "$build" = 1 ]; then
  echo "== building halyard and halyard-bench (release)"
  cargo build -q --release -p halyard -p halyard-bench --manifest-path "$root/Cargo.toml"
fi
halyard=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
bench=${BENCH_BIN:-$CARGO_TARGET_DIR/release/halyard-bench}
for b in "$halyard" "$bench"; do
  [ -x "$b" ] || { echo "tls.sh: $b missing (build it or set HALYARD_BIN / BENCH_BIN)" >&2; exit 2; }
done

work=${WORK:-$(mktemp -d /tmp/halyard-tls-bench.XXXXXX)}
mkdir -p "$work/results"
stop_all() {
  for pid in "$work"/*/*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  sleep 0.5
}
cleanup() {
  stop_all
  if [ "$keep" = 0 ] && [ -z "${WORK:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== certificates (ovs-pki) in $work/pki"
(cd "$work" && ovs-pki --dir="$work/pki" --log="$work/ovs-pki.log" init >/dev/null &&
  for n in s1 s2 s3 client; do ovs-pki --dir="$work/pki" --log="$work/ovs-pki.log" req+sign "$n" switch >/dev/null; done)
ca=$work/pki/switchca/cacert.pem
key() { echo "$work/$1-privkey.pem"; }
cert() { echo "$work/$1-cert.pem"; }

# Free ports: client ports base+1..3, Raft ports base+11..13.
free_base() {
  python3 - <<'EOF'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 32000, 20)
    socks = []
    try:
        for off in (1, 2, 3, 11, 12, 13):
            s = socket.socket(); s.bind(("127.0.0.1", base + off)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
EOF
}

# start SYSTEM MODE: a 3-member cluster of SYSTEM (halyard|ref) with MODE (plain|tls) client and
# Raft connections; sets $eps (the client endpoints) and $pids (--pid options).
start() {
  local sys=$1 mode=$2 base dir i raft peer client_remote tlsopts
  base=$(free_base)
  dir=$work/$sys-$mode
  mkdir -p "$dir"
  eps="" pids=""
  for i in 1 2 3; do
    if [ "$mode" = tls ]; then
      raft=ssl:127.0.0.1:$((base + 10 + i)) peer=ssl:127.0.0.1:$((base + 11))
      client_remote=pssl:$((base + i)):127.0.0.1
      tlsopts="--private-key=$(key s$i) --certificate=$(cert s$i) --ca-cert=$ca"
      eps=${eps:+$eps,}ssl:127.0.0.1:$((base + i))
    else
      raft=tcp:127.0.0.1:$((base + 10 + i)) peer=tcp:127.0.0.1:$((base + 11))
      client_remote=ptcp:$((base + i)):127.0.0.1
      tlsopts=""
      eps=${eps:+$eps,}tcp:127.0.0.1:$((base + i))
    fi
    if [ "$sys" = halyard ]; then
      [ "$mode" = plain ] && raft=${raft#tcp:} peer=${peer#tcp:}
      if [ "$i" = 1 ]; then
        HALYARD_LOG=warn "$halyard" create-cluster --data-dir "$dir/m$i" --schema /usr/share/ovn/ovn-nb.ovsschema --raft-addr "$raft" >/dev/null
      else
        HALYARD_LOG=warn "$halyard" join-cluster --data-dir "$dir/m$i" --raft-addr "$raft" --peer "$peer" >/dev/null
      fi
      # shellcheck disable=SC2086
      HALYARD_LOG=warn "$halyard" serve --data-dir "$dir/m$i" --remote "$client_remote" \
        --remote "punix:$dir/m$i.sock" $tlsopts 2>"$dir/m$i.log" &
      echo $! >"$dir/m$i.pid"
      # Wait for this member before the next joins.
      for _ in $(seq 1 120); do
        ovsdb-client --timeout=2 wait "unix:$dir/m$i.sock" OVN_Northbound connected >/dev/null 2>&1 && break
        sleep 0.5
      done
    else
      if [ "$i" = 1 ]; then
        ovsdb-tool create-cluster "$dir/s$i.db" /usr/share/ovn/ovn-nb.ovsschema "$raft"
      else
        ovsdb-tool join-cluster "$dir/s$i.db" OVN_Northbound "$raft" "$peer"
      fi
      # shellcheck disable=SC2086
      ovsdb-server --detach --no-chdir --pidfile="$dir/s$i.pid" --unixctl="$dir/s$i.ctl" \
        --log-file="$dir/s$i.log" --remote="$client_remote" --remote="punix:$dir/m$i.sock" \
        $tlsopts "$dir/s$i.db"
    fi
  done
  for i in 1 2 3; do
    ovsdb-client --timeout=60 wait "unix:$dir/m$i.sock" OVN_Northbound connected >/dev/null 2>&1
    pids="$pids --pid $(cat "$dir"/*"$i".pid)"
  done
}

tls_args=(--private-key "$(key client)" --certificate "$(cert client)" --ca-cert "$ca")
# bench NAME LOAD ARGS...: one run, its JSON kept in results/NAME.LOAD.json.
bench() {
  local name=$1 load=$2
  shift 2
  printf '   %-14s %-6s' "$name" "$load"
  # shellcheck disable=SC2086
  if "$bench" --json --label "$name/$load" $pids "${tls_args[@]}" --db "$eps" "$load" "$@" \
    >"$work/results/$name.$load.json" 2>"$work/results/$name.$load.err"; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("ok=%d errors=%d %.0f/s p99=%.2fms" % (r["ok"], r["errors"], r["throughput_per_s"], r["latency"]["p99_ms"]))' \
      "$work/results/$name.$load.json"
  else
    echo "FAILED (see $work/results/$name.$load.err)"
    cat "$work/results/$name.$load.err" >&2
  fi
}

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== loads: write (clients=$clients, ${write_s}s, through every member), read (${read_s}s)"
for sys in halyard ref; do
  for mode in plain tls; do
    start "$sys" "$mode"
    bench "$sys-$mode" write --clients "$clients" --duration "$write_s"
    bench "$sys-$mode" read --clients "$clients" --duration "$read_s"
    stop_all
  done
done

echo
echo "== TLS vs plain (3 members each, loopback, clients and Raft both over TLS in the tls runs)"
python3 - "$work/results" <<'EOF'
import json, os, sys
d = sys.argv[1]
def tput(name, load):
    try:
        return json.load(open(os.path.join(d, f"{name}.{load}.json")))["throughput_per_s"]
    except (OSError, ValueError, KeyError):
        return None
print(f"{'load':8} {'system':12} {'plain /s':>10} {'tls /s':>10} {'tls cost':>9}")
for load in ("write", "read"):
    for sys_ in ("halyard", "ref"):
        p, t = tput(f"{sys_}-plain", load), tput(f"{sys_}-tls", load)
        cost = f"{(1 - t / p) * 100:.1f}%" if p and t else "-"
        name = "halyard" if sys_ == "halyard" else "ovsdb-server"
        fmt = lambda v: f"{v:.0f}" if v else "-"
        print(f"{load:8} {name:12} {fmt(p):>10} {fmt(t):>10} {cost:>9}")
    h, r = tput("halyard-tls", load), tput("ref-tls", load)
    if h and r:
        print(f"{load:8} halyard/ovsdb-server over TLS: {h / r:.2f}x")
EOF
