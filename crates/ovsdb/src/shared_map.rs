//! Hash maps that copies of a database share: a table's rows, its reference counts and its
//! index entries. A copy of a database costs a reference count per shard, not a copy of every
//! entry, and the first change after a copy copies one shard of the map it changes.
//!
//! Why: a member snapshots its state every `snapshot_every` commands, copying the databases on
//! its Raft thread so that it can encode them elsewhere while it goes on applying. Copied entry
//! by entry, 100,000 ports took 36 ms there (docs/performance.md, "Session 30"), during which
//! that member neither applied nor answered its leader, and every member snapshots at about the
//! same log index. Large transactions run on a copy of their database too (`Begun::Heavy`).
//!
//! A map holds one shard until it has [`SPLIT_AT`] entries, then [`SHARDS`]: small tables keep
//! one allocation, large ones copy 1/1024 of a map on the first change after a copy. Which shard
//! holds a key depends on the key only, and no output depends on the shards (iteration is in
//! hash order, which callers never let reach a result).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use uuid::Uuid;

use crate::database::LookupHasher;

/// Shards of a large map. Many, so that a batch of writes after a copy copies a small part of
/// the map: the first hundred writes with random keys touch 79 % of 64 shards (the whole map
/// copied in one apply: 110-220 ms stalls of the Raft thread at 120k rows) and 9 % of 1,024.
const SHARDS: usize = 1024;
/// Entries at which a one-shard map is cut into [`SHARDS`] (16 entries a shard then; below it
/// the first change after a copy copies the whole map, 16,384 entries at most, about 1 ms).
const SPLIT_AT: usize = 16 * 1024;

type Shard<K, V> = HashMap<K, V, LookupHasher>;

/// Keys that say which shard holds them, from bits of their own that are spread evenly.
pub(crate) trait ShardKey: Hash + Eq + Clone {
    fn shard_bits(&self) -> u64;
}

impl ShardKey for Uuid {
    fn shard_bits(&self) -> u64 {
        // The last bytes of a random (or name-derived) UUID: no version or variant bits.
        let b = self.as_bytes();
        u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
    }
}

impl ShardKey for u64 {
    /// Index keys are hashes already; the shard takes their top bits.
    fn shard_bits(&self) -> u64 {
        self.rotate_left(10)
    }
}

#[derive(Debug)]
pub(crate) struct SharedMap<K, V> {
    /// Empty, one shard, or [`SHARDS`].
    shards: Vec<Arc<Shard<K, V>>>,
}

impl<K, V> Clone for SharedMap<K, V> {
    fn clone(&self) -> Self {
        SharedMap {
            shards: self.shards.clone(),
        }
    }
}

impl<K, V> Default for SharedMap<K, V> {
    fn default() -> Self {
        SharedMap { shards: Vec::new() }
    }
}

impl<K: ShardKey, V: Clone> SharedMap<K, V> {
    fn at(&self, key: &K) -> usize {
        match self.shards.len() {
            SHARDS => (key.shard_bits() % SHARDS as u64) as usize,
            _ => 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards.get(self.at(key))?.get(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// The shard that holds (or would hold) `key`, unshared, to change: a shard a copy still
    /// holds is copied first.
    pub(crate) fn shard_mut(&mut self, key: &K) -> &mut Shard<K, V> {
        if self.shards.is_empty() {
            self.shards.push(Arc::default());
        } else if self.shards.len() == 1 && self.shards[0].len() >= SPLIT_AT {
            self.split();
        }
        let at = self.at(key);
        Arc::make_mut(&mut self.shards[at])
    }

    fn split(&mut self) {
        let one = self.shards.pop().expect("one shard");
        let mut shards: Vec<Shard<K, V>> = (0..SHARDS).map(|_| Shard::default()).collect();
        let entries: Box<dyn Iterator<Item = (K, V)>> = match Arc::try_unwrap(one) {
            Ok(map) => Box::new(map.into_iter()),
            Err(shared) => Box::new(
                shared
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
        };
        for (k, v) in entries {
            shards[(k.shard_bits() % SHARDS as u64) as usize].insert(k, v);
        }
        self.shards = shards.into_iter().map(Arc::new).collect();
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.shard_mut(&key).insert(key, value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        // Nothing to remove: leave a shared shard shared.
        self.get(key)?;
        self.shard_mut(key).remove(key)
    }

    pub(crate) fn clear(&mut self) {
        self.shards.clear();
    }

    /// Every entry, in hash order (differs from process to process).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

impl<K: ShardKey, V: Clone + PartialEq> PartialEq for SharedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: ShardKey, V: Clone> FromIterator<(K, V)> for SharedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = SharedMap::default();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn uuid(i: u64) -> Uuid {
        // Spread like random UUIDs: the shard bits vary with i.
        Uuid::from_u64_pair(i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Inserts and removes against a BTreeMap model, through the split, with copies taken on
    /// the way: every copy keeps what it had, the map what was done to it.
    #[test]
    fn behaves_as_a_map_and_copies_keep_their_entries() {
        let mut m: SharedMap<Uuid, u64> = SharedMap::default();
        let mut model = BTreeMap::new();
        let mut copies = Vec::new();
        let mut x: u64 = 1;
        for step in 0..60_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = uuid(x % 30_000);
            if x.is_multiple_of(3) {
                assert_eq!(m.remove(&k), model.remove(&k), "step {step}");
            } else {
                assert_eq!(m.insert(k, step), model.insert(k, step), "step {step}");
            }
            if step.is_multiple_of(7500) {
                copies.push((m.clone(), model.clone()));
            }
        }
        assert_eq!(m.len(), model.len());
        assert!(m.shards.len() == SHARDS, "a map this large is split");
        for (k, v) in &model {
            assert_eq!(m.get(k), Some(v));
        }
        let seen: BTreeMap<Uuid, u64> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(seen, model);
        for (copy, then) in &copies {
            assert_eq!(copy.len(), then.len());
            assert!(then.iter().all(|(k, v)| copy.get(k) == Some(v)));
        }
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(&uuid(1)), None);
    }

    #[test]
    fn a_change_after_a_copy_copies_one_shard() {
        let m: SharedMap<Uuid, u64> = (0..40_000).map(|i| (uuid(i), i)).collect();
        let copy = m.clone();
        let mut m = m;
        m.insert(uuid(40_000), 40_000);
        let shared = m
            .shards
            .iter()
            .zip(&copy.shards)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(copy.len(), 40_000);
        assert_eq!(m.len(), 40_001);
        // Removing what is absent copies nothing.
        let before = m.clone();
        assert_eq!(m.remove(&uuid(99_999)), None);
        assert!(m
            .shards
            .iter()
            .zip(&before.shards)
            .all(|(a, b)| Arc::ptr_eq(a, b)));
    }

    #[test]
    fn equality_looks_through_the_shards() {
        let big: SharedMap<u64, u64> = (0..20_000).map(|i| (i * 7919, i)).collect();
        let mut other: SharedMap<u64, u64> = SharedMap::default();
        for i in (0..20_000).rev() {
            other.insert(i * 7919, i);
        }
        assert_eq!(big, other);
        other.insert(1, 1);
        assert_ne!(big, other);
    }
}
