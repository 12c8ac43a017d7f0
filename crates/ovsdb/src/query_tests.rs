//! Queries through a schema index against the same queries scanning the table
//! ([`FORCE_SCAN`]): the same outcome and the same database afterwards, for table-driven
//! cases (with the expected answers) and for random data and conditions.

use std::cell::Cell;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::transaction::{FORCE_SCAN, INDEXED_QUERIES};
use crate::{Database, DatabaseSchema, SeqEnv, TxnOutcome};

/// `I`: unique `k`, unique (`a`, `b`), free `c`. `O`: indexes on an optional scalar, a set
/// and a real.
fn schema() -> Arc<DatabaseSchema> {
    let s = json!({"name": "Q", "version": "1.0.0", "tables": {
        "I": {"columns": {"k": {"type": "integer"}, "a": {"type": "integer"},
                          "b": {"type": "integer"}, "c": {"type": "string"}},
              "indexes": [["k"], ["a", "b"]], "isRoot": true},
        "O": {"columns": {"o": {"type": {"key": "integer", "min": 0, "max": 1}},
                          "tags": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                          "r": {"type": "real"}},
              "indexes": [["o"], ["tags"], ["r"]], "isRoot": true}
    }});
    Arc::new(DatabaseSchema::from_json(&s).expect("schema parses"))
}

/// I: k 1..=5 with (a, b) = (0,0) (0,1) (1,0) (1,1) (2,0) and c = x y x y z.
/// O: (o [], tags [], r 0), (o 1, tags [a], r 1.5), (o 2, tags [a b], r -2).
fn loaded() -> Database {
    let mut db = Database::new(schema());
    let mut ops: Vec<Value> = [(1, 0, 0, "x"), (2, 0, 1, "y"), (3, 1, 0, "x")]
        .iter()
        .chain(&[(4, 1, 1, "y"), (5, 2, 0, "z")])
        .map(|(k, a, b, c)| {
            json!({"op": "insert", "table": "I", "row": {"k": k, "a": a, "b": b, "c": c}})
        })
        .collect();
    ops.push(json!({"op": "insert", "table": "O", "row": {}}));
    ops.push(json!({"op": "insert", "table": "O", "row": {"o": 1, "tags": "a", "r": 1.5}}));
    ops.push(json!({"op": "insert", "table": "O",
                    "row": {"o": 2, "tags": ["set", ["a", "b"]], "r": -2}}));
    let out = db.transact(&ops, &mut SeqEnv::new(1));
    assert!(out.changes.is_some(), "load: {}", out.result);
    db
}

/// Runs `ops` on a copy of `db` with fresh UUIDs from `seed`; also returns how many queries
/// used an index.
fn run(db: &Database, ops: &[Value], seed: u64, scan: bool) -> (TxnOutcome, Database, u32) {
    let mut db = db.clone();
    FORCE_SCAN.with(|f| f.set(scan));
    INDEXED_QUERIES.with(|n| n.set(0));
    let out = db.transact(ops, &mut SeqEnv::new(seed));
    FORCE_SCAN.with(|f| f.set(false));
    (out, db, INDEXED_QUERIES.with(Cell::get))
}

/// The indexed outcome, after checking that scanning gives the same outcome and database.
fn same_as_scan(db: &Database, ops: &[Value], seed: u64) -> (TxnOutcome, Database, u32) {
    let (out, after, n) = run(db, ops, seed, false);
    let (scan_out, scan_after, scan_n) = run(db, ops, seed, true);
    assert_eq!(scan_n, 0, "a forced scan used no index");
    assert_eq!(
        out, scan_out,
        "indexed and scanned outcomes differ for {ops:?}"
    );
    assert!(after == scan_after, "indexed and scanned databases differ");
    (out, after, n)
}

struct Case {
    name: &'static str,
    /// Operations of the same transaction before the select.
    before: Value,
    table: &'static str,
    where_: Value,
    /// The selected rows, reduced to `k` (table I) or `r` (table O), in UUID order.
    want: Value,
    /// Whether the select went through an index.
    indexed: bool,
}

fn select_cases() -> Vec<Case> {
    let none = json!([]);
    let c = |name, before: &Value, table, where_, want, indexed| Case {
        name,
        before: before.clone(),
        table,
        where_,
        want,
        indexed,
    };
    vec![
        c(
            "hit",
            &none,
            "I",
            json!([["k", "==", 3]]),
            json!([{"k": 3}]),
            true,
        ),
        c(
            "miss",
            &none,
            "I",
            json!([["k", "==", 42]]),
            json!([]),
            true,
        ),
        c(
            "includes on a scalar",
            &none,
            "I",
            json!([["k", "includes", 3]]),
            json!([{"k": 3}]),
            true,
        ),
        c(
            "both columns of a two-column index",
            &none,
            "I",
            json!([["b", "==", 0], ["a", "==", 1]]),
            json!([{"k": 3}]),
            true,
        ),
        c(
            "one column of a two-column index",
            &none,
            "I",
            json!([["a", "==", 1]]),
            json!([{"k": 3}, {"k": 4}]),
            false,
        ),
        c(
            "the other column given by a range",
            &none,
            "I",
            json!([["a", "==", 1], ["b", "<", 1]]),
            json!([{"k": 3}]),
            false,
        ),
        c(
            "extra clause that holds",
            &none,
            "I",
            json!([["k", "==", 3], ["c", "==", "x"]]),
            json!([{"k": 3}]),
            true,
        ),
        c(
            "extra clause that fails",
            &none,
            "I",
            json!([["k", "==", 3], ["c", "==", "y"]]),
            json!([]),
            true,
        ),
        c(
            "two values for one column",
            &none,
            "I",
            json!([["k", "==", 3], ["k", "==", 4]]),
            json!([]),
            true,
        ),
        c(
            "!=",
            &none,
            "I",
            json!([["k", "!=", 3]]),
            json!([{"k": 1}, {"k": 2}, {"k": 4}, {"k": 5}]),
            false,
        ),
        c(
            "excludes",
            &none,
            "I",
            json!([["k", "excludes", 3]]),
            json!([{"k": 1}, {"k": 2}, {"k": 4}, {"k": 5}]),
            false,
        ),
        c(
            "constant true and a pin",
            &none,
            "I",
            json!([true, ["k", "==", 5]]),
            json!([{"k": 5}]),
            true,
        ),
        c(
            "inserted in the transaction",
            &json!([
            {"op": "insert", "table": "I", "row": {"k": 7, "a": 7, "b": 7}}]),
            "I",
            json!([["k", "==", 7]]),
            json!([{"k": 7}]),
            true,
        ),
        c(
            "inserted with a committed row's key (both, until the commit fails)",
            &json!([
            {"op": "insert", "table": "I", "row": {"k": 3, "a": 7, "b": 7}}]),
            "I",
            json!([["k", "==", 3]]),
            json!([{"k": 3}, {"k": 3}]),
            true,
        ),
        c(
            "updated to the key",
            &json!([
            {"op": "update", "table": "I", "where": [["k", "==", 3]], "row": {"k": 8}}]),
            "I",
            json!([["k", "==", 8]]),
            json!([{"k": 8}]),
            true,
        ),
        c(
            "updated away from the key",
            &json!([
            {"op": "update", "table": "I", "where": [["k", "==", 3]], "row": {"k": 8}}]),
            "I",
            json!([["k", "==", 3]]),
            json!([]),
            true,
        ),
        c(
            "keys swapped",
            &json!([
            {"op": "update", "table": "I", "where": [["k", "==", 1]], "row": {"k": 9}},
            {"op": "update", "table": "I", "where": [["k", "==", 2]], "row": {"k": 1}}]),
            "I",
            json!([["k", "==", 1], ["c", "==", "y"]]),
            json!([{"k": 1}]),
            true,
        ),
        c(
            "other column updated",
            &json!([
            {"op": "update", "table": "I", "where": [["k", "==", 3]], "row": {"c": "w"}}]),
            "I",
            json!([["k", "==", 3], ["c", "==", "w"]]),
            json!([{"k": 3}]),
            true,
        ),
        c(
            "deleted",
            &json!([{"op": "delete", "table": "I", "where": [["k", "==", 3]]}]),
            "I",
            json!([["k", "==", 3]]),
            json!([]),
            true,
        ),
        c(
            "deleted then inserted again",
            &json!([
            {"op": "delete", "table": "I", "where": [["k", "==", 3]]},
            {"op": "insert", "table": "I", "row": {"k": 3, "a": 1, "b": 0, "c": "new"}}]),
            "I",
            json!([["a", "==", 1], ["b", "==", 0]]),
            json!([{"k": 3}]),
            true,
        ),
        c(
            "mutated to the key",
            &json!([
            {"op": "mutate", "table": "I", "where": [["k", "==", 5]],
             "mutations": [["k", "+=", 5]]}]),
            "I",
            json!([["k", "==", 10]]),
            json!([{"k": 10}]),
            true,
        ),
        c(
            "optional scalar, empty",
            &none,
            "O",
            json!([["o", "==", ["set", []]]]),
            json!([{"r": 0}]),
            true,
        ),
        c(
            "optional scalar, includes empty (every row)",
            &none,
            "O",
            json!([["o", "includes", ["set", []]]]),
            json!([{"r": 0}, {"r": 1.5}, {"r": -2}]),
            false,
        ),
        c(
            "optional scalar, includes a value",
            &none,
            "O",
            json!([["o", "includes", 2]]),
            json!([{"r": -2}]),
            false,
        ),
        c(
            "set, equal",
            &none,
            "O",
            json!([["tags", "==", ["set", ["b", "a"]]]]),
            json!([{"r": -2}]),
            true,
        ),
        c(
            "set, includes",
            &none,
            "O",
            json!([["tags", "includes", "a"]]),
            json!([{"r": 1.5}, {"r": -2}]),
            false,
        ),
        c(
            "real given as an integer",
            &none,
            "O",
            json!([["r", "==", 0]]),
            json!([{"r": 0}]),
            true,
        ),
        c(
            "real, negative zero",
            &none,
            "O",
            json!([["r", "==", -0.0]]),
            json!([{"r": 0}]),
            true,
        ),
        c(
            "real",
            &none,
            "O",
            json!([["r", "==", 1.5]]),
            json!([{"r": 1.5}]),
            true,
        ),
    ]
}

#[test]
fn indexed_selects() {
    let db = loaded();
    // The loaded rows' UUIDs order them by insertion, the order `want` lists them in
    // (an inserted row's UUID comes from another counter and sorts after them).
    for case in select_cases() {
        let mut ops = case.before.as_array().expect("array").clone();
        let (_, _, before_n) = run(&db, &ops, 7, false);
        let col = if case.table == "I" { "k" } else { "r" };
        // Every column (a projection would merge equal rows).
        ops.push(json!({"op": "select", "table": case.table, "where": case.where_}));
        let (out, _, n) = same_as_scan(&db, &ops, 7);
        let rows = out.result[ops.len() - 1]["rows"].as_array().cloned();
        let got: Option<Vec<Value>> =
            rows.map(|rows| rows.iter().map(|r| json!({col: r[col]})).collect());
        assert_eq!(
            got,
            case.want.as_array().cloned(),
            "{}: {}",
            case.name,
            out.result
        );
        assert_eq!(n > before_n, case.indexed, "{}: index use", case.name);
    }
}

/// Whole transactions whose updates, mutations, deletions and waits find their rows
/// through an index.
#[test]
fn indexed_writes_and_waits() {
    let db = loaded();
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "update, mutate and delete by key",
            json!([
                {"op": "update", "table": "I", "where": [["k", "==", 4]], "row": {"c": "q"}},
                {"op": "mutate", "table": "I", "where": [["a", "==", 2], ["b", "==", 0]],
                 "mutations": [["k", "+=", 10]]},
                {"op": "delete", "table": "I", "where": [["k", "==", 1]]},
                {"op": "select", "table": "I", "where": [["c", "!=", "x"]], "columns": ["k", "c"]}
            ]),
            json!([{"count": 1}, {"count": 1}, {"count": 1},
                   {"rows": [{"k": 2, "c": "y"}, {"k": 4, "c": "q"}, {"k": 15, "c": "z"}]}]),
        ),
        (
            "a key freed and taken in one transaction commits",
            json!([
                {"op": "update", "table": "I", "where": [["k", "==", 1]], "row": {"k": 9}},
                {"op": "update", "table": "I", "where": [["k", "==", 2]], "row": {"k": 1}},
                {"op": "select", "table": "I", "where": [["k", "==", 1]], "columns": ["c"]}
            ]),
            json!([{"count": 1}, {"count": 1}, {"rows": [{"c": "y"}]}]),
        ),
        (
            "wait satisfied",
            json!([{"op": "wait", "table": "I", "where": [["k", "==", 3]], "columns": ["c"],
                    "until": "==", "rows": [{"c": "x"}], "timeout": 0}]),
            json!([{}]),
        ),
        (
            "wait on a key the transaction deleted",
            json!([
                {"op": "delete", "table": "I", "where": [["k", "==", 3]]},
                {"op": "wait", "table": "I", "where": [["k", "==", 3]], "columns": ["c"],
                 "until": "==", "rows": [{"c": "x"}], "timeout": 0}
            ]),
            json!([{"count": 1}, {"error": "timed out",
                                  "details": "\"where\" clause test failed"}]),
        ),
        (
            "type mismatch",
            json!([{"op": "select", "table": "I", "where": [["k", "==", "three"]]}]),
            json!([{"error": "syntax error", "syntax": "\"three\"",
                    "details": "expected integer"}]),
        ),
    ];
    for (name, ops, want) in cases {
        let ops = ops.as_array().expect("array").clone();
        let (out, _, n) = same_as_scan(&db, &ops, 7);
        let parses = !name.starts_with("type mismatch");
        assert_eq!(n > 0, parses, "{name}: whether some query used an index");
        assert_eq!(out.result, want, "{name}");
    }
}

fn value_of(col: &'static str) -> BoxedStrategy<Value> {
    if col == "c" {
        prop_oneof![Just(json!("x")), Just(json!("y")), Just(json!("z"))].boxed()
    } else {
        (0i64..4).prop_map(|v| json!(v)).boxed()
    }
}

fn clause() -> impl Strategy<Value = Value> {
    let compare = (
        prop_oneof![Just("k"), Just("a"), Just("b"), Just("c")],
        prop_oneof![
            4 => Just("=="),
            1 => Just("!="),
            1 => Just("includes"),
            1 => Just("excludes"),
            1 => Just("<"),
        ],
    )
        .prop_flat_map(|(col, f)| value_of(col).prop_map(move |v| json!([col, f, v])));
    prop_oneof![8 => compare, 1 => any::<bool>().prop_map(Value::Bool)]
}

fn where_() -> impl Strategy<Value = Value> {
    proptest::collection::vec(clause(), 0..4).prop_map(Value::Array)
}

fn row() -> impl Strategy<Value = Value> {
    (0i64..6, 0i64..4, 0i64..4, value_of("c"))
        .prop_map(|(k, a, b, c)| json!({"k": k, "a": a, "b": b, "c": c}))
}

fn op() -> impl Strategy<Value = Value> {
    prop_oneof![
        row().prop_map(|r| json!({"op": "insert", "table": "I", "row": r})),
        (where_(), 0i64..4, value_of("c")).prop_map(|(w, k, c)| {
            json!({"op": "update", "table": "I", "where": w, "row": {"k": k, "c": c}})
        }),
        (where_(), 0i64..4).prop_map(|(w, b)| {
            json!({"op": "update", "table": "I", "where": w, "row": {"b": b}})
        }),
        where_().prop_map(|w| {
            json!({"op": "mutate", "table": "I", "where": w, "mutations": [["a", "+=", 1]]})
        }),
        where_().prop_map(|w| json!({"op": "delete", "table": "I", "where": w})),
        where_().prop_map(|w| json!({"op": "select", "table": "I", "where": w})),
        (where_(), proptest::collection::vec(0i64..4, 0..2)).prop_map(|(w, ks)| {
            let rows: Vec<Value> = ks.iter().map(|k| json!({"k": k})).collect();
            json!({"op": "wait", "table": "I", "where": w, "columns": ["k"],
                   "until": "==", "rows": rows, "timeout": 0})
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random rows, then random transactions: every one gives the same outcome and the same
    /// database through the indexes as by scanning.
    #[test]
    fn indexed_equals_scan(
        load in proptest::collection::vec(row(), 0..16),
        txns in proptest::collection::vec(proptest::collection::vec(op(), 1..5), 1..10),
    ) {
        let mut db = Database::new(schema());
        for (i, r) in load.into_iter().enumerate() {
            // Rows that break an index are refused; the others stay.
            let ops = [json!({"op": "insert", "table": "I", "row": r})];
            db.transact(&ops, &mut SeqEnv::new(1 + i as u64));
        }
        for (i, ops) in txns.iter().enumerate() {
            let (_, after, _) = same_as_scan(&db, ops, 100 + i as u64);
            db = after;
        }
    }
}
