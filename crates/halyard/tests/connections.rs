//! Listeners from the database (`--remote=db:DB,TABLE,COLUMN`, as `ovn-ctl` starts the OVN
//! databases): `ovn-nbctl set-connection` opens the listener on every member, `del-connection`
//! closes it with its sessions, a listener that cannot be bound is retried while the member
//! serves the rest, and a `read_only` connection refuses writes with ovsdb-server's exact
//! error (compared with a real ovsdb-server given the same rows).

use std::path::Path;
use std::time::Duration;

use halyard_testkit::cluster::*;

const DB_REMOTE: &str = "db:OVN_Northbound,NB_Global,connections";
const SB_REMOTE: &str = "db:OVN_Southbound,SB_Global,connections";

fn ctl(prog: &str, db: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![format!("--db={db}"), "--timeout=20".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = all.iter().map(String::as_str).collect();
    run(prog, &argv, Duration::from_secs(30))
}

fn ctl_ok(prog: &str, db: &str, args: &[&str]) -> String {
    let out = ctl(prog, db, args);
    assert!(
        out.status.success(),
        "{prog} {args:?} at {db} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nbctl(db: &str, args: &[&str]) -> std::process::Output {
    ctl("ovn-nbctl", db, args)
}

fn nbctl_ok(db: &str, args: &[&str]) -> String {
    ctl_ok("ovn-nbctl", db, args)
}

fn sbctl(db: &str, args: &[&str]) -> std::process::Output {
    ctl("ovn-sbctl", db, args)
}

fn sbctl_ok(db: &str, args: &[&str]) -> String {
    ctl_ok("ovn-sbctl", db, args)
}

fn socket_in(dir: &Path, name: &str) -> String {
    format!("unix:{}", dir.join(name).display())
}

/// Whether a client can talk to the Northbound at `db` (a `show` answers).
fn answers(db: &str) -> bool {
    nbctl(db, &["--no-leader-only", "show"]).status.success()
}

/// The same for the Southbound.
fn sb_answers(db: &str) -> bool {
    sbctl(db, &["--no-leader-only", "show"]).status.success()
}

#[test]
fn set_connection_opens_listeners_on_every_member_and_del_connection_closes_them() {
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &["--remote", DB_REMOTE]);
    cluster.wait_leader(Duration::from_secs(60));
    let m1 = cluster.members[0].remote();
    nbctl_ok(&m1, &["init"]);
    let port = free_port();
    let tcp_target = format!("ptcp:{port}:127.0.0.1");
    nbctl_ok(
        &m1,
        &[
            "set-connection",
            "punix:nb-client.sock",
            &tcp_target,
            "ptcp:0:127.0.0.1",
        ],
    );

    // The relative socket opens in every member's directory (each runs in its own).
    for m in &cluster.members {
        let db = socket_in(&m.data_dir, "nb-client.sock");
        wait_until(
            &format!("m{}'s listener from the Connection row", m.index),
            Duration::from_secs(5),
            || answers(&db).then_some(()),
        );
    }
    // One TCP address on one machine: one member binds it, the others log and retry.
    let tcp = format!("tcp:127.0.0.1:{port}");
    wait_until("the TCP listener", Duration::from_secs(5), || {
        answers(&tcp).then_some(())
    });
    wait_until(
        "a member reporting the bind failure",
        Duration::from_secs(5),
        || {
            cluster
                .logs()
                .contains(&format!("{tcp_target}: cannot listen"))
                .then_some(())
        },
    );
    // `ptcp:0`: every member binds a port of its own; the leader writes its own into the row's
    // status (only when it changes: a steady cluster writes no status entries).
    let bound: u16 = wait_until(
        "the Connection row's status",
        Duration::from_secs(15),
        || {
            let out = nbctl_ok(
                &m1,
                &[
                    "--bare",
                    "--columns=status",
                    "find",
                    "Connection",
                    "target=\"ptcp:0:127.0.0.1\"",
                ],
            );
            out.trim()
                .strip_prefix("bound_port=")
                .and_then(|p| p.trim_matches('"').parse().ok())
        },
    );
    assert!(
        answers(&format!("tcp:127.0.0.1:{bound}")),
        "bound_port {bound} does not answer"
    );
    // A member keeps serving its command-line listener whatever the rows say.
    for m in &cluster.members {
        assert!(
            answers(&m.remote()),
            "m{} stopped serving its own remote",
            m.index
        );
    }

    // A session on a listener that goes away is closed with it.
    let mut held =
        Rpc::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(5)).expect("connect");
    held.call("list_dbs", serde_json::json!([]))
        .expect("list_dbs");
    nbctl_ok(&m1, &["del-connection"]);
    for m in &cluster.members {
        let db = socket_in(&m.data_dir, "nb-client.sock");
        wait_until(
            &format!("m{}'s listener to close", m.index),
            Duration::from_secs(5),
            || (!answers(&db)).then_some(()),
        );
    }
    held.set_timeout(Duration::from_secs(5));
    assert!(
        held.call("list_dbs", serde_json::json!([])).is_err(),
        "a session of a removed listener still answers"
    );
    assert!(!answers(&tcp), "the TCP listener is still open");
}

/// Adds a Southbound `Connection` row for `target` with one more `column=value`.
fn add_connection(db: &str, target: &str, option: &str) {
    sbctl_ok(
        db,
        &[
            "--",
            "--id=@c",
            "create",
            "Connection",
            &format!("target=\"{target}\""),
            option,
            "--",
            "add",
            "SB_Global",
            ".",
            "connections",
            "@c",
        ],
    );
}

/// A `read_only` Connection (a Southbound column), and one with an RBAC `role`: reads answer, every write fails with
/// ovsdb-server's error, the same text as a real ovsdb-server gives through its own read-only
/// connection.
#[test]
fn a_read_only_connection_refuses_writes_like_ovsdb_server() {
    let mut cluster = Cluster::start(3, &[SB_SCHEMA], &["--remote", SB_REMOTE]);
    cluster.wait_leader(Duration::from_secs(60));
    let m1 = cluster.members[0].remote();
    sbctl_ok(&m1, &["init"]);
    sbctl_ok(&m1, &["chassis-add", "ch0", "geneve", "192.0.2.1"]);
    let add_ro = |db: &str, target: &str| add_connection(db, target, "read_only=true");
    add_ro(&m1, "punix:ro.sock");
    let add_role = |db: &str, target: &str| add_connection(db, target, "role=ovn-controller");
    add_role(&m1, "punix:rbac.sock");

    // The real server, given the same row (its relative names are under its rundir, so the
    // row names an absolute path there).
    let real = tempfile::tempdir().unwrap();
    let (_server, real_db) =
        real_ovsdb_server(real.path(), SB_SCHEMA, &[format!("--remote={SB_REMOTE}")]);
    sbctl_ok(&real_db, &["init"]);
    sbctl_ok(&real_db, &["chassis-add", "ch0", "geneve", "192.0.2.1"]);
    let real_ro = real.path().join("ro.sock");
    add_ro(&real_db, &format!("punix:{}", real_ro.display()));
    let real_rbac = real.path().join("rbac.sock");
    add_role(&real_db, &format!("punix:{}", real_rbac.display()));

    let write = [
        "--no-leader-only",
        "chassis-add",
        "ch1",
        "geneve",
        "192.0.2.2",
    ];
    let mut ours_by_member = Vec::new();
    for m in &cluster.members {
        let db = socket_in(&m.data_dir, "ro.sock");
        wait_until(
            &format!("m{}'s read-only listener", m.index),
            Duration::from_secs(5),
            || sb_answers(&db).then_some(()),
        );
        assert!(
            sbctl_ok(&db, &["--no-leader-only", "show"]).contains("ch0"),
            "reads through the read-only listener"
        );
        ours_by_member.push(sbctl(&db, &write));
    }
    let real_db_ro = format!("unix:{}", real_ro.display());
    wait_until(
        "ovsdb-server's read-only listener",
        Duration::from_secs(10),
        || sb_answers(&real_db_ro).then_some(()),
    );
    let theirs = sbctl(&real_db_ro, &write);
    let theirs_err = String::from_utf8_lossy(&theirs.stderr).into_owned();
    assert!(!theirs.status.success());
    assert!(
        theirs_err.contains("read only mode"),
        "ovsdb-server's answer changed: {theirs_err}"
    );
    for (i, ours) in ours_by_member.iter().enumerate() {
        assert!(!ours.status.success(), "m{} accepted a write", i + 1);
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            theirs_err,
            "m{}'s refusal differs from ovsdb-server's",
            i + 1
        );
    }
    // Nothing was written.
    assert!(!sbctl_ok(&m1, &["show"]).contains("ch1"));

    // A listener with an RBAC role: the session's role reaches the engine on every member
    // (no TLS here, so no identity: ovsdb-server names the client "(null)" and refuses).
    let real_db_rbac = format!("unix:{}", real_rbac.display());
    wait_until(
        "ovsdb-server's role listener",
        Duration::from_secs(10),
        || sb_answers(&real_db_rbac).then_some(()),
    );
    // One row in one table: ovn-sbctl orders a transaction's operations at random, and the
    // error names the first one refused.
    let insert = ["--no-leader-only", "create", "Address_Set", "name=as1"];
    let theirs = sbctl(&real_db_rbac, &insert);
    let theirs_err = without_log_times(&String::from_utf8_lossy(&theirs.stderr));
    assert!(
        theirs_err.contains("RBAC rules for client"),
        "ovsdb-server's answer changed: {theirs_err}"
    );
    for m in &cluster.members {
        let db = socket_in(&m.data_dir, "rbac.sock");
        wait_until(
            &format!("m{}'s role listener", m.index),
            Duration::from_secs(5),
            || sb_answers(&db).then_some(()),
        );
        let ours = sbctl(&db, &insert);
        assert_eq!(
            without_log_times(&String::from_utf8_lossy(&ours.stderr)),
            theirs_err,
            "m{}'s RBAC refusal differs from ovsdb-server's",
            m.index
        );
    }
    assert!(!sbctl_ok(&m1, &["show"]).contains("ch1"));
}

/// ovn-sbctl's stderr with the time stamp of its log lines cut off ("2026-12-06T23:13:32Z|00002|..."
/// -> "00002|..."): two runs a second apart must compare equal.
fn without_log_times(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| match line.split_once('|') {
            Some((time, rest)) if time.ends_with('Z') && time.contains('T') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Connection.inactivity_probe` applies to the sessions of that listener: a client that never
/// answers the echo probe is dropped after about two probe intervals (probe, then give up),
/// here 1 s each instead of the default 5 s.
#[test]
fn a_connections_inactivity_probe_applies_to_its_sessions() {
    use std::io::Read;
    let mut cluster = Cluster::start(3, &[NB_SCHEMA], &["--remote", DB_REMOTE]);
    cluster.wait_leader(Duration::from_secs(60));
    let m1 = cluster.members[0].remote();
    nbctl_ok(&m1, &["init"]);
    let port = free_port();
    nbctl_ok(
        &m1,
        &[
            "--inactivity-probe=1000",
            "set-connection",
            &format!("ptcp:{port}:127.0.0.1"),
        ],
    );
    let tcp = format!("tcp:127.0.0.1:{port}");
    wait_until("the listener", Duration::from_secs(5), || {
        answers(&tcp).then_some(())
    });
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    // The echo probe arrives, is not answered, and the server closes the connection.
    loop {
        match silent.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    let after = started.elapsed();
    eprintln!("silent client dropped after {after:?}");
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(6),
        "dropped after {after:?}, expected about 2 s (2 x 1000 ms)"
    );
}
