//! Linearizable reads on every member. A write acknowledged through member A is
//! visible to a read started afterwards through member B: a read-only `transact` (which goes
//! through a read barrier) and the initial contents of a `monitor_cond` (what ovn-nbctl and
//! every IDL client read first), in a loop over all pairs of members, and once more with B
//! made to lag behind (SIGSTOP while A's write commits, SIGCONT just before the read), which
//! is what a loaded follower looks like.

use std::time::{Duration, Instant};

use halyard_testkit::cluster::*;
use serde_json::{json, Value};

const DB: &str = "OVN_Northbound";

fn insert(c: &mut Rpc, name: &str) {
    c.transact(
        DB,
        vec![json!({"op": "insert", "table": "Logical_Switch", "row": {"name": name}})],
    )
    .unwrap_or_else(|e| panic!("insert {name}: {e}"));
}

fn select_names(c: &mut Rpc, name: &str) -> usize {
    let r = c
        .transact(
            DB,
            vec![json!({"op": "select", "table": "Logical_Switch", "where": [["name", "==", name]], "columns": ["name"]})],
        )
        .unwrap_or_else(|e| panic!("select {name}: {e}"));
    r[0]["rows"].as_array().unwrap().len()
}

/// Opens a fresh connection to `addr` and returns whether the initial contents of a
/// `monitor_cond` on Logical_Switch name == `name` hold that row.
fn monitor_sees(addr: &str, name: &str) -> bool {
    let mut c = Rpc::connect(addr, Duration::from_secs(60)).expect("connect");
    let req = json!([DB, Value::Null, {"Logical_Switch": [{"columns": ["name"], "where": [["name", "==", name]]}]}]);
    let r = c
        .call("monitor_cond", req)
        .unwrap_or_else(|e| panic!("monitor_cond: {e}"));
    r.get("Logical_Switch")
        .and_then(Value::as_object)
        .is_some_and(|rows| !rows.is_empty())
}

#[test]
fn a_write_acknowledged_anywhere_is_read_everywhere_afterwards() {
    let cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    let addrs: Vec<String> = cluster.members.iter().map(Member::addr).collect();
    let mut conns: Vec<Rpc> = addrs
        .iter()
        .map(|a| Rpc::connect(a, Duration::from_secs(60)).expect("connect"))
        .collect();
    let rounds = 150;
    let mut stale_monitors = Vec::new();
    let started = Instant::now();
    for i in 0..rounds {
        let a = i % 3;
        let b = (i + 1 + (i / 3) % 2) % 3;
        let name = format!("lin-{i}");
        insert(&mut conns[a], &name);
        let seen = select_names(&mut conns[b], &name);
        assert_eq!(
            seen,
            1,
            "round {i}: written through m{} then read through m{}: row missing",
            a + 1,
            b + 1
        );
        if i % 5 == 0 && !monitor_sees(&addrs[b], &name) {
            stale_monitors.push(format!("round {i}: m{} -> m{}", a + 1, b + 1));
        }
    }
    eprintln!(
        "{rounds} write/read rounds across members in {:?}",
        started.elapsed()
    );
    assert!(
        stale_monitors.is_empty(),
        "monitor initial contents missed acknowledged writes: {stale_monitors:?}"
    );
}

#[test]
fn a_lagging_member_serves_only_current_reads() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &[]);
    let leader = cluster.wait_leader(Duration::from_secs(60));
    let followers = cluster.others(leader);
    let (a, b) = (followers[0], followers[1]);
    let addr_a = cluster.member(a).addr();
    let addr_b = cluster.member(b).addr();
    let mut writer = Rpc::connect(&addr_a, Duration::from_secs(60)).unwrap();
    let mut stale = Vec::new();
    for (i, kind) in ["transact", "monitor", "transact", "monitor"]
        .iter()
        .enumerate()
    {
        let name = format!("lag-{i}");
        // B misses the commit of the write while stopped; the leader then backs off from it.
        cluster.members[b - 1].pause();
        std::thread::sleep(Duration::from_millis(1500));
        insert(&mut writer, &name);
        cluster.members[b - 1].resume();
        let seen = match *kind {
            "transact" => {
                let mut reader = Rpc::connect(&addr_b, Duration::from_secs(60)).unwrap();
                select_names(&mut reader, &name) == 1
            }
            _ => monitor_sees(&addr_b, &name),
        };
        if !seen {
            stale.push(format!(
                "{kind} through lagging m{b} missed {name} acknowledged through m{a}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(stale.is_empty(), "stale reads: {stale:#?}");
}
