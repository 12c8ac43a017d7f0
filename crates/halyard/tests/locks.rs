//! Locks over raw sockets: the same steps against the `halyard` binary and a real
//! ovsdb-server 3.1, and every session must receive the same replies and notifications
//! (docs/ovsdb-protocol.md §2.10).

use std::time::Duration;

use halyard_testkit::single::*;
use serde_json::{json, Value};

/// Everything `c` receives until it has been quiet for `quiet`, but the inactivity probes
/// (answered, since a TCP session is probed after 5 s without input).
fn drain(c: &mut Rpc, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(v) = c.recv(quiet) {
        if v["method"] == "echo" && v["id"] == "echo" {
            c.send(&json!({"id": "echo", "result": v["params"], "error": null}))
                .unwrap();
            continue;
        }
        out.push(v);
    }
    out
}

/// Runs `steps` (session index, method, lock name) on fresh sessions to `port`; after each
/// step, what each session received.
fn transcript(port: u16, sessions: usize, steps: &[(usize, &str, &str)]) -> Vec<Vec<Vec<Value>>> {
    let mut conns: Vec<Rpc> = (0..sessions).map(|_| Rpc::connect(port)).collect();
    let mut out = Vec::new();
    for (i, (who, method, name)) in steps.iter().enumerate() {
        let msg = json!({"id": i, "method": method, "params": [name]});
        conns[*who].send(&msg).unwrap();
        out.push(
            conns
                .iter_mut()
                .map(|c| drain(c, Duration::from_millis(500)))
                .collect(),
        );
    }
    out
}

/// A session whose `steal` was stolen by another `steal` is no longer queued, but it still
/// has to `unlock` before locking again, and that `unlock` is answered `{}` (it was
/// answered `"unlock" without "lock" or "steal"`). A second `unlock` is refused.
#[test]
fn unlock_after_a_stolen_steal_matches_ovsdb_server() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let steps = [
        (0, "steal", "L"),
        (1, "steal", "L"),
        (0, "lock", "L"),
        (0, "unlock", "L"),
        (0, "unlock", "L"),
        (0, "lock", "L"),
        (1, "unlock", "L"),
        (0, "unlock", "L"),
    ];
    let theirs = transcript(real.port, 2, &steps);
    let unlock_error = json!({"syntax": "[\"L\"]", "details": "unlock: \"unlock\" without \"lock\" or \"steal\"", "error": "syntax error"});
    assert_eq!(
        theirs,
        vec![
            vec![
                vec![json!({"id": 0, "result": {"locked": true}, "error": null})],
                vec![]
            ],
            vec![
                vec![json!({"id": null, "method": "stolen", "params": ["L"]})],
                vec![json!({"id": 1, "result": {"locked": true}, "error": null})],
            ],
            vec![
                vec![
                    json!({"id": 2, "error": {"syntax": "[\"L\"]", "details": "must issue \"unlock\" before new \"lock\"", "error": "syntax error"}})
                ],
                vec![],
            ],
            vec![vec![json!({"id": 3, "result": {}, "error": null})], vec![]],
            vec![vec![json!({"id": 4, "error": unlock_error})], vec![]],
            vec![
                vec![json!({"id": 5, "result": {"locked": false}, "error": null})],
                vec![]
            ],
            vec![
                vec![json!({"id": null, "method": "locked", "params": ["L"]})],
                vec![json!({"id": 6, "result": {}, "error": null})],
            ],
            vec![vec![json!({"id": 7, "result": {}, "error": null})], vec![]],
        ],
        "ovsdb-server itself"
    );
    let ours = transcript(h.port, 2, &steps);
    assert_eq!(ours, theirs, "halyard and ovsdb-server differ");
}

/// One round on fresh sessions: A locks, B steals (A is told `stolen`), B unlocks (A is told
/// `locked`). Returns how many of the two notifications had not reached A's socket at the
/// moment B received the reply to the request that caused it.
fn late_notifications(port: u16, name: &str) -> usize {
    let (mut a, mut b) = (Rpc::connect(port), Rpc::connect(port));
    let reply = a.call("lock", json!([name])).unwrap();
    assert_eq!(reply["result"], json!({"locked": true}));
    let mut late = 0;
    for (method, notice) in [("steal", "stolen"), ("unlock", "locked")] {
        b.call(method, json!([name])).unwrap();
        let arrived = a.pump().unwrap();
        if !arrived.iter().any(|m| m["method"] == notice) {
            late += 1;
            let m = a.recv(Duration::from_secs(5)).unwrap();
            assert_eq!(m["method"], notice, "{m}");
        }
    }
    late
}

/// ovsdb-server writes `stolen`/`locked` to the other session before it answers the `steal`
/// or `unlock` that caused them (Halyard's reply could overtake them, about 1 round
/// in 100 with other clients busy). Several pairs at once, next to a writer whose monitor
/// keeps the member's workers busy; not a single notification may be late.
#[test]
fn lock_notifications_reach_the_other_session_before_the_reply() {
    fn run(port: u16) -> usize {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut w = Rpc::connect(port);
                let mut m = Rpc::connect(port);
                m.call(
                    "monitor",
                    json!(["OVN_Northbound", null, {"Logical_Switch": {}}]),
                )
                .unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = m.pump();
                    w.transact(
                        "OVN_Northbound",
                        json!([{"op": "insert", "table": "Logical_Switch", "row": {"name": "x".repeat(2000)}}]),
                    );
                }
            })
        };
        let pairs: Vec<_> = (0..3)
            .map(|p| {
                std::thread::spawn(move || {
                    (0..120)
                        .map(|i| late_notifications(port, &format!("L{p}_{i}")))
                        .sum::<usize>()
                })
            })
            .collect();
        let late = pairs.into_iter().map(|t| t.join().unwrap()).sum();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap();
        late
    }
    let real = OvsdbServer::start(NB_SCHEMA);
    assert_eq!(run(real.port), 0, "ovsdb-server itself");
    let h = Halyard::start(NB_SCHEMA);
    assert_eq!(
        run(h.port),
        0,
        "halyard: notifications overtaken by the reply"
    );
}
