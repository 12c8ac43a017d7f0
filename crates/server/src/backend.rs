//! The boundary between the JSON-RPC front end and the replicated state behind it.
//!
//! The front end knows nothing of Raft: it submits transactions and lock operations through
//! [`Backend`], reads the applied state through [`Backend::with_db`], and is told about every
//! applied transaction, lock change and `_Server` status change through the [`ApplyHook`] it
//! installs. `crates/raft` implements `Backend`. The ordering guarantee clients depend on
//! (a session receives the monitor updates caused by its own write before the `transact`
//! reply, docs/ovsdb-protocol.md §1.5) rests on one rule stated on [`Backend::transact`].

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use uuid::Uuid;

/// Identifies one client session, globally: unique across members and restarts, so the
/// replicated lock table can name lock owners independently of the member that serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub Uuid);

impl SessionKey {
    pub fn random() -> SessionKey {
        SessionKey(Uuid::new_v4())
    }
}

/// A lock change for a session, told through [`ApplyHook::lock_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEvent {
    /// The session was waiting for the lock and now owns it (`locked` notification).
    Locked,
    /// Another session stole the lock from it (`stolen` notification).
    Stolen,
}

/// Why the backend could not serve a request. Each maps to the top-level error ovsdb-server
/// gives in the same situation (docs/ovsdb-protocol.md §1.7).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error("unknown database {0}")]
    UnknownDatabase(String),
    /// The member has no usable copy of the database yet (still joining its cluster).
    #[error("database {0} is not yet available")]
    NotAvailable(String),
    /// The request was cancelled (database removed or converted, member shutting down);
    /// answered with the bare string `"canceled"`, which clients treat as "try again".
    #[error("canceled")]
    Canceled,
    /// A lock request refused with ovsdb-server's wording, e.g.
    /// `must issue "unlock" before new "lock"`; answered as a `syntax error`.
    #[error("{0}")]
    LockRefused(String),
    /// The request could not be carried out now but may succeed if retried (no leader could
    /// commit it in time, the member is shutting down); nothing of it was applied. A
    /// `transact` gets `{"error":"timed out"}` as its first operation's result, which the C
    /// and Python IDLs (hence ovsdbapp) retry (`TXN_TRY_AGAIN`); other requests get the
    /// bare `"canceled"`, which the C IDL retries. See docs/protocol-notes.md.
    #[error("{0}")]
    Retry(String),
    /// Anything else; answered as an `internal error` object with this text as details.
    #[error("{0}")]
    Internal(String),
}

/// One row of `_Server.Database` as this member sees a database (docs/ovsdb-protocol.md §6.1,
/// §6.2). The front end adds the row for `_Server` itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDbStatus {
    pub name: String,
    /// `"standalone"`, `"clustered"` or `"relay"`.
    pub model: String,
    /// In contact with a quorum: the data can be trusted as current and writes can commit.
    pub connected: bool,
    pub leader: bool,
    /// The `schema` column: the schema as `get_schema` returns it, as sorted-key JSON text
    /// ([`schema_column_text`](crate::server_db::schema_column_text)); `None` while the member
    /// is joining. Shared, because it is compared and copied on every refresh of `_Server`.
    pub schema: Option<Arc<str>>,
    /// Cluster id; the all-zero UUID while joining, as ovsdb-server reports it.
    pub cid: Option<Uuid>,
    /// This member's server id in the cluster.
    pub sid: Option<Uuid>,
    /// The applied log index (monotonic, the same meaning on every member).
    pub index: Option<i64>,
}

/// Recent committed transactions of one database, for `monitor_cond_since`.
pub trait TxnHistory {
    /// The changes committed after `txn_id`, oldest first; empty if `txn_id` is the latest
    /// transaction, `None` if it is not in the history.
    fn since(&self, txn_id: &Uuid) -> Option<Vec<(Uuid, Arc<ovsdb::ChangeSet>)>>;
}

/// The applied state of one database at one point in the log.
pub struct DbView<'a> {
    pub db: &'a ovsdb::Database,
    /// The id of the last transaction applied to this database (all zeros before the first).
    pub last_txn_id: Uuid,
    pub history: &'a dyn TxnHistory,
}

/// Installed by the front end; called by the backend on every member.
pub trait ApplyHook: Send + Sync {
    /// Called synchronously, in log order, right after a transaction that changed `db` was
    /// applied, while the applied state is still locked (so no `with_db` runs in between).
    /// Must not block: it only queues monitor updates on sessions.
    fn applied(&self, db: &str, state: &ovsdb::Database, txn_id: Uuid, changes: &ovsdb::ChangeSet);
    /// A lock changed hands for a session served by this member.
    fn lock_event(&self, session: SessionKey, lock: &str, event: LockEvent);
    /// `db` was removed, converted to a new schema, or had its whole state replaced (a
    /// snapshot install): monitors on it cannot continue with diffs. Called after the
    /// replacement, with the state locked. Change-aware sessions get `monitor_canceled` for
    /// their monitors on `db` and `"canceled"` for their pending transactions on it; other
    /// sessions that monitor it or wait on it are disconnected, so their clients start over
    /// (what ovsdb-server does after `convert`, docs/ovsdb-protocol.md §2.11, §2.12).
    fn database_replaced(&self, db: &str);
    /// `_Server` rows may have changed (role, connectivity, index, schema, databases added or
    /// removed). May be called with backend locks held: the front end only schedules a
    /// refresh and calls [`Backend::server_rows`] later, from its own task.
    fn server_status_changed(&self);
    /// The applied index moved, so `_Server`'s `index` column did. Cheaper than
    /// [`ApplyHook::server_status_changed`] when nobody watches `_Server`: the refresh then waits
    /// for the next read of `_Server` instead of waking a task for every write.
    fn server_index_changed(&self) {
        self.server_status_changed();
    }
}

/// What one run of a transaction gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Transacted {
    /// The reply's `result` array (committed, failed or read).
    Done(Value),
    /// A `wait` does not hold yet: nothing was changed. `retry_in_ms`: when its own timeout
    /// passes, counted from the elapsed time the run was given (`None`: it has none).
    Blocked { retry_in_ms: Option<u64> },
}

/// The replicated databases as the front end uses them. Object safe.
pub trait Backend: Send + Sync + 'static {
    /// The data databases (not `_Server`), sorted by name.
    fn db_names(&self) -> Vec<String>;

    /// Runs `f` with the applied state of `db`, atomically with respect to applies and the
    /// apply hook (under the state machine's read lock). Returns false, without calling
    /// `f`, if there is no such database (or it is not available yet).
    fn with_db(&self, db: &str, f: &mut dyn FnMut(&DbView<'_>)) -> bool;

    /// Installs the hook. Called once, before any session exists.
    fn set_apply_hook(&self, hook: Arc<dyn ApplyHook>);

    /// Runs one `transact` (`ops` are the params after the database name; shared, so a
    /// blocked transaction run again, or one of 100,000 rows, is not copied) once, with
    /// `wait_elapsed_ms` as the time its `wait` operations have waited (see `trigger`, which
    /// re-runs a blocked one). Resolves to the reply's `result` array once the transaction has
    /// been applied on *this* member and the apply hook has run for it, so the monitor updates
    /// it caused are queued on every session before the front end can queue the reply.
    /// Read-only transactions may resolve without an apply (after a read barrier). A
    /// transaction that changed nothing resolves too, without a hook call; a blocked one
    /// resolves to [`Transacted::Blocked`]. Dropping the future abandons the wait for the
    /// reply, not necessarily the transaction.
    fn transact(
        &self,
        db: String,
        ops: Arc<Vec<Value>>,
        session: SessionKey,
        rbac: Option<ovsdb::RbacIdentityBuf>,
        wait_elapsed_ms: u64,
    ) -> BoxFuture<'static, Result<Transacted, BackendError>>;

    /// Resolves once this member has applied everything committed before the call (a read
    /// index), so state read afterwards is not older than any write acknowledged anywhere.
    fn read_barrier(&self) -> BoxFuture<'static, Result<(), BackendError>>;

    /// Online schema conversion (`convert`) of `db` to `schema` (already parsed and checked to
    /// be valid and named `db`). Resolves once the converted database is applied on this
    /// member (after `ApplyHook::database_replaced`); `Ok(Err(error object))` when the data
    /// does not fit the new schema.
    fn convert(
        &self,
        db: String,
        schema: Value,
    ) -> BoxFuture<'static, Result<Result<(), Value>, BackendError>>;

    /// `lock` (`steal == false`) or `steal`. Resolves to whether the session now owns the
    /// lock. A session that must wait is told later through `ApplyHook::lock_event`.
    fn lock(
        &self,
        session: SessionKey,
        name: String,
        steal: bool,
    ) -> BoxFuture<'static, Result<bool, BackendError>>;

    /// Releases the lock, or leaves its queue of waiters.
    fn unlock(
        &self,
        session: SessionKey,
        name: String,
    ) -> BoxFuture<'static, Result<(), BackendError>>;

    /// The session is gone: release every lock it holds or waits for and drop its pending
    /// work. Must not block; the backend does the rest in the background.
    fn session_closed(&self, session: SessionKey);

    /// The `_Server.Database` rows for the data databases, as this member sees them now.
    fn server_rows(&self) -> Vec<ServerDbStatus>;

    /// Whether this member is the Raft leader now (`_Server.leader` may say true on every
    /// member in active-active mode). The leader alone writes the `status` of listeners from
    /// the database (see `remotes`).
    fn is_raft_leader(&self) -> bool {
        false
    }

    /// This member's Raft (member-to-member) address, which the `halyard_raft_address` method
    /// tells a client, so that tools given a client address can reach the member's Raft side.
    fn raft_address(&self) -> Option<String> {
        None
    }
}
