#!/usr/bin/env bash
# The whole Halyard test suite: formatting, lints, unit/property/differential tests, and the
# multi-process tests with the real OVN tools. Installs what it needs first.
#   scripts/test.sh            everything CI runs
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
echo "== cargo test"
cargo test --workspace -q 2>&1 | tee "${TMPDIR:-/tmp}/halyard-test.log"
