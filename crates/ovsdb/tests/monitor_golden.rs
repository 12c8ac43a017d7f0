//! Golden tests of the monitor engine against ovsdb-server 3.1.
//!
//! Each scenario in `tests/monitor/*.json` is a list of steps (transactions, monitor
//! requests, `monitor_cond_change`s, `monitor_cond_since` resumptions). Running it yields a
//! transcript: every request with its normalised answer and, after each transaction, the
//! notification each open monitor received. `tests/monitor/*.golden` holds the transcript
//! recorded from the real server; this test replays each scenario through the engine
//! (`Database::transact` + `monitor::Monitor`, wrapped the way the server wraps them) and
//! compares. When `ovsdb-server` is on PATH the scenario is also run live and compared
//! with the golden file, so the goldens cannot drift; with `CI` set a missing server fails.
//!
//! ```text
//! cargo test -p ovsdb --test monitor_golden                                  # compare
//! HALYARD_REGEN_MONITOR_GOLDEN=1 cargo test -p ovsdb --test monitor_golden   # re-record
//! ```
//!
//! Scenario steps (`"steps": [...]`, each scenario starts from an empty database):
//! * `{"transact": [op…]}`: the params after the database name, sent on a separate
//!   connection; its result is recorded, then every open monitor's notification, if any;
//! * `{"monitor": id, "method": "monitor"|"monitor_cond"|"monitor_cond_since",
//!   "requests": {…}, "since": "<uuid>"?}`: opens a connection for this monitor; for
//!   `monitor_cond_since`, `since` names a transaction by its 1-based index among the
//!   scenario's transactions (`"since": 2`) or is a literal id (default all-zero);
//! * `{"cond_change": id, "new_id": id, "requests": {…}}`.
//!
//! Normalisation: the value of every `_version` member becomes `"<version>"`; UUIDs that
//! appear in the scenario file stay; transaction ids become `<txn N>` (the id after the
//! scenario's N-th transaction; `<txn 0>` before any); other UUIDs become `<uuid>`. Object
//! members are sorted. Scenarios give every row a fixed `"uuid"` so rows are comparable.

#[path = "monitor/real_server.rs"]
mod real_server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ovsdb::monitor::{Monitor, MonitorVersion};
use ovsdb::transaction::SeqEnv;
use ovsdb::{ChangeSet, Database, DatabaseSchema};
use serde_json::{json, Value};
use uuid::Uuid;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/monitor")
}

struct Scenario {
    name: String,
    json: Value,
    schema_path: PathBuf,
    clustered: bool,
    known: BTreeSet<String>,
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && Uuid::parse_str(s).is_ok()
}

fn collect_uuids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if is_uuid(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| collect_uuids(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            if is_uuid(k) {
                out.insert(k.clone());
            }
            collect_uuids(x, out)
        }),
        _ => {}
    }
}

fn load_scenarios() -> Vec<Scenario> {
    let filter = std::env::var("HALYARD_MONITOR_FILTER").unwrap_or_default();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/monitor")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(&filter))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let json: Value = serde_json::from_slice(&std::fs::read(&p).expect("read scenario"))
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let mut known = BTreeSet::new();
            collect_uuids(&json["steps"], &mut known);
            known.insert(Uuid::nil().to_string());
            let schema = json["schema"].as_str().unwrap_or("monitor.ovsschema");
            Scenario {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                schema_path: dir().join(schema),
                clustered: json["clustered"] == json!(true),
                json,
                known,
            }
        })
        .collect()
}

/// Normalises one answer (see the module doc). `txns` maps transaction ids to their names.
fn normalise(v: &Value, known: &BTreeSet<String>, txns: &BTreeMap<String, String>) -> Value {
    fn uuid_str(s: &str, known: &BTreeSet<String>, txns: &BTreeMap<String, String>) -> String {
        if let Some(t) = txns.get(s) {
            t.clone()
        } else if known.contains(s) || !is_uuid(s) {
            s.to_string()
        } else {
            "<uuid>".to_string()
        }
    }
    match v {
        Value::String(s) => Value::String(uuid_str(s, known, txns)),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalise(x, known, txns)).collect()),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                let val = if k == "_version" {
                    json!("<version>")
                } else {
                    normalise(&m[k], known, txns)
                };
                out.insert(uuid_str(k, known, txns), val);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// What one side answered to a step, before normalisation.
#[derive(Default)]
struct Answer {
    /// (monitor id as written in the scenario, notification method, params), in the order
    /// of the scenario's monitors.
    notes: Vec<(String, String, Value)>,
    /// `result` or `error` of the reply, with its member name.
    reply: Option<(&'static str, Value)>,
}

/// One side (engine or real server) able to run scenario steps.
trait Side {
    fn transact(&mut self, ops: &Value) -> Answer;
    fn monitor(
        &mut self,
        id: &str,
        method: &str,
        requests: &Value,
        since: Option<String>,
    ) -> Answer;
    fn cond_change(&mut self, id: &str, new_id: &str, requests: &Value) -> Answer;
    /// The id of the last committed transaction (all-zero on standalone servers).
    fn last_txn_id(&mut self) -> String;
}

fn reply_of(msg: &Value) -> (&'static str, Value) {
    if msg.get("error").is_some_and(|e| !e.is_null()) {
        ("error", msg["error"].clone())
    } else {
        ("result", msg["result"].clone())
    }
}

/// Runs a scenario and renders its transcript.
fn transcript(sc: &Scenario, side: &mut dyn Side) -> String {
    let mut out = String::new();
    let mut txns: BTreeMap<String, String> = BTreeMap::new();
    let mut txn_ids: Vec<String> = Vec::new();
    let first = side.last_txn_id();
    if first != Uuid::nil().to_string() {
        txns.insert(first.clone(), "<txn 0>".into());
    }
    txn_ids.push(first);
    for (n, step) in sc.json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .enumerate()
    {
        let n = n + 1;
        let (title, request, answer) = if let Some(ops) = step.get("transact") {
            let a = side.transact(ops);
            let id = side.last_txn_id();
            if id != Uuid::nil().to_string() && !txns.contains_key(&id) {
                txns.insert(id.clone(), format!("<txn {}>", txn_ids.len()));
            }
            txn_ids.push(id);
            ("transact".to_string(), ops.clone(), a)
        } else if let Some(id) = step.get("monitor") {
            let id = id.as_str().expect("monitor id");
            let method = step["method"].as_str().expect("method");
            let since = match &step["since"] {
                Value::Null => None,
                Value::Number(k) => Some(txn_ids[k.as_u64().unwrap() as usize].clone()),
                Value::String(s) => Some(s.clone()),
                other => panic!("bad since {other}"),
            };
            let a = side.monitor(id, method, &step["requests"], since);
            (format!("{method} {id}"), step["requests"].clone(), a)
        } else if let Some(id) = step.get("cond_change") {
            let id = id.as_str().expect("monitor id");
            let new_id = step["new_id"].as_str().expect("new_id");
            let a = side.cond_change(id, new_id, &step["requests"]);
            (
                format!("monitor_cond_change {id} -> {new_id}"),
                step["requests"].clone(),
                a,
            )
        } else {
            panic!("{}: unknown step {step}", sc.name);
        };
        out.push_str(&format!("### {n} {title}\n>>> {request}\n"));
        for (mon, method, params) in &answer.notes {
            let p = normalise(params, &sc.known, &txns);
            out.push_str(&format!("{mon} <<< {method} {p}\n"));
        }
        if let Some((kind, v)) = &answer.reply {
            out.push_str(&format!("<<< {kind} {}\n", normalise(v, &sc.known, &txns)));
        }
    }
    out
}

// ---------------------------------------------------------------- engine side

struct EngineMonitor {
    /// The id as written in the scenario (stable across cond_change, for the transcript).
    name: String,
    id: Value,
    monitor: Monitor,
}

struct Engine {
    db: Database,
    env: SeqEnv,
    monitors: Vec<EngineMonitor>,
    /// A cluster's history: the id of every transaction with its change set (the first
    /// entry stands for the state the scenario starts from and has none).
    history: Vec<(String, Option<ChangeSet>)>,
    clustered: bool,
}

impl Engine {
    fn new(sc: &Scenario) -> Engine {
        let schema_json: Value =
            serde_json::from_slice(&std::fs::read(&sc.schema_path).expect("schema"))
                .expect("schema JSON");
        let schema = Arc::new(DatabaseSchema::from_json(&schema_json).expect("schema parses"));
        Engine {
            db: Database::new(schema),
            env: SeqEnv::new(0x5eed),
            monitors: Vec::new(),
            history: if sc.clustered {
                vec![(txn_name(0), None)]
            } else {
                Vec::new()
            },
            clustered: sc.clustered,
        }
    }

    fn wrap(m: &EngineMonitor, txn_id: &str, updates: Value) -> (String, String, Value) {
        let v = m.monitor.version();
        let params = match v {
            MonitorVersion::V3 => json!([m.id, txn_id, updates]),
            _ => json!([m.id, updates]),
        };
        (m.name.clone(), v.notification().to_string(), params)
    }
}

impl Side for Engine {
    fn transact(&mut self, ops: &Value) -> Answer {
        let ops = ops.as_array().expect("ops array");
        let outcome = self.db.transact(ops, &mut self.env);
        let mut notes = Vec::new();
        if let Some(changes) = outcome.changes {
            let txn_id = if self.clustered {
                txn_name(self.history.len())
            } else {
                Uuid::nil().to_string()
            };
            for m in &self.monitors {
                if let Some(u) = m.monitor.update(&changes) {
                    notes.push(Engine::wrap(m, &txn_id, u));
                }
            }
            if self.clustered {
                self.history.push((txn_id, Some(changes)));
            }
        }
        Answer {
            notes,
            reply: Some(("result", outcome.result)),
        }
    }

    fn monitor(
        &mut self,
        id: &str,
        method: &str,
        requests: &Value,
        since: Option<String>,
    ) -> Answer {
        let version = MonitorVersion::for_method(method).expect("monitor method");
        match Monitor::new(self.db.schema(), version, requests) {
            Err(e) => Answer {
                notes: vec![],
                reply: Some(("error", e.to_json())),
            },
            Ok(monitor) => {
                let result = if version == MonitorVersion::V3 {
                    let last = self.last_txn_id();
                    let found = since.as_ref().and_then(|s| {
                        let pos = self.history.iter().position(|(t, _)| t == s)?;
                        Some(
                            monitor.since(
                                self.history[pos + 1..]
                                    .iter()
                                    .filter_map(|(_, c)| c.as_ref()),
                            ),
                        )
                    });
                    match found {
                        Some(u) => json!([true, last, u]),
                        None => json!([false, last, monitor.initial(&self.db)]),
                    }
                } else {
                    monitor.initial(&self.db)
                };
                self.monitors.push(EngineMonitor {
                    name: id.to_string(),
                    id: json!(id),
                    monitor,
                });
                Answer {
                    notes: vec![],
                    reply: Some(("result", result)),
                }
            }
        }
    }

    fn cond_change(&mut self, id: &str, new_id: &str, requests: &Value) -> Answer {
        let last = self.last_txn_id();
        let m = self
            .monitors
            .iter_mut()
            .find(|m| m.name == id)
            .expect("known monitor");
        match m.monitor.change_conditions(&self.db, requests) {
            Err(e) => Answer {
                notes: vec![],
                reply: Some(("error", e.to_json())),
            },
            Ok(u) => {
                m.id = json!(new_id);
                let notes = u.map(|u| Engine::wrap(m, &last, u)).into_iter().collect();
                Answer {
                    notes,
                    reply: Some(("result", json!({}))),
                }
            }
        }
    }

    fn last_txn_id(&mut self) -> String {
        self.history
            .last()
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| Uuid::nil().to_string())
    }
}

/// Transaction ids of the replayed cluster: any distinct UUIDs do, the transcript names
/// them by position.
fn txn_name(n: usize) -> String {
    Uuid::from_u64_pair(0x7478_6e00, n as u64 + 1).to_string()
}

// ---------------------------------------------------------------- real server side

struct Real {
    server: real_server::RealServer,
    writer: real_server::Client,
    monitors: Vec<RealMonitor>,
    db: String,
}

struct RealMonitor {
    /// The id as written in the scenario.
    name: String,
    /// The id the server knows it by (changed by `monitor_cond_change`).
    current: String,
    conn: real_server::Client,
}

impl Real {
    fn new(sc: &Scenario) -> Real {
        let server = real_server::RealServer::start(&sc.schema_path, sc.clustered);
        let writer = server.connect();
        let schema_json: Value =
            serde_json::from_slice(&std::fs::read(&sc.schema_path).expect("schema"))
                .expect("schema JSON");
        Real {
            writer,
            monitors: Vec::new(),
            db: schema_json["name"].as_str().unwrap().to_string(),
            server,
        }
    }
}

impl Side for Real {
    fn transact(&mut self, ops: &Value) -> Answer {
        let mut params = vec![json!(self.db)];
        params.extend(ops.as_array().expect("ops").iter().cloned());
        let reply = self.writer.call("transact", Value::Array(params));
        let mut notes = Vec::new();
        for m in &mut self.monitors {
            for n in m.conn.drain() {
                notes.push((
                    m.name.clone(),
                    n["method"].as_str().unwrap().to_string(),
                    n["params"].clone(),
                ));
            }
        }
        Answer {
            notes,
            reply: Some(reply_of(&reply)),
        }
    }

    fn monitor(
        &mut self,
        id: &str,
        method: &str,
        requests: &Value,
        since: Option<String>,
    ) -> Answer {
        let mut c = self.server.connect();
        let mut params = vec![json!(self.db), json!(id), requests.clone()];
        if method == "monitor_cond_since" {
            params.push(json!(since.unwrap_or_else(|| Uuid::nil().to_string())));
        }
        let reply = c.call(method, Value::Array(params));
        let (kind, v) = reply_of(&reply);
        if kind == "result" {
            self.monitors.push(RealMonitor {
                name: id.to_string(),
                current: id.to_string(),
                conn: c,
            });
        }
        Answer {
            notes: vec![],
            reply: Some((kind, v)),
        }
    }

    fn cond_change(&mut self, id: &str, new_id: &str, requests: &Value) -> Answer {
        let m = self
            .monitors
            .iter_mut()
            .find(|m| m.name == id)
            .expect("known monitor");
        let (notes, reply) = m
            .conn
            .call_collect("monitor_cond_change", json!([m.current, new_id, requests]));
        if reply.get("error").is_none_or(Value::is_null) {
            m.current = new_id.to_string();
        }
        let notes = notes
            .into_iter()
            .map(|n| {
                (
                    m.name.clone(),
                    n["method"].as_str().unwrap().to_string(),
                    n["params"].clone(),
                )
            })
            .collect();
        Answer {
            notes,
            reply: Some(reply_of(&reply)),
        }
    }

    fn last_txn_id(&mut self) -> String {
        // A monitor_cond_since on an empty table set answers the current last id.
        let mut c = self.server.connect();
        let r = c.call(
            "monitor_cond_since",
            json!([self.db, "probe", {}, Uuid::nil().to_string()]),
        );
        r["result"][1].as_str().expect("last txn id").to_string()
    }
}

// ---------------------------------------------------------------- the test

fn golden_path(sc: &Scenario) -> PathBuf {
    dir().join(format!("{}.golden", sc.name))
}

fn header(sc: &Scenario) -> String {
    format!(
        "# Transcript of ovsdb-server 3.1 for {}.json ({}), normalised as described in tests/monitor_golden.rs.\n\
         # Regenerate with: HALYARD_REGEN_MONITOR_GOLDEN=1 cargo test -p ovsdb --test monitor_golden\n",
        sc.name,
        sc.json["description"].as_str().unwrap_or("")
    )
}

fn strip_header(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The first differing line of two transcripts, with the step it belongs to.
fn first_difference(want: &str, got: &str) -> Option<String> {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut step = "";
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (
            w.get(i).copied().unwrap_or("<end>"),
            g.get(i).copied().unwrap_or("<end>"),
        );
        if a.starts_with("### ") {
            step = a;
        }
        if a != b {
            return Some(format!("at {step}\n  golden: {a}\n  actual: {b}"));
        }
    }
    None
}

#[test]
fn monitor_golden() {
    let regen = std::env::var_os("HALYARD_REGEN_MONITOR_GOLDEN").is_some();
    let live = real_server::available();
    if !live && (regen || std::env::var_os("CI").is_some()) {
        panic!("ovsdb-server is needed to record or check the monitor goldens");
    }
    let scenarios = load_scenarios();
    assert!(!scenarios.is_empty(), "no scenarios");
    let mut failures = Vec::new();
    for sc in &scenarios {
        let path = golden_path(sc);
        if live {
            let real = transcript(sc, &mut Real::new(sc));
            if regen {
                std::fs::write(&path, format!("{}{real}", header(sc))).expect("write golden");
            } else {
                let golden = strip_header(&std::fs::read_to_string(&path).unwrap_or_default());
                if let Some(d) = first_difference(&golden, &real) {
                    failures.push(format!(
                        "{}: the real server no longer matches the golden file {d}",
                        sc.name
                    ));
                }
            }
        }
        let golden = strip_header(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        );
        let engine = transcript(sc, &mut Engine::new(sc));
        if let Some(d) = first_difference(&golden, &engine) {
            failures.push(format!("{}: engine differs from ovsdb-server {d}", sc.name));
        }
    }
    println!(
        "monitor_golden: {} scenarios, {} failures",
        scenarios.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
