#!/usr/bin/env bash
# Builds the Halyard container image without any image registry:
#   1. halyard-base:bookworm — a minimal Debian bookworm root made with debootstrap from the Debian
#      mirror this machine's apt uses, imported with `docker import`. Cached: skipped when the image
#      exists (delete it with `docker rmi halyard-base:bookworm` to rebuild).
#   2. halyard:latest (or $IMAGE) — deploy/docker/Dockerfile on top of it, with the halyard binary
#      built on this host and the OVN schemas from /usr/share/ovn.
# Usage: deploy/docker/build-image.sh            (builds `cargo build --release -p halyard` first)
#        HALYARD_BIN=path deploy/docker/build-image.sh   (uses that binary as is)
# Needs root (debootstrap) and Debian's debootstrap package (tests/deploy/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base=${BASE_IMAGE:-halyard-base:bookworm}
image=${IMAGE:-halyard:latest}

# The first `deb` mirror of bookworm that apt is configured with (deb822 .sources or one-line lists).
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ && !/debian-security/ {
           if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { split(substr($0, RSTART, RLENGTH), a, /[ \t]+/); print a[2]; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" && $0 ~ / bookworm / && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f"
  done
  return 0
}

if docker image inspect "$base" >/dev/null 2>&1; then
  echo "build-image: $base exists (cached)"
else
  mirror=${DEBIAN_MIRROR:-$(debian_mirror | sed -n 1p)}
  [ -n "$mirror" ] || { echo "build-image: no bookworm mirror found in apt's sources; set DEBIAN_MIRROR" >&2; exit 1; }
  command -v debootstrap >/dev/null || { echo "build-image: debootstrap missing (tests/deploy/install-deps.sh)" >&2; exit 1; }
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/halyard-rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-image: debootstrap bookworm from $mirror (a few minutes, once)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # Trim what a server image never uses; keep apt so the image can be extended.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
  echo "build-image: imported $base"
fi

if [ -n "${HALYARD_BIN:-}" ]; then
  bin=$HALYARD_BIN
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/halyard-target}
  cargo build -q --release -p halyard --manifest-path "$root/Cargo.toml"
  bin=$CARGO_TARGET_DIR/release/halyard
fi
[ -x "$bin" ] || { echo "build-image: no halyard binary at $bin" >&2; exit 1; }

# A small build context: the Dockerfile, the entrypoint, a stripped copy of the binary, schemas.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/halyard-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$here/healthcheck.sh" "$ctx/"
cp "$root/deploy/halyard-member" "$ctx/entrypoint.sh"
cp "$bin" "$ctx/halyard"
strip "$ctx/halyard" 2>/dev/null || true
mkdir "$ctx/schemas"
cp /usr/share/ovn/ovn-nb.ovsschema /usr/share/ovn/ovn-sb.ovsschema "$ctx/schemas/"
# The engine may warn that its legacy builder is deprecated: show the output only on failure.
docker build -q --build-arg "BASE=$base" -t "$image" "$ctx" >"$ctx.log" 2>&1 ||
  { cat "$ctx.log" >&2; rm -f "$ctx.log"; exit 1; }
rm -f "$ctx.log"
echo "build-image: built $image"
