#!/usr/bin/env bash
# A Southbound reconnection storm on Halyard and on ovsdb-server 3.1, same machine, same run:
# a 3-member Southbound cluster each, FLOWS Logical_Flow rows loaded in transactions of 2,000,
# then CLIENTS clients spread over the three members send monitor_cond_since (no last id, as a
# restarted ovn-controller does) at once (halyard-bench storm). Prints the load rate, the time
# until the median and the last client have the whole table, the members' RSS after the storm,
# and one write's fan-out to every client, side by side. Figures are printed, never asserted
# (issue 13 targets: every client served in at most 1/5 of ovsdb-server's time, RSS at most half).
#
#   tests/bench/storm.sh [--skip-build] [--keep]
#
# Environment: HALYARD_BIN, BENCH_BIN (default: release builds in CARGO_TARGET_DIR), REF_CLUSTER,
# WORK (default: mktemp -d), FLOWS (50000), CLIENTS (100), BATCH (rows per load transaction, 2000;
# 20000 or more for ovn-northd-sized transactions), ONLY=halyard (skip ovsdb-server: the
# 1,000-client, 200k-flow storm, which ovsdb-server would take most of an hour to serve).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_options '2,13p' "$@"
find_ref_cluster
flows=${FLOWS:-50000} clients=${CLIENTS:-100} batch=${BATCH:-2000}
sb_bench_setup storm

h_base=24640
HALYARD_BIN=$bin SCHEMA=$SB_SCHEMA bash "$root/scripts/cluster.sh" start "$work/h" 3 $h_base >/dev/null
h_dbs="tcp:127.0.0.1:$((h_base + 1)),tcp:127.0.0.1:$((h_base + 2)),tcp:127.0.0.1:$((h_base + 3))"
leader_term() {
  "$bin" status --json --remote "tcp:127.0.0.1:$((h_base + 1))" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"]["term"])'
}
echo "== Halyard: $flows flows, $clients clients"
term_before=$(leader_term)
sb_bench halyard "$h_dbs" $(cat "$work"/h/m*.pid) -- storm --flows "$flows" --clients "$clients" --batch "$batch"
# A new term means an election: a member lost its leader's contact during the load or the storm.
term_after=$(leader_term)
echo "{\"before\": $term_before, \"after\": $term_after}" >"$work/halyard-terms.json"
HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" stop "$work/h" >/dev/null

if [ "${ONLY:-}" = halyard ]; then
  echo '{"only": "halyard"}' >"$work/ovsdb-server.json"
else

r_base=25640
SCHEMA=$SB_SCHEMA bash "$ref" start "$work/r" $r_base 3 >/dev/null
r_dbs="tcp:127.0.0.1:$((r_base + 1)),tcp:127.0.0.1:$((r_base + 2)),tcp:127.0.0.1:$((r_base + 3))"
echo "== ovsdb-server: $flows flows, $clients clients"
sb_bench ovsdb-server "$r_dbs" $(cat "$work"/r/s*.pid) -- storm --flows "$flows" --clients "$clients" --batch "$batch"
fi

python3 - "$work/halyard.json" "$work/ovsdb-server.json" "$work/halyard-terms.json" <<'PY'
import json, sys
h, r, terms = (json.load(open(p)) for p in sys.argv[1:4])
ref = "storm" in r
def rss(rep, key="after_kib"):
    return " / ".join(f"{(x[key] or 0) / 1024:.0f}" for x in rep["rss"]) + " MB"
def cpu(st):
    return " / ".join(f"{c:.1f}" if c is not None else "?" for c in st["server_cpu_s"]) + " s"
def line(label, hv, rv, unit, fmt="{:.2f}"):
    if not ref:
        print(f"  {label:<44} {fmt.format(hv):>10} {unit}")
        return
    ratio = (hv / rv) if rv else float("nan")
    print(f"  {label:<44} {fmt.format(hv):>10} {fmt.format(rv):>10} {unit:<5} {ratio:6.2f}x")
print(f"  {'':<44} {'Halyard':>10} {'ovsdb-srv' if ref else '':>10}")
hs = h["storm"]
rs = r["storm"] if ref else {}
rl = r["latency"] if ref else {}
line("load (rows/s)", hs["load_rows_per_s"], rs.get("load_rows_per_s"), "/s", "{:.0f}")
line("storm: p50 client has its contents", h["latency"]["p50_ms"] / 1000, (rl.get("p50_ms") or 0) / 1000, "s")
line("storm: last client has its contents", hs["last_client_s"], rs.get("last_client_s"), "s")
line("one write reaches every monitor (max)", hs["fan_out"]["max_ms"], (rs.get("fan_out") or {}).get("max_ms"), "ms", "{:.1f}")
print(f"  clients served: Halyard {hs['clients_served']}" + (f", ovsdb-server {rs['clients_served']}" if ref else "")
      + f"; errors: {h['errors']}" + (f" / {r['errors']}" if ref else ""))
for name, rep in (("Halyard", h), ("ovsdb-server", r)):
    for text, n in rep.get("error_samples", {}).items():
        print(f"    {name} error: {n} x {text}")
print(f"  Halyard's Raft term before / after the run: {terms['before']} / {terms['after']}"
      + ("" if terms["before"] == terms["after"] else "  (an election happened)"))
both = [("Halyard", h, hs)] + ([("ovsdb-server", r, rs)] if ref else [])
print("  RSS of the members, peak during the storm: " + ", ".join(f"{n} {rss(x, 'peak_kib')}" for n, x, _ in both))
print("  RSS of the members after the storm: " + ", ".join(f"{n} {rss(x)}" for n, x, _ in both))
print("  CPU of the members during the storm: " + ", ".join(f"{n} {cpu(st)}" for n, _, st in both))
for name, _, st in both:
    # The load tool shares the cores: if it used a core for most of the storm, it is the limit.
    busy = (st["client_cpu_s"] or 0) / st["last_client_s"] if st["last_client_s"] else 0
    print(f"  load tool's CPU during the {name} storm: {st['client_cpu_s'] or 0:.1f} s"
          f" ({busy:.0%} of one core){'  (the client may be the bottleneck)' if busy > 0.8 else ''}")
if ref:
    last = hs["last_client_s"] / rs["last_client_s"] if rs["last_client_s"] else float("nan")
    hr = max(x["peak_kib"] or 0 for x in h["rss"]); rr = max(x["peak_kib"] or 0 for x in r["rss"])
    print(f"  target: last client in <= 0.20x ovsdb-server's: {last:.2f}x {'PASS' if last <= 0.2 else 'MISS'}")
    print(f"  target: largest member's peak RSS <= 0.5x ovsdb-server's: {hr / rr:.2f}x {'PASS' if hr <= rr / 2 else 'MISS'}")
PY
