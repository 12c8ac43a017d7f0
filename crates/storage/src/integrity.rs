//! The open-time check of the Raft log and Raft state.
//!
//! Every log entry is read back and checked (checksum, decoding, key/index
//! agreement) and the indexes must be contiguous. Then:
//! - all entries good: open proceeds;
//! - the damage is confined to the tail (no good entry after the first bad
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

use crate::error::{Corruption, StorageError};
use crate::layout::{self, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE};
use crate::log_store::{decode_entry, read_state, write_state};

/// What the check found, for the open-time log line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheck {
    /// Index of the first entry kept, if any.
    pub first_index: Option<u64>,
    /// Index of the last entry kept, if any.
    pub last_index: Option<u64>,
    /// Entries left over at or below the last purged index by a purge that
    /// was interrupted, and removed now.
    pub finished_purge: u64,
    /// Damaged tail entries removed because `repair` was requested.
    pub repaired: u64,
}

struct FirstBad {
    index: u64,
    reason: Corruption,
}

pub(crate) fn check_log<C>(
    db: &sled::Db,
    log: &sled::Tree,
    state: &sled::Tree,
    repair: bool,
) -> Result<LogCheck, StorageError>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let _: Option<Vote<C::NodeId>> = read_state(state, KEY_VOTE)?;
    let committed: Option<LogId<C::NodeId>> = read_state(state, KEY_COMMITTED)?;
    let last_purged: Option<LogId<C::NodeId>> = read_state(state, KEY_LAST_PURGED)?;

    let mut finished_purge = 0;
    if let Some(purged) = &last_purged {
        let mut batch = sled::Batch::default();
        for item in log.range(..=layout::log_key(purged.index)) {
            let (key, _) = item?;
            batch.remove(key);
            finished_purge += 1;
        }
        if finished_purge > 0 {
            tracing::warn!(
                entries = finished_purge,
                up_to = purged.index,
                "finishing an interrupted log purge"
            );
            log.apply_batch(batch)?;
        }
    }

    let mut first_index = None;
    let mut last_good: Option<(u64, LogId<C::NodeId>)> = None;
    let mut first_bad: Option<FirstBad> = None;
    let mut bad_count = 0u64;
    let mut prev_index: Option<u64> = last_purged.as_ref().map(|p| p.index);
    for item in log.iter() {
        let (key, value) = item?;
        match decode_entry::<C>(&key, &value) {
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
                    // A key that is not a log index has no position; report it
                    // as sitting just after the last good entry.
                    let index =
                        layout::log_index(&key).unwrap_or_else(|| prev_index.map_or(0, |p| p + 1));
                    first_bad = Some(FirstBad { index, reason });
                }
            }
        }
    }

    let Some(bad) = first_bad else {
        return Ok(LogCheck {
            first_index,
            last_index: last_good.as_ref().map(|(i, _)| *i),
            finished_purge,
            repaired: 0,
        });
    };

    let committed_lost = committed.as_ref().is_some_and(|c| c.index >= bad.index);
    if !repair {
        return Err(StorageError::CorruptLogTail {
            index: bad.index,
            last_good: last_good.as_ref().map(|(i, _)| *i),
            count: bad_count,
            committed: committed_lost,
            reason: bad.reason,
        });
    }

    let after_good = last_good.as_ref().map_or(0, |(i, _)| i + 1);
    let mut doomed = std::collections::BTreeSet::new();
    for item in log.range(layout::log_key(after_good)..) {
        doomed.insert(item?.0);
    }
    // Keys that are not 8 bytes long sort anywhere; they go too.
    for item in log.iter() {
        let (key, _) = item?;
        if layout::log_index(&key).is_none() {
            doomed.insert(key);
        }
    }
    let repaired = doomed.len() as u64;
    let mut batch = sled::Batch::default();
    for key in doomed {
        batch.remove(key);
    }
    log.apply_batch(batch)?;
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
    db.flush()?;
    tracing::error!(
        first_bad = bad.index,
        removed = repaired,
        last_good = ?last_good.as_ref().map(|(i, _)| *i),
        committed_lost,
        reason = %bad.reason,
        "REPAIRED the raft log by truncating its corrupt tail; the removed entries are lost on \
         this member and will be re-replicated by the leader if they were committed"
    );
    Ok(LogCheck {
        first_index,
        last_index: last_good.as_ref().map(|(i, _)| *i),
        finished_purge,
        repaired,
    })
}
