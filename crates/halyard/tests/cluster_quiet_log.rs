//! A member logs nothing per write: one client writing one row at a time (ovn-northd's and
//! ovn-nbctl's pattern), at the leader and then at a follower, leaves every member's log as it
//! was. openraft's responder logged a warning for each write of the leader's own clients (their
//! answer comes from the member's own apply, and the proposal's receiver is dropped): thousands
//! of lines a second, each a write to stderr on the Raft worker.

use std::time::Duration;

use halyard_testkit::cluster::*;
use serde_json::json;

const NB: &str = "OVN_Northbound";
const WRITES: usize = 300;

fn log_lines(cluster: &mut Cluster, index: usize) -> usize {
    cluster.member(index).log_tail(usize::MAX).lines().count()
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
