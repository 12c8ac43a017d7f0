#!/usr/bin/env bash
# Conditional monitoring as ovn-controller does it, on Halyard and on ovsdb-server 3.1, same
# machine, same run (halyard-bench condmon): a 3-member Southbound cluster each, CHASSIS chassis
# (one session each, spread over the members) with per-chassis conditions on Port_Binding and
# Logical_Flow (by datapath), FLOWS flows over DATAPATHS datapaths. Prints, side by side: the
# subscription (every session's monitor_cond at once), the cost of a condition change
# (monitor_cond_change adding a datapath) and of a port binding's and a new flow's fan-out, the
# members' RSS, and updates sent where the conditions do not match (must be 0). Nothing is
# asserted.
#
#   tests/bench/condmon.sh [--skip-build] [--keep]
#
# Environment: HALYARD_BIN, BENCH_BIN (default: release builds in CARGO_TARGET_DIR), REF_CLUSTER,
# WORK (default: mktemp -d), CHASSIS (1000), FLOWS (20000), DATAPATHS (100).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_options '2,14p' "$@"
find_ref_cluster
chassis=${CHASSIS:-1000} flows=${FLOWS:-20000} datapaths=${DATAPATHS:-100}
sb_bench_setup condmon

h_base=28640
HALYARD_BIN=$bin SCHEMA=$SB_SCHEMA bash "$root/scripts/cluster.sh" start "$work/h" 3 $h_base >/dev/null
h_dbs="tcp:127.0.0.1:$((h_base + 1)),tcp:127.0.0.1:$((h_base + 2)),tcp:127.0.0.1:$((h_base + 3))"
echo "== Halyard: $chassis chassis, $flows flows, $datapaths datapaths"
sb_bench halyard "$h_dbs" $(cat "$work"/h/m*.pid) -- condmon --chassis "$chassis" --flows "$flows" --datapaths "$datapaths"
HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" stop "$work/h" >/dev/null

r_base=29640
SCHEMA=$SB_SCHEMA bash "$ref" start "$work/r" $r_base 3 >/dev/null
r_dbs="tcp:127.0.0.1:$((r_base + 1)),tcp:127.0.0.1:$((r_base + 2)),tcp:127.0.0.1:$((r_base + 3))"
echo "== ovsdb-server: $chassis chassis, $flows flows, $datapaths datapaths"
sb_bench ovsdb-server "$r_dbs" $(cat "$work"/r/s*.pid) -- condmon --chassis "$chassis" --flows "$flows" --datapaths "$datapaths"

python3 - "$work/halyard.json" "$work/ovsdb-server.json" <<'PY'
import json, sys
h, r = (json.load(open(p)) for p in sys.argv[1:3])
def rss(rep):
    return " / ".join(f"{(x['after_kib'] or 0) / 1024:.0f}" for x in rep["rss"]) + " MB"
def line(label, hv, rv, unit, fmt="{:.2f}"):
    ratio = (hv / rv) if rv else float("nan")
    print(f"  {label:<46} {fmt.format(hv):>10} {fmt.format(rv):>10} {unit:<5} {ratio:6.2f}x")
print(f"  {'':<46} {'Halyard':>10} {'ovsdb-srv':>10}")
hc, rc = h["condmon"], r["condmon"]
line("load", hc["load_s"], rc["load_s"], "s")
line("subscription: p50 session has its contents", h["latency"]["p50_ms"] / 1000, r["latency"]["p50_ms"] / 1000, "s")
line("subscription: last session has its contents", hc["subscribe_last_s"], rc["subscribe_last_s"], "s")
for key, label in (("cond_change", "condition change"), ("bind", "port binding's update"),
                   ("flow_fan_out", "new flow reaches its sessions")):
    line(f"{label} p50", hc[key]["p50_ms"], rc[key]["p50_ms"], "ms", "{:.1f}")
    line(f"{label} max", hc[key]["max_ms"], rc[key]["max_ms"], "ms", "{:.1f}")
print(f"  sessions subscribed: Halyard {hc['sessions_subscribed']}, ovsdb-server {rc['sessions_subscribed']}; "
      f"spurious updates: {hc['spurious_updates']} / {rc['spurious_updates']}; errors: {h['errors']} / {r['errors']}")
for name, rep in (("Halyard", h), ("ovsdb-server", r)):
    for text, n in rep["error_samples"].items():
        print(f"    {name} error: {n} x {text}")
print(f"  RSS of the members after the subscription: Halyard {rss(h)}, ovsdb-server {rss(r)}")
PY
