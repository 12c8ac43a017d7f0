//! Connects the OVSDB front end (halyard-server's `Backend`) to a Raft member (halyard-raft).
//!
//! Also decides what `_Server` reports: in active-active mode (the default) every member that
//! hears a leader says `leader: true`, because every member serves linearizable reads and
//! writes — which is what leader-only clients (ovn-nbctl, the Python IDL, ovsdbapp) look for.
//! `--strict-leader` reports the true Raft role instead.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use halyard_raft::{ApplyObserver, DbState, Member, MemberError, Outcome, Transaction};
use halyard_server::backend::{
    ApplyHook, Backend, BackendError, DbView, LockEvent, ServerDbStatus, SessionKey, Transacted,
    TxnHistory,
};
use serde_json::Value;
use uuid::Uuid;

pub struct MemberBackend {
    member: Arc<Member>,
    strict_leader: bool,
    /// Sessions of this member that asked for a lock and are still connected: if their place in
    /// a lock's queue is expired (their lease ran out while they lived on), they are queued again.
    lock_sessions: Arc<Mutex<HashSet<Uuid>>>,
    /// `_Server.schema` of each database, built once per schema (it is asked for on every
    /// applied index, and re-serialising OVN's schemas each time cost more than the applies).
    schemas: Mutex<std::collections::HashMap<String, SchemaText>>,
}

/// A schema and its `_Server` `schema` column text.
type SchemaText = (Arc<ovsdb::DatabaseSchema>, Arc<str>);

impl MemberBackend {
    pub fn new(member: Arc<Member>, strict_leader: bool) -> MemberBackend {
        MemberBackend {
            member,
            strict_leader,
            lock_sessions: Arc::default(),
            schemas: Mutex::default(),
        }
    }

    fn schema_text(&self, name: &str, schema: &Arc<ovsdb::DatabaseSchema>) -> Arc<str> {
        let mut cache = self.schemas.lock().unwrap();
        match cache.get(name) {
            Some((s, text)) if Arc::ptr_eq(s, schema) => text.clone(),
            _ => {
                let text = halyard_server::server_db::schema_column_text(&schema.to_json());
                cache.insert(name.to_string(), (schema.clone(), text.clone()));
                text
            }
        }
    }
}

struct History<'a>(&'a DbState);

impl TxnHistory for History<'_> {
    fn since(&self, txn_id: &Uuid) -> Option<Vec<(Uuid, Arc<ovsdb::ChangeSet>)>> {
        self.0.changes_since(txn_id)
    }
}

/// How often per election timeout `_Server` is checked for connectivity that moved with time
/// alone (`connected` turns false some time after the last contact with a quorum).
const SERVER_STATUS_TICKS_PER_ELECTION: u64 = 5;

/// Relays the state machine's notifications to the front end's hook.
struct Observer {
    hook: Arc<dyn ApplyHook>,
    member: Arc<Member>,
    lock_sessions: Arc<Mutex<HashSet<Uuid>>>,
}

impl ApplyObserver for Observer {
    fn applied(&self, db: &str, state: &ovsdb::Database, txn_id: Uuid, changes: &ovsdb::ChangeSet) {
        self.hook.applied(db, state, txn_id, changes);
    }

    fn lock_event(&self, session: Uuid, lock: &str, event: halyard_raft::LockEvent) {
        let key = SessionKey(session);
        match event {
            halyard_raft::LockEvent::Locked => self.hook.lock_event(key, lock, LockEvent::Locked),
            halyard_raft::LockEvent::Stolen => self.hook.lock_event(key, lock, LockEvent::Stolen),
            halyard_raft::LockEvent::Expired { owned } => {
                if !self.lock_sessions.lock().unwrap().contains(&session) {
                    return; // not ours, or gone
                }
                if owned {
                    self.hook.lock_event(key, lock, LockEvent::Stolen);
                }
                // OVSDB's `lock` keeps a session queued until it unlocks: queue it again.
                let member = self.member.clone();
                let lock = lock.to_string();
                tokio::spawn(async move {
                    if let Err(e) = member.lock(session, &lock, false).await {
                        tracing::warn!(%lock, "could not re-queue an expired lock request: {e}");
                    }
                });
            }
        }
    }

    fn databases_changed(&self) {
        self.hook.server_status_changed();
    }

    fn database_replaced(&self, db: &str) {
        self.hook.database_replaced(db);
    }

    fn index_applied(&self, _index: u64) {
        self.hook.server_index_changed();
    }
}

fn backend_error(e: MemberError) -> BackendError {
    match e {
        MemberError::UnknownDb(db) => BackendError::UnknownDatabase(db),
        // Retryable: nothing was committed when this is answered, and another try (here or on
        // another member) may commit. Flattened to `internal error` these made ovsdbapp give
        // up. (A write that reached a leader which then lost its quorum can still be committed
        // by the next leader: see docs/protocol-notes.md.)
        e @ (MemberError::NoLeader(_)
        | MemberError::NoReadIndex(_)
        | MemberError::ApplyTimeout(_)
        | MemberError::BehindReadIndex { .. }
        | MemberError::ShuttingDown) => BackendError::Retry(format!("{e}; retry it")),
        other => BackendError::Internal(other.to_string()),
    }
}

impl Backend for MemberBackend {
    fn db_names(&self) -> Vec<String> {
        self.member.db_names()
    }

    fn with_db(&self, db: &str, f: &mut dyn FnMut(&DbView<'_>)) -> bool {
        self.member.with_state(|s| match s.dbs.get(db) {
            Some(d) => {
                f(&DbView {
                    db: &d.db,
                    last_txn_id: d.last_txn_id,
                    history: &History(d),
                });
                true
            }
            None => false,
        })
    }

    fn set_apply_hook(&self, hook: Arc<dyn ApplyHook>) {
        self.member.set_observer(Arc::new(Observer {
            hook: hook.clone(),
            member: self.member.clone(),
            lock_sessions: self.lock_sessions.clone(),
        }));
        // `_Server` shows the role, connectivity and applied index. The index is the observer's
        // (`index_applied`); role, term, leader and membership changes are refreshed here, and a
        // tick catches connectivity, which moves with time alone (no contact for a while).
        let mut changes = self.member.subscribe_changes();
        let member = self.member.clone();
        tokio::spawn(async move {
            loop {
                let tick = Duration::from_millis(
                    (member.election_timeout_ms() / SERVER_STATUS_TICKS_PER_ELECTION).max(10),
                );
                tokio::select! {
                    alive = changes.changed() => {
                        if !alive { break }
                        hook.server_status_changed();
                    }
                    _ = tokio::time::sleep(tick) => hook.server_index_changed(),
                }
            }
        });
    }

    fn transact(
        &self,
        db: String,
        ops: Arc<Vec<Value>>,
        session: SessionKey,
        rbac: Option<ovsdb::RbacIdentityBuf>,
        wait_elapsed_ms: u64,
    ) -> BoxFuture<'static, Result<Transacted, BackendError>> {
        let member = self.member.clone();
        async move {
            // Timed for /metrics (each run of a blocked transaction counts); a write on a
            // follower is forwarded to the leader.
            let kind = crate::metrics::TxnKind::of(&ops);
            let forwarded = !member.status().is_leader;
            let started = std::time::Instant::now();
            let result = member
                .transact(&db, &ops, session.0, rbac, wait_elapsed_ms)
                .await;
            crate::metrics::transaction(kind, forwarded, started.elapsed(), result.is_ok());
            match result.map_err(backend_error)? {
                Transaction::Done(result) => Ok(Transacted::Done(result)),
                Transaction::Blocked { retry_in_ms } => Ok(Transacted::Blocked { retry_in_ms }),
            }
        }
        .boxed()
    }

    fn read_barrier(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        let member = self.member.clone();
        async move { member.read_barrier().await.map_err(backend_error) }.boxed()
    }

    fn convert(
        &self,
        db: String,
        schema: Value,
    ) -> BoxFuture<'static, Result<Result<(), Value>, BackendError>> {
        let member = self.member.clone();
        async move { member.convert(&db, &schema).await.map_err(backend_error) }.boxed()
    }

    fn lock(
        &self,
        session: SessionKey,
        name: String,
        steal: bool,
    ) -> BoxFuture<'static, Result<bool, BackendError>> {
        self.lock_sessions.lock().unwrap().insert(session.0);
        let member = self.member.clone();
        async move {
            match member
                .lock(session.0, &name, steal)
                .await
                .map_err(backend_error)?
            {
                Outcome::Lock { locked } => Ok(locked),
                Outcome::LockRefused { details } => Err(BackendError::LockRefused(details)),
                other => Err(BackendError::Internal(format!(
                    "unexpected lock outcome {other:?}"
                ))),
            }
        }
        .boxed()
    }

    fn unlock(
        &self,
        session: SessionKey,
        name: String,
    ) -> BoxFuture<'static, Result<(), BackendError>> {
        let member = self.member.clone();
        async move {
            match member
                .unlock(session.0, &name)
                .await
                .map_err(backend_error)?
            {
                Outcome::Unlocked => Ok(()),
                Outcome::LockRefused { details } => Err(BackendError::LockRefused(details)),
                other => Err(BackendError::Internal(format!(
                    "unexpected unlock outcome {other:?}"
                ))),
            }
        }
        .boxed()
    }

    fn session_closed(&self, session: SessionKey) {
        self.lock_sessions.lock().unwrap().remove(&session.0);
        // Only sessions that hold or wait for a lock leave replicated state behind.
        if !self.member.with_state(|s| s.locks.involves(session.0)) {
            return;
        }
        let member = self.member.clone();
        tokio::spawn(async move {
            if let Err(e) = member.sessions_closed(vec![session.0]).await {
                tracing::warn!(session = %session.0, "could not release the locks of a closed session: {e}");
            }
        });
    }

    fn is_raft_leader(&self) -> bool {
        self.member.status().is_leader
    }

    fn raft_address(&self) -> Option<String> {
        Some(self.member.identity().raft_addr)
    }

    fn server_rows(&self) -> Vec<ServerDbStatus> {
        let status = self.member.status();
        // Strict mode reports what ovsdb-server would; active-active keeps saying "go ahead"
        // through a short election, since writes and reads then wait for the next leader.
        let (connected, leader) = if self.strict_leader {
            (status.connected, status.is_leader)
        } else {
            let serving = self.member.serving();
            (serving, serving)
        };
        self.member.with_state(|s| {
            s.dbs
                .iter()
                .map(|(name, d)| ServerDbStatus {
                    name: name.clone(),
                    model: "clustered".to_string(),
                    connected,
                    leader,
                    schema: Some(self.schema_text(name, d.db.schema())),
                    cid: Some(status.identity.cluster_id),
                    sid: Some(status.identity.server_id),
                    index: Some(status.applied_index as i64),
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retryable_member_errors_keep_their_kind() {
        for e in [
            MemberError::NoLeader(Duration::from_secs(10)),
            MemberError::NoReadIndex(halyard_raft::ReadIndexError::NoLeader),
            MemberError::ApplyTimeout(Duration::from_secs(10)),
            MemberError::BehindReadIndex {
                index: 7,
                wait: Duration::from_secs(10),
            },
            MemberError::ShuttingDown,
        ] {
            let text = e.to_string();
            match backend_error(e) {
                BackendError::Retry(details) => assert!(details.starts_with(&text), "{details}"),
                other => panic!("{text} became {other:?}"),
            }
        }
        assert!(matches!(
            backend_error(MemberError::UnexpectedOutcome("x".into())),
            BackendError::Internal(_)
        ));
    }
}
