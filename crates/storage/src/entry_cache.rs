//! The newest log entries, kept decoded after they are written.
//!
//! Every entry a leader appends is read back at once by each follower's replication task and
//! by its own apply, and every entry a follower appends by its apply: without this, each read
//! took the sealed record from the segment files, checked it and decoded its JSON again (three
//! decodes per write on a 3-member leader; for a 1 MiB entry, milliseconds each). The cache
//! holds a contiguous run of the log's last entries, bounded in bytes (as stored); a read it
//! covers is answered with clones, any other read goes to the files as before.
//!
//! It mirrors the files: entries are added only after they were written to them, a truncation
//! drops the same suffix, a purge the same prefix, so the run always ends at the log's last
//! entry (or the cache is empty). One cache is shared by all the log stores and readers of one
//! [`crate::Store`].

use std::collections::VecDeque;
use std::sync::Mutex;

/// Bytes of entries (as stored) the cache holds at most.
pub const ENTRY_CACHE_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) struct EntryCache<E> {
    inner: Mutex<Run<E>>,
    capacity: u64,
}

struct Run<E> {
    /// (index, entry, bytes as stored), consecutive indexes.
    entries: VecDeque<(u64, E, u64)>,
    bytes: u64,
}

impl<E: Clone> EntryCache<E> {
    pub(crate) fn new(capacity: u64) -> Self {
        EntryCache {
            inner: Mutex::new(Run {
                entries: VecDeque::new(),
                bytes: 0,
            }),
            capacity,
        }
    }

    fn run(&self) -> std::sync::MutexGuard<'_, Run<E>> {
        // A panic while holding it leaves nothing half-done that a reader could see wrongly:
        // each method changes the run in steps that keep it contiguous.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries just written to the files, in index order. An index that does not follow the
    /// run (it cannot, short of a bug) starts a new run.
    pub(crate) fn extend(&self, written: impl IntoIterator<Item = (u64, E, u64)>) {
        let mut run = self.run();
        for (index, entry, stored) in written {
            if run
                .entries
                .back()
                .is_some_and(|(last, _, _)| index != last + 1)
            {
                run.entries.clear();
                run.bytes = 0;
            }
            run.entries.push_back((index, entry, stored));
            run.bytes += stored;
            while run.bytes > self.capacity {
                match run.entries.pop_front() {
                    Some((_, _, b)) => run.bytes -= b,
                    None => break,
                }
            }
        }
    }

    /// The log lost its entries from `index` on.
    pub(crate) fn truncate(&self, index: u64) {
        let mut run = self.run();
        while run.entries.back().is_some_and(|(i, _, _)| *i >= index) {
            let (_, _, b) = run.entries.pop_back().expect("checked");
            run.bytes -= b;
        }
    }

    /// The log lost its entries up to `index`, included.
    pub(crate) fn purge(&self, index: u64) {
        let mut run = self.run();
        while run.entries.front().is_some_and(|(i, _, _)| *i <= index) {
            let (_, _, b) = run.entries.pop_front().expect("checked");
            run.bytes -= b;
        }
    }

    /// Entries `from..=to` (as many as the log has), stopping after the one that brings the
    /// stored bytes to `budget` or more, as the files' read does; `None` unless the run holds
    /// `from`.
    pub(crate) fn get(&self, from: u64, to: u64, budget: u64) -> Option<Vec<E>> {
        let run = self.run();
        let first = run.entries.front()?.0;
        let last = run.entries.back()?.0;
        if from < first || from > last {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for (_, entry, stored) in run.entries.range((from - first) as usize..) {
            if out.len() as u64 > to - from {
                break;
            }
            out.push(entry.clone());
            bytes += stored;
            if bytes >= budget {
                break;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(range: std::ops::Range<u64>, capacity: u64) -> EntryCache<u64> {
        let c = EntryCache::new(capacity);
        c.extend(range.map(|i| (i, i * 10, 10)));
        c
    }

    #[test]
    fn reads_within_the_run_only() {
        let c = filled(5..10, 1000);
        assert_eq!(c.get(5, 9, u64::MAX), Some(vec![50, 60, 70, 80, 90]));
        assert_eq!(c.get(7, u64::MAX, u64::MAX), Some(vec![70, 80, 90]));
        assert_eq!(c.get(6, 7, u64::MAX), Some(vec![60, 70]));
        assert_eq!(c.get(4, 9, u64::MAX), None);
        assert_eq!(c.get(10, 12, u64::MAX), None);
        // The budget: stop after the entry that reaches it, never before the first.
        assert_eq!(c.get(5, 9, 25), Some(vec![50, 60, 70]));
        assert_eq!(c.get(5, 9, 1), Some(vec![50]));
    }

    #[test]
    fn follows_truncations_purges_and_capacity() {
        let c = filled(0..10, 1000);
        c.truncate(7);
        assert_eq!(c.get(5, u64::MAX, u64::MAX), Some(vec![50, 60]));
        c.extend([(7, 700, 10)]);
        assert_eq!(c.get(6, u64::MAX, u64::MAX), Some(vec![60, 700]));
        c.purge(5);
        assert_eq!(c.get(5, 9, u64::MAX), None);
        assert_eq!(c.get(6, 9, u64::MAX), Some(vec![60, 700]));
        // Over capacity, the oldest go first.
        let c = filled(0..10, 35);
        assert_eq!(c.get(6, 9, u64::MAX), None);
        assert_eq!(c.get(7, 9, u64::MAX), Some(vec![70, 80, 90]));
        // An entry larger than the whole cache leaves it empty.
        c.extend([(10, 100, 36)]);
        assert_eq!(c.get(10, 10, u64::MAX), None);
        // A gap starts a new run.
        let c = filled(0..3, 1000);
        c.extend([(5, 50, 10)]);
        assert_eq!(c.get(0, 5, u64::MAX), None);
        assert_eq!(c.get(5, 5, u64::MAX), Some(vec![50]));
    }
}
