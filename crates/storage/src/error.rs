//! Typed storage errors, and their translation into openraft's `StorageError`.
//!
//! Every failure of this crate — sled's own errors included — surfaces as a
//! [`StorageError`]; nothing here panics on bad bytes from disk.

use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId};

/// Why a stored record could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("record is {len} bytes, shorter than its {header}-byte header")]
    TooShort { len: usize, header: usize },
    #[error("unknown record format version {0}")]
    UnknownFormat(u8),
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("checksum is valid but the payload does not decode: {0}")]
    Undecodable(String),
    #[error("key is {len} bytes, a log key is 8")]
    BadKey { len: usize },
    #[error("stored under index {key} but the entry says index {entry}")]
    IndexMismatch { key: u64, entry: u64 },
}

/// Errors of the Halyard storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),

    /// Reading or writing the log's segment files (or syncing a file) failed.
    #[error("raft log files: {0}")]
    Io(#[from] std::io::Error),

    /// Reading, writing or syncing a snapshot file (or its directory) failed.
    #[error("snapshot file {path}: {source}")]
    SnapshotFile {
        path: String,
        source: std::io::Error,
    },

    /// The log (with its purged prefix) ends below the committed index recorded outside sled:
    /// sled lost entries this member had committed.
    #[error(
        "the raft log ends at index {last} but index {committed} was committed: the storage lost \
         committed entries (damaged files?); refusing to start — restore this member from a peer, \
         or reopen with repair to accept the loss and catch up from the other members"
    )]
    LostCommittedEntries { committed: u64, last: u64 },

    /// Another process (or another live `Store` in this one) has the database open.
    #[error("storage directory {path} is locked by another open store: {detail}")]
    Locked { path: String, detail: String },

    /// The last entries of the log are damaged (typically a torn write at a
    /// crash). Opening with `repair` truncates the log back to `last_good`.
    #[error(
        "raft log tail is corrupt from index {index} ({count} damaged entr{plural} at the end, \
         last good entry: {last_good}): {reason}; {committed_note}refusing to start — reopen with \
         the repair option to truncate the log back to the last good entry",
        plural = if *count == 1 { "y" } else { "ies" },
        last_good = match last_good { Some(i) => i.to_string(), None => "none".to_string() },
        committed_note = if *committed { "WARNING: the damaged range includes entries known to be committed; " } else { "" },
    )]
    CorruptLogTail {
        index: u64,
        last_good: Option<u64>,
        count: u64,
        /// The damaged range reaches at or below the persisted committed index.
        committed: bool,
        reason: Corruption,
    },

    /// A damaged entry with intact entries after it: not a torn write, and not
    /// something truncation can fix without losing good entries.
    #[error(
        "raft log entry at index {index} is corrupt but later entries are intact: {reason}; \
         refusing to start (not repairable by truncation: restore this member from a peer)"
    )]
    CorruptLogEntry { index: u64, reason: Corruption },

    /// Entries are missing between two present ones.
    #[error(
        "raft log has a gap: entry {after} is followed by entry {next}; refusing to start \
         (restore this member from a peer)"
    )]
    LogGap { after: u64, next: u64 },

    /// A non-log record (vote, committed, purged, snapshot, metadata) is damaged.
    #[error("stored record {keyspace}/{key} is corrupt: {reason}")]
    CorruptRecord {
        keyspace: &'static str,
        key: String,
        reason: Corruption,
    },

    #[error("cannot serialise {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },

    #[error("storage background task failed: {0}")]
    Background(String),
}

impl StorageError {
    /// Wraps this error as openraft's I/O error about `subject` while doing `verb`.
    pub fn into_raft<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> openraft::StorageError<NID> {
        openraft::StorageError::IO {
            source: self.into_raft_io(subject, verb),
        }
    }

    /// Like [`StorageError::into_raft`], but the bare `StorageIOError`.
    pub fn into_raft_io<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> openraft::StorageIOError<NID> {
        openraft::StorageIOError::new(subject, verb, AnyError::new(&self))
    }

    /// Reading damaged bytes is a read failure; anything else failed a write.
    fn default_verb(&self) -> ErrorVerb {
        match self {
            StorageError::CorruptLogTail { .. }
            | StorageError::CorruptLogEntry { .. }
            | StorageError::LogGap { .. }
            | StorageError::CorruptRecord { .. }
            | StorageError::LostCommittedEntries { .. } => ErrorVerb::Read,
            StorageError::Sled(_)
            | StorageError::Io(_)
            | StorageError::SnapshotFile { .. }
            | StorageError::Locked { .. }
            | StorageError::Encode { .. }
            | StorageError::Background(_) => ErrorVerb::Write,
        }
    }
}

/// For callers (the state machine) that have no more precise subject: the
/// subject is `Store`, the verb `Read` for damaged data and `Write` otherwise.
impl<NID: NodeId> From<StorageError> for openraft::StorageIOError<NID> {
    fn from(e: StorageError) -> Self {
        let verb = e.default_verb();
        e.into_raft_io(ErrorSubject::Store, verb)
    }
}

/// See the `StorageIOError` conversion for the subject and verb chosen.
impl<NID: NodeId> From<StorageError> for openraft::StorageError<NID> {
    fn from(e: StorageError) -> Self {
        openraft::StorageError::IO { source: e.into() }
    }
}
