//! The reserved `_Server` database (ovsdb-server's `ovsdb/_server.ovsschema`,
//! docs/ovsdb-protocol.md §6): one `Database` row per database this member serves, plus the row for
//! `_Server` itself. It is a real engine database owned by this process. Each refresh from
//! [`Backend::server_rows`](crate::Backend::server_rows) is committed as an ordinary
//! transaction, so `_Server` monitors get `modify` updates exactly like data monitors, and
//! reads run through the engine. Clients may not write it: write operations are refused per
//! operation with `not allowed` (§5.6).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::backend::ServerDbStatus;
use crate::jsonrpc;

pub const SERVER_DB: &str = "_Server";

/// `_Server` schema 1.2.0, as ovsdb-server 3.1 returns it from `get_schema`.
pub const SERVER_SCHEMA: &str = r#"{"cksum":"3009684573 744","name":"_Server","tables":{"Database":{"columns":{"cid":{"type":{"key":"uuid","min":0}},"connected":{"type":"boolean"},"index":{"type":{"key":"integer","min":0}},"leader":{"type":"boolean"},"model":{"type":{"key":{"enum":["set",["clustered","relay","standalone"]],"type":"string"}}},"name":{"type":"string"},"schema":{"type":{"key":"string","min":0}},"sid":{"type":{"key":"uuid","min":0}}},"isRoot":true}},"version":"1.2.0"}"#;

struct Inner {
    db: ovsdb::Database,
    /// Row UUID of each database's row. A database removed and added again gets a new row.
    rows: BTreeMap<String, Uuid>,
    /// What each row was last set from, so a refresh writes only what changed (re-serialising
    /// a schema on every applied index would cost more than the apply itself).
    last: BTreeMap<String, ServerDbStatus>,
}

pub struct ServerDb {
    inner: Mutex<Inner>,
    schema_json: Value,
    schema_text: Arc<str>,
}

/// The `_Server.Database` `schema` column for a schema whose `get_schema` answer is `schema`:
/// its JSON text with keys sorted, as ovsdb-server writes it. Build it once per schema.
pub fn schema_column_text(schema: &Value) -> Arc<str> {
    jsonrpc::to_sorted_string(schema).into()
}

/// What `transact` on `_Server` needs from the session.
pub struct ServerTxn<'a> {
    pub has_lock: &'a dyn Fn(&str) -> bool,
    /// Milliseconds since the transaction arrived (0 on its first run).
    pub wait_elapsed_ms: u64,
}

/// A session's environment for transactions this process runs itself (`_Server`, and the
/// writes of a read-only session, which fail without committing anything).
pub(crate) struct Env<'a> {
    pub(crate) has_lock: &'a dyn Fn(&str) -> bool,
    pub(crate) wait_elapsed_ms: u64,
}

impl ovsdb::TxnEnv for Env<'_> {
    fn new_uuid(&mut self) -> Uuid {
        Uuid::new_v4()
    }
    fn has_lock(&self, lock: &str) -> bool {
        (self.has_lock)(lock)
    }
    fn wait_elapsed_ms(&self) -> u64 {
        self.wait_elapsed_ms
    }
}

#[derive(Debug, thiserror::Error)]
#[error("built-in _Server schema rejected by the engine: {0:?}")]
pub struct SchemaError(ovsdb::OvsdbError);

impl ServerDb {
    pub fn new() -> Result<ServerDb, SchemaError> {
        let raw: Value = serde_json::from_str(SERVER_SCHEMA).expect("_Server schema is JSON");
        let schema = Arc::new(ovsdb::DatabaseSchema::from_json(&raw).map_err(SchemaError)?);
        let schema_json = schema.to_json();
        let schema_text = schema_column_text(&schema_json);
        Ok(ServerDb {
            inner: Mutex::new(Inner {
                db: ovsdb::Database::new_reserved(schema),
                rows: BTreeMap::new(),
                last: BTreeMap::new(),
            }),
            schema_json,
            schema_text,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `get_schema` answer for `_Server`.
    pub fn schema_json(&self) -> Value {
        self.schema_json.clone()
    }

    /// Runs `f` on the current state, excluding refreshes (monitor creation on `_Server`).
    pub fn with_db<R>(&self, f: impl FnOnce(&ovsdb::Database) -> R) -> R {
        f(&self.lock().db)
    }

    /// Commits the rows `statuses` describe (plus `_Server`'s own row). If anything changed,
    /// `applied` is called with the change set while the state is still locked, so monitors
    /// see every change exactly once and in order.
    pub fn refresh(&self, statuses: &[ServerDbStatus], applied: &dyn Fn(&ovsdb::ChangeSet)) {
        let mut all: Vec<ServerDbStatus> = statuses.to_vec();
        all.push(ServerDbStatus {
            name: SERVER_DB.into(),
            model: "standalone".into(),
            connected: true,
            leader: true,
            schema: Some(self.schema_text.clone()),
            cid: None,
            sid: None,
            index: None,
        });
        let mut inner = self.lock();
        let mut ops = Vec::new();
        let mut inserted = Vec::new();
        for s in &all {
            let prev = inner.last.get(&s.name);
            if prev == Some(s) {
                continue;
            }
            let mut row = row_json(s, prev.is_none_or(|p| p.schema != s.schema));
            match inner.rows.get(&s.name) {
                Some(uuid) => ops.push(json!({
                    "op": "update", "table": "Database",
                    "where": [["_uuid", "==", ["uuid", uuid.to_string()]]],
                    "row": row.take(),
                })),
                None => {
                    inserted.push((s.name.clone(), ops.len()));
                    ops.push(json!({"op": "insert", "table": "Database", "row": row}));
                }
            }
        }
        let gone: Vec<String> = inner
            .rows
            .keys()
            .filter(|n| !all.iter().any(|s| &s.name == *n))
            .cloned()
            .collect();
        for name in &gone {
            let uuid = inner.rows[name];
            ops.push(json!({
                "op": "delete", "table": "Database",
                "where": [["_uuid", "==", ["uuid", uuid.to_string()]]],
            }));
        }
        if ops.is_empty() {
            return;
        }
        let mut env = Env {
            has_lock: &|_| false,
            wait_elapsed_ms: 0,
        };
        let outcome = inner.db.transact_privileged(&ops, &mut env);
        let results = outcome.result.as_array().cloned().unwrap_or_default();
        if results.len() != ops.len() || results.iter().any(|r| r.get("error").is_some()) {
            // Only a bug (e.g. a model string the schema's enum rejects) gets here; keep the
            // previous rows rather than serve half an update.
            tracing::error!("_Server refresh failed: {}", outcome.result);
            return;
        }
        for name in &gone {
            inner.rows.remove(name);
            inner.last.remove(name);
        }
        for s in all {
            inner.last.insert(s.name.clone(), s);
        }
        for (name, slot) in inserted {
            if let Some(uuid) = results[slot]["uuid"][1]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                inner.rows.insert(name, uuid);
            }
        }
        if let Some(changes) = &outcome.changes {
            applied(changes);
        }
    }

    /// Executes a client `transact` on `_Server`. The engine refuses writes on a reserved
    /// database per operation (`not allowed`, §5.6); reads, `wait`, `comment` and `assert`
    /// run normally. `Err(retry_in_ms)` when an unsatisfied `wait` blocks it: re-run it after
    /// the next refresh, or that many ms later when the blocking wait's own timeout passes.
    pub fn transact(&self, ops: &[Value], txn: &ServerTxn<'_>) -> Result<Value, Option<u64>> {
        let mut env = Env {
            has_lock: txn.has_lock,
            wait_elapsed_ms: txn.wait_elapsed_ms,
        };
        let outcome = self.lock().db.transact(ops, &mut env);
        if outcome.blocked {
            Err(outcome.retry_in_ms)
        } else {
            Ok(outcome.result)
        }
    }
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    match v {
        Some(v) => v.into(),
        None => json!(["set", []]),
    }
}

/// The row for `s`; the schema column only when `with_schema` (it changed).
fn row_json(s: &ServerDbStatus, with_schema: bool) -> Value {
    let mut row = json!({
        "name": s.name,
        "model": s.model,
        "connected": s.connected,
        "leader": s.leader,
        "cid": opt(s.cid.map(|u| json!(["uuid", u.to_string()]))),
        "sid": opt(s.sid.map(|u| json!(["uuid", u.to_string()]))),
        "index": opt(s.index),
    });
    if with_schema {
        row["schema"] = opt(s.schema.as_deref());
    }
    row
}
