//! `--http`: `/metrics` in the Prometheus text format and `/health` for load balancers, on a
//! real 3-member cluster, healthy and after it lost its quorum.

use std::time::Duration;

use halyard_testkit::ops::*;

/// The value of an unlabelled sample `name` in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_and_health_endpoints() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);

    for m in &cluster.members {
        let (code, body) = wait_for(Duration::from_secs(60), "a healthy /health", || {
            let (code, body) = http_get(&m.http_addr, "/health");
            (code == 200).then_some((code, body))
        });
        assert_eq!(code, 200);
        assert!(body.starts_with("ok: "), "{body}");
    }

    // Writes through a follower (forwarded to the leader) and reads (read barriers).
    let remote = cluster.members[follower].remote();
    for i in 0..5 {
        nbctl(&remote, &["ls-add", &format!("sw{i}")]);
    }
    assert!(nbctl(&remote, &["ls-list"]).contains("sw4"));
    // ovn-nbctl reads through monitors; a select-only transact goes through a read barrier.
    // (`ovsdb-client query` would not do: it appends an "abort" operation.)
    let q = run(
        "ovsdb-client",
        &[
            "--timeout=60",
            "transact",
            &remote,
            r#"["OVN_Northbound",{"op":"select","table":"Logical_Switch","where":[]}]"#,
        ],
    );
    assert!(q.ok("ovsdb-client transact").contains("sw4"));

    let f = &cluster.members[follower];
    let text = wait_for(
        Duration::from_secs(30),
        "metrics to show the writes",
        || {
            let (code, text) = http_get(&f.http_addr, "/metrics");
            assert_eq!(code, 200);
            let forwarded = sample(&text, "halyard_forwarded_writes_total").unwrap_or(0.0);
            (forwarded >= 5.0 && sample(&text, "halyard_read_barriers_total").is_some())
                .then_some(text)
        },
    );
    for name in [
        "halyard_raft_term",
        "halyard_raft_is_leader",
        "halyard_raft_has_leader",
        "halyard_raft_last_log_index",
        "halyard_raft_committed_index",
        "halyard_raft_applied_index",
        "halyard_raft_apply_lag_entries",
        "halyard_raft_proposal_queue",
        "halyard_raft_forward_queue",
        "halyard_raft_read_queue",
        "halyard_raft_election_timer_ms",
        "halyard_read_barriers_total",
        "halyard_ovsdb_connections",
        "halyard_ovsdb_monitors",
        "halyard_ovsdb_backlog_bytes",
    ] {
        assert!(sample(&text, name).is_some(), "no {name} in:\n{text}");
    }
    assert_eq!(sample(&text, "halyard_raft_is_leader"), Some(0.0));
    assert_eq!(sample(&text, "halyard_raft_has_leader"), Some(1.0));
    assert!(sample(&text, "halyard_raft_applied_index").unwrap() >= 5.0);
    assert!(
        sample(&text, "halyard_read_barriers_total").unwrap() >= 1.0,
        "{text}"
    );
    assert!(
        text.contains("halyard_raft_role{role=\"follower\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("halyard_transactions_total{kind=\"write\",result=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("halyard_transaction_seconds_bucket{kind=\"write\",le=\""),
        "{text}"
    );
    assert!(
        text.contains("halyard_ovsdb_rows{db=\"OVN_Northbound\"}"),
        "{text}"
    );
    // The commit index reached the follower by notices (raft's commit_notice), applied there,
    // or the follower inferred it from the leader's flush hints (three voters), which makes
    // the notice that follows redundant.
    let applied_notices = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("halyard_raft_commit_notices_received_total{result=\"applied\"} ")
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let inferred = sample(&text, "halyard_raft_commits_inferred_total").unwrap_or(0.0);
    assert!(applied_notices + inferred >= 1.0, "{text}");
    let (_, ltext) = http_get(&cluster.members[leader].http_addr, "/metrics");
    assert!(
        sample(&ltext, "halyard_raft_commit_notices_sent_total").unwrap_or(0.0) >= 5.0,
        "{ltext}"
    );
    assert_eq!(
        sample(&ltext, "halyard_raft_is_leader"),
        Some(1.0),
        "{ltext}"
    );
    assert!(
        ltext.contains("halyard_raft_replication_match_index{peer=\""),
        "{ltext}"
    );

    // A compaction shows up as a snapshot, with its size and build time.
    appctl(&f.ctl, &["ovsdb-server/compact"]).ok("compact");
    let text = wait_for(Duration::from_secs(30), "the snapshot metrics", || {
        let (_, text) = http_get(&f.http_addr, "/metrics");
        (sample(&text, "halyard_raft_snapshot_index").unwrap_or(0.0) > 0.0).then_some(text)
    });
    assert!(
        sample(&text, "halyard_snapshot_bytes").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(
        sample(&text, "halyard_snapshot_build_seconds_count").unwrap_or(0.0) >= 1.0,
        "{text}"
    );

    // A monitoring client is counted.
    let mut monitor = std::process::Command::new("ovsdb-client")
        .args(["monitor", &remote, NB, "Logical_Switch"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the monitor to be counted", || {
        let (_, text) = http_get(&f.http_addr, "/metrics");
        (sample(&text, "halyard_ovsdb_monitors").unwrap_or(0.0) >= 1.0).then_some(())
    });
    let _ = monitor.kill();
    let _ = monitor.wait();

    // The other two die: the survivor hears no leader, /health says 503 and why.
    let survivor = follower;
    for i in 0..3 {
        if i != survivor {
            cluster.members[i].kill();
        }
    }
    let body = wait_for(Duration::from_secs(60), "an unhealthy /health", || {
        let (code, body) = http_get(&cluster.members[survivor].http_addr, "/health");
        (code == 503).then_some(body)
    });
    assert!(body.starts_with("unhealthy: "), "{body}");
    assert!(body.contains("leader"), "the body says why: {body}");
}
