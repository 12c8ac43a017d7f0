//! The open-time check of the Raft log and Raft state.
//!
//! Every segment of the log ([`crate::log_files`]) is read back, every entry checked
//! (framing, checksum, decoding, index agreement), and the indexes must be contiguous. Then:
//! - all entries good: open proceeds;
//! - the damage is one last entry whose write was cut short by a crash (it ends in the
//!   zeros of space the write never reached, or past the end of the file: see
//!   [`log_files::torn_frame`]): cut it off, as repair below does, and log it at warn level.
//!   Such an entry was never synced, so never acknowledged: a SIGKILL or power cut during
//!   an append needs no operator;
//! - any other damage confined to the tail (no good entry after the first bad
//!   one): refuse with [`StorageError::CorruptLogTail`] naming the first bad
//!   index, or, when the caller asked for `repair`, delete the damaged tail,
//!   lower a persisted committed log id that pointed into it, flush, and log
//!   the loss at error level;
//! - a damaged entry or a gap followed by good entries: refuse with
//!   [`StorageError::CorruptLogEntry`] / [`StorageError::LogGap`], repair or
//!   not — truncating there would throw away good entries, so the member has to
//!   be rebuilt from its peers.
//!
//! The vote, committed and last-purged records are decoded too; a damaged one
//! is [`StorageError::CorruptRecord`] and is never repaired (inventing a vote
//! could let this member vote twice in a term).

use openraft::{LogId, RaftLogId, RaftTypeConfig, Vote};
use serde::de::DeserializeOwned;

use std::path::Path;

use crate::error::{Corruption, StorageError};
use crate::layout::{KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE};
use crate::log_files::{self, SegmentScan};
use crate::log_store::{decode_entry, read_state, write_state};
use crate::sled_files::SledFiles;

/// What the check found, for the open-time log line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// Index of the first entry kept, if any.
    pub first_index: Option<u64>,
    /// Index of the last entry kept, if any.
    pub last_index: Option<u64>,
    /// Entries at or below the last purged index still on disk, skipped: a purge deletes a
    /// segment only once all its entries are purged, and one interrupted after its marker
    /// leaves whole segments, deleted now.
    pub finished_purge: u64,
    /// Damaged tail entries removed because `repair` was requested, or the one entry whose
    /// write a crash cut short (`torn_write_cut`).
    pub repaired: u64,
    /// The removed tail was a write cut short by a crash, removed without `repair`.
    pub torn_write_cut: bool,
}

struct FirstBad {
    index: u64,
    reason: Corruption,
    /// The damage is a write cut short (see [`log_files::torn_frame`]).
    torn: bool,
    /// Segment (position in the scan list) and offset where the damage starts.
    segment: usize,
    offset: u64,
}

/// Checks the log's segments in `dir` against the Raft state; returns what it found and the
/// segments to open (damage refused, or cut off when `repair`). `mark` is the committed
/// high-water mark: sled's committed id may lag it by a few commits (`save_committed`).
pub(crate) fn check_log<C>(
    dir: &Path,
    sled: &SledFiles,
    state: &sled::Tree,
    mark: Option<u64>,
    repair: bool,
) -> Result<(LogCheck, Vec<SegmentScan>), StorageError>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let _: Option<Vote<C::NodeId>> = read_state(state, KEY_VOTE)?;
    let committed: Option<LogId<C::NodeId>> = read_state(state, KEY_COMMITTED)?;
    let last_purged: Option<LogId<C::NodeId>> = read_state(state, KEY_LAST_PURGED)?;
    let purged = last_purged.as_ref().map(|p| p.index);

    let mut scans = Vec::new();
    for (_, path) in log_files::list_segments(dir)? {
        scans.push(log_files::scan_segment(&path)?);
    }

    let mut finished_purge = 0;
    let mut first_index = None;
    let mut last_good: Option<(u64, LogId<C::NodeId>)> = None;
    let mut first_bad: Option<FirstBad> = None;
    let mut bad_count = 0u64;
    let mut prev_index: Option<u64> = purged;
    for (n, scan) in scans.iter().enumerate() {
        if purged
            .is_some_and(|p| !scan.frames.is_empty() && scan.frames.iter().all(|f| f.index <= p))
            && scan.damage.is_none()
        {
            // Left by a purge that stopped between its marker and deleting this segment.
            finished_purge += scan.frames.len() as u64;
            continue;
        }
        for frame in &scan.frames {
            match decode_entry::<C>(&frame.index.to_be_bytes(), &frame.record) {
                Ok((index, _)) if purged.is_some_and(|p| index <= p) && first_bad.is_none() => {
                    finished_purge += 1;
                }
                Ok((index, entry)) => {
                    if let Some(bad) = first_bad {
                        return Err(StorageError::CorruptLogEntry {
                            index: bad.index,
                            reason: bad.reason,
                        });
                    }
                    if let Some(prev) = prev_index {
                        if index != prev + 1 {
                            return Err(StorageError::LogGap {
                                after: prev,
                                next: index,
                            });
                        }
                    }
                    first_index.get_or_insert(index);
                    last_good = Some((index, entry.get_log_id().clone()));
                    prev_index = Some(index);
                }
                Err(reason) => {
                    bad_count += 1;
                    if first_bad.is_none() {
                        let last = scan.frames.last().is_some_and(|f| f.offset == frame.offset);
                        // Position, not the stored index: the index itself may be the damage.
                        first_bad = Some(FirstBad {
                            index: prev_index.map_or(0, |p| p + 1),
                            reason,
                            torn: last && scan.damage.is_none() && log_files::torn_frame(frame),
                            segment: n,
                            offset: frame.offset,
                        });
                    }
                }
            }
        }
        if let Some(reason) = &scan.damage {
            let bad = FirstBad {
                index: prev_index.map_or(0, |p| p + 1),
                reason: reason.clone(),
                // A frame running past the end of the file: written into a file that was
                // not preallocated (or cut by a truncation), and stopped short.
                torn: matches!(reason, Corruption::TooShort { .. }),
                segment: n,
                offset: scan.end,
            };
            if scan.good_after_damage {
                let bad = first_bad.unwrap_or(bad);
                return Err(StorageError::CorruptLogEntry {
                    index: bad.index,
                    reason: bad.reason,
                });
            }
            bad_count += 1;
            first_bad.get_or_insert(bad);
        }
    }

    let Some(bad) = first_bad else {
        return Ok((
            LogCheck {
                first_index,
                last_index: last_good.as_ref().map(|(i, _)| *i),
                finished_purge,
                repaired: 0,
                torn_write_cut: false,
            },
            scans,
        ));
    };

    let committed_index = committed.as_ref().map(|c| c.index).max(mark);
    let committed_lost = committed_index.is_some_and(|c| c >= bad.index);
    let torn_write_cut = bad.torn && bad_count == 1;
    if !repair && !torn_write_cut {
        return Err(StorageError::CorruptLogTail {
            index: bad.index,
            last_good: last_good.as_ref().map(|(i, _)| *i),
            count: bad_count,
            committed: committed_lost,
            reason: bad.reason,
        });
    }

    // Cut the damaged segment at the damage and delete the segments after it.
    let later = scans.split_off(bad.segment + 1);
    let mut repaired = 0u64;
    for scan in &later {
        repaired += (scan.frames.len() as u64).max(1);
        std::fs::remove_file(&scan.path)?;
    }
    let cut = scans.last_mut().expect("the damaged segment");
    repaired += cut.frames.iter().filter(|f| f.offset >= bad.offset).count() as u64;
    if cut.damage.is_some() {
        repaired += 1;
    }
    cut.frames.retain(|f| f.offset < bad.offset);
    cut.end = bad.offset;
    cut.damage = None;
    cut.good_after_damage = false;
    let file = std::fs::OpenOptions::new().write(true).open(&cut.path)?;
    file.set_len(bad.offset)?;
    file.sync_all()?;
    log_files::sync_dir(dir)?;
    if committed_lost {
        // openraft would try to re-apply committed entries that no longer exist.
        let kept = last_good.as_ref().map(|(_, id)| id.clone()).or(last_purged);
        match kept {
            Some(id) => write_state(state, KEY_COMMITTED, &id)?,
            None => {
                state.remove(KEY_COMMITTED)?;
            }
        }
    }
    sled.flush()?;
    if torn_write_cut {
        tracing::warn!(
            index = bad.index,
            last_good = ?last_good.as_ref().map(|(i, _)| *i),
            reason = %bad.reason,
            "cut off the last raft log entry: its write was cut short by a crash, so it was \
             never synced nor acknowledged; the leader sends it again if it is in the log"
        );
    } else {
        tracing::error!(
            first_bad = bad.index,
            removed = repaired,
            last_good = ?last_good.as_ref().map(|(i, _)| *i),
            committed_lost,
            reason = %bad.reason,
            "REPAIRED the raft log by truncating its corrupt tail; the removed entries are lost \
             on this member and will be re-replicated by the leader if they were committed"
        );
    }
    Ok((
        LogCheck {
            first_index,
            last_index: last_good.as_ref().map(|(i, _)| *i),
            finished_purge,
            repaired,
            torn_write_cut,
        },
        scans,
    ))
}
