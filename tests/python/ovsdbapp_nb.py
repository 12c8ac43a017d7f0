#!/usr/bin/python3
"""Drives an OVN Northbound database through ovsdbapp's OVN NB API, the way Neutron does.

  ovsdbapp_nb.py REMOTE write   builds switches, ports, a router, ACLs, port groups, address
                                sets, NAT, routes and a load balancer in a few multi-command
                                transactions, modifies some of it, checks what it reads back
                                through the IDL, then prints a summary (JSON)
  ovsdbapp_nb.py REMOTE read    connects afresh and prints the same summary

The summary names rows instead of showing their UUIDs, so the output for Halyard and for a
real ovsdb-server given the same steps must be identical. Every check fails loudly (non-zero
exit) so a wrong server answer cannot pass silently. Run with /usr/bin/python3 (Debian's
python3-ovsdbapp and python3-openvswitch).
"""
import json
import sys

from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.schema.ovn_northbound import impl_idl

TIMEOUT = 60


def connect(remote):
    # get_schema_helper fetches the schema on its own connection, as Neutron does.
    helper = idlutils.get_schema_helper(remote, "OVN_Northbound")
    helper.register_all()
    idl = connection.OvsdbIdl.from_server(remote, "OVN_Northbound", helper=helper)
    conn = connection.Connection(idl, timeout=TIMEOUT)
    return impl_idl.OvnNbApiIdlImpl(conn)


def check(cond, what):
    if not cond:
        sys.exit("check failed: " + what)


def write(api):
    # One transaction: two switches with ports, a router with two ports.
    with api.transaction(check_error=True) as txn:
        txn.add(api.ls_add("py-sw0", external_ids={"neutron:network_name": "net0"}))
        txn.add(api.ls_add("py-sw1"))
        for i in (1, 2, 3):
            txn.add(api.lsp_add("py-sw0", "py-sw0-p%d" % i,
                                addresses=["fa:16:3e:00:00:0%d 10.0.0.1%d" % (i, i)],
                                port_security=["fa:16:3e:00:00:0%d 10.0.0.1%d" % (i, i)]))
        txn.add(api.lsp_add("py-sw1", "py-sw1-p1", addresses=["unknown"]))
        txn.add(api.lr_add("py-r0"))
        txn.add(api.lrp_add("py-r0", "py-r0-sw0", "fa:16:3e:00:ff:01", ["10.0.0.1/24"]))
        txn.add(api.lrp_add("py-r0", "py-r0-sw1", "fa:16:3e:00:ff:02", ["10.0.1.1/24", "fd00::1/64"]))

    # A second one: router ports on the switches, ACLs, port group, address set, routes, NAT, LB.
    with api.transaction(check_error=True) as txn:
        txn.add(api.lsp_add("py-sw0", "py-sw0-r0", type="router", addresses=["router"],
                            options={"router-port": "py-r0-sw0"}))
        txn.add(api.acl_add("py-sw0", "to-lport", 1001, "ip4 && tcp.dst == 22", "allow-related"))
        txn.add(api.acl_add("py-sw0", "from-lport", 1000, "ip4.src == $py_as", "drop"))
        txn.add(api.address_set_add("py_as", ["10.0.0.11", "10.0.0.12"]))
        txn.add(api.pg_add("py_pg", external_ids={"owner": "py"}))
        txn.add(api.lr_route_add("py-r0", "0.0.0.0/0", "10.0.1.254"))
        txn.add(api.lr_nat_add("py-r0", "snat", "10.0.1.1", "10.0.0.0/24"))
        txn.add(api.lb_add("py-lb", "10.0.0.100:80", ["10.0.0.11:8080", "10.0.0.12:8080"]))

    # Changes after creation, each its own transaction (execute = one transaction).
    ports = {p.name: p for p in api.lsp_list("py-sw0").execute(check_error=True)}
    api.pg_add_ports("py_pg", [ports["py-sw0-p1"].uuid, ports["py-sw0-p2"].uuid]).execute(check_error=True)
    api.pg_acl_add("py_pg", "to-lport", 1002, "outport == @py_pg && ip4", "allow").execute(check_error=True)
    api.lsp_set_addresses("py-sw0-p2", ["fa:16:3e:00:00:22 10.0.0.22"]).execute(check_error=True)
    api.lsp_set_enabled("py-sw1-p1", False).execute(check_error=True)
    api.db_set("Logical_Switch", "py-sw1", ("external_ids", {"owner": "tenant-b"})).execute(check_error=True)
    api.lsp_del("py-sw0-p3").execute(check_error=True)
    api.ls_lb_add("py-sw0", "py-lb").execute(check_error=True)
    api.address_set_add_addresses("py_as", ["10.0.0.13"]).execute(check_error=True)

    # Failures must be reported: adding an existing switch without may_exist raises.
    try:
        api.ls_add("py-sw0").execute(check_error=True, log_errors=False)
        sys.exit("check failed: a duplicate ls_add succeeded")
    except RuntimeError:
        pass


def summary(api):
    out = {}
    for ls in sorted(api.ls_list().execute(check_error=True), key=lambda r: r.name):
        ports = {}
        for p in api.lsp_list(ls.uuid).execute(check_error=True):
            ports[p.name] = {
                "addresses": sorted(p.addresses),
                "port_security": sorted(p.port_security),
                "type": p.type,
                "options": dict(p.options),
                "enabled": list(p.enabled),
            }
        acls = sorted((a.direction, a.priority, a.match, a.action)
                      for a in api.acl_list(ls.uuid).execute(check_error=True))
        out["switch " + ls.name] = {
            "external_ids": dict(ls.external_ids),
            "ports": ports,
            "acls": acls,
            "load_balancers": sorted(lb.name for lb in ls.load_balancer),
        }
    for lr in sorted(api.lr_list().execute(check_error=True), key=lambda r: r.name):
        out["router " + lr.name] = {
            "ports": {p.name: {"mac": p.mac, "networks": sorted(p.networks)}
                      for p in api.lrp_list(lr.uuid).execute(check_error=True)},
            "routes": sorted((r.ip_prefix, r.nexthop)
                             for r in api.lr_route_list(lr.uuid).execute(check_error=True)),
            "nat": sorted((n.type, n.external_ip, n.logical_ip)
                          for n in api.lr_nat_list(lr.uuid).execute(check_error=True)),
        }
    pg = api.pg_get("py_pg").execute(check_error=True)
    out["port_group py_pg"] = {
        "ports": sorted(p.name for p in pg.ports),
        "acls": sorted((a.direction, a.priority, a.match, a.action) for a in pg.acls),
        "external_ids": dict(pg.external_ids),
    }
    aset = api.address_set_get("py_as").execute(check_error=True)
    out["address_set py_as"] = sorted(aset.addresses)
    lb = api.lb_get("py-lb").execute(check_error=True)
    out["load_balancer py-lb"] = {"vips": dict(lb.vips), "protocol": list(lb.protocol)}
    return out


def verify(s):
    """What the write steps must have produced, independent of any server."""
    sw0 = s["switch py-sw0"]
    check(sorted(sw0["ports"]) == ["py-sw0-p1", "py-sw0-p2", "py-sw0-r0"], "py-sw0 ports %s" % sorted(sw0["ports"]))
    check(sw0["ports"]["py-sw0-p2"]["addresses"] == ["fa:16:3e:00:00:22 10.0.0.22"], "p2 addresses")
    check(sw0["ports"]["py-sw0-r0"]["options"] == {"router-port": "py-r0-sw0"}, "router port options")
    check(sw0["external_ids"] == {"neutron:network_name": "net0"}, "sw0 external_ids")
    check(len(sw0["acls"]) == 2, "sw0 acls %s" % sw0["acls"])
    check(sw0["load_balancers"] == ["py-lb"], "sw0 lb")
    sw1 = s["switch py-sw1"]
    check(sw1["external_ids"] == {"owner": "tenant-b"}, "sw1 external_ids")
    check(sw1["ports"]["py-sw1-p1"]["enabled"] == [False], "sw1-p1 disabled")
    r0 = s["router py-r0"]
    check(sorted(r0["ports"]) == ["py-r0-sw0", "py-r0-sw1"], "router ports")
    check(r0["ports"]["py-r0-sw1"]["networks"] == ["10.0.1.1/24", "fd00::1/64"], "lrp networks")
    check(r0["routes"] == [["0.0.0.0/0", "10.0.1.254"]] or r0["routes"] == [("0.0.0.0/0", "10.0.1.254")], "routes")
    check(len(r0["nat"]) == 1, "nat")
    pg = s["port_group py_pg"]
    check(pg["ports"] == ["py-sw0-p1", "py-sw0-p2"], "pg ports %s" % pg["ports"])
    check(len(pg["acls"]) == 1, "pg acls")
    check(s["address_set py_as"] == ["10.0.0.11", "10.0.0.12", "10.0.0.13"], "address set")
    check(s["load_balancer py-lb"]["vips"] == {"10.0.0.100:80": "10.0.0.11:8080,10.0.0.12:8080"}, "lb vips")


def main():
    remote, mode = sys.argv[1], sys.argv[2]
    api = connect(remote)
    if mode == "write":
        write(api)
    s = summary(api)
    verify(s)
    print(json.dumps(s, sort_keys=True, indent=1))
    api.ovsdb_connection.stop()


if __name__ == "__main__":
    main()
