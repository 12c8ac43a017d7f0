//! The oracle of the monitor golden tests: a real Open vSwitch `ovsdb-server` (3.1) run as a
//! child process in a temporary directory, standalone or as a one-member cluster (which keeps
//! transaction history, so `monitor_cond_since` can answer `found=true`), and a raw JSON-RPC
//! connection that also collects the notifications it receives.
//! It must not depend on anything in the engine.

use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when `ovsdb-server` and `ovsdb-tool` can be run from PATH.
pub fn available() -> bool {
    ["ovsdb-server", "ovsdb-tool"].iter().all(|prog| {
        Command::new(prog)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// One running ovsdb-server with one fresh database.
pub struct RealServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RealServer {
    /// Creates an empty database from `schema` (standalone, or a one-member cluster when
    /// `clustered`) and serves it on a loopback port.
    pub fn start(schema: &Path, clustered: bool) -> RealServer {
        let dir = std::env::temp_dir().join(format!(
            "halyard-monitor-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(free_port())
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("db");
        let mut create = Command::new("ovsdb-tool");
        if clustered {
            create
                .arg("create-cluster")
                .arg(&db)
                .arg(schema)
                .arg(format!("tcp:127.0.0.1:{}", free_port()));
        } else {
            create.arg("create").arg(&db).arg(schema);
        }
        let out = create.output().expect("run ovsdb-tool");
        assert!(
            out.status.success(),
            "ovsdb-tool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new("ovsdb-server")
                .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
                .arg(format!("--unixctl={}", dir.join("ctl").display()))
                .arg(format!("--log-file={}", dir.join("log").display()))
                .arg("-vconsole:off")
                .arg(&db)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ovsdb-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let server = RealServer { child, port, dir };
                    if clustered {
                        server.wait_cluster_leader();
                    }
                    return server;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("ovsdb-server did not start");
    }

    /// A one-member cluster elects itself after an election timeout; writes block until then.
    fn wait_cluster_leader(&self) {
        let mut c = self.connect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let r = c.call(
                "transact",
                json!(["_Server", {"op": "select", "table": "Database", "where": [], "columns": ["leader"]}]),
            );
            if r["result"][0]["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["leader"] == json!(true)))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("one-member cluster did not elect itself");
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

type JsonStream =
    serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<TcpStream>>, Value>;

/// A raw JSON-RPC 1.0 connection.
pub struct Client {
    writer: TcpStream,
    reader: JsonStream,
    next_id: u64,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let _ = stream.set_nodelay(true);
        let reader = serde_json::Deserializer::from_reader(BufReader::new(
            stream.try_clone().expect("clone"),
        ))
        .into_iter::<Value>();
        Client {
            writer: stream,
            reader,
            next_id: 0,
        }
    }

    /// Sends a request and reads until its reply. Returns the notifications received
    /// before the reply (in order) and the reply object.
    pub fn call_collect(&mut self, method: &str, params: Value) -> (Vec<Value>, Value) {
        self.next_id += 1;
        let id = json!(self.next_id);
        let msg = json!({"method": method, "params": params, "id": id});
        self.writer
            .write_all(msg.to_string().as_bytes())
            .expect("send");
        let mut notes = Vec::new();
        loop {
            let v = self
                .reader
                .next()
                .expect("connection closed")
                .expect("bad JSON from server");
            if v.get("method").and_then(Value::as_str) == Some("echo") && v["id"] != Value::Null {
                // The server's inactivity probe: answer it or it drops us.
                let reply = json!({"id": v["id"], "result": v["params"], "error": null});
                self.writer
                    .write_all(reply.to_string().as_bytes())
                    .expect("send");
            } else if v.get("method").is_some() {
                notes.push(v);
            } else if v["id"] == id {
                return (notes, v);
            }
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.call_collect(method, params).1
    }

    /// Every notification the server has queued for this connection so far: an `echo`
    /// round trip is a barrier because the server flushes monitor updates before it
    /// handles the next request of a session.
    pub fn drain(&mut self) -> Vec<Value> {
        self.call_collect("echo", json!(["barrier"])).0
    }
}
