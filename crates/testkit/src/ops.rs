//! Helpers for the operations tests (ops_*.rs): start a Halyard cluster of real `halyard serve`
//! processes on free loopback ports, each with its control socket and HTTP endpoint, run the
//! real OVS tools (`ovs-appctl`, `ovsdb-tool`, `ovsdb-server`, `ovn-nbctl`) with deadlines, and
//! poll for readiness (the machine is shared and slow: no fixed sleeps).
//!
//! Every process is killed when its handle is dropped, so a failing test leaves none behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

// The basic helpers are shared with the single-member tests rather than written again.
pub use crate::single::{free_port, halyard_bin, repo_root, sorted_column, wait_for};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const NB: &str = "OVN_Northbound";
/// How long a cluster gets to come up.
pub const STARTUP: Duration = Duration::from_secs(90);
/// Deadline for one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished command printed, and its exit code (None: killed by a signal).
#[derive(Debug, Clone)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self, what: &str) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// Runs a command to completion, killing it (and failing) after COMMAND_TIMEOUT.
pub fn run(program: &str, args: &[&str]) -> Out {
    run_in(program, args, None)
}

pub fn run_in(program: &str, args: &[&str], dir: Option<&Path>) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = crate::single::run_input(&mut cmd, b"", COMMAND_TIMEOUT);
    Out {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// `ovs-appctl -t CTL ARGS...` (the real one).
pub fn appctl(ctl: &Path, args: &[&str]) -> Out {
    let mut all = vec!["--timeout=60", "-t", ctl.to_str().unwrap()];
    all.extend_from_slice(args);
    run("ovs-appctl", &all)
}

pub fn halyard(args: &[&str]) -> Out {
    run(halyard_bin(), args)
}

/// One `halyard serve` process and its addresses.
pub struct Member {
    pub dir: PathBuf,
    pub client_port: u16,
    pub raft_addr: String,
    pub http_addr: String,
    pub ctl: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn remote(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.client_port)
    }

    pub fn raft_remote(&self) -> String {
        format!("tcp:{}", self.raft_addr)
    }

    /// Starts `halyard serve` on an already prepared data directory.
    pub fn serve(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(&self.log).unwrap();
        let remote = format!("ptcp:{}:127.0.0.1", self.client_port);
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".into(),
            self.dir.to_str().unwrap().into(),
            "--remote".into(),
            remote,
            "--unixctl".into(),
            self.ctl.to_str().unwrap().into(),
            "--http".into(),
            self.http_addr.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(halyard_bin())
            .args(&args)
            .env("HALYARD_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (up to `timeout`) for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("member not running");
        let code = wait_for(timeout, "the member to exit", || {
            child.try_wait().unwrap().map(|s| s.code())
        });
        self.child = None;
        code
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `cluster/status OVN_Northbound` through the control socket, once it answers.
    pub fn cluster_status(&self) -> Out {
        appctl(&self.ctl, &["cluster/status", NB])
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of `halyard serve` processes in one temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
}

/// Fresh addresses for member `i` under `dir`.
pub fn new_member(dir: &Path, i: usize) -> Member {
    Member {
        dir: dir.join(format!("m{i}")),
        client_port: free_port(),
        raft_addr: format!("127.0.0.1:{}", free_port()),
        http_addr: format!("127.0.0.1:{}", free_port()),
        ctl: dir.join(format!("m{i}.ctl")),
        log: dir.join(format!("m{i}.log")),
        child: None,
    }
}

impl Cluster {
    /// `n` members serving the OVN Northbound schema.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_from(n, &["--schema", NB_SCHEMA])
    }

    /// `n` members; the first is created with `create_args` (e.g. `--from FILE`).
    pub fn start_from(n: usize, create_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("halyard-ops")
            .tempdir()
            .unwrap();
        let mut members: Vec<Member> = Vec::new();
        for i in 1..=n {
            let mut m = new_member(dir.path(), i);
            if i == 1 {
                let mut args = vec![
                    "create-cluster",
                    "--data-dir",
                    m.dir.to_str().unwrap(),
                    "--raft-addr",
                    &m.raft_addr,
                ];
                args.extend_from_slice(create_args);
                halyard(&args).ok("create-cluster");
            } else {
                let peer = members[0].raft_addr.clone();
                halyard(&[
                    "join-cluster",
                    "--data-dir",
                    m.dir.to_str().unwrap(),
                    "--raft-addr",
                    &m.raft_addr,
                    "--peer",
                    &peer,
                ])
                .ok("join-cluster");
            }
            m.serve(&[]);
            members.push(m);
            // One at a time: each joins once the previous ones are voters.
            let c = &members;
            wait_for(
                STARTUP,
                &format!("member {i} to be a voting cluster member"),
                || {
                    let me = c.last().unwrap();
                    let s = me.cluster_status();
                    let servers = s.stdout.lines().filter(|l| l.starts_with("    ")).count();
                    (s.code == Some(0)
                        && s.stdout.contains("Status: cluster member")
                        && servers == i)
                        .then_some(())
                },
            );
        }
        Cluster { dir, members }
    }

    /// Index of the member that reports `Role: leader`.
    pub fn leader(&self) -> usize {
        wait_for(STARTUP, "a leader", || {
            self.members
                .iter()
                .position(|m| m.cluster_status().stdout.contains("Role: leader\n"))
        })
    }

    /// Any member other than `i`.
    pub fn other_than(&self, i: usize) -> usize {
        (0..self.members.len()).find(|j| *j != i).unwrap()
    }
}

/// `ovn-nbctl --db=REMOTE ARGS...`, which must succeed.
pub fn nbctl(remote: &str, args: &[&str]) -> String {
    let db = format!("--db={remote}");
    let mut all = vec![db.as_str(), "--timeout=60"];
    all.extend_from_slice(args);
    run("ovn-nbctl", &all).ok("ovn-nbctl").to_string()
}

/// A plain HTTP/1.0 GET; returns (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A real ovsdb-server on `db_file` (standalone or clustered) in `dir`, killed on drop.
pub struct OvsdbServer {
    pub sock: PathBuf,
    pub ctl: PathBuf,
    child: Child,
}

impl OvsdbServer {
    pub fn start(dir: &Path, db_file: &Path, name: &str) -> OvsdbServer {
        let sock = dir.join(format!("{name}.sock"));
        let ctl = dir.join(format!("{name}.ctl"));
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new("ovsdb-server")
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg(format!("--unixctl={}", ctl.display()))
            .arg("--no-chdir")
            .arg(db_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = OvsdbServer { sock, ctl, child };
        let remote = server.remote();
        wait_for(STARTUP, "ovsdb-server to answer", || {
            (run("ovsdb-client", &["--timeout=5", "list-dbs", &remote]).code == Some(0))
                .then_some(())
        });
        server
    }

    pub fn remote(&self) -> String {
        format!("unix:{}", self.sock.display())
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use crate::single::normalize;
