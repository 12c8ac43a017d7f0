//! `monitor_cond_since` across a member restart (ovsdb-server's `found: true` resumption): the
//! transaction history is kept in snapshots, so a client of a restarted member whose last
//! transaction the snapshot covers gets only the changes since, not the whole database.

use std::time::Duration;

use halyard_testkit::cluster::*;
use serde_json::json;

const NB: &str = "OVN_Northbound";

fn add_switch(rpc: &mut Rpc, name: &str) {
    let result = rpc
        .transact(
            NB,
            vec![json!({"op": "insert", "table": "Logical_Switch", "row": {"name": name}})],
        )
        .expect("insert");
    assert!(result[0]["uuid"].is_array(), "{result}");
}

/// `monitor_cond_since` on Logical_Switch names from `last`: (found, last id, names in the
/// update).
fn since(rpc: &mut Rpc, last: &str) -> (bool, String, Vec<String>) {
    let reply = rpc
        .call(
            "monitor_cond_since",
            json!([NB, ["m", last], {"Logical_Switch": [{"columns": ["name"]}]}, last]),
        )
        .expect("monitor_cond_since");
    let found = reply[0].as_bool().expect("found");
    let id = reply[1].as_str().expect("last id").to_string();
    let mut names: Vec<String> = reply[2]["Logical_Switch"]
        .as_object()
        .map(|rows| {
            rows.values()
                .filter_map(|r| {
                    r["insert"]["name"]
                        .as_str()
                        .or(r["initial"]["name"].as_str())
                })
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (found, id, names)
}

#[test]
fn a_restarted_members_clients_resume_with_found_true() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    let m1 = cluster.members[0].addr();
    let mut rpc = Rpc::connect(&m1, Duration::from_secs(30)).expect("connect");
    for name in ["ls0", "ls1", "ls2"] {
        add_switch(&mut rpc, name);
    }
    let zero = "00000000-0000-0000-0000-000000000000";
    let (found, last, names) = since(&mut rpc, zero);
    assert!(!found);
    assert_eq!(names, ["ls0", "ls1", "ls2"]);
    for name in ["ls3", "ls4"] {
        add_switch(&mut rpc, name);
    }
    drop(rpc);

    // A snapshot that covers every transaction, then a crash and a restart: what the member
    // knows of the history after it comes from the snapshot alone.
    let ctl = cluster.members[0].data_dir.join("halyard.ctl");
    let out = run(
        "ovs-appctl",
        &["-t", ctl.to_str().unwrap(), "ovsdb-server/compact"],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "compact: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.members[0].kill();
    cluster.members[0].start();
    wait_answers("restarted member", &cluster.members[0].remote(), UP_TIMEOUT);

    let mut rpc = Rpc::connect(&m1, Duration::from_secs(30)).expect("reconnect");
    let (found, _, names) = since(&mut rpc, &last);
    assert!(found, "the id from before the restart is known");
    assert_eq!(names, ["ls3", "ls4"], "only the changes since");
    // An id the cluster never had still gets the whole contents.
    let (found, _, names) = since(&mut rpc, "11111111-2222-3333-4444-555555555555");
    assert!(!found);
    assert_eq!(names.len(), 5);
}
