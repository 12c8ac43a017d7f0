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
//! * `{"transact": [op…]}`: the params after the database name; its result is recorded,
//!   then the notification each open monitor received, if any;
//! * `{"monitor": id, "method": "monitor"|"monitor_cond"|"monitor_cond_since",
//!   "requests": {…}, "since": N | "<uuid>"}`: for `monitor_cond_since`, `since` is the id
//!   that was current after N transact steps, or a literal id (default all-zero);
//! * `{"cond_change": id, "new_id": id, "requests": {…}}`.
//!
//! A scenario with `"clustered": true` runs on a one-member cluster (which keeps history).
//! On the real side every monitor has a server of its own (see [`Real`]).
//!
//! Normalisation: the value of every `_version` member becomes `"<version>"`; UUIDs that
//! appear in the scenario file stay; transaction ids become `<txn N>` (the id that became
//! current after N transact steps; `<txn 0>` before any); other UUIDs become `<uuid>`.
//! Object members are sorted. Scenarios give every row a fixed `"uuid"`.

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
    schema: Value,
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
            let schema_path = dir().join(json["schema"].as_str().unwrap_or("monitor.ovsschema"));
            let schema = serde_json::from_slice(&std::fs::read(&schema_path).expect("read schema"))
                .expect("schema JSON");
            Scenario {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                schema_path,
                schema,
                clustered: json["clustered"] == json!(true),
                json,
                known,
            }
        })
        .collect()
}

/// Normalises one answer (see the module doc); transaction ids were already replaced by
/// their labels by the side that produced the answer.
fn normalise(v: &Value, known: &BTreeSet<String>) -> Value {
    fn uuid_str(s: &str, known: &BTreeSet<String>) -> String {
        if known.contains(s) || !is_uuid(s) {
            s.to_string()
        } else {
            "<uuid>".to_string()
        }
    }
    match v {
        Value::String(s) => Value::String(uuid_str(s, known)),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalise(x, known)).collect()),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                let val = if k == "_version" {
                    json!("<version>")
                } else {
                    normalise(&m[k], known)
                };
                out.insert(uuid_str(k, known), val);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Transaction ids of one database, labelled `<txn N>` by the number of transact steps
/// run when the id became current (`<txn 0>`: the state before any).
#[derive(Default)]
struct TxnLabels {
    ids: Vec<String>,
    labels: BTreeMap<String, String>,
}

impl TxnLabels {
    /// Records the current id after `self.ids.len()` transact steps.
    fn record(&mut self, id: String) {
        if id != Uuid::nil().to_string() && !self.labels.contains_key(&id) {
            self.labels
                .insert(id.clone(), format!("<txn {}>", self.ids.len()));
        }
        self.ids.push(id);
    }

    fn label(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                Value::String(self.labels.get(s).cloned().unwrap_or_else(|| s.clone()))
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.label(x)).collect()),
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, x)| (k.clone(), self.label(x))).collect())
            }
            other => other.clone(),
        }
    }

    fn since(&self, since: &Since) -> String {
        match since {
            Since::Step(k) => self.ids[*k].clone(),
            Since::Literal(s) => s.clone(),
        }
    }
}

/// The last transaction id a `monitor_cond_since` names.
enum Since {
    /// The id current after this many transact steps.
    Step(usize),
    Literal(String),
}

/// What one side answered to a step: the notifications each monitor received, by the
/// scenario's name of the monitor in the scenario's order, then the reply.
struct Answer {
    notes: Vec<(String, String, Value)>,
    /// `result` or `error` of the reply, with its member name.
    reply: (&'static str, Value),
}

/// One side (engine or real server) able to run scenario steps. Answers carry transaction
/// ids already labelled.
trait Side {
    fn transact(&mut self, ops: &Value) -> Answer;
    fn monitor(&mut self, id: &str, method: &str, requests: &Value, since: Option<Since>)
        -> Answer;
    fn cond_change(&mut self, id: &str, new_id: &str, requests: &Value) -> Answer;
}

fn reply_of(msg: &Value) -> (&'static str, Value) {
    if msg.get("error").is_some_and(|e| !e.is_null()) {
        ("error", msg["error"].clone())
    } else {
        ("result", msg["result"].clone())
    }
}

fn note_of(name: &str, msg: &Value, labels: &TxnLabels) -> (String, String, Value) {
    (
        name.to_string(),
        msg["method"].as_str().expect("notification").to_string(),
        labels.label(&msg["params"]),
    )
}

/// Runs a scenario and renders its transcript.
fn transcript(sc: &Scenario, side: &mut dyn Side) -> String {
    let mut out = String::new();
    for (n, step) in sc.json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .enumerate()
    {
        let n = n + 1;
        let (title, request, answer) = if let Some(ops) = step.get("transact") {
            ("transact".to_string(), ops.clone(), side.transact(ops))
        } else if let Some(id) = step.get("monitor") {
            let id = id.as_str().expect("monitor id");
            let method = step["method"].as_str().expect("method");
            let since = match &step["since"] {
                Value::Null => None,
                Value::Number(k) => Some(Since::Step(k.as_u64().expect("step count") as usize)),
                Value::String(s) => Some(Since::Literal(s.clone())),
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
            out.push_str(&format!(
                "{mon} <<< {method} {}\n",
                normalise(params, &sc.known)
            ));
        }
        let (kind, v) = &answer.reply;
        out.push_str(&format!("<<< {kind} {}\n", normalise(v, &sc.known)));
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

/// The engine as the server drives it: one database, every monitor diffed against each
/// committed change set, notifications wrapped by monitor version.
struct Engine {
    db: Database,
    env: SeqEnv,
    monitors: Vec<EngineMonitor>,
    /// A cluster's history: the change set of every transaction, by id; the first entry
    /// stands for the state the scenario starts from and has none.
    history: Vec<(String, Option<ChangeSet>)>,
    labels: TxnLabels,
    clustered: bool,
}

/// Transaction ids of the replayed cluster: any distinct UUIDs do.
fn txn_name(n: usize) -> String {
    Uuid::from_u64_pair(0x7478_6e00, n as u64 + 1).to_string()
}

impl Engine {
    fn new(sc: &Scenario) -> Engine {
        let schema = Arc::new(DatabaseSchema::from_json(&sc.schema).expect("schema parses"));
        let mut e = Engine {
            db: Database::new(schema),
            env: SeqEnv::new(0x5eed),
            monitors: Vec::new(),
            history: if sc.clustered {
                vec![(txn_name(0), None)]
            } else {
                Vec::new()
            },
            labels: TxnLabels::default(),
            clustered: sc.clustered,
        };
        let id = e.last_txn_id();
        e.labels.record(id);
        e
    }

    fn last_txn_id(&self) -> String {
        self.history
            .last()
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| Uuid::nil().to_string())
    }

    fn wrap(m: &EngineMonitor, txn_id: &str, updates: Value) -> Value {
        let v = m.monitor.version();
        let params = match v {
            MonitorVersion::V3 => json!([m.id, txn_id, updates]),
            _ => json!([m.id, updates]),
        };
        json!({"id": null, "method": v.notification(), "params": params})
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
                    notes.push((m.name.clone(), Engine::wrap(m, &txn_id, u)));
                }
            }
            if self.clustered {
                self.history.push((txn_id, Some(changes)));
            }
        }
        let id = self.last_txn_id();
        self.labels.record(id);
        let notes = notes
            .iter()
            .map(|(name, n)| note_of(name, n, &self.labels))
            .collect();
        Answer {
            notes,
            reply: ("result", outcome.result),
        }
    }

    fn monitor(
        &mut self,
        id: &str,
        method: &str,
        requests: &Value,
        since: Option<Since>,
    ) -> Answer {
        let version = MonitorVersion::for_method(method).expect("monitor method");
        let monitor = match Monitor::new(self.db.schema(), version, requests) {
            Err(e) => {
                return Answer {
                    notes: vec![],
                    reply: ("error", e.to_json()),
                };
            }
            Ok(m) => m,
        };
        let result = if version == MonitorVersion::V3 {
            let last = self.last_txn_id();
            let found = since.map(|s| self.labels.since(&s)).and_then(|s| {
                let pos = self.history.iter().position(|(t, _)| *t == s)?;
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
            reply: ("result", self.labels.label(&result)),
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
                reply: ("error", e.to_json()),
            },
            Ok(u) => {
                m.id = json!(new_id);
                let notes = u
                    .map(|u| note_of(&m.name, &Engine::wrap(m, &last, u), &self.labels))
                    .into_iter()
                    .collect();
                Answer {
                    notes,
                    reply: ("result", json!({})),
                }
            }
        }
    }
}

// ---------------------------------------------------------------- real server side

/// One real server with the scenario's database and a connection that writes to it.
struct RealDb {
    server: real_server::RealServer,
    writer: real_server::Client,
    db: String,
    clustered: bool,
    labels: TxnLabels,
}

impl RealDb {
    /// A fresh server that has run `prior` transactions.
    fn start(sc: &Scenario, prior: &[Value]) -> RealDb {
        let server = real_server::RealServer::start(&sc.schema_path, sc.clustered);
        let writer = server.connect();
        let db = sc.schema["name"].as_str().expect("schema name").to_string();
        let mut r = RealDb {
            server,
            writer,
            db,
            clustered: sc.clustered,
            labels: TxnLabels::default(),
        };
        let id = r.last_txn_id();
        r.labels.record(id);
        for ops in prior {
            r.transact(ops);
        }
        r
    }

    fn transact(&mut self, ops: &Value) -> Value {
        let mut params = vec![json!(self.db)];
        params.extend(ops.as_array().expect("ops").iter().cloned());
        let reply = self.writer.call("transact", Value::Array(params));
        let id = self.last_txn_id();
        self.labels.record(id);
        reply
    }

    /// Standalone databases have no transaction ids; a cluster tells the current one in a
    /// `monitor_cond_since` reply (an empty monitor on a throwaway connection).
    fn last_txn_id(&mut self) -> String {
        if !self.clustered {
            return Uuid::nil().to_string();
        }
        let mut c = self.server.connect();
        let r = c.call(
            "monitor_cond_since",
            json!([self.db, "probe", {}, Uuid::nil().to_string()]),
        );
        r["result"][1].as_str().expect("last txn id").to_string()
    }
}

/// The real server side. ovsdb-server 3.1 shares internal monitor state between monitors
/// with the same tables and columns, and crashes or loses updates when such monitors have
/// conditions on different unmonitored columns; so every monitor gets a server of its own,
/// which replays the scenario's transactions, and one more server answers the transactions.
struct Real<'s> {
    sc: &'s Scenario,
    primary: RealDb,
    monitors: Vec<RealMonitor>,
    prior: Vec<Value>,
}

struct RealMonitor {
    /// The id as written in the scenario.
    name: String,
    /// The id the server knows it by (changed by `monitor_cond_change`).
    current: String,
    db: RealDb,
    conn: real_server::Client,
}

impl<'s> Real<'s> {
    fn new(sc: &'s Scenario) -> Real<'s> {
        Real {
            sc,
            primary: RealDb::start(sc, &[]),
            monitors: Vec::new(),
            prior: Vec::new(),
        }
    }
}

impl Side for Real<'_> {
    fn transact(&mut self, ops: &Value) -> Answer {
        let reply = self.primary.transact(ops);
        let mut notes = Vec::new();
        for m in &mut self.monitors {
            m.db.transact(ops);
            for n in m.conn.drain() {
                notes.push(note_of(&m.name, &n, &m.db.labels));
            }
        }
        self.prior.push(ops.clone());
        Answer {
            notes,
            reply: reply_of(&self.primary.labels.label(&reply)),
        }
    }

    fn monitor(
        &mut self,
        id: &str,
        method: &str,
        requests: &Value,
        since: Option<Since>,
    ) -> Answer {
        let db = RealDb::start(self.sc, &self.prior);
        let mut conn = db.server.connect();
        let mut params = vec![json!(db.db), json!(id), requests.clone()];
        if method == "monitor_cond_since" {
            params.push(json!(since
                .map(|s| db.labels.since(&s))
                .unwrap_or_else(|| Uuid::nil().to_string())));
        }
        let reply = db.labels.label(&conn.call(method, Value::Array(params)));
        let (kind, v) = reply_of(&reply);
        if kind == "result" {
            self.monitors.push(RealMonitor {
                name: id.to_string(),
                current: id.to_string(),
                db,
                conn,
            });
        }
        Answer {
            notes: vec![],
            reply: (kind, v),
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
            .iter()
            .map(|n| note_of(&m.name, n, &m.db.labels))
            .collect();
        Answer {
            notes,
            reply: reply_of(&reply),
        }
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
