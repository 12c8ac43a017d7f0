#!/usr/bin/env bash
# Halyard against the real ovsdb-server, same machine, same run, same loads (issue 6 targets).
#
#   tests/bench/compare.sh [--long] [--skip-build] [--keep]
#
# Builds halyard and halyard-bench in release, starts a 3-member Halyard cluster
# (scripts/cluster.sh) and a 3-member ovsdb-server cluster (ref-cluster.sh), runs each load against
# one then the other, and prints every figure side by side with the ratio and, where issue 4 or 6
# sets a target, PASS or MISS. Targets are printed, never asserted: the exit status is non-zero only
# when the run itself failed.
#
# Environment:
#   REF_CLUSTER   path to ref-cluster.sh (default: ../shared/tools/ref-cluster.sh next to the repo,
#                 then /work/shared/tools/ref-cluster.sh)
#   HALYARD_BIN   halyard binary (default: release build in CARGO_TARGET_DIR)
#   BENCH_BIN     halyard-bench binary (default: release build in CARGO_TARGET_DIR)
#   WORK          directory for clusters, logs and JSON results (default: a fresh mktemp -d)
#   CLIENTS       write/read clients (default 32), MONITORS (default 30)
#   ONLY          comma-separated loads to run (default: all of
#                 latency-leader,latency-follower,write-followers,write-leader,read,monitor,bulk,
#                 bulk-large), e.g. ONLY=bulk-large, or ONLY=latency-leader,latency-follower for the
#                 one-writer latency loads (one client, one row per transaction: issue 12)
#   LARGE_ROWS    rows of the bulk-large load (default 20000; 100 per transaction, 16,000-character
#                 external_ids values, 8 clients through the leader: issue 14)
#   ROUNDS        rounds of the one-writer, write, read and monitor loads (default 1). Each round
#                 runs every such load against both servers, Halyard first in odd rounds and
#                 ovsdb-server first in even ones; every figure printed is the median over the
#                 rounds, and the ratio's lowest and highest of the rounds are printed beside it.
#                 One run swings by a third on a busy 2-core machine; ROUNDS=5 is what a verdict
#                 on a target should rest on. The bulk loads add rows and run once whatever ROUNDS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}

long=0 build=1 keep=0
for arg in "$@"; do
  case $arg in
  --long) long=1 ;;
  --skip-build) build=0 ;;
  --keep) keep=1 ;;
  -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "compare.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$long" = 1 ]; then
  write_s=60 read_s=30 monitor_s=60 switches=1000 latency_s=60
else
  write_s=8 read_s=4 monitor_s=8 switches=1000 latency_s=10
fi
clients=${CLIENTS:-32} monitors=${MONITORS:-30} ports_per_switch=100
rounds=${ROUNDS:-1}
case $rounds in '' | *[!0-9]* | 0) echo "compare.sh: ROUNDS must be a positive integer" >&2; exit 2 ;; esac

ref=${REF_CLUSTER:-}
if [ -z "$ref" ]; then
  for c in "$root/../shared/tools/ref-cluster.sh" /work/shared/tools/ref-cluster.sh; do
    [ -x "$c" ] && { ref=$c; break; }
  done
fi
if [ -z "$ref" ] || [ ! -x "$ref" ]; then
  echo "compare.sh: ref-cluster.sh not found (set REF_CLUSTER=/path/to/ref-cluster.sh)" >&2
  exit 2
fi
for tool in ovsdb-server ovsdb-tool ovs-appctl python3; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not installed (scripts/install-deps.sh)" >&2; exit 2; }
done

if [ "$build" = 1 ]; then
  echo "== building halyard and halyard-bench (release)"
  cargo build -q --release -p halyard -p halyard-bench --manifest-path "$root/Cargo.toml"
fi
halyard=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
bench=${BENCH_BIN:-$CARGO_TARGET_DIR/release/halyard-bench}
for b in "$halyard" "$bench"; do
  [ -x "$b" ] || { echo "compare.sh: $b missing (build it or set HALYARD_BIN / BENCH_BIN)" >&2; exit 2; }
done

work=${WORK:-$(mktemp -d /tmp/halyard-compare.XXXXXX)}
mkdir -p "$work/results"

# A base port whose client ports (+1..+3) and Raft ports (+11..+13) are all free now.
free_base() {
  python3 - "$@" <<'EOF'
import random, socket, sys
avoid = {int(a) for a in sys.argv[1:]}
for _ in range(200):
    base = random.randrange(20000, 32000, 20)  # below the ephemeral range
    if any(abs(base - a) < 40 for a in avoid):
        continue
    try:
        socks = []
        for off in (1, 2, 3, 11, 12, 13):
            s = socket.socket(); s.bind(("127.0.0.1", base + off)); socks.append(s)
        for s in socks: s.close()
        print(base); break
    except OSError:
        for s in socks: s.close()
EOF
}
hbase=$(free_base)
rbase=$(free_base "$hbase")

cleanup() {
  HALYARD_BIN=$halyard bash "$root/scripts/cluster.sh" stop "$work/halyard" >/dev/null 2>&1 || true
  "$ref" stop "$work/ref" >/dev/null 2>&1 || true
  if [ "$keep" = 0 ] && [ -z "${WORK:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== starting a 3-member Halyard cluster (ports $((hbase + 1))-$((hbase + 3)))"
OVN=0 HALYARD_BIN=$halyard bash "$root/scripts/cluster.sh" start "$work/halyard" 3 "$hbase" >"$work/halyard-start.log" 2>&1 ||
  { cat "$work/halyard-start.log" >&2; exit 1; }
echo "== starting a 3-member ovsdb-server cluster (ports $((rbase + 1))-$((rbase + 3)))"
"$ref" start "$work/ref" "$rbase" 3 >/dev/null

# role_of CTL: the true Raft role reported by the member's control socket.
role_of() {
  local i
  for i in $(seq 1 60); do
    r=$(ovs-appctl -t "$1" cluster/status OVN_Northbound 2>/dev/null | sed -n 's/^Role: //p')
    [ -n "$r" ] && { echo "$r"; return; }
    sleep 0.5
  done
  echo unknown
}
# endpoints SYSTEM: sets $leader, $followers, $all, $pids for SYSTEM (halyard|ref); $follower is
# the first follower.
endpoints() {
  local sys=$1 base ctl pidf i
  leader="" followers="" all="" pids=""
  for _ in $(seq 1 60); do
    leader="" followers="" all="" pids=""
    for i in 1 2 3; do
      if [ "$sys" = halyard ]; then
        base=$hbase ctl=$work/halyard/m$i/halyard.ctl pidf=$work/halyard/m$i.pid
      else
        base=$rbase ctl=$work/ref/s$i.ctl pidf=$work/ref/s$i.pid
      fi
      ep=tcp:127.0.0.1:$((base + i))
      all=${all:+$all,}$ep
      pids="$pids --pid $(cat "$pidf")"
      case $(role_of "$ctl") in
      leader) leader=$ep ;;
      *) followers=${followers:+$followers,}$ep ;;
      esac
    done
    follower=${followers%%,*}
    [ -n "$leader" ] && return
    sleep 0.5
  done
  echo "compare.sh: no leader found for $sys" >&2
  exit 1
}

# max_term SYSTEM: the highest Raft term any member reports (its increase over a load counts the
# elections held during it).
max_term() {
  local i ctl t max=0
  for i in 1 2 3; do
    if [ "$1" = halyard ]; then ctl=$work/halyard/m$i/halyard.ctl; else ctl=$work/ref/s$i.ctl; fi
    t=$(ovs-appctl -t "$ctl" cluster/status OVN_Northbound 2>/dev/null | sed -n 's/^Term: //p')
    [ -n "$t" ] && [ "$t" -gt "$max" ] && max=$t
  done
  echo "$max"
}

# run NAME SYSTEM ARGS...: one halyard-bench run, its JSON kept in results/NAME.SYSTEM.json
# (results/NAME.SYSTEM.rK.json in round K of several).
run() {
  local name=$1 sys=$2 out
  shift 2
  case ",${ONLY:-$name}," in *",$name,"*) ;; *) return 0 ;; esac
  out=$name.$sys
  [ "$rounds" = 1 ] || [ "$round" = 0 ] || out=$name.$sys.r$round
  endpoints "$sys"
  local args=()
  for a in "$@"; do
    a=${a//@LEADER@/$leader}
    a=${a//@FOLLOWERS@/$followers}
    a=${a//@FOLLOWER@/$follower}
    a=${a//@ALL@/$all}
    args+=("$a")
  done
  printf '   %-16s %-8s' "$name" "$sys"
  # shellcheck disable=SC2086
  if "$bench" --json --label "$name/$sys" $pids "${args[@]}" >"$work/results/$out.json" \
    2>"$work/results/$out.err"; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r["latency"]; print("ok=%d errors=%d %.0f/s p50=%.3fms p99=%.2fms" % (r["ok"], r["errors"], r["throughput_per_s"], l["p50_ms"], l["p99_ms"]))' \
      "$work/results/$out.json"
  else
    echo "FAILED (see $work/results/$out.err)"
    cat "$work/results/$out.err" >&2
  fi
}

# both NAME ARGS...: the load against both servers, in this round's order.
both() {
  if [ $((round % 2)) = 1 ]; then run "$1" halyard "${@:2}"; run "$1" ref "${@:2}"
  else run "$1" ref "${@:2}"; run "$1" halyard "${@:2}"; fi
}

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the loads (other processes share the cores)"
echo "== loads (clients=$clients, monitors=$monitors, rounds=$rounds; odd rounds run Halyard first, even ones ovsdb-server)"
for round in $(seq 1 "$rounds"); do
  [ "$rounds" = 1 ] || echo "-- round $round of $rounds"
  # One writer at a time, as ovn-northd, ovn-nbctl and ovsdbapp commit: one client, one row per
  # transaction, at the leader and at one follower.
  both latency-leader --db @LEADER@ latency --duration "$latency_s"
  both latency-follower --db @FOLLOWER@ latency --duration "$latency_s"
  # What a do-nothing leader and two followers take for the same write on this machine (same disk,
  # loopback): the lower bound of both servers' one-writer latency.
  case ",${ONLY:-latency-leader}," in
  *,latency-leader,*)
    out=floor
    [ "$rounds" = 1 ] || out=floor.r$round
    printf '   %-16s %-8s' floor python
    python3 "$root/tests/bench/floor.py" --json --dir "$work" >"$work/results/$out.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("writes=%d p50=%.3fms p99=%.2fms" % (r["writes"], r["p50_ms"], r["p99_ms"]))' "$work/results/$out.json"
    ;;
  esac
  both write-followers --db @FOLLOWERS@ write --clients "$clients" --duration "$write_s"
  both write-leader --db @LEADER@ write --clients "$clients" --duration "$write_s"
  both read --db @ALL@ read --clients "$clients" --duration "$read_s"
  both monitor --db @ALL@ monitor --monitors "$monitors" --duration "$monitor_s" --rate 100 --writer-db @LEADER@
done
round=0 # the bulk loads: one run each, whatever ROUNDS
for sys in halyard ref; do
  run bulk "$sys" --db @LEADER@ bulk --switches "$switches" --ports-per-switch "$ports_per_switch" --batch 1 --clients 1
done

for sys in halyard ref; do
  case ",${ONLY:-bulk-large}," in *,bulk-large,*) ;; *) continue ;; esac
  term0=$(max_term "$sys")
  run bulk-large "$sys" --db @LEADER@ bulk-large --rows "${LARGE_ROWS:-20000}" --per-txn 100 --value-len 16000 --clients 8
  echo "{\"elections\": $(( $(max_term "$sys") - term0 ))}" >"$work/results/bulk-large.terms.$sys.json"
done

echo "== load average $(cut -d' ' -f1-3 /proc/loadavg) after the loads"
echo
echo "== Halyard vs ovsdb-server 3.1 (3 members each, loopback, $(nproc) cores; results in $work/results)"
python3 - "$work/results" "$rounds" <<'EOF'
import json, os, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def load1(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
def load(name, sys_):
    """The runs of a load against one server: one per round (None where a round has no figure)."""
    one = load1(os.path.join(d, f"{name}.{sys_}.json"))
    if one is not None or rounds == 1:
        return None if one is None else [one]
    runs = [load1(os.path.join(d, f"{name}.{sys_}.r{k}.json")) for k in range(1, rounds + 1)]
    return None if all(r is None for r in runs) else runs
def merged(name, sys_):
    runs = load(name, sys_)
    extra = load1(os.path.join(d, f"{name}.terms.{sys_}.json")) if runs is not None else None
    if runs is not None and extra is not None:
        for r in runs:
            if r is not None:
                r.update(extra)
    return runs
def get1(r, *path):
    for p in path:
        if r is None:
            return None
        # A latency summary over no samples has zeros, not figures: show it as missing.
        if isinstance(r, dict) and r.get("count") == 0:
            return None
        r = r.get(p) if isinstance(r, dict) else None
    return r
def get(runs, *path):
    """The median over the rounds of one figure."""
    vals = [v for v in (get1(r, *path) for r in runs or []) if v is not None]
    return statistics.median(vals) if vals else None
rows = []
def fig(label, name, path, unit, target=None, fmt="{:.1f}"):
    if load(name, "halyard") is None and load(name, "ref") is None:
        return  # a load not selected by ONLY
    hs, rs = merged(name, "halyard"), merged(name, "ref")
    h, r = get(hs, *path), get(rs, *path)
    ratio = (h / r) if (h is not None and r not in (None, 0)) else None
    verdict = ""
    if target and (h is None or r is None):
        verdict = f"MISS (no figure; {target[2]})"
    if target and h is not None and r is not None:
        op, want, text = target
        ok = (ratio is not None and ratio >= want) if op == ">=" else (h <= r * want)
        verdict = f"{'PASS' if ok else 'MISS'} ({text})"
    show = lambda v: "-" if v is None else fmt.format(v)
    spread = "-"
    if hs and rs and len(hs) > 1:
        per = [get1(a, *path) / get1(b, *path) for a, b in zip(hs, rs)
               if get1(a, *path) is not None and get1(b, *path) not in (None, 0)]
        if per:
            spread = f"{min(per):.2f}-{max(per):.2f}x"
    rows.append((label, show(h), show(r), "-" if ratio is None else f"{ratio:.2f}x", spread, unit, verdict))
fig("1 writer: p50 at the leader", "latency-leader", ["latency", "p50_ms"], "ms", ("<=", 0.5, "issue 12: <= 1/2"), "{:.3f}")
fig("1 writer: p99 at the leader", "latency-leader", ["latency", "p99_ms"], "ms", ("<=", 1.0, "issue 12: no worse"), "{:.3f}")
fig("1 writer: mean at the leader", "latency-leader", ["latency", "mean_ms"], "ms", None, "{:.3f}")
fig("1 writer: p50 at a follower", "latency-follower", ["latency", "p50_ms"], "ms", ("<=", 0.5, "issue 12: <= 1/2"), "{:.3f}")
fig("1 writer: p99 at a follower", "latency-follower", ["latency", "p99_ms"], "ms", ("<=", 1.0, "issue 12: no worse"), "{:.3f}")
fig("1 writer: mean at a follower", "latency-follower", ["latency", "mean_ms"], "ms", None, "{:.3f}")
fig("writes through followers", "write-followers", ["throughput_per_s"], "txn/s", (">=", 10, "issue 6: >= 10x"))
fig("  (issue 4 target)", "write-followers", ["throughput_per_s"], "txn/s", (">=", 5, "issue 4: >= 5x"))
fig("p99 write latency (followers)", "write-followers", ["latency", "p99_ms"], "ms", ("<=", 0.2, "issue 6: <= 1/5"), "{:.2f}")
fig("p50 write latency (followers)", "write-followers", ["latency", "p50_ms"], "ms", None, "{:.2f}")
fig("write errors (followers)", "write-followers", ["errors"], "", None, "{:.0f}")
fig("longest ack gap (followers)", "write-followers", ["max_ack_gap_ms"], "ms", None, "{:.1f}")
fig("writes at the leader", "write-leader", ["throughput_per_s"], "txn/s")
fig("p99 write latency (leader)", "write-leader", ["latency", "p99_ms"], "ms", None, "{:.2f}")
fig("reads (all members)", "read", ["throughput_per_s"], "txn/s")
fig("p99 read latency", "read", ["latency", "p99_ms"], "ms", None, "{:.2f}")
fig("monitor fan-out p99 (after reply)", "monitor", ["monitor", "update_after_reply", "p99_ms"], "ms", ("<=", 1.0, "issue 6: no worse"), "{:.2f}")
fig("monitor fan-out p50 (after reply)", "monitor", ["monitor", "update_after_reply", "p50_ms"], "ms", None, "{:.2f}")
fig("monitor p99 (after write sent)", "monitor", ["monitor", "update_after_send", "p99_ms"], "ms", None, "{:.2f}")
fig("monitor updates received", "monitor", ["monitor", "updates_received"], "", None, "{:.0f}")
fig("memory per row (RSS/row/member)", "bulk", ["bulk", "rss_bytes_per_row_per_process"], "bytes", ("<=", 1.0, "issue 6: no more"), "{:.0f}")
fig("bulk load time", "bulk", ["bulk", "load_s"], "s", None, "{:.2f}")
fig("bulk load + replicated", "bulk", ["bulk", "load_and_replicate_s"], "s", None, "{:.2f}")
fig("bulk rows", "bulk", ["bulk", "rows"], "", None, "{:.0f}")
fig("large rows (16 kB, 100/txn, 8 clients)", "bulk-large", ["bulk", "rows"], "", None, "{:.0f}")
fig("large rows: load time", "bulk-large", ["bulk", "load_s"], "s", None, "{:.2f}")
fig("large rows: rows/s", "bulk-large", ["bulk", "rows_per_s"], "rows/s", None, "{:.0f}")
fig("large rows: load + replicated", "bulk-large", ["bulk", "load_and_replicate_s"], "s", None, "{:.2f}")
fig("large rows: longest ack gap", "bulk-large", ["max_ack_gap_ms"], "ms", None, "{:.0f}")
fig("large rows: p99 txn latency", "bulk-large", ["latency", "p99_ms"], "ms", None, "{:.0f}")
fig("large rows: errors", "bulk-large", ["errors"], "", None, "{:.0f}")
fig("large rows: elections (term increase)", "bulk-large", ["elections"], "", None, "{:.0f}")
head = ("figure", "Halyard", "ovsdb-server", "ratio", "rounds", "unit", "target")
if rounds == 1:
    head, rows = head[:4] + head[5:], [r[:4] + r[5:] for r in rows]
else:
    print(f"(medians of {rounds} rounds; 'rounds': the lowest and highest ratio of one round)")
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
for r in [head] + rows:
    cells = [f"{r[0]:<{w[0]}}", f"{r[1]:>{w[1]}}", f"{r[2]:>{w[2]}}", f"{r[3]:>{w[3]}}"]
    cells += [f"{c:<{w[i + 4]}}" for i, c in enumerate(r[4:-1])] + [r[-1]]
    print("  ".join(cells).rstrip())
ref = get(load("latency-leader", "ref"), "latency", "p50_ms")
floors = [load1(os.path.join(d, "floor.json"))] + [load1(os.path.join(d, f"floor.r{k}.json")) for k in range(1, rounds + 1)]
floor_p50 = get([f for f in floors if f is not None], "p50_ms")
if floor_p50 is not None:
    line = f"floor of one replicated write here (tests/bench/floor.py: no work, one thread per process): p50 {floor_p50:.3f} ms"
    if ref:
        line += f" = {floor_p50 / ref:.2f}x ovsdb-server's p50 at the leader (the 1/2 target: {ref / 2:.3f} ms)"
    print(line)
EOF
