//! Table-driven tests of `ovsdb::monitor` through its public API: row-update shapes per
//! monitor version, the v2 diff rule (including the captured example of docs/ovsdb-protocol.md
//! §2.6), condition entry and exit, `monitor_cond_change`, merging for
//! `monitor_cond_since`, and request errors. The behaviour itself was taken from
//! ovsdb-server 3.1; `monitor_golden.rs` checks the same against recordings of it.

use std::sync::Arc;

use ovsdb::monitor::{Monitor, MonitorVersion};
use ovsdb::transaction::SeqEnv;
use ovsdb::{ChangeSet, Database, DatabaseSchema};
use serde_json::{json, Value};

use MonitorVersion::{V1, V2, V3};

const R1: &str = "a0000000-0000-0000-0000-000000000001";
const C1: &str = "c0000000-0000-0000-0000-000000000001";
const C2: &str = "c0000000-0000-0000-0000-000000000002";
const C3: &str = "c0000000-0000-0000-0000-000000000003";

struct Fixture {
    db: Database,
    env: SeqEnv,
}

impl Fixture {
    fn new() -> Fixture {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/monitor/monitor.ovsschema"
        );
        let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let schema = Arc::new(DatabaseSchema::from_json(&json).unwrap());
        Fixture {
            db: Database::new(schema),
            env: SeqEnv::new(7),
        }
    }

    /// Runs one transaction that must succeed; returns what it changed.
    fn tx(&mut self, ops: Value) -> ChangeSet {
        let out = self.db.transact(ops.as_array().unwrap(), &mut self.env);
        let results = out.result.as_array().unwrap();
        assert!(
            results.iter().all(|r| r.get("error").is_none()),
            "transaction failed: {}",
            out.result
        );
        out.changes.unwrap_or_default()
    }

    fn monitor(&self, v: MonitorVersion, req: Value) -> Monitor {
        Monitor::new(self.db.schema(), v, &req).unwrap_or_else(|e| panic!("{req}: {e}"))
    }

    /// Three C rows: x=1 tag a, x=2 tag b (tags [p]), x=3 tag c.
    fn with_c_rows() -> Fixture {
        let mut f = Fixture::new();
        f.tx(json!([
            {"op": "insert", "table": "C", "uuid": C1, "row": {"x": 1, "tag": "a"}},
            {"op": "insert", "table": "C", "uuid": C2, "row": {"x": 2, "tag": "b", "tags": ["set", ["p"]]}},
            {"op": "insert", "table": "C", "uuid": C3, "row": {"x": 3, "tag": "c"}}
        ]));
        f
    }
}

fn update_c(where_: Value, row: Value) -> Value {
    json!([{"op": "update", "table": "C", "where": where_, "row": row}])
}

#[test]
fn captured_diff_example_of_section_2_6() {
    let mut f = Fixture::new();
    f.tx(json!([{"op": "insert", "table": "A", "uuid": R1, "row": {
        "si": ["set", [1, 2, 3]], "m": ["map", [["a", 1], ["b", 2], ["c", 3]]], "oi": 5, "i": 0, "s13": 1}}]));
    let m = f.monitor(V2, json!({"A": {"columns": ["si", "m", "oi", "i"]}}));
    let changes = f.tx(json!([{"op": "update", "table": "A", "where": [], "row": {
        "si": ["set", [2, 3, 4]], "m": ["map", [["b", 22], ["c", 3], ["d", 4]]], "oi": ["set", []], "i": 9}}]));
    assert_eq!(
        m.update(&changes).unwrap(),
        json!({"A": {R1: {"modify": {
            "m": ["map", [["a", 1], ["b", 22], ["d", 4]]], "oi": ["set", []], "si": ["set", [1, 4]], "i": 9}}}})
    );
}

/// One change of one C row seen by monitors of each version: (name, version, request,
/// transaction, expected update of row C1 or C2 (`null`: no update)).
#[test]
fn row_update_shapes() {
    let cases: Vec<(&str, MonitorVersion, Value, Value, Value)> = vec![
        (
            "v1 insert: new with every monitored column, defaults included",
            V1,
            json!({"C": {"columns": ["x", "tag", "oz"]}}),
            json!([{"op": "insert", "table": "C", "uuid": C1, "row": {"x": 5}}]),
            json!({"new": {"x": 5, "tag": "", "oz": ["set", []]}}),
        ),
        (
            "v1 modify: new has all columns, old only the changed ones",
            V1,
            json!({"C": {"columns": ["x", "tag", "oz"]}}),
            update_c(json!([["x", "==", 1]]), json!({"tag": "z", "oz": 4})),
            json!({"new": {"x": 1, "tag": "z", "oz": 4}, "old": {"tag": "a", "oz": ["set", []]}}),
        ),
        (
            "v1 delete: old with every monitored column",
            V1,
            json!({"C": {"columns": ["x", "tags"]}}),
            json!([{"op": "delete", "table": "C", "where": [["x", "==", 2]]}]),
            json!({"old": {"x": 2, "tags": "p"}}),
        ),
        (
            "v1 only an unmonitored column changed: nothing",
            V1,
            json!({"C": {"columns": ["x"]}}),
            update_c(json!([["x", "==", 1]]), json!({"tag": "z"})),
            Value::Null,
        ),
        (
            "v1 empty column list: an empty new",
            V1,
            json!({"C": {"columns": []}}),
            json!([{"op": "insert", "table": "C", "uuid": C1, "row": {"x": 5}}]),
            json!({"new": {}}),
        ),
        (
            "v1 _uuid named explicitly is reported like a column",
            V1,
            json!({"C": {"columns": ["_uuid"]}}),
            json!([{"op": "insert", "table": "C", "uuid": C1, "row": {"x": 5}}]),
            json!({"new": {"_uuid": ["uuid", C1]}}),
        ),
        (
            "v2 insert: defaults left out",
            V2,
            json!({"C": {"columns": ["x", "tag", "oz", "tags"]}}),
            json!([{"op": "insert", "table": "C", "uuid": C1, "row": {"x": 5, "tags": ["set", ["q"]]}}]),
            json!({"insert": {"x": 5, "tags": "q"}}),
        ),
        (
            "v2 insert of an all-default row: empty insert",
            V2,
            json!({"C": {"columns": ["x", "tag"]}}),
            json!([{"op": "insert", "table": "C", "uuid": C1, "row": {}}]),
            json!({"insert": {}}),
        ),
        (
            "v2 modify: set diff, new value of a scalar, cleared optional",
            V2,
            json!({"C": {"columns": ["x", "tags", "oz"]}}),
            update_c(
                json!([["x", "==", 2]]),
                json!({"x": 7, "tags": ["set", ["q", "r"]], "oz": 1}),
            ),
            json!({"modify": {"x": 7, "tags": ["set", ["p", "q", "r"]], "oz": 1}}),
        ),
        (
            "v2 modify: 1-element set diff is a bare atom",
            V2,
            json!({"C": {"columns": ["tags"]}}),
            update_c(json!([["x", "==", 2]]), json!({"tags": ["set", []]})),
            json!({"modify": {"tags": "p"}}),
        ),
        (
            "v2 delete",
            V2,
            json!({"C": {"columns": ["x"]}}),
            json!([{"op": "delete", "table": "C", "where": [["x", "==", 2]]}]),
            json!({"delete": null}),
        ),
        (
            "v2 only an unmonitored column changed: nothing",
            V2,
            json!({"C": {"columns": ["x"], "where": [["tag", "==", "b"]]}}),
            update_c(json!([["x", "==", 2]]), json!({"tags": ["set", []]})),
            Value::Null,
        ),
        (
            "v3 uses the v2 shapes",
            V3,
            json!({"C": [{"columns": ["tag"]}]}),
            update_c(json!([["x", "==", 1]]), json!({"tag": "q"})),
            json!({"modify": {"tag": "q"}}),
        ),
        (
            "v2 an update to the same values changes nothing (not even _version): nothing",
            V2,
            json!({"C": {"where": [["x", "==", 1]]}}),
            update_c(json!([["x", "==", 1]]), json!({"x": 1})),
            Value::Null,
        ),
    ];
    for (name, v, req, ops, want) in cases {
        let mut f = Fixture::new();
        let inserts = ops[0]["op"] == json!("insert");
        if !inserts {
            f = Fixture::with_c_rows();
        }
        let m = f.monitor(v, req);
        let changes = f.tx(ops.clone());
        let got = m.update(&changes);
        let row = if inserts || ops[0]["where"] == json!([["x", "==", 1]]) {
            C1
        } else {
            C2
        };
        match got {
            None => assert!(want.is_null(), "{name}: no update, wanted {want}"),
            Some(u) => assert_eq!(u, json!({"C": {row: want}}), "{name}"),
        }
    }
}

#[test]
fn version_is_reported_when_monitoring_every_column() {
    let mut f = Fixture::with_c_rows();
    let m = f.monitor(V2, json!({"C": {"where": [["x", "==", 1]]}}));
    let changes = f.tx(update_c(json!([["x", "==", 1]]), json!({"tag": "q"})));
    let u = m.update(&changes).unwrap();
    let modify = &u["C"][C1]["modify"];
    assert_eq!(modify["tag"], json!("q"));
    let new_version =
        f.db.row("C", &C1.parse().unwrap())
            .unwrap()
            .version()
            .to_string();
    assert_eq!(modify["_version"], json!(["uuid", new_version]));
}

/// Conditions: (where, transaction, expected update of row C1 or `null`).
#[test]
fn condition_entry_and_exit() {
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "row starts to match: insert with non-default monitored columns",
            json!([["x", "==", 10]]),
            update_c(json!([["x", "==", 1]]), json!({"x": 10})),
            json!({"insert": {"x": 10, "tag": "a"}}),
        ),
        (
            "row stops matching: delete",
            json!([["x", "==", 1]]),
            update_c(json!([["x", "==", 1]]), json!({"x": 10})),
            json!({"delete": null}),
        ),
        (
            "row matches before and after: modify",
            json!([["x", "<", 5]]),
            update_c(json!([["x", "==", 1]]), json!({"x": 4})),
            json!({"modify": {"x": 4}}),
        ),
        (
            "row matches neither before nor after: nothing",
            json!([["x", ">", 50]]),
            update_c(json!([["x", "==", 1]]), json!({"x": 4})),
            Value::Null,
        ),
        (
            "clauses are ORed: leaving one clause for another is a modify",
            json!([["x", "==", 1], ["x", "==", 4]]),
            update_c(json!([["x", "==", 1]]), json!({"x": 4})),
            json!({"modify": {"x": 4}}),
        ),
        (
            "condition on an unmonitored column decides entry",
            json!([["tags", "includes", "new"]]),
            update_c(json!([["x", "==", 1]]), json!({"tags": ["set", ["new"]]})),
            json!({"insert": {"x": 1, "tag": "a"}}),
        ),
        (
            "[false] never matches",
            json!([false]),
            update_c(json!([["x", "==", 1]]), json!({"x": 4})),
            Value::Null,
        ),
        (
            "a true clause matches everything",
            json!([["x", "==", 99], true]),
            update_c(json!([["x", "==", 1]]), json!({"x": 4})),
            json!({"modify": {"x": 4}}),
        ),
        (
            "_uuid condition",
            json!([["_uuid", "==", ["uuid", C1]]]),
            json!([{"op": "delete", "table": "C", "where": []}]),
            json!({"delete": null}),
        ),
        (
            "inserted row outside the condition: nothing",
            json!([["x", "==", 2]]),
            json!([{"op": "delete", "table": "C", "where": [["x", "==", 1]]}]),
            Value::Null,
        ),
    ];
    for (name, where_, ops, want) in cases {
        let mut f = Fixture::with_c_rows();
        let m = f.monitor(V2, json!({"C": {"columns": ["x", "tag"], "where": where_}}));
        let changes = f.tx(ops);
        let got = m
            .update(&changes)
            .and_then(|u| u["C"].get(C1).cloned())
            .unwrap_or(Value::Null);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn initial_contents() {
    let f = Fixture::with_c_rows();
    let v1 = f.monitor(V1, json!({"C": {"columns": ["x", "tags"]}}));
    assert_eq!(
        v1.initial(&f.db),
        json!({"C": {
            C1: {"new": {"x": 1, "tags": ["set", []]}},
            C2: {"new": {"x": 2, "tags": "p"}},
            C3: {"new": {"x": 3, "tags": ["set", []]}}}})
    );
    let v2 = f.monitor(
        V2,
        json!({"C": {"columns": ["x", "tags"], "where": [["x", "!=", 2]]}}),
    );
    assert_eq!(
        v2.initial(&f.db),
        json!({"C": {C1: {"initial": {"x": 1}}, C3: {"initial": {"x": 3}}}})
    );
    let none = f.monitor(
        V2,
        json!({"C": {"columns": ["x"], "select": {"initial": false}}}),
    );
    assert_eq!(none.initial(&f.db), json!({}));
    let empty = f.monitor(V2, json!({"A": {}}));
    assert_eq!(empty.initial(&f.db), json!({}));
}

/// The text a storm's clients share is built row by row; it must be the very bytes of the
/// `Value` the other paths send, for every version, condition and selection.
#[test]
fn initial_contents_as_text_are_the_bytes_of_the_value() {
    let mut f = Fixture::with_c_rows();
    f.tx(json!([{"op": "insert", "table": "A", "row": {}}]));
    let requests = [
        json!({"C": {"columns": ["x", "tags"]}}),
        json!({"C": {"columns": ["x", "tags"], "where": [["x", "!=", 2]]}}),
        json!({"C": {"where": [["x", "==", 9]]}, "A": {}}),
        json!({"A": {}, "C": {}}),
        json!({"C": {"columns": ["x"], "select": {"initial": false}}}),
        json!({"A": {"select": {"initial": false}}, "C": [{"columns": ["tag"]}]}),
    ];
    for v in [V1, V2, V3] {
        for req in &requests {
            let Ok(m) = Monitor::new(f.db.schema(), v, req) else {
                assert!(v == V1 && req.to_string().contains("where"), "{v:?} {req}");
                continue; // v1 has no conditions
            };
            let value = m.initial(&f.db);
            assert_eq!(
                String::from_utf8(m.initial_json(&f.db)).unwrap(),
                serde_json::to_string(&value).unwrap(),
                "{v:?} {req}"
            );
        }
    }
}

#[test]
fn select_flags_per_table_and_per_column() {
    let mut f = Fixture::with_c_rows();
    let m = f.monitor(
        V1,
        json!({"C": [{"columns": ["x"], "select": {"insert": false}}, {"columns": ["tag"], "select": {"modify": false}}]}),
    );
    // A change of `tag` only is a modify; `x` is reported with its select, `tag` is not.
    let changes = f.tx(update_c(json!([["x", "==", 1]]), json!({"tag": "z"})));
    assert_eq!(
        m.update(&changes).unwrap(),
        json!({"C": {C1: {"new": {"x": 1}, "old": {}}}})
    );
    let changes = f.tx(json!([{"op": "insert", "table": "C", "row": {"x": 9, "tag": "n"}}]));
    let u = m.update(&changes).unwrap();
    let (_, row) = u["C"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(row, &json!({"new": {"tag": "n"}}));
    let nothing = f.monitor(
        V2,
        json!({"C": {"columns": ["x"], "select": {"initial": false, "insert": false, "delete": false, "modify": false}}}),
    );
    let changes = f.tx(json!([{"op": "delete", "table": "C", "where": []}]));
    assert_eq!(nothing.update(&changes), None);
}

#[test]
fn cond_change_inserts_and_deletes_against_the_database() {
    let mut f = Fixture::with_c_rows();
    let mut m = f.monitor(
        V2,
        json!({"C": {"columns": ["x"], "where": [["x", "==", 1]]}, "A": {"columns": ["i"]}}),
    );
    let u = m
        .change_conditions(&f.db, &json!({"C": [{"where": [["x", ">=", 2]]}]}))
        .unwrap();
    assert_eq!(
        u,
        Some(
            json!({"C": {C1: {"delete": null}, C2: {"insert": {"x": 2}}, C3: {"insert": {"x": 3}}}})
        )
    );
    // The same condition again: nothing to send.
    assert_eq!(
        m.change_conditions(&f.db, &json!({"C": [{"where": [["x", ">=", 2]]}]}))
            .unwrap(),
        None
    );
    // Several requests for one table: the last where wins.
    let u = m
        .change_conditions(
            &f.db,
            &json!({"C": [{"where": [false]}, {"where": [["x", "==", 3]]}]}),
        )
        .unwrap();
    assert_eq!(u, Some(json!({"C": {C2: {"delete": null}}})));
    // Later updates follow the new condition.
    let changes = f.tx(update_c(json!([]), json!({"tag": "t"})));
    assert_eq!(m.update(&changes), None);
    let changes = f.tx(update_c(json!([["x", "==", 3]]), json!({"x": 30})));
    assert_eq!(
        m.update(&changes),
        Some(json!({"C": {C3: {"delete": null}}}))
    );
    // An empty request list or one without `where` keeps the condition.
    assert_eq!(m.change_conditions(&f.db, &json!({"C": []})).unwrap(), None);
    assert_eq!(
        m.change_conditions(&f.db, &json!({"C": [{}]})).unwrap(),
        None
    );
    let changes = f.tx(update_c(json!([["x", "==", 2]]), json!({"x": 3})));
    assert_eq!(
        m.update(&changes),
        Some(json!({"C": {C2: {"insert": {"x": 3}}}}))
    );
}

#[test]
fn cond_change_respects_select() {
    let f = Fixture::with_c_rows();
    let mut m = f.monitor(
        V2,
        json!({"C": {"columns": ["x"], "where": [["x", "==", 1]], "select": {"insert": false}}}),
    );
    let u = m
        .change_conditions(&f.db, &json!({"C": [{"where": [["x", "==", 2]]}]}))
        .unwrap();
    assert_eq!(u, Some(json!({"C": {C1: {"delete": null}}})));
}

#[test]
fn cond_change_errors_change_nothing() {
    let mut f = Fixture::with_c_rows();
    let mut m = f.monitor(
        V2,
        json!({"C": {"columns": ["x"], "where": [["x", "==", 1]]}, "A": {"columns": ["i"]}}),
    );
    let cases = [
        (
            json!({"C": [{"where": []}], "A": [{"where": [["nope", "==", 1]]}]}),
            "unknown column",
            "No column nope in table A.",
        ),
        (
            json!({"C": [{"columns": ["x"]}]}),
            "syntax error",
            "changing columns is unsupported",
        ),
        (
            json!({"B": [{"where": []}]}),
            "syntax error",
            "no table named B in monitor session",
        ),
        (
            json!({"Nope": [{"where": []}]}),
            "syntax error",
            "no table named Nope",
        ),
        (
            json!({"C": {"where": []}}),
            "syntax error",
            "table C no monitor-cond-change JSON array",
        ),
        (
            json!({"C": ["x"]}),
            "syntax error",
            "Parsing table C failed: Object expected.",
        ),
        (
            json!({"C": [{"select": {}}]}),
            "syntax error",
            "Parsing table C failed: Member 'select' is present but not allowed here.",
        ),
        (
            json!([]),
            "syntax error",
            "monitor-cond-change-requests must be object",
        ),
    ];
    for (req, tag, details) in cases {
        let e = m.change_conditions(&f.db, &req).unwrap_err();
        assert_eq!((e.tag_str(), e.details()), (tag, Some(details)), "{req}");
    }
    // The C condition is still x == 1: x=1 -> 5 leaves it.
    let changes = f.tx(update_c(json!([["x", "==", 1]]), json!({"x": 5})));
    assert_eq!(
        m.update(&changes),
        Some(json!({"C": {C1: {"delete": null}}}))
    );
}

#[test]
fn cond_change_on_v1_validates_but_ignores_where() {
    let f = Fixture::with_c_rows();
    let mut m = f.monitor(V1, json!({"C": {"columns": ["x"]}}));
    assert_eq!(
        m.change_conditions(&f.db, &json!({"C": [{"where": [["x", "==", 1]]}]}))
            .unwrap(),
        None
    );
    assert_eq!(
        m.change_conditions(&f.db, &json!({"C": [{"where": [["nope", "==", 1]]}]}))
            .unwrap(),
        None
    );
    let e = m
        .change_conditions(&f.db, &json!({"C": [{"columns": []}]}))
        .unwrap_err();
    assert_eq!(e.details(), Some("changing columns is unsupported"));
    assert_eq!(m.initial(&f.db)["C"].as_object().unwrap().len(), 3);
}

#[test]
fn since_merges_per_row() {
    let mut f = Fixture::with_c_rows();
    let m = f.monitor(
        V3,
        json!({"C": {"columns": ["x", "tag"], "where": [["x", "<", 100]]}}),
    );
    let c4 = "c0000000-0000-0000-0000-000000000004";
    let c5 = "c0000000-0000-0000-0000-000000000005";
    let history = [
        f.tx(
            json!([{"op": "insert", "table": "C", "uuid": c4, "row": {"x": 4}},
                    {"op": "insert", "table": "C", "uuid": c5, "row": {"x": 5}}]),
        ),
        f.tx(update_c(json!([["x", "==", 4]]), json!({"tag": "four"}))),
        f.tx(json!([{"op": "delete", "table": "C", "where": [["x", "==", 5]]}])),
        f.tx(update_c(json!([["x", "==", 1]]), json!({"tag": "b"}))),
        f.tx(update_c(json!([["x", "==", 1]]), json!({"tag": "a"}))),
        f.tx(update_c(json!([["x", "==", 2]]), json!({"tag": "x"}))),
        f.tx(update_c(json!([["x", "==", 2]]), json!({"tag": "y"}))),
        f.tx(update_c(json!([["x", "==", 3]]), json!({"x": 300}))),
    ];
    assert_eq!(
        m.since(history.iter()),
        json!({"C": {
            // C1 changed and changed back: its monitored columns are equal, nothing to say.
            C2: {"modify": {"tag": "y"}},
            C3: {"delete": null},
            c4: {"insert": {"x": 4, "tag": "four"}}
            // c5 was inserted and deleted in the range.
        }})
    );
    assert_eq!(m.since(std::iter::empty()), json!({}));
    assert_eq!(
        m.since(history[2..3].iter()),
        json!({"C": {c5: {"delete": null}}})
    );
}

#[test]
fn request_errors() {
    let f = Fixture::new();
    let schema = f.db.schema();
    // (version, request, tag, details, syntax)
    let cases: Vec<(MonitorVersion, Value, &str, &str, Option<&str>)> = vec![
        (
            V1,
            json!({"C": {"where": []}}),
            "syntax error",
            "Parsing table C failed: Member 'where' is present but not allowed here.",
            Some(r#"{"where":[]}"#),
        ),
        (
            V2,
            json!({"Nope": {}}),
            "syntax error",
            "no table named Nope",
            None,
        ),
        (
            V2,
            json!([]),
            "syntax error",
            "monitor-requests must be object",
            Some("[]"),
        ),
        (
            V1,
            json!({"C": 1}),
            "syntax error",
            "Parsing table C failed: Object expected.",
            None,
        ),
        (
            V1,
            json!({"C": {"columns": ["nope"]}}),
            "syntax error",
            "nope is not a valid column name",
            Some(r#"["nope"]"#),
        ),
        (
            V1,
            json!({"C": {"columns": [1]}}),
            "syntax error",
            "array of column names expected",
            Some("[1]"),
        ),
        (
            V2,
            json!({"C": [{"columns": ["x"]}, {"columns": ["x"]}]}),
            "syntax error",
            "column x mentioned more than once",
            Some(r#"["x"]"#),
        ),
        (
            V2,
            json!({"C": [{"columns": ["x"]}, {}]}),
            "syntax error",
            "column x mentioned more than once",
            None,
        ),
        (
            V2,
            json!({"C": {"select": {"initial": "yes"}}}),
            "syntax error",
            "Parsing table C select failed: Type mismatch for member 'initial'.",
            Some(r#"{"initial":"yes"}"#),
        ),
        (
            V3,
            json!({"C": {"where": [["nope", "==", 1]]}}),
            "unknown column",
            "No column nope in table C.",
            Some(r#"["nope","==",1]"#),
        ),
        (
            V2,
            json!({"C": [{"where": [["x", "==", 1]]}, {"columns": [], "where": [["nope", "==", 1]]}]}),
            "unknown column",
            "No column nope in table C.",
            Some(r#"["nope","==",1]"#),
        ),
    ];
    for (v, req, tag, details, syntax) in cases {
        let e = Monitor::new(schema, v, &req).unwrap_err();
        assert_eq!(
            (e.tag_str(), e.details(), e.syntax.as_deref()),
            (tag, Some(details), syntax),
            "{req}"
        );
    }
}

#[test]
fn only_the_first_where_applies() {
    let f = Fixture::with_c_rows();
    let m = f.monitor(V2, json!({"C": [{"columns": ["x"], "where": [["x", "==", 1]]}, {"columns": ["tag"], "where": [["x", "==", 2]]}]}));
    assert_eq!(
        m.initial(&f.db),
        json!({"C": {C1: {"initial": {"x": 1, "tag": "a"}}}})
    );
    let m = f.monitor(
        V2,
        json!({"C": [{"columns": ["x"]}, {"columns": ["tag"], "where": [["x", "==", 2]]}]}),
    );
    assert_eq!(m.initial(&f.db)["C"].as_object().unwrap().len(), 3);
}

#[test]
fn unmonitored_tables_are_skipped() {
    let mut f = Fixture::new();
    let m = f.monitor(V2, json!({"C": {"columns": ["x"]}}));
    assert!(m.monitors_table("C") && !m.monitors_table("A"));
    let changes = f.tx(json!([{"op": "insert", "table": "A", "row": {"s13": 1}}]));
    assert_eq!(m.update(&changes), None);
}
