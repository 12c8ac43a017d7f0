//! Monitors through a session: the reply/notification shapes of v1/v2/v3, updates queued
//! before the reply of the transaction that caused them (own and other sessions' writes),
//! `monitor_cond_since` resumption, `monitor_cond_change`, `monitor_cancel`, and `_Server`
//! monitors following status changes.

mod support;

use std::sync::Arc;

use halyard_server::Server;
use serde_json::{json, Value};
use support::{config, connect, Client, TestBackend, TEST_SCHEMA};

fn server() -> (Arc<TestBackend>, Arc<Server>) {
    let b = TestBackend::new(&[TEST_SCHEMA]);
    let s = Arc::new(Server::new(b.clone(), config()).unwrap());
    (b, s)
}

fn only_row(updates: &Value, table: &str) -> (String, Value) {
    let rows = updates[table]
        .as_object()
        .unwrap_or_else(|| panic!("{updates}"));
    assert_eq!(rows.len(), 1, "{updates}");
    let (k, v) = rows.iter().next().unwrap();
    (k.clone(), v.clone())
}

#[tokio::test]
async fn own_write_update_comes_before_the_reply() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    let r = c
        .ok(
            "monitor_cond",
            json!(["T", ["monid", "T"], {"A": [{"columns": ["s", "n"]}]}]),
        )
        .await;
    assert_eq!(r, json!({}));
    let (reply, before) = c
        .call(
            "transact",
            json!(["T", {"op":"insert","table":"A","row":{"s":"x","n":0}}]),
        )
        .await;
    let uuid = reply["result"][0]["uuid"][1].as_str().unwrap().to_string();
    assert_eq!(
        before.len(),
        1,
        "exactly one update2 before the reply: {before:?}"
    );
    let n = &before[0];
    assert_eq!(n["id"], Value::Null);
    assert_eq!(n["method"], json!("update2"));
    assert_eq!(n["params"][0], json!(["monid", "T"]));
    // Default values are left out of `insert`.
    assert_eq!(n["params"][1]["A"][&uuid], json!({"insert": {"s": "x"}}));

    let (_, before) = c
        .call(
            "transact",
            json!(["T", {"op":"update","table":"A","where":[],"row":{"n":5}}]),
        )
        .await;
    assert_eq!(
        before[0]["params"][1]["A"][&uuid],
        json!({"modify": {"n": 5}})
    );
    // A write that changes nothing sends nothing.
    let (_, before) = c
        .call(
            "transact",
            json!(["T", {"op":"update","table":"A","where":[],"row":{"n":5}}]),
        )
        .await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn other_sessions_get_v1_and_v3_updates() {
    let (_b, s) = server();
    let mut w = connect(&s, false);
    w.ok(
        "transact",
        json!(["T", {"op":"insert","table":"A","row":{"s":"old"}}]),
    )
    .await;

    let mut v1 = connect(&s, false);
    let r = v1
        .ok("monitor", json!(["T", null, {"A": {"columns": ["s"]}}]))
        .await;
    let (uuid, row) = only_row(&r, "A");
    assert_eq!(row, json!({"new": {"s": "old"}}));

    let mut v3 = connect(&s, false);
    let zero = "00000000-0000-0000-0000-000000000000";
    let r = v3
        .ok(
            "monitor_cond_since",
            json!(["T", "m3", {"A": [{"columns": ["s"]}]}, zero]),
        )
        .await;
    assert_eq!(r[0], json!(false));
    let last = r[1].as_str().unwrap().to_string();
    assert_ne!(last, zero, "current id of a database with history");
    assert_eq!(r[2]["A"][&uuid], json!({"initial": {"s": "old"}}));

    w.ok(
        "transact",
        json!(["T", {"op":"update","table":"A","where":[],"row":{"s":"new"}}]),
    )
    .await;
    let n = v1.recv().await.unwrap();
    assert_eq!(
        n,
        json!({"id":null,"method":"update","params":[null,{"A":{uuid.clone():{"new":{"s":"new"},"old":{"s":"old"}}}}]})
    );
    let n = v3.recv().await.unwrap();
    assert_eq!(n["method"], json!("update3"));
    assert_eq!(n["params"][0], json!("m3"));
    let txn = n["params"][1].as_str().unwrap().to_string();
    assert_ne!(txn, last);
    assert_eq!(n["params"][2]["A"][&uuid], json!({"modify": {"s": "new"}}));

    // Resuming from the id seen before that write: found, with only the change since.
    let mut again = connect(&s, false);
    let r = again
        .ok(
            "monitor_cond_since",
            json!(["T", "m3", {"A": [{"columns": ["s"]}]}, last]),
        )
        .await;
    assert_eq!(r[0], json!(true));
    assert_eq!(r[1], json!(txn));
    assert_eq!(r[2]["A"][&uuid], json!({"modify": {"s": "new"}}));
    // Resuming from the latest id: found, nothing to send.
    let r = again
        .ok(
            "monitor_cond_since",
            json!(["T", "m4", {"A": [{"columns": ["s"]}]}, txn]),
        )
        .await;
    assert_eq!(r, json!([true, txn, {}]));
}

#[tokio::test]
async fn monitor_errors_change_and_cancel() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    c.ok(
        "transact",
        json!(["T", {"op":"insert","table":"A","row":{"s":"a","n":1}}, {"op":"insert","table":"A","row":{"s":"b","n":2}}]),
    )
    .await;
    let table: Vec<(&str, Value, &str)> = vec![
        ("monitor_cond", json!(["T", "m"]), "invalid parameters"),
        (
            "monitor_cond_since",
            json!(["T", "m", {"A": [{}]}]),
            "invalid parameters",
        ),
        (
            "monitor_cond_since",
            json!(["T", "m", {"A": [{}]}, "nope"]),
            "last-txn-id must be UUID format.",
        ),
    ];
    for (method, params, details) in table {
        let (m, _) = c.call(method, params.clone()).await;
        assert_eq!(
            m["error"]["error"],
            json!("syntax error"),
            "{method} {params}"
        );
        assert_eq!(m["error"]["details"], json!(details), "{method} {params}");
    }
    // Engine errors come back as they are (v1 does not allow `where`).
    let (m, _) = c
        .call("monitor", json!(["T", "m", {"A": {"where": []}}]))
        .await;
    assert_eq!(m["error"]["error"], json!("syntax error"), "{m}");
    let (m, _) = c.call("monitor_cond", json!(["Nope", "m", {}])).await;
    assert_eq!(m["error"]["error"], json!("unknown database"));

    let r = c
        .ok(
            "monitor_cond",
            json!(["T", "c1", {"A": [{"columns": ["s"], "where": [["n", "==", 1]]}]}]),
        )
        .await;
    let (a_uuid, row) = only_row(&r, "A");
    assert_eq!(row, json!({"initial": {"s": "a"}}));
    let (m, _) = c
        .call("monitor_cond", json!(["T", "c1", {"A": [{}]}]))
        .await;
    assert_eq!(
        m["error"],
        json!({"error":"syntax error","details":"duplicate monitor ID","syntax":"\"c1\""})
    );

    // Condition change: the update (under the new id) comes before the `{}` reply.
    let (reply, before) = c
        .call(
            "monitor_cond_change",
            json!(["c1", "c2", {"A": [{"where": [["n", "==", 2]]}]}]),
        )
        .await;
    assert_eq!(reply["result"], json!({}));
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["method"], json!("update2"));
    assert_eq!(before[0]["params"][0], json!("c2"));
    let ups = before[0]["params"][1]["A"].as_object().unwrap();
    assert_eq!(ups[&a_uuid], json!({"delete": null}));
    assert_eq!(ups.len(), 2);
    // The old id is gone.
    let (m, _) = c
        .call(
            "monitor_cond_change",
            json!(["c1", "c3", {"A": [{"where": []}]}]),
        )
        .await;
    assert_eq!(m["error"]["details"], json!("unknown monitor session"));

    assert_eq!(c.ok("monitor_cancel", json!(["c2"])).await, json!({}));
    let (m, _) = c.call("monitor_cancel", json!(["c2"])).await;
    assert_eq!(m["error"], json!("unknown monitor"));
    // No more updates after cancel.
    let (_, before) = c
        .call(
            "transact",
            json!(["T", {"op":"update","table":"A","where":[],"row":{"n":2}}]),
        )
        .await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn server_monitor_follows_status() {
    let (b, s) = server();
    let mut c = connect(&s, false);
    let r = c
        .ok(
            "monitor_cond",
            json!(["_Server", ["monid", "_Server"], {"Database": [{"columns": ["name","model","connected","leader","schema","cid","index"]}]}]),
        )
        .await;
    let rows = r["Database"].as_object().unwrap();
    assert_eq!(rows.len(), 2);
    let (t_uuid, t) = rows
        .iter()
        .find(|(_, v)| v["initial"]["name"] == json!("T"))
        .unwrap();
    assert_eq!(t["initial"]["model"], json!("clustered"));
    assert_eq!(t["initial"]["cid"], json!(["uuid", b.cid.to_string()]));
    // The schema column is the sorted-key JSON text of the schema.
    let schema: Value = serde_json::from_str(t["initial"]["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["name"], json!("T"));

    let r = c
        .ok(
            "monitor_cond_since",
            json!(["_Server", "s3", {"Database": [{"columns": ["name"]}]}, "00000000-0000-0000-0000-000000000000"]),
        )
        .await;
    assert_eq!(r[0], json!(false));
    assert_eq!(r[1], json!("00000000-0000-0000-0000-000000000000"));

    // A write bumps the applied index: a `modify` of `index` follows.
    write_and_expect_index(&mut c, json!(["monid", "_Server"]), t_uuid, 1).await;
}

/// Sends a write to `T` and expects, among the next messages, the `_Server` monitor `mon_id`'s
/// `modify` of `T`'s row (`t_uuid`) to `index`.
async fn write_and_expect_index(c: &mut Client, mon_id: Value, t_uuid: &str, index: u64) {
    c.send(
        json!({"id":"w","method":"transact","params":["T", {"op":"insert","table":"A","row":{}}]}),
    )
    .await;
    for _ in 0..4 {
        let m = c.recv().await.unwrap();
        if m["method"] == json!("update2") && m["params"][0] == mon_id {
            assert_eq!(
                m["params"][1]["Database"][t_uuid],
                json!({"modify": {"index": index}})
            );
            return;
        }
    }
    panic!("no _Server update of the index to {index}");
}

/// A `_Server` monitor started after writes made while nobody watched `_Server` (so they only
/// marked it stale) starts from the current index, then follows the next write.
#[tokio::test]
async fn server_monitor_started_late_sees_the_current_index() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    for _ in 0..3 {
        c.insert_a().await;
    }
    let r = c
        .ok(
            "monitor_cond",
            json!(["_Server", "m", {"Database": [{"columns": ["name","index"]}]}]),
        )
        .await;
    let rows = r["Database"].as_object().unwrap();
    let (t_uuid, t) = rows
        .iter()
        .find(|(_, v)| v["initial"]["name"] == json!("T"))
        .unwrap();
    assert_eq!(t["initial"]["index"], json!(3));
    write_and_expect_index(&mut c, json!("m"), t_uuid, 4).await;
}

/// Each malformed `monitor`, `monitor_cond` and `monitor_cond_since` answered exactly as
/// ovsdb-server 3.1 answers it (replies captured from it with a schema whose table `A` has
/// columns `s` and `n`), checks in its order: params count, the requests' type, the monitor
/// id, each table's requests, the last transaction id. The one deliberate difference: a v1
/// `monitor` with fewer than 3 params crashes 3.1; Halyard answers `invalid parameters`.
#[tokio::test]
async fn malformed_monitor_params_answered_as_ovsdb_server() {
    let (_b, s) = server();
    let mut c = connect(&s, false);
    c.ok("monitor", json!(["T", "d", {}])).await;
    let syntax = |details: &str, syntax: Value| json!({"error": "syntax error", "details": details, "syntax": syntax.to_string()});
    let bare = |details: &str| json!({"error": "syntax error", "details": details});
    let zero = "00000000-0000-0000-0000-000000000000";
    // (method, params, Ok(result) or Err(error))
    let cases: Vec<(&str, Value, Result<Value, Value>)> = vec![
        (
            "monitor",
            json!([]),
            Err(syntax(
                "monitor request params must begin with <db-name>",
                json!([]),
            )),
        ),
        (
            "monitor",
            json!(["T"]),
            Err(syntax("invalid parameters", json!(["T"]))),
        ),
        (
            "monitor",
            json!(["T", null]),
            Err(syntax("invalid parameters", json!(["T", null]))),
        ),
        ("monitor", json!(["T", "x1", {}, "extra"]), Ok(json!({}))),
        ("monitor", json!(["T", "x2", {}, "extra", 5]), Ok(json!({}))),
        (
            "monitor",
            json!(["T", "x3", []]),
            Err(syntax("monitor-requests must be object", json!([]))),
        ),
        (
            "monitor",
            json!(["T", "x3", "x"]),
            Err(syntax("monitor-requests must be object", json!("x"))),
        ),
        (
            "monitor",
            json!(["T", "x3", null]),
            Err(syntax("monitor-requests must be object", json!(null))),
        ),
        (
            "monitor",
            json!(["T", "d", []]),
            Err(syntax("monitor-requests must be object", json!([]))),
        ),
        (
            "monitor",
            json!(["T", "d", {"Nope": {}}, 5]),
            Err(syntax("duplicate monitor ID", json!("d"))),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": 5}]),
            Err(bare("Parsing table A failed: Object expected.")),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": [5]}]),
            Err(bare("Parsing table A failed: Object expected.")),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": null}]),
            Err(bare("Parsing table A failed: Object expected.")),
        ),
        (
            "monitor",
            json!(["T", "x3", {"Nope": {}}]),
            Err(bare("no table named Nope")),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"columns": ["nope"]}}]),
            Err(syntax("nope is not a valid column name", json!(["nope"]))),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"columns": [5]}}]),
            Err(syntax("array of column names expected", json!([5]))),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"columns": "s"}}]),
            Err(syntax(
                "Parsing table A failed: Type mismatch for member 'columns'.",
                json!({"columns": "s"}),
            )),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"select": 5}}]),
            Err(syntax(
                "Parsing table A failed: Type mismatch for member 'select'.",
                json!({"select": 5}),
            )),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"select": null}}]),
            Err(syntax(
                "Parsing table A failed: Type mismatch for member 'select'.",
                json!({"select": null}),
            )),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"select": {"initial": 1}}}]),
            Err(syntax(
                "Parsing table A select failed: Type mismatch for member 'initial'.",
                json!({"initial": 1}),
            )),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"select": {"bogus": true}}}]),
            Err(syntax(
                "Parsing table A select failed: Member 'bogus' is present but not allowed here.",
                json!({"bogus": true}),
            )),
        ),
        (
            "monitor",
            json!(["T", "x3", {"A": {"where": []}}]),
            Err(syntax(
                "Parsing table A failed: Member 'where' is present but not allowed here.",
                json!({"where": []}),
            )),
        ),
        (
            "monitor",
            json!(["T", "x4", {"A": {"columns": ["_uuid"]}}]),
            Ok(json!({})),
        ),
        ("monitor", json!(["T", "x5", {"A": []}]), Ok(json!({}))),
        (
            "monitor_cond",
            json!(["T"]),
            Err(syntax("invalid parameters", json!(["T"]))),
        ),
        (
            "monitor_cond",
            json!(["T", "y", {}, "extra"]),
            Err(syntax("invalid parameters", json!(["T", "y", {}, "extra"]))),
        ),
        (
            "monitor_cond",
            json!(["T", "y", []]),
            Err(syntax("monitor-requests must be object", json!([]))),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", {}]),
            Err(syntax("invalid parameters", json!(["T", "z", {}]))),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", {}, zero, "x"]),
            Err(syntax(
                "invalid parameters",
                json!(["T", "z", {}, zero, "x"]),
            )),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", [], zero]),
            Err(syntax("monitor-requests must be object", json!([]))),
        ),
        (
            "monitor_cond_since",
            json!(["T", "d", {"Nope": {}}, 5]),
            Err(syntax("duplicate monitor ID", json!("d"))),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", {"Nope": {}}, 5]),
            Err(bare("no table named Nope")),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", {"A": {"columns": ["nope"]}}, "bad"]),
            Err(syntax("nope is not a valid column name", json!(["nope"]))),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", {}, 5]),
            Err(syntax("last-txn-id must be string", json!(5))),
        ),
        (
            "monitor_cond_since",
            json!(["T", "z", {}, "extra"]),
            Err(syntax("last-txn-id must be UUID format.", json!("extra"))),
        ),
        (
            "monitor_cond_since",
            json!(["_Server", "z", {}, null]),
            Err(syntax("last-txn-id must be string", json!(null))),
        ),
    ];
    for (method, params, want) in cases {
        let (m, _) = c.call(method, params.clone()).await;
        let got = match m.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(m["error"].clone()),
        };
        assert_eq!(got, want, "{method} {params}");
    }
}
