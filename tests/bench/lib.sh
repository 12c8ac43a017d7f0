# Sourced by the benchmark scripts (tests/bench/*.sh): the repository root, the cargo target
# directory, the options they all take, and the reference ovsdb-server cluster script.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}

# bench_options HELP_LINES ARGS...: --skip-build (build=0), --keep (keep=1), -h/--help (prints
# lines HELP_LINES, e.g. '2,12p', of the calling script); anything else is an error.
bench_options() {
  local help=$1 script arg
  script=$(basename "$0")
  shift
  build=1 keep=0
  for arg in "$@"; do
    case $arg in
    --skip-build) build=0 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n "$help" "$0"; exit 0 ;;
    *) echo "$script: unknown option $arg" >&2; exit 2 ;;
    esac
  done
}

# Sets `ref` to ref-cluster.sh: $REF_CLUSTER, else ../shared/tools next to the repository.
find_ref_cluster() {
  ref=${REF_CLUSTER:-$root/../shared/tools/ref-cluster.sh}
  [ -f "$ref" ] || ref=/work/shared/tools/ref-cluster.sh
  [ -f "$ref" ] || { echo "$(basename "$0"): ref-cluster.sh not found (set REF_CLUSTER)" >&2; exit 2; }
}

# sb_bench_setup NAME: what the Southbound benchmarks (storm.sh, condmon.sh) share: installs
# what they need, builds (unless --skip-build), sets `bin`, `bench`, `work` (WORK, else a fresh
# /tmp/halyard-NAME.*) and SB_SCHEMA, raises the file limit, and stops both clusters
# (`$work/h`, `$work/r`) on exit.
sb_bench_setup() {
  bash "$root/scripts/install-deps.sh" >/dev/null
  if [ "$build" = 1 ]; then
    echo "== building halyard and halyard-bench (release)"
    cargo build -q --release -p halyard -p halyard-bench --manifest-path "$root/Cargo.toml"
  fi
  bin=${HALYARD_BIN:-$CARGO_TARGET_DIR/release/halyard}
  bench=${BENCH_BIN:-$CARGO_TARGET_DIR/release/halyard-bench}
  work=${WORK:-$(mktemp -d "/tmp/halyard-$1.XXXXXX")}
  mkdir -p "$work"
  SB_SCHEMA=/usr/share/ovn/ovn-sb.ovsschema
  ulimit -n 65536 2>/dev/null || true
  trap sb_bench_cleanup EXIT
}

sb_bench_cleanup() {
  HALYARD_BIN=$bin bash "$root/scripts/cluster.sh" stop "$work/h" >/dev/null 2>&1 || true
  bash "$ref" stop "$work/r" >/dev/null 2>&1 || true
  [ "$keep" = 1 ] && echo "kept: $work" || rm -rf "$work"
}

# sb_bench NAME DB_LIST PIDS... -- WORKLOAD ARGS...: halyard-bench against the Southbound
# endpoints DB_LIST, reporting the RSS of PIDS, its JSON report in $work/NAME.json.
sb_bench() {
  local name=$1 dbs=$2 args=() p eps
  shift 2
  while [ "$1" != "--" ]; do args+=(--pid "$1"); shift; done
  shift
  IFS=, read -r -a eps <<<"$dbs"
  for p in "${eps[@]}"; do args+=(--db "$p"); done
  "$bench" "${args[@]}" --database OVN_Southbound --timeout 600 --label "$name" --json "$@" \
    >"$work/$name.json"
}
