//! Durable Raft storage for Halyard on sled: openraft 0.9 storage-v2 log
//! storage ([`LogStore`]), the latest snapshot ([`SnapshotStore`]) and a small
//! metadata keyspace ([`MetaStore`]), all in one sled database opened by
//! [`Store::open`]. Generic over the openraft type config `C`; entries, votes
//! and log ids are stored as JSON (`C::Entry: Serialize + DeserializeOwned`),
//! self-describing so application commands holding `serde_json::Value`
//! round-trip.
//!
//! # Durability
//! An `append` is reported to openraft (`LogFlushed::log_io_completed`) only
//! after an fsync that covers it; one background thread batches the fsyncs of
//! all appends queued meanwhile ([`flusher`]). The vote, a truncation, a
//! snapshot and a metadata `put` are flushed before their call returns. The
//! committed log id and purges are written without their own flush (openraft
//! tolerates losing them); sled recovers a prefix of the writes, so they
//! become durable with the next flush, in order.
//!
//! # Integrity
//! Every record carries a format byte and a CRC-32 of its key and bytes
//! (module `record`). Opening a store reads the whole log back ([`integrity`]):
//! - a damaged **tail** (damaged entries with no good entry after them, e.g. a
//!   torn write) makes `open` fail with [`StorageError::CorruptLogTail`], which
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
//! - sled itself can silently recover a prefix of its writes after damage to its files; a
//!   committed-index high-water mark kept outside sled ([`high_water`]) catches that:
//!   [`StorageError::LostCommittedEntries`] (repairable: the member then catches up from peers).
//!
//! Snapshot and metadata records are verified when read. sled's own errors
//! are [`StorageError::Sled`] (a database held by another open store is
//! [`StorageError::Locked`], after waiting [`DEFAULT_LOCK_WAIT`] for it); nothing
//! panics on bad bytes. Everything converts
//! to openraft's `StorageError` / `StorageIOError`.

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

pub use error::{Corruption, StorageError};
pub use flusher::{FlushMetrics, FlushStats};
pub use integrity::LogCheck;
pub use log_files::SEGMENT_BYTES;
pub use log_store::{LogReader, LogStore};
pub use meta_store::MetaStore;
pub use snapshot_store::{SnapshotStore, StoredSnapshot};
pub use store::{Store, StoreOptions, DEFAULT_CACHE_CAPACITY_BYTES, DEFAULT_LOCK_WAIT};
