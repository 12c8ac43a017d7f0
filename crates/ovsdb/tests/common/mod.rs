//! Shared helpers for the engine tests: the test schema (the one used for the protocol
//! doc's experiments) and a counter-based environment.
#![allow(dead_code)]

use std::sync::Arc;

use ovsdb::{Database, DatabaseSchema, SeqEnv, TxnOutcome};
use serde_json::Value;

pub fn test_schema() -> Arc<DatabaseSchema> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test.ovsschema"
    ))
    .unwrap();
    Arc::new(DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap())
}

pub fn schema_from(v: Value) -> Arc<DatabaseSchema> {
    Arc::new(DatabaseSchema::from_json(&v).unwrap())
}

pub struct Fixture {
    pub db: Database,
    pub env: SeqEnv,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            db: Database::new(test_schema()),
            env: SeqEnv::new(0),
        }
    }

    pub fn with_schema(s: Arc<DatabaseSchema>) -> Fixture {
        Fixture {
            db: Database::new(s),
            env: SeqEnv::new(0),
        }
    }

    /// Runs `ops` through `Database::transact` and, on a copy of the database, through
    /// `Database::transact_text` on their JSON text: both must agree on everything.
    pub fn run(&mut self, ops: Value) -> TxnOutcome {
        let text = ops.to_string();
        let ops = ops.as_array().unwrap().clone();
        let (mut db2, mut env2) = (self.db.clone(), self.env.clone());
        let out = self.db.transact(&ops, &mut self.env);
        let out2 = db2
            .transact_text(&text, &mut env2)
            .expect("JSON text parses");
        assert_eq!(out, out2, "transact_text differs for {text}");
        assert!(
            db2 == self.db,
            "transact_text left another database for {text}"
        );
        out
    }

    /// Runs and returns the result array.
    pub fn tx(&mut self, ops: Value) -> Value {
        self.run(ops).result
    }

    /// Runs and asserts every op succeeded (no error objects, no extra element).
    pub fn ok(&mut self, ops: Value) -> Value {
        let n = ops.as_array().unwrap().len();
        let r = self.tx(ops.clone());
        let arr = r.as_array().unwrap();
        assert_eq!(arr.len(), n, "unexpected commit error for {ops}: {r}");
        assert!(
            arr.iter().all(|v| v.get("error").is_none()),
            "error for {ops}: {r}"
        );
        r
    }

    /// The next UUID SeqEnv will hand out, as text.
    pub fn uuid_n(n: u64) -> String {
        uuid::Uuid::from_u64_pair(0, n).to_string()
    }
}

/// The error object at the end (or the first error) of a result array: (tag, details).
pub fn err_of(r: &Value) -> (String, String) {
    let e = r
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v.get("error").is_some())
        .unwrap_or_else(|| panic!("no error in {r}"));
    (
        e["error"].as_str().unwrap().to_string(),
        e.get("details")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    )
}
