//! `ovn-northd` end to end over Halyard clusters.
//! - NB and SB Halyard clusters (3 members each); ovn-northd is given every member of each.
//!   After tests/ovn/nb-topology.sh (each ovn-nbctl call through the next NB member) and
//!   `ovn-nbctl --wait=sb sync`, the Southbound Logical_Flow, Datapath_Binding, Port_Binding
//!   and Multicast_Group tables equal what ovn-northd writes over a real ovsdb-server pair
//!   (standalone NB + SB) for the same Northbound topology, after tests/cluster/normalize_sb.py
//!   (what northd varies between runs: UUIDs, NB UUIDs in external_ids, datapath tunnel keys).
//!   Every SB member serves the same Southbound contents.
//! - Two ovn-northd instances, each connected to a different single member: exactly one is
//!   active (the `ovn_northd` lock is cluster-wide). SIGKILL the members the active one uses:
//!   the other becomes active within a bound (the dead member's locks expire after the lock
//!   lease; the time taken is printed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use halyard_testkit::cluster::*;

const T: Duration = Duration::from_secs(180);

/// A standalone ovsdb-server for one schema, on a free port (killed on drop).
struct Standalone {
    _proc: Proc,
    remote: String,
}

impl Standalone {
    fn start(dir: &Path, name: &str, schema: &str) -> Standalone {
        let db = dir.join(format!("{name}.db"));
        run_ok(
            "ovsdb-tool",
            &["create", db.to_str().unwrap(), schema],
            Duration::from_secs(30),
        );
        let port = free_port();
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg("--no-chdir")
            .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
            .arg(format!(
                "--unixctl={}",
                dir.join(format!("{name}.ctl")).display()
            ))
            .arg(&db);
        let proc = Proc::spawn(
            &format!("ovsdb-server {name}"),
            cmd,
            &dir.join(format!("{name}.log")),
        );
        let remote = format!("tcp:127.0.0.1:{port}");
        wait_answers(
            &format!("ovsdb-server {name}"),
            &remote,
            Duration::from_secs(60),
        );
        Standalone {
            _proc: proc,
            remote,
        }
    }
}

/// An ovn-northd process (killed on drop) with its control socket.
struct Northd {
    proc: Proc,
    ctl: PathBuf,
    log: PathBuf,
}

impl Northd {
    fn start(dir: &Path, name: &str, nb: &str, sb: &str) -> Northd {
        let ctl = dir.join(format!("{name}.ctl"));
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new("ovn-northd");
        cmd.arg("--no-chdir")
            .arg(format!("--ovnnb-db={nb}"))
            .arg(format!("--ovnsb-db={sb}"))
            .arg(format!("--unixctl={}", ctl.display()))
            .arg(format!("--log-file={}", log.display()))
            .arg("-vconsole:off");
        let proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.out")));
        Northd { proc, ctl, log }
    }

    /// "active", "standby", "paused", or None while its control socket does not answer.
    fn status(&self) -> Option<String> {
        let out = run(
            "ovn-appctl",
            &["-t", self.ctl.to_str().unwrap(), "status"],
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().strip_prefix("Status: ").map(str::to_string)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn build_topology(dir: &Path, members: &[String]) {
    let out = nb_topology_rotating(dir, members);
    assert!(
        out.status.success(),
        "nb-topology.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sync(nb: &str) {
    run_ok(
        "ovn-nbctl",
        &[&format!("--db={nb}"), "--timeout=150", "--wait=sb", "sync"],
        T,
    );
}

fn southbound(remote: &str) -> String {
    let dump = run_ok(
        "ovsdb-client",
        &[
            "--timeout=60",
            "-f",
            "json",
            "dump",
            remote,
            "OVN_Southbound",
        ],
        T,
    );
    let mut child = Command::new("python3")
        .arg(asset("tests/cluster/normalize_sb.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), dump.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "normalize_sb.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The lines only in `a` and only in `b` (both are sorted lists of rows), at most 15 of each.
fn row_diff(a: &str, b: &str) -> String {
    let la: std::collections::BTreeSet<&str> = a.lines().collect();
    let lb: std::collections::BTreeSet<&str> = b.lines().collect();
    let only_a: Vec<&&str> = la.difference(&lb).take(15).collect();
    let only_b: Vec<&&str> = lb.difference(&la).take(15).collect();
    format!(
        "only in Halyard ({}):\n{only_a:#?}\nonly in ovsdb-server ({}):\n{only_b:#?}",
        la.difference(&lb).count(),
        lb.difference(&la).count()
    )
}

#[test]
fn northd_over_halyard_clusters_writes_what_it_writes_over_ovsdb_server_and_fails_over() {
    let mut nb = Cluster::start(3, &[NB_SCHEMA], &[]);
    let mut sb = Cluster::start(3, &[SB_SCHEMA], &[]);
    let dir = tempfile::Builder::new()
        .prefix("northd-")
        .tempdir()
        .unwrap();

    // The reference: the same topology through ovsdb-server + ovn-northd.
    let ref_nb = Standalone::start(dir.path(), "ref-nb", NB_SCHEMA);
    let ref_sb = Standalone::start(dir.path(), "ref-sb", SB_SCHEMA);
    let ref_northd = Northd::start(dir.path(), "ref-northd", &ref_nb.remote, &ref_sb.remote);
    build_topology(dir.path(), std::slice::from_ref(&ref_nb.remote));
    sync(&ref_nb.remote);
    let expected = southbound(&ref_sb.remote);
    assert!(
        expected
            .lines()
            .filter(|l| l.contains("\"Logical_Flow\""))
            .count()
            > 100,
        "reference too small"
    );

    // ovn-northd given every member of each cluster.
    let mut northd = Northd::start(
        dir.path(),
        "northd-all",
        &nb.remote_list(),
        &sb.remote_list(),
    );
    wait_until(
        "ovn-northd over Halyard to be active",
        Duration::from_secs(60),
        || (northd.status().as_deref() == Some("active")).then_some(()),
    );
    build_topology(dir.path(), &nb.remotes());
    sync(&nb.remote_list());
    for m in &sb.members {
        let got = southbound(&m.remote());
        assert!(
            got == expected,
            "Southbound through SB m{} differs from ovsdb-server's:\n{}\nnorthd log:\n{}",
            m.index,
            row_diff(&got, &expected),
            northd.log_tail()
        );
    }
    eprintln!(
        "Southbound written by ovn-northd over Halyard equals ovsdb-server's: {} normalised rows, through each of 3 SB members",
        expected.lines().count()
    );
    drop(ref_northd);
    northd.proc.terminate(Duration::from_secs(10));

    // Two instances on different members: exactly one active.
    let a = Northd::start(
        dir.path(),
        "northd-a",
        &nb.member(1).remote(),
        &sb.member(1).remote(),
    );
    let b = Northd::start(
        dir.path(),
        "northd-b",
        &nb.member(2).remote(),
        &sb.member(2).remote(),
    );
    let (active, standby, active_member) = wait_until(
        "one active and one standby ovn-northd",
        Duration::from_secs(60),
        || match (a.status()?.as_str(), b.status()?.as_str()) {
            ("active", "standby") => Some((&a, &b, 1)),
            ("standby", "active") => Some((&b, &a, 2)),
            _ => None,
        },
    );
    // Still exactly one a few seconds later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(active.status().as_deref(), Some("active"));
    assert_eq!(standby.status().as_deref(), Some("standby"));
    eprintln!("northd through m{active_member} is active, the other standby");

    // SIGKILL the members the active instance uses.
    let killed_at = Instant::now();
    sb.member(active_member).kill();
    nb.member(active_member).kill();
    let took = wait_until(
        "the standby ovn-northd to become active",
        Duration::from_secs(90),
        || (standby.status().as_deref() == Some("active")).then(|| killed_at.elapsed()),
    );
    eprintln!("standby ovn-northd became active {took:?} after its peer's members were killed (lock lease: 5 s)");
    assert!(
        took < Duration::from_secs(30),
        "took {took:?}: longer than the lock lease allows"
    );

    // And it does its job: a new switch appears in the Southbound through the survivors.
    let survivor = if active_member == 1 { 2 } else { 1 };
    run_ok(
        "ovn-nbctl",
        &[
            &format!("--db={}", nb.member(survivor).remote()),
            "--timeout=60",
            "ls-add",
            "after-failover",
        ],
        T,
    );
    sync(&nb.member(survivor).remote());
    let sbnow = southbound(&sb.member(survivor).remote());
    assert!(
        sbnow.contains("dp:after-failover"),
        "no datapath for the switch added after the failover"
    );
}

/// One column of a Southbound table through `remote`, as CSV without headings.
fn sb_column(remote: &str, table: &str, column: &str) -> String {
    run_ok(
        "ovsdb-client",
        &[
            "--timeout=60",
            "-f",
            "csv",
            "--no-headings",
            "dump",
            remote,
            "OVN_Southbound",
            table,
            column,
        ],
        T,
    )
}

/// The highest Raft term any member of `cluster` reports.
fn cluster_term(cluster: &mut Cluster) -> u64 {
    (1..=cluster.members.len())
        .filter_map(|i| cluster.member(i).raft_status()?["term"].as_u64())
        .max()
        .expect("a member answers")
}

/// Large transactions: ovn-northd's first full computation over a Northbound of 5,000 ports writes the
/// Southbound in large transactions (tens of MB); the Halyard SB cluster takes them without a
/// leader change, and every SB member serves every port binding.
#[test]
fn northd_fills_a_5000_port_southbound_without_a_leader_change() {
    const SWITCHES: usize = 50;
    const PORTS: usize = 100;
    let nb = Cluster::start(3, &[NB_SCHEMA], &[]);
    let mut sb = Cluster::start(3, &[SB_SCHEMA], &[]);
    let dir = tempfile::Builder::new()
        .prefix("northd-5000-")
        .tempdir()
        .unwrap();
    // The Northbound first, in batches of one switch and its ports per ovn-nbctl call, so
    // that northd then computes the whole Southbound at once.
    let nb_remotes = nb.remotes();
    let started = Instant::now();
    for s in 0..SWITCHES {
        let mut args = vec![
            format!("--db={}", nb_remotes[s % nb_remotes.len()]),
            "--timeout=120".to_string(),
            "ls-add".to_string(),
            format!("sw{s}"),
        ];
        for p in 0..PORTS {
            let n = s * PORTS + p;
            args.extend([
                "--".to_string(),
                "lsp-add".to_string(),
                format!("sw{s}"),
                format!("lp{n}"),
                "--".to_string(),
                "lsp-set-addresses".to_string(),
                format!("lp{n}"),
                format!(
                    "0a:00:00:{:02x}:{:02x}:{:02x} 10.{}.{}.{}",
                    n >> 16,
                    (n >> 8) & 0xff,
                    n & 0xff,
                    s,
                    p / 250,
                    p % 250 + 2
                ),
            ]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok("ovn-nbctl", &argv, T);
    }
    println!(
        "Northbound of {} ports built in {:.1} s",
        SWITCHES * PORTS,
        started.elapsed().as_secs_f64()
    );
    let term_before = cluster_term(&mut sb);
    let started = Instant::now();
    let northd = Northd::start(
        dir.path(),
        "northd-5000",
        &nb.remote_list(),
        &sb.remote_list(),
    );
    run_ok(
        "ovn-nbctl",
        &[
            &format!("--db={}", nb.remote_list()),
            "--timeout=170",
            "--wait=sb",
            "sync",
        ],
        T,
    );
    println!(
        "ovn-northd filled the Southbound in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for m in &sb.members {
        let out = sb_column(&m.remote(), "Port_Binding", "logical_port");
        let ports = out.lines().filter(|l| l.contains("lp")).count();
        assert_eq!(
            ports,
            SWITCHES * PORTS,
            "SB member {} serves {ports} port bindings\n{}",
            m.index,
            northd.log_tail()
        );
    }
    let flows = sb_column(&sb.members[0].remote(), "Logical_Flow", "_uuid")
        .lines()
        .filter(|l| l.len() >= 36)
        .count();
    println!("{flows} logical flows");
    let term_after = cluster_term(&mut sb);
    assert_eq!(
        term_before,
        term_after,
        "the SB cluster changed leader while northd wrote\n{}",
        sb.logs()
    );
}
