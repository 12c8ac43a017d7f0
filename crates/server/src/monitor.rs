//! Monitors as a session holds them: `monitor` (RFC 7047 §4.1.5, `update`), `monitor_cond`
//! (`update2`), `monitor_cond_since` (`update3`), and their ids, which are any JSON value
//! and unique per session (protocol reference §1.4, §2.5–§2.9).
//!
//! Turning a monitor request and a change set into `<table-updates>` is the engine's job
//! (`ovsdb::monitor`). Updates are produced by the apply hook while the applied state is
//! locked and queued on the session at once, which is what puts them before the reply to the
//! transaction that caused them.

use serde_json::Value;
use uuid::Uuid;

pub use ovsdb::monitor::MonitorVersion;

use crate::jsonrpc;

/// One monitor of a session.
pub struct Monitor {
    pub id: Value,
    pub db: String,
    pub compiled: ovsdb::monitor::Monitor,
}

impl Monitor {
    /// The notification for one applied transaction, if it concerns this monitor.
    pub fn notification(&self, txn_id: Uuid, changes: &ovsdb::ChangeSet) -> Option<Value> {
        let updates = self.compiled.update(changes)?;
        Some(self.wrap(txn_id, updates))
    }

    /// Wraps `<table-updates>` in this monitor's notification; `update3` carries the id of
    /// the transaction (all zeros for `_Server`, which keeps no history).
    pub fn wrap(&self, txn_id: Uuid, updates: Value) -> Value {
        let version = self.compiled.version();
        let params = match version {
            MonitorVersion::V1 | MonitorVersion::V2 => vec![self.id.clone(), updates],
            MonitorVersion::V3 => vec![self.id.clone(), Value::String(txn_id.to_string()), updates],
        };
        jsonrpc::notification(version.notification(), Value::Array(params))
    }
}
