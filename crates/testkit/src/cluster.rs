//! Helpers for the multi-process cluster tests: real `halyard` members on loopback,
//! real OVS/OVN tools, a raw OVSDB JSON-RPC client, and the reference ovsdb-server cluster.
//!
//! Every process a test starts is owned by a guard that SIGKILLs it on drop, so a failing
//! assertion does not leave members running. Ports come from the kernel (bind to port 0), since
//! several agents run tests on this machine at the same time. Every wait polls with a generous
//! bound: the machine is loaded.

use std::fs::OpenOptions;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// The basic helpers are shared with the single-member tests rather than written again.
pub use crate::single::{free_port, free_ports, halyard_bin, repo_root};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
/// How long a member may take to start, join and show its database.
pub const UP_TIMEOUT: Duration = Duration::from_secs(60);

pub fn asset(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// A base port B such that B+1..=B+n and B+11..=B+10+n are free (ref-cluster.sh's layout).
pub fn free_base_port(n: u16) -> u16 {
    crate::single::free_ports(10 + n) - 1
}

/// Runs `prog args` with a hard time limit (coreutils `timeout`, SIGKILL after a grace period).
pub fn run(prog: &str, args: &[&str], limit: Duration) -> Output {
    run_env(prog, args, limit, &[])
}

pub fn run_env(prog: &str, args: &[&str], limit: Duration, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg(format!("{}", limit.as_secs().max(1)))
        .arg(prog)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

/// Like `run`, but panics with the command's output unless it succeeds; returns stdout.
pub fn run_ok(prog: &str, args: &[&str], limit: Duration) -> String {
    let out = run(prog, args, limit);
    assert!(
        out.status.success(),
        "{prog} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub use crate::single::normalize;

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then reap (SIGKILL after `grace`).
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `halyard` member: its data directory, ports and (while running) its process.
pub struct Member {
    pub index: usize,
    pub port: u16,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub serve_args: Vec<String>,
    pub proc: Option<Proc>,
}

impl Member {
    pub fn remote(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `halyard serve` on this member's data directory (stderr appended to its log).
    pub fn start(&mut self) {
        assert!(self.proc.is_none(), "member {} already running", self.index);
        let mut cmd = Command::new(halyard_bin());
        // In its data directory, so relative `punix:` names (from `db:` remotes, which every
        // member reads alike) name a different socket for each member.
        cmd.current_dir(&self.data_dir)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--remote")
            .arg(format!("ptcp:{}:127.0.0.1", self.port))
            .args(&self.serve_args)
            .env(
                "HALYARD_LOG",
                std::env::var("HALYARD_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
            );
        self.proc = Some(Proc::spawn(
            &format!("halyard m{}", self.index),
            cmd,
            &self.log,
        ));
    }

    /// SIGKILL (a crash: no shutdown path runs).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.is_running())
    }

    /// SIGSTOP: the member stalls (a frozen VM, a long swap-in) with its sockets open.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Member::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .proc
            .as_ref()
            .and_then(|p| p.pid())
            .expect("member running");
        run_ok("kill", &[sig, &pid.to_string()], Duration::from_secs(10));
    }

    /// The member's own view over the member-to-member gRPC `Status` call (role, term, leader...).
    pub fn raft_status(&self) -> Option<Value> {
        raft_status(&self.raft_addr)
    }

    /// Its `_Server` row for `db`, if it answers.
    pub fn server_row(&self, db: &str) -> Option<Value> {
        let mut c = Rpc::connect(&self.addr(), Duration::from_secs(5)).ok()?;
        let r = c
            .transact(
                "_Server",
                vec![
                    json!({"op": "select", "table": "Database", "where": [["name", "==", db]],
                    "columns": ["name", "connected", "leader", "index"]}),
                ],
            )
            .ok()?;
        r[0]["rows"].get(0).cloned()
    }

    /// Polls until the member answers and `_Server` shows `db` connected; panics otherwise.
    pub fn wait_ready(&mut self, db: &str, limit: Duration) {
        if let Err(e) = self.try_wait_ready(db, limit) {
            panic!("{e}");
        }
    }

    pub fn try_wait_ready(&mut self, db: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if !self.is_running() {
                return Err(format!(
                    "member {} exited while starting; log:\n{}",
                    self.index,
                    self.log_tail(40)
                ));
            }
            let listed = run(
                "ovsdb-client",
                &["--timeout=2", "list-dbs", &self.remote()],
                Duration::from_secs(10),
            );
            if listed.status.success()
                && String::from_utf8_lossy(&listed.stdout)
                    .lines()
                    .any(|l| l == db)
            {
                if let Some(row) = self.server_row(db) {
                    if row["connected"] == json!(true) {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "member {} not ready with {db} after {limit:?}; log:\n{}",
                    self.index,
                    self.log_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the member and waits for it; if another process took its client port in the
    /// meantime (tests of other agents run on this machine), moves to a fresh port.
    pub fn start_and_wait(&mut self, db: &str, limit: Duration) {
        for _ in 0..3 {
            self.start();
            match self.try_wait_ready(db, limit) {
                Ok(()) => return,
                Err(e) if e.contains("cannot listen") => {
                    self.kill();
                    self.port = free_port();
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("member {} could not get a client port", self.index);
    }

    /// Polls until this member has heard from a leader since it last started (its status's
    /// `millis_since_leader_contact`); panics after `limit`.
    pub fn wait_leader_contact(&self, limit: Duration) {
        wait_until(
            &format!("member {} to hear from a leader", self.index),
            limit,
            || {
                let status = self.raft_status()?;
                (!status["millis_since_leader_contact"].is_null()).then_some(())
            },
        );
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Asks the member at `raft_addr` for its status JSON over gRPC (`Status`).
pub fn raft_status(raft_addr: &str) -> Option<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let fut = async {
            let mut client = halyard_raft::pb::member_client::MemberClient::connect(format!(
                "http://{raft_addr}"
            ))
            .await
            .ok()?;
            let reply = client.status(halyard_raft::pb::Empty {}).await.ok()?;
            serde_json::from_str::<Value>(&reply.into_inner().json).ok()
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .ok()
            .flatten()
    })
}

/// A Halyard cluster of real processes in a temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    /// The database checked for readiness (the first schema's).
    pub db: String,
    pub serve_args: Vec<String>,
}

impl Cluster {
    /// `n` members: member 1 `create-cluster` with `schemas`, the others `join-cluster --peer
    /// <member 1>`, one at a time, each `serve`d and waited for.
    pub fn start(n: usize, schemas: &[&str], serve_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("halyard-cluster-")
            .tempdir()
            .expect("tempdir");
        let db = schema_name(schemas[0]);
        let mut cluster = Cluster {
            dir,
            members: Vec::new(),
            db,
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..n {
            cluster.add_member_with(schemas, &[]);
        }
        cluster
    }

    /// Prepares, starts and waits for one more member (the first creates the cluster); `join`
    /// are more `join-cluster` options.
    fn add_member_with(&mut self, schemas: &[&str], join: &[&str]) -> usize {
        let index = self.members.len() + 1;
        let data_dir = self.dir.path().join(format!("m{index}"));
        let raft_addr = format!("127.0.0.1:{}", free_port());
        let log = self.dir.path().join(format!("m{index}.log"));
        let mut args: Vec<String> = vec!["--data-dir".into(), data_dir.display().to_string()];
        if index == 1 {
            args.insert(0, "create-cluster".into());
            for s in schemas {
                args.extend(["--schema".to_string(), s.to_string()]);
            }
            args.extend(["--raft-addr".to_string(), raft_addr.clone()]);
        } else {
            args.insert(0, "join-cluster".into());
            args.extend(["--raft-addr".to_string(), raft_addr.clone()]);
            // Any live member will do; a follower points the joiner at the leader.
            let peer = self
                .members
                .iter()
                .rev()
                .find(|m| m.proc.is_some())
                .expect("a running member");
            args.extend(["--peer".to_string(), peer.raft_addr.clone()]);
            args.extend(join.iter().map(|a| a.to_string()));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(halyard_bin(), &argv, Duration::from_secs(60));
        let mut m = Member {
            index,
            port: free_port(),
            raft_addr,
            data_dir,
            log,
            serve_args: self.serve_args.clone(),
            proc: None,
        };
        m.start_and_wait(&self.db, UP_TIMEOUT);
        self.members.push(m);
        index
    }

    /// `join-cluster` + `serve` one more member (while the cluster runs).
    pub fn add_member(&mut self) -> usize {
        self.add_member_with(&[], &[])
    }

    /// `join-cluster --non-voting` + `serve` one more member.
    pub fn add_non_voting_member(&mut self) -> usize {
        self.add_member_with(&[], &["--non-voting"])
    }

    pub fn member(&mut self, index: usize) -> &mut Member {
        &mut self.members[index - 1]
    }

    pub fn remotes(&self) -> Vec<String> {
        self.members.iter().map(Member::remote).collect()
    }

    /// Comma-separated client remotes of every member (what OVN daemons take).
    pub fn remote_list(&self) -> String {
        self.remotes().join(",")
    }

    /// The index of the member whose own status says it is the Raft leader (running ones only).
    pub fn leader(&mut self) -> Option<usize> {
        let running: Vec<usize> = self
            .members
            .iter_mut()
            .filter_map(|m| if m.is_running() { Some(m.index) } else { None })
            .collect();
        running.into_iter().find(|i| {
            self.members[i - 1]
                .raft_status()
                .is_some_and(|s| s["role"] == json!("leader"))
        })
    }

    /// The indexes of every member but `index` (the survivors or followers of a leader).
    pub fn others(&self, index: usize) -> Vec<usize> {
        (1..=self.members.len()).filter(|i| *i != index).collect()
    }

    /// Waits for a leader among the running members.
    pub fn wait_leader(&mut self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- m{} ---\n{}\n", m.index, m.log_tail(30)))
            .collect()
    }

    /// `ovsdb-client dump` of `db` through member `index`, normalised (normalize.py dump).
    pub fn dump(&self, index: usize, db: &str) -> String {
        let m = &self.members[index - 1];
        let out = run_ok(
            "ovsdb-client",
            &["--timeout=30", "-f", "json", "dump", &m.remote(), db],
            Duration::from_secs(60),
        );
        normalize("dump", &out)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
        if std::thread::panicking() || std::env::var_os("HALYARD_KEEP").is_some() {
            // Keep the directory (logs) of a failed test for a post-mortem.
            let path = self.dir.path().to_path_buf();
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            let _ = kept.keep();
            eprintln!("cluster directory kept: {}", path.display());
        }
    }
}

pub fn schema_name(schema: &str) -> String {
    run_ok(
        "ovsdb-tool",
        &["schema-name", schema],
        Duration::from_secs(10),
    )
    .trim()
    .to_string()
}

/// The reference: a real ovsdb-server Raft cluster started by ../shared/tools/ref-cluster.sh,
/// stopped on drop.
pub struct RefCluster {
    pub dir: tempfile::TempDir,
    pub base: u16,
    pub n: u16,
    pub db: String,
}

pub const REF_CLUSTER: &str = "/work/shared/tools/ref-cluster.sh";

impl RefCluster {
    pub fn start(n: u16, schema: &str) -> RefCluster {
        let dir = tempfile::Builder::new()
            .prefix("ref-cluster-")
            .tempdir()
            .unwrap();
        let base = free_base_port(n);
        let out = run_env(
            REF_CLUSTER,
            &[
                "start",
                dir.path().to_str().unwrap(),
                &base.to_string(),
                &n.to_string(),
            ],
            Duration::from_secs(120),
            &[("SCHEMA", schema)],
        );
        let rc = RefCluster {
            dir,
            base,
            n,
            db: schema_name(schema),
        };
        assert!(
            out.status.success(),
            "ref-cluster.sh start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        rc
    }

    pub fn remote(&self, i: u16) -> String {
        format!("tcp:127.0.0.1:{}", self.base + i)
    }

    /// `Role: ...` from `ovs-appctl cluster/status` of member `i`.
    pub fn role(&self, i: u16) -> String {
        let ctl = self.dir.path().join(format!("s{i}.ctl"));
        let out = run_ok(
            "ovs-appctl",
            &["-t", ctl.to_str().unwrap(), "cluster/status", &self.db],
            Duration::from_secs(30),
        );
        out.lines()
            .find_map(|l| l.strip_prefix("Role: "))
            .unwrap_or("?")
            .to_string()
    }
}

impl Drop for RefCluster {
    fn drop(&mut self) {
        let _ = run(
            REF_CLUSTER,
            &["stop", self.dir.path().to_str().unwrap()],
            Duration::from_secs(30),
        );
    }
}

/// A minimal synchronous OVSDB JSON-RPC client (answers the server's `echo` probes).
/// A blocking JSON-RPC session for the cluster tests: [`crate::single::Rpc`] with a read
/// deadline per call and errors as text.
pub struct Rpc {
    inner: crate::single::Rpc,
    timeout: Duration,
}

impl Rpc {
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<Rpc> {
        let sock: std::net::SocketAddr = addr.parse().expect("HOST:PORT");
        Ok(Rpc {
            inner: crate::single::Rpc::connect_addr(sock, Duration::from_secs(5))?,
            timeout,
        })
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends a request and waits for its reply; `Err` carries the JSON-RPC error or an I/O error.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.inner.next_id();
        self.inner
            .send(&json!({"method": method, "params": params, "id": id}))
            .map_err(|e| format!("send: {e}"))?;
        let v = self
            .inner
            .reply_to(&json!(id), self.timeout)
            .map_err(|e| format!("receive: {e:?}"))?;
        if !v["error"].is_null() {
            return Err(v["error"].to_string());
        }
        Ok(v["result"].clone())
    }

    /// The next message that is not an `echo` probe (answered): a notification, typically.
    pub fn next_message(&mut self) -> Result<Value, String> {
        self.inner
            .next_message(self.timeout)
            .map_err(|e| format!("receive: {e:?}"))
    }

    /// `transact` on `db`; `Err` also when an operation failed (the last element is an error).
    pub fn transact(&mut self, db: &str, ops: Vec<Value>) -> Result<Value, String> {
        let mut params = vec![json!(db)];
        params.extend(ops);
        let r = self.call("transact", Value::Array(params))?;
        if let Some(err) = r
            .as_array()
            .and_then(|a| a.iter().find(|x| x.get("error").is_some()))
        {
            return Err(format!("transaction failed: {err}"));
        }
        Ok(r)
    }
}

/// Runs tests/ovn/nb-topology.sh with each of its ovn-nbctl calls sent to the next of `members`
/// (the tests/cluster/rotate shim, state kept in `dir`); `dir/rotate.log` gets the remote of
/// every call, one per line.
pub fn nb_topology_rotating(dir: &Path, members: &[String]) -> Output {
    let state = dir.join("rotate.state");
    let log = dir.join("rotate.log");
    let path = format!(
        "{}:{}",
        asset("tests/cluster/rotate").display(),
        std::env::var("PATH").unwrap()
    );
    let script = asset("tests/ovn/nb-topology.sh");
    run_env(
        "bash",
        &[script.to_str().unwrap()],
        Duration::from_secs(300),
        &[
            ("PATH", &path),
            ("DB", "unused-the-shim-picks-the-member"),
            ("HALYARD_MEMBERS", &members.join(" ")),
            ("HALYARD_ROTATE_STATE", state.to_str().unwrap()),
            ("HALYARD_ROTATE_LOG", log.to_str().unwrap()),
        ],
    )
}

/// A real standalone ovsdb-server on `schema` in `dir` (a fresh database), with a unix socket
/// and `extra` options (e.g. `--remote=db:...` and SSL options as `ovn-ctl` passes them).
/// Returns the process (killed on drop) and the `unix:` remote, once it answers `list_dbs`.
pub fn real_ovsdb_server(dir: &Path, schema: &str, extra: &[String]) -> (Proc, String) {
    let db_file = dir.join("real.db");
    run_ok(
        "ovsdb-tool",
        &["create", db_file.to_str().unwrap(), schema],
        Duration::from_secs(20),
    );
    let sock = dir.join("real.sock");
    let mut cmd = Command::new("ovsdb-server");
    cmd.arg(format!("--remote=punix:{}", sock.display()))
        .args(extra)
        .arg(format!("--unixctl={}", dir.join("real.ctl").display()))
        .args(["--no-chdir", "-vconsole:off"])
        .arg(format!("--log-file={}", dir.join("real.log").display()))
        .arg(&db_file);
    let proc = Proc::spawn("ovsdb-server", cmd, &dir.join("real.stderr"));
    let remote = format!("unix:{}", sock.display());
    wait_answers("ovsdb-server", &remote, Duration::from_secs(10));
    (proc, remote)
}

/// Waits until the OVSDB server at `remote` answers `list_dbs` (`ovsdb-client list-dbs`).
pub fn wait_answers(what: &str, remote: &str, limit: Duration) {
    wait_until(&format!("{what} to answer"), limit, || {
        run(
            "ovsdb-client",
            &["--timeout=2", "list-dbs", remote],
            Duration::from_secs(10),
        )
        .status
        .success()
        .then_some(())
    });
}
