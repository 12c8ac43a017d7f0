#!/usr/bin/python3
"""Drives one Halyard member with ovsdbapp (Python IDL, leader_only=True as shipped).

  ovsdbapp_nb.py REMOTE PREFIX        (OVSDBAPP_TIMEOUT=seconds, default 30)

Creates a logical switch PREFIX-ls with two ports and a router PREFIX-lr through the ovsdbapp
OVN Northbound API, then reads them back through the same IDL and prints one line per object
(sorted), so the caller can compare with what other members serve. Exits non-zero (with the
reason on stderr) on any failure, including a timeout: against a follower of the real
ovsdb-server cluster the leader-only IDL never connects.
"""
import os
import sys

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.ovn_northbound import impl_idl

remote, prefix = sys.argv[1], sys.argv[2]
TIMEOUT = int(os.environ.get("OVSDBAPP_TIMEOUT", "30"))

idl = connection.OvsdbIdl.from_server(remote, "OVN_Northbound")
# ovs.db.idl.Idl defaults to leader_only=True; say so, since that default is the point.
assert idl.leader_only is True, "the Python IDL is expected to default to leader_only"
conn = connection.Connection(idl, timeout=TIMEOUT)
api = impl_idl.OvnNbApiIdlImpl(conn)

with api.transaction(check_error=True) as txn:
    txn.add(api.ls_add(f"{prefix}-ls"))
    txn.add(api.lr_add(f"{prefix}-lr"))
for i in (1, 2):
    api.lsp_add(f"{prefix}-ls", f"{prefix}-p{i}").execute(check_error=True)
    api.lsp_set_addresses(f"{prefix}-p{i}", [f"50:54:00:00:aa:0{i} 10.9.0.{i}"]).execute(check_error=True)
api.lrp_add(f"{prefix}-lr", f"{prefix}-lrp", "00:00:00:00:aa:ff", ["10.9.0.254/24"]).execute(check_error=True)

lines = []
for ls in api.ls_list().execute(check_error=True):
    if not ls.name.startswith(prefix + "-"):
        continue
    ports = sorted(f"{p.name}={list(p.addresses)}" for p in ls.ports)
    lines.append(f"switch {ls.name} ports {ports}")
for lr in api.lr_list().execute(check_error=True):
    if not lr.name.startswith(prefix + "-"):
        continue
    ports = sorted(f"{p.name}={p.mac},{list(p.networks)}" for p in lr.ports)
    lines.append(f"router {lr.name} ports {ports}")
print("\n".join(sorted(lines)))
conn.stop()
