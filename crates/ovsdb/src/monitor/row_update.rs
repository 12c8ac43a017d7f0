//! Row updates: `<row-update>` of RFC 7047 §4.1.6 (v1: `old`/`new`) and `<row-update2>` of
//! the `monitor_cond` extension (`initial`/`insert`/`delete`/`modify`), composed like
//! ovsdb-server's `ovsdb_monitor_compose_row_update{,2}`:
//!
//! * the kind of a change is initial, insert (no old row), delete (no new row) or modify;
//!   with conditions (v2), a row that matches neither before nor after is not reported, one
//!   that starts matching is an insert and one that stops matching is a delete;
//! * nothing is reported unless the table's `select` has that kind, nor a modify in which
//!   no monitored column changed;
//! * a column appears only if the `select` of the request that named it has that kind.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::diff::diff;
use super::filter::Filter;
use super::request::{MonitoredColumn, TableMonitor};
use super::select::Select;
use crate::atom::Atom;
use crate::datum::Datum;
use crate::row::Row;
use crate::schema::ColumnRef;

fn datum<'r>(row: &'r Row, c: ColumnRef) -> Cow<'r, Datum> {
    match c {
        ColumnRef::Column(i) => Cow::Borrowed(row.get(i)),
        ColumnRef::Uuid => Cow::Owned(Datum::from_atom(Atom::Uuid(*row.uuid()))),
        ColumnRef::Version => Cow::Owned(Datum::from_atom(Atom::Uuid(*row.version()))),
    }
}

fn changed(old: &Row, new: &Row, c: ColumnRef) -> bool {
    match c {
        ColumnRef::Column(i) => old.get(i) != new.get(i),
        ColumnRef::Uuid => old.uuid() != new.uuid(),
        ColumnRef::Version => old.version() != new.version(),
    }
}

fn kind(initial: bool, old: Option<&Row>, new: Option<&Row>) -> Select {
    match (old, new) {
        _ if initial => Select::INITIAL,
        (None, _) => Select::INSERT,
        (_, None) => Select::DELETE,
        _ => Select::MODIFY,
    }
}

/// Whether a modify changed any monitored column (whether or not its select reports it);
/// without one, nothing is sent.
fn any_changed(tm: &TableMonitor, old: &Row, new: &Row) -> bool {
    !old.ptr_eq(new) && tm.columns.iter().any(|c| changed(old, new, c.column))
}

fn reported(c: &MonitoredColumn, kind: Select) -> bool {
    c.select.contains(kind)
}

/// The v1 `<row-update>` for a row going from `old` to `new`.
pub(crate) fn v1(
    tm: &TableMonitor,
    old: Option<&Row>,
    new: Option<&Row>,
    initial: bool,
) -> Option<Value> {
    let kind = kind(initial, old, new);
    if !tm.select.contains(kind) {
        return None;
    }
    let modified = match (kind, old, new) {
        (Select::MODIFY, Some(o), Some(n)) => Some((o, n)),
        _ => None,
    };
    if modified.is_some_and(|(o, n)| !any_changed(tm, o, n)) {
        return None;
    }
    let mut old_json = Map::new();
    let mut new_json = Map::new();
    for c in tm.columns.iter().filter(|c| reported(c, kind)) {
        let in_old = match modified {
            Some((o, n)) => changed(o, n, c.column),
            None => kind == Select::DELETE,
        };
        if let (true, Some(o)) = (in_old, old) {
            old_json.insert(c.name.clone(), datum(o, c.column).to_json());
        }
        if let (false, Some(n)) = (kind == Select::DELETE, new) {
            new_json.insert(c.name.clone(), datum(n, c.column).to_json());
        }
    }
    let mut out = Map::new();
    if kind != Select::DELETE {
        out.insert("new".into(), Value::Object(new_json));
    }
    if kind == Select::DELETE || kind == Select::MODIFY {
        out.insert("old".into(), Value::Object(old_json));
    }
    Some(Value::Object(out))
}

/// The v2 `<row-update2>` for a row going from `old` to `new`, where `old` is judged by
/// `old_filter` and `new` by `new_filter` (they differ only for `monitor_cond_change`,
/// which passes the same row as old and new).
pub(crate) fn v2(
    tm: &TableMonitor,
    old: Option<&Row>,
    new: Option<&Row>,
    initial: bool,
    old_filter: &Filter,
    new_filter: &Filter,
) -> Option<Value> {
    let mut kind = kind(initial, old, new);
    let old_in = old.is_some_and(|r| old_filter.matches(r));
    let new_in = new.is_some_and(|r| new_filter.matches(r));
    match (old_in, new_in) {
        (false, false) => return None,
        (false, true) => kind = Select::INSERT,
        (true, false) => kind = Select::DELETE,
        (true, true) => {}
    }
    if !tm.select.contains(kind) {
        return None;
    }
    let mut out = Map::new();
    if kind == Select::DELETE {
        out.insert("delete".into(), Value::Null);
        return Some(Value::Object(out));
    }
    let new = new.expect("only a delete has no new row");
    let mut body = Map::new();
    if kind == Select::MODIFY {
        let old = old.expect("a modify has an old row");
        if !any_changed(tm, old, new) {
            return None;
        }
        for c in tm
            .columns
            .iter()
            .filter(|c| reported(c, kind) && changed(old, new, c.column))
        {
            let d = diff(&datum(old, c.column), &datum(new, c.column), c.composite);
            body.insert(c.name.clone(), d.to_json());
        }
    } else {
        for c in tm.columns.iter().filter(|c| reported(c, kind)) {
            let d = datum(new, c.column);
            if *d != c.default {
                body.insert(c.name.clone(), d.to_json());
            }
        }
    }
    let op = match kind {
        Select::INITIAL => "initial",
        Select::INSERT => "insert",
        _ => "modify",
    };
    out.insert(op.into(), Value::Object(body));
    Some(Value::Object(out))
}
