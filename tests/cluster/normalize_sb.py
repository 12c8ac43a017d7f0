#!/usr/bin/env python3
"""Normalises what ovn-northd wrote into an OVN Southbound database, so that two runs of
ovn-northd on the same Northbound topology (one over Halyard, one over ovsdb-server) compare.

  normalize_sb.py < `ovsdb-client -f json dump REMOTE OVN_Southbound`

Prints Datapath_Binding, Port_Binding, Logical_Flow and Multicast_Group rows, one JSON object
per line, sorted. What ovn-northd itself varies between runs on identical input is replaced:
  - row UUIDs, and references: by what they refer to (datapath and port names, the set of
    datapaths of a Logical_DP_Group);
  - Northbound UUIDs copied into external_ids (logical-switch, logical-router, stage-hint...);
  - datapath and port tunnel keys: ovn-northd allocates them in the order of Northbound rows
    and of a router's `ports` set, which follow random UUIDs (datapath keys were seen to differ
    between two ovsdb-server runs, router port keys between ovsdb-server and Halyard runs):
    dropped, after checking they are unique (per datapath for ports). Multicast-group keys are
    fixed by ovn-northd and kept.
"""
import json
import re
import sys

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TABLES = ("Datapath_Binding", "Port_Binding", "Logical_Flow", "Multicast_Group")


def load(text):
    decoder, pos, tables = json.JSONDecoder(), 0, {}
    text = text.strip()
    while pos < len(text):
        doc, pos = decoder.raw_decode(text, pos)
        while pos < len(text) and text[pos].isspace():
            pos += 1
        rows = [dict(zip(doc["headings"], r)) for r in doc["data"]]
        tables[doc["caption"].replace(" table", "")] = rows
    return tables


def as_map(v):
    assert v[0] == "map", v
    return dict(v[1])


def as_set(v):
    if isinstance(v, list) and v and v[0] == "set":
        return v[1]
    return [v]


def main():
    t = load(sys.stdin.read())
    names = {}
    dp_keys = {}
    for dp in t["Datapath_Binding"]:
        ext = as_map(dp["external_ids"])
        label = "dp:" + ext.get("name", "?")
        names[dp["_uuid"][1]] = label
        dp_keys[dp["tunnel_key"]] = label
    assert len(dp_keys) == len(t["Datapath_Binding"]), "duplicate datapath tunnel keys"
    for g in t.get("Logical_DP_Group", []):
        names[g["_uuid"][1]] = "group:" + ",".join(sorted(names[d[1]] for d in as_set(g["datapaths"])))
    port_keys = {}
    for pb in t["Port_Binding"]:
        names[pb["_uuid"][1]] = "pb:" + pb["logical_port"]
        key = (pb["datapath"][1], pb["tunnel_key"])
        assert key not in port_keys, f"duplicate port tunnel key {key}"
        port_keys[key] = pb["logical_port"]
    for table in ("Chassis", "HA_Chassis_Group", "Gateway_Chassis", "Load_Balancer"):
        for r in t.get(table, []):
            names[r["_uuid"][1]] = f"{table}:{r.get('name', '?')}"

    def norm(v, col=None):
        if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
            return "->" + names.get(v[1], "?")
        if isinstance(v, list) and len(v) == 2 and v[0] == "set":
            return ["set", sorted((norm(x) for x in v[1]), key=json.dumps)]
        if isinstance(v, list) and len(v) == 2 and v[0] == "map":
            items = []
            for k, x in v[1]:
                if k == "stage-hint":  # the first 8 hex digits of a Northbound row's UUID
                    x = "<nb-uuid>"
                items.append([norm(k), norm(x)])
            return ["map", sorted(items, key=json.dumps)]
        if isinstance(v, str):
            return UUID.sub("<uuid>", v)
        return v

    out = []
    for table in TABLES:
        for r in t[table]:
            rec = {"table": table}
            for c, x in r.items():
                if c in ("_uuid", "_version"):
                    continue
                if c == "tunnel_key" and table in ("Datapath_Binding", "Port_Binding"):
                    x = "<key>"
                rec[c] = norm(x, c)
            out.append(json.dumps(rec, sort_keys=True))
    for line in sorted(out):
        print(line)


main()
