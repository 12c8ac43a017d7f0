//! The Raft log, vote and committed log id: openraft's storage-v2
//! `RaftLogStorage` and `RaftLogReader` on sled.
//!
//! Durability, operation by operation:
//! - `append`: entries are written at once (readable immediately) and reported
//!   to openraft through `LogFlushed` only after an fsync covering them, done
//!   by the batching [`crate::flusher`].
//! - `save_vote`, `truncate`: flushed before returning (a vote must never be
//!   forgotten; a truncation must not resurrect entries under later appends).
//! - `save_committed`, `purge`: written but not flushed; openraft allows both to
//!   be lost at a crash (the committed id is re-learned from the leader, purged
//!   entries simply reappear), and sled recovers a prefix of the writes, so the
//!   next flush makes them durable in order.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Corruption, StorageError};
use crate::flusher::{FlushMetrics, FlushStats, Flusher};
use crate::layout::{self, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE, TREE_LOG, TREE_RAFT_STATE};
use crate::record;

type RaftResult<T, C> = Result<T, openraft::StorageError<<C as RaftTypeConfig>::NodeId>>;

/// The durable Raft log of one member. Get it from [`crate::Store::log_store`];
/// give it to `openraft::Raft::new`. Dropping it waits for the last queued
/// flush to finish.
pub struct LogStore<C: RaftTypeConfig> {
    db: sled::Db,
    log: sled::Tree,
    state: sled::Tree,
    flusher: Flusher<LogFlushed<C>>,
    high_water: crate::high_water::HighWater,
    read_budget: u64,
}

/// A read-only view of the log for openraft's replication tasks. Cheap to clone.
pub struct LogReader<C: RaftTypeConfig> {
    log: sled::Tree,
    /// Bytes one `limited_get_log_entries` returns at most (the first entry always).
    read_budget: u64,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader {
            log: self.log.clone(),
            read_budget: self.read_budget,
            _types: PhantomData,
        }
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    pub(crate) fn new(
        db: sled::Db,
        log: sled::Tree,
        state: sled::Tree,
        high_water: crate::high_water::HighWater,
        read_budget: u64,
    ) -> Result<Self, StorageError> {
        let flusher = Flusher::start(db.clone())?;
        Ok(LogStore {
            db,
            log,
            state,
            flusher,
            high_water,
            read_budget,
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
            log: self.log.clone(),
            read_budget: self.read_budget,
            _types: PhantomData,
        }
    }

    fn write_entries<I>(&self, entries: I) -> Result<Option<u64>, StorageError>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        // One `insert` per entry, in index order, rather than one `apply_batch`: sled 0.34 writes
        // a batch with extra log records and buffer writes of its own (measured: 2.5 times the
        // I/O-pool context switches of an insert and a flush, the cost of every replicated
        // write on every member). Atomicity is not needed: sled recovers a prefix of its writes,
        // and a prefix of appended entries is a valid log, none of which openraft was told is
        // durable before the flush that follows.
        let mut last = None;
        for entry in entries {
            let index = entry.get_log_id().index;
            let key = layout::log_key(index);
            self.log
                .insert(key, record::encode(&key, &entry, "log entry")?)?;
            last = Some(index);
        }
        Ok(last)
    }

    fn remove_range(&self, range: impl RangeBounds<u64>) -> Result<u64, StorageError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        if let Some(keys) = key_range(range) {
            for item in self.log.range(keys) {
                let (key, _) = item?;
                batch.remove(key);
                n += 1;
            }
        }
        self.log.apply_batch(batch)?;
        Ok(n)
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

/// A range of sled keys, as `Tree::range` takes it.
type KeyRange = (Bound<[u8; 8]>, Bound<[u8; 8]>);

/// sled key bounds for a range of indexes; `None` when the range is empty.
fn key_range(range: impl RangeBounds<u64>) -> Option<KeyRange> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => Bound::Included(e),
        Bound::Excluded(&e) => {
            if e == 0 {
                return None;
            }
            Bound::Included(e - 1)
        }
        Bound::Unbounded => Bound::Unbounded,
    };
    match end {
        Bound::Included(e) if e < start => None,
        Bound::Included(e) => Some((
            Bound::Included(layout::log_key(start)),
            Bound::Included(layout::log_key(e)),
        )),
        _ => Some((Bound::Included(layout::log_key(start)), Bound::Unbounded)),
    }
}

/// The entries of `range` in order, stopping after the entry that brings the stored bytes read
/// to `budget` or more (so at least one entry whenever the range has one).
fn read_entries<C>(
    log: &sled::Tree,
    range: impl RangeBounds<u64>,
    budget: u64,
) -> Result<Vec<C::Entry>, StorageError>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let Some(keys) = key_range(range) else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    for item in log.range(keys) {
        let (key, value) = item?;
        let (_, entry) = decode_entry::<C>(&key, &value).map_err(|r| corrupt_entry(&key, r))?;
        entries.push(entry);
        bytes += value.len() as u64;
        if bytes >= budget {
            break;
        }
    }
    Ok(entries)
}

impl<C> RaftLogReader<C> for LogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> RaftResult<Vec<C::Entry>, C> {
        read_entries::<C>(&self.log, range, u64::MAX)
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
        read_entries::<C>(&self.log, start..end, self.read_budget)
            .map_err(|e| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
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
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> RaftResult<LogState<C>, C> {
        let read = |e: StorageError| e.into_raft(ErrorSubject::Logs, ErrorVerb::Read);
        let last_purged_log_id: Option<LogId<C::NodeId>> =
            read_state(&self.state, KEY_LAST_PURGED).map_err(read)?;
        let last_log_id = match self.log.last().map_err(|e| read(e.into()))? {
            Some((key, value)) => {
                let (_, entry) =
                    decode_entry::<C>(&key, &value).map_err(|r| read(corrupt_entry(&key, r)))?;
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
        self.db.flush_async().await.map_err(|e| write(e.into()))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> RaftResult<Option<Vote<C::NodeId>>, C> {
        read_state(&self.state, KEY_VOTE)
            .map_err(|e| e.into_raft(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(&mut self, committed: Option<LogId<C::NodeId>>) -> RaftResult<(), C> {
        let result = match committed {
            Some(log_id) => write_state(&self.state, KEY_COMMITTED, &log_id).inspect(|()| {
                // Committed entries are already durable here (an append is acknowledged only
                // after its flush), so the mark never runs ahead of the log.
                if let Err(e) = self.high_water.write(log_id.index) {
                    tracing::warn!("cannot record the committed high-water mark: {e}");
                }
            }),
            None => self
                .state
                .remove(KEY_COMMITTED)
                .map(drop)
                .map_err(Into::into),
        };
        result.map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> RaftResult<Option<LogId<C::NodeId>>, C> {
        read_state(&self.state, KEY_COMMITTED)
            .map_err(|e| e.into_raft(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> RaftResult<(), C>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = |e: StorageError| e.into_raft(ErrorSubject::Logs, ErrorVerb::Write);
        self.write_entries(entries).map_err(write)?;
        self.flusher.submit(callback).await.map_err(write)
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> RaftResult<(), C> {
        let write =
            |e: StorageError| e.into_raft(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete);
        self.remove_range(log_id.index..).map_err(&write)?;
        self.db.flush_async().await.map_err(|e| write(e.into()))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> RaftResult<(), C> {
        let write =
            |e: StorageError| e.into_raft(ErrorSubject::Log(log_id.clone()), ErrorVerb::Delete);
        // The marker goes first: a crash between the two writes leaves entries
        // at or below it, which opening the store removes (see `integrity`).
        write_state(&self.state, KEY_LAST_PURGED, &log_id).map_err(&write)?;
        self.remove_range(..=log_id.index).map_err(write)?;
        Ok(())
    }
}
