//! Durable Raft storage for Halyard: openraft 0.9 storage-v2 log storage
//! ([`LogStore`]) with the entries in segment files of its own (module `log_files`) and the
//! vote, committed and purged ids in sled; the latest snapshot in files of its own
//! ([`SnapshotStore`], written and sent as streams); a small metadata keyspace ([`MetaStore`])
//! in sled; all opened together by [`Store::open`]. Generic over the openraft type config `C`; entries, votes
//! and log ids are stored as JSON (`C::Entry: Serialize + DeserializeOwned`),
//! self-describing so application commands holding `serde_json::Value`
//! round-trip. The newest entries are also kept decoded in memory (module `entry_cache`), so
//! that replication and apply, which read each entry right after its append, do not decode it
//! again.
//!
//! # Durability
//! An `append` is reported to openraft (`LogFlushed::log_io_completed`) only
//! after an `fdatasync` that covers it; one background thread batches the syncs of
//! all appends queued meanwhile ([`flusher`]). The vote, a truncation, a purge marker, a
//! snapshot (data file, then the pointer naming it) and a metadata `put` are synced before their
//! call returns; sled's own flush is
//! followed by an `fsync` of its files, which sled 0.34 does not do (module `sled_files`). The
//! committed log id is written without a flush (openraft tolerates losing it).
//!
//! # Integrity
//! Every record carries a format byte and a CRC-32 of its key and bytes
//! (module `record`). Opening a store reads the whole log back ([`integrity`]):
//! - a last entry whose **write a crash cut short** (it ends in zeros from a sector
//!   boundary, or past the end of its file) was never synced nor acknowledged: it is cut
//!   off, with a warning, and the store opens (`LogCheck::torn_write_cut`);
//! - any other damaged **tail** (damaged entries with no good entry after them)
//!   makes `open` fail with [`StorageError::CorruptLogTail`], which
//!   names the first bad index and the last good one; opening with
//!   [`StoreOptions::repair`] instead truncates the log to the last good entry
//!   (lowering a persisted committed id that pointed past it) and logs the
//!   loss with `tracing::error!`;
//! - a damaged entry **in the middle** ([`StorageError::CorruptLogEntry`]) or a
//!   gap in the indexes ([`StorageError::LogGap`]) always fails: truncating
//!   would discard good entries, so the member must be rebuilt from a peer;
//! - a damaged vote / committed / purged record fails with
//!   [`StorageError::CorruptRecord`] and is never repaired.
//!
//! - a log that ends short of what was committed (lost segment data, or damage sled recovered
//!   from silently); a committed-index high-water mark kept beside the log ([`high_water`]) catches that:
//!   [`StorageError::LostCommittedEntries`] (repairable: the member then catches up from peers).
//!
//! Snapshot and metadata records are verified when read (a snapshot's data against the length and
//! CRC-32 its pointer records, when it is loaded whole). sled's own errors
//! are [`StorageError::Sled`] (a database held by another open store is
//! [`StorageError::Locked`], after waiting [`DEFAULT_LOCK_WAIT`] for it); nothing
//! panics on bad bytes. Everything converts
//! to openraft's `StorageError` / `StorageIOError`.

mod entry_cache;
pub mod error;
pub mod flusher;
mod high_water;
pub mod integrity;
mod layout;
mod log_files;
mod log_migration;
pub mod log_store;
pub mod meta_store;
mod record;
mod sled_files;
pub mod snapshot_store;
pub mod store;

#[cfg(test)]
mod tests;

pub use entry_cache::ENTRY_CACHE_BYTES;
pub use error::{Corruption, StorageError};
pub use flusher::{FlushMetrics, FlushStats};
pub use integrity::LogCheck;
pub use log_files::SEGMENT_BYTES;
pub use log_store::{LogReader, LogStore};
pub use meta_store::MetaStore;
pub use snapshot_store::{
    NewSnapshot, PacedWriter, Sealed, SnapshotFile, SnapshotStore, StoredSnapshot,
    SNAPSHOT_SYNC_EVERY_BYTES,
};
pub use store::{Store, StoreOptions, DEFAULT_CACHE_CAPACITY_BYTES, DEFAULT_LOCK_WAIT};
