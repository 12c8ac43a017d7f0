//! A real Open vSwitch `ovsdb-server` (3.1) run as a child process in a temporary directory,
//! and a minimal raw JSON-RPC client for it (RFC 7047 §4: `transact` over TCP, values back to
//! back with no framing).
//!
//! Shared by the differential suite (tests/differential.rs) and the engine benchmark
//! (benches/engine.rs), which include this file with `#[path]`. It is the oracle, so it must
//! not depend on anything in the engine.

#![allow(dead_code)] // each includer uses a different subset

use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// True when `ovsdb-server` and `ovsdb-tool` can be run from PATH.
pub fn available() -> bool {
    ["ovsdb-server", "ovsdb-tool"].iter().all(|prog| {
        Command::new(prog)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "halyard-{tag}-{}-{n}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One running ovsdb-server serving one fresh (empty) standalone database.
pub struct RealServer {
    child: Child,
    port: u16,
    pub db_name: String,
    // Declared last so the directory outlives the process during drop.
    dir: TempDir,
}

impl RealServer {
    /// Creates an empty database from `schema_path` and serves it on a loopback TCP port.
    pub fn start(schema_path: &Path) -> Result<RealServer, String> {
        let dir = TempDir::new("ovsdb-server");
        let db = dir.path().join("db");
        let out = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(schema_path)
            .output()
            .map_err(|e| format!("ovsdb-tool: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ovsdb-tool create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let schema: Value = serde_json::from_slice(
            &std::fs::read(schema_path).map_err(|e| format!("{}: {e}", schema_path.display()))?,
        )
        .map_err(|e| format!("{}: {e}", schema_path.display()))?;
        let db_name = schema["name"].as_str().unwrap_or_default().to_string();

        // Pick a free port by binding port 0 and releasing it; another process could grab it
        // in between, so a failed start is retried with a new port.
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("bind: {e}"))?
                .port();
            let mut child = Command::new("ovsdb-server")
                .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
                .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
                .arg(format!("--pidfile={}", dir.path().join("pid").display()))
                .arg(format!("--log-file={}", dir.path().join("log").display()))
                .arg("-vconsole:off")
                .arg(&db)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("ovsdb-server: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("ovsdb-server exited early: {status}");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(RealServer {
                        child,
                        port,
                        db_name,
                        dir,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = "ovsdb-server did not listen within 10 s".to_string();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Err(last_err)
    }

    pub fn connect(&self) -> Result<Client, String> {
        Client::connect(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size of the server process in KiB (VmRSS from /proc).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.child.id())
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of a process in KiB, from /proc/PID/status.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

type JsonStream =
    serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<TcpStream>>, Value>;

/// A raw JSON-RPC 1.0 connection: one request at a time, replies matched by id.
pub struct Client {
    writer: TcpStream,
    reader: JsonStream,
    next_id: u64,
}

impl Client {
    pub fn connect(port: u16) -> Result<Client, String> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        // A reply that never comes (a blocking `wait`) must fail the test, not hang it.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let reader = serde_json::Deserializer::from_reader(BufReader::new(
            stream.try_clone().map_err(|e| e.to_string())?,
        ))
        .into_iter::<Value>();
        Ok(Client {
            writer: stream,
            reader,
            next_id: 0,
        })
    }

    /// Sends one request and returns the whole reply object (`result` and `error` members).
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let text = serde_json::to_vec(&json!({"method": method, "params": params, "id": id}))
            .map_err(|e| e.to_string())?;
        self.writer
            .write_all(&text)
            .map_err(|e| format!("write: {e}"))?;
        loop {
            let msg = match self.reader.next() {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(format!("read: {e}")),
                None => return Err("connection closed by ovsdb-server".to_string()),
            };
            // The server probes idle sessions with an "echo" request; answer it so a long
            // call does not get us disconnected.
            if msg.get("method") == Some(&json!("echo")) {
                let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
                let bytes = serde_json::to_vec(&reply).map_err(|e| e.to_string())?;
                self.writer
                    .write_all(&bytes)
                    .map_err(|e| format!("write: {e}"))?;
                continue;
            }
            if msg.get("id") == Some(&json!(id)) {
                return Ok(msg);
            }
        }
    }

    /// `transact` on `db`; returns the `result` array, or the top-level error as `Err`.
    pub fn transact(&mut self, db: &str, ops: &[Value]) -> Result<Value, String> {
        let mut params = vec![Value::String(db.to_string())];
        params.extend(ops.iter().cloned());
        let reply = self.call("transact", Value::Array(params))?;
        match reply.get("result") {
            Some(r) if !r.is_null() => Ok(r.clone()),
            _ => Err(format!(
                "transact error: {}",
                reply.get("error").unwrap_or(&Value::Null)
            )),
        }
    }
}

/// Runs `transactions` in order on one connection to `server`. A transaction that makes the
/// server drop the connection (a protocol-level failure the engine never sees) is recorded as
/// a string and the next one runs on a new connection.
pub fn run_transactions(
    server: &RealServer,
    transactions: &[Vec<Value>],
) -> Result<Vec<Value>, String> {
    let mut client = server.connect()?;
    let mut out = Vec::new();
    for ops in transactions {
        match client.transact(&server.db_name, ops) {
            Ok(r) => out.push(r),
            Err(e) => {
                out.push(Value::String(format!("<{e}>")));
                client = server.connect()?;
            }
        }
    }
    Ok(out)
}
