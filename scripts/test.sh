#!/usr/bin/env bash
# The whole Halyard test suite: formatting, lints, the fault suite (real members in network
# namespaces, with the broken mode that proves the checker can fail), then every unit, property,
# differential and multi-process test with the real OVS/OVN tools. Installs what it needs first.
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Cache the build outside the clone so repeated runs (and CI on the same machine) reuse it.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== fault suite (quick)"
bash tests/faults/run.sh --quick
echo "== fault suite, broken server mode: the checker must report anomalies"
bash tests/faults/run.sh --expect-anomalies --unsafe-ack-before-commit
echo "== cargo test"
cargo test --workspace --no-fail-fast 2>&1 | tee "${TMPDIR:-/tmp}/halyard-test.log"
