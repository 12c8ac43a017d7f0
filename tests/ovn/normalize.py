#!/usr/bin/env python3
"""Normalises OVN tool output so two servers' answers to the same script can be compared.

  normalize.py show < `ovn-nbctl show`      UUIDs replaced, sibling blocks sorted (the order of
                                            ports/NATs follows their random UUIDs)
  normalize.py dump < `ovsdb-client -f json dump`
                                            per table: rows with _uuid/_version dropped, every UUID
                                            replaced by what it refers to (table and name when the
                                            row has one), rows sorted
"""
import json
import re
import sys

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def show(text):
    lines = [UUID.sub("<uuid>", line.rstrip()) for line in text.splitlines() if line.strip()]

    def block(i, indent):
        """Parses lines[i:] at `indent`; returns (sorted list of rendered blocks, next index)."""
        out = []
        while i < len(lines):
            depth = len(lines[i]) - len(lines[i].lstrip())
            if depth < indent:
                break
            head = lines[i]
            children, i = block(i + 1, depth + 1)
            out.append("\n".join([head] + children))
        return sorted(out), i

    blocks, _ = block(0, 0)
    return "\n".join(blocks) + "\n"


def dump(text):
    # ovsdb-client -f json dump prints one JSON document per table.
    decoder = json.JSONDecoder()
    tables, pos = [], 0
    text = text.strip()
    while pos < len(text):
        doc, end = decoder.raw_decode(text, pos)
        tables.append(doc)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    names = {}
    for t in tables:
        cols = t["headings"]
        for row in t["data"]:
            rec = dict(zip(cols, row))
            uuid = rec.get("_uuid", ["uuid", None])[1]
            label = t["caption"].replace(" table", "")
            if isinstance(rec.get("name"), str) and rec["name"]:
                label += ":" + rec["name"]
            names[uuid] = label

    def norm(v):
        if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
            return "->" + names.get(v[1], "?")
        if isinstance(v, list):
            items = [norm(x) for x in v]
            if len(v) == 2 and v[0] in ("set", "map"):
                return [v[0], sorted(items[1], key=json.dumps)]
            return items
        return v

    result = {}
    for t in tables:
        cols = t["headings"]
        rows = []
        for row in t["data"]:
            rec = {c: norm(x) for c, x in zip(cols, row) if c not in ("_uuid", "_version")}
            rows.append(json.dumps(rec, sort_keys=True))
        result[t["caption"]] = sorted(rows)
    return json.dumps(result, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "show"
    sys.stdout.write({"show": show, "dump": dump}[mode](sys.stdin.read()))
