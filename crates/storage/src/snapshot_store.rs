//! The latest Raft snapshot, in files of its own beside sled, written and read as streams.
//!
//! Layout of `<store>/snapshots/`:
//! - `snap-<n>.data`: one snapshot's bytes, exactly as the state machine wrote them and as
//!   openraft streams them to a peer (chunk by chunk, from the file);
//! - `current`: a sealed record (format byte and CRC-32, module `record`) naming the current
//!   snapshot: openraft's `SnapshotMeta`, the data file's name, its length and its CRC-32.
//!
//! A snapshot becomes current in one step: its data file is synced first, then a new `current`
//! is written beside the old one, synced, and renamed over it, and the directory is synced.
//! A crash at any point leaves the old snapshot or the new one, never a mix; whatever else is in
//! the directory at open (a half-written build, a half-received snapshot, a replaced data file
//! whose removal was cut short) is left over from a crash and removed.
//!
//! Why files and not a sled value (as up to session 15): a sled value is built and written
//! whole, so a snapshot of a 420 MB database cost up to five copies of it in memory at once
//! (the encoded databases, the bincode image, the sealed record, sled's copy and its blob
//! write): 2-2.8 GB of peak RSS per member, which got members of a soak killed by the kernel.
//! Through a file, the state machine encodes straight into it and a peer is sent chunks read
//! from it; only a snapshot being loaded or installed is held in memory, once.
//!
//! Earlier versions kept the snapshot in one sled record (`snapshot/current`); opening a store
//! moves such a record into the files (then removes it from sled).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use openraft::{RaftTypeConfig, SnapshotMeta};
use serde::{Deserialize, Serialize};

use crate::error::{Corruption, StorageError};
use crate::layout::{KEY_SNAPSHOT, TREE_SNAPSHOT};
use crate::log_files::sync_dir;
use crate::record;
use crate::sled_files::SledFiles;

/// The snapshots' directory inside a store.
pub const DIR: &str = "snapshots";
const POINTER: &str = "current";
const POINTER_TMP: &str = "current.tmp";
/// The key the pointer record is sealed under (part of its checksum).
const POINTER_KEY: &[u8] = b"snapshots/current";
/// Bytes read at a time when a data file is checked.
const READ_CHUNK: usize = 1 << 20;

/// A snapshot as loaded: what openraft knows about it and the state machine's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot<C: RaftTypeConfig> {
    pub meta: SnapshotMeta<C::NodeId, C::Node>,
    pub data: Vec<u8>,
}

/// What `current` says.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Pointer<C: RaftTypeConfig> {
    meta: SnapshotMeta<C::NodeId, C::Node>,
    file: String,
    len: u64,
    crc32: u32,
}

impl<C: RaftTypeConfig> Clone for Pointer<C> {
    fn clone(&self) -> Self {
        Pointer {
            meta: self.meta.clone(),
            file: self.file.clone(),
            len: self.len,
            crc32: self.crc32,
        }
    }
}

/// A file not (yet) part of the store: removed when dropped, unless kept.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    keep: bool,
}

impl Pending {
    fn kept(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bytes of a snapshot being built written between two syncs of its file. Synced only at its
/// end, a snapshot of hundreds of megabytes was one burst of writeback that queued the disk
/// for a second or more ahead of every Raft log sync and vote save of the members sharing it
/// (a follower called an election during another member's compaction).
pub const SNAPSHOT_SYNC_EVERY_BYTES: u64 = 16 * 1024 * 1024;

/// A new, empty data file to encode a snapshot into (blocking writes); see
/// [`SnapshotStore::seal_blocking`]. Removed if dropped before it is committed.
#[derive(Debug)]
pub struct NewSnapshot {
    pub file: File,
    pending: Pending,
}

impl NewSnapshot {
    /// A writer that syncs the file every [`SNAPSHOT_SYNC_EVERY_BYTES`], so that its writeback
    /// is spread over the build instead of queued at its end.
    pub fn paced(&mut self) -> PacedWriter<'_> {
        PacedWriter {
            file: &self.file,
            unsynced: 0,
        }
    }
}

/// See [`NewSnapshot::paced`].
pub struct PacedWriter<'a> {
    file: &'a File,
    unsynced: u64,
}

impl Write for PacedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SNAPSHOT_SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::io::Seek for PacedWriter<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// A data file that is written, synced and measured, ready for [`SnapshotStore::commit_blocking`].
/// Removed if dropped before it is committed.
#[derive(Debug)]
pub struct Sealed {
    pending: Pending,
    len: u64,
    crc32: u32,
}

impl Sealed {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// CRC-32 (IEEE) of the data.
    pub fn crc32(&self) -> u32 {
        self.crc32
    }
}

/// openraft's `SnapshotData`: a snapshot's data file, read when it is sent to a peer, written
/// when one is received. A file being received is removed if it is dropped before it is
/// installed (openraft drops it when a transfer is abandoned).
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    pending: Option<Pending>,
    /// Set for a file being received.
    writeback: Option<Writeback>,
}

/// The pacing of a file being received, as [`PacedWriter`] paces a build: every
/// [`SNAPSHOT_SYNC_EVERY_BYTES`] written, a sync on a blocking thread (one at a time, the writes
/// go on meanwhile). Unpaced, a received snapshot of a few hundred megabytes sat in the page
/// cache until the sync that seals it, then went to the disk in one burst ahead of every log
/// sync of the members sharing that disk (one writer's longest write 65 ms against 20-27 ms
/// during a build on the bench machine: docs/performance.md, "Snapshot work and one writer").
#[derive(Debug)]
struct Writeback {
    /// The same open file (a duplicated descriptor): a sync through it covers the writes.
    file: Arc<File>,
    unsynced: u64,
    running: Option<tokio::task::JoinHandle<io::Result<()>>>,
    started: u64,
}

impl Writeback {
    /// Counts `n` bytes written; collects a finished sync (its error is the write's: the
    /// kernel reports a writeback error to one sync of an open file only, so it must not be
    /// dropped here) and starts the next one when enough is unsynced.
    fn wrote(&mut self, n: u64, cx: &mut Context<'_>) -> io::Result<()> {
        use std::future::Future;
        self.unsynced += n;
        if let Some(running) = self.running.as_mut() {
            match Pin::new(running).poll(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(result) => {
                    self.running = None;
                    joined(result)?;
                }
            }
        }
        if self.unsynced >= SNAPSHOT_SYNC_EVERY_BYTES {
            let file = self.file.clone();
            self.running = Some(tokio::task::spawn_blocking(move || file.sync_data()));
            self.unsynced = 0;
            self.started += 1;
        }
        Ok(())
    }

    /// Waits for the sync still running, if any.
    async fn finish(&mut self) -> io::Result<()> {
        match self.running.take() {
            Some(running) => joined(running.await),
            None => Ok(()),
        }
    }
}

fn joined(result: Result<io::Result<()>, tokio::task::JoinError>) -> io::Result<()> {
    result.map_err(|e| io::Error::other(format!("snapshot writeback task: {e}")))?
}

impl SnapshotFile {
    /// Syncs started while the file was being received (see [`Writeback`]).
    #[cfg(test)]
    pub(crate) fn writeback_syncs(&self) -> u64 {
        self.writeback.as_ref().map_or(0, |w| w.started)
    }

    /// Flushes and syncs a received file and measures it (length and CRC-32, read in pieces):
    /// what installing a snapshot needs (the file, at its start, to decode from, and
    /// [`Sealed`] to commit it). The snapshot is never whole in memory here: a member catching
    /// up through a snapshot of hundreds of megabytes held it once more while decoding.
    pub async fn into_received(mut self) -> Result<(File, Sealed), StorageError> {
        use tokio::io::AsyncWriteExt;
        let pending = self.pending.take().ok_or_else(|| {
            StorageError::Background("a stored snapshot's file is not a received one".into())
        })?;
        self.file.flush().await.map_err(at(&pending.path))?;
        if let Some(writeback) = self.writeback.as_mut() {
            writeback.finish().await.map_err(at(&pending.path))?;
        }
        let file = self.file.into_std().await;
        tokio::task::spawn_blocking(move || {
            let measured = file.sync_all().and_then(|()| measure(&file));
            let (len, crc32) = measured.map_err(at(&pending.path))?;
            Ok((
                file,
                Sealed {
                    len,
                    crc32,
                    pending,
                },
            ))
        })
        .await
        .map_err(|e| StorageError::Background(format!("snapshot read task: {e}")))?
    }
}

impl tokio::io::AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "a stored snapshot is never written to",
            )));
        }
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.file).poll_write(cx, buf))?;
        if let Some(writeback) = this.writeback.as_mut() {
            writeback.wrote(n as u64, cx)?;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl tokio::io::AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.file).poll_complete(cx)
    }
}

struct Inner<C: RaftTypeConfig> {
    dir: PathBuf,
    /// The pointer as on disk; held while a snapshot is committed, so commits are one at a time.
    current: Mutex<Option<Pointer<C>>>,
    next_file: AtomicU64,
}

/// Saves and loads the latest snapshot. Cheap to clone; hand a clone to the
/// background task that builds snapshots.
pub struct SnapshotStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
    _types: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for SnapshotStore<C> {
    fn clone(&self) -> Self {
        SnapshotStore {
            inner: self.inner.clone(),
            _types: PhantomData,
        }
    }
}

fn corrupt(key: &str, reason: Corruption) -> StorageError {
    StorageError::CorruptRecord {
        keyspace: DIR,
        key: key.to_string(),
        reason,
    }
}

/// An I/O error about the snapshot file (or directory) at `path`.
fn at(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::SnapshotFile {
        path: path.display().to_string(),
        source,
    }
}

fn file_number(name: &str) -> Option<u64> {
    name.strip_prefix("snap-")?
        .strip_suffix(".data")?
        .parse()
        .ok()
}

/// Length and CRC-32 of what `file` holds, read from its start in pieces; leaves the file at
/// its start (to be read again).
fn measure(mut file: &File) -> io::Result<(u64, u32)> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(0))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0; READ_CHUNK];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.seek(io::SeekFrom::Start(0))?;
    Ok((len, hasher.finalize()))
}

impl<C: RaftTypeConfig> SnapshotStore<C> {
    /// Opens the snapshots' directory under `store_path` (creating it), removes what a crash
    /// left there, and moves a snapshot kept by an earlier version in sled into the files.
    pub(crate) fn open(
        store_path: &Path,
        sled: &SledFiles,
        legacy: &sled::Tree,
    ) -> Result<Self, StorageError> {
        let dir = store_path.join(DIR);
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
        let current = Self::read_pointer(&dir)?;
        let mut highest = 0;
        for entry in std::fs::read_dir(&dir).map_err(at(&dir))? {
            let name = entry
                .map_err(at(&dir))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name == POINTER || current.as_ref().is_some_and(|p| p.file == name) {
                highest = highest.max(file_number(&name).unwrap_or(0));
                continue;
            }
            tracing::info!(file = %name, "removing a snapshot file left over from a crash");
            std::fs::remove_file(dir.join(&name)).map_err(at(&dir.join(&name)))?;
        }
        let store = SnapshotStore {
            inner: Arc::new(Inner {
                dir,
                current: Mutex::new(current),
                next_file: AtomicU64::new(highest + 1),
            }),
            _types: PhantomData,
        };
        store.migrate(sled, legacy)?;
        Ok(store)
    }

    fn read_pointer(dir: &Path) -> Result<Option<Pointer<C>>, StorageError> {
        let path = dir.join(POINTER);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(at(&path)(e)),
        };
        let pointer: Pointer<C> =
            record::decode(POINTER_KEY, &bytes).map_err(|r| corrupt(POINTER, r))?;
        if file_number(&pointer.file).is_none() {
            return Err(corrupt(
                POINTER,
                Corruption::Undecodable(format!("names no data file: {:?}", pointer.file)),
            ));
        }
        Ok(Some(pointer))
    }

    /// A snapshot in sled (versions up to session 15) becomes the current file snapshot,
    /// unless the files already hold one (a crash after the move, before the sled record's
    /// removal); the sled record is removed either way.
    fn migrate(&self, sled: &SledFiles, legacy: &sled::Tree) -> Result<(), StorageError> {
        let Some(bytes) = legacy.get(KEY_SNAPSHOT)? else {
            return Ok(());
        };
        if self.inner.current.lock().unwrap().is_none() {
            let old = decode_legacy::<C>(&bytes)?;
            tracing::info!(
                bytes = old.data.len(),
                "moving the snapshot kept in sled by an earlier version into {}",
                self.inner.dir.display()
            );
            self.save_blocking(&old.meta, &old.data)?;
        }
        legacy.remove(KEY_SNAPSHOT)?;
        sled.flush()
    }

    /// A new, empty data file. Write the snapshot into it, then [`SnapshotStore::seal_blocking`].
    pub fn create_blocking(&self) -> Result<NewSnapshot, StorageError> {
        let n = self.inner.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.inner.dir.join(format!("snap-{n}.data"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(at(&path))?;
        Ok(NewSnapshot {
            file,
            pending: Pending { path, keep: false },
        })
    }

    /// A new, empty data file for openraft to write a received snapshot into.
    pub async fn receive(&self) -> Result<SnapshotFile, StorageError> {
        let this = self.clone();
        let new = tokio::task::spawn_blocking(move || this.create_blocking())
            .await
            .map_err(|e| StorageError::Background(format!("snapshot create task: {e}")))??;
        let clone = new.file.try_clone().map_err(at(&new.pending.path))?;
        Ok(SnapshotFile {
            file: tokio::fs::File::from_std(new.file),
            pending: Some(new.pending),
            writeback: Some(Writeback {
                file: Arc::new(clone),
                unsynced: 0,
                running: None,
                started: 0,
            }),
        })
    }

    /// Syncs a written data file and measures it (reading it back for its CRC-32).
    pub fn seal_blocking(&self, new: NewSnapshot) -> Result<Sealed, StorageError> {
        let path = &new.pending.path;
        new.file.sync_all().map_err(at(path))?;
        let (len, crc32) = measure(&new.file).map_err(at(path))?;
        Ok(Sealed {
            pending: new.pending,
            len,
            crc32,
        })
    }

    /// Makes a sealed data file the current snapshot, durably, and removes the one it replaces.
    /// A snapshot older than the current one (a build that finished after a newer snapshot was
    /// installed) is not committed: it is removed and `false` returned.
    pub fn commit_blocking(
        &self,
        sealed: Sealed,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
    ) -> Result<bool, StorageError> {
        let mut current = self.inner.current.lock().unwrap();
        if let Some(now) = current.as_ref() {
            if meta.last_log_id < now.meta.last_log_id {
                tracing::info!(
                    new = ?meta.last_log_id,
                    current = ?now.meta.last_log_id,
                    "a newer snapshot became current meanwhile; this one is dropped"
                );
                return Ok(false);
            }
        }
        let file = sealed
            .pending
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pointer = Pointer::<C> {
            meta: meta.clone(),
            file,
            len: sealed.len,
            crc32: sealed.crc32,
        };
        let dir = &self.inner.dir;
        let tmp = dir.join(POINTER_TMP);
        let record = record::encode(POINTER_KEY, &pointer, "snapshot pointer")?;
        File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&record)?;
                f.sync_all()
            })
            .map_err(at(&tmp))?;
        std::fs::rename(&tmp, dir.join(POINTER)).map_err(at(&tmp))?;
        sync_dir(dir).map_err(at(dir))?;
        sealed.pending.kept();
        if let Some(old) = current.replace(pointer) {
            // A reader streaming it to a peer keeps its open file.
            if let Err(e) = std::fs::remove_file(dir.join(&old.file)) {
                tracing::warn!(file = %old.file, error = %e, "could not remove a replaced snapshot");
            }
        }
        Ok(true)
    }

    /// What openraft knows about the current snapshot, if any.
    pub fn current_meta(&self) -> Option<SnapshotMeta<C::NodeId, C::Node>> {
        let current = self.inner.current.lock().unwrap();
        current.as_ref().map(|p| p.meta.clone())
    }

    /// The current snapshot's data file, opened for reading (to send it to a peer). Its length
    /// is checked against the pointer; its checksum is checked by whoever reads it whole.
    pub async fn open_current(
        &self,
    ) -> Result<Option<(SnapshotMeta<C::NodeId, C::Node>, SnapshotFile)>, StorageError> {
        let Some(pointer) = self.inner.current.lock().unwrap().clone() else {
            return Ok(None);
        };
        let path = self.inner.dir.join(&pointer.file);
        let file = tokio::fs::File::open(&path).await.map_err(at(&path))?;
        let len = file.metadata().await.map_err(at(&path))?.len();
        if len != pointer.len {
            return Err(corrupt(
                &pointer.file,
                Corruption::Undecodable(format!(
                    "{len} bytes, the snapshot pointer says {}",
                    pointer.len
                )),
            ));
        }
        Ok(Some((
            pointer.meta,
            SnapshotFile {
                file,
                pending: None,
                writeback: None,
            },
        )))
    }

    /// The current snapshot's file, at its start, checked against its length and checksum (read
    /// in pieces), with its metadata; `None` if there is none.
    #[allow(clippy::type_complexity)]
    pub fn open_checked_blocking(
        &self,
    ) -> Result<Option<(SnapshotMeta<C::NodeId, C::Node>, File)>, StorageError> {
        Ok(self.open_checked()?.map(|(meta, file, _)| (meta, file)))
    }

    #[allow(clippy::type_complexity)]
    fn open_checked(
        &self,
    ) -> Result<Option<(SnapshotMeta<C::NodeId, C::Node>, File, PathBuf)>, StorageError> {
        let Some(pointer) = self.inner.current.lock().unwrap().clone() else {
            return Ok(None);
        };
        let path = self.inner.dir.join(&pointer.file);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(corrupt(
                    &pointer.file,
                    Corruption::Undecodable("the data file the pointer names is missing".into()),
                ))
            }
            Err(e) => return Err(at(&path)(e)),
        };
        let (len, crc) = measure(&file).map_err(at(&path))?;
        if len != pointer.len || crc != pointer.crc32 {
            return Err(corrupt(
                &pointer.file,
                Corruption::ChecksumMismatch {
                    stored: pointer.crc32,
                    computed: crc,
                },
            ));
        }
        Ok(Some((pointer.meta, file, path)))
    }

    /// The current snapshot read whole and checked against its length and checksum; `None` if
    /// there is none.
    pub fn load_blocking(&self) -> Result<Option<StoredSnapshot<C>>, StorageError> {
        let Some((meta, mut file, path)) = self.open_checked()? else {
            return Ok(None);
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(at(&path))?;
        Ok(Some(StoredSnapshot { meta, data }))
    }

    /// [`SnapshotStore::load_blocking`] on tokio's blocking pool.
    pub async fn load(&self) -> Result<Option<StoredSnapshot<C>>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.load_blocking())
            .await
            .map_err(|e| StorageError::Background(format!("snapshot load task: {e}")))?
    }

    /// Writes `data` as a new snapshot and commits it: for callers that hold a snapshot in
    /// memory anyway (tests, the move out of sled).
    pub fn save_blocking(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let mut new = self.create_blocking()?;
        new.file.write_all(data).map_err(at(&new.pending.path))?;
        let sealed = self.seal_blocking(new)?;
        self.commit_blocking(sealed, meta)?;
        Ok(())
    }

    /// [`SnapshotStore::save_blocking`] on tokio's blocking pool.
    pub async fn save(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let (this, meta, data) = (self.clone(), meta.clone(), data.to_vec());
        tokio::task::spawn_blocking(move || this.save_blocking(&meta, &data))
            .await
            .map_err(|e| StorageError::Background(format!("snapshot save task: {e}")))?
    }

    /// Bytes the snapshot files occupy.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        let dir = &self.inner.dir;
        let mut total = 0;
        for entry in std::fs::read_dir(dir).map_err(at(dir))? {
            total += entry.and_then(|e| e.metadata()).map_err(at(dir))?.len();
        }
        Ok(total)
    }
}

/// Reads a snapshot record written by versions up to session 15 (one sled value:
/// `[meta length: u32 big-endian][meta as JSON][data]`, sealed).
fn decode_legacy<C: RaftTypeConfig>(bytes: &[u8]) -> Result<StoredSnapshot<C>, StorageError> {
    let corrupt = |reason| StorageError::CorruptRecord {
        keyspace: TREE_SNAPSHOT,
        key: String::from_utf8_lossy(KEY_SNAPSHOT).into_owned(),
        reason,
    };
    let payload = record::unseal(KEY_SNAPSHOT, bytes).map_err(corrupt)?;
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
    Ok(StoredSnapshot {
        meta,
        data: payload[meta_end..].to_vec(),
    })
}

/// A record in the layout of versions up to session 15, for the test of the move out of sled.
#[cfg(test)]
pub(crate) fn encode_legacy<C: RaftTypeConfig>(
    meta: &SnapshotMeta<C::NodeId, C::Node>,
    data: &[u8],
) -> Vec<u8> {
    let meta_json = serde_json::to_vec(meta).unwrap();
    let mut buf = record::buffer_with_capacity(4 + meta_json.len() + data.len());
    buf.extend_from_slice(&(meta_json.len() as u32).to_be_bytes());
    buf.extend_from_slice(&meta_json);
    buf.extend_from_slice(data);
    record::seal_buffer(KEY_SNAPSHOT, buf)
}
