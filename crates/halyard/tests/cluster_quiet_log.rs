//! A member logs nothing per write: one client writing one row at a time (ovn-northd's and
//! ovn-nbctl's pattern), at the leader and then at a follower, leaves every member's log as it
//! was. openraft's responder logged a warning for each write of the leader's own clients (their
//! answer comes from the member's own apply, and the proposal's receiver is dropped): thousands
//! of lines a second, each a write to stderr on the Raft worker.
//!
//! Nor does a leader log every failed request to a follower that stopped answering in time: one
//! line says replication to it fails, another that it resumed. openraft logged three lines
//! (two of them errors) per failed request, one every heartbeat interval: a CI machine's stall
//! of a quarter second was 21 lines, a follower stopped for seconds was hundreds. Nor, with a
//! member down, every read: each read's check of the leader's leadership logged an error per
//! member that did not answer (91 % of the lines of a 420 s fault soak).

use std::time::Duration;

use halyard_testkit::cluster::*;
use serde_json::json;

const NB: &str = "OVN_Northbound";
const WRITES: usize = 300;

fn log_lines(cluster: &mut Cluster, index: usize) -> usize {
    cluster.member(index).log_tail(usize::MAX).lines().count()
}

/// The lines member `index` logged after its first `before`, checked to be fewer than ten
/// (`during` says what ran meanwhile) and to include one line containing each of `expected`.
fn assert_few_lines(
    cluster: &mut Cluster,
    index: usize,
    before: usize,
    during: &str,
    expected: &[&str],
) {
    let log = cluster.member(index).log_tail(usize::MAX);
    let grown: Vec<&str> = log.lines().skip(before).collect();
    let shown = grown.join("\n");
    assert!(
        grown.len() < 10,
        "member {index}'s log grew by {} lines during {during}:\n{shown}",
        grown.len(),
    );
    for e in expected {
        assert!(
            grown.iter().any(|l| l.contains(e)),
            "no line with {e:?}:\n{shown}"
        );
    }
}

#[test]
fn one_writer_at_a_time_leaves_the_logs_quiet() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let follower = cluster.others(leader)[0];
    for (what, at) in [("the leader", leader), ("a follower", follower)] {
        let before: Vec<usize> = (1..=3).map(|i| log_lines(&mut cluster, i)).collect();
        let addr = cluster.member(at).addr();
        let mut rpc = Rpc::connect(&addr, Duration::from_secs(30)).expect("connect");
        for n in 0..WRITES {
            let name = format!("quiet-{at}-{n}");
            rpc.transact(
                NB,
                vec![json!({"op": "insert", "table": "Logical_Switch", "row": {"name": name}})],
            )
            .unwrap_or_else(|e| panic!("write {n} at {what}: {e}"));
        }
        for i in 1..=3 {
            let grew = log_lines(&mut cluster, i) - before[i - 1];
            assert!(
                grew < 10,
                "member {i}'s log grew by {grew} lines during {WRITES} writes at {what}:\n{}",
                cluster.member(i).log_tail(20)
            );
        }
    }
}

#[test]
fn a_stalled_follower_is_logged_once_not_every_heartbeat() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let follower = cluster.others(leader)[0];
    let before = log_lines(&mut cluster, leader);
    let mut rpc =
        Rpc::connect(&cluster.member(leader).addr(), Duration::from_secs(30)).expect("connect");
    cluster.member(follower).pause();
    // Three seconds of writes (they commit with the other follower): sixty heartbeat intervals.
    let start = std::time::Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(3) {
        rpc.transact(
            NB,
            vec![json!({"op": "insert", "table": "Logical_Switch", "row": {"name": format!("stall-{n}")}})],
        )
        .unwrap_or_else(|e| panic!("write {n} with a follower stopped: {e}"));
        n += 1;
    }
    cluster.member(follower).resume();
    // Halyard's own progress monitor says when the follower's match index moves again.
    let caught_up = |cluster: &mut Cluster| {
        let log = cluster.member(leader).log_tail(usize::MAX);
        let found = log
            .lines()
            .skip(before)
            .any(|l| l.contains("advances again"));
        found.then_some(())
    };
    wait_until(
        "the stopped follower catches up",
        Duration::from_secs(10),
        || caught_up(&mut cluster),
    );
    let during = format!("{n} writes with a follower stopped for 3 s");
    let expected = ["failed error=", "resumed after"];
    assert_few_lines(&mut cluster, leader, before, &during, &expected);
}

#[test]
fn a_dead_member_is_not_logged_at_every_read() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    let leader = cluster.wait_leader(Duration::from_secs(30));
    let dead = cluster.others(leader)[0];
    cluster.member(dead).kill();
    let before = log_lines(&mut cluster, leader);
    let mut rpc =
        Rpc::connect(&cluster.member(leader).addr(), Duration::from_secs(30)).expect("connect");
    // Each read-only transaction waits for a read index: the leader's leadership confirmed by
    // a quorum, asked of every member.
    for n in 0..WRITES {
        let select = json!({"op": "select", "table": "Logical_Switch", "where": []});
        rpc.transact(NB, vec![select])
            .unwrap_or_else(|e| panic!("read {n} with a member down: {e}"));
    }
    let during = format!("{WRITES} reads with a member down");
    let expected = ["no answer while confirming leadership for reads"];
    assert_few_lines(&mut cluster, leader, before, &during, &expected);
}
