//! Opening a member's storage once (sled database and log segments) and handing out the
//! stores built on it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StorageError;
use crate::integrity::{self, LogCheck};
use crate::layout::{TREE_META, TREE_RAFT_STATE, TREE_SNAPSHOT};
use crate::log_files::{self, LogFiles};
use crate::log_migration;
use crate::log_store::LogStore;
use crate::meta_store::MetaStore;
use crate::sled_files::SledFiles;
use crate::snapshot_store::SnapshotStore;

/// sled's page cache size unless told otherwise. sled's own default is 1 GiB;
/// the databases live in Halyard's memory, so sled only needs to cache the log
/// tail and small records.
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;

/// Bytes of log entries one replication read returns at most (at least one entry), unless told
/// otherwise: what bounds one AppendEntries request.
pub const DEFAULT_REPLICATION_READ_BYTES: u64 = 2 * 1024 * 1024;

/// How long an open waits for the database's lock before it reports
/// [`StorageError::Locked`]. sled 0.34 releases its lock file only when the
/// last of its background I/O tasks lets go of the file, a moment after the
/// database was dropped; a member restarted within the same process (and a
/// tool run right after a member stopped) must not take that moment for
/// another live owner.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);

/// How to open a [`Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache size in bytes.
    pub cache_capacity_bytes: u64,
    /// Truncate a corrupt log tail back to the last good entry instead of
    /// refusing to open (see the crate documentation). An operator decision.
    pub repair: bool,
    /// Bytes of entries a replication read (openraft's `limited_get_log_entries`) returns at
    /// most; the first entry is always returned whatever its size. This is what bounds one
    /// AppendEntries request, whose whole round trip (transfer, the follower's write and
    /// fsync) must fit in openraft's per-request deadline of one heartbeat interval.
    pub replication_read_bytes: u64,
    /// How long to wait for a lock held by someone else before giving up.
    pub lock_wait: Duration,
    /// Bytes a new log segment file is given ([`crate::SEGMENT_BYTES`]).
    pub segment_bytes: u64,
    /// Bytes of the newest log entries kept decoded for replication and apply
    /// ([`crate::ENTRY_CACHE_BYTES`]; 0: none).
    pub entry_cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity_bytes: DEFAULT_CACHE_CAPACITY_BYTES,
            repair: false,
            replication_read_bytes: DEFAULT_REPLICATION_READ_BYTES,
            lock_wait: DEFAULT_LOCK_WAIT,
            segment_bytes: crate::SEGMENT_BYTES,
            entry_cache_bytes: crate::ENTRY_CACHE_BYTES,
        }
    }
}

/// One member's durable storage: the sled database and the log's segment files, checked on
/// open.
///
/// The database stays locked while the `Store` or anything it handed out
/// (log store, readers, snapshot and meta stores) is alive; drop them all
/// before opening the same path again.
pub struct Store<C: RaftTypeConfig> {
    sled: SledFiles,
    path: PathBuf,
    files: Arc<LogFiles>,
    state: sled::Tree,
    snapshots: SnapshotStore<C>,
    meta: sled::Tree,
    check: LogCheck,
    replication_read_bytes: u64,
    cache: Arc<crate::entry_cache::EntryCache<C::Entry>>,
    _types: PhantomData<fn() -> C>,
}

impl<C> Store<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned + Clone,
{
    /// Opens (creating if needed) the store at `path` with sled's page cache
    /// set to `cache_capacity_bytes`, and verifies the log; a corrupt log is
    /// an error (no repair).
    pub fn open(path: impl AsRef<Path>, cache_capacity_bytes: u64) -> Result<Self, StorageError> {
        Self::open_with(
            path,
            &StoreOptions {
                cache_capacity_bytes,
                ..StoreOptions::default()
            },
        )
    }

    /// Opens with explicit options (e.g. `repair`).
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        // No background flush: every write that must survive a crash is followed by an explicit
        // flush and fsync (`SledFiles::flush`); the rest (the committed index) may lag. sled's
        // flusher thread otherwise syncs its file every 500 ms even when nothing changed, and on
        // a saturated or throttled disk those syncs queued ahead of a vote's save, which an
        // election waits for.
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(None);
        let db = open_waiting_for_lock(&config, options.lock_wait).map_err(|e| match e {
            OpenError::Locked(io) => StorageError::Locked {
                path: path.display().to_string(),
                detail: io.to_string(),
            },
            OpenError::Sled(e) => StorageError::Sled(e),
        })?;
        let sled = SledFiles::new(db, &path);
        log_migration::migrate(&sled, &path, options.segment_bytes)?;
        let db = sled.db();
        let state = db.open_tree(TREE_RAFT_STATE)?;
        let snapshots = SnapshotStore::open(&path, &sled, &db.open_tree(TREE_SNAPSHOT)?)?;
        let meta = db.open_tree(TREE_META)?;
        let log_dir = path.join(log_files::DIR);
        let mark = crate::high_water::HighWater::new(&path).read();
        let (check, scans) =
            integrity::check_log::<C>(&log_dir, &sled, &state, mark, options.repair)?;
        check_high_water::<C>(&path, &state, &check, options.repair)?;
        let purged: Option<openraft::LogId<C::NodeId>> =
            crate::log_store::read_state(&state, crate::layout::KEY_LAST_PURGED)?;
        let files = Arc::new(LogFiles::open(
            &log_dir,
            scans,
            purged.map(|p| p.index),
            options.segment_bytes,
        )?);
        tracing::info!(path = %path.display(), ?check, "opened raft storage");
        Ok(Store {
            sled,
            path,
            files,
            state,
            snapshots,
            meta,
            check,
            replication_read_bytes: options.replication_read_bytes,
            cache: Arc::new(crate::entry_cache::EntryCache::new(
                options.entry_cache_bytes,
            )),
            _types: PhantomData,
        })
    }

    /// The Raft log store for `openraft::Raft::new`. Take one per Raft
    /// instance; each starts its own flusher thread.
    pub fn log_store(&self) -> Result<LogStore<C>, StorageError> {
        LogStore::new(
            self.sled.clone(),
            self.state.clone(),
            self.files.clone(),
            crate::high_water::HighWater::new(&self.path),
            self.replication_read_bytes,
            self.cache.clone(),
        )
    }

    /// The snapshot store for the state machine.
    pub fn snapshot_store(&self) -> SnapshotStore<C> {
        self.snapshots.clone()
    }

    /// The metadata keyspace for the state machine.
    pub fn meta_store(&self) -> MetaStore {
        MetaStore::new(self.sled.clone(), self.meta.clone())
    }

    /// What the open-time log check found (and repaired).
    /// The sled tree of Raft state (vote, committed id, purge marker), for tests.
    #[cfg(test)]
    pub(crate) fn raft_state(&self) -> &sled::Tree {
        &self.state
    }

    pub fn log_check(&self) -> &LogCheck {
        &self.check
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the store occupies on disk: sled's own accounting, the log's segments
    /// (their preallocated size) and the snapshot files.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.sled.db().size_on_disk()?
            + self.files.size_on_disk()?
            + self.snapshots.size_on_disk()?)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.files.sync()?;
        self.sled.flush()
    }
}

/// Refuses a log that ends below the committed index recorded outside sled (see
/// [`crate::high_water`]).
fn check_high_water<C: RaftTypeConfig>(
    path: &Path,
    state: &sled::Tree,
    check: &LogCheck,
    repair: bool,
) -> Result<(), StorageError> {
    let mut mark = crate::high_water::HighWater::new(path);
    let Some(committed) = mark.read() else {
        return Ok(());
    };
    let purged: Option<openraft::LogId<C::NodeId>> =
        crate::log_store::read_state(state, crate::layout::KEY_LAST_PURGED)?;
    let last = check
        .last_index
        .unwrap_or(0)
        .max(purged.map(|l| l.index).unwrap_or(0));
    if committed <= last {
        return Ok(());
    }
    if !repair {
        return Err(StorageError::LostCommittedEntries { committed, last });
    }
    tracing::error!(
        committed,
        last,
        "the raft log lost committed entries; continuing because repair was requested: this \
         member will catch up from the others (a single-member cluster has lost those writes)"
    );
    mark.write(last)
        .map_err(|e| StorageError::Background(format!("rewriting the high-water mark: {e}")))
}

enum OpenError {
    Locked(std::io::Error),
    Sled(sled::Error),
}

/// Opens `config`, retrying while its lock is held, for at most `wait`.
fn open_waiting_for_lock(config: &sled::Config, wait: Duration) -> Result<sled::Db, OpenError> {
    let deadline = Instant::now() + wait;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled 0.34 reports a held lock only through this message.
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if Instant::now() >= deadline {
                    return Err(OpenError::Locked(io));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(OpenError::Sled(e)),
        }
    }
}
