//! Where things live inside the sled database: tree names and key encodings.
//! Changing any of these is an on-disk format change.

/// Raft log entries, keyed by big-endian index so that sled's byte order is
/// log order.
pub(crate) const TREE_LOG: &str = "raft_log";
/// Vote, committed log id and last purged log id.
pub(crate) const TREE_RAFT_STATE: &str = "raft_state";
/// The latest snapshot (metadata and data in one record, so they change atomically).
pub(crate) const TREE_SNAPSHOT: &str = "snapshot";
/// Small typed values owned by the state machine (cluster id, server id...).
pub(crate) const TREE_META: &str = "meta";

pub(crate) const KEY_VOTE: &[u8] = b"vote";
pub(crate) const KEY_COMMITTED: &[u8] = b"committed";
pub(crate) const KEY_LAST_PURGED: &[u8] = b"last_purged";
pub(crate) const KEY_SNAPSHOT: &[u8] = b"current";

pub(crate) fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// `None` if the key is not 8 bytes long (never written by this crate).
pub(crate) fn log_index(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}
