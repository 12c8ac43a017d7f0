//! Making sled's writes durable for real.
//!
//! sled 0.34's `flush` ends with `sync_file_range` on its data file (Linux), which does not
//! flush the device's write cache or commit the file's metadata, and it never syncs the blob
//! files holding values over 128 KiB (snapshots). After sled's flush, [`SledFiles::flush`]
//! therefore syncs the data file, every blob file and the blob directory through descriptors
//! of its own: `fsync` applies to the file, whoever wrote it. Used for what must survive a
//! power cut: the vote, the purge marker, snapshots, metadata, repairs.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

#[derive(Clone)]
pub(crate) struct SledFiles {
    db: sled::Db,
    dir: PathBuf,
}

impl SledFiles {
    pub(crate) fn new(db: sled::Db, dir: &Path) -> SledFiles {
        SledFiles {
            db,
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// sled's flush, then `fsync` of its files.
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        self.sync_files()
            .map_err(|e| StorageError::Background(format!("syncing sled's files: {e}")))
    }

    /// [`SledFiles::flush`] off the async task (it blocks on the disk).
    pub(crate) async fn flush_async(&self) -> Result<(), StorageError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.flush())
            .await
            .map_err(|e| StorageError::Background(format!("sled flush task: {e}")))?
    }

    fn sync_files(&self) -> io::Result<()> {
        File::open(self.dir.join("db"))?.sync_data()?;
        let blobs = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            match File::open(&path) {
                Ok(f) => f.sync_all()?,
                // sled removed an old blob meanwhile: nothing to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        crate::log_files::sync_dir(&blobs)
    }
}
