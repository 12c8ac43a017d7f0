//! Differential suite: the engine against the real ovsdb-server 3.1 (RFC 7047 §5 `transact`
//! semantics plus the Open vSwitch extensions documented in docs/ovsdb-protocol.md).
//!
//! Every scenario in `tests/differential/scenarios/` is run through the engine and its
//! normalised answers are compared with the golden file recorded from ovsdb-server. When
//! `ovsdb-server` is on PATH the scenario is also run live against a fresh server, and the
//! live answers are compared with the golden file too, so the goldens cannot drift from the
//! real thing. With `CI` set, a missing ovsdb-server is an error, not a skip.
//!
//! `HALYARD_REGEN_GOLDEN=1` rewrites every golden file from the live server.
//! `HALYARD_DIFF_FILTER=substring` runs only the scenarios whose name contains it.

#[path = "differential/normalise.rs"]
mod normalise;
#[path = "differential/real_server.rs"]
mod real_server;
#[path = "differential/scenario.rs"]
mod scenario;

use ovsdb::{Database, DatabaseSchema, TxnEnv};
use scenario::Scenario;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;
use uuid::Uuid;

/// Deterministic environment: UUIDs from a fixed pseudo-random sequence, no lock held, and
/// every transaction on its first run (elapsed 0), as the server runs it on arrival.
struct TestEnv {
    state: u64,
}

impl TestEnv {
    fn new() -> TestEnv {
        TestEnv {
            state: 0x0005_eed0_f4a1_1a4d,
        }
    }
    fn next_u64(&mut self) -> u64 {
        // splitmix64: well spread, so UUID order does not follow creation order (the real
        // server's random UUIDs do not either).
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl TxnEnv for TestEnv {
    fn new_uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
    fn has_lock(&self, _lock: &str) -> bool {
        false
    }
    fn wait_elapsed_ms(&self) -> u64 {
        0
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// Runs a scenario through the engine; raw (not normalised) results, one per transaction.
fn run_engine(s: &Scenario) -> Result<Vec<Value>, String> {
    let schema = DatabaseSchema::from_json(&s.schema)
        .map_err(|e| format!("engine rejected schema {}: {e:?}", s.schema_path.display()))?;
    let mut db = Database::new(Arc::new(schema));
    let mut env = TestEnv::new();
    // The same transactions through the text entry point, in lockstep.
    let mut text_db = db.clone();
    let mut text_env = TestEnv::new();
    let mut out = Vec::new();
    for ops in &s.transactions {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let out = db.transact(ops, &mut env);
            let text = Value::Array(ops.to_vec()).to_string();
            let text_out = text_db
                .transact_text(&text, &mut text_env)
                .expect("JSON text parses");
            assert_eq!(out, text_out, "transact_text differs for {text}");
            assert!(
                text_db == db,
                "transact_text left another database for {text}"
            );
            out
        }));
        match r {
            Ok(outcome) if outcome.blocked => {
                out.push(Value::String("<engine reported blocked>".into()))
            }
            Ok(outcome) => out.push(outcome.result),
            Err(p) => {
                out.push(Value::String(format!(
                    "<engine panicked: {}>",
                    panic_message(&*p)
                )));
                // The database may be half-updated after a panic; later answers mean nothing.
                break;
            }
        }
    }
    Ok(out)
}

/// Runs a scenario against a fresh ovsdb-server; raw results, one per transaction.
fn run_real(s: &Scenario) -> Result<Vec<Value>, String> {
    let server = real_server::RealServer::start(&s.schema_path)?;
    real_server::run_transactions(&server, &s.transactions)
}

#[derive(Default)]
struct Report {
    scenarios: usize,
    transactions: usize,
    mismatches: usize,
    lines: Vec<String>,
}

impl Report {
    fn mismatch(&mut self, who: &str, s: &Scenario, t: usize, expected: &Value, got: &Value) {
        self.mismatches += 1;
        let mut text = format!(
            "MISMATCH ({who}) scenario {} transaction {}\n  request:  {}\n",
            s.name,
            t + 1,
            Value::Array(s.transactions[t].clone())
        );
        // Point at the first differing op result to make long answers readable.
        if let (Some(e), Some(g)) = (expected.as_array(), got.as_array()) {
            if let Some(i) = (0..e.len().max(g.len())).find(|&i| e.get(i) != g.get(i)) {
                text.push_str(&format!(
                    "  first difference at result element {} of {}/{}:\n    expected: {}\n    got:      {}\n",
                    i + 1,
                    e.len(),
                    g.len(),
                    e.get(i).unwrap_or(&Value::Null),
                    g.get(i).unwrap_or(&Value::Null)
                ));
            }
        }
        text.push_str(&format!("  expected: {expected}\n  got:      {got}\n"));
        self.lines.push(text);
    }

    fn compare(&mut self, who: &str, s: &Scenario, expected: &[Value], got: &[Value]) {
        for t in 0..s.transactions.len() {
            let e = expected.get(t).unwrap_or(&Value::Null);
            let g = got.get(t).unwrap_or(&Value::Null);
            if e != g {
                self.mismatch(who, s, t, e, g);
            }
        }
    }
}

#[test]
fn differential() {
    let regen = std::env::var_os("HALYARD_REGEN_GOLDEN").is_some_and(|v| v != "0" && !v.is_empty());
    let filter = std::env::var("HALYARD_DIFF_FILTER").unwrap_or_default();
    let have_server = real_server::available();
    if !have_server {
        if std::env::var_os("CI").is_some() {
            panic!("differential: CI is set but ovsdb-server/ovsdb-tool are not on PATH; install openvswitch-switch (ovsdb-server 3.1)");
        }
        assert!(!regen, "HALYARD_REGEN_GOLDEN needs ovsdb-server on PATH");
        let _ = writeln!(
            std::io::stderr(),
            "differential: ovsdb-server not on PATH: comparing with golden files only"
        );
    }

    let scenarios = scenario::load_all().expect("load scenarios");
    assert!(!scenarios.is_empty(), "no scenarios found");
    let mut report = Report::default();
    for s in scenarios.iter().filter(|s| s.name.contains(&filter)) {
        report.scenarios += 1;
        report.transactions += s.transactions.len();

        let live = if have_server {
            let raw = run_real(s).unwrap_or_else(|e| panic!("{}: ovsdb-server: {e}", s.name));
            Some(normalise::normalise(&s.transactions, &raw))
        } else {
            None
        };
        if regen {
            scenario::write_golden(s, live.as_ref().unwrap()).expect("write golden");
        }

        let golden = match scenario::read_golden(s) {
            Ok(g) => g,
            Err(e) => {
                report.mismatches += 1;
                report.lines.push(format!(
                    "MISSING GOLDEN for {}: {e} (run with HALYARD_REGEN_GOLDEN=1)",
                    s.name
                ));
                continue;
            }
        };
        let requests: Vec<Value> = s
            .transactions
            .iter()
            .map(|t| Value::Array(t.clone()))
            .collect();
        if golden.requests != requests {
            report.mismatches += 1;
            report.lines.push(format!(
                "STALE GOLDEN for {}: its requests differ from the scenario (run with HALYARD_REGEN_GOLDEN=1)",
                s.name
            ));
            continue;
        }
        if let Some(live) = &live {
            report.compare("ovsdb-server live vs golden", s, &golden.results, live);
        }
        match run_engine(s) {
            Ok(raw) => {
                let got = normalise::normalise(&s.transactions, &raw);
                report.compare("engine vs ovsdb-server", s, &golden.results, &got);
            }
            Err(e) => {
                report.mismatches += 1;
                report
                    .lines
                    .push(format!("ENGINE ERROR in {}: {e}", s.name));
            }
        }
    }
    // Written to the real stderr, not through the test harness's capture, so the summary
    // shows up in every run, passing or not.
    let mut err = std::io::stderr().lock();
    for line in &report.lines {
        let _ = writeln!(err, "{line}");
    }
    let _ = writeln!(
        err,
        "differential: {} scenarios, {} transactions, {} mismatches",
        report.scenarios, report.transactions, report.mismatches
    );
    drop(err);
    assert_eq!(
        report.mismatches, 0,
        "differential: {} mismatches (details above)",
        report.mismatches
    );
}

/// The normaliser itself: answers that differ only in random UUIDs, `_version`s, row order and
/// member order must compare equal, and answers that differ in content must not.
#[test]
fn normalisation_hides_only_randomness() {
    let req = vec![
        vec![serde_json::json!({"op": "insert", "table": "A", "row": {}})],
        vec![serde_json::json!({"op": "select", "table": "A", "where": []})],
    ];
    let answer = |u1: &str, v1: &str, u2: &str, x: i64, swap: bool| {
        let r1 = serde_json::json!({"_uuid": ["uuid", u1], "_version": ["uuid", v1], "x": x, "ref": ["uuid", u2]});
        let r2 = serde_json::json!({"x": 1, "_uuid": ["uuid", u2], "_version": ["uuid", v1], "ref": ["set", []]});
        let rows = if swap { vec![r2, r1] } else { vec![r1, r2] };
        vec![
            serde_json::json!([{"uuid": ["uuid", u1]}]),
            serde_json::json!([{"rows": rows}]),
        ]
    };
    let a = normalise::normalise(
        &req,
        &answer(
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
            "33333333-3333-4333-8333-333333333333",
            5,
            false,
        ),
    );
    let b = normalise::normalise(
        &req,
        &answer(
            "44444444-4444-4444-8444-444444444444",
            "55555555-5555-4555-8555-555555555555",
            "66666666-6666-4666-8666-666666666666",
            5,
            true,
        ),
    );
    let c = normalise::normalise(
        &req,
        &answer(
            "44444444-4444-4444-8444-444444444444",
            "55555555-5555-4555-8555-555555555555",
            "66666666-6666-4666-8666-666666666666",
            6,
            true,
        ),
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a[0], serde_json::json!([{"uuid": ["uuid", "<t1.o1>"]}]));
}
