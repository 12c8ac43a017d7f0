//! The OVN Northbound transactions the workloads send, shaped like what `ovn-nbctl` sends
//! (docs/ovsdb-protocol.md section 8.1): `ls-add` inserts a Logical_Switch; `lsp-add` mutates the
//! switch's `ports` with the named UUID of the port it inserts in the same transaction (a
//! Logical_Switch_Port is not a root table, so an unreferenced port would be garbage-collected).

use serde_json::{json, Value};

/// `ls-add NAME`.
pub fn ls_add(name: &str) -> Vec<Value> {
    vec![
        json!({"op": "insert", "table": "Logical_Switch", "row": {"name": name}, "uuid-name": "ls"}),
    ]
}

/// The ops of `lsp-add SWITCH PORT -- lsp-set-addresses PORT MAC IP`, with the switch found by
/// its `_uuid` (what nbctl does after reading its monitor).
pub fn lsp_add(switch_uuid: &str, port: &str, n: u64) -> Vec<Value> {
    let mac = format!(
        "0a:00:{:02x}:{:02x}:{:02x}:{:02x}",
        (n >> 24) & 0xff,
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    );
    let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    vec![
        json!({"op": "mutate", "table": "Logical_Switch", "where": [["_uuid", "==", ["uuid", switch_uuid]]],
               "mutations": [["ports", "insert", ["set", [["named-uuid", "lsp"]]]]]}),
        json!({"op": "insert", "table": "Logical_Switch_Port",
               "row": {"name": port, "addresses": format!("{mac} {ip}")}, "uuid-name": "lsp"}),
    ]
}

/// One transaction of the bulk load: a switch and its `ports` ports, inserted together.
pub fn switch_with_ports(switch: &str, ports: u64, first: u64) -> Vec<Value> {
    let mut ops = Vec::with_capacity(ports as usize + 1);
    let mut refs = Vec::with_capacity(ports as usize);
    for i in 0..ports {
        let n = first + i;
        let name = format!("p{n}");
        let mac = format!(
            "0a:01:{:02x}:{:02x}:{:02x}:{:02x}",
            (n >> 24) & 0xff,
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        );
        let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
        ops.push(json!({"op": "insert", "table": "Logical_Switch_Port",
                        "row": {"name": format!("{switch}-{name}"), "addresses": format!("{mac} {ip}")},
                        "uuid-name": format!("{name}")}));
        refs.push(json!(["named-uuid", name]));
    }
    ops.push(json!({"op": "insert", "table": "Logical_Switch",
                    "row": {"name": switch, "ports": ["set", refs]}}));
    ops
}

/// `select` of a port by name or by row UUID (read-only).
pub fn select_port(by: &PortKey) -> Vec<Value> {
    let cond = match by {
        PortKey::Name(n) => json!(["name", "==", n]),
        PortKey::Uuid(u) => json!(["_uuid", "==", ["uuid", u]]),
    };
    vec![
        json!({"op": "select", "table": "Logical_Switch_Port", "where": [cond],
                "columns": ["name", "addresses", "up"]}),
    ]
}

pub enum PortKey {
    Name(String),
    Uuid(String),
}

/// The first error in a `transact` result array, if any (a failed operation, or the extra
/// element a commit-time failure appends).
pub fn txn_error(result: &Value) -> Option<String> {
    let Some(items) = result.as_array() else {
        return Some(format!("transact result is not an array: {result}"));
    };
    items
        .iter()
        .find(|r| r.get("error").is_some_and(|e| !e.is_null()))
        .map(|r| r.to_string())
}

/// The UUID string of the row inserted by the operation at `index` of a successful result.
pub fn inserted_uuid(result: &Value, index: usize) -> Option<String> {
    result
        .get(index)?
        .get("uuid")?
        .get(1)?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_uuids_are_read_from_results() {
        let ok = json!([{"count": 1}, {"uuid": ["uuid", "0b4c8f1e-58f3-4a86-9a0b-9b3f2d3c5a11"]}]);
        assert_eq!(txn_error(&ok), None);
        assert_eq!(
            inserted_uuid(&ok, 1).as_deref(),
            Some("0b4c8f1e-58f3-4a86-9a0b-9b3f2d3c5a11")
        );
        let failed = json!([{"count": 1}, {"uuid": ["uuid", "x"]}, {"error": "constraint violation", "details": "d"}]);
        assert!(txn_error(&failed).unwrap().contains("constraint violation"));
        assert!(txn_error(&json!({"error": "x"})).is_some());
    }

    #[test]
    fn a_bulk_transaction_references_every_port_it_inserts() {
        let ops = switch_with_ports("sw7", 3, 700);
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[3]["row"]["ports"][1].as_array().unwrap().len(), 3);
        assert_eq!(ops[0]["row"]["name"], "sw7-p700");
    }
}
