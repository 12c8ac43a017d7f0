//! The Raft log's own files: append-only segments made durable with `fdatasync`.
//!
//! Why not sled: sled 0.34 makes a write "durable" with `sync_file_range`, which neither
//! flushes the device's write cache nor commits the file's size, and it writes any value over
//! 128 KiB (a large transaction) to a blob file it never syncs at all. An acknowledged entry
//! could therefore vanish on all members at once in a site-wide power cut. Here every batch of
//! appends ends with `fdatasync` of the segments it wrote (and of the directory when a segment
//! is created), and sled keeps only the small records (vote, committed, purged) and snapshots,
//! synced through [`crate::sled_files`].
//!
//! # Format
//! `<store>/log/<first index, 20 digits>.seg`, each preallocated to [`SEGMENT_BYTES`] (an
//! `fdatasync` that need not grow the file is cheaper), holding frames
//! `[payload length: u32 LE][index: u64 BE][record]`, where `record` is the crate's sealed record
//! (`record`: format byte and CRC-32 over the index and the payload). A zero header ends a
//! segment's data (preallocated space reads as zeros). Indexes are contiguous within a segment;
//! an append that does not follow the last entry starts a new segment.
//!
//! # Zeros written ahead
//! `posix_fallocate` reserves a segment's blocks as *unwritten* extents (ext4, XFS): the first
//! write into such a block makes the next `fdatasync` also record the extent as written, a
//! second, dependent device write (the inode's extent tree; a journal commit on a journalled
//! filesystem) before the cache flush. Every sync of a batch of appends entered a new block and
//! paid it: on the bench machine a sync of 6 KB took 294-313 us at p50 against 167-195 us once
//! the blocks were written (docs/performance.md, "Session 29"). So each append that comes within
//! [`ZERO_AHEAD_SLACK`] of the written region then writes [`ZERO_AHEAD`] bytes of zeros past its
//! end: one extent update per 256 KiB of log instead of one per sync. The zeros read as the end
//! of the data, as preallocated space does, and are written only past the last frame. Large
//! appends (megabytes of rows) get them too: a variant that skipped them loaded large rows no
//! faster than no zeros at all.
//!
//! # Crash safety
//! A sync covers everything written before it, so after a crash the log is an acknowledged
//! prefix followed by at most one damaged or partial tail, which the open-time check
//! ([`crate::integrity`]) reports or, with repair, cuts off. Truncation cuts the file
//! (`set_len`) and syncs before returning, so a later, shorter append can never be followed by
//! a stale frame of the entries it replaced.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Corruption, StorageError};

/// Space a segment is given when created, unless told otherwise (`StoreOptions::segment_bytes`);
/// a segment whose data reaches it is closed and the next append starts a new one. Entries are
/// never split, so a segment can end above this.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Zeros an append writes past the end of a segment's data when it comes near the end of what is
/// already written (module header, "Zeros written ahead").
const ZERO_AHEAD: u64 = 256 * 1024;

/// How close to the written region's end an append comes before more zeros are written.
const ZERO_AHEAD_SLACK: u64 = 64 * 1024;

/// Source of the zeros written ahead (in the zero-filled data section: costs no memory until read).
static ZEROS: [u8; ZERO_AHEAD as usize] = [0; ZERO_AHEAD as usize];

/// `[len: u32][index: u64]` before each record.
pub(crate) const FRAME_HEADER: usize = 12;

/// The log directory inside a store.
pub(crate) const DIR: &str = "log";

/// One frame as found on disk.
pub(crate) struct Frame {
    pub offset: u64,
    pub index: u64,
    pub record: Vec<u8>,
}

/// What reading a segment from the start found.
pub(crate) struct SegmentScan {
    pub path: PathBuf,
    pub frames: Vec<Frame>,
    /// Where the good frames end: the first damaged byte, or the zero header ending the data.
    pub end: u64,
    /// The frame at `end` could not be read (torn, oversized, or garbage instead of a zero header).
    pub damage: Option<Corruption>,
    /// A well-formed frame (valid checksum) exists somewhere after the damage.
    pub good_after_damage: bool,
}

pub(crate) fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

/// The segment files of `dir` in index order (by name).
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(first) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn frame_at(bytes: &[u8], at: usize) -> Result<Option<(u64, &[u8])>, Corruption> {
    let rest = &bytes[at.min(bytes.len())..];
    if rest.len() < FRAME_HEADER {
        if rest.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        return Err(Corruption::TooShort {
            len: rest.len(),
            header: FRAME_HEADER,
        });
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let index = u64::from_be_bytes(rest[4..12].try_into().expect("8 bytes"));
    if len == 0 && index == 0 {
        return Ok(None);
    }
    let Some(record) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err(Corruption::TooShort {
            len: rest.len() - FRAME_HEADER,
            header: len,
        });
    };
    Ok(Some((index, record)))
}

/// Reads a whole segment. Frames are returned with their records unchecked beyond framing; the
/// caller decodes (and so checksums) them.
pub(crate) fn scan_segment(path: &Path) -> io::Result<SegmentScan> {
    let bytes = fs::read(path)?;
    let mut frames = Vec::new();
    let mut at = 0usize;
    let damage = loop {
        match frame_at(&bytes, at) {
            Ok(None) => break None,
            Ok(Some((index, record))) => {
                frames.push(Frame {
                    offset: at as u64,
                    index,
                    record: record.to_vec(),
                });
                at += FRAME_HEADER + record.len();
            }
            Err(reason) => break Some(reason),
        }
    };
    // A zero header ends the data; anything but zeros after it is damage too (a header that
    // read as zeros in front of data that did not).
    let damage = damage.or_else(|| {
        let tail = &bytes[at.min(bytes.len())..];
        tail.iter()
            .any(|b| *b != 0)
            .then(|| Corruption::Undecodable("data after the end-of-segment marker".into()))
    });
    let good_after_damage = damage.is_some() && valid_frame_after(&bytes, at + 1);
    Ok(SegmentScan {
        path: path.to_path_buf(),
        frames,
        end: at as u64,
        damage,
        good_after_damage,
    })
}

/// Whether a frame with a valid checksum starts anywhere at or after `from` (only on the error
/// path: tells a torn tail from damage in the middle of good entries).
fn valid_frame_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len()).any(|at| match frame_at(bytes, at) {
        Ok(Some((index, record))) => {
            !record.is_empty() && crate::record::unseal(&index.to_be_bytes(), record).is_ok()
        }
        _ => false,
    })
}

/// The granularity a write cut short is recognised at: the kernel stops a write to a file
/// between pages (4 KiB) when the writing process is killed, and a power cut loses whole
/// unsynced sectors (512 bytes); both are multiples of this.
const TORN_WRITE_ALIGN: u64 = 512;

/// Whether `frame`, whose record is damaged, is a write that was cut short rather than bytes
/// that changed after they were written: its record is all zeros from a 512-byte boundary of the
/// file to its end, the preallocated space (or a truncated file's hole) that the write never
/// reached. A record is JSON text after its header and holds no zero byte, so damage to an entry
/// that was written whole does not look like this.
pub(crate) fn torn_frame(frame: &Frame) -> bool {
    let start = frame.offset + FRAME_HEADER as u64;
    let end = start + frame.record.len() as u64;
    let written = frame
        .record
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p + 1) as u64;
    (start + written).next_multiple_of(TORN_WRITE_ALIGN) < end
}

/// Writes a frame into `buf`.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, index: u64, record: &[u8]) {
    buf.extend_from_slice(&frame_header(index, record.len()));
    buf.extend_from_slice(record);
}

fn frame_header(index: u64, record_len: usize) -> [u8; FRAME_HEADER] {
    let len = u32::try_from(record_len).expect("a log entry under 4 GiB");
    let mut header = [0; FRAME_HEADER];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&index.to_be_bytes());
    header
}

/// Entries framed for [`LogFiles::append`], back to back in one buffer that is kept from one
/// append to the next. Each append of a multi-megabyte entry used to build its record and then
/// its frame in fresh buffers grown by doubling, on pages the kernel zeroed at first touch:
/// zeroing pages was a follower's Raft thread's largest cost under a load of large rows
/// (docs/performance.md, "Large rows: buffers kept and the allocator's purge delay").
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
    /// Each entry's index and where its frame starts in `buf`.
    frames: Vec<(u64, usize)>,
}

impl Frames {
    /// Capacity kept by [`Frames::clear`]; the buffer of a larger append is let go.
    const KEEP_BYTES: usize = 16 * 1024 * 1024;

    /// Adds entry `index`, whose record `write` appends to the buffer; returns the record's
    /// length. A failed `write` adds nothing.
    pub(crate) fn push<E>(
        &mut self,
        index: u64,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; FRAME_HEADER]);
        if let Err(e) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let len = self.buf.len() - start - FRAME_HEADER;
        self.buf[start..start + FRAME_HEADER].copy_from_slice(&frame_header(index, len));
        self.frames.push((index, start));
        Ok(len)
    }

    /// Empties the batch, keeping its buffer unless it grew past [`Frames::KEEP_BYTES`].
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.frames.clear();
        if self.buf.capacity() > Self::KEEP_BYTES {
            self.buf = Vec::new();
        }
    }

    fn end_of(&self, i: usize) -> usize {
        self.frames.get(i + 1).map_or(self.buf.len(), |&(_, at)| at)
    }
}

fn preallocate(file: &File, bytes: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, bytes as libc::off_t) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: the file simply grows as it is written.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir/<first>.seg`, preallocated, and makes its name durable.
pub(crate) fn create_segment(dir: &Path, first: u64, bytes: u64) -> io::Result<(PathBuf, File)> {
    let path = dir.join(segment_name(first));
    let file = create_preallocated(&path, bytes)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((path, file))
}

fn create_preallocated(path: &Path, bytes: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    preallocate(&file, bytes)?;
    Ok(file)
}

/// The next segment's file, made ahead of need (`log/spare`, preallocated and synced with its
/// name) by a thread of its own, so that the append that fills a segment renames it instead of
/// allocating 64 MiB and waiting for two syncs itself: appends run on the Raft runtime's only
/// worker, where a sync queued behind a busy disk (snapshots being written) held up heartbeats
/// and votes. A spare left by a crash is removed at open.
const SPARE: &str = "spare";

enum Spare {
    None,
    Preparing,
    Ready(File),
}

/// Starts making the spare segment unless one is ready or under way; the thread making it.
fn prepare_spare(
    dir: &Path,
    spare: &Arc<Mutex<Spare>>,
    bytes: u64,
) -> Option<std::thread::JoinHandle<()>> {
    {
        let mut s = spare.lock().expect("spare lock");
        if !matches!(*s, Spare::None) {
            return None;
        }
        *s = Spare::Preparing;
    }
    let (dir, slot) = (dir.to_path_buf(), spare.clone());
    let made = move || {
        let made = create_preallocated(&dir.join(SPARE), bytes).and_then(|file| {
            file.sync_all()?;
            sync_dir(&dir)?;
            Ok(file)
        });
        let mut s = slot.lock().expect("spare lock");
        *s = match made {
            Ok(file) => Spare::Ready(file),
            Err(e) => {
                // The append that needs a segment makes one itself, as before spares.
                tracing::warn!(dir = %dir.display(), "cannot prepare the next log segment: {e}");
                let _ = fs::remove_file(dir.join(SPARE));
                Spare::None
            }
        };
    };
    match std::thread::Builder::new()
        .name("halyard-log-seg".into())
        .spawn(made)
    {
        Ok(thread) => Some(thread),
        Err(e) => {
            tracing::warn!("cannot start the thread preparing the next log segment: {e}");
            *spare.lock().expect("spare lock") = Spare::None;
            None
        }
    }
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    first: u64,
    /// `(offset, frame length)` of entry `first + i`.
    frames: Vec<(u64, u32)>,
    /// Where the next frame goes.
    end: u64,
    /// Bytes from the start known written (frames or zeros), not unwritten preallocated space:
    /// appends below it need no extent update at their sync.
    written: u64,
}

impl Segment {
    fn last(&self) -> Option<u64> {
        (!self.frames.is_empty()).then(|| self.first + self.frames.len() as u64 - 1)
    }

    /// Writes zeros past the data when it comes near the end of the written region, within the
    /// space the segment was given (module header, "Zeros written ahead").
    fn zero_ahead(&mut self, segment_bytes: u64) -> io::Result<()> {
        if self.end + ZERO_AHEAD_SLACK <= self.written || self.end >= segment_bytes {
            return Ok(());
        }
        let from = self.written.max(self.end);
        let to = (self.end + ZERO_AHEAD).min(segment_bytes);
        self.file
            .write_all_at(&ZEROS[..(to - from) as usize], from)?;
        self.written = to;
        Ok(())
    }
}

#[derive(Default)]
struct Segments {
    /// By first index.
    map: BTreeMap<u64, Segment>,
}

/// The open log: the segments and where each entry is. Shared by the log store (the only
/// writer), its readers and the flusher.
pub(crate) struct LogFiles {
    dir: PathBuf,
    /// Space given to a new segment, and the size past which the next append starts one.
    segment_bytes: u64,
    segments: RwLock<Segments>,
    /// Files written since their last sync.
    dirty: Mutex<Vec<Arc<File>>>,
    /// A segment was named since the last sync: the next sync makes the directory durable too.
    dir_dirty: AtomicBool,
    spare: Arc<Mutex<Spare>>,
    /// Threads removing purged segments or making the spare: joined at drop, so that a store
    /// reopened on this directory finds neither segments being removed nor a spare being made
    /// (whose late creation would replace the new store's own).
    helpers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Held for a whole [`LogFiles::sync`].
    syncing: Mutex<()>,
    /// One past the last index known durable (0: none): what the committed high-water mark
    /// may claim.
    synced_next: AtomicU64,
}

/// An entry read back: its index and sealed record.
pub(crate) type RawEntry = (u64, Vec<u8>);

impl LogFiles {
    /// Opens the checked segments: `scans` are the kept segments in order (damage already
    /// refused or cut off by the caller), `purged` the last purged index (entries at or below it
    /// are not served).
    pub(crate) fn open(
        dir: &Path,
        scans: Vec<SegmentScan>,
        purged: Option<u64>,
        segment_bytes: u64,
    ) -> Result<LogFiles, StorageError> {
        let mut map = BTreeMap::new();
        for scan in scans {
            let file = OpenOptions::new().read(true).write(true).open(&scan.path)?;
            let mut frames: Vec<(u64, u32)> = scan
                .frames
                .iter()
                .map(|f| (f.offset, (FRAME_HEADER + f.record.len()) as u32))
                .collect();
            let mut first = match scan.frames.first() {
                Some(f) => f.index,
                None => {
                    // An empty segment (created, never written): drop it.
                    drop(file);
                    fs::remove_file(&scan.path)?;
                    continue;
                }
            };
            if let Some(p) = purged {
                let skip = (p + 1).saturating_sub(first).min(frames.len() as u64) as usize;
                frames.drain(..skip);
                first += skip as u64;
                if frames.is_empty() {
                    drop(file);
                    fs::remove_file(&scan.path)?;
                    continue;
                }
            }
            map.insert(
                first,
                Segment {
                    path: scan.path,
                    file: Arc::new(file),
                    first,
                    frames,
                    end: scan.end,
                    // Unknown past the data: zeros are written again from there.
                    written: scan.end,
                },
            );
        }
        // What a crash left may still sit unsynced in the page cache: synced now, it is all
        // durable from here on.
        for seg in map.values() {
            seg.file.sync_data()?;
        }
        match fs::remove_file(dir.join(SPARE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        sync_dir(dir)?;
        let synced_next = map
            .values()
            .next_back()
            .and_then(Segment::last)
            .map_or(0, |l| l + 1);
        Ok(LogFiles {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: RwLock::new(Segments { map }),
            dirty: Mutex::new(Vec::new()),
            dir_dirty: AtomicBool::new(false),
            spare: Arc::new(Mutex::new(Spare::None)),
            helpers: Mutex::new(Vec::new()),
            syncing: Mutex::new(()),
            synced_next: AtomicU64::new(synced_next),
        })
    }

    /// The last index known durable: covered by a completed [`LogFiles::sync`] (or on disk
    /// at open) and not truncated since.
    pub(crate) fn synced_upto(&self) -> Option<u64> {
        self.synced_next.load(Ordering::Acquire).checked_sub(1)
    }

    /// Bytes of the segment files on disk.
    pub(crate) fn size_on_disk(&self) -> io::Result<u64> {
        let segs = self.segments.read().expect("log lock");
        let mut total = 0;
        for seg in segs.map.values() {
            total += seg.file.metadata()?.len();
        }
        Ok(total)
    }

    pub(crate) fn last_index(&self) -> Option<u64> {
        let segs = self.segments.read().expect("log lock");
        segs.map.values().next_back().and_then(Segment::last)
    }

    /// Writes `entries` (index, sealed record) after the last entry; readable at once, durable
    /// after the next [`LogFiles::sync`].
    pub(crate) fn append(&self, batch: &Frames) -> Result<(), StorageError> {
        let mut segs = self.segments.write().expect("log lock");
        let entries = &batch.frames;
        let mut i = 0;
        while i < entries.len() {
            let (index, _) = entries[i];
            let need_new = match segs.map.values().next_back() {
                None => true,
                Some(s) => match s.last() {
                    Some(last) => index != last + 1 || s.end >= self.segment_bytes,
                    // Left empty by a failed write: usable for its own first index only.
                    None => s.first != index,
                },
            };
            if need_new {
                let (path, file) = self.new_segment(index)?;
                segs.map.insert(
                    index,
                    Segment {
                        path,
                        file: Arc::new(file),
                        first: index,
                        frames: Vec::new(),
                        end: 0,
                        written: 0,
                    },
                );
            }
            let seg = segs.map.values_mut().next_back().expect("a segment");
            // One write for the run of entries that fits this segment.
            let start = seg.end;
            let run_start = entries[i].1;
            let mut run_end = run_start;
            while i < entries.len() {
                let (index, at) = entries[i];
                let written = (at - run_start) as u64;
                if seg.last().is_some_and(|l| index != l + 1)
                    || (start + written >= self.segment_bytes && written > 0)
                {
                    break;
                }
                run_end = batch.end_of(i);
                seg.frames.push((start + written, (run_end - at) as u32));
                i += 1;
            }
            if let Err(e) = seg.file.write_all_at(&batch.buf[run_start..run_end], start) {
                // Forget the frames that may not be there; the caller fails the append.
                seg.frames.retain(|(off, _)| *off < start);
                return Err(e.into());
            }
            seg.end = start + (run_end - run_start) as u64;
            seg.written = seg.written.max(seg.end);
            if let Err(e) = seg.zero_ahead(self.segment_bytes) {
                // The frames are written; zeros past them are only a saving. A full disk
                // shows here first, and the next append or sync reports it if it persists.
                tracing::warn!(segment = %seg.path.display(), "cannot write zeros ahead of the log: {e}");
            }
            let file = seg.file.clone();
            let mut dirty = self.dirty.lock().expect("dirty lock");
            if !dirty.iter().any(|f| Arc::ptr_eq(f, &file)) {
                dirty.push(file);
            }
        }
        Ok(())
    }

    /// The segment starting at `first`: the spare renamed when one is ready, else made here. Its
    /// name is durable after the next [`LogFiles::sync`], as its entries are.
    fn new_segment(&self, first: u64) -> io::Result<(PathBuf, File)> {
        let path = self.dir.join(segment_name(first));
        let ready = {
            let mut spare = self.spare.lock().expect("spare lock");
            match std::mem::replace(&mut *spare, Spare::None) {
                Spare::Ready(file) => Some(file),
                other => {
                    *spare = other;
                    None
                }
            }
        };
        let renamed = ready.and_then(|file| match fs::rename(self.dir.join(SPARE), &path) {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot use the prepared log segment: {e}");
                None
            }
        });
        let file = match renamed {
            Some(file) => file,
            None => create_preallocated(&path, self.segment_bytes)?,
        };
        self.dir_dirty.store(true, Ordering::Release);
        if let Some(thread) = prepare_spare(&self.dir, &self.spare, self.segment_bytes) {
            self.keep_helper(thread);
        }
        Ok((path, file))
    }

    /// Makes every append so far durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        // One sync at a time: a second caller (the vote being saved while the flusher syncs a
        // leader's appends, say) would otherwise find the dirty list already taken and return
        // before the files it needs durable are synced.
        let _one = self.syncing.lock().expect("sync lock");
        // Appends finish (and mark their file dirty) under the segments' lock: every entry up
        // to `upto` is in a file taken below, or was synced before.
        let upto = self.last_index();
        let files = std::mem::take(&mut *self.dirty.lock().expect("dirty lock"));
        let named = self.dir_dirty.swap(false, Ordering::AcqRel);
        for (n, f) in files.iter().enumerate() {
            if let Err(e) = f.sync_data() {
                // Keep them dirty: a later sync must try again before anything is acknowledged.
                self.dirty
                    .lock()
                    .expect("dirty lock")
                    .extend(files[n..].iter().cloned());
                self.dir_dirty.fetch_or(named, Ordering::AcqRel);
                return Err(e);
            }
        }
        if named {
            if let Err(e) = sync_dir(&self.dir) {
                self.dir_dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        if let Some(upto) = upto {
            self.synced_next.fetch_max(upto + 1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Sealed records of `from..=to` in order, stopping after the one that brings the bytes
    /// read to `budget` or more.
    pub(crate) fn read(&self, from: u64, to: u64, budget: u64) -> io::Result<Vec<RawEntry>> {
        let segs = self.segments.read().expect("log lock");
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let start_key = segs
            .map
            .range(..=from)
            .next_back()
            .map(|(k, _)| *k)
            .unwrap_or(from);
        for seg in segs.map.range(start_key..).map(|(_, s)| s) {
            let Some(last) = seg.last() else { continue };
            if seg.first > to {
                break;
            }
            let lo = from.max(seg.first);
            let hi = to.min(last);
            if lo > hi {
                continue;
            }
            // One read for the run, cut at the byte budget.
            let (first_off, _) = seg.frames[(lo - seg.first) as usize];
            let mut n = 0usize;
            let mut run = 0u64;
            for i in lo..=hi {
                let (_, len) = seg.frames[(i - seg.first) as usize];
                run += len as u64;
                n += 1;
                if bytes + run >= budget {
                    break;
                }
            }
            let mut buf = vec![0u8; run as usize];
            seg.file.read_exact_at(&mut buf, first_off)?;
            let mut at = 0usize;
            for k in 0..n {
                let index = lo + k as u64;
                let (_, len) = seg.frames[(index - seg.first) as usize];
                let frame = &buf[at..at + len as usize];
                let stored = u64::from_be_bytes(frame[4..12].try_into().expect("8 bytes"));
                if stored != index {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "log segment {}: frame for index {index} says {stored}",
                            seg.path.display()
                        ),
                    ));
                }
                out.push((index, frame[FRAME_HEADER..].to_vec()));
                at += len as usize;
            }
            bytes += run;
            if bytes >= budget {
                break;
            }
        }
        Ok(out)
    }

    /// Removes entries `index..` and syncs.
    pub(crate) fn truncate(&self, index: u64) -> io::Result<()> {
        let mut segs = self.segments.write().expect("log lock");
        // Entries written at these indexes from now on are new, and not synced yet.
        self.synced_next.fetch_min(index, Ordering::AcqRel);
        let doomed: Vec<u64> = segs.map.range(index..).map(|(k, _)| *k).collect();
        for k in doomed {
            let seg = segs.map.remove(&k).expect("listed");
            fs::remove_file(&seg.path)?;
        }
        if let Some(seg) = segs.map.values_mut().next_back() {
            if seg.last().is_some_and(|l| l >= index) {
                let keep = (index - seg.first) as usize;
                let (cut, _) = seg.frames[keep];
                seg.frames.truncate(keep);
                seg.end = cut;
                seg.written = cut;
                // Cutting the file (and giving the space back) leaves zeros after the last
                // frame: nothing of the removed entries can be read as a continuation later.
                seg.file.set_len(cut)?;
                preallocate(&seg.file, self.segment_bytes)?;
                seg.file.sync_all()?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Forgets entries up to `index`; deletes the segments holding only such entries. The
    /// caller has made the purge marker durable first, so a crash in between leaves entries
    /// the open-time check skips.
    ///
    /// The files are removed by a thread of their own, after this returns: openraft's core
    /// waits for a purge, and on a filesystem mounted with `discard` (the bench machine's)
    /// removing a 64 MiB segment waits for the device to discard its blocks (70-130 ms for a
    /// snapshot's worth of segments on a busy machine). [`LogFiles`] waits for those threads
    /// when it is dropped.
    pub(crate) fn purge(&self, index: u64) -> io::Result<()> {
        let mut doomed = Vec::new();
        {
            let mut segs = self.segments.write().expect("log lock");
            let keys: Vec<u64> = segs.map.range(..=index).map(|(k, _)| *k).collect();
            for k in keys {
                let mut seg = segs.map.remove(&k).expect("listed");
                if seg.last().is_some_and(|l| l > index) {
                    // Partly purged: keep the file, serve from index + 1.
                    let skip = (index + 1 - seg.first) as usize;
                    seg.frames.drain(..skip);
                    seg.first = index + 1;
                    segs.map.insert(seg.first, seg);
                } else {
                    doomed.push(seg);
                }
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let dir = self.dir.clone();
        let remove = move || {
            let removed = doomed
                .iter()
                .try_for_each(|seg| fs::remove_file(&seg.path))
                .and_then(|()| {
                    drop(doomed);
                    sync_dir(&dir)
                });
            if let Err(e) = removed {
                // Harmless: what is left is below the durable marker, skipped and removed at
                // the next open.
                tracing::warn!(dir = %dir.display(), "cannot remove purged log segments: {e}");
            }
        };
        let thread = std::thread::Builder::new()
            .name("halyard-log-purge".into())
            .spawn(remove)?;
        self.keep_helper(thread);
        Ok(())
    }

    fn keep_helper(&self, thread: std::thread::JoinHandle<()>) {
        let mut helpers = self.helpers.lock().expect("helpers lock");
        helpers.retain(|t| !t.is_finished());
        helpers.push(thread);
    }
}

impl Drop for LogFiles {
    fn drop(&mut self) {
        for thread in self.helpers.get_mut().expect("helpers lock").drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Frames {
        let mut frames = Frames::default();
        for (index, record) in records {
            frames
                .push(index, |buf| {
                    buf.extend_from_slice(&record);
                    Ok::<_, ()>(())
                })
                .unwrap();
        }
        frames
    }

    fn entries(range: std::ops::Range<u64>) -> Frames {
        framed(range.map(|i| (i, format!("entry {i}").into_bytes())))
    }

    #[test]
    fn a_batch_holds_each_frame_as_encode_frame_writes_it_and_keeps_a_modest_buffer() {
        let mut frames = Frames::default();
        let mut expected = Vec::new();
        for (index, record) in [
            (7u64, b"seven".to_vec()),
            (8, Vec::new()),
            (9, vec![b'x'; 300]),
        ] {
            let len = frames
                .push(index, |buf| {
                    buf.extend_from_slice(&record);
                    Ok::<_, ()>(())
                })
                .unwrap();
            assert_eq!(len, record.len());
            encode_frame(&mut expected, index, &record);
        }
        assert_eq!(frames.push(10, |_| Err("no")), Err("no"), "a failed record");
        assert_eq!(frames.buf, expected, "and it added nothing");
        assert_eq!(frames.end_of(0), FRAME_HEADER + 5);
        assert_eq!(frames.end_of(2), expected.len());
        frames.clear();
        assert!(
            frames.buf.capacity() >= expected.len(),
            "kept for the next append"
        );
        frames
            .push(11, |buf| {
                buf.resize(buf.len() + Frames::KEEP_BYTES + 1, b'y');
                Ok::<_, ()>(())
            })
            .unwrap();
        frames.clear();
        assert_eq!(frames.buf.capacity(), 0, "a huge append's buffer is let go");
    }

    #[test]
    fn the_synced_index_follows_syncs_and_truncations() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), Vec::new(), None, 1 << 20).unwrap();
        assert_eq!(files.synced_upto(), None);
        files.append(&entries(0..10)).unwrap();
        assert_eq!(files.synced_upto(), None, "written, not synced");
        files.sync().unwrap();
        assert_eq!(files.synced_upto(), Some(9));
        files.append(&entries(10..15)).unwrap();
        assert_eq!(files.synced_upto(), Some(9));
        files.truncate(5).unwrap();
        assert_eq!(files.synced_upto(), Some(4), "5.. are gone");
        files.append(&entries(5..8)).unwrap();
        assert_eq!(files.synced_upto(), Some(4), "the new 5.. are not synced");
        files.sync().unwrap();
        assert_eq!(files.synced_upto(), Some(7));
        drop(files);
        // What is on disk at open is synced by the open.
        let scans = list_segments(dir.path())
            .unwrap()
            .into_iter()
            .map(|(_, p)| scan_segment(&p).unwrap())
            .collect();
        let files = LogFiles::open(dir.path(), scans, None, 1 << 20).unwrap();
        assert_eq!(files.synced_upto(), Some(7));
    }

    fn reopen(dir: &Path, segment_bytes: u64) -> LogFiles {
        let scans = list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|(_, p)| scan_segment(&p).unwrap())
            .collect();
        LogFiles::open(dir, scans, None, segment_bytes).unwrap()
    }

    /// Entries of 3000 bytes: about three fill a segment of 8 KiB.
    fn big(range: std::ops::Range<u64>) -> Frames {
        framed(range.map(|i| (i, vec![i as u8; 3000])))
    }

    fn indexes_read(files: &LogFiles, from: u64, to: u64) -> Vec<u64> {
        files
            .read(from, to, u64::MAX)
            .unwrap()
            .iter()
            .map(|e| e.0)
            .collect()
    }

    fn wait_for_spare(files: &LogFiles) {
        for _ in 0..500 {
            if matches!(*files.spare.lock().unwrap(), Spare::Ready(_)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no spare segment was made");
    }

    #[test]
    fn a_new_segment_is_the_spare_made_ahead_and_named_at_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), Vec::new(), None, 8192).unwrap();
        files.append(&big(1..4)).unwrap();
        assert!(
            files.dir_dirty.load(Ordering::Acquire),
            "a segment was named"
        );
        files.sync().unwrap();
        assert!(
            !files.dir_dirty.load(Ordering::Acquire),
            "the sync made the name durable"
        );
        // The first segment was made by the append itself; the next one is prepared meanwhile.
        wait_for_spare(&files);
        let spare = dir.path().join(SPARE);
        assert_eq!(fs::metadata(&spare).unwrap().len(), 8192, "preallocated");
        let spare_inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&spare).unwrap());
        files.append(&big(4..7)).unwrap();
        let second = dir.path().join(segment_name(4));
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(&second).unwrap()),
            spare_inode,
            "the segment for 4.. is the spare, renamed"
        );
        assert!(files.dir_dirty.load(Ordering::Acquire));
        files.sync().unwrap();
        assert_eq!(files.synced_upto(), Some(6));
        wait_for_spare(&files);
        drop(files);
        // A spare left behind (a crash) is not a segment and is removed at open.
        assert!(spare.exists());
        let files = reopen(dir.path(), 8192);
        assert!(!spare.exists());
        let read = indexes_read(&files, 1, 6);
        assert_eq!(read, (1..7).collect::<Vec<_>>());
    }

    #[test]
    fn a_segment_is_made_by_the_append_when_no_spare_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), Vec::new(), None, 1 << 20).unwrap();
        files.append(&entries(1..3)).unwrap();
        // A spare in the making is not waited for: an append that does not follow the last
        // entry starts a segment at once.
        *files.spare.lock().unwrap() = Spare::Preparing;
        files.append(&entries(5..7)).unwrap();
        files.sync().unwrap();
        assert!(dir.path().join(segment_name(5)).exists());
        assert_eq!(files.synced_upto(), Some(6));
    }

    #[test]
    fn a_purge_removes_whole_segments_and_keeps_the_rest_readable() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::open(dir.path(), Vec::new(), None, 8192).unwrap();
        for i in 1..10 {
            files.append(&big(i..i + 1)).unwrap();
        }
        files.sync().unwrap();
        let names = || -> Vec<u64> {
            list_segments(dir.path())
                .unwrap()
                .iter()
                .map(|s| s.0)
                .collect()
        };
        assert_eq!(names(), vec![1, 4, 7]);
        files.purge(5).unwrap();
        let read = indexes_read(&files, 6, 9);
        assert_eq!(read, vec![6, 7, 8, 9], "served at once");
        drop(files);
        // Dropping the files waits for the removal.
        assert_eq!(names(), vec![4, 7], "4.. holds 6, kept");
        let files = reopen(dir.path(), 8192);
        let read = indexes_read(&files, 6, 9);
        assert_eq!(read, vec![6, 7, 8, 9]);
    }

    /// `(logical offset, length, unwritten)` of each extent of `file` (the FIEMAP ioctl), or
    /// None where the filesystem cannot tell.
    fn extents(file: &File) -> Option<Vec<(u64, u64, bool)>> {
        use std::os::fd::AsRawFd;
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Extent {
            logical: u64,
            physical: u64,
            length: u64,
            reserved64: [u64; 2],
            flags: u32,
            reserved: [u32; 3],
        }
        #[repr(C)]
        struct Map {
            start: u64,
            length: u64,
            flags: u32,
            mapped: u32,
            count: u32,
            reserved: u32,
            extents: [Extent; 64],
        }
        const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
        const FIEMAP_FLAG_SYNC: u32 = 1;
        const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
        let mut map = Map {
            start: 0,
            length: u64::MAX,
            flags: FIEMAP_FLAG_SYNC,
            mapped: 0,
            count: 64,
            reserved: 0,
            extents: [Extent::default(); 64],
        };
        // SAFETY: FS_IOC_FIEMAP fills at most `count` extents of the struct we own.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP as _, &mut map) };
        (rc == 0).then(|| {
            map.extents[..map.mapped as usize]
                .iter()
                .map(|e| (e.logical, e.length, e.flags & FIEMAP_EXTENT_UNWRITTEN != 0))
                .collect()
        })
    }

    #[test]
    fn appends_leave_written_blocks_ahead_and_unwritten_space_after() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = 4 << 20;
        let files = LogFiles::open(dir.path(), Vec::new(), None, bytes).unwrap();
        files.append(&entries(1..4)).unwrap();
        files.sync().unwrap();
        let seg = File::open(dir.path().join(segment_name(1))).unwrap();
        let Some(map) = extents(&seg) else {
            eprintln!("skipped: this filesystem has no FIEMAP");
            return;
        };
        if !map.iter().any(|e| e.2) {
            eprintln!("skipped: this filesystem preallocates without unwritten extents");
            return;
        }
        assert!(
            !map.iter().any(|&(l, _, u)| u && l < ZERO_AHEAD),
            "the first {ZERO_AHEAD} bytes are written: {map:?}"
        );
        assert!(
            map.iter().any(|&(l, len, u)| u && l + len == bytes),
            "the rest stays reserved, unwritten: {map:?}"
        );
        // Appends past the slack write more zeros ahead; the data reads back as written.
        let big: Vec<(u64, Vec<u8>)> = (4..8).map(|i| (i, vec![b'y'; 60_000])).collect();
        files.append(&framed(big)).unwrap();
        files.sync().unwrap();
        let end = files.segments.read().unwrap().map[&1].end;
        let map = extents(&seg).unwrap();
        assert!(
            !map.iter()
                .any(|&(l, _, u)| u && l < end + ZERO_AHEAD - 4096),
            "written up to {ZERO_AHEAD} past the data's end {end}: {map:?}"
        );
        let read = files.read(1, 7, u64::MAX).unwrap();
        assert_eq!(read.len(), 7);
        assert_eq!(read[6].1, vec![b'y'; 60_000]);
        // After a truncation the space past the cut is unwritten again and zeros start over.
        files.truncate(3).unwrap();
        let cut = files.segments.read().unwrap().map[&1].end;
        assert!(
            extents(&seg)
                .unwrap()
                .iter()
                .any(|&(l, _, u)| u && l < cut + 8192),
            "unwritten again past the cut at {cut}"
        );
        files.append(&entries(3..5)).unwrap();
        files.sync().unwrap();
        assert!(!extents(&seg)
            .unwrap()
            .iter()
            .any(|&(l, _, u)| u && l < cut + ZERO_AHEAD - 4096));
        let read = files.read(1, 4, u64::MAX).unwrap();
        let got: Vec<Vec<u8>> = read.into_iter().map(|(_, r)| r).collect();
        let want: Vec<Vec<u8>> = (1..5).map(|i| format!("entry {i}").into_bytes()).collect();
        assert_eq!(got, want);
    }
}
