#!/usr/bin/env bash
# Installs what Halyard's tests need on a fresh Debian machine: the real Open vSwitch / OVN tools
# (the oracle every test compares against), protoc for the gRPC definitions, and the Python
# client libraries used by the ovsdbapp tests. Idempotent; quiet when everything is present.
set -euo pipefail
need=()
command -v ovsdb-server >/dev/null || need+=(openvswitch-common openvswitch-switch)
command -v ovn-nbctl >/dev/null || need+=(ovn-central ovn-common)
[ -f /usr/share/ovn/ovn-nb.ovsschema ] || need+=(ovn-common)
command -v protoc >/dev/null || need+=(protobuf-compiler)
# A real hypervisor in the end-to-end tests: ovn-controller with ovs-vswitchd (userspace datapath).
command -v ovn-controller >/dev/null || need+=(ovn-host)
command -v ip >/dev/null || need+=(iproute2)
# The TLS tests make certificates with ovs-pki (openvswitch-common) and probe with openssl.
command -v ovs-pki >/dev/null || need+=(openvswitch-common)
command -v openssl >/dev/null || need+=(openssl)
python3 -c 'import ovs' 2>/dev/null || need+=(python3-openvswitch)
python3 -c 'import ovsdbapp' 2>/dev/null || need+=(python3-ovsdbapp)
/usr/bin/python3 -c 'import ovsdbapp' 2>/dev/null || need+=(python3-ovsdbapp)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "install-deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's openvswitch-switch starts a system ovsdb-server/vswitchd on install; the tests start
# their own servers and never need the system ones.
