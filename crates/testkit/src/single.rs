//! Shared helpers for the integration tests of the `halyard` binary: start a single-member
//! Halyard (create-cluster + serve) or a real standalone ovsdb-server on free loopback ports,
//! run client commands with a deadline, poll for readiness, and speak raw JSON-RPC (RFC 7047
//! framing: JSON values back to back, no delimiter) over TCP.
//!
//! Every server lives in its own temporary directory and is killed when its handle is dropped,
//! so a failing test leaves no process behind. The machine running the tests is shared and slow:
//! every wait polls with a generous deadline instead of sleeping for a fixed time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
/// How long a server gets to come up on a loaded machine.
pub const STARTUP: Duration = Duration::from_secs(30);
/// Deadline for one client command.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root (tests/ assets live there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Ports handed out come from here: below Linux's ephemeral range (32768-60999), so no
/// outgoing connection (the members' own, the clients') can take one between the test choosing
/// it and the server binding it, which an ephemeral port chosen by binding port 0 could (a
/// member of a test cluster then failed to bind and never joined).
const PORT_RANGE: std::ops::Range<u32> = 20_000..32_000;

/// A port that is free now and that no other caller in this process has been given; each test
/// process starts at its own offset in the range so parallel test binaries rarely meet.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `len` consecutive ports, all free now and given to no other caller in this
/// process (see [`free_port`]).
pub fn free_ports(len: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = PORT_RANGE.end - PORT_RANGE.start;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let len = u32::from(len.max(1));
    for _ in 0..span {
        let first = NEXT.fetch_add(len, Ordering::SeqCst) % span;
        if first + len > span {
            continue;
        }
        let start = (PORT_RANGE.start + first) as u16;
        if (start..start + len as u16).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return start;
        }
    }
    panic!("no {len} free ports in {PORT_RANGE:?}");
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics (showing both streams) unless the command exited 0; returns stdout.
    pub fn ok(self, what: &str) -> String {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// Runs `cmd` to completion with `stdin` fed in, killing it (and failing the test) after
/// `timeout`.
pub fn run_input(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!("{desc} did not finish within {timeout:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

/// Runs `cmd` with empty stdin and the default client deadline.
pub fn run(cmd: &mut Command) -> Output {
    run_input(cmd, b"", CLIENT_TIMEOUT)
}

/// `program args...` with the default deadline.
pub fn run_args(program: &str, args: &[&str]) -> Output {
    run(Command::new(program).args(args))
}

/// `ovsdb-client -f json dump` parsed into one JSON value per table.
/// The string `column` of every row of a `select` result, sorted.
pub fn sorted_column<'v>(select: &'v Value, column: &str) -> Vec<&'v str> {
    let mut values: Vec<&str> = select["rows"]
        .as_array()
        .expect("a select result")
        .iter()
        .map(|r| r[column].as_str().expect("a string column"))
        .collect();
    values.sort();
    values
}

pub fn parse_json_stream(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("not a JSON stream ({e}):\n{text}"))
}

/// Pipes `input` through tests/ovn/normalize.py MODE.
pub fn normalize(mode: &str, input: &str) -> String {
    let script = repo_root().join("tests/ovn/normalize.py");
    run_input(
        Command::new("/usr/bin/python3").arg(script).arg(mode),
        input.as_bytes(),
        CLIENT_TIMEOUT,
    )
    .ok("normalize.py")
}

/// A process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub what: String,
}

impl Proc {
    /// The process's captured stderr/stdout so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn check_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited ({status}); its log:\n{}",
                self.what,
                self.log_text()
            );
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (up to 30 s) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        wait_for(
            STARTUP,
            &format!("{} to exit after SIGTERM", self.what),
            || self.child.try_wait().unwrap(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(cmd: &mut Command, log: &Path, what: &str) -> Proc {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    Proc {
        child,
        log: log.to_path_buf(),
        what: what.to_string(),
    }
}

/// True once a server on `port` answers `list_dbs` with a list holding `db`.
fn answers_list_dbs(port: u16, db: &str) -> bool {
    let Ok(mut c) = Rpc::connect_timeout(port, Duration::from_secs(2)) else {
        return false;
    };
    match c.call("list_dbs", json!([])) {
        Ok(reply) => reply["result"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == db)),
        Err(_) => false,
    }
}

pub fn halyard_bin() -> &'static str {
    crate::halyard_bin()
}

/// A single-member Halyard cluster started by `halyard create-cluster` + `halyard serve` with
/// default options, on a free TCP port and a Unix socket in its own temporary directory.
pub struct Halyard {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub port: u16,
    pub raft_port: u16,
    pub sock: PathBuf,
    pub db_name: String,
    /// Extra `serve` flags, reused by `restart`.
    pub serve_args: Vec<String>,
    pub proc: Option<Proc>,
}

impl Halyard {
    /// A member serving `schema` with default options.
    pub fn start(schema: &str) -> Halyard {
        Halyard::start_with(schema, &[])
    }

    /// A member serving `schema`, with `serve_args` added to `halyard serve`.
    pub fn start_with(schema: &str, serve_args: &[&str]) -> Halyard {
        let dir = tempfile::Builder::new()
            .prefix("halyard-test")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        let raft_port = free_port();
        let out = run_args(
            halyard_bin(),
            &[
                "create-cluster",
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--schema",
                schema,
                "--raft-addr",
                &format!("127.0.0.1:{raft_port}"),
            ],
        );
        out.ok("halyard create-cluster");
        let db_name = schema_name(schema);
        let mut h = Halyard {
            sock: dir.path().join("halyard.sock"),
            dir,
            data_dir,
            port: 0,
            raft_port,
            db_name,
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
            proc: None,
        };
        h.serve();
        h
    }

    /// `halyard serve` on the data dir (a new free client port each time), then waits until it
    /// answers `list_dbs` with its database.
    pub fn serve(&mut self) {
        assert!(self.proc.is_none(), "already serving");
        // Another test may take the probed client port before halyard binds it: retry then.
        for _ in 0..5 {
            let mut p = self.spawn_serve();
            let (port, db) = (self.port, self.db_name.clone());
            let up = wait_for(STARTUP, "halyard to serve list_dbs", || {
                if p.child.try_wait().unwrap().is_some() {
                    return Some(false);
                }
                answers_list_dbs(port, &db).then_some(true)
            });
            if up {
                self.proc = Some(p);
                return;
            }
            let log = p.log_text();
            if !log.contains("in use") {
                panic!("halyard serve exited; its log:\n{log}");
            }
        }
        panic!("halyard serve: no free port after 5 tries");
    }

    /// Starts `halyard serve` without waiting for it (for tests that expect it to refuse).
    pub fn spawn_serve(&mut self) -> Proc {
        self.port = free_port();
        let _ = std::fs::remove_file(&self.sock);
        let mut cmd = Command::new(halyard_bin());
        cmd.args([
            "serve",
            "--data-dir",
            self.data_dir.to_str().unwrap(),
            "--remote",
            &format!("ptcp:{}:127.0.0.1", self.port),
            "--remote",
            &format!("punix:{}", self.sock.display()),
        ])
        .args(&self.serve_args);
        spawn_logged(
            &mut cmd,
            &self.dir.path().join("serve.log"),
            "halyard serve",
        )
    }

    pub fn tcp(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    pub fn unix(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    /// kill -9, then `serve` again on the same data dir.
    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.serve();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

/// A real standalone ovsdb-server (`ovsdb-tool create` + `ovsdb-server`) on a free port and a
/// Unix socket, in its own temporary directory.
pub struct OvsdbServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub sock: PathBuf,
    pub db_name: String,
    pub proc: Proc,
}

impl OvsdbServer {
    pub fn start(schema: &str) -> OvsdbServer {
        let dir = tempfile::Builder::new()
            .prefix("ovsdb-server-test")
            .tempdir()
            .unwrap();
        let db = dir.path().join("db");
        run_args("ovsdb-tool", &["create", db.to_str().unwrap(), schema]).ok("ovsdb-tool create");
        let sock = dir.path().join("db.sock");
        let ctl = dir.path().join("ctl");
        let db_name = schema_name(schema);
        // Another test may grab the port between probing and binding: retry with a new one.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("ovsdb-server");
            cmd.args([
                &format!("--remote=ptcp:{port}:127.0.0.1"),
                &format!("--remote=punix:{}", sock.display()),
                &format!("--unixctl={}", ctl.display()),
                "--no-chdir",
                "-vconsole:off",
                &format!(
                    "--log-file={}",
                    dir.path().join("ovsdb-server.log").display()
                ),
                db.to_str().unwrap(),
            ]);
            let mut proc = spawn_logged(&mut cmd, &dir.path().join("stderr.log"), "ovsdb-server");
            let up = wait_for(STARTUP, "ovsdb-server to serve list_dbs", || {
                if proc.child.try_wait().unwrap().is_some() {
                    return Some(false);
                }
                answers_list_dbs(port, &db_name).then_some(true)
            });
            if up {
                return OvsdbServer {
                    dir,
                    port,
                    sock,
                    db_name,
                    proc,
                };
            }
        }
        panic!("ovsdb-server would not start");
    }

    pub fn tcp(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port)
    }

    pub fn unix(&self) -> String {
        format!("unix:{}", self.sock.display())
    }
}

pub fn schema_name(schema: &str) -> String {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    v["name"].as_str().unwrap().to_string()
}

/// Writes `schema` (JSON) into `dir` and returns the file's path.
pub fn write_schema(dir: &Path, schema: &Value) -> String {
    let p = dir.join(format!("{}.ovsschema", schema["name"].as_str().unwrap()));
    std::fs::write(&p, serde_json::to_vec_pretty(schema).unwrap()).unwrap();
    p.to_str().unwrap().to_string()
}

/// Why reading from a raw session stopped.
#[derive(Debug, PartialEq)]
pub enum RecvError {
    /// The peer closed the connection (EOF or reset).
    Closed,
    /// Nothing complete arrived within the deadline.
    Timeout,
    /// The peer sent bytes that are not JSON.
    BadJson(String),
}

/// Largest message a test client accepts (initial contents after bulk loads).
const MAX_MESSAGE: usize = 1 << 30;

/// The one raw JSON-RPC client of the tests, over TCP: messages are cut by the server's own
/// framing (`halyard_server::framing::Framer`: JSON values back to back, RFC 7047), so a test
/// and the server agree on where a message ends.
pub struct Rpc {
    pub stream: TcpStream,
    framer: halyard_server::framing::Framer,
    next_id: u64,
}

impl Rpc {
    pub fn connect(port: u16) -> Rpc {
        Rpc::connect_timeout(port, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"))
    }

    pub fn connect_timeout(port: u16, timeout: Duration) -> std::io::Result<Rpc> {
        Rpc::connect_addr(([127, 0, 0, 1], port).into(), timeout)
    }

    pub fn connect_addr(addr: std::net::SocketAddr, timeout: Duration) -> std::io::Result<Rpc> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Rpc {
            stream,
            framer: halyard_server::framing::Framer::new(MAX_MESSAGE),
            next_id: 1,
        })
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// A complete message already received, if any.
    fn buffered(&mut self) -> Result<Option<Value>, RecvError> {
        self.framer
            .next_message()
            .map_err(|e| RecvError::BadJson(e.to_string()))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, msg: &Value) -> std::io::Result<()> {
        self.send_raw(serde_json::to_string(msg).unwrap().as_bytes())
    }

    /// The next complete JSON value from the peer.
    pub fn recv(&mut self, timeout: Duration) -> Result<Value, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.buffered()? {
                return Ok(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvError::Timeout);
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.framer.buffer_mut().extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(RecvError::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(RecvError::Closed),
            }
        }
    }

    /// Sends a request with a fresh numeric id and returns the reply with that id, skipping
    /// notifications (and answering echo probes) meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RecvError> {
        let id = self.next_id();
        self.send(&json!({"id": id, "method": method, "params": params}))
            .map_err(|_| RecvError::Closed)?;
        self.reply_to(&json!(id), Duration::from_secs(60))
    }

    /// Waits for the reply whose id is `id`.
    pub fn reply_to(&mut self, id: &Value, timeout: Duration) -> Result<Value, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.next_message(left)?;
            if &msg["id"] == id && msg.get("method").is_none() {
                return Ok(msg);
            }
        }
    }

    /// The next message that is not an `echo` probe (those are answered, as the IDLs do).
    pub fn next_message(&mut self, timeout: Duration) -> Result<Value, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.recv(deadline.saturating_duration_since(Instant::now()))?;
            if !self.answer_echo(&msg)? {
                return Ok(msg);
            }
        }
    }

    /// Answers `msg` if it is the server's `echo` probe; whether it was.
    fn answer_echo(&mut self, msg: &Value) -> Result<bool, RecvError> {
        if msg["method"] != "echo" || msg.get("result").is_some() {
            return Ok(false);
        }
        let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
        self.send(&reply).map_err(|_| RecvError::Closed)?;
        Ok(true)
    }

    /// `transact` on `db` with `ops`; returns the `result` array (panics on a top-level error).
    pub fn transact(&mut self, db: &str, ops: Value) -> Value {
        let mut params = vec![json!(db)];
        params.extend(ops.as_array().unwrap().iter().cloned());
        let reply = self
            .call("transact", Value::Array(params))
            .expect("transact reply");
        assert!(reply["error"].is_null(), "transact error: {reply}");
        reply["result"].clone()
    }

    /// True if the peer has closed the connection: reads (discarding anything pending) until
    /// EOF/reset, or returns false if the connection stays open for `timeout`.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Without blocking: reads what has arrived, answers the server's echo probes (as the C
    /// and Python IDLs do) and returns the other complete messages. `Err(Closed)` once the
    /// server has closed the connection.
    pub fn pump(&mut self) -> Result<Vec<Value>, RecvError> {
        self.stream.set_nonblocking(true).unwrap();
        let mut closed = false;
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.framer.buffer_mut().extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        self.stream.set_nonblocking(false).unwrap();
        let mut out = Vec::new();
        while let Some(v) = self.buffered()? {
            if !self.answer_echo(&v)? {
                out.push(v);
            }
        }
        if closed {
            return Err(RecvError::Closed);
        }
        Ok(out)
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Every row of every table of `db` at `port`, via one `select` per table (the way
/// `ovsdb-client dump` reads), as {table: [row...]} with rows sorted by their JSON text.
/// `_version` is dropped (it changes with every write and is server-specific).
pub fn select_all(port: u16, db: &str, schema: &str) -> Value {
    let s: Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    let tables: Vec<String> = s["tables"].as_object().unwrap().keys().cloned().collect();
    let ops: Vec<Value> = tables
        .iter()
        .map(|t| json!({"op": "select", "table": t, "where": []}))
        .collect();
    let mut c = Rpc::connect(port);
    let result = c.transact(db, Value::Array(ops));
    let mut out = serde_json::Map::new();
    for (t, r) in tables.iter().zip(result.as_array().unwrap()) {
        let mut rows: Vec<Value> = r["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("select {t}: {r}"))
            .iter()
            .map(|row| {
                let mut row = row.clone();
                row.as_object_mut().unwrap().remove("_version");
                row
            })
            .collect();
        rows.sort_by_key(canonical);
        out.insert(t.clone(), Value::Array(rows));
    }
    Value::Object(out)
}

/// JSON text with object members sorted by key at every level, so that equal values print
/// equally whatever order a server put the members in.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&o[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}
