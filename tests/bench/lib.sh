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
