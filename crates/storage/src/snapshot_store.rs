//! The latest Raft snapshot: openraft's `SnapshotMeta` and the state machine's
//! bytes, kept together in one checksummed sled record so that they are
//! replaced atomically and a half-written snapshot is never loaded.
//!
//! Record payload: `[meta length: u32 big-endian][meta as JSON][data]`.

use std::marker::PhantomData;

use openraft::{RaftTypeConfig, SnapshotMeta};

use crate::error::{Corruption, StorageError};
use crate::layout::{KEY_SNAPSHOT, TREE_SNAPSHOT};
use crate::record;
use crate::sled_files::SledFiles;

/// A snapshot as stored: what openraft knows about it and the state machine's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot<C: RaftTypeConfig> {
    pub meta: SnapshotMeta<C::NodeId, C::Node>,
    pub data: Vec<u8>,
}

/// Saves and loads the latest snapshot. Cheap to clone; hand a clone to the
/// background task that builds snapshots.
pub struct SnapshotStore<C: RaftTypeConfig> {
    db: SledFiles,
    tree: sled::Tree,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for SnapshotStore<C> {
    fn clone(&self) -> Self {
        SnapshotStore {
            db: self.db.clone(),
            tree: self.tree.clone(),
            _types: PhantomData,
        }
    }
}

fn corrupt(reason: Corruption) -> StorageError {
    StorageError::CorruptRecord {
        keyspace: TREE_SNAPSHOT,
        key: String::from_utf8_lossy(KEY_SNAPSHOT).into_owned(),
        reason,
    }
}

impl<C: RaftTypeConfig> SnapshotStore<C> {
    pub(crate) fn new(db: SledFiles, tree: sled::Tree) -> Self {
        SnapshotStore {
            db,
            tree,
            _types: PhantomData,
        }
    }

    fn build_record(
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        let meta_json = serde_json::to_vec(meta).map_err(|source| StorageError::Encode {
            what: "snapshot meta",
            source,
        })?;
        let meta_len = u32::try_from(meta_json.len()).map_err(|_| {
            StorageError::Background(format!("snapshot meta of {} bytes", meta_json.len()))
        })?;
        let mut buf = record::buffer_with_capacity(4 + meta_json.len() + data.len());
        buf.extend_from_slice(&meta_len.to_be_bytes());
        buf.extend_from_slice(&meta_json);
        buf.extend_from_slice(data);
        Ok(buf)
    }

    fn write_record(&self, unsealed: Vec<u8>) -> Result<(), StorageError> {
        self.tree
            .insert(KEY_SNAPSHOT, record::seal_buffer(KEY_SNAPSHOT, unsealed))?;
        self.db.flush()
    }

    /// Replaces the stored snapshot; it is durable when this returns. The
    /// checksum, the write and the fsync run on tokio's blocking pool so a
    /// large snapshot does not stall the caller's runtime thread (only the copy
    /// of `data` into the record happens on it).
    pub async fn save(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let unsealed = Self::build_record(meta, data)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_record(unsealed))
            .await
            .map_err(|e| StorageError::Background(format!("snapshot save task: {e}")))?
    }

    /// [`SnapshotStore::save`] for callers outside an async runtime.
    pub fn save_blocking(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        self.write_record(Self::build_record(meta, data)?)
    }

    /// The stored snapshot, verified against its checksum; `None` if none was saved.
    pub fn load_blocking(&self) -> Result<Option<StoredSnapshot<C>>, StorageError> {
        let Some(bytes) = self.tree.get(KEY_SNAPSHOT)? else {
            return Ok(None);
        };
        let payload = record::unseal(KEY_SNAPSHOT, &bytes).map_err(corrupt)?;
        let undecodable = |what: &str| corrupt(Corruption::Undecodable(what.to_string()));
        let len_bytes: [u8; 4] = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| undecodable("no snapshot meta length"))?;
        let meta_end = 4 + u32::from_be_bytes(len_bytes) as usize;
        let meta_json = payload
            .get(4..meta_end)
            .ok_or_else(|| undecodable("snapshot meta length beyond the record"))?;
        let meta = serde_json::from_slice(meta_json)
            .map_err(|e| undecodable(&format!("snapshot meta: {e}")))?;
        Ok(Some(StoredSnapshot {
            meta,
            data: payload[meta_end..].to_vec(),
        }))
    }

    /// [`SnapshotStore::load_blocking`] on tokio's blocking pool.
    pub async fn load(&self) -> Result<Option<StoredSnapshot<C>>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.load_blocking())
            .await
            .map_err(|e| StorageError::Background(format!("snapshot load task: {e}")))?
    }
}
