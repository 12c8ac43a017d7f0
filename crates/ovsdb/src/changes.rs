//! The effect of one committed transaction, as monitors need it (the input of
//! RFC 7047 §4.1.6 `update` / the `update2`/`update3` extensions): per table, per row,
//! the row before and after. Only rows whose content changed are present.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::row::Row;

/// One row's change: insert (`old` None), delete (`new` None) or modify (both Some).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    pub old: Option<Row>,
    pub new: Option<Row>,
}

/// All row changes of one transaction, by table name then row UUID (both sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub tables: BTreeMap<String, BTreeMap<Uuid, RowChange>>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.tables.values().all(BTreeMap::is_empty)
    }

    pub fn table(&self, name: &str) -> Option<&BTreeMap<Uuid, RowChange>> {
        self.tables.get(name)
    }

    /// Every change as (table, uuid, change), tables and rows in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Uuid, &RowChange)> {
        self.tables
            .iter()
            .flat_map(|(t, rows)| rows.iter().map(move |(u, c)| (t.as_str(), u, c)))
    }

    /// Number of changed rows.
    pub fn len(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    /// Atoms held by the rows before and after (what ovsdb-server bounds its transaction
    /// history by).
    pub fn atoms(&self) -> usize {
        self.iter()
            .map(|(_, _, c)| {
                c.old.as_ref().map_or(0, Row::atoms) + c.new.as_ref().map_or(0, Row::atoms)
            })
            .sum()
    }

    /// How the database's atom count moves when this change set is applied.
    pub fn atoms_delta(&self) -> isize {
        self.iter()
            .map(|(_, _, c)| {
                c.new.as_ref().map_or(0, Row::atoms) as isize
                    - c.old.as_ref().map_or(0, Row::atoms) as isize
            })
            .sum()
    }
}
