//! Sites that already run ovsdb-server relays keep them: a real `ovsdb-server` started with
//! `relay:OVN_Southbound:<every Halyard member>` takes Halyard as its source. Through the relay
//! `ovn-sbctl` reads what was written on a member and writes (the relay forwards transactions
//! to its source); when the member the relay follows is killed, it moves to another and keeps
//! serving new writes. (`ovn-sbctl` needs `--no-leader-only` at a relay, as with any relay:
//! `_Server` there says it is not a leader; `ovn-controller` does not ask for one.)

use std::time::Duration;

use halyard_testkit::cluster::*;

const T: Duration = Duration::from_secs(60);

fn sbctl(remote: &str, args: &[&str]) -> std::process::Output {
    let db = format!("--db={remote}");
    // A relay is never the leader (ovsdb-server's relays say so in `_Server`): as with a relay
    // of ovsdb-server, leader-only clients are told to look elsewhere.
    let mut all = vec![db.as_str(), "--timeout=20", "--no-leader-only"];
    all.extend_from_slice(args);
    run("ovn-sbctl", &all, T)
}

fn chassis(remote: &str) -> String {
    let out = sbctl(remote, &["--bare", "--columns=name", "list", "Chassis"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_real_ovsdb_server_relay_serves_from_a_halyard_cluster() {
    let mut cluster = Cluster::start(3, &[SB_SCHEMA], &[]);
    cluster.wait_leader(T);
    let dir = tempfile::Builder::new()
        .prefix("halyard-relay-")
        .tempdir()
        .unwrap();
    let source = format!(
        "relay:OVN_Southbound:{}",
        cluster
            .members
            .iter()
            .map(|m| m.remote())
            .collect::<Vec<_>>()
            .join(",")
    );
    let sock = dir.path().join("relay.sock");
    let mut cmd = std::process::Command::new("ovsdb-server");
    cmd.arg(format!("--remote=punix:{}", sock.display()))
        .arg(format!(
            "--unixctl={}",
            dir.path().join("relay.ctl").display()
        ))
        .arg(format!(
            "--log-file={}",
            dir.path().join("relay.log").display()
        ))
        .args(["--no-chdir", "-vconsole:off"])
        .arg(&source);
    let _relay = Proc::spawn("ovsdb-server relay", cmd, &dir.path().join("relay.stderr"));
    let relay = format!("unix:{}", sock.display());
    let relay_log = || std::fs::read_to_string(dir.path().join("relay.log")).unwrap_or_default();

    let m1 = cluster.members[0].remote();
    let out = sbctl(&m1, &["chassis-add", "hv-on-member", "geneve", "192.0.2.1"]);
    assert!(out.status.success(), "{out:?}");
    wait_until("the relay to serve the member's write", T, || {
        chassis(&relay).contains("hv-on-member").then_some(())
    });
    // A write through the relay lands in the cluster.
    let out = sbctl(
        &relay,
        &["chassis-add", "hv-via-relay", "geneve", "192.0.2.2"],
    );
    assert!(out.status.success(), "{out:?}\nrelay log:\n{}", relay_log());
    for m in &cluster.members {
        assert!(
            chassis(&m.remote()).contains("hv-via-relay"),
            "m{}",
            m.index
        );
    }
    // Every member down in turn but one: the relay follows whichever answers.
    for victim in 0..2 {
        cluster.members[victim].kill();
        let survivor = cluster.members[2].remote();
        let name = format!("hv-after-kill-{victim}");
        let ip = format!("192.0.2.{}", 10 + victim);
        let out = run(
            "ovn-sbctl",
            &[
                &format!("--db={survivor}"),
                "--timeout=60",
                "--no-leader-only",
                "chassis-add",
                &name,
                "geneve",
                &ip,
            ],
            Duration::from_secs(90),
        );
        assert!(out.status.success(), "{out:?}");
        wait_until(
            &format!("the relay to serve {name}"),
            Duration::from_secs(60),
            || chassis(&relay).contains(&name).then_some(()),
        );
        cluster.members[victim].start_and_wait("OVN_Southbound", UP_TIMEOUT);
    }
    assert!(
        relay_log().contains("relay"),
        "the relay's log says nothing of its source"
    );
}
