//! The lock lease when the leader holding a lock is alive but cut off from its peers (real
//! packet loss: members in network namespaces of their own, `iptables` DROP rules between
//! them; the clients' links stay up). The new leader hands the lock to a waiter on another
//! member after the fast path's stand-down time (see `crates/raft/src/lease.rs`); the owner,
//! whose session is still open on the cut-off leader, must have been told `stolen` before
//! the waiter is told `locked`, or two `ovn-northd`s would both be active. After the partition
//! heals, the old owner waits behind the new one. Needs root, `ip` and `iptables`.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use halyard_faults::cluster::Cluster;
use halyard_faults::netns::Net;
use halyard_testkit::cluster::{halyard_bin, Rpc};
use serde_json::{json, Value};

const SCHEMA: &str = include_str!("../../../tests/faults/faults.ovsschema");

/// Every message `rpc` receives from now on, with the time it arrived.
fn listen(mut rpc: Rpc) -> mpsc::Receiver<(Instant, Value)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(v) = rpc.next_message() {
            if tx.send((Instant::now(), v)).is_err() {
                return;
            }
        }
    });
    rx
}

fn is(msg: &Value, method: &str) -> bool {
    msg["method"] == method && msg["params"] == json!(["northd"])
}

#[test]
fn a_cut_off_leaders_lock_owner_is_told_stolen_before_a_waiter_gets_the_lock() {
    let net = Net::create(&format!("ll{}", std::process::id() % 100_000))
        .expect("network namespaces (the tests run as root)");
    // This thread, and the threads it starts from now on, talk from the clients' namespace.
    net.enter_client().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("halyard-lock-lease-")
        .tempdir()
        .unwrap();
    let schema = dir.path().join("faults.ovsschema");
    std::fs::write(&schema, SCHEMA).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cluster = Cluster::new(net, Path::new(halyard_bin()), dir.path(), &schema, 1000);
    runtime
        .block_on(cluster.start(3))
        .expect("a 3-member cluster");
    let leader = runtime
        .block_on(cluster.wait_leader(Duration::from_secs(30)))
        .expect("a leader");
    let others: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();

    let addr = |i: usize| cluster.member(i).client_addr().to_string();
    let mut owner = Rpc::connect(&addr(leader), Duration::from_secs(60)).unwrap();
    assert_eq!(
        owner.call("lock", json!(["northd"])).unwrap(),
        json!({"locked": true})
    );
    let mut waiter = Rpc::connect(&addr(others[0]), Duration::from_secs(60)).unwrap();
    assert_eq!(
        waiter.call("lock", json!(["northd"])).unwrap(),
        json!({"locked": false})
    );
    let owner_rx = listen(owner);
    let waiter_rx = listen(waiter);

    let cut = Instant::now();
    for o in &others {
        cluster.cut(leader, *o).unwrap();
    }
    let (locked_at, msg) = waiter_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the waiter is given the lock");
    assert!(is(&msg, "locked"), "{msg}");
    let (stolen_at, msg) = owner_rx
        .recv_timeout(Duration::from_secs(1))
        .expect("the cut-off owner was told it lost the lock");
    assert!(is(&msg, "stolen"), "{msg}");
    eprintln!(
        "owner told `stolen` {:?} after the cut, waiter told `locked` {:?} after it",
        stolen_at - cut,
        locked_at - cut
    );
    assert!(
        stolen_at < locked_at,
        "the waiter got the lock {:?} before the owner was told it lost it",
        stolen_at - locked_at
    );

    // Healed: the old owner is queued behind the new one and is not told `locked`.
    runtime.block_on(async { cluster.heal_all() }).unwrap();
    if let Ok((_, msg)) = owner_rx.recv_timeout(Duration::from_secs(4)) {
        panic!("after the partition healed the old owner received {msg}");
    }
    if let Ok((_, msg)) = waiter_rx.recv_timeout(Duration::from_millis(100)) {
        panic!("the new owner received {msg}");
    }
    runtime.block_on(async { cluster.shutdown() });
}
