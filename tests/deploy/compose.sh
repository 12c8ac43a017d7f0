#!/usr/bin/env bash
# The Docker deployment, end to end: builds the image (deploy/docker/build-image.sh: a debootstrapped
# base, no registry), brings up deploy/docker/compose-3.yml, and checks with the real ovn-nbctl,
# through each container's published loopback port, that
#   - a switch created through m1 is seen through m2 and m3, a port added through m2 through m3;
#   - every container reports healthy (its HEALTHCHECK asks /health);
#   - with m2 stopped, m1 and m3 stay healthy and take writes and reads;
#   - m2, started again, catches up.
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
step "waiting for all three to be healthy"
wait_healthy 180 m1 m2 m3

step "ovn-nbctl through each member's published port"
nbctl m1 ls-add sw0
for m in m2 m3; do
  nbctl $m ls-list | grep -qw sw0 || fail "sw0 created through m1 not seen through $m"
done
nbctl m2 lsp-add sw0 sw0-port1
nbctl m3 lsp-list sw0 | grep -qw sw0-port1 || fail "port added through m2 not seen through m3"
nbctl m3 lsp-set-addresses sw0-port1 "00:00:00:00:00:01 10.0.0.1"
[ "$(nbctl m1 lsp-get-addresses sw0-port1)" = "00:00:00:00:00:01 10.0.0.1" ] ||
  fail "addresses set through m3 not seen through m1"

step "stopping m2"
compose stop -t 10 m2 >/dev/null 2>&1
[ "$(docker inspect -f '{{.State.Running}}' "$(compose ps -q m2)")" = false ] || fail "m2 still running"
ovsdb-client --timeout=3 list-dbs "$(db m2)" >/dev/null 2>&1 && fail "m2's port still answers"
wait_healthy 60 m1 m3
nbctl m1 ls-add sw1
nbctl m3 ls-add sw2
nbctl m3 lsp-add sw1 sw1-port1
for m in m1 m3; do
  [ "$(nbctl $m ls-list | awk '{print $2}' | tr -d '()' | sort | tr '\n' ' ')" = "sw0 sw1 sw2 " ] ||
    fail "$m does not list sw0 sw1 sw2 with m2 down"
  nbctl $m lsp-list sw1 | grep -qw sw1-port1 || fail "$m does not see sw1-port1"
done

step "starting m2 again: it catches up"
compose start m2 >/dev/null 2>&1
ports m2
wait_healthy 120 m2
[ "$(nbctl m2 ls-list | awk '{print $2}' | tr -d '()' | sort | tr '\n' ' ')" = "sw0 sw1 sw2 " ] ||
  fail "m2 did not catch up"

step "passed"
echo "compose: 1 passed, 0 failed"
