//! The correctness items of the single-member suites (waits.rs, bad_input.rs, locks.rs, the
//! engine's duplicate-element and reals tests, the server's malformed-monitor tests) again
//! through two members of one 3-member cluster, each against a real ovsdb-server 3.1 given the
//! same requests (RFC 7047 §4-5 and the ovsdb-server extensions in docs/ovsdb-protocol.md).
//! One cluster and one real server per schema serve every step, to keep the run short.

use std::time::{Duration, Instant};

use halyard_testkit::cluster::*;
use halyard_testkit::single::{canonical, OvsdbServer, RecvError, Rpc};
use serde_json::{json, Value};

#[path = "../../ovsdb/tests/differential/normalise.rs"]
mod normalise;

const NB: &str = "OVN_Northbound";
const TEST_SCHEMA: &str = "crates/ovsdb/tests/differential/test.ovsschema";

fn result_of(c: &mut Rpc, db: &str, ops: &[Value]) -> Value {
    let mut params = vec![json!(db)];
    params.extend(ops.iter().cloned());
    let reply = c.call("transact", Value::Array(params)).expect("reply");
    if reply["error"].is_null() {
        reply["result"].clone()
    } else {
        json!({"rpc-error": reply["error"]})
    }
}

/// Everything `c` receives until it has been quiet for `quiet` (echo probes answered).
fn drain(c: &mut Rpc, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(v) = c.recv(quiet) {
        if v["method"] == "echo" && v["id"] == "echo" {
            let _ = c.send(&json!({"id": "echo", "result": v["params"], "error": null}));
            continue;
        }
        out.push(v);
    }
    out
}

/// Sends `raw` and reads until the peer closes the connection or 3 s pass.
fn replies_until_closed(port: u16, raw: &str) -> (Vec<Value>, bool) {
    let mut c = Rpc::connect(port);
    let _ = c.send_raw(raw.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut replies = Vec::new();
    loop {
        match c.recv(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => replies.push(v),
            Err(RecvError::Timeout) => return (replies, false),
            Err(_) => return (replies, true),
        }
    }
}

/// Duplicate set elements and map keys are `ovsdb error`s (`set contains duplicate`,
/// `map contains duplicate key`), written alternately through members 1 and 2.
fn duplicates(real: &OvsdbServer, ports: [u16; 2]) {
    let txns: Vec<Vec<Value>> = vec![
        vec![
            json!({"op": "insert", "table": "A", "uuid": "a0000000-0000-4000-8000-0000000000d1",
                   "row": {"si": ["set", [1, 2]], "m": ["map", [["a", 1]]]}}),
        ],
        vec![json!({"op": "insert", "table": "A", "row": {"si": ["set", [1, 1]]}})],
        vec![json!({"op": "insert", "table": "A", "row": {"ss": ["set", ["x", "x"]]}})],
        vec![json!({"op": "insert", "table": "A", "row": {"su": ["set", [
            ["uuid", "11111111-1111-1111-1111-111111111111"],
            ["uuid", "11111111-1111-1111-1111-111111111111"]]]}})],
        vec![json!({"op": "insert", "table": "A", "row": {"m": ["map", [["a", 1], ["a", 2]]]}})],
        vec![json!({"op": "update", "table": "A", "where": [], "row": {"si": ["set", [3, 3]]}})],
        vec![
            json!({"op": "mutate", "table": "A", "where": [], "mutations": [["si", "insert", ["set", [2, 2]]]]}),
        ],
        vec![
            json!({"op": "mutate", "table": "A", "where": [], "mutations": [["m", "insert", ["map", [["b", 1], ["b", 2]]]]]}),
        ],
        vec![
            json!({"op": "mutate", "table": "A", "where": [], "mutations": [["m", "delete", ["set", ["a", "a"]]]]}),
        ],
        vec![json!({"op": "select", "table": "A", "where": [["si", "includes", ["set", [1, 1]]]]})],
        vec![
            json!({"op": "wait", "table": "A", "where": [], "until": "==", "rows": [{"si": ["set", [1, 1]]}], "timeout": 0}),
        ],
        vec![
            json!({"op": "select", "table": "A", "where": [], "columns": ["si", "m", "ss", "su"]}),
        ],
    ];
    let mut r = Rpc::connect(real.port);
    let mut members = [Rpc::connect(ports[0]), Rpc::connect(ports[1])];
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    for (i, ops) in txns.iter().enumerate() {
        theirs.push(result_of(&mut r, "Test", ops));
        ours.push(result_of(&mut members[i % 2], "Test", ops));
    }
    let (theirs, ours) = (
        normalise::normalise(&txns, &theirs),
        normalise::normalise(&txns, &ours),
    );
    assert_eq!(
        theirs[1][0]["details"], "set contains duplicate",
        "3.1 itself"
    );
    assert_eq!(
        theirs[4][0]["details"], "map contains duplicate key",
        "3.1 itself"
    );
    for i in 0..txns.len() {
        assert_eq!(
            ours[i],
            theirs[i],
            "duplicates, transaction {i} through member {}: {}",
            i % 2 + 1,
            Value::Array(txns[i].clone())
        );
    }
}

/// Reals: Halyard keeps full precision (a deliberate difference, docs/protocol-notes.md),
/// 3.1 prints 15 significant digits. Written through member 2, read through member 1.
fn reals(real: &OvsdbServer, ports: [u16; 2]) {
    let insert = [json!({"op": "insert", "table": "A",
                         "uuid": "a0000000-0000-4000-8000-0000000000e1",
                         "row": {"r": 123456789012345678.0, "sr": ["set", [0.30000000000000004]]}})];
    let select = [json!({"op": "select", "table": "A",
                         "where": [["_uuid", "==", ["uuid", "a0000000-0000-4000-8000-0000000000e1"]]],
                         "columns": ["r", "sr"]})];
    let mut r = Rpc::connect(real.port);
    assert!(result_of(&mut r, "Test", &insert)[0]["uuid"].is_array());
    let theirs = result_of(&mut r, "Test", &select)[0]["rows"][0].clone();
    let mut m2 = Rpc::connect(ports[1]);
    assert!(result_of(&mut m2, "Test", &insert)[0]["uuid"].is_array());
    let mut m1 = Rpc::connect(ports[0]);
    let ours = result_of(&mut m1, "Test", &select)[0]["rows"][0].clone();
    // Compare the printed forms: serde_json keeps the text's integer/real distinction.
    assert_eq!(
        canonical(&theirs),
        r#"{"r":1.23456789012346e+17,"sr":0.3}"#,
        "3.1 itself"
    );
    assert_eq!(
        canonical(&ours),
        r#"{"r":123456789012345680,"sr":0.30000000000000004}"#
    );
}

/// A `\u0000` escape closes the connection without a reply, as in 3.1, on a member that is
/// not the one read afterwards; nothing is stored.
fn null_escape(real: &OvsdbServer, ports: [u16; 2]) {
    let insert = r#"{"id":1,"method":"transact","params":["OVN_Northbound",{"op":"insert","table":"Logical_Switch","row":{"name":"nul\u0000x"}}]}"#;
    let theirs = replies_until_closed(real.port, insert);
    assert_eq!(theirs, (vec![], true), "3.1 itself");
    let ours = replies_until_closed(ports[1], insert);
    assert_eq!(ours, theirs, "\\u0000 through member 2");
    let select = [
        json!({"op": "select", "table": "Logical_Switch", "where": [["name", "includes", "nul"]]}),
    ];
    for port in [real.port, ports[0], ports[1]] {
        let mut c = Rpc::connect(port);
        let r = result_of(&mut c, NB, &select);
        assert_eq!(r, json!([{"rows": []}]), "port {port}");
    }
}

/// Malformed `monitor` (v1) requests get 3.1's exact answers through a member (params cut
/// short are left out: they crash 3.1, see docs/protocol-notes.md).
fn malformed_monitors(real: &OvsdbServer, port: u16) {
    let forms = [
        json!([NB, null, "not an object"]),
        json!([NB, null, {"Nope": {}}]),
        json!([NB, null, {"Logical_Switch": {"columns": ["nope"]}}]),
        json!([NB, null, {"Logical_Switch": {"columns": "name"}}]),
        json!([NB, null, {"Logical_Switch": {"select": "bad"}}]),
        json!([NB, null, {"Logical_Switch": {"select": {"initial": 1}}}]),
        json!([NB, null, {"Logical_Switch": [{"columns": ["name"]}, 7]}]),
        json!(["Nope", null, {}]),
        json!([NB, null, {}, "extra"]),
    ];
    for (i, params) in forms.iter().enumerate() {
        let (mut r, mut m) = (Rpc::connect(real.port), Rpc::connect(port));
        let theirs = r.call("monitor", params.clone());
        let ours = m.call("monitor", params.clone());
        assert_eq!(ours, theirs, "monitor form {i}: {params}");
    }
}

/// A (member 1) and B (member 2) steal the same lock; A, told `stolen`, unlocks: `{}` as in
/// 3.1, then the rest of the lock protocol as in locks.rs.
fn unlock_after_stolen_steal(real: &OvsdbServer, ports: [u16; 2]) {
    let steps = [
        (0, "steal", "L15"),
        (1, "steal", "L15"),
        (0, "lock", "L15"),
        (0, "unlock", "L15"),
        (0, "unlock", "L15"),
        (0, "lock", "L15"),
        (1, "unlock", "L15"),
        (0, "unlock", "L15"),
    ];
    let transcript = |ports: [u16; 2]| {
        let mut conns = [Rpc::connect(ports[0]), Rpc::connect(ports[1])];
        let mut out = Vec::new();
        for (i, (who, method, name)) in steps.iter().enumerate() {
            conns[*who]
                .send(&json!({"id": i, "method": method, "params": [name]}))
                .unwrap();
            // Long enough for a notification that crosses members through Raft.
            let got: Vec<Vec<Value>> = conns
                .iter_mut()
                .map(|c| drain(c, Duration::from_millis(700)))
                .collect();
            out.push(got);
        }
        out
    };
    let theirs = transcript([real.port, real.port]);
    assert_eq!(
        theirs[3][0],
        vec![json!({"id": 3, "result": {}, "error": null})],
        "3.1 itself"
    );
    let ours = transcript(ports);
    assert_eq!(ours, theirs, "lock transcript through members 1 and 2");
}

/// Two sessions on the same follower: `stolen`/`locked` reach the other session before the
/// reply to the `steal`/`unlock` that caused them, in every round.
fn lock_notification_order_on_a_follower(port: u16) {
    for round in 0..20 {
        let name = format!("order{round}");
        let (mut a, mut b) = (Rpc::connect(port), Rpc::connect(port));
        let reply = a.call("lock", json!([name])).unwrap();
        assert_eq!(reply["result"], json!({"locked": true}));
        for (method, notice) in [("steal", "stolen"), ("unlock", "locked")] {
            b.call(method, json!([name])).unwrap();
            let arrived = a.pump().unwrap();
            assert!(
                arrived.iter().any(|m| m["method"] == notice),
                "round {round}: `{notice}` not yet at the other session when `{method}` was \
                 answered (got {arrived:?})"
            );
        }
    }
}

/// Blocked waits on a follower: they stay blocked (a wait without timeout waits for ever; a
/// wait's own timeout applies to it alone) until a write through another member makes them
/// hold, and are then answered as 3.1 answers them.
fn blocked_waits(real: &OvsdbServer, follower: u16, writer: u16) {
    let unmet = |name: &str, timeout: Option<u64>| {
        let mut op = json!({"op": "wait", "table": "Logical_Switch",
                            "where": [["name", "==", name]], "columns": ["name"],
                            "until": "==", "rows": [{"name": name}]});
        if let Some(t) = timeout {
            op["timeout"] = json!(t);
        }
        op
    };
    let met = |timeout: u64| {
        json!({"op": "wait", "table": "Logical_Switch", "where": [["name", "==", "never"]],
               "columns": ["name"], "until": "==", "rows": [], "timeout": timeout})
    };
    let cases: Vec<(&str, Vec<Value>)> = vec![
        ("w1", vec![unmet("w1", None)]),
        ("w2", vec![unmet("w2", None), met(100)]),
        ("w3", vec![met(0), unmet("w3", Some(60_000))]),
    ];
    let run = |wait_port: u16, write_port: u16, suffix: &str| -> Vec<Value> {
        let mut out = Vec::new();
        for (name, ops) in &cases {
            let name = format!("{name}{suffix}");
            let ops: Vec<Value> = ops
                .iter()
                .map(|op| {
                    let mut op = op.clone();
                    if op["rows"].as_array().is_some_and(|r| !r.is_empty()) {
                        op["where"] = json!([["name", "==", name]]);
                        op["rows"] = json!([{"name": name}]);
                    }
                    op
                })
                .collect();
            let mut w = Rpc::connect(wait_port);
            let mut params = vec![json!(NB)];
            params.extend(ops.iter().cloned());
            w.send(&json!({"id": 1, "method": "transact", "params": params}))
                .unwrap();
            match w.reply_to(&json!(1), Duration::from_millis(1500)) {
                Err(RecvError::Timeout) => {}
                other => panic!("{name} on port {wait_port}: not blocked: {other:?}"),
            }
            let mut writer = Rpc::connect(write_port);
            let r = result_of(
                &mut writer,
                NB,
                &[json!({"op": "insert", "table": "Logical_Switch", "row": {"name": name}})],
            );
            assert!(r[0]["uuid"].is_array(), "{r}");
            let reply = w
                .reply_to(&json!(1), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{name}: no answer after the write: {e:?}"));
            out.push(reply);
        }
        out
    };
    let theirs = run(real.port, real.port, "r");
    let ours = run(follower, writer, "h");
    assert_eq!(ours, theirs, "blocked waits through a follower");
}

#[test]
fn correctness_items_through_two_members_match_ovsdb_server() {
    let test_schema = asset(TEST_SCHEMA);
    let test_schema = test_schema.to_str().unwrap();
    let real_nb = OvsdbServer::start(NB_SCHEMA);
    let real_test = OvsdbServer::start(test_schema);
    let mut cluster = Cluster::start(3, &[NB_SCHEMA, test_schema], &[]);
    let ports = [cluster.members[0].port, cluster.members[1].port];
    let leader = cluster.wait_leader(Duration::from_secs(30));
    // A member that is not the leader among the two used, so requests are forwarded.
    let follower = if leader == 1 { 2 } else { 1 };
    let follower_port = cluster.members[follower - 1].port;
    let other_port = cluster.members[2 - follower].port;

    duplicates(&real_test, ports);
    reals(&real_test, ports);
    null_escape(&real_nb, ports);
    malformed_monitors(&real_nb, ports[1]);
    unlock_after_stolen_steal(&real_nb, ports);
    lock_notification_order_on_a_follower(follower_port);
    blocked_waits(&real_nb, follower_port, other_port);
}
