//! The real Open vSwitch / OVN clients (ovsdb-client, ovn-nbctl, the Python IDL) against the
//! front end on a loopback TCP port, with the test fixture backend and the OVN Northbound
//! schema. These are the clients Halyard must serve; each test fails if one is missing
//! (scripts/test.sh installs them).

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use halyard_server::Server;
use support::{config, TestBackend};

const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";

async fn start() -> (Arc<TestBackend>, u16, tokio::task::JoinHandle<()>) {
    let schema = std::fs::read_to_string(NB_SCHEMA).expect("OVN NB schema installed");
    let b = TestBackend::new(&[&schema]);
    let s = Arc::new(Server::new(b.clone(), config()).unwrap());
    let l = s.bind(&["ptcp:0:127.0.0.1".to_string()]).await.unwrap();
    let port = l[0].local_addr().unwrap().port();
    let task = tokio::spawn(async move { s.serve(l).await });
    (b, port, task)
}

/// Runs a client command off the runtime (it blocks) with a deadline.
async fn run(cmd: &str, args: Vec<String>) -> (bool, String, String) {
    let cmd = cmd.to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            Command::new("timeout")
                .arg("20")
                .arg(&cmd)
                .args(&args)
                .output()
                .unwrap_or_else(|e| panic!("{cmd}: {e}"))
        }),
    )
    .await
    .expect("client timed out")
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovsdb_client_and_ovn_nbctl() {
    let (_b, port, task) = start().await;
    let remote = format!("tcp:127.0.0.1:{port}");

    let (ok, out, err) = run("ovsdb-client", vec!["list-dbs".into(), remote.clone()]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "OVN_Northbound\n_Server\n");

    let db = format!("--db={remote}");
    for args in [
        vec!["init"],
        vec!["ls-add", "sw0"],
        vec!["lsp-add", "sw0", "sw0-p1"],
        vec!["lsp-set-addresses", "sw0-p1", "00:00:00:00:00:01 10.0.0.1"],
    ] {
        let mut a = vec![db.clone()];
        a.extend(args.iter().map(|s| s.to_string()));
        let (ok, _, err) = run("ovn-nbctl", a).await;
        assert!(ok, "ovn-nbctl {args:?}: {err}");
    }
    let (ok, out, err) = run("ovn-nbctl", vec![db.clone(), "show".into()]).await;
    assert!(ok, "{err}");
    assert!(out.contains("switch") && out.contains("(sw0)"), "{out}");
    assert!(
        out.contains("port sw0-p1") && out.contains("10.0.0.1"),
        "{out}"
    );

    // A second switch with the same name is allowed by the schema; ls-add refuses it itself
    // after reading the monitor contents, which shows the IDL cache is right.
    let (ok, _, err) = run("ovn-nbctl", vec![db.clone(), "ls-add".into(), "sw0".into()]).await;
    assert!(!ok && err.contains("already exists"), "{err}");

    let (ok, out, err) = run(
        "ovsdb-client",
        vec![
            "dump".into(),
            remote.clone(),
            "OVN_Northbound".into(),
            "Logical_Switch".into(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("sw0"), "{out}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_idl() {
    let (_b, port, task) = start().await;
    let script = format!(
        r#"
import sys, time
import ovs.db.idl, ovs.poller
remote = "tcp:127.0.0.1:{port}"
helper = ovs.db.idl.SchemaHelper("{NB_SCHEMA}")
helper.register_all()
idl = ovs.db.idl.Idl(remote, helper, leader_only=True)
def wait(cond):
    deadline = time.time() + 10
    while not cond():
        if time.time() > deadline:
            sys.exit("timed out")
        idl.run()
        p = ovs.poller.Poller(); idl.wait(p); p.timer_wait(100); p.block()
wait(lambda: idl.has_ever_connected())
txn = ovs.db.idl.Transaction(idl)
ls = txn.insert(idl.tables["Logical_Switch"])
ls.name = "py-sw1"
status = None
def commit():
    global status
    status = txn.commit()
    return status not in (ovs.db.idl.Transaction.INCOMPLETE, ovs.db.idl.Transaction.UNCOMMITTED)
wait(commit)
assert status == ovs.db.idl.Transaction.SUCCESS, status
wait(lambda: any(r.name == "py-sw1" for r in idl.tables["Logical_Switch"].rows.values()))
print("ok")
"#
    );
    // The Debian python3-openvswitch package installs into the system interpreter.
    let (ok, out, err) = run("/usr/bin/python3", vec!["-c".into(), script]).await;
    assert!(ok && out.trim() == "ok", "stdout: {out}\nstderr: {err}");
    task.abort();
}

/// `ovsdb-client monitor` (v1 monitor with a null id, change-aware) sees another client's
/// write as it happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovsdb_client_monitor_sees_writes() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (_b, port, task) = start().await;
    let remote = format!("tcp:127.0.0.1:{port}");
    let mut child = tokio::process::Command::new("ovsdb-client")
        .args([
            "monitor",
            &remote,
            "OVN_Northbound",
            "Logical_Switch",
            "name",
            "--format=csv",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ovsdb-client");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The first switch may show up as `initial` or `insert` depending on whether the monitor
    // was set up before the write; once it has shown up, the second must come as `insert`.
    for (name, actions) in [
        ("mon-sw1", &["initial", "insert"][..]),
        ("mon-sw2", &["insert"][..]),
    ] {
        let (ok, _, err) = run(
            "ovn-nbctl",
            vec![format!("--db={remote}"), "ls-add".into(), name.into()],
        )
        .await;
        assert!(ok, "{err}");
        let mut seen = None;
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
        {
            if line.contains(name) {
                seen = Some(line);
                break;
            }
        }
        let line = seen.unwrap_or_else(|| panic!("the monitor did not report {name}"));
        assert!(actions.iter().any(|a| line.contains(a)), "{line}");
    }
    child.kill().await.ok();
    task.abort();
}
