//! Replacing a dead member, as the README's operations section says: kick it through a live
//! member's control socket (real ovs-appctl), join a fresh member at the same Raft address, and
//! `halyard status` shows a healthy 3-member cluster with the data on the newcomer.

use std::time::Duration;

use halyard_testkit::ops::*;

#[test]
fn replace_a_dead_member() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let live = cluster.other_than(leader);
    let dead = (0..3).find(|i| *i != leader && *i != live).unwrap();
    nbctl(&cluster.members[live].remote(), &["ls-add", "before"]);

    cluster.members[dead].kill();
    let dead_addr = cluster.members[dead].raft_addr.clone();
    let kicked = appctl(
        &cluster.members[live].ctl,
        &["cluster/kick", NB, &format!("tcp:{dead_addr}")],
    );
    assert_eq!(kicked.ok("kick"), "sent removal request to leader\n");
    nbctl(&cluster.members[leader].remote(), &["ls-add", "between"]);

    // A fresh member at the dead one's Raft address.
    let dir = cluster.dir.path().to_path_buf();
    let mut fresh = new_member(&dir, 7);
    fresh.raft_addr = dead_addr.clone();
    let peer = cluster.members[live].raft_addr.clone();
    halyard(&[
        "join-cluster",
        "--data-dir",
        fresh.dir.to_str().unwrap(),
        "--raft-addr",
        &dead_addr,
        "--peer",
        &peer,
    ])
    .ok("join-cluster");
    fresh.serve(&[]);
    let remote = fresh.remote();
    wait_for(
        Duration::from_secs(90),
        "the new member to serve the data",
        || {
            let out = run(
                "ovn-nbctl",
                &[&format!("--db={remote}"), "--timeout=5", "ls-list"],
            );
            (out.stdout.contains("before") && out.stdout.contains("between")).then_some(())
        },
    );
    let seed = format!("tcp:{}", cluster.members[leader].raft_addr);
    let table = wait_for(
        Duration::from_secs(60),
        "a healthy 3-member cluster",
        || {
            let out = halyard(&["status", "--remote", &seed]);
            (out.code == Some(0)).then_some(out.stdout)
        },
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.trim_end().ends_with(" healthy"))
            .count(),
        3,
        "{table}"
    );
    let new_sid = appctl(&fresh.ctl, &["cluster/sid", NB])
        .ok("sid")
        .to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&new_sid[..4]) && l.contains(&dead_addr)),
        "{table}"
    );
}
