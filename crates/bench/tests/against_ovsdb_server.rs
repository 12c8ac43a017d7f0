//! Runs every workload of the real `halyard-bench` binary against a real standalone
//! ovsdb-server (OVN Northbound schema) and checks the JSON report: the figures must add up to
//! what the server actually holds afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halyard_testkit::single::free_port;
use serde_json::Value;

const SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";

struct Server {
    child: Child,
    endpoint: String,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(name: &str) -> Server {
    assert!(
        Path::new(SCHEMA).exists()
            && Command::new("ovsdb-server")
                .arg("--version")
                .output()
                .is_ok(),
        "ovsdb-server or {SCHEMA} not installed: run scripts/install-deps.sh"
    );
    let dir =
        std::env::temp_dir().join(format!("halyard-bench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("nb.db");
    let ok = Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(SCHEMA)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ovsdb-tool create failed");
    let port = free_port();
    let child = Command::new("ovsdb-server")
        .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
        .arg(format!("--unixctl={}", dir.join("ctl").display()))
        .arg("--no-chdir")
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        endpoint: format!("tcp:127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ovsdb-server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn bench(server: &Server, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_halyard-bench"))
        .args([
            "--db",
            &server.endpoint,
            "--json",
            "--pid",
            &server.child.id().to_string(),
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "halyard-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count_rows(server: &Server, table: &str) -> usize {
    let out = Command::new("ovsdb-client")
        .args([
            "-f",
            "json",
            "dump",
            &server.endpoint,
            "OVN_Northbound",
            table,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["data"].as_array().unwrap().len()
}

#[test]
fn write_count_lands_exactly_that_many_ports() {
    let server = start_server("write");
    let r = bench(
        &server,
        &[
            "write",
            "--clients",
            "4",
            "--duration",
            "60",
            "--count",
            "200",
        ],
    );
    assert_eq!(r["ok"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["latency"]["count"], 200);
    assert!(r["latency"]["p50_ms"].as_f64().unwrap() <= r["latency"]["p99_ms"].as_f64().unwrap());
    assert!(r["max_ack_gap_ms"].as_f64().unwrap() > 0.0);
    assert!(r["rss"][0]["after_kib"].as_u64().unwrap() > 0);
    // 4 switches (one per client) and 200 ports, all referenced (none garbage-collected).
    assert_eq!(count_rows(&server, "Logical_Switch"), 4);
    assert_eq!(count_rows(&server, "Logical_Switch_Port"), 200);
}

#[test]
fn reads_find_their_row_every_time() {
    let server = start_server("read");
    let r = bench(
        &server,
        &[
            "read",
            "--clients",
            "3",
            "--duration",
            "60",
            "--count",
            "300",
            "--rows",
            "50",
        ],
    );
    assert_eq!(r["ok"], 300, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
}

#[test]
fn every_monitor_sees_every_write() {
    let server = start_server("monitor");
    let r = bench(
        &server,
        &[
            "monitor",
            "--monitors",
            "3",
            "--duration",
            "1",
            "--rate",
            "50",
        ],
    );
    let m = &r["monitor"];
    let writes = m["writes"].as_u64().unwrap();
    assert!(writes > 0, "{r}");
    assert_eq!(m["updates_expected"].as_u64().unwrap(), 3 * writes);
    assert_eq!(m["updates_received"], m["updates_expected"], "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(
        m["update_after_send"]["count"].as_u64().unwrap(),
        3 * writes
    );
}

#[test]
fn bulk_loads_switches_with_their_ports() {
    let server = start_server("bulk");
    let r = bench(
        &server,
        &[
            "bulk",
            "--switches",
            "20",
            "--ports-per-switch",
            "10",
            "--batch",
            "3",
            "--clients",
            "2",
        ],
    );
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["bulk"]["rows"], 220, "{r}");
    assert_eq!(r["bulk"]["transactions"], 7, "{r}");
    // Plus the marker switch and its port.
    assert_eq!(count_rows(&server, "Logical_Switch"), 21);
    assert_eq!(count_rows(&server, "Logical_Switch_Port"), 201);
}
