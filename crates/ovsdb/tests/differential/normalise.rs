//! Normalisation of `transact` results so that two servers' answers can be compared even
//! though every row UUID and `_version` is chosen at random (RFC 7047 §5.2.1 leaves them to
//! the server).
//!
//! Rules, applied to a whole scenario at once so that names are stable across transactions:
//! * UUIDs that appear literally in the scenario's requests (caller-chosen row UUIDs, the
//!   all-zero UUID) stay as they are.
//! * The UUID returned by an insert is renamed `<tT.oO>` (transaction T, operation O, both
//!   counted from 1), wherever it appears later, including inside error `details` text.
//! * Any other UUID is renamed `<#N>` in order of first appearance.
//! * `_version` values in selected rows become `<version>`.
//! * Rows of a `select` without `sort` are sorted canonically (their order is unspecified,
//!   §5.2), and so are set elements and map pairs that hold renamed UUIDs (the server sorts
//!   them by the random UUID values).
//! * The two rows named in an index-collision error are put in canonical order (ovsdb-server
//!   names them in hash order, which varies between runs).

#![allow(dead_code)]

use serde_json::Value;
use std::collections::{HashMap, HashSet};

pub const VERSION_PLACEHOLDER: &str = "<version>";

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Byte offsets of every 8-4-4-4-12 hex UUID inside `s`.
fn find_uuids(s: &str) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 36 <= bytes.len() {
        let cand = &bytes[i..i + 36];
        let ok = cand.iter().enumerate().all(|(j, &b)| match j {
            8 | 13 | 18 | 23 => b == b'-',
            _ => is_hex(b),
        });
        let bounded =
            (i == 0 || !is_hex(bytes[i - 1])) && (i + 36 == bytes.len() || !is_hex(bytes[i + 36]));
        if ok && bounded {
            out.push((i, i + 36));
            i += 36;
        } else {
            i += 1;
        }
    }
    out
}

/// Every UUID mentioned anywhere in `v` (lower-cased).
pub fn collect_uuids(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            for (a, b) in find_uuids(s) {
                out.insert(s[a..b].to_ascii_lowercase());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_uuids(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_uuids(x, out)),
        _ => {}
    }
}

struct Namer {
    literal: HashSet<String>,
    names: HashMap<String, String>,
    next_anon: usize,
}

impl Namer {
    fn name_of(&mut self, uuid: &str, assign: bool) -> Option<String> {
        let key = uuid.to_ascii_lowercase();
        if self.literal.contains(&key) {
            return Some(key);
        }
        if let Some(n) = self.names.get(&key) {
            return Some(n.clone());
        }
        if !assign {
            return None;
        }
        self.next_anon += 1;
        let n = format!("<#{}>", self.next_anon);
        self.names.insert(key, n.clone());
        Some(n)
    }

    fn rewrite_str(&mut self, s: &str, assign: bool) -> String {
        let spans = find_uuids(s);
        if spans.is_empty() {
            return s.to_string();
        }
        let mut out = String::new();
        let mut last = 0;
        for (a, b) in spans {
            out.push_str(&s[last..a]);
            out.push_str(
                &self
                    .name_of(&s[a..b], assign)
                    .unwrap_or_else(|| "<?>".into()),
            );
            last = b;
        }
        out.push_str(&s[last..]);
        order_index_collision(&out)
    }

    /// Rewrites UUIDs (assigning anonymous names when `assign`), replaces `_version` values
    /// in rows, and canonically orders sets/maps of UUIDs.
    fn rewrite(&mut self, v: &Value, assign: bool) -> Value {
        match v {
            Value::String(s) => Value::String(self.rewrite_str(s, assign)),
            Value::Array(a) => {
                let mut items: Vec<Value> = a.iter().map(|x| self.rewrite(x, assign)).collect();
                // ["set",[["uuid",..],..]] / ["map",[[["uuid",..],v],..]]: the server orders
                // these by the random UUID, so only the multiset is comparable.
                if items.len() == 2 && (items[0] == "set" || items[0] == "map") {
                    let is_map = items[0] == "map";
                    if let Value::Array(elems) = &mut items[1] {
                        let uuidish = elems.iter().any(|e| {
                            is_uuid_atom(e)
                                || (is_map
                                    && e.as_array()
                                        .and_then(|p| p.first())
                                        .is_some_and(is_uuid_atom))
                        });
                        if uuidish {
                            elems.sort_by_key(|e| e.to_string());
                        }
                    }
                }
                Value::Array(items)
            }
            Value::Object(o) => {
                // Member order on the wire means nothing (protocol doc §1.7); sorting keys
                // makes the row sort key and the golden files independent of it.
                let mut members: Vec<(String, Value)> = o
                    .iter()
                    .map(|(k, x)| {
                        let nx = if k == "_version" && is_uuid_atom(x) {
                            Value::Array(vec!["uuid".into(), VERSION_PLACEHOLDER.into()])
                        } else {
                            self.rewrite(x, assign)
                        };
                        (self.rewrite_str(k, assign), nx)
                    })
                    .collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(members.into_iter().collect())
            }
            other => other.clone(),
        }
    }
}

/// ovsdb-server names the two rows of an index collision ("First row, ... Second row, ...")
/// in hash-table order, which varies from run to run even for fixed UUIDs; only the pair is
/// meaningful, so the two descriptions are put in a canonical order.
fn order_index_collision(s: &str) -> String {
    const FIRST: &str = "  First row, ";
    const SECOND: &str = "  Second row, ";
    if !s.starts_with("Transaction causes multiple rows in ") {
        return s.to_string();
    }
    let (Some(i1), Some(i2)) = (s.find(FIRST), s.find(SECOND)) else {
        return s.to_string();
    };
    if i2 < i1 {
        return s.to_string();
    }
    let (a, b) = (&s[i1 + FIRST.len()..i2], &s[i2 + SECOND.len()..]);
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    format!("{}{FIRST}{a}{SECOND}{b}", &s[..i1])
}

fn is_uuid_atom(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|a| a.len() == 2 && (a[0] == "uuid" || a[0] == "named-uuid"))
}

/// Normalises the results of a whole scenario. `requests[t]` are the ops of transaction t and
/// `results[t]` what the server answered (the `result` array, or any JSON for a top-level
/// error).
pub fn normalise(requests: &[Vec<Value>], results: &[Value]) -> Vec<Value> {
    let mut literal = HashSet::new();
    literal.insert("00000000-0000-0000-0000-000000000000".to_string());
    for ops in requests {
        for op in ops {
            collect_uuids(op, &mut literal);
        }
    }
    let mut namer = Namer {
        literal,
        names: HashMap::new(),
        next_anon: 0,
    };
    // Pass 1: name every insert result, so that rows can be ordered by stable names before
    // any anonymous name is handed out.
    for (t, (ops, res)) in requests.iter().zip(results).enumerate() {
        let Some(res) = res.as_array() else { continue };
        for (o, (op, r)) in ops.iter().zip(res).enumerate() {
            if op.get("op").and_then(Value::as_str) != Some("insert") {
                continue;
            }
            if let Some(u) = r
                .get("uuid")
                .and_then(Value::as_array)
                .and_then(|a| a.get(1))
                .and_then(Value::as_str)
            {
                let key = u.to_ascii_lowercase();
                if !namer.literal.contains(&key) && !namer.names.contains_key(&key) {
                    namer.names.insert(key, format!("<t{}.o{}>", t + 1, o + 1));
                }
            }
        }
    }
    // Pass 2: order unsorted select rows by their content under known names, then rename.
    let mut out = Vec::new();
    for (ops, res) in requests.iter().zip(results) {
        let Some(res) = res.as_array() else {
            out.push(namer.rewrite(res, true));
            continue;
        };
        let mut new_res = Vec::new();
        for (idx, r) in res.iter().enumerate() {
            let op = ops.get(idx);
            let is_unsorted_select = op.is_some_and(|op| {
                op.get("op").and_then(Value::as_str) == Some("select") && op.get("sort").is_none()
            });
            match (is_unsorted_select, r.get("rows").and_then(Value::as_array)) {
                (true, Some(rows)) => {
                    let mut keyed: Vec<(String, &Value)> = rows
                        .iter()
                        .map(|row| (namer.rewrite(row, false).to_string(), row))
                        .collect();
                    keyed.sort_by(|a, b| a.0.cmp(&b.0));
                    let mut obj = r.as_object().cloned().unwrap_or_default();
                    obj.insert(
                        "rows".into(),
                        Value::Array(
                            keyed
                                .iter()
                                .map(|(_, row)| namer.rewrite(row, true))
                                .collect(),
                        ),
                    );
                    new_res.push(namer.rewrite(&Value::Object(obj), true));
                }
                _ => new_res.push(namer.rewrite(r, true)),
            }
        }
        out.push(Value::Array(new_res));
    }
    out
}
