//! Monitors as a session holds them: `monitor` (RFC 7047 §4.1.5, `update`), `monitor_cond`
//! (`update2`), `monitor_cond_since` (`update3`), and their ids, which are any JSON value
//! and unique per session (docs/ovsdb-protocol.md §1.4, §2.5–§2.9).
//!
//! Turning a monitor request and a change set into `<table-updates>` is the engine's job
//! (`ovsdb::monitor`). Updates are produced by the apply hook while the applied state is
//! locked and queued on the session at once, which is what puts them before the reply to the
//! transaction that caused them. Monitors that ask for the same thing (the same tables,
//! columns, select flags and conditions) share one `<table-updates>` per transaction, built
//! and serialised once ([`SharedUpdates`]), as ovsdb-server's monitor groups do: many
//! identical clients then cost little more than one.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

pub use ovsdb::monitor::MonitorVersion;

use crate::jsonrpc;

/// One monitor of a session.
pub struct Monitor {
    pub id: Value,
    pub db: String,
    compiled: Arc<ovsdb::monitor::Monitor>,
    /// A hash of `compiled`, to find monitors asking for the same thing quickly (equality is
    /// still checked before an update is shared).
    fingerprint: u64,
}

pub(crate) fn fingerprint(m: &ovsdb::monitor::Monitor) -> u64 {
    // The engine's monitor has no `Hash` (conditions hold reals); its `Debug` text names every
    // field, in a fixed order (B-trees and vectors).
    let mut h = std::hash::DefaultHasher::new();
    format!("{m:?}").hash(&mut h);
    h.finish()
}

impl Monitor {
    pub fn new(id: Value, db: String, compiled: ovsdb::monitor::Monitor) -> Monitor {
        let fingerprint = fingerprint(&compiled);
        Monitor::shared(id, db, Arc::new(compiled), fingerprint)
    }

    pub(crate) fn shared(
        id: Value,
        db: String,
        compiled: Arc<ovsdb::monitor::Monitor>,
        fingerprint: u64,
    ) -> Monitor {
        Monitor {
            id,
            db,
            compiled,
            fingerprint,
        }
    }

    /// `monitor_cond_change`: the engine's answer for the new conditions (see
    /// [`ovsdb::monitor::Monitor::change_conditions`]).
    pub fn change_conditions(
        &mut self,
        state: &ovsdb::Database,
        requests: &Value,
    ) -> Result<Option<Value>, ovsdb::OvsdbError> {
        let result = Arc::make_mut(&mut self.compiled).change_conditions(state, requests);
        self.fingerprint = fingerprint(&self.compiled);
        result
    }

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

    /// The encoded notification (what [`wrap`](Self::wrap) then `jsonrpc::encode` give, byte
    /// for byte) around `updates`, the already serialised `<table-updates>`.
    fn wrap_encoded(&self, txn_id: Uuid, updates: &[u8]) -> Vec<u8> {
        let version = self.compiled.version();
        let mut out = Vec::with_capacity(updates.len() + 96);
        out.extend_from_slice(br#"{"id":null,"method":""#);
        out.extend_from_slice(version.notification().as_bytes());
        out.extend_from_slice(br#"","params":["#);
        out.extend_from_slice(&jsonrpc::encode(&self.id));
        out.push(b',');
        if version == MonitorVersion::V3 {
            out.push(b'"');
            out.extend_from_slice(txn_id.to_string().as_bytes());
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(updates);
        out.extend_from_slice(b"]}");
        out
    }
}

/// The reply to a monitor request whose result is the initial contents `initial`, already
/// serialised and shared with other sessions: `jsonrpc::encode(&reply(id, result))` byte for
/// byte, where `result` is `initial` itself, or `[false, "<last_id>", initial]` for
/// `monitor_cond_since` (`found` false: the whole contents).
pub(crate) fn initial_reply(
    id: &Value,
    since_last_id: Option<Uuid>,
    initial: Arc<[u8]>,
) -> Vec<crate::outbox::Chunk> {
    use crate::outbox::Chunk;
    let mut head = Vec::with_capacity(96);
    head.extend_from_slice(br#"{"id":"#);
    head.extend_from_slice(&jsonrpc::encode(id));
    head.extend_from_slice(br#","result":"#);
    let tail: &[u8] = match since_last_id {
        Some(last) => {
            head.extend_from_slice(b"[false,\"");
            head.extend_from_slice(last.to_string().as_bytes());
            head.extend_from_slice(b"\",");
            br#"],"error":null}"#
        }
        None => br#","error":null}"#,
    };
    vec![
        Chunk::Owned(head),
        Chunk::Shared(initial),
        Chunk::Owned(tail.to_vec()),
    ]
}

/// The `<table-updates>` of one applied transaction, serialised once per distinct monitor and
/// shared by every monitor asking for the same thing.
pub(crate) struct SharedUpdates<'c> {
    txn_id: Uuid,
    changes: &'c ovsdb::ChangeSet,
    built: HashMap<u64, Vec<Built>>,
}

/// A distinct monitor and its serialised `<table-updates>` (`None`: the transaction does not
/// concern it).
type Built = (Arc<ovsdb::monitor::Monitor>, Option<Arc<[u8]>>);

impl<'c> SharedUpdates<'c> {
    pub(crate) fn new(txn_id: Uuid, changes: &'c ovsdb::ChangeSet) -> Self {
        SharedUpdates {
            txn_id,
            changes,
            built: HashMap::new(),
        }
    }

    /// The encoded notification of `m` for this transaction, if it concerns `m`.
    pub(crate) fn notification(&mut self, m: &Monitor) -> Option<Vec<u8>> {
        let group = self.built.entry(m.fingerprint).or_default();
        let found = group
            .iter()
            .find(|(rep, _)| Arc::ptr_eq(rep, &m.compiled) || **rep == *m.compiled);
        let updates = match found {
            Some((_, updates)) => updates.clone(),
            None => {
                let updates = m
                    .compiled
                    .update(self.changes)
                    .map(|u| Arc::from(jsonrpc::encode(&u)));
                group.push((m.compiled.clone(), updates.clone()));
                updates
            }
        };
        Some(m.wrap_encoded(self.txn_id, &updates?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn initial_replies_with_shared_contents_equal_the_value_path_byte_for_byte() {
        let initial =
            json!({"A": {"0000000a-0000-0000-0000-000000000000": {"initial": {"s": "x\"y"}}}});
        let shared: Arc<[u8]> = Arc::from(jsonrpc::encode(&initial));
        let last = Uuid::from_u128(7);
        for id in [json!(1), json!("a\"b"), json!(null), json!([1, {"k": 2}])] {
            for since in [None, Some(last)] {
                let chunks = initial_reply(&id, since, shared.clone());
                let got: Vec<u8> = chunks.iter().flat_map(|c| c.as_ref().to_vec()).collect();
                let result = match since {
                    Some(l) => json!([false, l.to_string(), initial.clone()]),
                    None => initial.clone(),
                };
                let want = jsonrpc::encode(&jsonrpc::reply(id.clone(), result));
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want).unwrap()
                );
            }
        }
    }

    #[test]
    fn encoded_notifications_equal_the_value_path_byte_for_byte() {
        let schema = ovsdb::DatabaseSchema::from_json(&json!({
            "name": "T", "version": "1.0.0",
            "tables": {"A": {"columns": {"n": {"type": "integer"}, "s": {"type": "string"}}}}
        }))
        .unwrap();
        let schema = Arc::new(schema);
        let mut db = ovsdb::Database::new(schema.clone());
        struct Env(u128);
        impl ovsdb::TxnEnv for Env {
            fn new_uuid(&mut self) -> Uuid {
                self.0 += 1;
                Uuid::from_u128(self.0)
            }
            fn has_lock(&self, _: &str) -> bool {
                false
            }
            fn wait_elapsed_ms(&self) -> u64 {
                0
            }
        }
        let out = db.transact(
            &[json!({"op": "insert", "table": "A", "row": {"n": 7, "s": "x\"y"}})],
            &mut Env(0),
        );
        let changes = out.changes.expect("a change");
        let txn = Uuid::from_u128(42);
        let requests = json!({"A": {"columns": ["n", "s"]}});
        let ids = [json!(null), json!("mon"), json!(["a", {"b": 1}])];
        for version in [MonitorVersion::V1, MonitorVersion::V2, MonitorVersion::V3] {
            let mut shared = SharedUpdates::new(txn, &changes);
            for id in &ids {
                let compiled = ovsdb::monitor::Monitor::new(&schema, version, &requests).unwrap();
                let m = Monitor::new(id.clone(), "T".into(), compiled);
                let expected = jsonrpc::encode(&m.notification(txn, &changes).unwrap());
                assert_eq!(
                    String::from_utf8(shared.notification(&m).unwrap()).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{version:?} {id}"
                );
            }
            // The three equal monitors were built once.
            assert_eq!(shared.built.values().map(Vec::len).sum::<usize>(), 1);
        }
    }

    #[test]
    fn monitors_asking_for_different_things_are_not_shared() {
        let schema = Arc::new(
            ovsdb::DatabaseSchema::from_json(&json!({
                "name": "T", "version": "1.0.0",
                "tables": {"A": {"columns": {"n": {"type": "integer"}}}}
            }))
            .unwrap(),
        );
        let a = ovsdb::monitor::Monitor::new(
            &schema,
            MonitorVersion::V2,
            &json!({"A": {"where": [["n", "==", 1]]}}),
        )
        .unwrap();
        let b = ovsdb::monitor::Monitor::new(
            &schema,
            MonitorVersion::V2,
            &json!({"A": {"where": [["n", "==", 2]]}}),
        )
        .unwrap();
        let (a, b) = (
            Monitor::new(json!(1), "T".into(), a),
            Monitor::new(json!(1), "T".into(), b),
        );
        assert_ne!(a.fingerprint, b.fingerprint);
        assert!(*a.compiled != *b.compiled);
    }
}
