//! OVN's own tools with their default options
//! (leader-only, as shipped) work through every member of a 3- and a 5-member Halyard cluster,
//! while the real ovsdb-server cluster refuses them at its followers.
//!
//! One cluster serves both OVN_Northbound and OVN_Southbound (as one ovsdb-server process can).
//! - `ovn-nbctl`: tests/ovn/nb-topology.sh runs with each ovn-nbctl invocation sent to the next
//!   member in turn (tests/cluster/rotate/ovn-nbctl); `ovn-nbctl show`, normalised, is identical
//!   through every member.
//! - `ovn-sbctl`: chassis added through different members; `ovn-sbctl show` identical through
//!   every member.
//! - ovsdbapp (Python IDL, leader_only=True) pointed at a single follower (true Raft role, from
//!   the member's gRPC status) writes and reads back; every member then serves what it wrote.
//! - The real ovsdb-server cluster (ref-cluster.sh): ovn-nbctl and ovsdbapp fail at a follower
//!   and succeed at the leader.

use std::time::Duration;

use halyard_testkit::cluster::*;

const T: Duration = Duration::from_secs(120);

/// Runs nb-topology.sh with every ovn-nbctl call sent to the next member; returns the remotes
/// used, one per call.
fn topology_through_every_member(cluster: &Cluster) -> Vec<String> {
    let dir = cluster.dir.path();
    let out = nb_topology_rotating(dir, &cluster.remotes());
    assert!(
        out.status.success(),
        "nb-topology.sh through rotating members failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    std::fs::read_to_string(dir.join("rotate.log"))
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

fn nbctl(remote: &str, args: &[&str]) -> String {
    let db = format!("--db={remote}");
    let mut argv = vec![db.as_str(), "--timeout=60"];
    argv.extend_from_slice(args);
    run_ok("ovn-nbctl", &argv, T)
}

fn sbctl(remote: &str, args: &[&str]) -> String {
    let db = format!("--db={remote}");
    let mut argv = vec![db.as_str(), "--timeout=60"];
    argv.extend_from_slice(args);
    run_ok("ovn-sbctl", &argv, T)
}

/// Asserts that `show` gives the same normalised text through every member; returns it.
fn same_through_every_member(
    cluster: &Cluster,
    what: &str,
    show: impl Fn(&str) -> String,
) -> String {
    let shows: Vec<(String, String)> = cluster
        .remotes()
        .iter()
        .map(|r| (r.clone(), normalize("show", &show(r))))
        .collect();
    let (first_remote, first) = &shows[0];
    for (remote, text) in &shows[1..] {
        assert_eq!(
            text, first,
            "{what} differs between {first_remote} and {remote}"
        );
    }
    first.clone()
}

fn ovsdbapp(remote: &str, prefix: &str, timeout_s: u32) -> std::process::Output {
    let script = asset("tests/cluster/ovsdbapp_nb.py");
    let t = timeout_s.to_string();
    // The Debian python3-openvswitch / python3-ovsdbapp packages install into the system Python.
    run_env(
        "/usr/bin/python3",
        &[script.to_str().unwrap(), remote, prefix],
        Duration::from_secs(timeout_s as u64 + 60),
        &[("OVSDBAPP_TIMEOUT", &t)],
    )
}

fn ovn_clients_through_every_member(n: usize) -> Cluster {
    let mut cluster = Cluster::start(n, &[NB_SCHEMA, SB_SCHEMA], &[]);
    for m in &mut cluster.members {
        m.wait_ready("OVN_Southbound", UP_TIMEOUT);
    }

    // ovn-nbctl, default options, one invocation per member in turn.
    let used = topology_through_every_member(&cluster);
    for r in cluster.remotes() {
        assert!(used.contains(&r), "nb-topology.sh never reached {r}");
    }
    eprintln!(
        "nb-topology.sh: {} ovn-nbctl calls spread over {n} members",
        used.len()
    );

    // ovsdbapp at a follower (its true role, asked over the member's gRPC status).
    let leader = cluster.wait_leader(T);
    let follower = cluster.members.iter().find(|m| m.index != leader).unwrap();
    let status = follower.raft_status().expect("follower status");
    assert_eq!(
        status["role"], "follower",
        "member {} status: {status}",
        follower.index
    );
    let out = ovsdbapp(&follower.remote(), "py", 60);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ovsdbapp at follower m{} failed:\n{stdout}\n{}",
        follower.index,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "router py-lr ports [\"py-lrp=00:00:00:00:aa:ff,['10.9.0.254/24']\"]\n\
         switch py-ls ports [\"py-p1=['50:54:00:00:aa:01 10.9.0.1']\", \"py-p2=['50:54:00:00:aa:02 10.9.0.2']\"]",
        "ovsdbapp output"
    );

    let show = same_through_every_member(&cluster, "ovn-nbctl show", |r| nbctl(r, &["show"]));
    for expected in [
        "switch <uuid> (sw0)",
        "router <uuid> (lr0)",
        "(py-ls)",
        "(py-lr)",
        "port sw1-p2",
        "nat <uuid>",
    ] {
        assert!(
            show.contains(expected),
            "ovn-nbctl show lacks {expected:?}:\n{show}"
        );
    }
    assert!(
        !show.contains("sw0-p3"),
        "sw0-p3 was deleted by the script:\n{show}"
    );

    // ovn-sbctl: each member adds one chassis; every member shows all of them.
    for (i, r) in cluster.remotes().iter().enumerate() {
        let name = format!("ch-{}", i + 1);
        let ip = format!("192.168.0.{}", i + 1);
        let encap = if i % 2 == 0 { "geneve" } else { "vxlan" };
        sbctl(r, &["chassis-add", &name, encap, &ip]);
    }
    let sb_show = same_through_every_member(&cluster, "ovn-sbctl show", |r| sbctl(r, &["show"]));
    for i in 1..=n {
        assert!(
            sb_show.contains(&format!("Chassis ch-{i}")),
            "ovn-sbctl show lacks ch-{i}:\n{sb_show}"
        );
        assert!(
            sb_show.contains(&format!("ip: \"192.168.0.{i}\"")),
            "ovn-sbctl show lacks ch-{i}'s encap:\n{sb_show}"
        );
    }
    cluster
}

#[test]
fn three_members_serve_ovn_tools_at_every_member_unlike_ovsdb_server() {
    let _cluster = ovn_clients_through_every_member(3);

    // The difference is the point: the real ovsdb-server cluster refuses leader-only clients at
    // its followers.
    let reference = RefCluster::start(3, NB_SCHEMA);
    let roles: Vec<String> = (1..=3).map(|i| reference.role(i)).collect();
    let leader = roles
        .iter()
        .position(|r| r == "leader")
        .expect("ref leader") as u16
        + 1;
    let follower = roles
        .iter()
        .position(|r| r == "follower")
        .expect("ref follower") as u16
        + 1;
    let out = run(
        "ovn-nbctl",
        &[
            &format!("--db={}", reference.remote(follower)),
            "--timeout=20",
            "ls-add",
            "x",
        ],
        T,
    );
    assert!(
        !out.status.success(),
        "ovsdb-server's follower accepted a leader-only ovn-nbctl"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("ovsdb-server follower, ovn-nbctl ls-add: {}", err.trim());
    assert!(
        err.contains("database connection failed"),
        "unexpected refusal: {err}"
    );
    let out = ovsdbapp(&reference.remote(follower), "ref", 5);
    assert!(
        !out.status.success(),
        "ovsdb-server's follower served the leader-only Python IDL"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OvsdbConnectionUnavailable"),
        "unexpected ovsdbapp failure: {err}"
    );
    // ...while both work at its leader (so the refusal is about the role, not the setup).
    run_ok(
        "ovn-nbctl",
        &[
            &format!("--db={}", reference.remote(leader)),
            "--timeout=20",
            "ls-add",
            "x",
        ],
        T,
    );
    let out = ovsdbapp(&reference.remote(leader), "ref", 30);
    assert!(
        out.status.success(),
        "ovsdbapp at ovsdb-server's leader: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn five_members_serve_ovn_tools_at_every_member() {
    let _cluster = ovn_clients_through_every_member(5);
}
