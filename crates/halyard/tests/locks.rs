//! Locks over raw sockets: the same steps against the `halyard` binary and a real
//! ovsdb-server 3.1, and every session must receive the same replies and notifications
//! (docs/ovsdb-protocol.md §2.10).

mod common;

use std::time::Duration;

use common::*;
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
/// has to `unlock` before locking again, and that `unlock` is answered `{}` (issue 15: it was
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
