//! The in-memory database: rows by table and UUID (RFC 7047 §1.1 data model), with the
//! bookkeeping that the commit-time checks read instead of scanning: per-index ordered
//! maps, strong reference counts and a reverse index of weak references. Holds the entry
//! points `transact` / `transact_privileged` and the snapshot format.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::changes::{ChangeSet, RowChange};
use crate::datum::Datum;
use crate::error::OvsdbError;
use crate::json::{Document, JsonLike, JsonRef};
pub use crate::row::Row;
use crate::schema::{ColumnRef, DatabaseSchema, RefType, TableSchema};
use crate::shared_map::SharedMap;
use crate::transaction::{Mode, NotReadOnly, ReadTextError, TxnEnv, TxnOutcome};

/// A column holding references: which column, and which tables its keys/values point to.
#[derive(Debug, Clone)]
pub(crate) struct RefColumn {
    pub column: usize,
    pub key_target: Option<usize>,
    pub value_target: Option<usize>,
}

impl RefColumn {
    /// Every referenced (table, uuid) in `d`, keys then values, in order.
    pub(crate) fn targets<'a>(&'a self, d: &'a Datum) -> impl Iterator<Item = (usize, Uuid)> + 'a {
        let keys = self
            .key_target
            .into_iter()
            .flat_map(move |t| d.keys().filter_map(move |a| a.as_uuid().map(|u| (t, *u))));
        let values = self
            .value_target
            .into_iter()
            .flat_map(move |t| d.values().filter_map(move |a| a.as_uuid().map(|u| (t, *u))));
        keys.chain(values)
    }
}

/// Per-table facts derived from the schema once.
#[derive(Debug, Default)]
pub(crate) struct TableMeta {
    pub strong: Vec<RefColumn>,
    pub weak: Vec<RefColumn>,
    /// Some table holds weak references to this one.
    pub weak_target: bool,
}

pub(crate) fn table_meta(schema: &DatabaseSchema) -> Vec<TableMeta> {
    let mut metas: Vec<TableMeta> = schema.tables.iter().map(|_| TableMeta::default()).collect();
    for (ti, t) in schema.tables.iter().enumerate() {
        for c in &t.columns {
            for rt in [RefType::Strong, RefType::Weak] {
                let pick = |b: &crate::schema::BaseType| {
                    if b.ref_table.is_some() && b.ref_type == rt {
                        b.ref_table_index
                    } else {
                        None
                    }
                };
                let rc = RefColumn {
                    column: c.index,
                    key_target: pick(&c.type_.key),
                    value_target: c.type_.value.as_ref().and_then(pick),
                };
                if rc.key_target.is_none() && rc.value_target.is_none() {
                    continue;
                }
                if rt == RefType::Weak {
                    for target in rc.key_target.iter().chain(rc.value_target.iter()) {
                        metas[*target].weak_target = true;
                    }
                    metas[ti].weak.push(rc);
                } else {
                    metas[ti].strong.push(rc);
                }
            }
        }
    }
    metas
}

/// The hasher of the engine's lookup-only maps: foldhash, seeded randomly per process
/// (so clients cannot choose colliding keys), several times cheaper than SipHash on the
/// many small writes of a `Vec<Datum>` key.
pub(crate) type LookupHasher = foldhash::fast::RandomState;

/// One schema index: index values → the row holding them, kept as a 64-bit hash of the
/// values → the rows whose values have that hash (one, but for a collision), each
/// candidate checked against the key by the caller. Only looked up, never iterated. No
/// copy of the values is kept per row, and growing the map re-hashes integers: with the
/// values as keys, the doubling past 114,688 rows followed every row's pointers to its
/// values (3% of the 100k-row benchmark).
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    map: SharedMap<u64, Slot>,
    /// Hashes the values (seeded per process like the maps).
    values: LookupHasher,
}

#[derive(Debug, Clone)]
enum Slot {
    One(Uuid),
    /// Rows whose (different) values share a hash.
    Many(Vec<Uuid>),
}

impl Index {
    fn hash(&self, key: &[Datum]) -> u64 {
        std::hash::BuildHasher::hash_one(&self.values, key)
    }

    /// The row holding `key`, of those whose values hash alike the one for which `holds`.
    pub(crate) fn get(&self, key: &[Datum], holds: impl Fn(&Uuid) -> bool) -> Option<Uuid> {
        self.get_at(self.hash(key), holds)
    }

    fn get_at(&self, h: u64, holds: impl Fn(&Uuid) -> bool) -> Option<Uuid> {
        match self.map.get(&h)? {
            Slot::One(u) => holds(u).then_some(*u),
            Slot::Many(v) => v.iter().find(|u| holds(u)).copied(),
        }
    }

    /// Every row whose values hash like `key` (a superset of the rows holding `key`, the
    /// row for which `holds` would answer first among them).
    pub(crate) fn candidates(&self, key: &[Datum]) -> &[Uuid] {
        self.candidates_at(self.hash(key))
    }

    fn candidates_at(&self, h: u64) -> &[Uuid] {
        match self.map.get(&h) {
            None => &[],
            Some(Slot::One(u)) => std::slice::from_ref(u),
            Some(Slot::Many(v)) => v,
        }
    }

    pub(crate) fn insert(&mut self, key: &[Datum], u: Uuid) {
        self.insert_at(self.hash(key), u)
    }

    fn insert_at(&mut self, h: u64, u: Uuid) {
        use std::collections::hash_map::Entry;
        match self.map.shard_mut(&h).entry(h) {
            Entry::Vacant(e) => {
                e.insert(Slot::One(u));
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::One(x) if *x == u => {}
                Slot::One(x) => {
                    let x = *x;
                    e.insert(Slot::Many(vec![x, u]));
                }
                Slot::Many(v) => {
                    if !v.contains(&u) {
                        v.push(u);
                    }
                }
            },
        }
    }

    /// Forgets that row `u` holds `key`.
    pub(crate) fn remove(&mut self, key: &[Datum], u: &Uuid) {
        self.remove_at(self.hash(key), u)
    }

    fn remove_at(&mut self, h: u64, u: &Uuid) {
        use std::collections::hash_map::Entry;
        if self.map.get(&h).is_none() {
            return;
        }
        if let Entry::Occupied(mut e) = self.map.shard_mut(&h).entry(h) {
            match e.get_mut() {
                Slot::One(x) if x == u => {
                    e.remove();
                }
                Slot::One(_) => {}
                Slot::Many(v) => {
                    v.retain(|x| x != u);
                    if let [x] = v[..] {
                        e.insert(Slot::One(x));
                    }
                }
            }
        }
    }
}

/// Whether the row `uuid` (with `version` and `cols`) has the values `key` on `on`
/// ([`project`] without building the projection).
pub(crate) fn holds(
    uuid: &Uuid,
    version: &Uuid,
    cols: &[Datum],
    on: &[ColumnRef],
    key: &[Datum],
) -> bool {
    on.len() == key.len()
        && on.iter().zip(key).all(|(c, k)| match c {
            ColumnRef::Uuid => *k == Datum::from_atom(crate::Atom::Uuid(*uuid)),
            ColumnRef::Version => *k == Datum::from_atom(crate::Atom::Uuid(*version)),
            ColumnRef::Column(i) => cols[*i] == *k,
        })
}

/// One table's rows by UUID. Hashed: at 100k rows the B-tree this replaces cost two
/// traversals of five levels per inserted row (a cache miss each), where a probe costs one
/// or two. The map is never walked in hash order where the order could reach a result:
/// ordered walks go through [`Rows::sorted`], order-free ones (counting, collecting matches
/// that are then sorted) through [`Rows::unordered`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rows(SharedMap<Uuid, Row>);

impl Rows {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn get(&self, u: &Uuid) -> Option<&Row> {
        self.0.get(u)
    }

    pub(crate) fn contains_key(&self, u: &Uuid) -> bool {
        self.0.contains_key(u)
    }

    pub(crate) fn insert(&mut self, u: Uuid, row: Row) -> Option<Row> {
        self.0.insert(u, row)
    }

    pub(crate) fn remove(&mut self, u: &Uuid) -> Option<Row> {
        self.0.remove(u)
    }

    /// Every row, in UUID order.
    pub(crate) fn sorted(&self) -> Vec<(&Uuid, &Row)> {
        let mut v: Vec<(&Uuid, &Row)> = self.0.iter().collect();
        v.sort_unstable_by_key(|(u, _)| **u);
        v
    }

    /// Every row in hash order, which differs from process to process: only for uses
    /// whose outcome does not depend on the order.
    pub(crate) fn unordered(&self) -> impl Iterator<Item = (&Uuid, &Row)> {
        self.0.iter()
    }
}

impl FromIterator<(Uuid, Row)> for Rows {
    fn from_iter<I: IntoIterator<Item = (Uuid, Row)>>(iter: I) -> Rows {
        Rows(iter.into_iter().collect())
    }
}

/// The rows of a table in UUID order ([`Database::rows`]), sorted on the first `next`, so
/// that counting them does not sort.
pub struct RowsIter<'a> {
    rows: Option<&'a Rows>,
    sorted: std::vec::IntoIter<(&'a Uuid, &'a Row)>,
}

impl<'a> Iterator for RowsIter<'a> {
    type Item = (&'a Uuid, &'a Row);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(rows) = self.rows.take() {
            self.sorted = rows.sorted().into_iter();
        }
        self.sorted.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rows.map_or(self.sorted.len(), Rows::len);
        (n, Some(n))
    }

    fn count(self) -> usize {
        self.len()
    }
}

impl ExactSizeIterator for RowsIter<'_> {}

/// One table's rows and derived indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub rows: Rows,
    /// Strong references to each row from other rows (rows with none are absent). Only
    /// looked up, never iterated; hashed because a B-tree of 100k rows costs a cache miss
    /// per level on every insert.
    pub refs: SharedMap<Uuid, u32>,
    /// One map per schema index: index values → the row holding them. Only ever looked
    /// up, never iterated, so hash order cannot reach a result; a hash map because a
    /// B-tree of 100k keys costs a hundred `Vec<Datum>` comparisons per lookup.
    pub indexes: Vec<Index>,
}

/// Projects a row's columns onto an index (or any column list).
pub(crate) fn project(uuid: &Uuid, version: &Uuid, cols: &[Datum], on: &[ColumnRef]) -> Vec<Datum> {
    on.iter()
        .map(|c| match c {
            ColumnRef::Uuid => Datum::from_atom(crate::Atom::Uuid(*uuid)),
            ColumnRef::Version => Datum::from_atom(crate::Atom::Uuid(*version)),
            ColumnRef::Column(i) => cols[*i].clone(),
        })
        .collect()
}

/// The committed change of one row, ready to apply.
pub(crate) struct AppliedRow {
    pub table: usize,
    pub uuid: Uuid,
    pub old: Option<Row>,
    pub new: Option<Row>,
}

/// An OVSDB database: a schema and its committed rows.
#[derive(Debug, Clone)]
pub struct Database {
    schema: Arc<DatabaseSchema>,
    pub(crate) meta: Arc<Vec<TableMeta>>,
    pub(crate) tables: Vec<Table>,
    /// (target table, target row, source table, source row) for every weak reference.
    pub(crate) weak_in: BTreeSet<(usize, Uuid, usize, Uuid)>,
    reserved: bool,
}

impl Database {
    pub fn new(schema: Arc<DatabaseSchema>) -> Database {
        let meta = Arc::new(table_meta(&schema));
        let tables = schema
            .tables
            .iter()
            .map(|t| Table {
                indexes: vec![Index::default(); t.indexes.len()],
                ..Table::default()
            })
            .collect();
        Database {
            schema,
            meta,
            tables,
            weak_in: BTreeSet::new(),
            reserved: false,
        }
    }

    /// A database that clients may read but not write (like `_Server`): every write
    /// operation in [`Database::transact`] fails with `not allowed`. The server itself
    /// writes it with [`Database::transact_privileged`].
    pub fn new_reserved(schema: Arc<DatabaseSchema>) -> Database {
        let mut db = Database::new(schema);
        db.reserved = true;
        db
    }

    /// Marks the database reserved (or not), e.g. after loading it from a snapshot.
    pub fn set_reserved(&mut self, reserved: bool) {
        self.reserved = reserved;
    }

    pub fn is_reserved(&self) -> bool {
        self.reserved
    }

    pub fn schema(&self) -> &Arc<DatabaseSchema> {
        &self.schema
    }

    /// Executes one `transact` (`ops` are the params after the database name).
    pub fn transact(&mut self, ops: &[Value], env: &mut dyn TxnEnv) -> TxnOutcome {
        let mode = self.mode();
        crate::transaction::transact(self, ops.iter(), env, mode)
    }

    /// [`Database::transact`] on operations of a parsed [`Document`](crate::json::Document)
    /// (e.g. the elements of a request's `params` after the database name): the same
    /// outcome as for their `serde_json::Value`s, without building those.
    pub fn transact_json<'j, I>(&mut self, ops: I, env: &mut dyn TxnEnv) -> TxnOutcome
    where
        I: IntoIterator<Item = JsonRef<'j>>,
        I::IntoIter: ExactSizeIterator,
    {
        let mode = self.mode();
        crate::transaction::transact(self, ops.into_iter(), env, mode)
    }

    /// [`Database::transact`] on the JSON text of the array of operations (as the
    /// replicated log holds them). Text that is not a JSON array is refused with
    /// serde_json's error, as `serde_json::from_str::<Vec<Value>>` would.
    pub fn transact_text(
        &mut self,
        ops: &str,
        env: &mut dyn TxnEnv,
    ) -> Result<TxnOutcome, serde_json::Error> {
        let doc = Document::parse(ops)?;
        let Some(elems) = doc.root().elems() else {
            return Err(serde_json::from_str::<Vec<Value>>(ops).expect_err("not an array"));
        };
        let mode = self.mode();
        Ok(crate::transaction::transact(self, elems, env, mode))
    }

    /// [`Database::transact`] for a transaction that cannot change the database, on a
    /// shared reference (so readers need not exclude each other): the same outcome as
    /// `transact` on the same operations and environment, errors, `blocked` and
    /// `durable` included, with `changes` always None. Accepted when every operation is
    /// `select`, `wait`, `comment`, `assert`, `commit` or `abort`, or some operation is
    /// `abort` ([`is_read_only_transaction`](crate::is_read_only_transaction)); anything
    /// else is refused before any operation runs.
    pub fn transact_read(
        &self,
        ops: &[Value],
        env: &mut dyn TxnEnv,
    ) -> Result<TxnOutcome, NotReadOnly> {
        crate::transaction::transact_read(self, ops.iter(), env, self.mode())
    }

    /// [`Database::transact_read`] on operations of a parsed
    /// [`Document`](crate::json::Document), as [`Database::transact_json`].
    pub fn transact_read_json<'j, I>(
        &self,
        ops: I,
        env: &mut dyn TxnEnv,
    ) -> Result<TxnOutcome, NotReadOnly>
    where
        I: IntoIterator<Item = JsonRef<'j>>,
        I::IntoIter: ExactSizeIterator + Clone,
    {
        crate::transaction::transact_read(self, ops.into_iter(), env, self.mode())
    }

    /// [`Database::transact_read`] on the JSON text of the array of operations; text that
    /// is not a JSON array is refused as by [`Database::transact_text`].
    pub fn transact_read_text(
        &self,
        ops: &str,
        env: &mut dyn TxnEnv,
    ) -> Result<TxnOutcome, ReadTextError> {
        let doc = Document::parse(ops)?;
        let Some(elems) = doc.root().elems() else {
            return Err(serde_json::from_str::<Vec<Value>>(ops)
                .expect_err("not an array")
                .into());
        };
        Ok(crate::transaction::transact_read(
            self,
            elems,
            env,
            self.mode(),
        )?)
    }

    /// How [`Database::transact`] runs client operations.
    fn mode(&self) -> Mode {
        if self.reserved {
            Mode::Reserved
        } else {
            Mode::Normal
        }
    }

    /// Like [`Database::transact`] but writes are allowed even on a reserved database.
    pub fn transact_privileged(&mut self, ops: &[Value], env: &mut dyn TxnEnv) -> TxnOutcome {
        crate::transaction::transact(self, ops.iter(), env, Mode::Normal)
    }

    /// Like [`Database::transact`] on a read-only server (a backup): every write fails
    /// with `not allowed` "... when database server is in read only mode".
    pub fn transact_read_only(&mut self, ops: &[Value], env: &mut dyn TxnEnv) -> TxnOutcome {
        crate::transaction::transact(self, ops.iter(), env, Mode::ReadOnly)
    }

    /// The rows of `table` in UUID order (nothing for an unknown table).
    pub fn rows(&self, table: &str) -> RowsIter<'_> {
        RowsIter {
            rows: self.schema.table_index(table).map(|i| &self.tables[i].rows),
            sorted: Vec::new().into_iter(),
        }
    }

    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Row> {
        self.schema
            .table_index(table)
            .and_then(|i| self.tables[i].rows.get(uuid))
    }

    /// Number of rows in `table`.
    /// Atoms in every row of every table (see [`Row::atoms`]).
    pub fn atoms(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| t.rows.unordered())
            .map(|(_, r)| r.atoms())
            .sum()
    }

    pub fn row_count(&self, table: &str) -> usize {
        self.schema
            .table_index(table)
            .map_or(0, |i| self.tables[i].rows.len())
    }

    /// How many strong references point at a row (for diagnostics and tests).
    pub fn ref_count(&self, table: &str, uuid: &Uuid) -> u32 {
        self.schema
            .table_index(table)
            .and_then(|i| self.tables[i].refs.get(uuid).copied())
            .unwrap_or(0)
    }

    pub(crate) fn table_schema(&self, i: usize) -> &TableSchema {
        &self.schema.tables[i]
    }

    /// Applies committed row changes and the reference-count deltas, and returns the
    /// change set.
    pub(crate) fn apply(
        &mut self,
        rows: Vec<AppliedRow>,
        ref_delta: &BTreeMap<(usize, Uuid), i64>,
    ) -> ChangeSet {
        let schema = self.schema.clone();
        let meta = self.meta.clone();
        // Remove every old index entry first so that values swapped between rows work.
        for r in &rows {
            if let Some(old) = &r.old {
                let ts = &schema.tables[r.table];
                for (ii, idx) in ts.indexes.iter().enumerate() {
                    let key = project(&r.uuid, old.version(), old.columns(), idx);
                    self.tables[r.table].indexes[ii].remove(&key, &r.uuid);
                }
            }
        }
        let mut cs = ChangeSet::default();
        for r in rows {
            let ts = &schema.tables[r.table];
            let tm = &meta[r.table];
            if !tm.weak.is_empty() {
                let targets = |row: &Option<Row>| -> BTreeSet<(usize, Uuid)> {
                    let mut s = BTreeSet::new();
                    if let Some(row) = row {
                        for wc in &tm.weak {
                            s.extend(wc.targets(row.get(wc.column)));
                        }
                    }
                    s
                };
                let (before, after) = (targets(&r.old), targets(&r.new));
                for (tt, tu) in before.difference(&after) {
                    self.weak_in.remove(&(*tt, *tu, r.table, r.uuid));
                }
                for (tt, tu) in after.difference(&before) {
                    self.weak_in.insert((*tt, *tu, r.table, r.uuid));
                }
            }
            let table = &mut self.tables[r.table];
            match &r.new {
                Some(new) => {
                    for (ii, idx) in ts.indexes.iter().enumerate() {
                        let key = project(&r.uuid, new.version(), new.columns(), idx);
                        table.indexes[ii].insert(&key, r.uuid);
                    }
                    table.rows.insert(r.uuid, new.clone());
                }
                None => {
                    table.rows.remove(&r.uuid);
                }
            }
            // The name is cloned once per table, not once per row.
            if !cs.tables.contains_key(ts.name.as_str()) {
                cs.tables.insert(ts.name.clone(), BTreeMap::new());
            }
            let changed = cs.tables.get_mut(ts.name.as_str()).expect("just added");
            changed.insert(
                r.uuid,
                RowChange {
                    old: r.old,
                    new: r.new,
                },
            );
        }
        for ((t, u), d) in ref_delta {
            if *d == 0 {
                continue;
            }
            let refs = &mut self.tables[*t].refs;
            let n = refs.get(u).copied().unwrap_or(0) as i64 + d;
            if n > 0 {
                refs.insert(*u, n as u32);
            } else {
                refs.remove(u);
            }
        }
        cs
    }

    /// Rebuilds indexes, reference counts and the weak reference index from the rows
    /// (after loading a snapshot), checking that every strong reference resolves.
    pub(crate) fn rebuild_derived(&mut self) -> Result<(), OvsdbError> {
        let schema = self.schema.clone();
        let meta = self.meta.clone();
        for (ti, ts) in schema.tables.iter().enumerate() {
            let mut indexes = vec![Index::default(); ts.indexes.len()];
            let rows = &self.tables[ti].rows;
            for (u, row) in rows.sorted() {
                for (ii, idx) in ts.indexes.iter().enumerate() {
                    let key = project(u, row.version(), row.columns(), idx);
                    let holder = indexes[ii].get(&key, |c| {
                        rows.get(c)
                            .is_some_and(|r| holds(c, r.version(), r.columns(), idx, &key))
                    });
                    indexes[ii].insert(&key, *u);
                    if holder.is_some() {
                        return Err(OvsdbError::constraint(format!(
                            "snapshot has duplicate index values in table {}",
                            ts.name
                        )));
                    }
                }
            }
            self.tables[ti].indexes = indexes;
            self.tables[ti].refs.clear();
        }
        self.weak_in.clear();
        let mut counts: BTreeMap<(usize, Uuid), u32> = BTreeMap::new();
        for (ti, tm) in meta.iter().enumerate() {
            // Sorted: which dangling reference is reported.
            for (u, row) in self.tables[ti].rows.sorted() {
                for sc in &tm.strong {
                    for (tt, tu) in sc.targets(row.get(sc.column)) {
                        if tu == *u {
                            continue;
                        }
                        if !self.tables[tt].rows.contains_key(&tu) {
                            return Err(OvsdbError::new(
                                crate::ErrorTag::ReferentialIntegrityViolation,
                                format!("snapshot row {u} references nonexistent row {tu}"),
                            ));
                        }
                        *counts.entry((tt, tu)).or_default() += 1;
                    }
                }
                for wc in &tm.weak {
                    for (tt, tu) in wc.targets(row.get(wc.column)) {
                        self.weak_in.insert((tt, tu, ti, *u));
                    }
                }
            }
        }
        for ((t, u), n) in counts {
            self.tables[t].refs.insert(u, n);
        }
        Ok(())
    }

    pub(crate) fn from_parts(
        schema: Arc<DatabaseSchema>,
        rows: Vec<Rows>,
    ) -> Result<Database, OvsdbError> {
        let mut db = Database::new(schema);
        for (t, r) in db.tables.iter_mut().zip(rows) {
            t.rows = r;
        }
        db.rebuild_derived()?;
        Ok(db)
    }
}

impl PartialEq for Database {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
            && self.tables.len() == other.tables.len()
            && self
                .tables
                .iter()
                .zip(&other.tables)
                .all(|(a, b)| a.rows == b.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows whose values collide on the 64-bit hash share a slot; lookups pick the one
    /// that holds the key, removals leave the others.
    #[test]
    fn index_hash_collisions() {
        let mut ix = Index::default();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        ix.insert_at(7, a);
        ix.insert_at(7, b);
        ix.insert_at(7, b);
        ix.insert_at(9, c);
        assert_eq!(ix.get_at(7, |u| *u == b), Some(b));
        assert_eq!(ix.get_at(7, |u| *u == a), Some(a));
        assert_eq!(ix.get_at(7, |u| *u == c), None);
        assert_eq!(ix.get_at(8, |_| true), None);
        assert_eq!(ix.candidates_at(7), &[a, b]);
        assert_eq!(ix.candidates_at(9), &[c]);
        assert!(ix.candidates_at(8).is_empty());
        ix.remove_at(7, &a);
        assert!(matches!(ix.map.get(&7), Some(Slot::One(x)) if *x == b));
        assert_eq!(ix.candidates_at(7), &[b]);
        ix.remove_at(7, &c);
        ix.remove_at(7, &b);
        assert!(!ix.map.contains_key(&7));
        assert_eq!(ix.get_at(9, |_| true), Some(c));
    }
}
