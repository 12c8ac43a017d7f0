//! Blocking `wait` operations over raw sockets, against the `halyard` binary and a real
//! ovsdb-server 3.1 with the same expectations (docs/ovsdb-protocol.md §5.2 `wait`): a wait
//! without `timeout` blocks for ever, and a wait fails only once ITS OWN timeout has elapsed
//! (ovsdb/execution.c decides per wait from the elapsed time). Halyard once failed every
//! blocked wait at the smallest timeout of the transaction, even one of a wait that held.
//! Timings are compared coarsely: "still blocked after 2.5 s" or "answered after ~X ms".

use std::time::{Duration, Instant};

use halyard_testkit::single::*;
use serde_json::{json, Value};

const DB: &str = "OVN_Northbound";
/// A reply later than this after the expected time fails the test (machines are loaded).
const SLACK_MS: u64 = 450;
const BLOCKED_FOR: Duration = Duration::from_millis(2500);

/// Holds now and stays so (NB_Global is empty and nothing writes it).
fn met(timeout: Option<u64>) -> Value {
    with_timeout(
        json!({"op": "wait", "table": "NB_Global", "where": [], "columns": ["name"],
               "until": "==", "rows": []}),
        timeout,
    )
}

/// Never holds (no NB_Global row is named "x").
fn unmet(timeout: Option<u64>) -> Value {
    with_timeout(
        json!({"op": "wait", "table": "NB_Global", "where": [], "columns": ["name"],
               "until": "==", "rows": [{"name": "x"}]}),
        timeout,
    )
}

fn with_timeout(mut op: Value, timeout: Option<u64>) -> Value {
    if let Some(t) = timeout {
        op["timeout"] = json!(t);
    }
    op
}

#[derive(Debug, Clone)]
enum Expect {
    /// No reply within `BLOCKED_FOR`.
    Blocked,
    /// This result, within `SLACK_MS` of `at_ms` (and not before it). In an error detail
    /// `"wait" timed out after N ms`, N must be within the same window and is compared as
    /// `after <N> ms`.
    Answer { at_ms: u64, result: Value },
}

fn timed_out(n_ok: usize, failed_at: usize, n_ops: usize) -> Value {
    let mut r: Vec<Value> = (0..n_ok).map(|_| json!({})).collect();
    r.push(json!({"error": "timed out", "details": "\"wait\" timed out after <N> ms"}));
    r.resize(n_ops.max(failed_at + 1), Value::Null);
    Value::Array(r)
}

fn cases() -> Vec<(&'static str, Vec<Value>, Expect)> {
    use Expect::*;
    vec![
        ("unmet, no timeout", vec![unmet(None)], Blocked),
        (
            "unmet, timeout 0",
            vec![unmet(Some(0))],
            Answer {
                at_ms: 0,
                result: json!([{"error": "timed out", "details": "\"where\" clause test failed"}]),
            },
        ),
        (
            "unmet, timeout 1000",
            vec![unmet(Some(1000))],
            Answer {
                at_ms: 1000,
                result: timed_out(0, 0, 1),
            },
        ),
        // The issue's example: the met wait's timeout does not apply to the unmet one.
        (
            "unmet no timeout, met timeout 100",
            vec![unmet(None), met(Some(100))],
            Blocked,
        ),
        (
            "met timeout 100, unmet no timeout",
            vec![met(Some(100)), unmet(None)],
            Blocked,
        ),
        (
            "met timeout 100, unmet timeout 1000",
            vec![met(Some(100)), unmet(Some(1000))],
            Answer {
                at_ms: 1000,
                result: timed_out(1, 1, 2),
            },
        ),
        (
            "met timeout 0, unmet timeout 1000",
            vec![met(Some(0)), unmet(Some(1000))],
            Answer {
                at_ms: 1000,
                result: timed_out(1, 1, 2),
            },
        ),
        (
            "unmet timeout 1000, unmet timeout 100",
            vec![unmet(Some(1000)), unmet(Some(100))],
            Answer {
                at_ms: 1000,
                result: timed_out(0, 0, 2),
            },
        ),
        (
            "unmet timeout 1000, unmet no timeout",
            vec![unmet(Some(1000)), unmet(None)],
            Answer {
                at_ms: 1000,
                result: timed_out(0, 0, 2),
            },
        ),
        (
            "unmet timeout 0 after a met wait with timeout 100",
            vec![met(Some(100)), unmet(Some(0))],
            Answer {
                at_ms: 0,
                result: json!([{}, {"error": "timed out", "details": "\"where\" clause test failed"}]),
            },
        ),
        (
            "a write behind an unmet wait",
            vec![
                unmet(None),
                json!({"op": "insert", "table": "Logical_Router", "row": {}}),
            ],
            Blocked,
        ),
    ]
}

/// `"wait" timed out after N ms` → (`… after <N> ms`, N).
fn split_elapsed(result: &Value) -> (Value, Option<u64>) {
    let mut r = result.clone();
    let mut n = None;
    if let Some(ops) = r.as_array_mut() {
        for op in ops {
            let Some(d) = op.get("details").and_then(Value::as_str) else {
                continue;
            };
            if let Some(rest) = d.strip_prefix("\"wait\" timed out after ") {
                n = rest.strip_suffix(" ms").and_then(|s| s.parse().ok());
                op["details"] = json!("\"wait\" timed out after <N> ms");
            }
        }
    }
    (r, n)
}

/// Sends every case on its own session at once, then checks each against its expectation.
fn check_all(server: &str, port: u16) {
    let cases = cases();
    let started = Instant::now();
    let mut sessions: Vec<Rpc> = cases
        .iter()
        .map(|(_, ops, _)| {
            let mut c = Rpc::connect(port);
            let mut params = vec![json!(DB)];
            params.extend(ops.iter().cloned());
            c.send(&json!({"id": 1, "method": "transact", "params": params}))
                .unwrap();
            c
        })
        .collect();
    // Answers in the order they are due, then the blocked ones, so that each is read as it
    // arrives.
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| match cases[i].2 {
        Expect::Answer { at_ms, .. } => at_ms,
        Expect::Blocked => u64::MAX,
    });
    let mut failures = Vec::new();
    for i in order {
        let (name, _, expect) = &cases[i];
        let c = &mut sessions[i];
        let until = match expect {
            Expect::Blocked => started + BLOCKED_FOR,
            Expect::Answer { at_ms, .. } => {
                started + Duration::from_millis(at_ms + SLACK_MS) + BLOCKED_FOR
            }
        };
        let reply = c.reply_to(&json!(1), until.saturating_duration_since(Instant::now()));
        let at_ms = started.elapsed().as_millis() as u64;
        match (expect, reply) {
            (Expect::Blocked, Err(RecvError::Timeout)) => {}
            (
                Expect::Answer {
                    at_ms: want,
                    result,
                },
                Ok(reply),
            ) => {
                let (got, n) = split_elapsed(&reply["result"]);
                if &got != result {
                    failures.push(format!("{name}: got {}, want {result}", reply["result"]));
                }
                if let Some(n) = n {
                    if n < *want || n > want + SLACK_MS {
                        failures.push(format!("{name}: timed out after {n} ms, want ~{want}"));
                    }
                }
                if at_ms + 50 < *want || at_ms > want + SLACK_MS {
                    failures.push(format!("{name}: answered after {at_ms} ms, want ~{want}"));
                }
            }
            (Expect::Blocked, Ok(reply)) => failures.push(format!(
                "{name}: answered {reply} after {at_ms} ms, want blocked"
            )),
            (e, r) => failures.push(format!("{name}: got {r:?}, want {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{server}:\n{}", failures.join("\n"));
}

#[test]
fn blocked_waits_time_out_per_wait_as_ovsdb_server() {
    let real = OvsdbServer::start(NB_SCHEMA);
    check_all("ovsdb-server", real.port);
    let h = Halyard::start(NB_SCHEMA);
    check_all("halyard", h.port);
}

/// A change releases blocked transactions, and a `timeout: 0` wait reached only after the
/// block fails with the elapsed time, as in ovsdb-server (its elapsed time is no longer 0).
fn check_released_by_a_change(server: &str, port: u16) {
    let ls_empty = |until: &str, timeout: Option<u64>| {
        with_timeout(
            json!({"op": "wait", "table": "Logical_Switch", "where": [], "columns": ["name"],
                   "until": until, "rows": []}),
            timeout,
        )
    };
    let sw0 = json!({"op": "wait", "table": "Logical_Switch", "where": [["name", "==", "sw0"]],
                     "columns": ["name"], "until": "==", "rows": [{"name": "sw0"}]});
    let mut a = Rpc::connect(port);
    a.send(&json!({"id": 1, "method": "transact",
                   "params": [DB, ls_empty("!=", None), ls_empty("==", Some(0))]}))
        .unwrap();
    let mut b = Rpc::connect(port);
    b.send(&json!({"id": 1, "method": "transact",
                   "params": [DB, sw0, {"op": "insert", "table": "Logical_Router", "row": {"name": "r"}}]}))
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let started = Instant::now();
    let mut w = Rpc::connect(port);
    w.transact(
        DB,
        json!([{"op": "insert", "table": "Logical_Switch", "row": {"name": "sw0"}}]),
    );
    let ra = a.reply_to(&json!(1), Duration::from_secs(5)).unwrap();
    let rb = b.reply_to(&json!(1), Duration::from_secs(5)).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(SLACK_MS),
        "{server}: released late"
    );
    let (got, n) = split_elapsed(&ra["result"]);
    assert_eq!(
        got,
        json!([{}, {"error": "timed out", "details": "\"wait\" timed out after <N> ms"}]),
        "{server}: {ra}"
    );
    assert!(n.unwrap() >= 600, "{server}: {ra}");
    assert_eq!(rb["result"][0], json!({}), "{server}: {rb}");
    assert!(rb["result"][1]["uuid"].is_array(), "{server}: {rb}");
    let routers = w.transact(
        DB,
        json!([{"op": "select", "table": "Logical_Router", "where": [], "columns": ["name"]}]),
    );
    assert_eq!(routers, json!([{"rows": [{"name": "r"}]}]), "{server}");
}

#[test]
fn blocked_waits_are_released_by_a_change_as_in_ovsdb_server() {
    let real = OvsdbServer::start(NB_SCHEMA);
    check_released_by_a_change("ovsdb-server", real.port);
    let h = Halyard::start(NB_SCHEMA);
    check_released_by_a_change("halyard", h.port);
}

/// A write transaction blocked on a `wait` is re-run when data changes, not on every applied
/// log entry: waking on the applied index re-proposed it in a loop, its own blocked proposal
/// moving the index (thousands of log entries a second while it waited).
#[test]
fn a_blocked_write_does_not_fill_the_log() {
    let h = Halyard::start(NB_SCHEMA);
    let last_log = || {
        let out = run_args(
            halyard_bin(),
            &["status", "--remote", &format!("127.0.0.1:{}", h.raft_port)],
        );
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains("leader") && l.contains("self"))
            .unwrap_or_else(|| panic!("no leader line in {}", out.stdout))
            .to_string();
        // ID ADDRESS ROLE TERM LEADER VOTE LAST-LOG ...
        line.split_whitespace()
            .nth(6)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let before = last_log();
    let mut c = Rpc::connect(h.port);
    c.send(
        &json!({"id": 1, "method": "transact", "params": [DB, unmet(None),
                   {"op": "insert", "table": "Logical_Router", "row": {}}]}),
    )
    .unwrap();
    assert!(matches!(
        c.reply_to(&json!(1), Duration::from_secs(1)),
        Err(RecvError::Timeout)
    ));
    let after = last_log();
    assert!(
        after <= before + 3,
        "the log grew from {before} to {after} while one write was blocked"
    );
}
