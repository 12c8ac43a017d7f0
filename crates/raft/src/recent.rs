//! The ids of recently applied commands with their outcomes, so that a command re-sent after a
//! leader change is applied once (`state::DEDUP_LEN` of them, oldest forgotten first).
//!
//! Kept in shared chunks so that a snapshot takes them in constant time. A snapshot copies what
//! it holds on the Raft thread, where applies and heartbeats wait for it; copying 100,000
//! outcomes one by one (a map lookup and a string copy each) took 75 ms there, every
//! `snapshot_every` commands, on every member at about the same time (docs/performance.md,
//! "Session 30"). Now a snapshot clones the list of chunks, and the next command remembered
//! copies at most the newest chunk. Only the sequence of (id, outcome) is observable; where the
//! chunks are cut is not.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::ser::{Serialize, SerializeSeq, Serializer};
use uuid::Uuid;

use crate::command::Outcome;

/// Entries in one chunk, at most: what the first command after a snapshot copies.
const CHUNK: usize = 1024;

type Chunk = Vec<(Uuid, Outcome)>;

/// The remembered commands, oldest first, at most `capacity` of them.
pub(crate) struct Recent {
    chunks: VecDeque<Arc<Chunk>>,
    /// Entries at the front of the first chunk already forgotten (the chunk may be shared with
    /// a snapshot, so they are skipped rather than removed).
    skip: usize,
    /// The number of the first chunk; chunks are numbered in the order they were started.
    first: u64,
    /// Where each remembered id is: (chunk number, offset in it).
    index: HashMap<Uuid, (u64, usize)>,
    len: usize,
    capacity: usize,
}

impl Default for Recent {
    fn default() -> Recent {
        Recent::new(crate::state::DEDUP_LEN)
    }
}

impl Recent {
    pub(crate) fn new(capacity: usize) -> Recent {
        Recent {
            chunks: VecDeque::new(),
            skip: 0,
            first: 0,
            index: HashMap::new(),
            len: 0,
            capacity,
        }
    }

    /// From a snapshot's list, oldest first.
    pub(crate) fn from_list(capacity: usize, list: Vec<(Uuid, Outcome)>) -> Recent {
        let mut r = Recent::new(capacity);
        for (id, outcome) in list {
            r.remember(id, outcome);
        }
        r
    }

    pub(crate) fn get(&self, id: &Uuid) -> Option<&Outcome> {
        let (no, at) = self.index.get(id)?;
        let chunk = &self.chunks[(no - self.first) as usize];
        Some(&chunk[*at].1)
    }

    pub(crate) fn contains_key(&self, id: &Uuid) -> bool {
        self.index.contains_key(id)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Remembers `id` as the newest, forgetting the oldest when full.
    pub(crate) fn remember(&mut self, id: Uuid, outcome: Outcome) {
        if self.len == self.capacity {
            self.forget_oldest();
        }
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push_back(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let no = self.first + self.chunks.len() as u64 - 1;
        let last = Arc::make_mut(self.chunks.back_mut().expect("a chunk was pushed"));
        last.push((id, outcome));
        self.index.insert(id, (no, last.len() - 1));
        self.len += 1;
    }

    fn forget_oldest(&mut self) {
        let Some(front) = self.chunks.front() else {
            return;
        };
        let (id, _) = &front[self.skip];
        // An id remembered twice points at its newer place: leave that one.
        if self.index.get(id) == Some(&(self.first, self.skip)) {
            self.index.remove(id);
        }
        self.skip += 1;
        self.len -= 1;
        if self.skip == front.len() {
            self.chunks.pop_front();
            self.first += 1;
            self.skip = 0;
        }
    }

    /// What a snapshot holds: the same entries, sharing the chunks.
    pub(crate) fn list(&self) -> RecentList {
        RecentList {
            chunks: self.chunks.iter().cloned().collect(),
            skip: self.skip,
            len: self.len,
        }
    }
}

/// The remembered commands as a snapshot holds them, oldest first. Serialized as the sequence
/// of (id, outcome) pairs, the encoding snapshots always had.
#[derive(Clone)]
pub(crate) struct RecentList {
    chunks: Vec<Arc<Chunk>>,
    skip: usize,
    len: usize,
}

impl RecentList {
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &(Uuid, Outcome)> {
        Entries {
            inner: self.chunks.iter().flat_map(|c| c.iter()).skip(self.skip),
            left: self.len,
        }
    }

    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<(Uuid, Outcome)> {
        self.iter().cloned().collect()
    }
}

/// An iterator that knows its length (bincode writes a sequence's length first).
struct Entries<I> {
    inner: I,
    left: usize,
}

impl<'a, I: Iterator<Item = &'a (Uuid, Outcome)>> Iterator for Entries<I> {
    type Item = &'a (Uuid, Outcome);

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.inner.next()?;
        self.left -= 1;
        Some(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, I: Iterator<Item = &'a (Uuid, Outcome)>> ExactSizeIterator for Entries<I> {}

impl Serialize for RecentList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for e in self.iter() {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(i: usize) -> Outcome {
        Outcome::Transact {
            result: format!("[{{\"count\":{i}}}]"),
        }
    }

    /// The model: the last `capacity` (id, outcome) pairs in order.
    fn model(n: usize, capacity: usize) -> Vec<(Uuid, Outcome)> {
        let all: Vec<_> = (0..n)
            .map(|i| (Uuid::from_u128(i as u128 + 1), outcome(i)))
            .collect();
        all[n.saturating_sub(capacity)..].to_vec()
    }

    #[test]
    fn keeps_the_newest_in_order_and_finds_each() {
        for (n, capacity) in [
            (0, 5),
            (3, 5),
            (5, 5),
            (6, 5),
            (3000, 2500),
            (5000, 1024),
            (4096, 4096),
            (9000, 3000),
        ] {
            let mut r = Recent::new(capacity);
            for i in 0..n {
                r.remember(Uuid::from_u128(i as u128 + 1), outcome(i));
            }
            let want = model(n, capacity);
            assert_eq!(r.list().to_vec(), want, "n={n} capacity={capacity}");
            assert_eq!(r.len(), want.len());
            assert_eq!(r.list().iter().len(), want.len());
            for (id, o) in &want {
                assert_eq!(r.get(id), Some(o));
            }
            for i in 0..n.saturating_sub(capacity) {
                assert!(
                    !r.contains_key(&Uuid::from_u128(i as u128 + 1)),
                    "n={n} forgotten {i}"
                );
            }
        }
    }

    #[test]
    fn a_snapshot_keeps_what_it_took_while_more_is_remembered() {
        let mut r = Recent::new(3000);
        for i in 0..4000 {
            r.remember(Uuid::from_u128(i as u128 + 1), outcome(i));
        }
        let taken = r.list();
        let before = taken.to_vec();
        for i in 4000..6500 {
            r.remember(Uuid::from_u128(i as u128 + 1), outcome(i));
        }
        assert_eq!(taken.to_vec(), before);
        assert_eq!(r.list().to_vec(), model(6500, 3000));
    }

    #[test]
    fn serializes_as_the_plain_list_did_and_restores_from_it() {
        let mut r = Recent::new(2000);
        for i in 0..3500 {
            r.remember(Uuid::from_u128(i as u128 + 1), outcome(i));
        }
        let plain: Vec<(Uuid, Outcome)> = model(3500, 2000);
        let bytes = bincode::serialize(&r.list()).unwrap();
        assert_eq!(bytes, bincode::serialize(&plain).unwrap());
        let back = Recent::from_list(2000, bincode::deserialize(&bytes).unwrap());
        assert_eq!(back.list().to_vec(), plain);
    }

    #[test]
    fn an_id_remembered_twice_is_found_at_its_newer_place() {
        let mut r = Recent::new(3);
        let id = Uuid::from_u128(7);
        r.remember(id, outcome(1));
        r.remember(Uuid::from_u128(8), outcome(2));
        r.remember(id, outcome(3));
        r.remember(Uuid::from_u128(9), outcome(4));
        // The first entry for `id` is forgotten; the newer one stays.
        assert_eq!(r.get(&id), Some(&outcome(3)));
    }
}
