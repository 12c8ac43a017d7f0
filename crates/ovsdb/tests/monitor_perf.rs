//! Throughput of the monitor engine where the server spends it: one applied transaction is
//! diffed for every monitor of every session. Ignored by default (timing, not behaviour);
//! run with `cargo test -p ovsdb --release --test monitor_perf -- --ignored --nocapture`.
//!
//! Setup: OVN-like load on the monitor test schema: 5000 rows, one transaction modifying
//! 200 of them (a scalar and a set column) and inserting 50, seen by 500 v2 monitors with
//! conditions (like ovn-controllers) and 20 unconditional monitors of every column (like
//! northd), plus the `initial` of one unconditional monitor.

use std::sync::Arc;
use std::time::Instant;

use ovsdb::monitor::{Monitor, MonitorVersion};
use ovsdb::transaction::SeqEnv;
use ovsdb::{Database, DatabaseSchema};
use serde_json::{json, Value};

#[test]
#[ignore]
fn monitor_throughput() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/monitor/monitor.ovsschema"
    );
    let schema_json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let schema = Arc::new(DatabaseSchema::from_json(&schema_json).unwrap());
    let mut db = Database::new(schema.clone());
    let mut env = SeqEnv::new(1);
    let ops: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"op": "insert", "table": "C", "row": {
                "x": i, "tag": format!("chassis-{}", i % 500),
                "tags": ["set", [format!("t{}", i % 7), format!("u{}", i % 11)]]}})
        })
        .collect();
    assert!(db.transact(&ops, &mut env).changes.is_some());

    let conditional: Vec<Monitor> = (0..500)
        .map(|c| {
            let req = json!({"C": {"columns": ["x", "tag", "tags"], "where": [["tag", "==", format!("chassis-{c}")], ["x", "<", 10]]}});
            Monitor::new(&schema, MonitorVersion::V2, &req).unwrap()
        })
        .collect();
    let full: Vec<Monitor> = (0..20)
        .map(|_| Monitor::new(&schema, MonitorVersion::V2, &json!({"C": {}})).unwrap())
        .collect();

    let t = Instant::now();
    let initial = full[0].initial(&db);
    println!(
        "initial of 5000 rows: {:?} ({} bytes)",
        t.elapsed(),
        initial.to_string().len()
    );

    let mut ops: Vec<Value> = (0..200)
        .map(|i| {
            json!({"op": "update", "table": "C", "where": [["x", "==", i * 25]],
                   "row": {"tags": ["set", ["t0", "new"]], "oz": i}})
        })
        .collect();
    ops.extend((0..50).map(
        |i| json!({"op": "insert", "table": "C", "row": {"x": 10_000 + i, "tag": "chassis-3"}}),
    ));
    let changes = db.transact(&ops, &mut env).changes.unwrap();
    assert_eq!(changes.len(), 250);

    for (name, set) in [("conditional", &conditional), ("full", &full)] {
        let t = Instant::now();
        let n = set.iter().filter_map(|m| m.update(&changes)).count();
        println!(
            "  {name}: {} monitors in {:?}, {n} notifications",
            set.len(),
            t.elapsed()
        );
    }
    let t = Instant::now();
    let mut sent = 0;
    let mut bytes = 0;
    for m in conditional.iter().chain(full.iter()) {
        if let Some(u) = m.update(&changes) {
            sent += 1;
            bytes += u.to_string().len();
        }
    }
    let el = t.elapsed();
    println!(
        "one 250-row transaction through 520 monitors: {el:?} ({:?} per monitor), {sent} notifications, {bytes} bytes",
        el / 520
    );
}
