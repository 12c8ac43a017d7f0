//! Commit-time checks, in ovsdb-server's order (`ovsdb_txn_precommit`, protocol doc
//! §5.5): drop unchanged rows (an empty result is a no-op), strong reference counting
//! and referential integrity, garbage collection of unreferenced non-root rows
//! (recursively, including rows inserted by this transaction), `maxRows`, removal of
//! dangling weak references (done for every referencing row, unlike 3.1, whose cleanup
//! misses rows modified earlier in the same transaction), index uniqueness, and finally a
//! new `_version` for every changed row.
//!
//! Everything here reads the rows the transaction touched plus the maintained indexes
//! and reference counts; nothing scans a whole table.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::database::{holds, project, AppliedRow, Database};
use crate::datum::{Datum, Side};
use crate::error::{ErrorTag, OvsdbError};
use crate::per_table::PerTable;
use crate::row::Row;
use crate::schema::ColumnRef;
use crate::transaction::Exec;

/// What to apply once every check passed.
pub(crate) struct Plan {
    pub rows: Vec<AppliedRow>,
    pub ref_delta: BTreeMap<(usize, Uuid), i64>,
}

/// A touched row, as the overlay of `transact` holds it (moved here, not copied).
use crate::transaction::Work as Change;

type Changes = PerTable<Change>;

fn exists(db: &Database, changes: &Changes, t: usize, u: &Uuid) -> bool {
    match changes[t].get(u) {
        Some(c) => c.new.is_some(),
        None => db.tables[t].rows.contains_key(u),
    }
}

fn current<'c>(db: &'c Database, changes: &'c Changes, t: usize, u: &Uuid) -> Option<&'c [Datum]> {
    match changes[t].get(u) {
        Some(c) => c.new.as_deref(),
        None => db.tables[t].rows.get(u).map(Row::columns),
    }
}

fn refs_after(db: &Database, delta: &BTreeMap<(usize, Uuid), i64>, t: usize, u: &Uuid) -> i64 {
    db.tables[t].refs.get(u).copied().unwrap_or(0) as i64
        + delta.get(&(t, *u)).copied().unwrap_or(0)
}

/// Multiset difference of two sorted lists: (in a but not b, in b but not a).
fn sorted_diff<T: Ord + Copy>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i] < b[j]) {
            only_a.push(a[i]);
            i += 1;
        } else if i == a.len() || b[j] < a[i] {
            only_b.push(b[j]);
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    (only_a, only_b)
}

/// [`sorted_diff`] over two sorted iterators.
fn sorted_diff_iter<'a>(
    a: impl Iterator<Item = &'a Uuid>,
    b: impl Iterator<Item = &'a Uuid>,
) -> (Vec<Uuid>, Vec<Uuid>) {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    loop {
        let ord = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) => x.cmp(y),
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
        };
        match ord {
            std::cmp::Ordering::Equal => {
                a.next();
                b.next();
            }
            std::cmp::Ordering::Less => only_a.push(*a.next().expect("peeked")),
            std::cmp::Ordering::Greater => only_b.push(*b.next().expect("peeked")),
        }
    }
    (only_a, only_b)
}

pub(crate) fn precommit(x: &mut Exec<'_>) -> Result<Option<Plan>, OvsdbError> {
    let db = x.db;
    let schema = db.schema().clone();
    let meta = db.meta.clone();

    // 1. What changed: the overlay without the rows left as they were.
    let mut changes: Changes = std::mem::replace(&mut x.overlay, PerTable::new(0));
    // Most of a schema's tables are untouched: every loop below skips empty ones first.
    changes.retain(|w| match (&w.old, &w.new) {
        (None, None) => false,
        (Some(o), Some(n)) => o.columns() != n.as_slice(),
        _ => true,
    });
    if changes.is_empty() {
        return Ok(None);
    }

    // 2. Strong references.
    let mut delta: BTreeMap<(usize, Uuid), i64> = BTreeMap::new();
    for (t, ch) in changes.touched() {
        if meta[t].strong.is_empty() || ch.is_empty() {
            continue;
        }
        for (u, c) in ch {
            for sc in &meta[t].strong {
                let od = c.old.as_ref().map(|r| r.get(sc.column));
                let nd = c.new.as_ref().map(|v| &v[sc.column]);
                if let (Some(o), Some(n)) = (od, nd) {
                    if o == n {
                        continue;
                    }
                }
                if od.is_none_or(Datum::is_empty) && nd.is_none_or(Datum::is_empty) {
                    continue;
                }
                let (removed, added) = match (od, nd, sc.value_target) {
                    // A set of references: a merge walk that skips the chunks that two
                    // versions of a big set share.
                    (Some(o), Some(n), None) if !o.is_map() && !n.is_map() => {
                        let t0 = sc.key_target.expect("reference column");
                        let (mut r, mut a) = (Vec::new(), Vec::new());
                        o.set_difference_with(n, |side, x| {
                            if let Some(x) = x.as_uuid().filter(|x| *x != u) {
                                match side {
                                    Side::Old => r.push((t0, *x)),
                                    Side::New => a.push((t0, *x)),
                                }
                            }
                        });
                        (r, a)
                    }
                    // Keys are sorted, so a key-only reference column diffs by merging.
                    (Some(o), Some(n), None) => {
                        let t0 = sc.key_target.expect("reference column");
                        let (r, a) = sorted_diff_iter(
                            o.keys().filter_map(crate::Atom::as_uuid),
                            n.keys().filter_map(crate::Atom::as_uuid),
                        );
                        let own = |v: Vec<Uuid>| {
                            v.into_iter()
                                .filter(|x| x != u)
                                .map(|x| (t0, x))
                                .collect::<Vec<_>>()
                        };
                        (own(r), own(a))
                    }
                    _ => {
                        let collect = |d: Option<&Datum>| -> Vec<(usize, Uuid)> {
                            let mut v: Vec<(usize, Uuid)> = d
                                .map(|d| sc.targets(d).filter(|(_, x)| x != u).collect())
                                .unwrap_or_default();
                            v.sort();
                            v
                        };
                        sorted_diff(&collect(od), &collect(nd))
                    }
                };
                for r in removed {
                    *delta.entry(r).or_default() -= 1;
                }
                for (tt, tu) in added {
                    if !exists(db, &changes, tt, &tu) {
                        return Err(OvsdbError::new(
                            ErrorTag::ReferentialIntegrityViolation,
                            format!(
                                "Table {} column {} row {} references nonexistent row {} in table {}.",
                                schema.tables[t].name,
                                schema.tables[t].columns[sc.column].name,
                                u,
                                tu,
                                schema.tables[tt].name
                            ),
                        ));
                    }
                    *delta.entry((tt, tu)).or_default() += 1;
                }
            }
        }
    }
    for (t, ch) in changes.touched() {
        if ch.is_empty() {
            continue;
        }
        for (u, c) in ch {
            if c.old.is_some() && c.new.is_none() {
                let n = refs_after(db, &delta, t, u);
                if n > 0 {
                    return Err(OvsdbError::new(
                        ErrorTag::ReferentialIntegrityViolation,
                        format!(
                            "cannot delete {} row {} because of {} remaining reference(s)",
                            schema.tables[t].name, u, n
                        ),
                    ));
                }
            }
        }
    }

    // 3. Garbage collection.
    let mut work: BTreeSet<(usize, Uuid)> = BTreeSet::new();
    for ((t, u), d) in &delta {
        if *d < 0 && !schema.tables[*t].is_root {
            work.insert((*t, *u));
        }
    }
    for (t, ch) in changes.touched() {
        if !ch.is_empty() && !schema.tables[t].is_root {
            work.extend(
                ch.iter()
                    .filter(|(_, c)| c.old.is_none() && c.new.is_some())
                    .map(|(u, _)| (t, *u)),
            );
        }
    }
    while let Some((t, u)) = work.pop_first() {
        if schema.tables[t].is_root
            || !exists(db, &changes, t, &u)
            || refs_after(db, &delta, t, &u) != 0
        {
            continue;
        }
        let cols: Vec<Datum> = current(db, &changes, t, &u).expect("exists").to_vec();
        match changes[t].get_mut(&u) {
            Some(c) if c.old.is_none() => {
                changes[t].remove(&u);
            }
            Some(c) => c.new = None,
            None => {
                let old = db.tables[t].rows.get(&u).cloned();
                changes[t].insert(u, Change { old, new: None });
            }
        }
        for sc in &meta[t].strong {
            for (tt, tu) in sc.targets(&cols[sc.column]) {
                if tu != u {
                    *delta.entry((tt, tu)).or_default() -= 1;
                    work.insert((tt, tu));
                }
            }
        }
    }

    // 4. maxRows.
    for (t, ch) in changes.touched() {
        let Some(max) = schema.tables[t].max_rows else {
            continue;
        };
        if ch.is_empty() {
            continue;
        }
        let mut n = db.tables[t].rows.len() as i64;
        for c in ch.values() {
            n += c.new.is_some() as i64 - c.old.is_some() as i64;
        }
        if n > max as i64 {
            return Err(OvsdbError::constraint(format!(
                "transaction causes \"{}\" table to contain {} rows, greater than the schema-defined limit of {} row(s)",
                schema.tables[t].name, n, max
            )));
        }
    }

    // 5. Weak references.
    let mut examine: BTreeSet<(usize, Uuid)> = BTreeSet::new();
    for (t, ch) in changes.touched() {
        if ch.is_empty() {
            continue;
        }
        if !meta[t].weak.is_empty() {
            // A row whose weak reference columns are all empty has nothing to lose.
            examine.extend(
                ch.iter()
                    .filter(|(_, c)| {
                        c.new
                            .as_ref()
                            .is_some_and(|n| meta[t].weak.iter().any(|wc| !n[wc.column].is_empty()))
                    })
                    .map(|(u, _)| (t, *u)),
            );
        }
        if meta[t].weak_target {
            for (u, c) in ch {
                if c.new.is_none() && c.old.is_some() {
                    let lo = (t, *u, 0usize, Uuid::nil());
                    let hi = (t, *u, usize::MAX, Uuid::max());
                    examine.extend(db.weak_in.range(lo..=hi).map(|(_, _, st, su)| (*st, *su)));
                }
            }
        }
    }
    for (t, u) in examine {
        let Some(cols) = current(db, &changes, t, &u) else {
            continue;
        };
        let inserted = changes[t].get(&u).is_some_and(|c| c.old.is_none());
        let mut new_cols: Option<Vec<Datum>> = None;
        for wc in &meta[t].weak {
            let d = &cols[wc.column];
            let (mut n_removed, mut zero) = (0usize, false);
            let mut dangling = |target: Option<usize>, a: Option<&crate::Atom>| -> bool {
                let (Some(tt), Some(x)) = (target, a.and_then(crate::Atom::as_uuid)) else {
                    return false;
                };
                if exists(db, &changes, tt, x) {
                    return false;
                }
                n_removed += 1;
                zero |= x.is_nil();
                true
            };
            let kept = d
                .retain(|k, v| !(dangling(wc.key_target, Some(k)) || dangling(wc.value_target, v)));
            if n_removed == 0 {
                continue;
            }
            let col = &schema.tables[t].columns[wc.column];
            if (kept.len() as u32) < col.type_.min {
                let tname = &schema.tables[t].name;
                return Err(OvsdbError::constraint(if zero && inserted {
                    format!(
                        "Weak reference column \"{}\" in \"{}\" row {} (inserted within this transaction) contained all-zeros UUID (probably as the default value for this column) but deleting this value caused a constraint volation because this column is not allowed to be empty.",
                        col.name, tname, u
                    )
                } else {
                    format!(
                        "Deletion of {} weak reference(s) to deleted (or never-existing) rows from column \"{}\" in \"{}\" row {} {}caused this column to become empty, but constraints on this column disallow an empty column.",
                        n_removed,
                        col.name,
                        tname,
                        u,
                        if inserted { "(inserted within this transaction) " } else { "" }
                    )
                }));
            }
            new_cols.get_or_insert_with(|| cols.to_vec())[wc.column] = kept;
        }
        if let Some(nc) = new_cols {
            match changes[t].get_mut(&u) {
                Some(c) => c.new = Some(nc),
                None => {
                    let old = db.tables[t].rows.get(&u).cloned();
                    changes[t].insert(u, Change { old, new: Some(nc) });
                }
            }
        }
    }

    // 6. Index uniqueness.
    for (t, ch) in changes.touched() {
        let ts = &schema.tables[t];
        if ch.is_empty() {
            continue;
        }
        for (ii, idx) in ts.indexes.iter().enumerate() {
            // The transaction's keys, sorted (a vector: a B-tree node per index per
            // transaction cost more than the checks). The sort is stable, so rows with
            // equal keys stay in UUID order.
            let mut txn_keys: Vec<(Vec<Datum>, Uuid)> = Vec::new();
            for (u, c) in ch {
                let Some(new) = &c.new else { continue };
                let v = c.old.as_ref().map_or(Uuid::nil(), |r| *r.version());
                txn_keys.push((project(u, &v, new, idx), *u));
            }
            txn_keys.sort_by(|a, b| a.0.cmp(&b.0));
            // The first row (in UUID order) whose key a row before it has, with that row.
            let dup = txn_keys
                .windows(2)
                .filter(|w| w[0].0 == w[1].0)
                .min_by_key(|w| w[1].1);
            if let Some(w) = dup {
                let (other, u) = (w[0].1, w[1].1);
                return Err(index_conflict(db, &changes, t, idx, &w[1].0, other, u));
            }
            for (key, u) in &txn_keys {
                let rows = &db.tables[t].rows;
                let owner = db.tables[t].indexes[ii].get(key, |c| {
                    rows.get(c)
                        .is_some_and(|r| holds(c, r.version(), r.columns(), idx, key))
                });
                if let Some(owner) = owner {
                    if owner != *u && !ch.contains_key(&owner) {
                        return Err(index_conflict(db, &changes, t, idx, key, owner, *u));
                    }
                }
            }
        }
    }

    if changes.is_empty() {
        // Everything this transaction did was garbage-collected again.
        return Ok(None);
    }

    // 7. New _version for every changed row.
    let mut rows = Vec::new();
    for (t, ch) in changes.take_all() {
        for (u, c) in ch {
            let new = c.new.map(|cols| Row::new(u, x.env.new_uuid(), cols));
            rows.push(AppliedRow {
                table: t,
                uuid: u,
                old: c.old,
                new,
            });
        }
    }
    Ok(Some(Plan {
        rows,
        ref_delta: delta,
    }))
}

/// "a", "a and b", "a, b, and c".
fn english_list(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        2 => format!("{} and {}", items[0], items[1]),
        n => format!("{}, and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn index_conflict(
    db: &Database,
    changes: &Changes,
    t: usize,
    idx: &[ColumnRef],
    key: &[Datum],
    a: Uuid,
    b: Uuid,
) -> OvsdbError {
    let ts = db.table_schema(t);
    let display = |vals: &[Datum]| -> String {
        let parts: Vec<String> = idx
            .iter()
            .zip(vals)
            .map(|(c, d)| d.to_display_string(ts.column_ref_type(*c)))
            .collect();
        english_list(&parts)
    };
    let names: Vec<String> = idx
        .iter()
        .map(|c| format!("\"{}\"", ts.column_ref_name(*c)))
        .collect();
    let cols = format!(
        "{} {}",
        if idx.len() > 1 { "columns" } else { "column" },
        english_list(&names)
    );
    // ovsdb-server orders the two rows by comparing all their columns, in hash order; we
    // put an untouched pre-existing row first (as it does in practice), then UUID order.
    let untouched = |u: &Uuid| !changes[t].contains_key(u);
    let (first, second) =
        if untouched(&b) && !untouched(&a) || (untouched(&a) == untouched(&b) && b < a) {
            (b, a)
        } else {
            (a, b)
        };
    let describe = |title: &str, u: &Uuid| -> String {
        let what = match changes[t].get(u) {
            None => "existed in the database before this transaction and was not modified by the transaction.".to_string(),
            Some(c) => match (&c.old, &c.new) {
                (None, _) => "was inserted by this transaction.".to_string(),
                (Some(old), Some(_)) => {
                    let old_key = project(u, old.version(), old.columns(), idx);
                    if old_key.as_slice() == key {
                        "existed in the database before this transaction, which modified some of the row's columns but not any columns in this index.".to_string()
                    } else {
                        format!("had the following index values before the transaction: {}.", display(&old_key))
                    }
                }
                (Some(_), None) => "was deleted by this transaction.".to_string(),
            },
        };
        format!("{title} row, with UUID {u}, {what}")
    };
    OvsdbError::constraint(format!(
        "Transaction causes multiple rows in \"{}\" table to have identical values ({}) for index on {}.  {}  {}",
        ts.name,
        display(key),
        cols,
        describe("First", &first),
        describe("Second", &second)
    ))
}
