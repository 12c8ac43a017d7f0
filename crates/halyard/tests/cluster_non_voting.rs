//! Non-voting members (`join-cluster --non-voting`, openraft learners that stay learners): they
//! replicate the log and serve clients like any member (linearizable reads, monitors, forwarded
//! writes) but are not part of the quorum, so clients can be spread over more machines without
//! making elections and commits wait for more voters.
//! - a 3-voter cluster with a non-voting member: `halyard status` counts 3 voters and is
//!   healthy; `cluster/status` on it says `cluster member (non-voting)`;
//! - through it: a write commits, a read sees a write made on another member at once, a
//!   monitor gets the update;
//! - the quorum stays 2 of 3: with one voter and the non-voting member killed, writes still
//!   commit (with four voters they could not); both come back and catch up;
//! - `halyard promote` makes it a voter; `halyard kick` removes another non-voting member.

use std::time::Duration;

use halyard_testkit::cluster::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const DB: &str = "OVN_Northbound";

fn nbctl(remote: &str, args: &[&str]) -> String {
    let db = format!("--db={remote}");
    let mut all = vec![db.as_str(), "--timeout=30"];
    all.extend_from_slice(args);
    run_ok("ovn-nbctl", &all, T)
}

fn status(peer: &str) -> (Option<i32>, Value) {
    let out = run(halyard_bin(), &["status", "--remote", peer, "--json"], T);
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status output: {e}: {out:?}"));
    (out.status.code(), doc)
}

/// Whether the membership (as the member at `peer` reports it) has `addr` as a voter.
fn is_voter(peer: &str, addr: &str) -> Option<bool> {
    let doc = raft_status(peer)?;
    doc["members"]
        .as_array()?
        .iter()
        .find(|m| m["address"] == addr)
        .map(|m| m["voter"] == true)
}

fn cluster_status(m: &Member) -> String {
    let ctl = m.data_dir.join("halyard.ctl").display().to_string();
    run_ok("ovs-appctl", &["-t", &ctl, "cluster/status", DB], T)
}

#[test]
fn a_non_voting_member_serves_clients_without_joining_the_quorum() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    cluster.wait_leader(T);
    let nv = cluster.add_non_voting_member();
    let m1 = cluster.members[0].raft_addr.clone();
    let nv_addr = cluster.members[nv - 1].raft_addr.clone();
    assert_eq!(is_voter(&m1, &nv_addr), Some(false));

    // Status: three voters, healthy; the non-voting member is not "catching up".
    let (code, doc) = wait_until("a healthy status", T, || {
        let (code, doc) = status(&m1);
        (code == Some(0)).then_some((code, doc))
    });
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["voters"], json!(3), "{doc:#}");
    let text = cluster_status(&cluster.members[nv - 1]);
    assert!(
        text.contains("Status: cluster member (non-voting)"),
        "{text}"
    );

    // Clients through it: a forwarded write, a read of another member's write, a monitor.
    let nv_remote = cluster.members[nv - 1].remote();
    let m1_remote = cluster.members[0].remote();
    nbctl(&nv_remote, &["ls-add", "through-non-voting"]);
    assert!(nbctl(&m1_remote, &["ls-list"]).contains("through-non-voting"));
    let mut mon = Rpc::connect(&cluster.members[nv - 1].addr(), T).unwrap();
    mon.call(
        "monitor",
        json!([DB, "m", {"Logical_Switch": {"columns": ["name"]}}]),
    )
    .unwrap();
    nbctl(&m1_remote, &["ls-add", "from-m1"]);
    assert!(
        nbctl(&nv_remote, &["ls-list"]).contains("from-m1"),
        "a read at the non-voting member missed a committed write"
    );
    let update = wait_until("the monitor's update", T, || {
        let msg = mon.next_message().ok()?;
        (msg["method"] == "update" && msg.to_string().contains("from-m1")).then_some(msg)
    });
    assert_eq!(update["params"][0], json!("m"));

    // The quorum is 2 of the 3 voters: one voter and the non-voting member down, writes go on.
    cluster.members[2].kill();
    cluster.members[nv - 1].kill();
    nbctl(&m1_remote, &["ls-add", "while-down"]);
    cluster.members[2].start_and_wait(DB, UP_TIMEOUT);
    cluster.members[nv - 1].start_and_wait(DB, UP_TIMEOUT);
    let nv_remote = cluster.members[nv - 1].remote();
    assert!(nbctl(&nv_remote, &["ls-list"]).contains("while-down"));
    assert_eq!(is_voter(&m1, &nv_addr), Some(false));

    // Promoted, it votes.
    let out = run_ok(halyard_bin(), &["promote", "--peer", &m1, &nv_addr], T);
    assert!(out.contains("is a voter"), "{out}");
    assert_eq!(is_voter(&m1, &nv_addr), Some(true));
    let (_, doc) = status(&m1);
    assert_eq!(doc["voters"], json!(4), "{doc:#}");
    let refused = run(halyard_bin(), &["promote", "--peer", &m1, &nv_addr], T);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already a voter"),
        "{refused:?}"
    );

    // Another non-voting member, kicked: it leaves the membership.
    let nv2 = cluster.add_non_voting_member();
    let nv2_addr = cluster.members[nv2 - 1].raft_addr.clone();
    assert_eq!(is_voter(&m1, &nv2_addr), Some(false));
    run_ok(halyard_bin(), &["kick", "--peer", &m1, &nv2_addr], T);
    wait_until("the kicked member gone", T, || {
        is_voter(&m1, &nv2_addr).is_none().then_some(())
    });
    let (_, doc) = status(&m1);
    assert_eq!(doc["voters"], json!(4), "{doc:#}");
}
