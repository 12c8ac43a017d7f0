//! `halyard status`: the whole cluster from any member (table and JSON), through a Raft
//! address or a control socket, and its verdicts and exit status when members die.

use std::time::Duration;

use halyard_testkit::ops::*;
use serde_json::Value;

fn status_json(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["status", "--json"];
    all.extend_from_slice(args);
    let out = halyard(&all);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json printed no JSON ({e}):\n{}\n{}",
            out.stdout, out.stderr
        )
    });
    (out.code, doc)
}

#[test]
fn status_of_the_whole_cluster_and_its_health() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);
    nbctl(&cluster.members[follower].remote(), &["ls-add", "sw0"]);

    // From one follower's Raft address: every member, one leader, all healthy, exit 0.
    let seed = cluster.members[follower].raft_remote();
    let (code, doc) = wait_for(Duration::from_secs(60), "a healthy cluster", || {
        let (code, doc) = status_json(&["--remote", &seed]);
        (code == Some(0)).then_some((code, doc))
    });
    assert_eq!(code, Some(0));
    assert_eq!(doc["verdict"], "healthy", "{doc:#}");
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{doc:#}");
    let leader_addr = &cluster.members[leader].raft_addr;
    assert_eq!(doc["leader"]["address"], leader_addr.as_str(), "{doc:#}");
    for m in members {
        assert_eq!(m["health"], "healthy", "{m:#}");
        assert_eq!(m["reachable"], true);
        assert!(m["applied_index"].as_u64().unwrap() > 0);
        assert!(m["lag"].as_u64().is_some());
        assert!(m["connections"].as_u64().is_some(), "{m:#}");
        assert_eq!(m["leader"], doc["leader"]["id"]);
        let role = if m["address"] == leader_addr.as_str() {
            "leader"
        } else {
            "follower"
        };
        assert_eq!(m["role"], role);
        assert!(m["last_contact_ms"].as_u64().is_some(), "{m:#}");
    }
    let cid = appctl(&cluster.members[leader].ctl, &["cluster/cid", NB])
        .ok("cid")
        .trim()
        .to_string();
    assert_eq!(doc["cluster_id"], cid.as_str());

    // The table, through the control socket of another member.
    let ctl = cluster.members[leader].ctl.to_str().unwrap().to_string();
    let out = halyard(&["status", "--control", &ctl]);
    let table = out.ok("status --control").to_string();
    assert!(
        table.starts_with(&format!("cluster {cid}: healthy (leader ")),
        "{table}"
    );
    let header = table.lines().nth(1).unwrap();
    for col in [
        "ID", "ADDRESS", "ROLE", "TERM", "LEADER", "VOTE", "LAST-LOG", "COMMIT", "APPLIED", "LAG",
        "CONTACT", "CONNS", "HEALTH",
    ] {
        assert!(
            header.split_whitespace().any(|c| c == col),
            "missing column {col}: {header}"
        );
    }
    assert_eq!(
        table.lines().filter(|l| l.contains(" leader ")).count(),
        1,
        "{table}"
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.trim_end().ends_with(" healthy"))
            .count(),
        3,
        "{table}"
    );

    // One follower dies: asked through a live member the cluster is degraded (exit 2) and the
    // dead one is shown as down; asked through the dead one it says so (exit 3) and still shows
    // what the others report.
    let dead = (0..3).find(|i| *i != leader && *i != follower).unwrap();
    cluster.members[dead].kill();
    let dead_addr = cluster.members[dead].raft_addr.clone();
    let (code, doc) = wait_for(Duration::from_secs(60), "a degraded verdict", || {
        let (code, doc) = status_json(&["--remote", &seed]);
        (doc["verdict"] == "degraded").then_some((code, doc))
    });
    assert_eq!(code, Some(2), "{doc:#}");
    let down = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == dead_addr.as_str())
        .unwrap();
    assert_eq!(down["reachable"], false, "{down:#}");
    assert_eq!(down["health"], "unhealthy");
    assert!(
        down["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("unreachable"),
        "{down:#}"
    );

    let dead_remote = format!("tcp:{dead_addr}");
    let out = halyard(&["status", "--remote", &dead_remote, "--remote", &seed]);
    assert_eq!(
        out.code,
        Some(3),
        "a named dead member is unhealthy:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains(" down "), "{}", out.stdout);
    assert!(out.stdout.contains("unreachable"), "{}", out.stdout);
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.trim_end().ends_with(" healthy"))
            .count(),
        2,
        "{}",
        out.stdout
    );

    // The dead member's control socket is gone: with --remote as well, it says so and shows
    // the others.
    let dead_ctl = cluster.members[dead].ctl.to_str().unwrap().to_string();
    let out = halyard(&["status", "--control", &dead_ctl, "--remote", &seed]);
    assert_eq!(out.code, Some(3), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("local member ({dead_ctl}): cannot connect")),
        "{}",
        out.stdout
    );
    // Alone, it is an error that says what is wrong.
    let out = halyard(&["status", "--control", &dead_ctl]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("is the member running?"),
        "{}",
        out.stderr
    );

    // Only the dead member given: it says so and exits non-zero.
    let out = halyard(&["status", "--remote", &dead_remote]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stdout.contains("unreachable"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    // Quorum lost (2 of 3 down): unavailable, exit 3.
    cluster.members[leader].kill();
    let (code, doc) = wait_for(Duration::from_secs(60), "an unavailable verdict", || {
        let (code, doc) = status_json(&["--remote", &seed]);
        (doc["verdict"] == "unavailable").then_some((code, doc))
    });
    assert_eq!(code, Some(3), "{doc:#}");
}
