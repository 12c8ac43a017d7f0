//! `Database::transact_read` (and its `_json`/`_text` forms) against `Database::transact`
//! on the same operations and environment: the same outcome in every case it accepts, a
//! refusal (`NotReadOnly`) for transactions that may write, the database unchanged.

mod common;
use common::*;

use ovsdb::json::{Document, JsonLike};
use ovsdb::{is_read_only_transaction, Database, NotReadOnly, ReadTextError, SeqEnv, TxnOutcome};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Rows in I (k 1..=3), B (b1, b2) and C (x 5).
fn loaded() -> Database {
    let mut f = Fixture::new();
    f.ok(json!([
        {"op": "insert", "table": "I", "row": {"k": 1, "a": 1, "b": 1, "c": "one"}},
        {"op": "insert", "table": "I", "row": {"k": 2, "a": 2, "b": 2, "c": "two"}},
        {"op": "insert", "table": "I", "row": {"k": 3, "a": 3, "b": 3, "c": "two"}},
        {"op": "insert", "table": "B", "row": {"name": "b1"}, "uuid-name": "b1"},
        {"op": "insert", "table": "B", "row": {"name": "b2", "bref": ["named-uuid", "b1"]}},
        {"op": "insert", "table": "A", "row": {"e": "red", "sref": ["named-uuid", "b1"]}},
        {"op": "insert", "table": "C", "row": {"x": 5}}
    ]));
    f.db
}

fn env(wait_elapsed: Option<u64>) -> SeqEnv {
    let mut e = SeqEnv::new(9);
    e.locks.insert("mine".to_string());
    e.wait_elapsed = wait_elapsed.unwrap_or(0);
    e
}

/// Runs `ops` through the three read entry points on `db` and through `transact` on a
/// copy; all must agree (environment state included). Returns the outcome.
fn same_as_transact(db: &Database, ops: &[Value], wait_elapsed: Option<u64>) -> TxnOutcome {
    let before = db.clone();
    let mut e_read = env(wait_elapsed);
    let out = db
        .transact_read(ops, &mut e_read)
        .unwrap_or_else(|e| panic!("refused {ops:?}: {e}"));
    let text = Value::Array(ops.to_vec()).to_string();
    let mut e_text = env(wait_elapsed);
    let out_text = db
        .transact_read_text(&text, &mut e_text)
        .expect("text accepted");
    let doc = Document::parse(&text).expect("parses");
    let mut e_json = env(wait_elapsed);
    let out_json = db
        .transact_read_json(doc.root().elems().expect("array"), &mut e_json)
        .expect("json accepted");
    let (mut copy, mut e_write) = (db.clone(), env(wait_elapsed));
    let want = copy.transact(ops, &mut e_write);
    assert_eq!(out, want, "transact_read differs from transact for {text}");
    assert_eq!(out_text, want, "transact_read_text differs for {text}");
    assert_eq!(out_json, want, "transact_read_json differs for {text}");
    for e in [&e_read, &e_text, &e_json] {
        assert_eq!(e.next, e_write.next, "UUIDs drawn for {text}");
    }
    assert!(out.changes.is_none(), "a read changed something: {text}");
    assert!(
        copy == before && *db == before,
        "the database changed: {text}"
    );
    out
}

#[test]
fn read_transactions_match_transact() {
    let db = loaded();
    let lsp = |k: i64| {
        json!({"op": "select", "table": "I", "where": [["k", "==", k]],
                              "columns": ["c"]})
    };
    let wait = |until: &str, timeout: i64| {
        json!({"op": "wait", "table": "I", "where": [["k", "==", 2]], "columns": ["c"],
               "until": until, "rows": [{"c": "two"}], "timeout": timeout})
    };
    // (name, ops, wait expiry, the expected result, blocked, comment, durable)
    type Case = (
        &'static str,
        Value,
        Option<u64>,
        Value,
        bool,
        Option<&'static str>,
        bool,
    );
    let cases: Vec<Case> = vec![
        ("empty", json!([]), None, json!([]), false, None, false),
        (
            "select by index",
            json!([lsp(2)]),
            None,
            json!([{"rows": [{"c": "two"}]}]),
            false,
            None,
            false,
        ),
        (
            "select miss",
            json!([lsp(9)]),
            None,
            json!([{"rows": []}]),
            false,
            None,
            false,
        ),
        (
            "select sorted and distinct",
            json!([{"op": "select", "table": "I", "where": [], "columns": ["c"], "sort": ["c"]}]),
            None,
            json!([{"rows": [{"c": "one"}, {"c": "two"}]}]),
            false,
            None,
            false,
        ),
        (
            "named-uuid in a condition (draws a UUID)",
            json!([{"op": "select", "table": "B", "where": [["_uuid", "==", ["named-uuid", "n"]]]}]),
            None,
            json!([{"rows": []}]),
            false,
            None,
            false,
        ),
        (
            "wait satisfied",
            json!([wait("==", 0)]),
            None,
            json!([{}]),
            false,
            None,
            false,
        ),
        (
            "wait fails at once",
            json!([wait("!=", 0)]),
            None,
            json!([{"error": "timed out", "details": "\"where\" clause test failed"}]),
            false,
            None,
            false,
        ),
        (
            "wait blocks",
            json!([lsp(1), wait("!=", 1000)]),
            None,
            Value::Null,
            true,
            None,
            false,
        ),
        (
            "wait expired",
            json!([wait("!=", 1000), lsp(1)]),
            Some(1000),
            json!([{"error": "timed out", "details": "\"wait\" timed out after 1000 ms"}, null]),
            false,
            None,
            false,
        ),
        (
            "comment and durable commit",
            json!([{"op": "comment", "comment": "hi"}, {"op": "commit", "durable": true}]),
            None,
            json!([{}, {}]),
            false,
            Some("hi"),
            true,
        ),
        (
            "assert held",
            json!([{"op": "assert", "lock": "mine"}]),
            None,
            json!([{}]),
            false,
            None,
            false,
        ),
        (
            "assert not held",
            json!([{"op": "assert", "lock": "theirs"}, lsp(1)]),
            None,
            json!([{"error": "not owner", "details": "Asserted lock theirs not held."}, null]),
            false,
            None,
            false,
        ),
        (
            "abort",
            json!([lsp(1), {"op": "abort"}]),
            None,
            json!([{"rows": [{"c": "one"}]}, {"error": "aborted", "details": "aborted by request"}]),
            false,
            None,
            false,
        ),
        (
            "writes before an abort (ovsdb-client query)",
            json!([{"op": "insert", "table": "C", "row": {"x": 1}},
                {"op": "update", "table": "I", "where": [["k", "==", 1]], "row": {"c": "uno"}},
                {"op": "select", "table": "I", "where": [["c", "==", "uno"]], "columns": ["k"]},
                {"op": "abort"}]),
            None,
            json!([{"uuid": ["uuid", "00000000-0000-0009-0000-000000000001"]}, {"count": 1},
                {"rows": [{"k": 1}]}, {"error": "aborted", "details": "aborted by request"}]),
            false,
            None,
            false,
        ),
        (
            "an unknown operation before an abort",
            json!([{"op": "frob"}, {"op": "abort"}]),
            None,
            json!([{"error": "syntax error",
                 "details": "Parsing ovsdb operation 1 of 2 failed: No operation \"frob\"",
                 "syntax": "{\"op\":\"frob\"}"}, null]),
            false,
            None,
            false,
        ),
        (
            "unknown table",
            json!([{"op": "select", "table": "Nope", "where": []}]),
            None,
            json!([{"error": "syntax error",
                 "details": "Parsing ovsdb operation 1 of 1 failed: No table named Nope.",
                 "syntax": "{\"op\":\"select\",\"table\":\"Nope\",\"where\":[]}"}]),
            false,
            None,
            false,
        ),
        (
            "bad condition",
            json!([{"op": "select", "table": "I", "where": [["k", "<", "x"]]}]),
            None,
            json!([{"error": "syntax error", "details": "expected integer",
                       "syntax": "\"x\""}]),
            false,
            None,
            false,
        ),
    ];
    for (name, ops, expired, result, blocked, comment, durable) in cases {
        let ops = ops.as_array().expect("array").clone();
        assert!(is_read_only_transaction(&ops), "{name}: accepted");
        let out = same_as_transact(&db, &ops, expired);
        assert_eq!(out.result, result, "{name}");
        assert_eq!(out.blocked, blocked, "{name}: blocked");
        assert_eq!(out.comment.as_deref(), comment, "{name}: comment");
        assert_eq!(out.durable, durable, "{name}: durable");
    }
}

/// On a reserved database a write before the abort fails as in `transact`.
#[test]
fn reserved_database() {
    let mut db = loaded();
    db.set_reserved(true);
    let ops = json!([{"op": "insert", "table": "C", "row": {"x": 1}}, {"op": "abort"}]);
    let out = same_as_transact(&db, ops.as_array().expect("array"), None);
    assert_eq!(out.result[0]["error"], json!("not allowed"));
}

#[test]
fn writes_are_refused() {
    let db = loaded();
    let refused: Vec<(Value, usize)> = vec![
        (
            json!([{"op": "select", "table": "I", "where": []},
                {"op": "insert", "table": "C", "row": {"x": 1}}]),
            1,
        ),
        (
            json!([{"op": "update", "table": "I", "where": [], "row": {"c": "z"}}]),
            0,
        ),
        (
            json!([{"op": "mutate", "table": "C", "where": [], "mutations": [["x", "+=", 1]]}]),
            0,
        ),
        (
            json!([{"op": "comment", "comment": "x"}, {"op": "delete", "table": "C", "where": []}]),
            1,
        ),
        (json!([{"op": "frob"}]), 0),
        (json!([{"op": 5}]), 0),
        (json!([{"table": "I"}]), 0),
        (json!([7]), 0),
    ];
    for (ops, index) in refused {
        let text = ops.to_string();
        let ops = ops.as_array().expect("array").clone();
        assert!(!is_read_only_transaction(&ops), "{text}");
        let mut e = env(None);
        assert_eq!(
            db.transact_read(&ops, &mut e),
            Err(NotReadOnly { index }),
            "{text}"
        );
        assert_eq!(e.next, 0, "nothing ran for {text}");
        match db.transact_read_text(&text, &mut e) {
            Err(ReadTextError::NotReadOnly(n)) => assert_eq!(n.index, index, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    for text in ["{\"op\":\"select\"}", "[", "7", ""] {
        let err = db.transact_read_text(text, &mut env(None));
        assert!(
            matches!(err, Err(ReadTextError::Json(_))),
            "{text}: {err:?}"
        );
    }
}

fn read_op() -> impl Strategy<Value = Value> {
    let k = 0i64..5;
    let clause = (
        prop_oneof![Just("k"), Just("a"), Just("c")],
        prop_oneof![Just("=="), Just("!="), Just("includes"), Just("<")],
        k.clone(),
    )
        .prop_map(|(col, f, v)| {
            if col == "c" {
                json!([col, f, if v % 2 == 0 { "two" } else { "one" }])
            } else {
                json!([col, f, v])
            }
        });
    let where_ = proptest::collection::vec(clause, 0..3);
    prop_oneof![
        4 => where_.clone().prop_map(|w| json!({"op": "select", "table": "I", "where": w})),
        2 => (where_.clone(), proptest::collection::vec(k.clone(), 0..3), any::<bool>(),
              prop_oneof![Just(0i64), Just(10)])
            .prop_map(|(w, ks, eq, timeout)| {
                let rows: Vec<Value> = ks.iter().map(|k| json!({"k": k})).collect();
                json!({"op": "wait", "table": "I", "where": w, "columns": ["k"],
                       "until": if eq { "==" } else { "!=" }, "rows": rows, "timeout": timeout})
            }),
        1 => Just(json!({"op": "comment", "comment": "c"})),
        1 => any::<bool>().prop_map(|d| json!({"op": "commit", "durable": d})),
        1 => prop_oneof![Just("mine"), Just("theirs")]
            .prop_map(|l| json!({"op": "assert", "lock": l})),
        1 => Just(json!({"op": "abort"})),
        1 => (where_, k.clone()).prop_map(|(w, k)| {
            json!({"op": "update", "table": "I", "where": w, "row": {"k": k}})
        }),
        1 => k.prop_map(|k| json!({"op": "insert", "table": "I", "row": {"k": k + 10}})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random transactions of reads (with the odd write and abort): the read path accepts
    /// exactly those `is_read_only_transaction` accepts, and then answers as `transact`.
    #[test]
    fn read_path_equals_transact(
        ops in proptest::collection::vec(read_op(), 0..5),
        expired in prop_oneof![Just(None), Just(Some(10u64))],
    ) {
        let db = loaded();
        if is_read_only_transaction(&ops) {
            same_as_transact(&db, &ops, expired);
        } else {
            let refused = db.transact_read(&ops, &mut env(expired));
            prop_assert!(refused.is_err());
        }
    }
}
