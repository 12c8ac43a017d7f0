//! Large sets (RFC 7047 §5.1 `<set>` with more than [`SMALL_MAX`] elements, such as
//! `Logical_Switch.ports` with thousands of ports): the sorted elements cut into shared
//! chunks, so that the `insert`/`delete` mutators copy one chunk and the list of chunk
//! pointers instead of the whole set, and so that comparing or diffing two versions of
//! a set (commit-time reference counting, monitor `modify` diffs) skips the chunks they
//! share. Only the element sequence is observable: the cut into chunks depends on the
//! history of the set and never shows in equality, ordering, hashing or any output.

use std::sync::Arc;

use crate::atom::Atom;

// Flat sets stay under 1 KiB (24-byte atoms plus a 16-byte `Arc` header): glibc serves
// larger requests from its large bins and consolidates its fast bins first, which on a
// heap of 100k rows cost more than the copy itself. Chunks are larger (up to 80 atoms,
// under 2 KiB) since the server allocates through mimalloc: every insert into a set of
// 1000 ports clones and later drops the chunk pointers, each a reference count on its own
// cache line, and half as many of them was worth more (100k-row bench: 95k -> 111k txn/s
// median) than the copy of a longer chunk; 128 atoms measured no better.

/// Sets of at most this many elements are stored flat; larger ones as a [`BigSet`].
pub(crate) const SMALL_MAX: usize = 40;
/// A chunk that grows past this is split in two.
const CHUNK_MAX: usize = 80;
/// Chunk size when a set is cut from a sorted run (room for inserts before a split).
const CHUNK_BUILD: usize = 60;
/// A chunk that shrinks below this after a deletion is joined to a neighbour.
const CHUNK_MIN: usize = 8;

/// A sorted set of distinct atoms in non-empty, ordered, shared chunks.
#[derive(Debug, Clone)]
pub(crate) struct BigSet {
    len: usize,
    chunks: Vec<Arc<[Atom]>>,
}

impl BigSet {
    /// From atoms already sorted and distinct.
    pub(crate) fn from_sorted(atoms: &[Atom]) -> BigSet {
        BigSet {
            len: atoms.len(),
            chunks: atoms.chunks(CHUNK_BUILD).map(Arc::from).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn chunks(&self) -> &[Arc<[Atom]>] {
        &self.chunks
    }

    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            chunks: self.chunks.iter(),
            cur: [].iter(),
            left: self.len,
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<Atom> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v
    }

    /// The chunk where `a` is or would be inserted: the last whose first element is not
    /// greater than `a` (the first chunk for an `a` before every element). First elements
    /// share a cache line with the chunk's reference count, which an insert touches anyway
    /// when it clones the chunk list; last elements of 80-atom chunks do not.
    fn chunk_for(chunks: &[Arc<[Atom]>], a: &Atom) -> usize {
        chunks
            .partition_point(|c| c.first().expect("chunks are not empty") <= a)
            .saturating_sub(1)
    }

    pub(crate) fn contains(&self, a: &Atom) -> bool {
        let c = &self.chunks[Self::chunk_for(&self.chunks, a)];
        c.binary_search(a).is_ok()
    }

    /// This set with `add` (any order) inserted, or None when every element was present.
    pub(crate) fn with_inserted<'a>(&self, add: impl Iterator<Item = &'a Atom>) -> Option<BigSet> {
        let mut out: Option<BigSet> = None;
        for x in add {
            let chunks = out.as_ref().map_or(&self.chunks, |s| &s.chunks);
            let ci = Self::chunk_for(chunks, x);
            let c = &chunks[ci];
            let Err(p) = c.binary_search(x) else {
                continue;
            };
            let grown = c[..p]
                .iter()
                .chain(std::iter::once(x))
                .chain(&c[p..])
                .cloned();
            let (first, second): (Arc<[Atom]>, Option<Arc<[Atom]>>) = if c.len() < CHUNK_MAX {
                // Collected straight into the `Arc` (the iterator knows its length).
                (grown.collect(), None)
            } else {
                let v: Vec<Atom> = grown.collect();
                let (l, r) = v.split_at(v.len() / 2);
                (Arc::from(l), Some(Arc::from(r)))
            };
            let s = out.get_or_insert_with(|| self.clone());
            s.len += 1;
            s.chunks[ci] = first;
            if let Some(r) = second {
                s.chunks.insert(ci + 1, r);
            }
        }
        out
    }

    /// This set without `del` (any order), or None when none of them was present.
    pub(crate) fn with_removed<'a>(&self, del: impl Iterator<Item = &'a Atom>) -> Option<BigSet> {
        let mut out: Option<BigSet> = None;
        for x in del {
            let chunks = out.as_ref().map_or(&self.chunks, |s| &s.chunks);
            if chunks.is_empty() {
                break;
            }
            let ci = Self::chunk_for(chunks, x);
            let c = &chunks[ci];
            let Ok(p) = c.binary_search(x) else {
                continue;
            };
            let mut shrunk: Vec<Atom> = Vec::with_capacity(c.len());
            shrunk.extend_from_slice(&c[..p]);
            shrunk.extend_from_slice(&c[p + 1..]);
            let s = out.get_or_insert_with(|| self.clone());
            s.len -= 1;
            if shrunk.is_empty() {
                s.chunks.remove(ci);
            } else if shrunk.len() < CHUNK_MIN && s.chunks.len() > 1 {
                // Join the neighbour so that deletions cannot leave a trail of tiny chunks.
                let (lo, joined) = if ci + 1 < s.chunks.len() {
                    shrunk.extend_from_slice(&s.chunks[ci + 1]);
                    (ci, shrunk)
                } else {
                    let mut v = s.chunks[ci - 1].to_vec();
                    v.extend(shrunk);
                    (ci - 1, v)
                };
                s.chunks.remove(lo + 1);
                if joined.len() > CHUNK_MAX {
                    let (l, r) = joined.split_at(joined.len() / 2);
                    s.chunks[lo] = Arc::from(l);
                    s.chunks.insert(lo + 1, Arc::from(r));
                } else {
                    s.chunks[lo] = Arc::from(joined);
                }
            } else {
                s.chunks[ci] = Arc::from(shrunk);
            }
        }
        out
    }
}

/// The elements of a [`BigSet`] in order.
#[derive(Clone)]
pub struct Iter<'a> {
    chunks: std::slice::Iter<'a, Arc<[Atom]>>,
    cur: std::slice::Iter<'a, Atom>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Atom;

    fn next(&mut self) -> Option<&'a Atom> {
        loop {
            if let Some(a) = self.cur.next() {
                self.left -= 1;
                return Some(a);
            }
            self.cur = self.chunks.next()?.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// A sorted set's elements as a list of runs: one slice for a flat set, the chunks of a
/// [`BigSet`]. Two runs at the same address and of the same length hold the same atoms.
#[derive(Clone, Copy)]
pub(crate) enum Runs<'a> {
    One(&'a [Atom]),
    Many(&'a [Arc<[Atom]>]),
}

impl<'a> Runs<'a> {
    fn count(&self) -> usize {
        match self {
            Runs::One(_) => 1,
            Runs::Many(c) => c.len(),
        }
    }

    fn get(&self, i: usize) -> &'a [Atom] {
        match self {
            Runs::One(s) => s,
            Runs::Many(c) => &c[i],
        }
    }
}

/// Which side of a comparison an element is only in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Old,
    New,
}

/// Merges two sorted sets, calling `visit` for every element in only one of them (in
/// order) until it returns false; shared runs met at the same position are skipped
/// without comparing their elements. Returns false if `visit` stopped the walk.
pub(crate) fn walk_difference(
    old: Runs<'_>,
    new: Runs<'_>,
    mut visit: impl FnMut(Side, &Atom) -> bool,
) -> bool {
    let (na, nb) = (old.count(), new.count());
    let (mut ci, mut ei, mut cj, mut ej) = (0, 0, 0, 0);
    while ci < na && cj < nb {
        let (a, b) = (old.get(ci), new.get(cj));
        if ei == 0 && ej == 0 && a.len() == b.len() && std::ptr::eq(a.as_ptr(), b.as_ptr()) {
            ci += 1;
            cj += 1;
            continue;
        }
        if ei == a.len() {
            ci += 1;
            ei = 0;
            continue;
        }
        if ej == b.len() {
            cj += 1;
            ej = 0;
            continue;
        }
        match a[ei].cmp(&b[ej]) {
            std::cmp::Ordering::Equal => {
                // Versions of a chunk differ in an element or two: step over the rest of
                // the common run in a tight loop.
                let run = 1 + a[ei + 1..]
                    .iter()
                    .zip(&b[ej + 1..])
                    .take_while(|(x, y)| x == y)
                    .count();
                ei += run;
                ej += run;
            }
            std::cmp::Ordering::Less => {
                if !visit(Side::Old, &a[ei]) {
                    return false;
                }
                ei += 1;
            }
            std::cmp::Ordering::Greater => {
                if !visit(Side::New, &b[ej]) {
                    return false;
                }
                ej += 1;
            }
        }
    }
    for (runs, n, mut c, mut e, side) in
        [(old, na, ci, ei, Side::Old), (new, nb, cj, ej, Side::New)]
    {
        while c < n {
            for x in &runs.get(c)[e..] {
                if !visit(side, x) {
                    return false;
                }
            }
            c += 1;
            e = 0;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn atoms(v: &BTreeSet<i64>) -> Vec<Atom> {
        v.iter().map(|i| Atom::Integer(*i)).collect()
    }

    fn check(s: &BigSet, want: &BTreeSet<i64>) {
        assert_eq!(s.len(), want.len());
        assert_eq!(s.to_vec(), atoms(want));
        assert_eq!(s.iter().count(), want.len());
        assert!(s
            .chunks()
            .iter()
            .all(|c| !c.is_empty() && c.len() <= CHUNK_MAX));
        for i in -5..2100 {
            assert_eq!(s.contains(&Atom::Integer(i)), want.contains(&i), "{i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn edits_agree_with_a_btreeset(
            start in proptest::collection::btree_set(0i64..2000, 65..400),
            edits in proptest::collection::vec((any::<bool>(), proptest::collection::vec(-2i64..2002, 0..40)), 1..30),
        ) {
            let mut want = start.clone();
            let mut s = BigSet::from_sorted(&atoms(&start));
            let mut versions = vec![(s.clone(), want.clone())];
            for (insert, xs) in edits {
                let xs: Vec<Atom> = xs.iter().map(|i| Atom::Integer(*i)).collect();
                let before = want.clone();
                let next = if insert {
                    want.extend(xs.iter().map(|a| a.as_integer().unwrap()));
                    s.with_inserted(xs.iter())
                } else {
                    for a in &xs { want.remove(&a.as_integer().unwrap()); }
                    s.with_removed(xs.iter())
                };
                prop_assert_eq!(next.is_some(), before != want);
                if want.is_empty() { break; }
                if let Some(n) = next { s = n; }
                check(&s, &want);
                versions.push((s.clone(), want.clone()));
            }
            // The run-skipping difference equals the plain one between any two versions.
            for (a, wa) in &versions {
                for (b, wb) in &versions {
                    let mut got = (Vec::new(), Vec::new());
                    walk_difference(Runs::Many(a.chunks()), Runs::Many(b.chunks()), |side, x| {
                        let i = x.as_integer().unwrap();
                        match side { Side::Old => got.0.push(i), Side::New => got.1.push(i) }
                        true
                    });
                    prop_assert_eq!(got.0, wa.difference(wb).copied().collect::<Vec<_>>());
                    prop_assert_eq!(got.1, wb.difference(wa).copied().collect::<Vec<_>>());
                    let flat = a.to_vec();
                    let mut n = 0;
                    walk_difference(Runs::One(&flat), Runs::Many(b.chunks()), |_, _| { n += 1; true });
                    prop_assert_eq!(n, wa.symmetric_difference(wb).count());
                }
            }
        }
    }
}
