//! The real Open vSwitch / OVN clients, with default options, against a single-member Halyard
//! started from the binary (create-cluster + serve): ovsdb-client (list-dbs, get-schema,
//! transact, dump, monitor, backup), ovn-nbctl building a full topology, ovn-sbctl (chassis-add,
//! lsp-bind) and ovsdbapp's OVN Northbound API. Wherever the output is deterministic, the same
//! steps are run against a real ovsdb-server 3.1 and the outputs must be equal (UUIDs, which are
//! random, are replaced by what they refer to).

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use halyard_testkit::single::*;
use serde_json::{json, Value};

/// Replaces every `["uuid", X]` by `["uuid", "#n"]`, n counting first appearances, and sorts
/// the members of sets and the rows of select results (whose order follows the random UUIDs)
/// after relabelling.
fn relabel(v: &Value, names: &mut HashMap<String, usize>) -> Value {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "uuid" && a[1].is_string() => {
            let n = names.len();
            let n = *names.entry(a[1].as_str().unwrap().to_string()).or_insert(n);
            json!(["uuid", format!("#{n}")])
        }
        Value::Array(a) if a.len() == 2 && a[0] == "set" && a[1].is_array() => {
            let mut items: Vec<Value> = a[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| relabel(x, names))
                .collect();
            items.sort_by_key(canonical);
            json!(["set", items])
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| relabel(x, names)).collect()),
        // Select results list rows in UUID order, which is random: sort them.
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let mut x = relabel(x, names);
                    if let (true, Value::Array(rows)) = (k == "rows", &mut x) {
                        rows.sort_by_key(canonical);
                    }
                    (k.clone(), x)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Runs `ovsdb-client transact REMOTE TXN` and returns its output, parsed.
fn client_transact(remote: &str, txn: &Value) -> Value {
    let out = run_args("ovsdb-client", &["transact", remote, &txn.to_string()])
        .ok("ovsdb-client transact");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("transact output is not JSON ({e}): {out}"))
}

/// The same transactions as a sequence, for both servers: inserts with references, a mutate,
/// an update, a delete, and selects reading it back.
fn nb_transactions() -> Vec<Value> {
    vec![
        json!(["OVN_Northbound",
            {"op": "insert", "table": "Logical_Switch", "row": {"name": "sw0",
                "external_ids": ["map", [["owner", "alice"], ["zone", "a"]]],
                "ports": ["set", [["named-uuid", "p1"], ["named-uuid", "p2"]]]}, "uuid-name": "sw0"},
            {"op": "insert", "table": "Logical_Switch_Port", "row": {"name": "sw0-p1",
                "addresses": ["set", ["00:00:00:00:00:01 10.0.0.1"]]}, "uuid-name": "p1"},
            {"op": "insert", "table": "Logical_Switch_Port", "row": {"name": "sw0-p2",
                "addresses": "00:00:00:00:00:02 10.0.0.2", "tag_request": 7}, "uuid-name": "p2"},
            {"op": "insert", "table": "Logical_Switch", "row": {"name": "sw1"}}]),
        json!(["OVN_Northbound",
            {"op": "insert", "table": "Logical_Switch_Port", "row": {"name": "sw1-p1"}, "uuid-name": "q1"},
            {"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", "sw1"]],
                "mutations": [["ports", "insert", ["set", [["named-uuid", "q1"]]]]]},
            {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "sw0"]],
                "row": {"other_config": ["map", [["mcast_snoop", "true"]]]}},
            {"op": "delete", "table": "Logical_Switch_Port", "where": [["name", "==", "nonexistent"]]}]),
        json!(["OVN_Northbound",
            {"op": "select", "table": "Logical_Switch", "where": [["name", "==", "sw0"]],
                "columns": ["name", "external_ids", "other_config", "ports"]},
            {"op": "select", "table": "Logical_Switch_Port", "where": [["tag_request", "==", 7]],
                "columns": ["name", "addresses", "tag_request"]},
            {"op": "select", "table": "Logical_Switch", "where": [], "columns": ["name"]}]),
        // A failing transaction: nothing changes and both report the same error.
        json!(["OVN_Northbound",
            {"op": "insert", "table": "Logical_Switch", "row": {"name": "never"}},
            {"op": "insert", "table": "Logical_Switch_Port", "row": {"nosuchcolumn": 1}}]),
    ]
}

#[test]
fn ovsdb_client_list_dbs_get_schema_transact_dump() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);

    // list-dbs, over TCP and over the Unix socket.
    let want = run_args("ovsdb-client", &["list-dbs", &real.tcp()]).ok("real list-dbs");
    assert_eq!(want, "OVN_Northbound\n_Server\n");
    assert_eq!(
        run_args("ovsdb-client", &["list-dbs", &h.tcp()]).ok("list-dbs tcp"),
        want
    );
    assert_eq!(
        run_args("ovsdb-client", &["list-dbs", &h.unix()]).ok("list-dbs unix"),
        want
    );

    // get-schema: the same JSON as the real server's (and as the file, normalised by both).
    for db in ["OVN_Northbound", "_Server"] {
        let ours: Value = serde_json::from_str(
            &run_args("ovsdb-client", &["get-schema", &h.tcp(), db]).ok("get-schema"),
        )
        .unwrap();
        let theirs: Value = serde_json::from_str(
            &run_args("ovsdb-client", &["get-schema", &real.tcp(), db]).ok("real get-schema"),
        )
        .unwrap();
        assert_eq!(ours, theirs, "get-schema {db} differs from ovsdb-server's");
    }
    let version = run_args(
        "ovsdb-client",
        &["get-schema-version", &h.tcp(), "OVN_Northbound"],
    )
    .ok("version");
    assert_eq!(
        version,
        run_args("ovsdb-client", &["get-schema-version", &real.tcp()]).ok("real version")
    );

    // transact: the same sequence gives the same answers (UUIDs relabelled consistently
    // across the whole sequence, so references must line up too).
    let (mut ours_names, mut theirs_names) = (HashMap::new(), HashMap::new());
    for txn in nb_transactions() {
        let ours = relabel(&client_transact(&h.tcp(), &txn), &mut ours_names);
        let theirs = relabel(&client_transact(&real.tcp(), &txn), &mut theirs_names);
        assert_eq!(ours, theirs, "transact {txn} answered differently");
    }
    // The select in the third transaction read back what was inserted.
    let check = client_transact(
        &h.unix(),
        &json!(["OVN_Northbound", {"op": "select", "table": "Logical_Switch_Port", "where": [], "columns": ["name"]}]),
    );
    assert_eq!(
        sorted_column(&check[0], "name"),
        ["sw0-p1", "sw0-p2", "sw1-p1"]
    );

    // dump: equal once UUIDs are replaced by names (normalize.py), and not trivially empty.
    let dump_of = |remote: &str| {
        normalize(
            "dump",
            &run_args(
                "ovsdb-client",
                &["-f", "json", "dump", remote, "OVN_Northbound"],
            )
            .ok("dump"),
        )
    };
    let ours = dump_of(&h.tcp());
    assert_eq!(ours, dump_of(&real.tcp()), "normalised dumps differ");
    assert!(
        ours.contains("sw0-p2") && ours.contains("mcast_snoop"),
        "{ours}"
    );
    // The plain-text dump has the same tables and columns in the same order.
    let text = run_args(
        "ovsdb-client",
        &["dump", &h.tcp(), "OVN_Northbound", "Logical_Switch", "name"],
    )
    .ok("dump");
    let real_text = run_args(
        "ovsdb-client",
        &[
            "dump",
            &real.tcp(),
            "OVN_Northbound",
            "Logical_Switch",
            "name",
        ],
    )
    .ok("dump");
    assert_eq!(text, real_text);
}

/// `ovsdb-client monitor` in the background sees a write made by another client; its output
/// equals the real server's for the same steps (row UUIDs replaced).
#[test]
fn ovsdb_client_monitor_sees_another_clients_write() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let uuid_re = |s: &str| {
        // Row UUIDs lead each data line; replace them so the two servers' outputs compare.
        s.lines()
            .map(|l| match l.split_once(' ') {
                Some((first, rest)) if first.len() == 36 && first.matches('-').count() == 4 => {
                    format!("<uuid> {rest}")
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut outputs = Vec::new();
    for remote in [h.tcp(), real.tcp()] {
        client_transact(
            &remote,
            &json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": "before"}}]),
        );
        let mut mon = Command::new("ovsdb-client")
            .args([
                "monitor",
                &remote,
                "OVN_Northbound",
                "Logical_Switch",
                "name",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = mon.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut seen = String::new();
        let read_until = |needle: &str, seen: &mut String| {
            let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
            while !seen.contains(needle) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                    Err(_) => panic!(
                        "ovsdb-client monitor on {remote} never printed {needle:?}; got:\n{seen}"
                    ),
                }
            }
        };
        // The initial contents arrive first; only then is the monitor surely installed.
        read_until("initial before", &mut seen);
        client_transact(
            &remote,
            &json!(["OVN_Northbound", {"op": "insert", "table": "Logical_Switch", "row": {"name": "after"}}]),
        );
        read_until("insert after", &mut seen);
        client_transact(
            &remote,
            &json!(["OVN_Northbound", {"op": "update", "table": "Logical_Switch", "where": [["name", "==", "after"]], "row": {"name": "renamed"}}]),
        );
        read_until("renamed", &mut seen);
        let _ = mon.kill();
        let _ = mon.wait();
        reader.join().unwrap();
        outputs.push(uuid_re(&seen));
    }
    assert_eq!(
        outputs[0], outputs[1],
        "monitor output differs from ovsdb-server's"
    );
}

/// `ovsdb-client backup` writes a standalone database file that ovsdb-tool reads and that holds
/// the rows; its contents equal those of a backup of the real server after the same steps.
#[test]
fn ovsdb_client_backup_is_a_valid_database() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let query = json!(["OVN_Northbound",
        {"op": "select", "table": "Logical_Switch", "where": [], "columns": ["name", "external_ids"]},
        {"op": "select", "table": "Logical_Switch_Port", "where": [], "columns": ["name", "addresses"]}]);
    let mut results = Vec::new();
    for (remote, dir) in [(h.tcp(), h.dir.path()), (real.tcp(), real.dir.path())] {
        for txn in nb_transactions() {
            client_transact(&remote, &txn);
        }
        let backup = run_args("ovsdb-client", &["backup", &remote, "OVN_Northbound"])
            .ok("ovsdb-client backup");
        let file = dir.join("backup.db");
        std::fs::write(&file, &backup).unwrap();
        let file = file.to_str().unwrap();
        assert_eq!(
            run_args("ovsdb-tool", &["db-name", file]).ok("db-name"),
            "OVN_Northbound\n"
        );
        assert_eq!(
            run_args("ovsdb-tool", &["db-is-standalone", file])
                .status
                .code(),
            Some(0)
        );
        let out =
            run_args("ovsdb-tool", &["query", file, &query.to_string()]).ok("ovsdb-tool query");
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut rows: Vec<Vec<String>> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut rows: Vec<String> = r["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_string())
                    .collect();
                rows.sort();
                rows
            })
            .collect();
        assert!(
            rows[0]
                .iter()
                .any(|r| r.contains("\"sw0\"") && r.contains("alice")),
            "{rows:?}"
        );
        assert_eq!(rows[1].len(), 3, "{rows:?}");
        rows.push(vec![
            run_args("ovsdb-tool", &["db-version", file]).ok("db-version")
        ]);
        results.push(rows);
    }
    assert_eq!(
        results[0], results[1],
        "backup contents differ from ovsdb-server's"
    );
}

/// tests/ovn/nb-topology.sh (routers, switches with ports and addresses, ACLs, port groups,
/// address sets, load balancers, NAT, DHCP options) through ovn-nbctl against Halyard and
/// against ovsdb-server: `ovn-nbctl show` and the table dumps are equal after normalisation.
#[test]
fn ovn_nbctl_topology_matches_ovsdb_server() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let script = repo_root().join("tests/ovn/nb-topology.sh");
    let mut shows = Vec::new();
    let mut dumps = Vec::new();
    for remote in [h.tcp(), real.tcp()] {
        let out = run_input(
            Command::new("bash").arg(&script).env("DB", &remote),
            b"",
            Duration::from_secs(300),
        );
        out.ok(&format!("nb-topology.sh against {remote}"));
        let show = run_args("ovn-nbctl", &[&format!("--db={remote}"), "show"]).ok("ovn-nbctl show");
        shows.push(normalize("show", &show));
        let dump = run_args(
            "ovsdb-client",
            &["-f", "json", "dump", &remote, "OVN_Northbound"],
        )
        .ok("dump");
        dumps.push(normalize("dump", &dump));
    }
    assert_eq!(
        shows[0], shows[1],
        "ovn-nbctl show differs from ovsdb-server's"
    );
    assert!(
        shows[0].contains("router <uuid> (lr0)") && shows[0].contains("port sw0-p1"),
        "{}",
        shows[0]
    );
    assert_eq!(
        dumps[0], dumps[1],
        "normalised dumps differ from ovsdb-server's"
    );
    for needle in [
        "lr0-public",
        "sw1-p2",
        "172.16.0.110",
        "allow-related",
        "lb_web",
    ] {
        assert!(
            dumps[0].contains(needle),
            "{needle} missing from the dump:\n{}",
            dumps[0]
        );
    }
    // Reads through the Unix socket see the same database.
    let via_unix =
        run_args("ovn-nbctl", &[&format!("--db={}", h.unix()), "show"]).ok("show over unix");
    assert_eq!(normalize("show", &via_unix), shows[0]);
}

/// ovn-sbctl against a Halyard serving the OVN Southbound schema: chassis-add, a datapath and a
/// port binding created with ovsdb-client transact, lsp-bind; `ovn-sbctl show` equals the real
/// server's for the same steps.
#[test]
fn ovn_sbctl_chassis_add_and_lsp_bind() {
    let h = Halyard::start(SB_SCHEMA);
    let real = OvsdbServer::start(SB_SCHEMA);
    let mut shows = Vec::new();
    for remote in [h.tcp(), real.tcp()] {
        let db = format!("--db={remote}");
        run_args(
            "ovn-sbctl",
            &[&db, "chassis-add", "ch1", "geneve", "10.0.0.1"],
        )
        .ok("chassis-add");
        run_args(
            "ovn-sbctl",
            &[&db, "chassis-add", "ch2", "vxlan", "10.0.0.2"],
        )
        .ok("chassis-add ch2");
        client_transact(
            &remote,
            &json!(["OVN_Southbound",
                {"op": "insert", "table": "Datapath_Binding", "row": {"tunnel_key": 1,
                    "external_ids": ["map", [["name", "sw0"]]]}, "uuid-name": "dp"},
                {"op": "insert", "table": "Port_Binding", "row": {"logical_port": "sw0-p1",
                    "datapath": ["named-uuid", "dp"], "tunnel_key": 1, "mac": "50:54:00:00:00:01 10.0.0.11"}},
                {"op": "insert", "table": "Port_Binding", "row": {"logical_port": "sw0-p2",
                    "datapath": ["named-uuid", "dp"], "tunnel_key": 2, "mac": "50:54:00:00:00:02 10.0.0.12"}}]),
        );
        run_args("ovn-sbctl", &[&db, "lsp-bind", "sw0-p1", "ch1"]).ok("lsp-bind");
        run_args("ovn-sbctl", &[&db, "lsp-bind", "sw0-p2", "ch2"]).ok("lsp-bind sw0-p2");
        // Binding an already bound port is refused by ovn-sbctl after reading the database.
        let again = run_args("ovn-sbctl", &[&db, "lsp-bind", "sw0-p1", "ch2"]);
        assert!(
            !again.status.success()
                && again
                    .stderr
                    .contains("has already been binded to chassis (ch1)"),
            "{again:?}"
        );
        run_args(
            "ovn-sbctl",
            &[&db, "chassis-add", "ch3", "geneve", "10.0.0.3"],
        )
        .ok("chassis-add ch3");
        run_args("ovn-sbctl", &[&db, "chassis-del", "ch3"]).ok("chassis-del ch3");
        let show = run_args("ovn-sbctl", &[&db, "show"]).ok("ovn-sbctl show");
        assert!(
            show.contains("Chassis ch1") && show.contains("Port_Binding sw0-p1"),
            "{show}"
        );
        shows.push(normalize("show", &show));
    }
    assert_eq!(
        shows[0], shows[1],
        "ovn-sbctl show differs from ovsdb-server's"
    );
}

/// tests/python/ovsdbapp_nb.py drives ovsdbapp's OVN NB API (OvnNbApiIdlImpl on a
/// Connection built with OvsdbIdl.from_server) in multi-command transactions and checks what it
/// reads back; a second process reconnects and reads the same. The summaries from Halyard and
/// from ovsdb-server must be identical.
#[test]
fn ovsdbapp_northbound_api() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let script = repo_root().join("tests/python/ovsdbapp_nb.py");
    let mut outputs = Vec::new();
    for remote in [h.tcp(), real.tcp()] {
        let py = |mode: &str| {
            run_input(
                Command::new("/usr/bin/python3")
                    .arg(&script)
                    .arg(&remote)
                    .arg(mode),
                b"",
                Duration::from_secs(120),
            )
            .ok(&format!("ovsdbapp_nb.py {remote} {mode}"))
        };
        let written = py("write");
        let read = py("read");
        assert_eq!(
            written, read,
            "a fresh connection reads something else than the writer saw"
        );
        outputs.push(written);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "ovsdbapp summary differs from ovsdb-server's"
    );
}

/// What every IDL relies on (§1.5): on a session that monitors a table, the `update2` a
/// transaction causes arrives before that transaction's reply; ovsdb-server does the same.
#[test]
fn a_sessions_own_write_is_announced_before_its_reply() {
    let h = Halyard::start(NB_SCHEMA);
    let real = OvsdbServer::start(NB_SCHEMA);
    let mut sequences = Vec::new();
    for port in [h.port, real.port] {
        let mut c = Rpc::connect(port);
        c.send(
            &json!({"id": "m", "method": "monitor_cond", "params": ["OVN_Northbound", "mon",
            {"Logical_Switch": [{"columns": ["name"]}]}]}),
        )
        .unwrap();
        let first = c.recv(CLIENT_TIMEOUT).expect("monitor_cond reply");
        assert_eq!(first["id"], "m", "{first}");
        let mut seq = Vec::new();
        for i in 0..5 {
            c.send(
                &json!({"id": i, "method": "transact", "params": ["OVN_Northbound",
                {"op": "insert", "table": "Logical_Switch", "row": {"name": format!("ls{i}")}}]}),
            )
            .unwrap();
            loop {
                let m = c.recv(CLIENT_TIMEOUT).expect("update or reply");
                if m["method"] == "update2" {
                    let name = m["params"][1]["Logical_Switch"]
                        .as_object()
                        .and_then(|rows| rows.values().next())
                        .map(|r| r["insert"]["name"].clone());
                    seq.push(format!("update2 {}", name.unwrap_or_default()));
                } else if m["id"] == json!(i) {
                    seq.push(format!("reply {i}"));
                    break;
                } else {
                    panic!("unexpected {m}");
                }
            }
        }
        sequences.push(seq);
    }
    assert_eq!(sequences[0], sequences[1]);
    assert_eq!(sequences[0][..2], ["update2 \"ls0\"", "reply 0"]);
}
