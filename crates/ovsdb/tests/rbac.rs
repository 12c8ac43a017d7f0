//! RBAC (ovsdb-server's `ovsdb/rbac.c`) with the OVN Southbound schema: the engine against
//! the real ovsdb-server 3.1, which enforces the `RBAC_Role`/`RBAC_Permission` rows for
//! clients of a `Connection` whose `role` is set, identified by their certificate's CN.
//!
//! `tests/rbac/northd-rbac.json` holds the RBAC rows ovn-northd 23.03 writes (recorded from a
//! real ovn-northd against a real ovsdb-server). `tests/rbac/scenario.json` is a list of
//! steps, each run as `root` (no role), as `hv1` or `hv2` (role `ovn-controller`, id the CN)
//! or as `none` (role `ovn-controller`, no certificate: ovsdb-server's id is NULL), and each
//! a transaction or a `convert`. The engine's normalised answers must equal
//! `tests/rbac/scenario.golden`. When ovsdb-server, ovsdb-client and ovs-pki are on PATH the
//! steps are also sent to a real ovsdb-server over real SSL with ovs-pki certificates and its
//! answers must equal the golden file too. With `CI` set, missing tools are an error.
//!
//! `HALYARD_REGEN_GOLDEN=1` rewrites the golden file from the live server.

#[path = "differential/normalise.rs"]
mod normalise;
#[path = "differential/real_server.rs"]
mod real_server;

use ovsdb::{Database, DatabaseSchema, RbacIdentity, RbacIdentityBuf, TxnEnv};
use real_server::TempDir;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
const ROLE: &str = "ovn-controller";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rbac")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sb_schema_path() -> PathBuf {
    // The installed schema is the one ovsdb-server runs; a copy would drift from it.
    let p = PathBuf::from(SB_SCHEMA);
    assert!(
        p.exists(),
        "{SB_SCHEMA} missing: install OVN (scripts/install-deps.sh)"
    );
    p
}

/// Who runs a step: the session's RBAC identity (None for root).
fn identity(who: &str) -> Option<RbacIdentityBuf> {
    match who {
        "root" => None,
        "none" => Some(RbacIdentityBuf {
            role: ROLE.into(),
            id: None,
        }),
        cn => Some(RbacIdentityBuf {
            role: ROLE.into(),
            id: Some(cn.into()),
        }),
    }
}

struct Step {
    who: String,
    note: String,
    /// None: a `convert` to the same schema.
    ops: Option<Vec<Value>>,
}

/// The steps, the first being the root's insertion of ovn-northd's RBAC rows.
fn load_steps() -> Vec<Step> {
    let northd = read_json(&dir().join("northd-rbac.json"));
    let mut steps = vec![Step {
        who: "root".into(),
        note: "the RBAC_Role and RBAC_Permission rows ovn-northd writes".into(),
        ops: Some(northd.as_array().expect("array of operations").clone()),
    }];
    let scenario = read_json(&dir().join("scenario.json"));
    for s in scenario["steps"].as_array().expect("steps") {
        steps.push(Step {
            who: s["as"].as_str().expect("as").into(),
            note: s["note"].as_str().unwrap_or_default().into(),
            ops: s["ops"].as_array().cloned(),
        });
    }
    steps
}

/// Deterministic UUIDs (spread like random ones) and the step's RBAC identity.
struct Env {
    state: u64,
    who: Option<RbacIdentityBuf>,
}

impl TxnEnv for Env {
    fn new_uuid(&mut self) -> Uuid {
        let mut next = || {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&next().to_be_bytes());
        bytes[8..].copy_from_slice(&next().to_be_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
    fn has_lock(&self, _lock: &str) -> bool {
        false
    }
    fn wait_elapsed_ms(&self) -> u64 {
        0
    }
    fn rbac(&self) -> Option<RbacIdentity<'_>> {
        self.who.as_ref().map(RbacIdentityBuf::as_identity)
    }
}

fn sb_database() -> Database {
    let schema = DatabaseSchema::from_json(&read_json(&sb_schema_path())).expect("SB schema");
    Database::new(Arc::new(schema))
}

/// The engine's raw answer to every step: a transaction's result array, or the error
/// object of a refused `convert`.
fn run_engine(steps: &[Step]) -> Vec<Value> {
    let mut db = sb_database();
    let mut env = Env {
        state: 0x5eed,
        who: None,
    };
    steps
        .iter()
        .map(|s| {
            env.who = identity(&s.who);
            match &s.ops {
                Some(ops) => {
                    let out = db.transact(ops, &mut env);
                    assert!(!out.blocked, "{}: blocked", s.note);
                    out.result
                }
                None => {
                    let name = db.schema().name.clone();
                    match env.rbac().map(|w| w.check_convert(&name)) {
                        Some(Err(e)) => e.to_json(),
                        _ => json!({"converted": true}),
                    }
                }
            }
        })
        .collect()
}

fn requests(steps: &[Step]) -> Vec<Vec<Value>> {
    steps
        .iter()
        .map(|s| s.ops.clone().unwrap_or_default())
        .collect()
}

fn render(steps: &[Step], answers: &[Value]) -> String {
    let mut out = String::from(
        "# Answers of ovsdb-server 3.1 to tests/rbac/scenario.json, normalised (see \
         tests/differential/normalise.rs).\n# Regenerate with: HALYARD_REGEN_GOLDEN=1 cargo \
         test -p ovsdb --test rbac\n",
    );
    for (i, (s, a)) in steps.iter().zip(answers).enumerate() {
        out.push_str(&format!("### {} as {}: {}\n", i + 1, s.who, s.note));
        match &s.ops {
            Some(ops) => out.push_str(&format!(">>> {}\n", Value::Array(ops.clone()))),
            None => out.push_str(">>> convert\n"),
        }
        out.push_str(&format!("<<< {a}\n"));
    }
    out
}

fn golden_answers(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("<<< "))
        .map(|l| serde_json::from_str(l).expect("golden answer is JSON"))
        .collect()
}

fn compare(who: &str, steps: &[Step], expected: &[Value], got: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    if expected.len() != got.len() {
        bad.push(format!(
            "{who}: {} answers, the golden file has {}",
            got.len(),
            expected.len()
        ));
    }
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        if e != g {
            bad.push(format!(
                "MISMATCH ({who}) step {} as {} ({})\n  expected: {e}\n  got:      {g}",
                i + 1,
                steps[i].who,
                steps[i].note
            ));
        }
    }
    bad
}

fn tools_available() -> bool {
    real_server::available()
        && ["ovsdb-client", "ovs-pki"].iter().all(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

#[test]
fn rbac_matches_ovsdb_server() {
    let regen = std::env::var_os("HALYARD_REGEN_GOLDEN").is_some_and(|v| v != "0" && !v.is_empty());
    let steps = load_steps();
    let live = if tools_available() {
        let raw = LiveServer::start()
            .and_then(|server| server.run(&steps))
            .unwrap_or_else(|e| panic!("live ovsdb-server: {e}"));
        Some(normalise::normalise(&requests(&steps), &raw))
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but ovsdb-server, ovsdb-client or ovs-pki is not on PATH"
        );
        assert!(!regen, "HALYARD_REGEN_GOLDEN needs ovsdb-server on PATH");
        eprintln!("rbac: ovsdb-server/ovs-pki not on PATH: comparing with the golden file only");
        None
    };
    let golden_path = dir().join("scenario.golden");
    if regen {
        let text = render(&steps, live.as_ref().expect("live answers"));
        std::fs::write(&golden_path, text).expect("write golden");
    }
    let golden = golden_answers(
        &std::fs::read_to_string(&golden_path)
            .unwrap_or_else(|e| panic!("{}: {e}", golden_path.display())),
    );
    let engine = normalise::normalise(&requests(&steps), &run_engine(&steps));
    let mut bad = compare("engine", &steps, &golden, &engine);
    if let Some(live) = &live {
        bad.extend(compare("ovsdb-server", &steps, &golden, live));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The golden file must exercise every refusal ovsdb-server words differently.
    let text = serde_json::to_string(&golden).expect("json");
    for needle in [
        "prohibit modification of table",
        "prohibit mutate operation on table",
        "prohibit row insertion into table",
        "prohibit row deletion from table",
        "prohibit \\\"convert\\\" of database",
        "client \\\"(null)\\\"",
    ] {
        assert!(text.contains(needle), "no golden answer contains {needle}");
    }
}

/// Without a role, or on a database without `RBAC_Role`, nothing is checked.
#[test]
fn unrestricted_sessions_and_databases() {
    let steps = load_steps();
    let rbac_rows = steps[0].ops.clone().expect("ops");
    let write = vec![json!({"op": "insert", "table": "SB_Global", "row": {}})];
    for (who, rbac_table, allowed) in [
        (Some(RbacIdentityBuf::default()), true, true),
        (
            Some(RbacIdentityBuf {
                role: String::new(),
                id: None,
            }),
            true,
            true,
        ),
        (identity("hv1"), true, false),
        (identity("hv1"), false, true),
        (identity("none"), false, true),
        (None, true, true),
    ] {
        let mut schema_json = read_json(&sb_schema_path());
        if !rbac_table {
            // A database without RBAC_Role: ovsdb-server keeps no role table for it and
            // grants everything.
            let tables = schema_json["tables"].as_object_mut().expect("tables");
            tables.remove("RBAC_Role");
        }
        let schema = DatabaseSchema::from_json(&schema_json).expect("schema");
        let mut db = Database::new(Arc::new(schema));
        let mut env = Env {
            state: 1,
            who: None,
        };
        let ops: Vec<Value> = rbac_rows
            .iter()
            .filter(|op| rbac_table || op["table"] != "RBAC_Role")
            .cloned()
            .collect();
        assert!(db.transact(&ops, &mut env).changes.is_some());
        env.who = who.clone();
        let out = db.transact(&write, &mut env);
        assert_eq!(
            out.changes.is_some(),
            allowed,
            "{who:?} with RBAC_Role {rbac_table}: {}",
            out.result
        );
    }
}

#[test]
fn convert_refusal() {
    let root = RbacIdentityBuf::default();
    assert!(root.as_identity().check_convert("OVN_Southbound").is_ok());
    for (who, text) in [
        (
            identity("hv1").expect("restricted"),
            "RBAC rules for client \"hv1\" role \"ovn-controller\" prohibit \"convert\" of \
             database OVN_Southbound (only the root role may convert databases)",
        ),
        (
            identity("none").expect("restricted"),
            "RBAC rules for client \"(null)\" role \"ovn-controller\" prohibit \"convert\" of \
             database OVN_Southbound (only the root role may convert databases)",
        ),
    ] {
        let e = who
            .as_identity()
            .check_convert("OVN_Southbound")
            .expect_err("refused");
        assert_eq!(
            e.to_json(),
            json!({"error": "permission error", "details": text})
        );
    }
}

#[test]
fn identity_round_trips_through_json() {
    for who in [
        identity("hv1"),
        identity("none"),
        Some(RbacIdentityBuf::default()),
    ] {
        let who = who.expect("identity");
        let text = serde_json::to_string(&who).expect("serialise");
        let back: RbacIdentityBuf = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(back, who);
    }
}

/// A real ovsdb-server with the Southbound schema, its listeners taken from
/// `SB_Global.connections` as ovn-ctl configures it: a `pssl:` and a `ptcp:` listener, both
/// with `role=ovn-controller`, plus a `punix:` socket for the root. Certificates by ovs-pki.
struct LiveServer {
    child: Child,
    ssl_port: u16,
    tcp_port: u16,
    // Declared last so the directory outlives the process during drop.
    dir: TempDir,
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Result<std::process::Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

impl LiveServer {
    fn start() -> Result<LiveServer, String> {
        let dir = TempDir::new("rbac");
        let d = dir.path();
        let pki = d.join("pki");
        run(Command::new("ovs-pki")
            .arg(format!("--dir={}", pki.display()))
            .arg("init"))?;
        // `-u`: the CN is the bare name. Without it ovs-pki appends " id:<uuid>", and
        // the CN would never equal a chassis name.
        for name in ["sb", "hv1", "hv2"] {
            run(Command::new("ovs-pki")
                .current_dir(d)
                .arg(format!("--dir={}", pki.display()))
                .args(["-u", "req+sign", name, "switch"]))?;
        }
        let db = d.join("sb.db");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(sb_schema_path()))?;
        let sock = d.join("sb.sock");
        let child = Command::new("ovsdb-server")
            .arg(format!("--remote=punix:{}", sock.display()))
            .arg("--remote=db:OVN_Southbound,SB_Global,connections")
            .arg(format!(
                "--private-key={}",
                d.join("sb-privkey.pem").display()
            ))
            .arg(format!("--certificate={}", d.join("sb-cert.pem").display()))
            .arg(format!(
                "--ca-cert={}",
                pki.join("switchca/cacert.pem").display()
            ))
            .arg(format!("--unixctl={}", d.join("ctl").display()))
            .arg(format!("--log-file={}", d.join("log").display()))
            .arg("-vconsole:off")
            .arg(&db)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ovsdb-server: {e}"))?;
        let mut server = LiveServer {
            child,
            ssl_port: 0,
            tcp_port: 0,
            dir,
        };
        server.wait_for(|| server.dir.path().join("sb.sock").exists())?;
        // Listeners on port 0, their ports read back from `Connection.status:bound_port`: a
        // port picked beforehand could be taken by another test's server in between, and this
        // one's clients would then talk to it (a flake seen once in a full workspace run).
        let ops = json!([
            "OVN_Southbound",
            {"op": "delete", "table": "SB_Global", "where": []},
            {"op": "insert", "table": "Connection", "uuid-name": "s",
             "row": {"target": "pssl:0:127.0.0.1", "role": ROLE}},
            {"op": "insert", "table": "Connection", "uuid-name": "t",
             "row": {"target": "ptcp:0:127.0.0.1", "role": ROLE}},
            {"op": "insert", "table": "SB_Global",
             "row": {"connections": ["set", [["named-uuid", "s"], ["named-uuid", "t"]]]}}
        ]);
        server.transact("root", &ops.to_string())?;
        // ovsdb-server writes `status` every 2.5 s.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let select = json!(["OVN_Southbound",
                {"op": "select", "table": "Connection", "where": [], "columns": ["target", "status"]}]);
            let answer = server.transact("root", &select.to_string())?;
            let port = |target: &str| -> Option<u16> {
                answer[0]["rows"]
                    .as_array()?
                    .iter()
                    .find(|r| r["target"] == json!(target))?["status"][1]
                    .as_array()?
                    .iter()
                    .find(|kv| kv[0] == json!("bound_port"))?[1]
                    .as_str()?
                    .parse()
                    .ok()
            };
            if let (Some(ssl), Some(tcp)) = (port("pssl:0:127.0.0.1"), port("ptcp:0:127.0.0.1")) {
                server.ssl_port = ssl;
                server.tcp_port = tcp;
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the Connection listeners reported no bound port: {answer}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_for(&self, ok: impl Fn() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok() {
            if Instant::now() > deadline {
                return Err("ovsdb-server not ready within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `ovsdb-client METHOD REMOTE` connected as `who`, the method's arguments still to add.
    fn client(&self, who: &str, method: &str) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("ovsdb-client");
        cmd.arg("--timeout=30");
        let remote = match who {
            "root" => format!("unix:{}", d.join("sb.sock").display()),
            "none" => format!("tcp:127.0.0.1:{}", self.tcp_port),
            cn => {
                let pem = |f: String| d.join(f).display().to_string();
                cmd.arg(format!(
                    "--private-key={}",
                    pem(format!("{cn}-privkey.pem"))
                ))
                .arg(format!("--certificate={}", pem(format!("{cn}-cert.pem"))))
                .arg(format!(
                    "--ca-cert={}",
                    pem("pki/switchca/cacert.pem".into())
                ));
                format!("ssl:127.0.0.1:{}", self.ssl_port)
            }
        };
        cmd.arg(method).arg(remote);
        cmd
    }

    fn transact(&self, who: &str, params: &str) -> Result<Value, String> {
        let out = run(self.client(who, "transact").arg(params))?;
        serde_json::from_slice(&out.stdout).map_err(|e| format!("transact answer: {e}"))
    }

    /// The error object a refused `convert` returns (ovsdb-client prints it after
    /// "transaction returned error: "), or `{"converted": true}`.
    fn convert(&self, who: &str) -> Result<Value, String> {
        let out = self
            .client(who, "convert")
            .arg(sb_schema_path())
            .output()
            .map_err(|e| format!("ovsdb-client: {e}"))?;
        if out.status.success() {
            return Ok(json!({"converted": true}));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (_, err) = stderr
            .split_once("transaction returned error: ")
            .ok_or_else(|| format!("convert: {stderr}"))?;
        serde_json::from_str(err.trim()).map_err(|e| format!("convert error {err}: {e}"))
    }

    fn run(&self, steps: &[Step]) -> Result<Vec<Value>, String> {
        steps
            .iter()
            .map(|s| match &s.ops {
                Some(ops) => {
                    let mut params = vec![Value::from("OVN_Southbound")];
                    params.extend(ops.iter().cloned());
                    self.transact(&s.who, &Value::Array(params).to_string())
                }
                None => self.convert(&s.who),
            })
            .collect()
    }
}
