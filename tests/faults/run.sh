#!/usr/bin/env bash
# The Halyard fault suite (issue 6): builds `halyard` and `halyard-faults`, runs the suite with
# every member in its own network namespace (needs root), and removes every process and
# namespace it made, even when interrupted or failing.
#
#   tests/faults/run.sh [--quick]                   short run (CI): every fault once, both workloads
#   tests/faults/run.sh --soak SECONDS              long run with random faults
#   tests/faults/run.sh --members 5 ...             five members instead of three
#   tests/faults/run.sh --expect-anomalies --unsafe-ack-before-commit
#                                                   broken mode: succeeds only if the checker
#                                                   reports anomalies (shows the suite can fail)
# Other options go to halyard-faults (see `halyard-faults --help`). HALYARD_BIN=path tests a
# given binary instead of building one.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}

expect_anomalies=0
args=()
for a in "$@"; do
  if [ "$a" = --expect-anomalies ]; then expect_anomalies=1; else args+=("$a"); fi
done

if [ "$(id -u)" != 0 ]; then
  echo "tests/faults/run.sh: needs root (network namespaces, iptables)" >&2
  exit 2
fi
if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then
  apt-get update -q >/dev/null && apt-get install -y -q iptables iproute2 >/dev/null
fi

# One cargo invocation: building the packages separately would unify features differently and
# rebuild shared dependencies twice.
if [ -z "${HALYARD_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p halyard -p halyard-faults)
  HALYARD_BIN=$CARGO_TARGET_DIR/debug/halyard
else
  (cd "$root" && cargo build -q -p halyard-faults)
fi

work=$(mktemp -d /tmp/halyard-faults.XXXXXX)
tag=$(printf '%04x' $(( $$ % 65536 )))
# Private copies: a concurrent build must not replace a binary while members run it.
cp "$HALYARD_BIN" "$work/halyard"
cp "$CARGO_TARGET_DIR/debug/halyard-faults" "$work/halyard-faults"

cleanup() {
  # Only our own processes: a pid from our list that now runs our copy of halyard.
  if [ -f "$work/run/pids" ]; then
    while read -r pid; do
      if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$work/halyard" ]; then
        kill -CONT "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$work/run/pids"
  fi
  for ns in $(ip netns list | awk -v p="hfx-$tag-" 'index($1, p) == 1 {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$work/halyard" "$work/halyard-faults"
}
trap cleanup EXIT

# In the background so a signal reaches this script at once: it is passed on to the suite, which
# stops its members and removes its namespaces itself (cleanup above catches what it missed).
"$work/halyard-faults" --halyard "$work/halyard" --tag "$tag" --workdir "$work/run" "${args[@]}" &
fpid=$!
on_signal() {
  kill -TERM "$fpid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
  exit 130
}
trap on_signal INT TERM
set +e
wait "$fpid"
rc=$?
set -e
# Keep logs and the history; drop the members' data directories unless the run failed.
if [ "$rc" = 0 ]; then rm -rf "$work"/run/m*/; fi
# Messages of this script go to stderr: stdout ends with the suite's summary line.
echo "logs and history: $work/run" >&2
if [ "$expect_anomalies" = 1 ]; then
  if [ "$rc" = 1 ]; then
    echo "broken mode: anomalies reported, as expected" >&2
    exit 0
  fi
  echo "broken mode: expected anomalies (exit status 1), got exit status $rc" >&2
  exit 1
fi
exit "$rc"
