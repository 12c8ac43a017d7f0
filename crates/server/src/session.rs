//! One client connection (ovsdb-server's `ovsdb/jsonrpc-server.c` session plus the
//! `lib/jsonrpc.c` session beneath it): reading and classifying messages, answering them,
//! the inactivity probe (docs/ovsdb-protocol.md §1.6), back-pressure and the backlog limit
//! (§1.5), pending transactions and `cancel` (§2.4).
//!
//! One task per connection reads and dispatches; a second one writes the outbox. Requests
//! are taken one at a time in order. Those that wait on the cluster (`transact`, `lock`,
//! `steal`, `unlock`) are parked so later requests are still answered: their replies may
//! come out of order, as with ovsdb-server.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::{AbortHandle, BoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use uuid::Uuid;

use crate::backend::{Backend, BackendError, LockEvent, SessionKey};
use crate::config::{ServerConfig, READ_PAUSE_BYTES};
use crate::framing::Framer;
use crate::hub::Hub;
use crate::jsonrpc::{self, Incoming};
use crate::monitor::{Monitor, SharedUpdates};
use crate::outbox::{CloseKind, Outbox};
use crate::server_db::ServerDb;

/// How long a closing session may take to flush its last replies to a client that does not
/// read them.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// First read buffer of a session: most sessions stay idle, so they start small.
const FIRST_READ: usize = 512;
/// Read buffer growth step once a session is busy (doubling for large messages).
const READ_CHUNK: usize = 4096;

/// What every session shares: set up once by [`crate::Server`].
pub(crate) struct Ctx {
    pub backend: Arc<dyn Backend>,
    pub config: ServerConfig,
    pub hub: Arc<Hub>,
    pub server_db: Arc<ServerDb>,
    pub server_id: Uuid,
    pub input: Arc<crate::input_budget::InputBudget>,
    /// The TLS configuration in use: the command line's, or the one built from `db:` options
    /// once they resolve (replaced when they change).
    pub tls: std::sync::RwLock<Option<Arc<crate::tls::TlsLoader>>>,
}

impl Ctx {
    pub(crate) fn tls(&self) -> Option<Arc<crate::tls::TlsLoader>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A lock as this session sees it.
pub(crate) struct LockEntry {
    pub owned: bool,
    /// The `lock`/`steal` request is not answered yet: events wait so they follow the reply.
    pub in_flight: bool,
    pub deferred: Vec<LockEvent>,
}

#[derive(Default)]
pub(crate) struct SessionState {
    pub monitors: Vec<Monitor>,
    pub locks: BTreeMap<String, LockEntry>,
    pub change_aware: bool,
    /// Databases replaced since the session task last looked (see `database_replaced`).
    pub replaced: Vec<String>,
}

/// What a listener gives the sessions it accepts: ovsdb-server's per-remote options
/// (`ovsdb_jsonrpc_options`), set from the command line or from a `Connection` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// Inactivity probe interval; `None` never probes (unix sockets, or 0 in the row).
    pub probe: Option<Duration>,
    /// Writes are refused with ovsdb-server's "not allowed ... read only mode" error.
    pub read_only: bool,
    /// The RBAC role of the listener (`Connection.role`); empty or absent: no RBAC.
    pub role: Option<String>,
    /// The client's identity for RBAC: its TLS certificate's common name.
    pub identity: Option<String>,
}

impl SessionOptions {
    /// The RBAC role and identity the engine checks this session's writes against; `None`
    /// when its listener has no role (no restriction, as in ovsdb-server).
    pub fn rbac(&self) -> Option<ovsdb::RbacIdentityBuf> {
        let role = self.role.as_ref().filter(|r| !r.is_empty())?;
        Some(ovsdb::RbacIdentityBuf {
            role: role.clone(),
            id: self.identity.clone(),
        })
    }
}

/// The part of a session that the apply hook reaches from other threads.
pub(crate) struct SessionShared {
    pub key: SessionKey,
    pub options: SessionOptions,
    /// The listener that accepted the session (0: none), so removing the listener closes it.
    pub listener: u64,
    pub out: Outbox,
    pub state: Mutex<SessionState>,
    /// Wakes the session task for work queued in `state` by other threads.
    pub wake: tokio::sync::Notify,
}

impl SessionShared {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push_updates(&self, db: &str, updates: &mut SharedUpdates<'_>) {
        let st = self.state();
        for m in st.monitors.iter().filter(|m| m.db == db) {
            if let Some(n) = updates.notification(m) {
                self.out.push_encoded(n);
            }
        }
    }

    /// Returns the notification's sequence number in the outbox when it went out at once
    /// (see [`Outbox::push_notice`]).
    pub(crate) fn lock_event(&self, name: &str, event: LockEvent) -> Option<u64> {
        let mut st = self.state();
        let Some(entry) = st.locks.get_mut(name) else {
            // Unlocked meanwhile: the event is stale.
            return None;
        };
        if entry.in_flight {
            entry.deferred.push(event);
            return None;
        }
        apply_lock_event(&self.out, name, entry, event)
    }

    /// Drops this session's monitors on a replaced database (telling a change-aware client
    /// with `monitor_canceled`, disconnecting any other) and asks the session task to deal
    /// with pending transactions on it. Returns whether monitors on `db` remain (never).
    pub(crate) fn database_replaced(&self, db: &str) -> bool {
        let mut st = self.state();
        let had_monitors = st.monitors.iter().any(|m| m.db == db);
        if st.change_aware {
            let (gone, keep): (Vec<Monitor>, Vec<Monitor>) = std::mem::take(&mut st.monitors)
                .into_iter()
                .partition(|m| m.db == db);
            st.monitors = keep;
            for m in gone {
                self.out.push(&jsonrpc::notification(
                    "monitor_canceled",
                    Value::Array(vec![m.id]),
                ));
            }
        } else if had_monitors {
            tracing::info!("disconnecting a session that monitors replaced database {db}");
            self.out.close(CloseKind::Flush);
        }
        st.replaced.push(db.to_string());
        drop(st);
        self.wake.notify_one();
        false
    }

    pub(crate) fn has_lock(&self, name: &str) -> bool {
        self.state().locks.get(name).is_some_and(|e| e.owned)
    }
}

/// Updates the entry and queues the `locked` or `stolen` notification. The entry stays after
/// `stolen` whatever the lock mode: ovsdb-server still wants an `unlock` before a new `lock`.
/// An event that does not change the entry sends nothing: a member cut off from its quorum
/// tells its owners `stolen` before the leader expires their locks, and the expiry, applied
/// later, must not tell them twice.
pub(crate) fn apply_lock_event(
    out: &Outbox,
    name: &str,
    entry: &mut LockEntry,
    event: LockEvent,
) -> Option<u64> {
    if entry.owned == (event == LockEvent::Locked) {
        return None;
    }
    let method = match event {
        LockEvent::Locked => {
            entry.owned = true;
            "locked"
        }
        LockEvent::Stolen => {
            entry.owned = false;
            "stolen"
        }
    };
    out.push_notice(&jsonrpc::notification(
        method,
        Value::Array(vec![Value::String(name.into())]),
    ))
}

/// The `transact` result for a [`BackendError::Retry`]: `timed out` on the first of its
/// `n_ops` operations and null for the rest, as when a verify `wait` fails, so that IDLs
/// retry the transaction.
pub(crate) fn retry_result(details: &str, n_ops: usize) -> Value {
    let mut r = vec![Value::Null; n_ops.max(1)];
    r[0] = jsonrpc::error_object("timed out", Some(details), None);
    Value::Array(r)
}

/// A parked request finishing.
pub(crate) enum Done {
    Transact {
        id: Value,
        key: String,
        result: Result<Value, BackendError>,
    },
    Lock {
        id: Value,
        name: String,
        params: Value,
        result: Result<bool, BackendError>,
    },
    Unlock {
        id: Value,
        params: Value,
        result: Result<(), BackendError>,
    },
    /// A finished request whose reply is ready (e.g. `convert`).
    Reply(Value),
    /// A transaction that was cancelled: nothing to send.
    Cancelled,
}

pub(crate) struct Session {
    pub ctx: Arc<Ctx>,
    pub shared: Arc<SessionShared>,
    pub pending: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Pending transactions by id (sorted-key JSON), with their database, for duplicate ids,
    /// `cancel` and replaced databases.
    pub pending_ids: HashMap<String, (Value, String, AbortHandle)>,
    framer: Framer,
    /// The framer's buffered bytes, charged to the member-wide input budget.
    input: crate::input_budget::Charge,
}

/// Why a session ended; logged.
#[derive(Debug)]
pub(crate) enum End {
    Eof,
    ReadError(std::io::Error),
    Protocol(String),
    Probe,
    Closed,
    /// The client must start over (a database it uses was replaced).
    Restart(String),
}

enum Event {
    Wake,
    Done(Done),
    Read(std::io::Result<usize>),
    Timer,
    Outbox,
}

/// Serves one connection until it ends. `probe` is the inactivity probe interval (`None`
/// for unix sockets).
pub(crate) async fn serve<S>(
    ctx: Arc<Ctx>,
    stream: S,
    peer: String,
    options: SessionOptions,
    listener: u64,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let key = SessionKey::random();
    let (rd, wr) = tokio::io::split(stream);
    let probe = options.probe;
    let shared = Arc::new(SessionShared {
        key,
        options,
        listener,
        out: Outbox::new(ctx.config.backlog_limit, peer.clone()),
        state: Mutex::new(SessionState::default()),
        wake: tokio::sync::Notify::new(),
    });
    ctx.hub.register(&shared);
    let writer = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.out.run_writer(wr).await })
    };
    let mut session = Session {
        framer: Framer::new(ctx.config.max_message_size),
        input: ctx.input.charge(),
        ctx: ctx.clone(),
        shared: shared.clone(),
        pending: FuturesUnordered::new(),
        pending_ids: HashMap::new(),
    };
    let end = session.run(Box::pin(rd), probe).await;
    match &end {
        End::Eof => tracing::debug!("{peer}: connection closed by peer"),
        End::ReadError(e) => tracing::info!("{peer}: receive error: {e}"),
        End::Protocol(why) => tracing::warn!("{peer}: {why}, disconnecting"),
        End::Probe => tracing::warn!(
            "{peer}: no response to inactivity probe after {} seconds, disconnecting",
            probe.map(|p| p.as_secs_f64()).unwrap_or(0.0)
        ),
        End::Closed => tracing::debug!("{peer}: session closed"),
        End::Restart(why) => tracing::info!("{peer}: disconnecting ({why})"),
    }
    // Dropping the parked futures drops the waits; the backend drops the rest.
    for (_, (_, _, h)) in session.pending_ids.drain() {
        h.abort();
    }
    drop(session);
    ctx.hub.unregister(key);
    ctx.backend.session_closed(key);
    shared.out.close(match end {
        End::Closed | End::Protocol(_) | End::Probe | End::Restart(_) => CloseKind::Flush,
        End::Eof | End::ReadError(_) => CloseKind::Abort,
    });
    // An aborted writer may be stuck in a write to a client that does not read.
    let abort = writer.abort_handle();
    if shared.out.is_aborted() || tokio::time::timeout(FLUSH_TIMEOUT, writer).await.is_err() {
        abort.abort();
    }
}

impl Session {
    async fn run(
        &mut self,
        mut rd: Pin<Box<dyn AsyncRead + Send>>,
        probe: Option<Duration>,
    ) -> End {
        let mut last_rx = Instant::now();
        let mut probe_sent: Option<Instant> = None;
        // Output draining counts as activity too (as in ovsdb-server's jsonrpc_session_run): a
        // client busy reading a large monitor reply sends nothing, yet is alive (and this
        // session may not read its answer to the probe while that reply fills the backlog).
        // Progress is bytes the socket took since the last check, less the probe's own (a dead
        // client's kernel may still take the few bytes of an echo), while output was waiting
        // then or is still waiting now. A reply written at once is no sign of life, as in
        // ovsdb-server, where only a draining backlog counts: the request before it was one.
        let mut sent_mark = self.shared.out.sent();
        let mut waiting_at_mark = self.shared.out.backlog();
        let mut probe_bytes = 0u64;
        loop {
            if self.shared.out.is_closed() {
                return End::Closed;
            }
            let may_read = self.shared.out.backlog() <= READ_PAUSE_BYTES;
            if may_read {
                match self.framer.next_message() {
                    Ok(Some(msg)) => {
                        if let Err(end) = self.handle(msg) {
                            return end;
                        }
                        // Give newly parked requests their first poll before the next
                        // message, so this session's work reaches the backend in order.
                        while let Some(Some(done)) = self.pending.next().now_or_never() {
                            self.complete(done);
                        }
                        continue;
                    }
                    Ok(None) => {
                        // Everything complete was taken: what is left is charged (less).
                        let _ = self.input.set(self.framer.buffered());
                    }
                    Err(e) => return End::Protocol(e.to_string()),
                }
            }
            let deadline = probe.map(|p| match probe_sent {
                Some(at) => at + p,
                None => last_rx + p,
            });
            let event = {
                let buf = self.framer.buffer_mut();
                if buf.capacity() == 0 {
                    buf.reserve(FIRST_READ);
                } else if buf.capacity() - buf.len() < FIRST_READ / 4 {
                    buf.reserve(READ_CHUNK.max(buf.len()));
                }
                let pending = &mut self.pending;
                let out = &self.shared.out;
                let wake = &self.shared.wake;
                tokio::select! {
                    biased;
                    _ = wake.notified() => Event::Wake,
                    Some(done) = pending.next(), if !pending.is_empty() => Event::Done(done),
                    _ = out.changed() => Event::Outbox,
                    r = read_some(&mut rd, buf), if may_read => Event::Read(r),
                    _ = sleep_until(deadline), if deadline.is_some() => Event::Timer,
                }
            };
            match event {
                Event::Wake => {
                    if let Err(end) = self.replaced_databases() {
                        return end;
                    }
                }
                Event::Done(done) => self.complete(done),
                Event::Outbox => {}
                Event::Read(Ok(0)) => return End::Eof,
                Event::Read(Ok(_)) => {
                    last_rx = Instant::now();
                    probe_sent = None;
                    if let Err(total) = self.input.set(self.framer.buffered()) {
                        return End::Protocol(format!(
                            "incomplete messages of all clients would hold {total} bytes, more \
                             than the input limit of {} bytes",
                            self.ctx.input.limit()
                        ));
                    }
                }
                // A TLS client that goes away without close_notify (a killed process, or one
                // that just closes its socket, as many do) has closed its connection: no error.
                Event::Read(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return End::Eof
                }
                Event::Read(Err(e)) => return End::ReadError(e),
                Event::Timer => {
                    let sent = self.shared.out.sent();
                    let waiting = waiting_at_mark > 0 || self.shared.out.backlog() > 0;
                    let progressed = waiting && sent - sent_mark > probe_bytes;
                    sent_mark = sent;
                    probe_bytes = 0;
                    if progressed {
                        waiting_at_mark = self.shared.out.backlog();
                        last_rx = Instant::now();
                        probe_sent = None;
                        continue;
                    }
                    if probe_sent.is_some() {
                        return End::Probe;
                    }
                    let probe = jsonrpc::encode(&jsonrpc::echo_probe());
                    probe_bytes = probe.len() as u64;
                    self.shared.out.push_encoded(probe);
                    waiting_at_mark = self.shared.out.backlog();
                    probe_sent = Some(Instant::now());
                }
            }
        }
    }

    /// Handles one received message. `Err` ends the session.
    fn handle(&mut self, msg: Value) -> Result<(), End> {
        match jsonrpc::parse(msg) {
            Err(e) => Err(End::Protocol(format!("received bad JSON-RPC message: {e}"))),
            Ok(Incoming::Request { id, method, params }) => {
                self.request(id, &method, params);
                Ok(())
            }
            Ok(Incoming::Notification { method, params }) => {
                // Unknown notifications are ignored, as ovsdb-server does.
                if method == "cancel" {
                    self.cancel(&params);
                }
                Ok(())
            }
            Ok(Incoming::Reply { id }) if id == Value::String("echo".into()) => Ok(()),
            Ok(Incoming::Reply { .. }) => Err(End::Protocol("received unexpected reply".into())),
            Ok(Incoming::ErrorReply { .. }) => {
                Err(End::Protocol("received unexpected error message".into()))
            }
        }
    }

    /// Pending transactions on replaced databases: answered `"canceled"` on a change-aware
    /// session; any other session is disconnected.
    fn replaced_databases(&mut self) -> Result<(), End> {
        let (dbs, aware) = {
            let mut st = self.shared.state();
            (std::mem::take(&mut st.replaced), st.change_aware)
        };
        for db in dbs {
            let hit: Vec<String> = self
                .pending_ids
                .iter()
                .filter(|(_, (_, d, _))| *d == db)
                .map(|(k, _)| k.clone())
                .collect();
            if hit.is_empty() {
                continue;
            }
            if !aware {
                return Err(End::Restart(format!(
                    "database {db} was replaced while a transaction on it was pending"
                )));
            }
            for k in hit {
                if let Some((id, _, h)) = self.pending_ids.remove(&k) {
                    h.abort();
                    self.send(jsonrpc::error_reply(id, Value::String("canceled".into())));
                }
            }
        }
        Ok(())
    }

    /// `cancel` notification (§2.4): the pending transaction is never answered, except with
    /// `"canceled"` on a change-aware session. Unknown ids are ignored.
    fn cancel(&mut self, params: &[Value]) {
        let [id] = params else { return };
        if let Some((id, _, handle)) = self.pending_ids.remove(&jsonrpc::to_sorted_string(id)) {
            handle.abort();
            if self.shared.state().change_aware {
                self.send(jsonrpc::error_reply(id, Value::String("canceled".into())));
            }
        }
    }

    pub(crate) fn send(&self, msg: Value) {
        self.shared.out.push(&msg);
    }

    pub(crate) fn park(&mut self, fut: BoxFuture<'static, Done>) {
        self.pending.push(fut);
    }

    fn complete(&mut self, done: Done) {
        match done {
            Done::Cancelled => {}
            Done::Reply(msg) => self.send(msg),
            Done::Transact { id, key, result } => {
                self.pending_ids.remove(&key);
                match result {
                    Ok(r) => self.send(jsonrpc::reply(id, r)),
                    Err(e) => self.send(jsonrpc::error_reply(
                        id,
                        backend_error(&e, "transact", None),
                    )),
                }
            }
            Done::Lock {
                id,
                name,
                params,
                result,
            } => {
                let mut st = self.shared.state();
                match result {
                    Ok(owned) => {
                        self.shared
                            .out
                            .push(&jsonrpc::reply(id, serde_json::json!({ "locked": owned })));
                        if let Some(entry) = st.locks.get_mut(&name) {
                            entry.in_flight = false;
                            entry.owned = owned;
                            for ev in std::mem::take(&mut entry.deferred) {
                                // The session's own reply is queued just before: nothing to order.
                                let _ = apply_lock_event(&self.shared.out, &name, entry, ev);
                            }
                        }
                    }
                    Err(e) => {
                        st.locks.remove(&name);
                        self.shared.out.push(&jsonrpc::error_reply(
                            id,
                            backend_error(&e, "lock", Some(&params)),
                        ));
                    }
                }
            }
            Done::Unlock { id, params, result } => match result {
                Ok(()) => self.send(jsonrpc::reply(id, serde_json::json!({}))),
                Err(e) => self.send(jsonrpc::error_reply(
                    id,
                    backend_error(&e, "unlock", Some(&params)),
                )),
            },
        }
    }
}

/// The top-level error ovsdb-server sends in the same situation (§1.7).
pub(crate) fn backend_error(e: &BackendError, method: &str, params: Option<&Value>) -> Value {
    match e {
        BackendError::UnknownDatabase(db) => jsonrpc::error_object(
            "unknown database",
            Some(&format!("{method} request specifies unknown database {db}")),
            params,
        ),
        BackendError::NotAvailable(db) => jsonrpc::error_object(
            "database not available",
            Some(&format!(
                "{method} request specifies database {db} which is not yet available because it has not completed joining its cluster"
            )),
            None,
        ),
        BackendError::Canceled | BackendError::Retry(_) => Value::String("canceled".into()),
        BackendError::LockRefused(msg) => {
            jsonrpc::error_object("syntax error", Some(msg), params)
        }
        BackendError::Internal(msg) => jsonrpc::error_object("internal error", Some(msg), None),
    }
}

async fn read_some(
    rd: &mut Pin<Box<dyn AsyncRead + Send>>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    rd.read_buf(buf).await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
