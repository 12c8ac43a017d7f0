//! The Raft log, vote and committed log id: openraft's storage-v2
//! `RaftLogStorage` and `RaftLogReader`. Entries live in segment files
//! ([`crate::log_files`]); vote, committed and last purged ids in sled.
//!
//! Durability, operation by operation:
//! - `append`: entries are written at once (readable immediately) and reported
//!   to openraft through `LogFlushed` only after an `fdatasync` covering them, done
//!   by the batching [`crate::flusher`].
//! - `save_vote`: the log's segments and then the vote are synced before returning (a vote
//!   must never be forgotten; and a member that leads again must not count unsynced entries
//!   of an earlier term as its own durable copy, see `vendor/openraft/HALYARD-PATCH.md`).
//! - `truncate`: cut and synced before returning (a truncation must not resurrect entries
//!   under later appends).
//! - `purge`: the marker is synced before segments are deleted.
//! - `save_committed`: written but not flushed; openraft allows it to be lost at a crash (the
//!   committed id is re-learned from the leader). The high-water mark beside sled, written at
//!   every commit, brings it back after a process kill (`read_committed`); sled's own copy is
//!   written every `SLED_COMMITTED_EVERY` commits, or at once when the mark cannot name the
//!   commit.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::entry_cache::EntryCache;
use crate::error::{Corruption, StorageError};
use crate::flusher::{FlushMetrics, FlushStats, Flusher};
use crate::layout::{self, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE, TREE_LOG, TREE_RAFT_STATE};
use crate::log_files::{Frames, LogFiles, FRAME_HEADER};
use crate::record;
use crate::sled_files::SledFiles;

/// At most this many commits go by without sled's copy of the committed id being written, while
/// the high-water mark names each of them (`save_committed`).
pub(crate) const SLED_COMMITTED_EVERY: u64 = 64;

type RaftResult<T, C> = Result<T, openraft::StorageError<<C as RaftTypeConfig>::NodeId>>;

/// A log operation that openraft's core waits for and that takes longer than this is logged:
/// meanwhile the core sends no heartbeat and answers no vote or append.
pub const SLOW_STORAGE_OP: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `op`, warning if it took [`SLOW_STORAGE_OP`] or longer.
async fn timed<T>(what: &str, op: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = op.await;
    let took = started.elapsed();
    if took >= SLOW_STORAGE_OP {
        tracing::warn!(
            ms = took.as_millis() as u64,
            "{what} took {} ms (openraft's core waited for it)",
            took.as_millis()
        );
    }
    out
}

/// The durable Raft log of one member. Get it from [`crate::Store::log_store`];
/// give it to `openraft::Raft::new`. Dropping it waits for the last queued
/// flush to finish.
pub struct LogStore<C: RaftTypeConfig> {
    sled: SledFiles,
    state: sled::Tree,
    files: Arc<LogFiles>,
    flusher: Flusher<LogFlushed<C>>,
    high_water: crate::high_water::HighWater,
    /// The committed index the high-water mark holds.
    mark: u64,
    /// Commits since sled's copy of the committed id was last written.
    commits_unsaved: u64,
    read_budget: u64,
    cache: Arc<EntryCache<C::Entry>>,
    /// The frames of the last append, kept for the next one (`log_files::Frames`).
    frames: Frames,
}

/// A read-only view of the log for openraft's replication tasks. Cheap to clone.
pub struct LogReader<C: RaftTypeConfig> {
    files: Arc<LogFiles>,
    cache: Arc<EntryCache<C::Entry>>,
    /// Bytes one `limited_get_log_entries` returns at most (the first entry always).
    read_budget: u64,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader {
            files: self.files.clone(),
            cache: self.cache.clone(),
            read_budget: self.read_budget,
            _types: PhantomData,
        }
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    pub(crate) fn new(
        sled: SledFiles,
        state: sled::Tree,
        files: Arc<LogFiles>,
        high_water: crate::high_water::HighWater,
        read_budget: u64,
        cache: Arc<EntryCache<C::Entry>>,
    ) -> Result<Self, StorageError> {
        let sync_files = files.clone();
        let exit_files = files.clone();
        let exit_sled = sled.clone();
        let flusher = Flusher::start(
            move || sync_files.sync(),
            move || {
                // Shutdown: make the unflushed committed id durable too.
                if let Err(e) = exit_files
                    .sync()
                    .map_err(StorageError::from)
                    .and_then(|()| exit_sled.flush())
                {
                    tracing::error!(error = %e, "final flush of the raft log failed");
                }
            },
        )?;
        Ok(LogStore {
            sled,
            state,
            files,
            flusher,
            mark: high_water.read().unwrap_or(0),
            commits_unsaved: 0,
            high_water,
            read_budget,
            cache,
            frames: Frames::default(),
        })
    }

    /// Counters of the batching flusher (fsyncs done, appends completed and pending).
    pub fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    /// A handle on the same counters that stays valid after the store is
    /// moved into openraft.
    pub fn flush_metrics(&self) -> FlushMetrics {
        self.flusher.metrics()
    }

    /// A reader that does not borrow the store (same as `get_log_reader`).
    pub fn reader(&self) -> LogReader<C> {
        LogReader {
            files: self.files.clone(),
            cache: self.cache.clone(),
            read_budget: self.read_budget,
            _types: PhantomData,
        }
    }

    fn write_entries<I>(&mut self, entries: I) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let frames = &mut self.frames;
        frames.clear();
        let mut written = Vec::new();
        for entry in entries {
            let index = entry.get_log_id().index;
            let key = layout::log_key(index);
            let len = frames.push(index, |buf| {
                record::encode_into(buf, &key, &entry, "log entry")
            })?;
            // Counted as the files' reads count them (the frame's header included).
            written.push((index, entry, (len + FRAME_HEADER) as u64));
        }
        let appended = self.files.append(frames);
        frames.clear();
        appended?;
        self.cache.extend(written);
        Ok(())
    }

    /// Runs blocking file work off the Raft task.
    async fn blocking(
        &self,
        work: impl FnOnce(&LogFiles, &SledFiles) -> Result<(), StorageError> + Send + 'static,
    ) -> Result<(), StorageError> {
        let files = self.files.clone();
        let sled = self.sled.clone();
        tokio::task::spawn_blocking(move || work(&files, &sled))
            .await
            .map_err(|e| StorageError::Background(format!("raft log task: {e}")))?
    }
}

/// Reads one state value (vote, committed, last purged).
pub(crate) fn read_state<T: DeserializeOwned>(
    state: &sled::Tree,
    key: &'static [u8],
) -> Result<Option<T>, StorageError> {
    match state.get(key)? {
        None => Ok(None),
        Some(bytes) => {
            record::decode(key, &bytes)
                .map(Some)
                .map_err(|reason| StorageError::CorruptRecord {
                    keyspace: TREE_RAFT_STATE,
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason,
                })
        }
    }
}

pub(crate) fn write_state<T: Serialize>(
    state: &sled::Tree,
    key: &'static [u8],
    value: &T,
) -> Result<(), StorageError> {
    state.insert(key, record::encode(key, value, "raft state")?)?;
    Ok(())
}

/// Checks one stored log entry: key shape, checksum, decoding, and that the
/// entry's own index matches its key.
pub(crate) fn decode_entry<C>(key: &[u8], value: &[u8]) -> Result<(u64, C::Entry), Corruption>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let index = layout::log_index(key).ok_or(Corruption::BadKey { len: key.len() })?;
    let entry: C::Entry = record::decode(key, value)?;
    let entry_index = entry.get_log_id().index;
    if entry_index != index {
        return Err(Corruption::IndexMismatch {
            key: index,
            entry: entry_index,
        });
    }
    Ok((index, entry))
}

fn corrupt_entry(key: &[u8], reason: Corruption) -> StorageError {
    let key = match layout::log_index(key) {
        Some(i) => i.to_string(),
        None => format!("{key:?}"),
    };
    StorageError::CorruptRecord {
        keyspace: TREE_LOG,
        key,
        reason,
    }
}

/// Inclusive index bounds of a range; `None` when the range is empty.
fn index_bounds(range: impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (start <= end).then_some((start, end))
}

/// The entries of `range` in order, stopping after the entry that brings the stored bytes read
/// to `budget` or more (so at least one entry whenever the range has one).
fn read_entries<C>(
    files: &LogFiles,
    cache: &EntryCache<C::Entry>,
    range: impl RangeBounds<u64>,
    budget: u64,
) -> Result<Vec<C::Entry>, StorageError>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned + Clone,
{
    let Some((from, to)) = index_bounds(range) else {
        return Ok(Vec::new());
    };
    if let Some(entries) = cache.get(from, to, budget) {
        return Ok(entries);
    }
    let mut entries = Vec::new();
    for (index, rec) in files.read(from, to, budget)? {
        let key = layout::log_key(index);
        let (_, entry) = decode_entry::<C>(&key, &rec).map_err(|r| corrupt_entry(&key, r))?;
        entries.push(entry);
    }
    Ok(entries)
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> RaftResult<Vec<C::Entry>, C> {
        read_entries::<C>(&self.files, &self.cache, range, u64::MAX)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }

    /// What replication sends in one AppendEntries: a prefix of `start..end` bounded by the
    /// reader's byte budget. openraft sends the rest in the next request at once (the follower's
    /// answer covers what was sent), so a backlog of large entries streams as requests of
    /// bounded size instead of one request that cannot be sent and stored within openraft's
    /// one-heartbeat deadline (a member far behind would otherwise never catch up).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> RaftResult<Vec<C::Entry>, C> {
        read_entries::<C>(&self.files, &self.cache, start..end, self.read_budget)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> RaftResult<Vec<C::Entry>, C> {
        self.reader().try_get_log_entries(range).await
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> RaftResult<LogState<C>, C> {
        let read = |e: StorageError| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read);
        let last_purged_log_id: Option<LogId<C::NodeId>> =
            read_state(&self.state, KEY_LAST_PURGED).map_err(read)?;
        let last_log_id = match self.files.last_index() {
            Some(index) => {
                let entries = read_entries::<C>(&self.files, &self.cache, index..=index, u64::MAX)
                    .map_err(read)?;
                let entry = entries.first().ok_or_else(|| {
                    read(StorageError::Background(format!(
                        "log entry {index} vanished"
                    )))
                })?;
                Some(entry.get_log_id().clone())
            }
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> RaftResult<(), C> {
        let write = |e: StorageError| e.into_raft(ErrorSubject::Vote, ErrorVerb::Write);
        write_state(&self.state, KEY_VOTE, vote).map_err(write)?;
        timed(
            "saving the vote",
            self.blocking(|files, sled| {
                files.sync()?;
                sled.flush()
            }),
        )
        .await
        .map_err(write)
    }

    async fn read_vote(&mut self) -> RaftResult<Option<Vote<C::NodeId>>, C> {
        read_state(&self.state, KEY_VOTE)
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> RaftResult<(), C> {
        let result = match committed {
            Some(log_id) => {
                // A leader's entry can be committed by its followers before its own flush
                // (Halyard's openraft patch): the mark claims only what this member has synced,
                // or a power cut could leave it above the log and refuse a start that lost
                // nothing.
                if let Some(mark) = self.files.synced_upto().map(|s| s.min(log_id.index)) {
                    if mark > self.mark {
                        match self.high_water.write(mark) {
                            Ok(()) => self.mark = mark,
                            Err(e) => {
                                tracing::warn!("cannot record the committed high-water mark: {e}")
                            }
                        }
                    }
                }
                // sled's copy is what `read_committed` falls back on when the mark cannot
                // name the commit (its entry not synced here yet, or purged). Where the mark
                // names it, sled's insert only costs the apply that follows its time (it runs
                // before it, at every commit on every member); a copy up to
                // `SLED_COMMITTED_EVERY` commits old is within what openraft allows (the
                // committed id may be lost at a crash and is re-learned from the leader).
                self.commits_unsaved += 1;
                if self.mark < log_id.index || self.commits_unsaved >= SLED_COMMITTED_EVERY {
                    self.commits_unsaved = 0;
                    write_state(&self.state, KEY_COMMITTED, &log_id)
                } else {
                    Ok(())
                }
            }
            None => self
                .state
                .remove(KEY_COMMITTED)
                .map(drop)
                .map_err(Into::into),
        };
        result.map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))
    }

    /// The later of the committed id in sled and the high-water mark. sled's write of the
    /// committed id is not flushed, and without sled's background flusher it reaches the disk
    /// only with the next append: a member killed while idle came back with the committed id of
    /// its second-to-last write burst. The mark's file is written at every commit and survives
    /// a process kill (it may lag only after a power cut), and it never exceeds what this
    /// member synced; replaying up to it is what openraft would do had sled kept the id.
    /// It matters for what the state machine holds at once after a restart: a member restarted
    /// without the last `cluster/change-election-timer` ran elections on its configured 1 s
    /// timer against peers on the agreed 4 s one, kept the term ahead of theirs with a log too
    /// short to win, and the cluster stayed leaderless (ovn_ctl's test caught it).
    async fn read_committed(&mut self) -> RaftResult<Option<LogId<C::NodeId>>, C> {
        let read = |e: StorageError| e.into_raft(ErrorSubject::Store, ErrorVerb::Read);
        let saved: Option<LogId<C::NodeId>> =
            read_state(&self.state, KEY_COMMITTED).map_err(read)?;
        if saved.as_ref().is_some_and(|c| c.index >= self.mark) {
            return Ok(saved);
        }
        // The entry at the mark gives its term; it can be missing only below the last purge
        // (a snapshot covers it then) or after a repaired loss, where sled's id stands.
        let at_mark = read_entries::<C>(&self.files, &self.cache, self.mark..=self.mark, 0)
            .unwrap_or_else(|e| {
                tracing::warn!(mark = self.mark, "the entry at the committed high-water mark is unreadable, using sled's committed id: {e}");
                Vec::new()
            });
        Ok(at_mark
            .first()
            .map(|e| e.get_log_id().clone())
            .filter(|l| l.index == self.mark)
            .or(saved))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> RaftResult<(), C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = |e: StorageError| e.into_raft(ErrorSubject::Logs, ErrorVerb::Write);
        timed("appending to the log", async {
            self.write_entries(entries)?;
            self.flusher.submit(callback).await
        })
        .await
        .map_err(write)
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> RaftResult<(), C> {
        let write =
            |e: StorageError| e.into_raft(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete);
        let index = log_id.index;
        self.cache.truncate(index);
        timed(
            "truncating the log",
            self.blocking(move |files, _| Ok(files.truncate(index)?)),
        )
        .await
        .map_err(write)
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> RaftResult<(), C> {
        let write =
            |e: StorageError| e.into_raft(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete);
        // The marker is durable first: a crash before the segments are gone leaves entries at
        // or below it, which opening the store skips (see `integrity`).
        write_state(&self.state, KEY_LAST_PURGED, &log_id).map_err(&write)?;
        let index = log_id.index;
        self.cache.purge(index);
        // openraft's core waits for this: only the marker's flush is waited for here. The
        // segments' files are removed afterwards by a thread of their own (`LogFiles::purge`);
        // with the marker durable, a crash before they are gone leaves entries the open skips.
        timed(
            "purging the log",
            self.blocking(move |files, sled| {
                sled.flush()?;
                Ok(files.purge(index)?)
            }),
        )
        .await
        .map_err(write)
    }
}
