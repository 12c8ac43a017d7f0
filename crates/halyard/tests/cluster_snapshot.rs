//! A member that catches up through a snapshot (its log is behind what the leader kept) while
//! the rest of the cluster goes on.
//!
//! openraft 0.9 sends a follower nothing but the snapshot's chunks while one is in flight to it,
//! and neither the chunks nor the install the last one starts counted as contact with the
//! leader: the member called elections during the transfer, its higher term deposed the leader,
//! and the next leader started the transfer again. With a snapshot of a few hundred megabytes the
//! cluster lost its leader every few seconds for as long as the member was there
//! (`crates/raft/src/service.rs`, `with_leader_contact`).

use std::time::{Duration, Instant};

use halyard_testkit::cluster::*;
use serde_json::json;

const NB: &str = "OVN_Northbound";

fn max_term(cluster: &mut Cluster) -> u64 {
    (1..=cluster.members.len())
        .filter_map(|i| cluster.member(i).raft_status())
        .filter_map(|s| s["term"].as_u64())
        .max()
        .expect("some member answers")
}

#[test]
fn a_member_installing_a_large_snapshot_deposes_no_leader() {
    // Few entries kept behind a snapshot, so that the restarted member is sent one.
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &["--log-kept-behind-snapshot", "10"]);
    let leader = cluster.wait_leader(Duration::from_secs(60));
    let behind = cluster.others(leader)[0];
    cluster.member(behind).kill();

    // About 96 MB of rows: a snapshot whose transfer and install take longer than an election
    // timer, then more small writes than the leader keeps behind its snapshot.
    let mut rpc =
        Rpc::connect(&cluster.member(leader).addr(), Duration::from_secs(30)).expect("connect");
    rpc.set_timeout(Duration::from_secs(60));
    let value = "v".repeat(100_000);
    for t in 0..80 {
        let ops = (0..12)
            .map(|i| {
                json!({"op": "insert", "table": "Logical_Switch", "row": {
                    "name": format!("big-{t}-{i}"),
                    "external_ids": ["map", [["blob", value]]]}})
            })
            .collect();
        rpc.transact(NB, ops).expect("large insert");
    }
    for i in 0..30 {
        rpc.transact(
            NB,
            vec![json!({"op": "insert", "table": "Logical_Switch", "row": {"name": format!("small-{i}")}})],
        )
        .expect("small insert");
    }
    let ctl = cluster.member(leader).data_dir.join("halyard.ctl");
    run_ok(
        "ovs-appctl",
        &["-t", ctl.to_str().unwrap(), "ovsdb-server/compact"],
        Duration::from_secs(120),
    );
    // The member is sent a snapshot only once the leader no longer has the entries it lacks.
    wait_until(
        "the leader to purge its log",
        Duration::from_secs(60),
        || {
            let status = run_ok(
                "ovs-appctl",
                &["-t", ctl.to_str().unwrap(), "cluster/status", NB],
                Duration::from_secs(10),
            );
            let first: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("Log: ["))
                .and_then(|l| l.split(',').next())
                .and_then(|n| n.trim().parse().ok())?;
            (first > 100).then_some(())
        },
    );
    let started = Instant::now();
    cluster.member(behind).start();
    // Counted from its first contact with the leader (the first chunk): until then a member just
    // started may call an election before the leader's next attempt to reach it (openraft backs
    // off 500 ms from an unreachable peer), which is not what this test is about.
    cluster
        .member(behind)
        .wait_leader_contact(Duration::from_secs(60));
    let term = max_term(&mut cluster);
    let log = cluster.member(behind).log.clone();
    wait_until(
        "the restarted member to install the snapshot",
        Duration::from_secs(120),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("snapshot installed")
                .then_some(())
        },
    );
    eprintln!("snapshot received and installed in {:?}", started.elapsed());
    cluster
        .member(behind)
        .wait_ready(NB, Duration::from_secs(60));
    let remote = cluster.member(behind).remote();
    let listed = run_ok(
        "ovsdb-client",
        &[
            "--timeout=30",
            "dump",
            &remote,
            NB,
            "Logical_Switch",
            "name",
        ],
        Duration::from_secs(60),
    );
    assert!(
        listed.contains("big-79-11") && listed.contains("small-29"),
        "the restarted member lacks rows:\n{}",
        &listed[..listed.len().min(2000)]
    );
    assert_eq!(
        max_term(&mut cluster),
        term,
        "an election was held while the member caught up; its log:\n{}",
        cluster.member(behind).log_tail(30)
    );
}
