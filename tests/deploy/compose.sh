#!/usr/bin/env bash
# The Docker deployment, end to end: builds the image (deploy/docker/build-image.sh: a debootstrapped
# base, no registry), brings up deploy/docker/compose-3.yml, and checks with the real ovn-nbctl,
# through each container's published loopback port, that
#   - a switch created through m1 is seen through m2 and m3, a port added through m2 through m3;
#   - every container reports healthy (its HEALTHCHECK asks /health);
#   - with m2 stopped, m1 and m3 stay healthy and take writes and reads;
#   - m2, started again, catches up;
#   - compose-5.yml brings up one healthy 5-voter cluster;
#   - the Kubernetes StatefulSet's bootstrap (its own command and env, pods as containers under
#     their DNS names) forms one cluster, and a deleted halyard-0 recreated on its volume rejoins it.
# Tears everything down on exit (containers, network, volumes, the test's image tag).
#   HALYARD_BIN=path   the binary to put in the image (default: cargo build --release -p halyard)
#   KEEP=1             leave the cluster running on failure, to look at it
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
start=$(date +%s)
step() { echo "== compose [$(($(date +%s) - start))s] $*"; }
fail() { echo "compose: FAIL: $*" >&2; exit 1; }

bash "$root/tests/deploy/install-deps.sh"
command -v ovn-nbctl >/dev/null || bash "$root/scripts/install-deps.sh"
docker info >/dev/null 2>&1 || fail "no Docker engine (docker info failed)"
if docker compose version >/dev/null 2>&1; then compose_cmd=(docker compose); else compose_cmd=(docker-compose); fi
# docker-compose v1 gives up on a slow engine after 60 s; the machine may be loaded.
export COMPOSE_HTTP_TIMEOUT=300 DOCKER_CLIENT_TIMEOUT=300

# Unique names: several runs (and other agents' containers) may share the engine.
project=halyard-deploy-$$
export HALYARD_IMAGE=halyard:deploy-test-$$
compose() { "${compose_cmd[@]}" -p "$project" -f "$root/deploy/docker/compose-3.yml" "$@"; }
# Empty host ports: Docker picks free ones (no race with other tests picking ports).
for i in 1 2 3; do export "HALYARD_M${i}_PORT=" "HALYARD_M${i}_HTTP="; done

cleanup() {
  rc=$?
  if [ $rc != 0 ]; then
    echo "compose: failed after $(($(date +%s) - start))s; container logs:" >&2
    compose logs --no-color --tail 40 >&2 2>&1 || true
    if [ "${KEEP:-}" = 1 ]; then
      echo "compose: KEEP=1: left running; remove with: ${compose_cmd[*]} -p $project -f deploy/docker/compose-3.yml down -v; docker rmi $HALYARD_IMAGE" >&2
      return
    fi
  fi
  compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  docker rmi "$HALYARD_IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "building the image"
IMAGE=$HALYARD_IMAGE bash "$root/deploy/docker/build-image.sh"

step "starting m1 m2 m3"
compose up -d >/dev/null 2>&1 || { compose up -d; fail "compose up"; }
declare -A port http
# Docker picks the host ports at each container start: look them up again after a restart.
ports() {
  local m=$1
  port[$m]=$(compose port $m 6641 | tail -1 | sed 's/.*://')
  http[$m]=$(compose port $m 8080 | tail -1 | sed 's/.*://')
  [ -n "${port[$m]}" ] && [ -n "${http[$m]}" ] || fail "no published ports for $m"
  echo "   $m: ovsdb tcp:127.0.0.1:${port[$m]}, http 127.0.0.1:${http[$m]}"
}
for m in m1 m2 m3; do ports $m; done
db() { echo "tcp:127.0.0.1:${port[$1]}"; }
nbctl() { local m=$1; shift; ovn-nbctl --timeout=30 --db="$(db "$m")" "$@"; }
health() { curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${http[$1]}/health" || true; }

# Waits (bounded) until every named member answers /health with 200 and Docker says healthy.
wait_healthy() {
  local deadline=$(($(date +%s) + $1)); shift
  local m
  for m in "$@"; do
    until [ "$(health $m)" = 200 ] &&
      [ "$(docker inspect -f '{{.State.Health.Status}}' "$(compose ps -q $m)")" = healthy ]; do
      [ "$(date +%s)" -lt "$deadline" ] || {
        curl -s -m 5 "http://127.0.0.1:${http[$m]}/health" >&2 || true
        fail "$m not healthy in time"
      }
      sleep 1
    done
  done
}
# `halyard status --json` seen from the member in CONTAINER, piped through a Python expression on
# `s` (status exits 2 while a member is down or lagging: only its JSON matters here).
status_of() { # CONTAINER EXPRESSION
  { docker exec "$1" halyard status --control /run/halyard/halyard.ctl --json 2>/dev/null || true; } |
    "$venv/bin/python" -c "import json, sys; s = json.load(sys.stdin); print($2)" 2>/dev/null
}
# Waits (bounded) until the member in CONTAINER reports a leader other than DEAD_ADDR. /health may
# still say 200 for an election timeout after the leader dies, and ovn-nbctl gives up at once on a
# member that has lost its leader, so a test that stops a member waits for this first.
wait_new_leader() {
  local container=$1 dead=$2 deadline=$(($(date +%s) + $3)) leader
  until leader=$(status_of "$container" '(s.get("leader") or {}).get("address", "")') &&
    [ -n "$leader" ] && [ "$leader" != "$dead" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "no leader other than $dead seen from $container in time"
    sleep 0.5
  done
  echo "   leader now $leader"
}
venv=${HALYARD_DEPLOY_VENV:-$HOME/.cache/halyard-deploy-venv}
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate; }

step "waiting for all three to be healthy"
wait_healthy 180 m1 m2 m3

# Polls (bounded) until a read through another member shows a write. A write acknowledged
# through one member should be visible through any other at once (linearizable reads), but
# ovn-nbctl reads through monitor_cond_since, whose initial reply a follower can serve from
# before the write (seen in about 1 of 15 tries; reported to the lead): that is the business of
# the cluster tests (crates/halyard/tests/cluster_reads.rs), not of the deployment, so this test
# only asks that the write arrives within seconds.
eventually() { # SECONDS DESCRIPTION COMMAND...
  local deadline=$(($(date +%s) + $1)) what=$2; shift 2
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what"
    sleep 0.5
  done
}
has_switch() { nbctl "$1" ls-list | grep -w "$2" >/dev/null; }
has_port() { nbctl "$1" lsp-list "$2" | grep -w "$3" >/dev/null; }
addresses_are() { [ "$(nbctl "$1" lsp-get-addresses "$2")" = "$3" ]; }
switches_are() { [ "$(nbctl "$1" ls-list | awk '{print $2}' | tr -d '()' | sort | tr '\n' ' ')" = "$2" ]; }

step "ovn-nbctl through each member's published port"
nbctl m1 ls-add sw0
for m in m2 m3; do
  eventually 30 "sw0 created through m1 not seen through $m" has_switch $m sw0
done
nbctl m2 lsp-add sw0 sw0-port1
eventually 30 "port added through m2 not seen through m3" has_port m3 sw0 sw0-port1
nbctl m3 lsp-set-addresses sw0-port1 "00:00:00:00:00:01 10.0.0.1"
eventually 30 "addresses set through m3 not seen through m1" addresses_are m1 sw0-port1 "00:00:00:00:00:01 10.0.0.1"

step "stopping m2"
compose stop -t 10 m2 >/dev/null 2>&1
[ "$(docker inspect -f '{{.State.Running}}' "$(compose ps -q m2)")" = false ] || fail "m2 still running"
ovsdb-client --timeout=3 list-dbs "$(db m2)" >/dev/null 2>&1 && fail "m2's port still answers"
wait_new_leader "$(compose ps -q m1)" m2:6643 60
wait_healthy 60 m1 m3
nbctl m1 ls-add sw1
nbctl m3 ls-add sw2
nbctl m3 lsp-add sw1 sw1-port1
for m in m1 m3; do
  eventually 30 "$m does not list sw0 sw1 sw2 with m2 down" switches_are $m "sw0 sw1 sw2 "
  eventually 30 "$m does not see sw1-port1" has_port $m sw1 sw1-port1
done

step "starting m2 again: it catches up"
compose start m2 >/dev/null 2>&1
ports m2
wait_healthy 120 m2
eventually 30 "m2 did not catch up" switches_are m2 "sw0 sw1 sw2 "

compose down -v -t 5 >/dev/null 2>&1

step "compose-5.yml: five members, one cluster"
for i in 1 2 3 4 5; do export "HALYARD_M${i}_PORT=" "HALYARD_M${i}_HTTP="; done
compose() { "${compose_cmd[@]}" -p "$project" -f "$root/deploy/docker/compose-5.yml" "$@"; }
compose up -d >/dev/null 2>&1 || { compose up -d; fail "compose-5 up"; }
for m in m1 m2 m3 m4 m5; do ports $m; done
wait_healthy 180 m1 m2 m3 m4 m5
voters=$(status_of "$(compose ps -q m5)" 's["healthy_voters"]')
[ "$voters" = 5 ] || fail "compose-5: $voters healthy voters, not 5"
nbctl m5 ls-add five
eventually 30 "switch created through m5 not seen through m4" has_switch m4 five
compose down -v -t 5 >/dev/null 2>&1

# The Kubernetes StatefulSet, as far as Docker can play it: three containers named like its pods,
# each reachable under its pod's DNS name (a network alias), started with the manifest's own
# command, args and env; /health is what its readiness probe asks. Then halyard-0 is deleted and
# recreated on its volume (a rescheduled pod keeps its PVC): it must rejoin as itself, not create
# a second cluster.
step "Kubernetes StatefulSet bootstrap, played with Docker"
k8s=halyard-k8s-$$
spec=$(mktemp -d "${TMPDIR:-/tmp}/halyard-k8s.XXXXXX")
"$venv/bin/python" - "$root/deploy/kubernetes/halyard.yaml" "$spec" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sts = next(d for d in docs if d["kind"] == "StatefulSet")
c = sts["spec"]["template"]["spec"]["containers"][0]
out = sys.argv[2]
open(f"{out}/command", "w").write("\n".join(c["command"] + c["args"]))
with open(f"{out}/env", "w") as f:
    for e in c["env"]:
        if "value" in e:
            f.write(f"{e['name']}={e['value']}\n")
        elif e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace":
            f.write(f"{e['name']}=default\n")
        # metadata.name (POD_NAME) is set per pod by the caller.
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
probe = c["readinessProbe"]["httpGet"]
open(f"{out}/probe", "w").write(f"{ports[probe['port']]} {probe['path']}\n")
open(f"{out}/ovsdb", "w").write(f"{ports['ovsdb']}\n")
open(f"{out}/replicas", "w").write(f"{sts['spec']['replicas']}\n")
PY
read -r probe_port probe_path <"$spec/probe"
ovsdb_port=$(cat "$spec/ovsdb")
replicas=$(cat "$spec/replicas")
[ "$(sed -n 1p "$spec/command")" = /bin/bash ] && [ "$(sed -n 2p "$spec/command")" = -c ] ||
  fail "the StatefulSet's command is not /bin/bash -c SCRIPT"
script=$(sed -n '3,$p' "$spec/command")
k8s_cleanup() {
  local i
  for i in $(seq 0 $((replicas - 1))); do docker rm -f "$k8s-$i" >/dev/null 2>&1 || true; done
  for i in $(seq 0 $((replicas - 1))); do docker volume rm "$k8s-data-$i" >/dev/null 2>&1 || true; done
  docker network rm "$k8s" >/dev/null 2>&1 || true
  rm -rf "$spec"
}
trap 'k8s_cleanup; cleanup' EXIT
docker network create "$k8s" >/dev/null
pod() { # ORDINAL: create and start pod halyard-ORDINAL on its volume
  local i=$1
  docker run -d --name "$k8s-$i" --hostname "halyard-$i" --network "$k8s" \
    --network-alias "halyard-$i.halyard.default.svc.cluster.local" \
    --env-file "$spec/env" -e "POD_NAME=halyard-$i" \
    -v "$k8s-data-$i:/var/lib/halyard" -p "127.0.0.1::$ovsdb_port" -p "127.0.0.1::$probe_port" \
    --entrypoint /bin/bash "$HALYARD_IMAGE" -c "$script" >/dev/null
  port[halyard-$i]=$(docker port "$k8s-$i" "$ovsdb_port" | head -1 | sed 's/.*://')
  http[halyard-$i]=$(docker port "$k8s-$i" "$probe_port" | head -1 | sed 's/.*://')
}
ready() { # the readiness probe
  [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${http[$1]}$probe_path" || true)" = 200 ]
}
wait_ready() {
  local deadline=$(($(date +%s) + $1)) p; shift
  for p in "$@"; do
    until ready "$p"; do
      [ "$(date +%s)" -lt "$deadline" ] || {
        docker logs --tail 30 "$k8s-${p#halyard-}" >&2 || true
        fail "$p not ready in time"
      }
      sleep 1
    done
  done
}
pods=()
for i in $(seq 0 $((replicas - 1))); do pod "$i"; pods+=("halyard-$i"); done
wait_ready 180 "${pods[@]}"
nbctl halyard-0 ls-add k8s-sw
eventually 30 "switch created through halyard-0 not seen through the last pod" has_switch "halyard-$((replicas - 1))" k8s-sw
members=$(status_of "$k8s-0" 'len(s["members"])' || echo "?")
[ "$members" = "$replicas" ] || fail "halyard status through halyard-0 shows $members members, not $replicas"
echo "   $replicas pods ready, one cluster of $members members"

step "deleting pod halyard-0 and recreating it on its volume"
cluster_id=$(status_of "$k8s-1" 's["cluster_id"]')
[ -n "$cluster_id" ] || fail "no cluster id from halyard-1"
docker rm -f "$k8s-0" >/dev/null
wait_new_leader "$k8s-1" "halyard-0.halyard.default.svc.cluster.local:6643" 60
wait_ready 60 halyard-1 halyard-2
nbctl halyard-1 ls-add k8s-sw2
pod 0
wait_ready 120 halyard-0
eventually 30 "recreated halyard-0 did not catch up" has_switch halyard-0 k8s-sw2
again=$(status_of "$k8s-0" 's["cluster_id"]')
[ "$again" = "$cluster_id" ] || fail "recreated halyard-0 is in cluster $again, not $cluster_id"
docker logs "$k8s-0" 2>&1 | grep "member found in" >/dev/null || fail "recreated halyard-0 did not reuse its data"

step "passed"
echo "compose: 3 passed, 0 failed"
