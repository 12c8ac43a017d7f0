//! Per-table maps of the rows a transaction touches (the working overlay of `transact`
//! and the change list of the commit-time checks, RFC 7047 §4.1.3). A transaction
//! touches a few of a schema's tables (two of OVN Northbound's 27 for `lsp-add`), so the
//! maps are created on first write: building and dropping an empty B-tree per table
//! cost more than the work on the touched ones.

use std::collections::BTreeMap;
use std::ops::{Index, IndexMut};

use uuid::Uuid;

pub(crate) struct PerTable<V> {
    maps: Vec<Option<BTreeMap<Uuid, V>>>,
    /// What an untouched table reads as.
    empty: BTreeMap<Uuid, V>,
}

impl<V> PerTable<V> {
    pub(crate) fn new(tables: usize) -> PerTable<V> {
        PerTable {
            maps: (0..tables).map(|_| None).collect(),
            empty: BTreeMap::new(),
        }
    }

    /// Every table's map, in table order (empty for untouched tables).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &BTreeMap<Uuid, V>> {
        self.maps.iter().map(|m| m.as_ref().unwrap_or(&self.empty))
    }

    /// The maps of the tables written so far (possibly emptied since), with their indexes,
    /// in table order: what a pass over the whole schema needs to look at.
    pub(crate) fn touched(&self) -> impl Iterator<Item = (usize, &BTreeMap<Uuid, V>)> {
        self.maps
            .iter()
            .enumerate()
            .filter_map(|(t, m)| m.as_ref().map(|m| (t, m)))
    }

    /// Takes the maps of the touched tables, with their table indexes, leaving all empty.
    pub(crate) fn take_all(&mut self) -> impl Iterator<Item = (usize, BTreeMap<Uuid, V>)> + '_ {
        self.maps
            .iter_mut()
            .enumerate()
            .filter_map(|(t, m)| m.take().map(|m| (t, m)))
    }

    /// Keeps the rows for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        for m in self.maps.iter_mut().flatten() {
            m.retain(|_, v| keep(v));
        }
    }

    /// Whether no table has a row.
    pub(crate) fn is_empty(&self) -> bool {
        self.iter().all(BTreeMap::is_empty)
    }
}

impl<V> Index<usize> for PerTable<V> {
    type Output = BTreeMap<Uuid, V>;

    fn index(&self, t: usize) -> &BTreeMap<Uuid, V> {
        self.maps[t].as_ref().unwrap_or(&self.empty)
    }
}

impl<V> IndexMut<usize> for PerTable<V> {
    fn index_mut(&mut self, t: usize) -> &mut BTreeMap<Uuid, V> {
        self.maps[t].get_or_insert_with(BTreeMap::new)
    }
}
