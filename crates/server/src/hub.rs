//! The front end's [`ApplyHook`]: fans applied transactions out to the sessions that monitor
//! the database, and lock events to the session they concern. It runs on whatever thread
//! applies the log, with the applied state locked, so it never blocks: it only serialises
//! updates into the sessions' bounded outboxes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::backend::{ApplyHook, LockEvent, SessionKey};
use crate::session::SessionShared;

#[derive(Default)]
pub struct Hub {
    sessions: Mutex<HashMap<SessionKey, Weak<SessionShared>>>,
    /// Sessions with at least one monitor, per database; kept so an applied transaction
    /// costs nothing for the (many) sessions that monitor something else or nothing.
    monitoring: Mutex<HashMap<String, HashMap<SessionKey, Weak<SessionShared>>>>,
    /// Set when `_Server` must be recomputed; the refresh runs on the server's own task.
    pub(crate) status_changed: Notify,
    /// Woken after every `_Server` refresh, for `_Server` transactions parked on a `wait`.
    pub(crate) server_db_refreshed: Notify,
    /// `_Server`'s `index` moved while nobody watched `_Server` (no monitor, no parked
    /// transaction): whoever reads `_Server` next refreshes it first (`server::ensure_fresh`).
    pub(crate) server_stale: std::sync::atomic::AtomicBool,
    /// `_Server` transactions being run or parked on a `wait`: while any is, index moves
    /// refresh `_Server` at once, so a `wait` on it is re-evaluated.
    pub(crate) server_readers: std::sync::atomic::AtomicUsize,
    /// Woken after every applied change to a replicated database (and its replacement), for
    /// transactions parked on a `wait` (see `trigger`).
    pub(crate) data_changed: Notify,
    /// `locked`/`stolen` notifications queued and maybe not written yet: a `lock`, `steal` or
    /// `unlock` reply waits for them (see [`Hub::lock_notices_written`]).
    lock_notices: Mutex<Vec<(Weak<SessionShared>, u64)>>,
    /// Tables (per database) that `db:` remotes read; a change to one wakes `remotes::run`.
    remote_tables: Mutex<Vec<(String, String)>>,
    pub(crate) remotes_changed: Notify,
    /// Listeners opened from the database: remote name and tag (for status).
    db_listeners: Mutex<Vec<(String, u64)>>,
    next_tag: std::sync::atomic::AtomicU64,
    /// The configured remotes: the command line's, then `ovsdb-server/add-remote` and
    /// `remove-remote` (`--remote` names, `db:` ones included).
    remotes: Mutex<Vec<String>>,
    /// Monitors' initial contents, serialised once per database version and distinct request
    /// (see [`Hub::initial_contents`]).
    initial: Mutex<HashMap<String, InitialCache>>,
    initial_built: std::sync::atomic::AtomicU64,
    initial_shared: std::sync::atomic::AtomicU64,
}

/// The initial contents built at one version (last transaction id) of one database.
#[derive(Default)]
struct InitialCache {
    txn: uuid::Uuid,
    bytes: usize,
    /// By the monitor's fingerprint: the monitors and their serialised initial contents.
    built: HashMap<u64, Vec<BuiltInitial>>,
    /// Fingerprints asked for once at this version: a build is kept only when asked for again.
    seen: std::collections::HashSet<u64>,
}

/// A distinct monitor and its serialised initial contents.
type BuiltInitial = (Arc<ovsdb::monitor::Monitor>, Arc<[u8]>);

/// How long a lock reply waits for other sessions' notifications at most; they normally take
/// microseconds, this only bounds a peer whose socket stopped taking data meanwhile.
const LOCK_NOTICE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// Waits until the `locked`/`stolen` notifications queued so far are written. ovsdb-server
    /// sends them to the other sessions before it answers the request that caused them (its
    /// one thread writes them first); here each session has its own writer task, so the
    /// reply to that request waits for them. Events are queued while the command applies,
    /// before its outcome reaches the requester, so the list holds this request's ones.
    pub(crate) async fn lock_notices_written(&self) {
        let pending: Vec<(Arc<SessionShared>, u64)> = {
            let mut v = lock(&self.lock_notices);
            v.retain(|(s, seq)| s.upgrade().is_some_and(|s| !s.out.is_written(*seq)));
            v.iter()
                .filter_map(|(s, seq)| s.upgrade().map(|s| (s, *seq)))
                .collect()
        };
        let all =
            futures::future::join_all(pending.iter().map(|(s, seq)| s.out.wait_written(*seq)));
        let _ = tokio::time::timeout(LOCK_NOTICE_WAIT, all).await;
    }

    /// The serialised initial contents of `compiled` on `db` at version `txn` (its last applied
    /// transaction): built with `build` the first time, then shared by every request for the
    /// same thing at the same version. In a reconnection storm every `ovn-controller` asks for
    /// the same tables; ovsdb-server serialises them once per monitor group too. A build is
    /// kept only from the second request for it on: with conditional monitoring (one condition
    /// per chassis) no two requests are alike, and keeping every one held hundreds of MB per
    /// member for nothing after 1,000 `ovn-controller`s subscribed. Versions older than `txn`
    /// are dropped; past `INITIAL_CACHE_BYTES` a build is not kept.
    pub(crate) fn initial_contents(
        &self,
        db: &str,
        txn: uuid::Uuid,
        compiled: &Arc<ovsdb::monitor::Monitor>,
        fingerprint: u64,
        build: impl FnOnce() -> Vec<u8>,
    ) -> Arc<[u8]> {
        let mut all = lock(&self.initial);
        let cache = all.entry(db.to_string()).or_default();
        if cache.txn != txn {
            *cache = InitialCache {
                txn,
                ..Default::default()
            };
        }
        if let Some((_, bytes)) = cache
            .built
            .get(&fingerprint)
            .and_then(|g| g.iter().find(|(m, _)| **m == **compiled))
        {
            self.initial_shared
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return bytes.clone();
        }
        // Built under the lock: the other requests of a storm wait for this build and share it.
        let bytes: Arc<[u8]> = Arc::from(build());
        self.initial_built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let again = !cache.seen.insert(fingerprint);
        if again && cache.bytes + bytes.len() <= crate::config::INITIAL_CACHE_BYTES {
            cache.bytes += bytes.len();
            cache
                .built
                .entry(fingerprint)
                .or_default()
                .push((compiled.clone(), bytes.clone()));
        }
        bytes
    }

    /// Sets the tables whose changes must wake the `db:` remotes task.
    pub(crate) fn watch_tables(&self, tables: Vec<(String, String)>) {
        *lock(&self.remote_tables) = tables;
    }

    fn touches_remote_tables(&self, db: &str, changes: &ovsdb::ChangeSet) -> bool {
        lock(&self.remote_tables)
            .iter()
            .any(|(d, t)| d == db && changes.table(t).is_some_and(|c| !c.is_empty()))
    }

    pub(crate) fn remotes(&self) -> Vec<String> {
        lock(&self.remotes).clone()
    }

    /// Replaces the configured remotes and wakes the task that serves them.
    pub(crate) fn set_remotes(&self, remotes: Vec<String>) {
        *lock(&self.remotes) = remotes;
        self.remotes_changed.notify_one();
    }

    /// Closes every session (`ovsdb-server/reconnect`); clients reconnect. Returns how many.
    pub(crate) fn close_all(&self) -> usize {
        let sessions: Vec<Arc<SessionShared>> = lock(&self.sessions)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in &sessions {
            s.out.close(crate::outbox::CloseKind::Flush);
        }
        sessions.len()
    }

    /// A fresh tag for a listener's sessions (never 0, which static listeners use).
    pub(crate) fn next_listener_tag(&self) -> u64 {
        self.next_tag
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Closes every session accepted by the listener tagged `tag`; returns how many.
    pub(crate) fn close_listener(&self, tag: u64) -> usize {
        let sessions: Vec<Arc<SessionShared>> = lock(&self.sessions)
            .values()
            .filter_map(Weak::upgrade)
            .filter(|s| s.listener == tag)
            .collect();
        for s in &sessions {
            s.out.close(crate::outbox::CloseKind::Flush);
        }
        sessions.len()
    }

    pub(crate) fn set_db_listeners(&self, listeners: Vec<(String, u64)>) {
        *lock(&self.db_listeners) = listeners;
    }

    /// The listener tag of every open session.
    pub(crate) fn session_tags(&self) -> Vec<u64> {
        lock(&self.sessions)
            .values()
            .filter_map(Weak::upgrade)
            .map(|s| s.listener)
            .collect()
    }

    /// The listeners opened from the database, with their open sessions.
    pub fn db_listeners(&self) -> Vec<(String, usize)> {
        let listeners = lock(&self.db_listeners).clone();
        let sessions: Vec<u64> = lock(&self.sessions)
            .values()
            .filter_map(Weak::upgrade)
            .map(|s| s.listener)
            .collect();
        listeners
            .into_iter()
            .map(|(name, tag)| {
                let n = sessions.iter().filter(|t| **t == tag).count();
                (name, n)
            })
            .collect()
    }

    pub(crate) fn register(&self, s: &Arc<SessionShared>) {
        lock(&self.sessions).insert(s.key, Arc::downgrade(s));
    }

    pub(crate) fn unregister(&self, key: SessionKey) {
        lock(&self.sessions).remove(&key);
        let mut m = lock(&self.monitoring);
        for per_db in m.values_mut() {
            per_db.remove(&key);
        }
        m.retain(|_, v| !v.is_empty());
    }

    /// Records whether `session` monitors `db` (called when its first monitor on `db` is
    /// added or its last one removed).
    pub(crate) fn set_monitoring(&self, db: &str, s: &Arc<SessionShared>, on: bool) {
        let mut m = lock(&self.monitoring);
        if on {
            m.entry(db.to_string())
                .or_default()
                .insert(s.key, Arc::downgrade(s));
        } else if let Some(per_db) = m.get_mut(db) {
            per_db.remove(&s.key);
            if per_db.is_empty() {
                m.remove(db);
            }
        }
    }

    fn monitoring(&self, db: &str) -> Vec<Arc<SessionShared>> {
        lock(&self.monitoring)
            .get(db)
            .map(|per_db| per_db.values().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// Queues the updates `changes` causes on every session monitoring `db`.
    pub(crate) fn fan_out(&self, db: &str, txn_id: Uuid, changes: &ovsdb::ChangeSet) {
        let mut updates = crate::monitor::SharedUpdates::new(txn_id, changes);
        for s in self.monitoring(db) {
            s.push_updates(db, &mut updates);
        }
    }

    /// Number of sessions currently open, for status and tests.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Sessions, their monitors and their unsent bytes, counted when asked (for the member's
    /// metrics), so nothing is counted on the hot path.
    pub fn stats(&self) -> FrontEndStats {
        let sessions: Vec<Arc<SessionShared>> = lock(&self.sessions)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let mut stats = FrontEndStats {
            sessions: sessions.len(),
            initial_built: self
                .initial_built
                .load(std::sync::atomic::Ordering::Relaxed),
            initial_shared: self
                .initial_shared
                .load(std::sync::atomic::Ordering::Relaxed),
            initial_cached_bytes: lock(&self.initial).values().map(|c| c.bytes).sum(),
            ..FrontEndStats::default()
        };
        for s in sessions {
            stats.monitors += s.state().monitors.len();
            stats.backlog_bytes += s.out.backlog();
        }
        stats
    }
}

/// What [`Hub::stats`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrontEndStats {
    pub sessions: usize,
    pub monitors: usize,
    /// Bytes queued to clients and not yet written (replies and monitor updates).
    pub backlog_bytes: usize,
    /// Bytes received from clients in messages not yet complete (all sessions).
    pub input_bytes: usize,
    /// Monitors' initial contents serialised, and served from an earlier serialisation.
    pub initial_built: u64,
    pub initial_shared: u64,
    /// Bytes of serialised initial contents kept for reuse.
    pub initial_cached_bytes: usize,
}

impl ApplyHook for Hub {
    fn applied(
        &self,
        db: &str,
        _state: &ovsdb::Database,
        txn_id: Uuid,
        changes: &ovsdb::ChangeSet,
    ) {
        self.fan_out(db, txn_id, changes);
        self.data_changed.notify_waiters();
        if self.touches_remote_tables(db, changes) {
            self.remotes_changed.notify_one();
        }
    }

    fn lock_event(&self, session: SessionKey, lock_name: &str, event: LockEvent) {
        let s = lock(&self.sessions).get(&session).and_then(Weak::upgrade);
        if let Some(s) = s {
            if let Some(seq) = s.lock_event(lock_name, event) {
                let mut v = lock(&self.lock_notices);
                v.retain(|(s, seq)| s.upgrade().is_some_and(|s| !s.out.is_written(*seq)));
                v.push((Arc::downgrade(&s), seq));
            }
        }
    }

    fn database_replaced(&self, db: &str) {
        lock(&self.initial).remove(db);
        self.data_changed.notify_waiters();
        self.remotes_changed.notify_one();
        let sessions: Vec<Arc<SessionShared>> = lock(&self.sessions)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in sessions {
            if !s.database_replaced(db) {
                self.set_monitoring(db, &s, false);
            }
        }
        self.status_changed.notify_one();
    }

    fn server_status_changed(&self) {
        self.status_changed.notify_one();
    }

    fn server_index_changed(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        // Stale first, then look for watchers: a monitor registered meanwhile refreshes after
        // registering (see `methods`), so either it or this notification catches the change.
        self.server_stale.store(true, SeqCst);
        let watched = self.server_readers.load(SeqCst) > 0
            || lock(&self.monitoring)
                .get(crate::server_db::SERVER_DB)
                .is_some_and(|m| !m.is_empty());
        if watched {
            self.status_changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn monitor(table: &str) -> Arc<ovsdb::monitor::Monitor> {
        let schema = ovsdb::DatabaseSchema::from_json(&serde_json::json!({
            "name": "D", "version": "1.0.0", "tables": {
                "A": {"columns": {"x": {"type": "integer"}}},
                "B": {"columns": {"y": {"type": "integer"}}}}}))
        .unwrap();
        let requests = serde_json::json!({ table: [{}] });
        Arc::new(
            ovsdb::monitor::Monitor::new(&schema, ovsdb::monitor::MonitorVersion::V2, &requests)
                .unwrap(),
        )
    }

    #[test]
    fn initial_contents_are_kept_from_the_second_request_and_then_shared() {
        let hub = Hub::default();
        let builds = AtomicUsize::new(0);
        let txn = uuid::Uuid::from_u128(1);
        let get = |m: &Arc<ovsdb::monitor::Monitor>, fp: u64| {
            hub.initial_contents("D", txn, m, fp, || {
                builds.fetch_add(1, Ordering::SeqCst);
                vec![b'x'; 100]
            })
        };
        let (a, b) = (monitor("A"), monitor("B"));
        // A request nobody else makes (one chassis's conditions) is built and not kept.
        get(&b, 2);
        assert_eq!(hub.stats().initial_cached_bytes, 0);
        // The same request again is kept, and every later one shares that build.
        get(&a, 1);
        let second = get(&a, 1);
        let third = get(&a, 1);
        assert!(Arc::ptr_eq(&second, &third));
        assert_eq!(builds.load(Ordering::SeqCst), 3);
        assert_eq!(hub.stats().initial_cached_bytes, 100);
        // A new version starts afresh.
        hub.initial_contents("D", uuid::Uuid::from_u128(2), &a, 1, || vec![b'y'; 10]);
        assert_eq!(hub.stats().initial_cached_bytes, 0);
    }
}
