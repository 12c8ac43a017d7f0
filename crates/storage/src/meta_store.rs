//! A small durable keyspace for the state machine's own facts (cluster id,
//! server id, last applied log id...): typed values, checksummed like every
//! record, flushed before `put` returns.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StorageError;
use crate::layout::TREE_META;
use crate::record;
use crate::sled_files::SledFiles;

/// Typed get/put of small values by string key. Cheap to clone.
#[derive(Clone)]
pub struct MetaStore {
    db: SledFiles,
    tree: sled::Tree,
}

impl MetaStore {
    pub(crate) fn new(db: SledFiles, tree: sled::Tree) -> Self {
        MetaStore { db, tree }
    }

    /// The value under `key`, `None` if absent; damaged bytes are
    /// [`StorageError::CorruptRecord`].
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        match self.tree.get(key.as_bytes())? {
            None => Ok(None),
            Some(bytes) => record::decode(key.as_bytes(), &bytes)
                .map(Some)
                .map_err(|reason| StorageError::CorruptRecord {
                    keyspace: TREE_META,
                    key: key.to_string(),
                    reason,
                }),
        }
    }

    /// Stores `value` under `key`; durable when this returns.
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        self.write(key, value)?;
        self.db.flush_async().await
    }

    /// [`MetaStore::put`] for callers outside an async runtime.
    pub fn put_blocking<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        self.write(key, value)?;
        self.db.flush()
    }

    /// Removes `key`; durable when this returns.
    pub async fn remove(&self, key: &str) -> Result<(), StorageError> {
        self.tree.remove(key.as_bytes())?;
        self.db.flush_async().await
    }

    fn write<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StorageError> {
        let rec = record::encode(key.as_bytes(), value, "meta value")?;
        self.tree.insert(key.as_bytes(), rec)?;
        Ok(())
    }
}
