//! Backup and migration with the real OVS tools, both directions:
//! * `halyard backup` writes a standalone file that `ovsdb-tool` reads and `ovsdb-server`
//!   serves with the same contents and UUIDs (and that `create-cluster --from` restores);
//! * `halyard create-cluster --from` takes a clustered (with a snapshot and diff entries) or a
//!   standalone ovsdb-server database file and serves the same contents and UUIDs.

use std::path::Path;
use std::time::Duration;

use halyard_testkit::ops::*;

/// Builds tests/ovn/nb-topology.sh's topology against `remote`.
fn topology(remote: &str) {
    let script = repo_root().join("tests/ovn/nb-topology.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("DB", remote)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nb-topology.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a database looks like to OVN: `ovn-nbctl show` and the table dump, normalised, and the
/// raw UUIDs of the main tables (migration keeps them).
fn view(remote: &str) -> (String, String, String) {
    let show = normalize("show", &nbctl(remote, &["show"]));
    let dump = run(
        "ovsdb-client",
        &["--timeout=60", "-f", "json", "dump", remote, NB],
    );
    let dump = normalize("dump", dump.ok("ovsdb-client dump"));
    let mut uuids = String::new();
    for table in [
        "Logical_Switch",
        "Logical_Switch_Port",
        "Logical_Router",
        "ACL",
        "NAT",
        "Load_Balancer",
    ] {
        let mut ids: Vec<String> = nbctl(remote, &["--bare", "--columns=_uuid", "list", table])
            .split_whitespace()
            .map(str::to_string)
            .collect();
        ids.sort();
        uuids.push_str(&format!("{table}: {}\n", ids.join(" ")));
    }
    (show, dump, uuids)
}

fn assert_same(what: &str, a: &(String, String, String), b: &(String, String, String)) {
    assert_eq!(a.0, b.0, "{what}: ovn-nbctl show differs");
    assert_eq!(a.1, b.1, "{what}: table dumps differ");
    assert_eq!(a.2, b.2, "{what}: row UUIDs differ");
    assert!(
        a.0.contains("switch") && a.0.contains("router"),
        "{what}: nothing to compare:\n{}",
        a.0
    );
}

#[test]
fn backup_opens_in_ovsdb_tool_and_ovsdb_server_and_restores() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);
    let remote = cluster.members[follower].remote();
    topology(&remote);
    let original = view(&remote);

    let dir = cluster.dir.path();
    let file = dir.join("nb-backup.db");
    let out = halyard(&["backup", "--remote", &remote]);
    std::fs::write(&file, out.ok("halyard backup")).unwrap();
    let f = file.to_str().unwrap();

    // ovsdb-tool reads it.
    assert_eq!(
        run("ovsdb-tool", &["db-name", f]).ok("db-name"),
        "OVN_Northbound\n"
    );
    assert_eq!(run("ovsdb-tool", &["db-is-standalone", f]).code, Some(0));
    let log = run("ovsdb-tool", &["show-log", f])
        .ok("show-log")
        .to_string();
    assert!(log.contains("record 0: \"OVN_Northbound\" schema"), "{log}");
    assert!(
        log.contains("record 1: ") && log.contains("produced by \"halyard backup\""),
        "{log}"
    );
    let q = run(
        "ovsdb-tool",
        &[
            "query",
            f,
            r#"["OVN_Northbound",{"op":"select","table":"Logical_Switch","where":[],"columns":["name"]}]"#,
        ],
    );
    let q: serde_json::Value = serde_json::from_str(q.ok("ovsdb-tool query")).unwrap();
    assert_eq!(sorted_column(&q[0], "name"), ["public", "sw0", "sw1"]);

    // ovsdb-server serves it with the same contents and UUIDs.
    let server = OvsdbServer::start(dir, &file, "restored");
    assert_same(
        "ovsdb-server on the backup",
        &original,
        &view(&server.remote()),
    );
    drop(server);

    // And a new Halyard cluster restores it.
    let mut restored = new_member(dir, 9);
    let rdir = restored.dir.to_str().unwrap().to_string();
    let raft = restored.raft_addr.clone();
    halyard(&[
        "create-cluster",
        "--data-dir",
        &rdir,
        "--raft-addr",
        &raft,
        "--from",
        f,
    ])
    .ok("create-cluster --from");
    restored.serve(&[]);
    let rremote = restored.remote();
    wait_for(Duration::from_secs(60), "the restored member", || {
        (run(
            "ovn-nbctl",
            &[&format!("--db={rremote}"), "--timeout=5", "ls-list"],
        )
        .stdout
        .contains("sw0"))
        .then_some(())
    });
    assert_same(
        "halyard restored from its backup",
        &original,
        &view(&rremote),
    );
}

/// An ovsdb-server database with the topology, changed after a compaction (so a clustered file
/// holds a snapshot and diff entries after it).
fn ovsdb_server_database(dir: &Path, file: &Path, clustered: bool) -> (String, String, String) {
    let f = file.to_str().unwrap();
    if clustered {
        let raft = format!("tcp:127.0.0.1:{}", free_port());
        run("ovsdb-tool", &["create-cluster", f, NB_SCHEMA, &raft]).ok("ovsdb-tool create-cluster");
    } else {
        run("ovsdb-tool", &["create", f, NB_SCHEMA]).ok("ovsdb-tool create");
    }
    let name = if clustered { "clustered" } else { "standalone" };
    let server = OvsdbServer::start(dir, file, name);
    let remote = server.remote();
    topology(&remote);
    appctl(&server.ctl, &["ovsdb-server/compact"]).ok("compact");
    // Diffs after the snapshot: map keys added, changed and removed, a set shrunk, a row gone.
    nbctl(
        &remote,
        &[
            "set",
            "Logical_Switch",
            "sw0",
            "external_ids:a=1",
            "external_ids:b=2",
        ],
    );
    nbctl(
        &remote,
        &["set", "Logical_Switch", "sw0", "external_ids:a=3"],
    );
    nbctl(
        &remote,
        &["remove", "Logical_Switch", "sw0", "external_ids", "b"],
    );
    nbctl(
        &remote,
        &[
            "lsp-set-addresses",
            "sw0-p2",
            "50:54:00:00:00:22 10.0.0.22",
            "dynamic",
        ],
    );
    nbctl(
        &remote,
        &["lsp-set-addresses", "sw0-p2", "50:54:00:00:00:22 10.0.0.22"],
    );
    nbctl(&remote, &["pg-set-ports", "pg_web", "sw0-p1"]);
    nbctl(&remote, &["lr-route-del", "lr0", "192.168.100.0/24"]);
    nbctl(&remote, &["ls-add", "late"]);
    let v = view(&remote);
    drop(server);
    v
}

fn migrate(clustered: bool) {
    let dir = tempfile::Builder::new()
        .prefix("halyard-migrate")
        .tempdir()
        .unwrap();
    let file = dir.path().join(if clustered {
        "nb-clustered.db"
    } else {
        "nb-standalone.db"
    });
    let original = ovsdb_server_database(dir.path(), &file, clustered);
    let is = if clustered {
        "db-is-clustered"
    } else {
        "db-is-standalone"
    };
    assert_eq!(
        run("ovsdb-tool", &[is, file.to_str().unwrap()]).code,
        Some(0)
    );

    let cluster = Cluster::start_from(3, &["--from", file.to_str().unwrap()]);
    for m in &cluster.members {
        let remote = m.remote();
        let migrated = wait_for(
            Duration::from_secs(60),
            "every member to have the rows",
            || {
                let v = view(&remote);
                (v.2 == original.2).then_some(v)
            },
        );
        assert_same("migrated", &original, &migrated);
    }
    let sample = &original.0;
    assert!(
        sample.contains("late"),
        "changes after the snapshot were kept:\n{sample}"
    );
}

#[test]
fn migrate_from_a_clustered_ovsdb_server_database() {
    migrate(true);
}

#[test]
fn migrate_from_a_standalone_ovsdb_server_database() {
    migrate(false);
}

#[test]
fn create_cluster_refuses_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.db");
    std::fs::write(
        &file,
        b"OVSDB JSON 5 0000000000000000000000000000000000000000\n{}\n\nOVSDB JSON 3 00\n{}\n",
    )
    .unwrap();
    let data = dir.path().join("m");
    let out = halyard(&[
        "create-cluster",
        "--data-dir",
        data.to_str().unwrap(),
        "--raft-addr",
        "127.0.0.1:1",
        "--from",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("not a readable OVSDB database file"),
        "{}",
        out.stderr
    );
    assert!(
        !data.exists(),
        "nothing is written for a file that cannot be read"
    );
}
