//! Online schema conversion (`convert`, docs/ovsdb-protocol.md §2.12) through Raft: the same
//! requests sent to a Halyard member and to a real ovsdb-server give the same answers, the data
//! is converted, and the real `ovsdb-client convert` works.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use halyard_testkit::single::{free_port, wait_for, Rpc};
use serde_json::{json, Value};

const OLD: &str =
    r#"{"name":"Test","version":"1.0.0","tables":{"A":{"columns":{"x":{"type":"integer"}}}}}"#;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect(port: u16) -> Rpc {
    wait_for(Duration::from_secs(60), "the server to listen", || {
        Rpc::connect_timeout(port, Duration::from_secs(1)).ok()
    })
}

fn rpc(s: &mut Rpc, msg: Value) -> Value {
    s.send(&msg).unwrap();
    s.next_message(Duration::from_secs(30))
        .expect("a reply within 30 s")
}

fn halyard(dir: &std::path::Path) -> (Proc, u16) {
    let bin = env!("CARGO_BIN_EXE_halyard");
    std::fs::write(dir.join("s.json"), OLD).unwrap();
    let raft = format!("127.0.0.1:{}", free_port());
    let ok = Command::new(bin)
        .args(["create-cluster", "--data-dir"])
        .arg(dir.join("m"))
        .arg("--schema")
        .arg(dir.join("s.json"))
        .args(["--raft-addr", &raft])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let port = free_port();
    let child = Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(dir.join("m"))
        .args(["--remote", &format!("ptcp:{port}:127.0.0.1")])
        .stderr(std::fs::File::create(dir.join("log")).unwrap())
        .spawn()
        .unwrap();
    (Proc(child), port)
}

fn ovsdb_server(dir: &std::path::Path) -> (Proc, u16) {
    std::fs::write(dir.join("s.json"), OLD).unwrap();
    let db = dir.join("t.db");
    assert!(Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(dir.join("s.json"))
        .status()
        .unwrap()
        .success());
    let port = free_port();
    let child = Command::new("ovsdb-server")
        .arg("--no-chdir")
        .arg(format!("--unixctl={}", dir.join("ctl").display()))
        .arg(format!("--remote=ptcp:{port}:127.0.0.1"))
        .arg(&db)
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "ovsdb-server (Debian's openvswitch-switch) must be installed: scripts/install-deps.sh",
        );
    (Proc(child), port)
}

/// The session of requests, with change-awareness so the session survives the conversion.
fn script(port: u16) -> Vec<Value> {
    let new = json!({"name":"Test","version":"1.1.0","tables":{"A":{"columns":{"x":{"type":"integer"},"y":{"type":"string"}}}}});
    let requests = vec![
        json!({"id":0,"method":"set_db_change_aware","params":[true]}),
        json!({"id":1,"method":"convert","params":["Test"]}),
        json!({"id":2,"method":"convert","params":["Test",{"name":"Test","tables":{"A":{"columns":{"x":{"type":"int"}}}}}]}),
        json!({"id":3,"method":"convert","params":["Nope",new]}),
        json!({"id":4,"method":"convert","params":[5,new]}),
        json!({"id":5,"method":"convert","params":["Test",{"name":"Other","tables":{"A":{"columns":{"x":{"type":"integer"}}}}}]}),
        json!({"id":6,"method":"transact","params":["Test",{"op":"insert","table":"A","row":{"x":5}}]}),
        json!({"id":7,"method":"convert","params":["Test",{"name":"Test","tables":{"A":{"columns":{"x":{"type":{"key":{"type":"integer","maxInteger":2}}}}}}}]}),
        json!({"id":8,"method":"convert","params":["Test",new]}),
        json!({"id":9,"method":"transact","params":["Test",{"op":"select","table":"A","where":[],"columns":["x","y"]}]}),
        json!({"id":10,"method":"get_schema","params":["Test"]}),
    ];
    let mut s = connect(port);
    requests
        .into_iter()
        .map(|r| {
            let mut reply = rpc(&mut s, r);
            // The inserted row's UUID differs between servers.
            if reply["id"] == 6 {
                reply["result"][0]["uuid"][1] = json!("<uuid>");
            }
            reply
        })
        .collect()
}

#[test]
fn convert_answers_like_ovsdb_server_and_converts_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("h")).unwrap();
    std::fs::create_dir_all(tmp.path().join("o")).unwrap();
    let (_h, hport) = halyard(&tmp.path().join("h"));
    let (_o, oport) = ovsdb_server(&tmp.path().join("o"));
    let ours = script(hport);
    let theirs = script(oport);
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "Halyard and ovsdb-server disagree");
    }
    assert_eq!(ours[9]["result"][0]["rows"], json!([{"x":5,"y":""}]));
    assert_eq!(ours[10]["result"]["version"], "1.1.0");

    // The real ovsdb-client converts back, and the data survives.
    let remote = format!("tcp:127.0.0.1:{hport}");
    let st = Command::new("ovsdb-client")
        .args(["convert", &remote])
        .arg(tmp.path().join("h").join("s.json"))
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("ovsdb-client")
        .args(["get-schema-version", &remote, "Test"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.0.0");
    let out = Command::new("ovsdb-client")
        .args(["-f", "json", "dump", &remote, "Test"])
        .output()
        .unwrap();
    let dump: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dump["data"][0][1], json!(5), "row kept its x: {dump}");
}

#[test]
fn server_database_cannot_be_converted() {
    let tmp = tempfile::tempdir().unwrap();
    let (_h, port) = halyard(tmp.path());
    let mut s = connect(port);
    let schema: Value = rpc(
        &mut s,
        json!({"id":1,"method":"get_schema","params":["_Server"]}),
    )["result"]
        .clone();
    let reply = rpc(
        &mut s,
        json!({"id":2,"method":"convert","params":["_Server", schema]}),
    );
    assert_eq!(reply["error"]["error"], "not allowed", "{reply}");
}
