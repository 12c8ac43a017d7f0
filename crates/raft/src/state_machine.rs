//! openraft's state machine (storage-v2 `RaftStateMachine`) over [`ReplicatedState`].
//!
//! Applies committed entries in log order under the state write lock, tells the observer (the
//! front end) what changed while the lock is held, then wakes the local proposer waiting for that
//! command: so a session always has its monitor updates queued before its transaction's reply.
//! Snapshots are kept durably in the storage crate; restart = latest snapshot + log tail, which
//! openraft re-applies up to the saved committed index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, RaftLogId, StorageIOError};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::command::{Command, Outcome};
use crate::locks::LockTable;
use crate::state::{ApplyObserver, Begun, ReplicatedState};
use crate::types::{LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// State shared by the state machine (which writes it) and the member (which reads it).
pub struct Shared {
    pub state: RwLock<ReplicatedState>,
    applied: RwLock<(Option<LogId>, StoredMembership)>,
    observer: RwLock<Option<Arc<dyn ApplyObserver>>>,
    waiters: Mutex<HashMap<Uuid, oneshot::Sender<Outcome>>>,
    applied_index: watch::Sender<u64>,
    pub digests: crate::divergence::Recent,
    /// Bytes of commands applied since the last snapshot was started (see `compaction`).
    applied_bytes: std::sync::atomic::AtomicU64,
    /// The applied state's agreed election timer (0: none agreed), kept beside the state so the
    /// timer tasks on the Raft runtime (election timer, check-quorum, leases, progress) never
    /// wait on the state lock: a reader blocked there blocks the runtime's only worker, and
    /// openraft's core with it, for as long as an apply in `block_in_place` keeps retaking the
    /// write lock (a backlog of large entries after a pause).
    agreed_timer_ms: std::sync::atomic::AtomicU64,
    /// The applied lock table, copied when a command changes it, for the lease task (which
    /// runs on the Raft runtime too; see `agreed_timer_ms`): an owner cut off from its quorum
    /// is told to stand down on time even while an apply holds the state.
    locks: Mutex<Arc<LockTable>>,
}

impl Shared {
    fn new(
        state: ReplicatedState,
        applied: Option<LogId>,
        membership: StoredMembership,
    ) -> Arc<Shared> {
        let index = applied.map(|l| l.index).unwrap_or(0);
        let agreed_timer_ms = state.election_timer_ms.unwrap_or(0).into();
        let locks = Mutex::new(Arc::new(state.locks.clone()));
        Arc::new(Shared {
            state: RwLock::new(state),
            applied: RwLock::new((applied, membership)),
            observer: RwLock::new(None),
            waiters: Mutex::new(HashMap::new()),
            applied_index: watch::channel(index).0,
            digests: Default::default(),
            applied_bytes: Default::default(),
            agreed_timer_ms,
            locks,
        })
    }

    /// The election timer the cluster agreed on (`cluster/change-election-timer`), as applied
    /// here; never waits for the state lock.
    pub fn agreed_election_timer_ms(&self) -> Option<u64> {
        match self
            .agreed_timer_ms
            .load(std::sync::atomic::Ordering::Acquire)
        {
            0 => None,
            ms => Some(ms),
        }
    }

    /// The lock table as last applied here; never waits for the state lock.
    pub fn locks(&self) -> Arc<LockTable> {
        self.locks.lock().unwrap().clone()
    }

    /// Called with the state locked after it changed: the copies kept beside it follow it.
    fn note_applied(&self, state: &ReplicatedState) {
        self.agreed_timer_ms.store(
            state.election_timer_ms.unwrap_or(0),
            std::sync::atomic::Ordering::Release,
        );
        let mut locks = self.locks.lock().unwrap();
        // A few locks at most (OVN takes one per northd): comparing is cheap, and exact
        // whatever command changed the table.
        if **locks != state.locks {
            *locks = Arc::new(state.locks.clone());
        }
    }

    pub fn observer(&self) -> Option<Arc<dyn ApplyObserver>> {
        self.observer.read().unwrap().clone()
    }

    pub fn set_observer(&self, observer: Arc<dyn ApplyObserver>) {
        *self.observer.write().unwrap() = Some(observer);
    }

    /// Registers interest in the outcome of command `id` as applied on this member.
    pub fn wait_for(&self, id: Uuid) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id, tx);
        rx
    }

    pub fn forget(&self, id: &Uuid) {
        self.waiters.lock().unwrap().remove(id);
    }

    /// Whether a client of this member waits for a command of `entries`.
    fn awaited_here(&self, entries: &[openraft::Entry<TypeConfig>]) -> bool {
        let waiters = self.waiters.lock().unwrap();
        !waiters.is_empty()
            && entries.iter().any(|e| match &e.payload {
                EntryPayload::Normal(batch) => batch.0.iter().any(|c| waiters.contains_key(&c.id)),
                _ => false,
            })
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied_index.borrow()
    }

    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    /// Bytes of commands applied since the last snapshot was started.
    pub fn applied_bytes_since_snapshot(&self) -> u64 {
        self.applied_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

pub struct StateMachine {
    shared: Arc<Shared>,
    snapshots: halyard_storage::SnapshotStore<TypeConfig>,
    /// The member's Raft address, naming it at the in-process router's crash points.
    #[cfg(feature = "in-process")]
    raft_addr: String,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachine {
    /// Loads the latest durable snapshot, if any.
    #[allow(clippy::result_large_err)] // openraft's own error type; built once, at start.
    pub fn open(
        snapshots: halyard_storage::SnapshotStore<TypeConfig>,
        #[cfg_attr(not(feature = "in-process"), allow(unused_variables))] raft_addr: &str,
    ) -> Result<(StateMachine, Arc<Shared>), StorageError> {
        let (state, applied, membership) =
            match snapshots.open_checked_blocking().map_err(io_err)? {
                Some((meta, file)) => {
                    let state = ReplicatedState::restore_from(std::io::BufReader::new(file))
                        .map_err(io_err)?;
                    (state, meta.last_log_id, meta.last_membership)
                }
                None => (
                    ReplicatedState::default(),
                    None,
                    StoredMembership::default(),
                ),
            };
        let shared = Shared::new(state, applied, membership);
        Ok((
            StateMachine {
                shared: shared.clone(),
                snapshots,
                #[cfg(feature = "in-process")]
                raft_addr: raft_addr.to_string(),
            },
            shared,
        ))
    }
}

/// Entries carrying at least this many bytes of commands are applied off the async workers.
const BLOCKING_APPLY_BYTES: usize = 256 * 1024;

/// How long an apply spins for the state's write lock while a reader holds it, before it waits
/// off the runtime's worker (see `StateMachine::write_state`). Most readers hold the state for
/// microseconds (a lookup by index); a wait off the worker costs a hand-off to another thread.
const WRITE_LOCK_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Runs long CPU work so that the runtime's other tasks (openraft's core: heartbeats, votes) go
/// on meanwhile: on a multi-thread runtime, tokio hands this worker's queue to another thread
/// first (`block_in_place`), which is what lets the member's Raft runtime have one worker
/// (`config::RAFT_RUNTIME_THREADS`). A current-thread runtime (tests) just runs it.
fn off_the_workers<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

impl StateMachine {
    /// The state's write lock, for an apply. A reader may hold the state for as long as its
    /// query runs (a read-only transaction over every row of a large table); waiting for it on
    /// the Raft runtime's only worker would hold up openraft's core (heartbeats, votes) as long.
    /// A short wait is spun out; a longer one moves the worker's other tasks to another thread
    /// first, as a large apply does.
    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, ReplicatedState> {
        let spin_until = std::time::Instant::now() + WRITE_LOCK_SPIN;
        loop {
            match self.shared.state.try_write() {
                Ok(state) => return state,
                Err(std::sync::TryLockError::Poisoned(e)) => {
                    panic!("the replicated state's lock is poisoned: {e}")
                }
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if std::time::Instant::now() >= spin_until {
                return off_the_workers(|| self.shared.state.write().unwrap());
            }
            std::thread::yield_now();
        }
    }

    fn apply_entries(&self, entries: Vec<openraft::Entry<TypeConfig>>) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut last_index = None;
        let observer = self.shared.observer.read().unwrap().clone();
        for entry in entries {
            let log_id = *entry.get_log_id();
            let _span =
                tracing::debug_span!("apply", index = log_id.index, term = log_id.leader_id.term)
                    .entered();
            let outcome = match entry.payload {
                EntryPayload::Blank => {
                    // A new leader's first entry.
                    self.write_state().drop_incomplete_parts();
                    Outcome::Done
                }
                EntryPayload::Normal(batch) => {
                    let bytes: usize = batch.0.iter().map(Command::payload_bytes).sum();
                    self.shared
                        .applied_bytes
                        .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
                    for cmd in &batch.0 {
                        let begun = {
                            let mut state = self.write_state();
                            let begun = state.begin(cmd, observer.as_deref());
                            // Before the command's waiter hears of it (below).
                            self.shared.note_applied(&state);
                            begun
                        };
                        let outcome = match begun {
                            Begun::Done(outcome) => outcome,
                            Begun::Heavy(mut heavy) => {
                                heavy.run();
                                let mut state = self.write_state();
                                state.finish(*heavy, observer.as_deref())
                            }
                        };
                        if outcome == Outcome::Pending {
                            continue;
                        }
                        if let Some(tx) = self.shared.waiters.lock().unwrap().remove(&cmd.id) {
                            let _ = tx.send(outcome);
                        }
                    }
                    Outcome::Done
                }
                EntryPayload::Membership(m) => {
                    self.shared.applied.write().unwrap().1 = StoredMembership::new(Some(log_id), m);
                    Outcome::Done
                }
            };
            self.shared.applied.write().unwrap().0 = Some(log_id);
            let digest = self.shared.state.read().unwrap().digest;
            self.shared.digests.record(log_id.index, digest);
            last_index = Some(log_id.index);
            outcomes.push(outcome);
        }
        if let Some(index) = last_index {
            self.shared.applied_index.send_replace(index);
            if let Some(obs) = &observer {
                obs.index_applied(index);
            }
        }
        outcomes
    }
}

pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    snapshots: halyard_storage::SnapshotStore<TypeConfig>,
}

/// The snapshot id a build gives its snapshot: it names the data's length and CRC-32, so that a
/// member receiving it checks what arrived against what was written (`check_received`).
fn snapshot_id(last_log_id: Option<LogId>, sealed: &halyard_storage::Sealed) -> String {
    let at = match last_log_id {
        Some(l) => format!("{}-{}", l.leader_id, l.index),
        None => "none".to_string(),
    };
    format!("{at}-{}-crc32={:08x}", sealed.len(), sealed.crc32())
}

/// A received snapshot is the one its sender built: same length and CRC-32 as its id names.
/// Ids of members of earlier versions name no CRC; those snapshots are checked by decoding.
fn check_received(meta: &SnapshotMeta, sealed: &halyard_storage::Sealed) -> Result<(), String> {
    let Some((head, crc)) = meta.snapshot_id.rsplit_once("-crc32=") else {
        return Ok(());
    };
    let len = head.rsplit_once('-').map(|(_, len)| len);
    let named = (
        len.and_then(|l| l.parse::<u64>().ok()),
        u32::from_str_radix(crc, 16).ok(),
    );
    if named == (Some(sealed.len()), Some(sealed.crc32())) {
        Ok(())
    } else {
        Err(format!(
            "snapshot {} arrived damaged: {} bytes with CRC-32 {:08x}",
            meta.snapshot_id,
            sealed.len(),
            sealed.crc32()
        ))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let started = std::time::Instant::now();
        // Copy what the snapshot holds under the read lock (rows are shared, so this is quick),
        // then encode into the snapshot's file without it: applies wait only for the copy.
        let (source, last_log_id, last_membership) = {
            let state = self.shared.state.read().unwrap();
            self.shared
                .applied_bytes
                .store(0, std::sync::atomic::Ordering::Relaxed);
            let applied = self.shared.applied.read().unwrap();
            (state.snapshot_source(), applied.0, applied.1.clone())
        };
        // The copy holds up this member's applies and Raft work: kept short (`recent`, shared
        // rows), and logged so that an operator sees it if it is not.
        let copied = started.elapsed();
        let snapshots = self.snapshots.clone();
        // At a lower priority than the Raft runtime: encoding takes seconds of CPU for a few
        // hundred megabytes (`background`).
        let (meta, bytes) = crate::background::at_background_priority("encode", move || {
            let mut new = snapshots.create_blocking()?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, new.paced());
            source.encode_to(&mut w)?;
            drop(w);
            let sealed = snapshots.seal_blocking(new)?;
            let bytes = sealed.len();
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
                snapshot_id: snapshot_id(last_log_id, &sealed),
            };
            snapshots.commit_blocking(sealed, &meta)?;
            Ok::<_, halyard_storage::StorageError>((meta, bytes))
        })
        .await
        .map_err(|e| io_err(std::io::Error::other(e)))?
        .map_err(io_err)?;
        tracing::info!(
            index = ?meta.last_log_id.map(|l| l.index),
            bytes,
            copy_ms = copied.as_secs_f64() * 1e3,
            "snapshot built"
        );
        // Recorded only when the binary installed a metrics recorder (`halyard serve --http`).
        metrics::histogram!("halyard_snapshot_build_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("halyard_snapshot_bytes").set(bytes as f64);
        // openraft keeps only the meta of a built snapshot; what is current is what it gets (a
        // snapshot installed meanwhile may have superseded this one).
        match self.snapshots.open_current().await.map_err(io_err)? {
            Some((meta, file)) => Ok(Snapshot {
                meta,
                snapshot: Box::new(file),
            }),
            None => Err(io_err(std::io::Error::other(
                "no current snapshot right after one was built",
            ))),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.shared.applied.read().unwrap().clone())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        // openraft hands the new commit index to the replication tasks just before it hands
        // the entries here, on the same worker; tokio runs the task woken last first, so the
        // apply would go before the followers hear of the commit. When no client of this
        // member waits for these entries (a leader committing a follower's forwarded write,
        // whose client the follower answers at its own apply), the commit goes out first.
        if !self.shared.awaited_here(&entries) {
            tokio::task::yield_now().await;
        }
        let bytes: usize = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(batch) => batch.0.iter().map(Command::payload_bytes).sum(),
                _ => 0,
            })
            .sum();
        // Applying is CPU work under the state lock (a 60 MB transaction takes a while). On a
        // runtime worker it would hold up every task queued there, openraft's core among them
        // (heartbeats, votes): large applies move the other tasks to another thread first.
        if bytes >= BLOCKING_APPLY_BYTES {
            Ok(off_the_workers(|| self.apply_entries(entries)))
        } else {
            Ok(self.apply_entries(entries))
        }
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<halyard_storage::SnapshotFile>, StorageError> {
        Ok(Box::new(self.snapshots.receive().await.map_err(io_err)?))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<halyard_storage::SnapshotFile>,
    ) -> Result<(), StorageError> {
        let (file, sealed) = snapshot.into_received().await.map_err(io_err)?;
        check_received(meta, &sealed).map_err(|e| io_err(std::io::Error::other(e)))?;
        // Decoding a snapshot (1.6 s for 100k OVN ports) and dropping the state it replaces are
        // the longest CPU work a member does: not on the Raft runtime's worker (see `apply`),
        // and at a lower priority than it (`background`).
        let restored = crate::background::at_background_priority("decode", move || {
            ReplicatedState::restore_from(std::io::BufReader::new(file))
        })
        .await
        .map_err(|e| io_err(std::io::Error::other(e)))?
        .map_err(io_err)?;
        #[cfg(feature = "in-process")]
        if crate::router::crash_point(&self.raft_addr, "snapshot-decoded").await {
            return Err(io_err(std::io::Error::other(
                "crashed at snapshot-decoded (in-process test)",
            )));
        }
        let len = sealed.len();
        let (snapshots, committed_meta) = (self.snapshots.clone(), meta.clone());
        tokio::task::spawn_blocking(move || snapshots.commit_blocking(sealed, &committed_meta))
            .await
            .map_err(|e| io_err(std::io::Error::other(e.to_string())))?
            .map_err(io_err)?;
        let replaced = {
            let mut state = self.write_state();
            *self.shared.applied.write().unwrap() =
                (meta.last_log_id, meta.last_membership.clone());
            // What was applied before is in the snapshot: counted on, it made a member that
            // caught up by a snapshot build one of its own at once (`compaction`), often beside
            // the leader's build of the snapshot it had just been sent.
            self.shared
                .applied_bytes
                .store(0, std::sync::atomic::Ordering::Relaxed);
            self.shared.note_applied(&restored);
            std::mem::replace(&mut *state, restored)
        };
        crate::background::at_background_priority("discard", move || drop(replaced))
            .await
            .map_err(|e| io_err(std::io::Error::other(e)))?;
        let observer = self.shared.observer.read().unwrap().clone();
        if let Some(index) = meta.last_log_id.map(|l| l.index) {
            self.shared.applied_index.send_replace(index);
            if let Some(obs) = &observer {
                obs.index_applied(index);
            }
        }
        if let Some(obs) = observer {
            let names: Vec<String> = self
                .shared
                .state
                .read()
                .unwrap()
                .dbs
                .keys()
                .cloned()
                .collect();
            for db in &names {
                obs.database_replaced(db);
            }
            obs.databases_changed();
        }
        tracing::info!(index = ?meta.last_log_id.map(|l| l.index), bytes = len, "snapshot installed");
        metrics::gauge!("halyard_snapshot_bytes").set(len as f64);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self
            .snapshots
            .open_current()
            .await
            .map_err(io_err)?
            .map(|(meta, file)| Snapshot {
                meta,
                snapshot: Box::new(file),
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A received snapshot whose bytes are not those its id names (length and CRC-32) is refused
    /// before anything is decoded; an id of an earlier version, naming none, is let through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_received_snapshot_must_match_the_length_and_crc_its_id_names() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let store =
            halyard_storage::Store::<crate::types::TypeConfig>::open(dir.path(), 1 << 20).unwrap();
        let snapshots = store.snapshot_store();
        let received = |bytes: &'static [u8]| {
            let snapshots = snapshots.clone();
            async move {
                let mut file = snapshots.receive().await.unwrap();
                file.write_all(bytes).await.unwrap();
                file.into_received().await.unwrap().1
            }
        };
        let sent = b"the snapshot as built";
        let meta = |snapshot_id: String| super::SnapshotMeta {
            last_log_id: None,
            last_membership: Default::default(),
            snapshot_id,
        };
        let built = meta(format!(
            "T1-N0-7-{}-crc32={:08x}",
            sent.len(),
            crc32fast_hash(sent)
        ));
        assert_eq!(super::check_received(&built, &received(sent).await), Ok(()));
        let damaged = super::check_received(&built, &received(b"the snapshot as bui1t").await);
        assert!(damaged.unwrap_err().contains("arrived damaged"));
        let short = super::check_received(&built, &received(b"the snapshot").await);
        assert!(short.is_err());
        let legacy = meta("T1-N0-7-21".to_string());
        assert_eq!(
            super::check_received(&legacy, &received(b"x").await),
            Ok(())
        );
    }

    /// A member counts the bytes applied since its last snapshot to build the next one
    /// (`compaction`); an installed snapshot is its last snapshot too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn installing_a_snapshot_restarts_the_count_of_bytes_applied_since_one() {
        use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
        use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
        let open = |dir: &std::path::Path| {
            let store =
                halyard_storage::Store::<crate::types::TypeConfig>::open(dir, 1 << 20).unwrap();
            super::StateMachine::open(store.snapshot_store(), "test").unwrap()
        };
        let entry = |index: u64| Entry::<crate::types::TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(crate::command::Batch(vec![crate::command::Command {
                id: uuid::Uuid::new_v4(),
                origin: 1,
                kind: crate::command::CommandKind::Transact {
                    db: "none".into(),
                    ops: "x".repeat(10_000),
                    session: uuid::Uuid::nil(),
                    wait_elapsed_ms: None,
                    rbac: None,
                },
            }])),
        };
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut leader, leader_shared) = open(dir_a.path());
        leader.apply(vec![entry(1)]).await.unwrap();
        let snapshot = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let (mut follower, shared) = open(dir_b.path());
        follower.apply(vec![entry(1)]).await.unwrap();
        assert!(shared.applied_bytes_since_snapshot() >= 10_000);
        let mut bytes = Vec::new();
        let mut data = snapshot.snapshot;
        tokio::io::AsyncReadExt::read_to_end(&mut *data, &mut bytes)
            .await
            .unwrap();
        let mut received = follower.begin_receiving_snapshot().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut *received, &bytes)
            .await
            .unwrap();
        follower
            .install_snapshot(&snapshot.meta, received)
            .await
            .unwrap();
        assert_eq!(shared.applied_bytes_since_snapshot(), 0);
        assert_eq!(leader_shared.applied_bytes_since_snapshot(), 0, "built");
    }

    /// CRC-32 (IEEE), as the storage crate computes it, without depending on its crate.
    fn crc32fast_hash(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// The member's Raft runtime has one worker: long work must not stop its other tasks (a
    /// ticker stands for openraft's core here). Without `block_in_place` the ticker cannot run
    /// at all while the work holds the only worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn long_work_leaves_the_only_worker_to_the_other_tasks() {
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let during = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                super::off_the_workers(|| {
                    let before = ticks.load(Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(500));
                    ticks.load(Ordering::Relaxed) - before
                })
            }
        })
        .await
        .unwrap();
        ticker.abort();
        assert!(
            during >= 5,
            "the other tasks ran {during} times in 500 ms of long work"
        );
    }
}
