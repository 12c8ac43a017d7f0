//! The drop-in: OVN's own, unmodified `ovn-ctl` runs three "hosts" (each with its own
//! OVN_RUNDIR, OVN_DBDIR, OVN_LOGDIR and ports, all on this machine), each with a Northbound
//! and a Southbound member, with a directory holding `ovsdb-server -> halyard` first on PATH.
//! ovn-ctl creates and joins the clusters with the real `ovsdb-tool`, starts the members with
//! ovsdb-server's command line, initializes the databases (`ovn-nbctl init`), upgrades the
//! schema through `upgrade_cluster` (`ovsdb-client convert`), reports status and stops and
//! restarts a member through its pidfile and control socket.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use halyard_testkit::single::{free_port, run, wait_for, Output, NB_SCHEMA};
use serde_json::Value;

const OVN_CTL: &str = "/usr/share/ovn/scripts/ovn-ctl";

struct Host {
    dir: PathBuf,
    nb_raft: u16,
    nb_port: u16,
    sb_raft: u16,
    sb_port: u16,
}

impl Host {
    fn rundir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn dbdir(&self) -> PathBuf {
        self.dir.join("db")
    }

    /// A command with this host's OVN directories and the drop-in first on PATH.
    fn command(&self, bin: &Path, program: &str) -> Command {
        let mut c = Command::new(program);
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("OVN_RUNDIR", self.rundir())
            .env("OVN_DBDIR", self.dbdir())
            .env("OVN_LOGDIR", self.dir.join("log"))
            .env("OVN_SYSCONFDIR", self.dir.join("etc"))
            .env_remove("OVN_NB_DB")
            .env_remove("OVN_SB_DB");
        c
    }

    /// ovn-ctl's options for this host's members; `join` is the host whose members it joins.
    fn options(&self, join: Option<&Host>, nb_schema: Option<&Path>) -> Vec<String> {
        let mut o = vec![
            "--db-nb-cluster-local-addr=127.0.0.1".to_string(),
            format!("--db-nb-cluster-local-port={}", self.nb_raft),
            "--db-nb-create-insecure-remote=yes".into(),
            "--db-nb-addr=127.0.0.1".into(),
            format!("--db-nb-port={}", self.nb_port),
            "--db-sb-cluster-local-addr=127.0.0.1".into(),
            format!("--db-sb-cluster-local-port={}", self.sb_raft),
            "--db-sb-create-insecure-remote=yes".into(),
            "--db-sb-addr=127.0.0.1".into(),
            format!("--db-sb-port={}", self.sb_port),
        ];
        if let Some(first) = join {
            o.extend([
                "--db-nb-cluster-remote-addr=127.0.0.1".to_string(),
                format!("--db-nb-cluster-remote-port={}", first.nb_raft),
                "--db-sb-cluster-remote-addr=127.0.0.1".into(),
                format!("--db-sb-cluster-remote-port={}", first.sb_raft),
            ]);
        }
        if let Some(schema) = nb_schema {
            o.push(format!("--db-nb-schema={}", schema.display()));
        }
        o
    }

    fn pid(&self, db: &str) -> Option<i32> {
        std::fs::read_to_string(self.rundir().join(format!("ovn{db}_db.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

struct Site {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    hosts: Vec<Host>,
}

impl Drop for Site {
    fn drop(&mut self) {
        // Whatever a failed assertion left running (a monitor exits with its server).
        for h in &self.hosts {
            for db in ["nb", "sb"] {
                if let Some(pid) = h.pid(db) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if std::thread::panicking() || std::env::var_os("HALYARD_KEEP").is_some() {
            // Every host's logs, for a post-mortem (the failure message shows one host's).
            let path = self._tmp.path().to_path_buf();
            let kept = std::mem::replace(&mut self._tmp, tempfile::tempdir().unwrap());
            let _ = kept.keep();
            eprintln!("site directory kept: {}", path.display());
        }
    }
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(halyard_testkit::halyard_bin(), bin.join("ovsdb-server"))
            .unwrap();
        let hosts = (0..3)
            .map(|i| Host {
                dir: tmp.path().join(format!("host{i}")),
                nb_raft: free_port(),
                nb_port: free_port(),
                sb_raft: free_port(),
                sb_port: free_port(),
            })
            .collect();
        Site {
            _tmp: tmp,
            bin,
            hosts,
        }
    }

    /// `ovn-ctl OPTIONS COMMAND` on host `i`; fails the test on a non-zero exit or on any step
    /// ovn-ctl reports as failed.
    fn ovn_ctl(&self, i: usize, options: &[String], command: &str) -> String {
        let h = &self.hosts[i];
        let out = run(h.command(&self.bin, OVN_CTL).args(options).arg(command));
        let text = format!("{}{}", out.stdout, out.stderr);
        println!("host{i}: ovn-ctl {command}:\n{text}");
        let logs = || {
            let mut s = String::new();
            for db in ["nb", "sb"] {
                let p = h.dir.join(format!("log/ovsdb-server-{db}.log"));
                s.push_str(&format!(
                    "--- {} ---\n{}\n",
                    p.display(),
                    std::fs::read_to_string(&p).unwrap_or_default()
                ));
            }
            s
        };
        assert!(
            out.status.success(),
            "ovn-ctl {command} on host{i} failed ({}):\n{text}\n{}",
            out.status,
            logs()
        );
        let lower = text.to_lowercase();
        assert!(
            !lower.contains("fail") && !lower.contains("error"),
            "ovn-ctl {command} on host{i} reported a problem:\n{text}\n{}",
            logs()
        );
        text
    }

    fn tool(&self, i: usize, program: &str, args: &[&str]) -> Output {
        run(self.hosts[i].command(&self.bin, program).args(args))
    }

    fn ok(&self, i: usize, program: &str, args: &[&str]) -> String {
        self.tool(i, program, args)
            .ok(&format!("host{i}: {program} {}", args.join(" ")))
    }
}

/// The NB schema with a lower version, so that ovn-ctl's `upgrade_cluster` must convert the
/// database to the installed schema.
fn old_nb_schema(dir: &Path) -> PathBuf {
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(NB_SCHEMA).unwrap()).unwrap();
    schema["version"] = "1.0.0".into();
    // A column the old schema lacks: the conversion must add it.
    schema["tables"]["Logical_Switch"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("copp");
    let path = dir.join("old-nb.ovsschema");
    std::fs::write(&path, schema.to_string()).unwrap();
    path
}

fn names(list: &str) -> BTreeSet<String> {
    list.lines()
        .filter_map(|l| {
            l.split_once(" (")
                .map(|(_, n)| n.trim_end_matches(')').to_string())
        })
        .collect()
}

#[test]
fn three_hosts_under_ovn_ctl() {
    let site = Site::new();
    let old_schema = old_nb_schema(site._tmp.path());
    let installed_version = run(Command::new("ovsdb-tool").args(["schema-version", NB_SCHEMA]))
        .ok("ovsdb-tool schema-version")
        .trim()
        .to_string();

    // Host 0 creates both clusters; its NB starts from an older schema, as after a package
    // upgrade: ovn-ctl's own create_cluster uses the file it finds.
    let h0 = &site.hosts[0];
    std::fs::create_dir_all(h0.dbdir()).unwrap();
    let nb_file = h0.dbdir().join("ovnnb_db.db");
    let local = format!("tcp:127.0.0.1:{}", h0.nb_raft);
    site.ok(
        0,
        "ovsdb-tool",
        &[
            "create-cluster",
            nb_file.to_str().unwrap(),
            old_schema.to_str().unwrap(),
            &local,
        ],
    );
    let out = site.ovn_ctl(0, &h0.options(None, None), "start_ovsdb");
    assert!(out.contains("Upgrading database OVN_Northbound from schema version 1.0.0"));
    let sock = h0.rundir().join("ovnnb_db.sock");
    let version = site.ok(
        0,
        "ovsdb-client",
        &[
            "get-schema-version",
            &format!("unix:{}", sock.display()),
            "OVN_Northbound",
        ],
    );
    assert_eq!(version.trim(), installed_version);
    // ovn-ctl's `ovn-nbctl init` / `ovn-sbctl init` made the global rows.
    assert_eq!(
        site.ok(
            0,
            "ovn-nbctl",
            &["--bare", "--columns=_uuid", "list", "NB_Global"]
        )
        .lines()
        .filter(|l| !l.is_empty())
        .count(),
        1
    );
    assert_eq!(
        site.ok(
            0,
            "ovn-sbctl",
            &["--bare", "--columns=_uuid", "list", "SB_Global"]
        )
        .lines()
        .filter(|l| !l.is_empty())
        .count(),
        1
    );

    for i in 1..3 {
        site.ovn_ctl(i, &site.hosts[i].options(Some(h0), None), "start_ovsdb");
    }
    for i in 0..3 {
        let status = site.ovn_ctl(i, &[], "status_ovsdb");
        assert!(status.contains("OVN Northbound DB is running"), "{status}");
        assert!(status.contains("OVN Southbound DB is running"), "{status}");
    }

    // ovsdb-tool still answers on the files, and they agree with the running members.
    for i in 0..3 {
        let h = &site.hosts[i];
        for (db, name, raft) in [
            ("nb", "OVN_Northbound", h.nb_raft),
            ("sb", "OVN_Southbound", h.sb_raft),
        ] {
            let file = h.dbdir().join(format!("ovn{db}_db.db"));
            let file = file.to_str().unwrap();
            let ctl = h.rundir().join(format!("ovn{db}_db.ctl"));
            let ctl = ctl.to_str().unwrap();
            site.ok(i, "ovsdb-tool", &["db-is-clustered", file]);
            assert_eq!(
                site.ok(i, "ovsdb-tool", &["db-local-address", file]).trim(),
                format!("tcp:127.0.0.1:{raft}")
            );
            assert_eq!(
                site.ok(i, "ovsdb-tool", &["db-sid", file]).trim(),
                site.ok(i, "ovs-appctl", &["-t", ctl, "cluster/sid", name])
                    .trim()
            );
            if i == 0 {
                assert_eq!(
                    site.ok(i, "ovsdb-tool", &["db-cid", file]).trim(),
                    site.ok(i, "ovs-appctl", &["-t", ctl, "cluster/cid", name])
                        .trim()
                );
            }
            let status = site.ok(i, "ovs-appctl", &["-t", ctl, "cluster/status", name]);
            assert!(status.contains("Status: cluster member"), "{status}");
            assert_eq!(status.matches(" at tcp:127.0.0.1:").count(), 3, "{status}");
        }
    }

    // `halyard status` pointed at a member's client addresses finds its Raft side.
    let nb_sock = format!(
        "unix:{}",
        site.hosts[1].rundir().join("ovnnb_db.sock").display()
    );
    let nb_tcp = format!("tcp:127.0.0.1:{}", site.hosts[2].nb_port);
    for remote in [nb_sock.as_str(), nb_tcp.as_str()] {
        let out = run(Command::new(halyard_testkit::halyard_bin())
            .args(["status", "--json", "--remote", remote]));
        assert!(
            out.status.success(),
            "halyard status --remote {remote}: {out:?}"
        );
        let doc: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["verdict"], "healthy", "{doc:#}");
        assert_eq!(doc["members"].as_array().unwrap().len(), 3, "{doc:#}");
    }

    // ovn-nbctl and ovn-sbctl with default options (the host's Unix socket) at every member.
    for i in 0..3 {
        site.ok(i, "ovn-nbctl", &["ls-add", &format!("sw{i}")]);
        site.ok(
            i,
            "ovn-sbctl",
            &[
                "chassis-add",
                &format!("ch{i}"),
                "geneve",
                &format!("10.0.0.{i}"),
            ],
        );
    }
    let all: BTreeSet<String> = (0..3).map(|i| format!("sw{i}")).collect();
    for i in 0..3 {
        let list = site.ok(i, "ovn-nbctl", &["ls-list"]);
        assert_eq!(names(&list), all, "host{i}: {list}");
    }

    // ovn-northd on top, given every member's socket as ovn-ctl's start_northd gives them: the
    // logical flows of a switch appear through another host's Southbound member.
    let sockets = |file: &str| {
        (0..3)
            .map(|i| format!("unix:{}", site.hosts[i].rundir().join(file).display()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let northd_log = site.hosts[0].rundir().join("northd-test.log");
    let mut northd = Command::new("ovn-northd")
        .arg(format!("--ovnnb-db={}", sockets("ovnnb_db.sock")))
        .arg(format!("--ovnsb-db={}", sockets("ovnsb_db.sock")))
        .arg(format!(
            "--unixctl={}",
            site.hosts[0].rundir().join("northd-test.ctl").display()
        ))
        .arg(format!("--log-file={}", northd_log.display()))
        .args(["--no-chdir", "-vconsole:off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ovn-northd");
    let flows = wait_for(
        Duration::from_secs(30),
        "ovn-northd's logical flows for sw0 through host2's Southbound",
        || {
            let out = site.tool(2, "ovn-sbctl", &["lflow-list", "sw0"]);
            (out.status.success() && out.stdout.contains("ls_in_")).then_some(out.stdout)
        },
    );
    assert!(flows.lines().count() > 20, "{flows}");
    let _ = northd.kill();
    let _ = northd.wait();

    // Stop one NB member gracefully (`ovs-appctl exit` through its control socket), write
    // while it is down, start it again: it comes back with its data and catches up.
    let h1 = &site.hosts[1];
    let pid = h1.pid("nb").unwrap();
    let out = site.ovn_ctl(1, &[], "stop_nb_ovsdb");
    assert!(out.contains("Exiting ovnnb_db"), "{out}");
    assert!(!out.contains("Killing"), "not stopped by `exit`: {out}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    );
    assert!(
        !h1.rundir().join("ovnnb_db.pid").exists(),
        "pidfile left behind"
    );
    let status = site.ovn_ctl(1, &[], "status_ovsdb");
    assert!(
        status.contains("OVN Northbound DB is not running"),
        "{status}"
    );
    assert!(status.contains("OVN Southbound DB is running"), "{status}");
    site.ok(0, "ovn-nbctl", &["ls-add", "while-down"]);
    site.ovn_ctl(1, &h1.options(Some(h0), None), "start_nb_ovsdb");
    let mut expected = all.clone();
    expected.insert("while-down".into());
    wait_for(
        Duration::from_secs(30),
        "the restarted member to catch up",
        || {
            let list = site.tool(1, "ovn-nbctl", &["ls-list"]);
            (list.status.success() && names(&list.stdout) == expected).then_some(())
        },
    );
    site.ok(1, "ovn-nbctl", &["ls-add", "after-restart"]);
    let list = site.ok(2, "ovn-nbctl", &["ls-list"]);
    assert!(names(&list).contains("after-restart"), "{list}");

    // --monitor: a server that crashes is restarted (after the monitor's restart interval)
    // with its data, and writes its new pid into the pidfile.
    let h2 = &site.hosts[2];
    let crashed = h2.pid("sb").unwrap();
    unsafe { libc::kill(crashed, libc::SIGABRT) };
    let restarted = wait_for(
        Duration::from_secs(40),
        "the monitor to restart the server",
        || h2.pid("sb").filter(|p| *p != crashed),
    );
    let chassis = wait_for(
        Duration::from_secs(30),
        "the restarted server to answer",
        || {
            let out = site.tool(
                2,
                "ovn-sbctl",
                &["--bare", "--columns=name", "list", "Chassis"],
            );
            out.status.success().then_some(out.stdout)
        },
    );
    let chassis: BTreeSet<&str> = chassis.split_whitespace().collect();
    assert_eq!(chassis, BTreeSet::from(["ch0", "ch1", "ch2"]));
    assert!(Path::new(&format!("/proc/{restarted}")).exists());

    // cluster/change-election-timer, for real: committed through the log, shown on every
    // member, limited to doubling per call, in effect for the next election, kept across a
    // restart.
    let nb_status = |i: usize| {
        let ctl = site.hosts[i].rundir().join("ovnnb_db.ctl");
        site.tool(
            i,
            "ovs-appctl",
            &[
                "-t",
                ctl.to_str().unwrap(),
                "cluster/status",
                "OVN_Northbound",
            ],
        )
    };
    let nb_leader = || {
        wait_for(Duration::from_secs(30), "an NB leader", || {
            (0..3).find(|i| {
                let out = nb_status(*i);
                out.status.success() && out.stdout.contains("Role: leader\n")
            })
        })
    };
    let leader = nb_leader();
    let lctl = site.hosts[leader].rundir().join("ovnnb_db.ctl");
    let lctl = lctl.to_str().unwrap();
    let change = |ms: &str| {
        site.tool(
            leader,
            "ovs-appctl",
            &[
                "-t",
                lctl,
                "cluster/change-election-timer",
                "OVN_Northbound",
                ms,
            ],
        )
    };
    assert_eq!(
        change("2000").ok("change-election-timer 2000"),
        "change of election timer initiated.\n"
    );
    let too_much = change("4001");
    assert_eq!(
        too_much.stderr.lines().next(),
        Some("election timer increase should not exceed the current value x 2."),
        "{too_much:?}"
    );
    assert_eq!(
        change("4000").ok("change-election-timer 4000"),
        "change of election timer initiated.\n"
    );
    for i in 0..3 {
        wait_for(
            Duration::from_secs(30),
            "the new timer on every member",
            || {
                let out = nb_status(i);
                out.stdout.contains("Election timer: 4000\n").then_some(())
            },
        );
    }
    // The leader dies: no election starts before 0.75 x 4000 ms of silence (with the
    // default 1000 ms timer one starts within a second).
    let dead = site.hosts[leader].pid("nb").unwrap();
    unsafe { libc::kill(dead, libc::SIGKILL) };
    let killed_at = std::time::Instant::now();
    let new_leader = wait_for(Duration::from_secs(60), "a new NB leader", || {
        (0..3)
            .filter(|i| *i != leader)
            .find(|i| nb_status(*i).stdout.contains("Role: leader\n"))
    });
    let failover = killed_at.elapsed();
    println!("failover with a 4000 ms election timer: {failover:?}");
    assert!(
        failover >= Duration::from_millis(2900),
        "elected after {failover:?}"
    );
    // Back under ovn-ctl (its pidfile names a dead process): the timer survived.
    let opts = site.hosts[leader].options((leader != 0).then_some(h0), None);
    site.ovn_ctl(leader, &opts, "start_nb_ovsdb");
    wait_for(
        Duration::from_secs(30),
        "the restarted member to rejoin",
        || {
            let out = nb_status(leader);
            (out.stdout.contains("Election timer: 4000\n")
                && out.stdout.contains("Role: follower\n"))
            .then_some(())
        },
    );
    site.ok(new_leader, "ovn-nbctl", &["ls-add", "after-failover"]);

    for i in 0..3 {
        site.ovn_ctl(i, &[], "stop_ovsdb");
        let status = site.ovn_ctl(i, &[], "status_ovsdb");
        assert!(
            status.contains("OVN Northbound DB is not running"),
            "{status}"
        );
        assert!(
            status.contains("OVN Southbound DB is not running"),
            "{status}"
        );
    }
}

/// ovsdb-server's command-line answers: help that ovn-ctl's greps accept, the version line
/// ovn-ctl's stop parses, and clear refusals of what Halyard does not do.
#[test]
fn command_line() {
    let site = Site::new();
    let server = site.bin.join("ovsdb-server");
    let help = run(Command::new(&server).arg("--help")).ok("ovsdb-server --help");
    assert!(help.contains("--disable-file-column-diff"), "{help}");
    let version = run(Command::new(&server).arg("--version")).ok("ovsdb-server --version");
    assert!(version.trim_end().ends_with(" 3.1.0"), "{version}");
    for (args, expect) in [
        (&["--frobnicate"][..], "unrecognized option '--frobnicate'"),
        (&["--sync-from=tcp:1.2.3.4:6641"][..], "'--sync-from'"),
        (
            &["--detach=yes"][..],
            "'--detach' doesn't allow an argument",
        ),
        (&["--remote"][..], "'--remote' requires an argument"),
        (
            &["a.db", "b.db", "--remote=punix:x"][..],
            "one database file per process",
        ),
        (
            &[
                "-vnosuchmodule",
                "--remote=punix:/nonexistent/x",
                "/nonexistent/db",
            ][..],
            "nosuchmodule",
        ),
    ] {
        let out = run(Command::new(&server).args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains(expect), "{args:?}: {}", out.stderr);
    }
    // A file that does not exist, detached: the starter waits for the failure and reports it.
    let out = run(Command::new(&server).args([
        "--detach",
        "--remote=punix:/nonexistent/x",
        "/nonexistent/db",
    ]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("/nonexistent/db"), "{}", out.stderr);
}

/// ovn-ctl's standalone mode (no cluster address): ovn-ctl makes the file with `ovsdb-tool
/// create` and Halyard serves it as a one-member cluster, across a restart.
#[test]
fn standalone_under_ovn_ctl() {
    let site = Site::new();
    let h = &site.hosts[0];
    let opts = vec![
        "--db-nb-create-insecure-remote=yes".to_string(),
        "--db-nb-addr=127.0.0.1".into(),
        format!("--db-nb-port={}", h.nb_port),
    ];
    site.ovn_ctl(0, &opts, "start_nb_ovsdb");
    let file = h.dbdir().join("ovnnb_db.db");
    site.ok(
        0,
        "ovsdb-tool",
        &["db-is-standalone", file.to_str().unwrap()],
    );
    site.ok(0, "ovn-nbctl", &["ls-add", "standalone-sw"]);
    let tcp = format!("tcp:127.0.0.1:{}", h.nb_port);
    let list = site.ok(0, "ovn-nbctl", &["--db", &tcp, "ls-list"]);
    assert!(names(&list).contains("standalone-sw"), "{list}");
    let out = site.ovn_ctl(0, &[], "stop_nb_ovsdb");
    assert!(!out.contains("Killing"), "{out}");
    site.ovn_ctl(0, &opts, "start_nb_ovsdb");
    let list = site.ok(0, "ovn-nbctl", &["ls-list"]);
    assert!(names(&list).contains("standalone-sw"), "{list}");
    site.ovn_ctl(0, &[], "stop_nb_ovsdb");
}
