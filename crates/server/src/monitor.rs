//! Monitors as a session holds them: `monitor` (RFC 7047 §4.1.5, `update`), `monitor_cond`
//! (`update2`), `monitor_cond_since` (`update3`), and their ids, which are any JSON value
//! and unique per session (protocol reference §1.4, §2.5–§2.9).
//!
//! Turning a monitor request and a change set into `<table-updates>` is the engine's job
//! (`ovsdb::monitor`); this module only needs a compiled request to answer the four questions
//! in [`CompiledMonitor`]. Updates are produced by the apply hook while the applied state is
//! locked and queued on the session at once, which is what puts them before the reply to the
//! transaction that caused them.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::jsonrpc;

/// Which notification a monitor sends, fixed by the method that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorVersion {
    /// `monitor`: `update` with `<table-updates>`.
    V1,
    /// `monitor_cond`: `update2` with `<table-updates2>`.
    V2,
    /// `monitor_cond_since`: `update3` with the transaction id and `<table-updates2>`.
    V3,
}

impl MonitorVersion {
    pub fn for_method(method: &str) -> Option<MonitorVersion> {
        match method {
            "monitor" => Some(MonitorVersion::V1),
            "monitor_cond" => Some(MonitorVersion::V2),
            "monitor_cond_since" => Some(MonitorVersion::V3),
            _ => None,
        }
    }
}

/// A parsed and validated monitor request for one database, as `ovsdb::monitor` provides it.
pub trait CompiledMonitor: Send {
    /// `<table-updates>` (v1) or `<table-updates2>` with `initial` rows (v2, v3) for the
    /// current state; `{}` when nothing is selected.
    fn initial(&self, db: &ovsdb::Database) -> Value;
    /// The updates one applied transaction causes for this monitor; `None` if nothing that it
    /// monitors changed (no notification is sent then).
    fn update(&self, db: &ovsdb::Database, changes: &ovsdb::ChangeSet) -> Option<Value>;
    /// `<table-updates2>` (as `insert`/`modify`/`delete`) for the transactions after a
    /// `monitor_cond_since` id, oldest first, merged per row.
    fn since(&self, db: &ovsdb::Database, changes: &[(Uuid, Arc<ovsdb::ChangeSet>)]) -> Value;
    /// `monitor_cond_change`: installs new conditions (`{"Table":[{"where":…}]}`; tables not
    /// named keep theirs) and returns the `insert`/`delete` updates for rows that enter or
    /// leave them, or the error object to reply with.
    fn change_condition(
        &mut self,
        db: &ovsdb::Database,
        requests: &Value,
    ) -> Result<Option<Value>, Value>;
}

/// Why a monitor request cannot be compiled.
#[derive(Debug)]
pub enum CompileError {
    /// The request is invalid: reply with this error object.
    Invalid(Value),
    /// This build has no monitor diff engine; the method is answered `"unknown method"`, which
    /// clients take as "fall back or give up" rather than a transient failure.
    Unsupported,
}

/// Compiles the third param of a `monitor*` request against a schema.
///
/// The diff engine (`ovsdb::monitor`) has not landed yet; until it does, every monitor
/// method is refused as unknown. Plugging it in is this one function.
pub fn compile(
    _schema: &ovsdb::DatabaseSchema,
    _requests: &Value,
    _version: MonitorVersion,
) -> Result<Box<dyn CompiledMonitor>, CompileError> {
    Err(CompileError::Unsupported)
}

/// One monitor of a session.
pub struct Monitor {
    pub id: Value,
    pub db: String,
    pub version: MonitorVersion,
    pub compiled: Box<dyn CompiledMonitor>,
}

impl Monitor {
    /// The notification for one applied transaction, if it concerns this monitor.
    pub fn notification(
        &self,
        db: &ovsdb::Database,
        txn_id: Uuid,
        changes: &ovsdb::ChangeSet,
    ) -> Option<Value> {
        let updates = self.compiled.update(db, changes)?;
        Some(self.wrap(txn_id, updates))
    }

    /// Wraps `<table-updates>` in this monitor's notification.
    pub fn wrap(&self, txn_id: Uuid, updates: Value) -> Value {
        match self.version {
            MonitorVersion::V1 => {
                jsonrpc::notification("update", Value::Array(vec![self.id.clone(), updates]))
            }
            MonitorVersion::V2 => {
                jsonrpc::notification("update2", Value::Array(vec![self.id.clone(), updates]))
            }
            MonitorVersion::V3 => jsonrpc::notification(
                "update3",
                Value::Array(vec![
                    self.id.clone(),
                    Value::String(txn_id.to_string()),
                    updates,
                ]),
            ),
        }
    }
}
