#!/usr/bin/env bash
# Checks every deployment file that does not need Docker, each with the tool that consumes it:
#   - deploy/pacemaker/halyard passes ocf-tester (resource-agents) against a real single-member
#     halyard, and its monitor notices a killed member;
#   - deploy/haproxy/haproxy.cfg passes `haproxy -c`, and, pointed at that real member (every
#     address rewritten to loopback), HAProxy marks it UP through /health, carries ovn-nbctl
#     through, and marks it DOWN once it stops;
#   - deploy/systemd/halyard@.service passes `systemd-analyze verify` with no complaint, and the
#     example .conf files set every variable the launcher reads;
#   - deploy/kubernetes/halyard.yaml parses, validates against the Kubernetes schemas
#     (kubernetes-validate, from PyPI, offline), and has the bootstrap and probes it promises;
#   - the compose files pass `docker compose config`; the shell scripts pass `bash -n`.
#   HALYARD_BIN=path   the binary (default: cargo build -p halyard, debug)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
start=$(date +%s)
step() { echo "== configs [$(($(date +%s) - start))s] $*"; }
fail() { echo "configs: FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "   ok: $*"; }

bash "$root/tests/deploy/install-deps.sh"
command -v ovn-nbctl >/dev/null || bash "$root/scripts/install-deps.sh"
if [ -z "${HALYARD_BIN:-}" ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}
  cargo build -q -p halyard --manifest-path "$root/Cargo.toml"
  HALYARD_BIN=$CARGO_TARGET_DIR/debug/halyard
fi
bin=$HALYARD_BIN
# kubernetes-validate (and PyYAML with it) in a cached venv, whatever python3 the PATH offers.
venv=${HALYARD_DEPLOY_VENV:-$HOME/.cache/halyard-deploy-venv}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate || fail "pip install kubernetes-validate"
fi
py=$venv/bin/python

work=$(mktemp -d "${TMPDIR:-/tmp}/halyard-configs.XXXXXX")
haproxy_pid=""
cleanup() {
  rc=$?
  [ -n "$haproxy_pid" ] && kill "$haproxy_pid" 2>/dev/null
  if [ -f "$work/nb.pid" ]; then
    OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=halyard-test "${ocf_env[@]}" \
      "$root/deploy/pacemaker/halyard" stop >/dev/null 2>&1 || true
  fi
  if [ $rc != 0 ]; then
    echo "configs: failed; agent and member logs:" >&2
    tail -20 "$work/ra.log" "$work/nb.log" >&2 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_ports() {
  python3 -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]; print(*[x.getsockname()[1] for x in s])' "$1"
}
read -r raft_port client_port http_port lb_port lb_sb_port stats_port dead1 dead2 < <(free_ports 8)

step "shell scripts parse"
for f in "$root"/deploy/halyard-member "$root"/deploy/docker/*.sh "$root"/deploy/pacemaker/halyard "$root"/tests/deploy/*.sh; do
  bash -n "$f" || fail "bash -n $f"
done
ok "bash -n on the launcher, image scripts, OCF agent and tests"

step "Pacemaker OCF agent: ocf-tester against a real member"
export OCF_ROOT=/usr/lib/ocf
ocf_env=(OCF_RESKEY_binary="$bin" OCF_RESKEY_data_dir="$work/nb" OCF_RESKEY_raft_addr="127.0.0.1:$raft_port"
  OCF_RESKEY_remote="ptcp:$client_port:127.0.0.1" OCF_RESKEY_http="127.0.0.1:$http_port"
  OCF_RESKEY_log_file="$work/nb.log" OCF_RESKEY_pidfile="$work/nb.pid")
ocf_args=()
for kv in "${ocf_env[@]}"; do ocf_args+=(-o "${kv#OCF_RESKEY_}"); done
# ocf-tester checks the agent's permissions as `nobody`, so it must see the agent through
# world-readable directories: test a copy.
install -m 0755 "$root/deploy/pacemaker/halyard" "$work/halyard-ra"
chmod 755 "$work"
out=$(ocf-tester -n halyard-test "${ocf_args[@]}" "$work/halyard-ra" 2>&1) || { echo "$out" >&2; fail "ocf-tester"; }
echo "$out" | grep "passed all tests" >/dev/null || { echo "$out" >&2; fail "ocf-tester did not pass"; }
[ "$(grep -c 'member started' "$work/nb.log")" -ge 2 ] || fail "ocf-tester did not really start the member twice"
ok "ocf-tester: all tests passed (the member really started and stopped $(grep -c 'member started' "$work/nb.log") times)"

# The agent's own log lines go to a file, shown if the test fails. Arguments: more VAR=value.
ra() { env OCF_RESOURCE_INSTANCE=halyard-test "${ocf_env[@]}" "$@" "$root/deploy/pacemaker/halyard" "$action" 2>>"$work/ra.log"; }
action=start; ra || fail "agent start"
action=monitor; ra || fail "agent monitor after start"
ra OCF_CHECK_LEVEL=10 || fail "agent monitor depth 10 (/health) after start"
# Depth 10 really asks /health: pointed at a port that speaks no HTTP it fails, depth 0 does not.
rc=0; ra OCF_CHECK_LEVEL=10 OCF_RESKEY_http="127.0.0.1:$client_port" || rc=$?
[ $rc = 1 ] || fail "monitor depth 10 with a /health that does not answer returned $rc, not 1"
ra OCF_RESKEY_http="127.0.0.1:$client_port" || fail "monitor depth 0 depends on /health"
ovn-nbctl --timeout=20 --db="tcp:127.0.0.1:$client_port" ls-add ocf-sw || fail "ovn-nbctl against the agent's member"
kill -9 "$(cat "$work/nb.pid")"
sleep 0.5
rc=0; action=monitor; ra 2>/dev/null || rc=$?
[ $rc = 7 ] || fail "monitor after kill -9 returned $rc, not 7 (OCF_NOT_RUNNING)"
action=start; ra || fail "agent start after a crash (stale control socket)"
ovn-nbctl --timeout=20 --db="tcp:127.0.0.1:$client_port" ls-list | grep -w ocf-sw >/dev/null || fail "data lost across the restart"
ok "monitor: 0 when serving, 0 at depth 10 (1 when /health does not answer), 7 after kill -9; start again keeps the data"
# Validation errors are configuration errors (6) or missing installation (5), not generic ones.
rc=0; env OCF_RESOURCE_INSTANCE=x OCF_RESKEY_data_dir= OCF_RESKEY_binary="$bin" "$root/deploy/pacemaker/halyard" validate-all 2>/dev/null || rc=$?
[ $rc = 6 ] || fail "validate-all without data_dir returned $rc, not 6"
rc=0; env OCF_RESOURCE_INSTANCE=x OCF_RESKEY_data_dir="$work/x" OCF_RESKEY_binary=/nonexistent/halyard "$root/deploy/pacemaker/halyard" validate-all 2>/dev/null || rc=$?
[ $rc = 5 ] || fail "validate-all with a missing binary returned $rc, not 5"
ok "validate-all: 6 without data_dir, 5 without the binary"

step "HAProxy: haproxy -c, then live against the member"
haproxy -c -q -f "$root/deploy/haproxy/haproxy.cfg" || fail "haproxy -c"
ok "haproxy -c -f deploy/haproxy/haproxy.cfg"
# Every address goes to loopback: m1 to the real member; m2 to the same member but checked on
# its OVSDB port, which is up but speaks no HTTP, so only a real HTTP check marks it DOWN; m3 to
# a port nobody listens on; a
# small maxconn, since 50000 needs a file limit a test shell may not have.
sed -e "s#bind :6641#bind 127.0.0.1:$lb_port#" -e "s#bind :6642#bind 127.0.0.1:$lb_sb_port#" \
  -e "s#bind 127.0.0.1:8404#bind 127.0.0.1:$stats_port#" \
  -e "s#10.0.0.1:6641 check port 8641#127.0.0.1:$client_port check port $http_port#" \
  -e "s#10.0.0.2:6641 check port 8641#127.0.0.1:$client_port check port $client_port#" \
  -e "s#10.0.0.3:6641 check port 8641#127.0.0.1:$dead2 check port $dead2#" \
  -e "s#10.0.0.[123]:6642 check port 8642#127.0.0.1:$dead1 check port $dead1#" \
  -e "s#stats socket /run/haproxy/admin.sock#stats socket $work/haproxy.sock#" \
  -e "s#log stdout format raw local0 info#log stderr format raw local0 warning#" \
  -e "s#maxconn 50000#maxconn 1000#" \
  "$root/deploy/haproxy/haproxy.cfg" >"$work/haproxy.cfg"
! grep -v '^ *#' "$work/haproxy.cfg" | grep -nE '10\.0\.0\.|bind :' || fail "the test config still has a non-loopback address"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
server_state() { # BACKEND SERVER -> UP/DOWN/...
  curl -s -m 5 "http://127.0.0.1:$stats_port/stats;csv" | awk -F, -v b="$1" -v s="$2" '$1 == b && $2 == s { print $18 }'
}
wait_state() {
  local want=$1 deadline=$(($(date +%s) + 30))
  until [ "$(server_state halyard_nb m1)" = "$want" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/haproxy.log" >&2; fail "haproxy never marked m1 $want (is: $(server_state halyard_nb m1))"; }
    sleep 0.5
  done
}
wait_state UP
deadline=$(($(date +%s) + 30))
until [ "$(server_state halyard_nb m2)" = DOWN ] && [ "$(server_state halyard_nb m3)" = DOWN ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "m2 (no HTTP on its check port) or m3 (nothing listening) is not DOWN"
  sleep 0.5
done
ovn-nbctl --timeout=20 --db="tcp:127.0.0.1:$lb_port" ls-list | grep -w ocf-sw >/dev/null || fail "ovn-nbctl through haproxy"
ok "haproxy marks the member UP by its /health, a port without HTTP and a dead one DOWN; ovn-nbctl goes through"
action=stop; ra || fail "agent stop"
wait_state DOWN
ok "haproxy marks the member DOWN once it stops"
kill "$haproxy_pid"; wait "$haproxy_pid" 2>/dev/null || true; haproxy_pid=""
action=monitor; rc=0; ra 2>/dev/null || rc=$?
[ $rc = 7 ] || fail "monitor after stop returned $rc"

step "systemd unit"
mkdir -p "$work/systemd"
# verify wants ExecStart to exist: point it at the repository's launcher.
sed "s#/usr/local/lib/halyard/halyard-member#$root/deploy/halyard-member#" \
  "$root/deploy/systemd/halyard@.service" >"$work/systemd/halyard@.service"
out=$(systemd-analyze verify "$work/systemd/halyard@nb.service" 2>&1) || { echo "$out" >&2; fail "systemd-analyze verify"; }
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify complained"; }
for conf in nb sb; do
  for var in HALYARD_DATA_DIR HALYARD_RAFT_ADDR HALYARD_PEERS HALYARD_SCHEMAS HALYARD_REMOTES HALYARD_HTTP HALYARD_UNIXCTL; do
    grep -q "^$var=" "$root/deploy/systemd/$conf.conf" || fail "$conf.conf does not set $var"
  done
  grep -o '^HALYARD_[A-Z_]*' "$root/deploy/systemd/$conf.conf" | while read -r var; do
    [ "$var" = HALYARD_SERVE_ARGS ] && grep -q "\$$var" "$root/deploy/systemd/halyard@.service" && continue
    grep -q "$var" "$root/deploy/halyard-member" || fail "$conf.conf sets $var, which the launcher never reads"
  done
done
ok "systemd-analyze verify halyard@nb.service: no complaint; nb.conf and sb.conf match the launcher"

step "Kubernetes manifest"
"$venv/bin/kubernetes-validate" --strict --quiet "$root/deploy/kubernetes/halyard.yaml" ||
  fail "kubernetes-validate"
ok "kubernetes-validate --strict (Kubernetes $("$venv/bin/kubernetes-validate" --version 2>/dev/null | awk '{print $NF}') schemas)"
"$py" - "$root/deploy/kubernetes/halyard.yaml" <<'PY' || fail "manifest semantics"
import sys, yaml
docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
sts = docs[("StatefulSet", "halyard")]
svc = docs[("Service", sts["spec"]["serviceName"])]
assert svc["spec"]["clusterIP"] == "None", "the StatefulSet's service is not headless"
assert svc["spec"].get("publishNotReadyAddresses") is True, "members cannot find each other before ready"
assert sts["spec"]["podManagementPolicy"] == "Parallel", "OrderedReady deadlocks after a full outage"
c = sts["spec"]["template"]["spec"]["containers"][0]
ports = {p["name"] for p in c["ports"]}
for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
    g = c[probe]["httpGet"]
    assert g["path"] == "/health" and g["port"] in ports, probe
script = "\n".join(c["args"])
assert 'ordinal" = 0' in script and "halyard-0." in script, "bootstrap by ordinal"
assert "exec /usr/local/bin/halyard-entrypoint" in script
env = {e["name"] for e in c["env"]}
assert {"POD_NAME", "POD_NAMESPACE", "HALYARD_HTTP"} <= env
assert any(p == "/var/lib/halyard" for p in (m["mountPath"] for m in c["volumeMounts"]))
print("   manifest: headless service, Parallel, probes on /health, bootstrap by ordinal")
PY
ok "manifest semantics"

step "compose files"
if docker compose version >/dev/null 2>&1; then compose_cmd=(docker compose); else compose_cmd=(docker-compose); fi
for n in 3 5; do
  out=$("${compose_cmd[@]}" -f "$root/deploy/docker/compose-$n.yml" config 2>&1) || { echo "$out" >&2; fail "compose-$n.yml"; }
  services=$(echo "$out" | "$py" -c 'import sys, yaml; d = yaml.safe_load(sys.stdin); print(len(d["services"]), sum(1 for s in d["services"].values() if not s["environment"].get("HALYARD_PEERS")))')
  [ "$services" = "$n 1" ] || fail "compose-$n.yml: want $n members of which 1 creates, got $services"
done
ok "docker compose config: compose-3.yml (3 members), compose-5.yml (5 members), one creator each"

step "passed"
echo "configs: $passed passed, 0 failed"
