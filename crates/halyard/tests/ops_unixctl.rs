//! The control socket through the real `ovs-appctl`: ovsdb-server's `cluster/status` layout,
//! the cluster/* and ovsdb-server/* commands, generic errors with ovsdb-server's texts and
//! ovs-appctl's exit status 2, membership changes (kick, leave) and `exit`.

use std::time::Duration;

use halyard_testkit::ops::*;

/// The cluster/status labels OVN tooling greps, in ovsdb-server's order.
fn assert_layout(text: &str, role: &str, servers: usize) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].len(), 4, "first line is the short id: {text}");
    assert!(lines[0].chars().all(|c| c.is_ascii_hexdigit()), "{text}");
    let order = [
        "Name: OVN_Northbound",
        "Cluster ID: ",
        "Server ID: ",
        "Address: tcp:127.0.0.1:",
        "Status: cluster member",
        "Role: ",
        "Term: ",
        "Leader: ",
        "Vote: ",
        "",
        "Election timer: 1000",
        "Log: [",
        "Entries not yet committed: ",
        "Entries not yet applied: ",
        "Connections:",
        "Servers:",
    ];
    let mut at = 1;
    for label in order {
        let pos = lines[at..]
            .iter()
            .position(|l| {
                if label.is_empty() {
                    l.is_empty()
                } else {
                    l.starts_with(label)
                }
            })
            .unwrap_or_else(|| panic!("no line starting {label:?} after line {at} in:\n{text}"));
        at += pos + 1;
    }
    assert!(text.contains(&format!("Role: {role}\n")), "{text}");
    let server_lines: Vec<&str> = lines
        .iter()
        .skip_while(|l| **l != "Servers:")
        .skip(1)
        .copied()
        .collect();
    assert_eq!(server_lines.len(), servers, "{text}");
    for l in &server_lines {
        // "    abcd (abcd at tcp:127.0.0.1:PORT)..."
        assert!(l.starts_with("    "), "{l}");
        let id = &l[4..8];
        assert!(
            l[8..].starts_with(&format!(" ({id} at tcp:127.0.0.1:")),
            "{l}"
        );
    }
    assert_eq!(
        server_lines
            .iter()
            .filter(|l| l.contains(" (self)"))
            .count(),
        1,
        "{text}"
    );
}

#[test]
fn cluster_commands_through_real_ovs_appctl() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let follower = cluster.other_than(leader);
    let lctl = cluster.members[leader].ctl.clone();
    let fctl = cluster.members[follower].ctl.clone();

    // cluster/status on the leader and on a follower.
    let l = cluster.members[leader].cluster_status();
    let lt = l.ok("cluster/status on the leader");
    assert_layout(lt, "leader", 3);
    assert!(
        lt.contains("Leader: self\n") && lt.contains("Vote: self\n"),
        "{lt}"
    );
    assert_eq!(
        lt.matches("next_index=").count(),
        3,
        "the leader shows replication per server:\n{lt}"
    );
    let f = cluster.members[follower].cluster_status();
    let ft = f.ok("cluster/status on a follower");
    assert_layout(ft, "follower", 3);
    let leader_short = lt.lines().next().unwrap();
    assert!(ft.contains(&format!("Leader: {leader_short}\n")), "{ft}");
    assert!(
        ft.contains(&format!("<-{leader_short}")),
        "a follower hears from its leader:\n{ft}"
    );

    // cid is the cluster's, the same everywhere; sid is the member's own (and its short id).
    let cid = appctl(&lctl, &["cluster/cid", NB]).ok("cid").to_string();
    assert_eq!(appctl(&fctl, &["cluster/cid", NB]).ok("cid"), cid);
    assert!(
        lt.contains(&format!("Cluster ID: {} ({})", &cid[..4], cid.trim())),
        "{lt}"
    );
    let sid = appctl(&fctl, &["cluster/sid", NB]).ok("sid").to_string();
    assert!(uuid::Uuid::parse_str(sid.trim()).is_ok(), "{sid}");
    assert!(ft.starts_with(&format!("{}\n", &sid[..4])), "{ft}");
    assert!(
        ft.contains(&format!("Server ID: {} ({})\n", &sid[..4], sid.trim())),
        "{ft}"
    );

    // ovsdb-server/*.
    assert_eq!(
        appctl(&fctl, &["ovsdb-server/list-dbs"]).ok("list-dbs"),
        "OVN_Northbound\n_Server\n"
    );
    let remotes = appctl(&fctl, &["ovsdb-server/list-remotes"])
        .ok("list-remotes")
        .to_string();
    assert_eq!(
        remotes,
        format!("ptcp:{}:127.0.0.1\n", cluster.members[follower].client_port)
    );
    assert_eq!(
        appctl(&fctl, &["ovsdb-server/get-db-storage-status", NB]).ok("storage"),
        "status: ok\n"
    );
    let version = appctl(&fctl, &["version"]).ok("version").to_string();
    assert!(version.starts_with("ovsdb-server (Halyard "), "{version}");
    // ovs-lib's stop_daemon takes the last word and uses `ovs-appctl exit` when it is at least
    // 2.5.90: run its own version_geq on it.
    let last = version.split_whitespace().last().unwrap().to_string();
    let geq = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". /usr/share/openvswitch/scripts/ovs-lib && version_geq {last} 2.5.90"
        ))
        .status()
        .unwrap();
    assert!(geq.success(), "ovs-lib does not accept version {last}");

    // The commands kube-ovn and ovn-ctl sites call.
    assert_eq!(
        appctl(&fctl, &["ovsdb-server/memory-trim-on-compaction", "on"]).ok("trim on"),
        ""
    );
    assert_ne!(
        appctl(&fctl, &["ovsdb-server/memory-trim-on-compaction", "maybe"]).code,
        Some(0),
        "an invalid argument is an error"
    );
    let port = free_port();
    let extra = format!("ptcp:{port}:127.0.0.1");
    appctl(&fctl, &["ovsdb-server/add-remote", &extra]).ok("add-remote");
    let extra_client = format!("tcp:127.0.0.1:{port}");
    let nbctl_status = |db: &str, args: &[&str]| {
        let d = format!("--db={db}");
        let mut all = vec![d.as_str(), "--timeout=3"];
        all.extend_from_slice(args);
        run("ovn-nbctl", &all).code == Some(0)
    };
    wait_for(Duration::from_secs(5), "the added remote to listen", || {
        nbctl_status(&extra_client, &["--no-leader-only", "show"]).then_some(())
    });
    assert!(appctl(&fctl, &["ovsdb-server/list-remotes"])
        .ok("list-remotes")
        .contains(&extra));
    appctl(&fctl, &["ovsdb-server/reconnect"]).ok("reconnect");
    appctl(&fctl, &["ovsdb-server/remove-remote", &extra]).ok("remove-remote");
    wait_for(
        Duration::from_secs(5),
        "the removed remote to close",
        || (!nbctl_status(&extra_client, &["--no-leader-only", "show"])).then_some(()),
    );
    assert_ne!(
        appctl(&fctl, &["ovsdb-server/remove-remote", &extra]).code,
        Some(0),
        "removing it twice: no such remote"
    );
    let commands = appctl(&fctl, &["list-commands"])
        .ok("list-commands")
        .to_string();
    assert!(
        commands.starts_with("The available commands are:\n"),
        "{commands}"
    );
    assert!(
        commands.contains("  cluster/status          DB\n"),
        "{commands}"
    );
    assert!(
        commands.contains("  cluster/change-election-timer DB TIME\n"),
        "{commands}"
    );

    // Writes, then memory/show and compact.
    let remote = cluster.members[follower].remote();
    nbctl(&remote, &["ls-add", "sw0", "--", "lsp-add", "sw0", "p1"]);
    let mem = appctl(&fctl, &["memory/show"])
        .ok("memory/show")
        .to_string();
    let keys: Vec<&str> = mem
        .split_whitespace()
        .map(|kv| kv.split(':').next().unwrap())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "memory/show is sorted by key: {mem}");
    let rows: usize = mem
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("rows:"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rows >= 2, "{mem}");
    for key in [
        "sessions:",
        "proposal-queue:",
        "forward-queue:",
        "read-queue:",
    ] {
        assert!(mem.contains(key), "no {key} in {mem}");
    }
    appctl(&fctl, &["ovsdb-server/compact"]).ok("compact");
    let again = appctl(&fctl, &["ovsdb-server/compact", NB]);
    assert_eq!(again.code, Some(2));
    assert!(
        again
            .stderr
            .starts_with("ovsdb error: not storing a duplicate snapshot\n"),
        "{}",
        again.stderr
    );
    let builtin = appctl(&fctl, &["ovsdb-server/compact", "_Server"]);
    assert_eq!(
        (builtin.code, builtin.stderr.lines().next()),
        (Some(2), Some("cannot compact built-in databases"))
    );
    let nodb = appctl(&fctl, &["ovsdb-server/compact", "nope"]);
    assert_eq!(nodb.stderr.lines().next(), Some("no database by that name"));

    // Generic errors: exact texts, exit status 2, ovs-appctl's trailer.
    let e = appctl(&fctl, &["no/such"]);
    assert_eq!(e.code, Some(2));
    assert_eq!(
        e.stderr.lines().next(),
        Some("\"no/such\" is not a valid command (use \"list-commands\" to see a list of valid commands)")
    );
    assert!(
        e.stderr.contains(": server returned an error"),
        "{}",
        e.stderr
    );
    let e = appctl(&fctl, &["cluster/status"]);
    assert_eq!(
        e.stderr.lines().next(),
        Some("\"cluster/status\" command requires at least 1 arguments")
    );
    let e = appctl(&fctl, &["cluster/cid", NB, "extra"]);
    assert_eq!(
        e.stderr.lines().next(),
        Some("\"cluster/cid\" command takes at most 1 arguments")
    );
    let e = appctl(&fctl, &["cluster/status", "OVN_Southbound"]);
    assert_eq!(
        (e.code, e.stderr.lines().next()),
        (Some(2), Some("unknown cluster"))
    );

    // change-election-timer: ovsdb-server's checks, in its order.
    let e = appctl(&fctl, &["cluster/change-election-timer", NB, "2000"]);
    assert_eq!(
        e.stderr.lines().next(),
        Some("election timer must be changed through leader.")
    );
    assert_eq!(
        appctl(&lctl, &["cluster/change-election-timer", NB, "1000"]).ok("same value"),
        "change election timer to current value.\n"
    );
    for (value, text) in [
        (
            "50",
            "election timer must be between 100 and 600000, in msec.",
        ),
        (
            "abc",
            "election timer must be between 100 and 600000, in msec.",
        ),
        (
            "700000",
            "election timer must be between 100 and 600000, in msec.",
        ),
        (
            "2001",
            "election timer increase should not exceed the current value x 2.",
        ),
    ] {
        let e = appctl(&lctl, &["cluster/change-election-timer", NB, value]);
        assert_eq!(
            (e.code, e.stderr.lines().next()),
            (Some(2), Some(text)),
            "value {value}"
        );
    }
    assert_eq!(
        appctl(&lctl, &["cluster/change-election-timer", NB, "2000"]).ok("change"),
        "change of election timer initiated.\n"
    );
    for ctl in [&lctl, &fctl] {
        wait_for(STARTUP, "the new election timer on every member", || {
            let status = appctl(ctl, &["cluster/status", NB])
                .ok("cluster/status")
                .to_string();
            status.contains("Election timer: 2000\n").then_some(())
        });
    }

    // vlog.
    appctl(&fctl, &["vlog/set", "raft:file:dbg"]).ok("vlog/set");
    let list = appctl(&fctl, &["vlog/list"]).ok("vlog/list").to_string();
    assert!(
        list.lines()
            .any(|l| l.starts_with("raft") && l.trim_end().ends_with("DBG")),
        "{list}"
    );
    assert!(list.contains("halyard_raft=debug"), "{list}");
    let e = appctl(&fctl, &["vlog/set", "nosuchmodule:dbg"]);
    assert_eq!(
        e.stderr.lines().next(),
        Some("no destination, level, or module \"nosuchmodule\"")
    );

    // kick from a follower, by Raft address: the leader removes the third member.
    let third = (0..3).find(|i| *i != leader && *i != follower).unwrap();
    let third_addr = format!("tcp:{}", cluster.members[third].raft_addr);
    let unknown = appctl(&fctl, &["cluster/kick", NB, "tcp:127.0.0.1:1"]);
    assert_eq!(unknown.stderr.lines().next(), Some("unknown server"));
    assert_eq!(
        appctl(&fctl, &["cluster/kick", NB, &third_addr]).ok("kick"),
        "sent removal request to leader\n"
    );
    wait_for(
        Duration::from_secs(60),
        "the leader to list two servers",
        || {
            let s = cluster.members[leader].cluster_status().stdout;
            (s.lines().skip_while(|l| *l != "Servers:").skip(1).count() == 2
                && !s.contains(&third_addr))
            .then_some(())
        },
    );
    // The cluster keeps serving with two members.
    nbctl(&cluster.members[leader].remote(), &["ls-add", "sw1"]);

    // leave on the (current) leader: it hands leadership over, is removed, and exits.
    let lremote = cluster.members[follower].remote();
    assert_eq!(appctl(&lctl, &["cluster/leave", NB]).ok("leave"), "");
    assert_eq!(
        cluster.members[leader].wait_exit(Duration::from_secs(60)),
        Some(0)
    );
    let f = wait_for(
        Duration::from_secs(60),
        "the follower to lead alone",
        || {
            let s = cluster.members[follower].cluster_status().stdout;
            (s.contains("Role: leader\n")
                && s.lines().skip_while(|l| *l != "Servers:").skip(1).count() == 1)
                .then_some(s)
        },
    );
    assert!(f.contains("Status: cluster member"), "{f}");
    assert!(nbctl(&lremote, &["ls-list"]).contains("sw1"));

    // exit: the reply comes back, then the process ends.
    assert_eq!(appctl(&fctl, &["exit"]).ok("exit"), "");
    assert_eq!(
        cluster.members[follower].wait_exit(Duration::from_secs(60)),
        Some(0)
    );
    assert!(
        !cluster.members[follower].ctl.exists(),
        "the control socket is removed on exit"
    );
}

/// The label of each line of a `cluster/status` text: the text before ": " (or the whole line
/// when there is none), with the per-server lines and the free-form first line reduced to a
/// marker. Lines whose data Halyard does not have are dropped from ovsdb-server's side.
fn labels(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                "<short id>".to_string()
            } else if l.starts_with("    ") {
                "<server>".to_string()
            } else {
                l.split(':').next().unwrap().to_string()
            }
        })
        .filter(|l| !l.starts_with("Last Election") && l != "Disconnections")
        .collect()
}

#[test]
fn cluster_status_labels_match_a_real_ovsdb_server() {
    // A real clustered ovsdb-server with one member.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nb.db");
    let raft = format!("tcp:127.0.0.1:{}", free_port());
    run(
        "ovsdb-tool",
        &["create-cluster", db.to_str().unwrap(), NB_SCHEMA, &raft],
    )
    .ok("create-cluster");
    let server = OvsdbServer::start(dir.path(), &db, "nb");
    let real = wait_for(Duration::from_secs(30), "ovsdb-server to lead", || {
        let s = appctl(&server.ctl, &["cluster/status", NB]).stdout;
        s.contains("Role: leader").then_some(s)
    });

    let cluster = Cluster::start(1);
    let ours = cluster.members[0]
        .cluster_status()
        .ok("cluster/status")
        .to_string();
    assert_eq!(
        labels(&ours),
        labels(&real),
        "halyard:\n{ours}\novsdb-server:\n{real}"
    );
    // The lines OVN tooling greps read the same for the same situation.
    for line in [
        "Status: cluster member",
        "Role: leader",
        "Leader: self",
        "Vote: self",
        "Term: 1",
    ] {
        assert!(
            real.contains(line) && ours.contains(line),
            "{line}\nhalyard:\n{ours}\novsdb-server:\n{real}"
        );
    }
}
