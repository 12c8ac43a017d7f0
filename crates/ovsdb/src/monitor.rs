//! Monitors: RFC 7047 §4.1.5 `monitor` (v1, `update` notifications with `<table-updates>`)
//! and the ovsdb-server extensions `monitor_cond` (v2, `update2` with `<table-updates2>`),
//! `monitor_cond_since` (v3, `update3`, same row updates as v2) and `monitor_cond_change`
//! (docs/ovsdb-protocol.md §2.5–§2.8).
//!
//! A [`Monitor`] is one compiled monitor request. It is pure: the server asks it for the
//! `initial` contents of a database, for the updates one committed [`ChangeSet`] causes, and
//! for the updates a condition change causes, and wraps the answers into its notifications.
//!
//! Behaviour follows ovsdb-server 3.1 as observed (the golden tests under
//! `tests/monitor/` were recorded from it). Note that the clauses of a monitor's `where` are
//! ORed, unlike a `transact` condition (see `monitor/filter.rs`). Two deliberate differences: a
//! `monitor_cond_change` request without `where` leaves that table's condition unchanged
//! (3.1 crashes on it), and a failing `monitor_cond_change` changes no condition at all
//! (3.1 may have changed the tables it parsed before the failing one).

mod diff;
mod filter;
mod request;
mod row_update;
mod select;

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::changes::ChangeSet;
use crate::database::Database;
use crate::error::OvsdbError;
use crate::row::Row;
use crate::schema::DatabaseSchema;

use request::TableMonitor;

/// Which method created a monitor; it fixes the row-update format and whether `where`
/// conditions are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorVersion {
    /// `monitor`: `<table-updates>` (`old`/`new` row updates), no conditions.
    V1,
    /// `monitor_cond`: `<table-updates2>` (`initial`/`insert`/`delete`/`modify`).
    V2,
    /// `monitor_cond_since`: the same row updates as v2.
    V3,
}

impl MonitorVersion {
    /// The monitor method that creates a monitor of this version.
    pub fn method(self) -> &'static str {
        match self {
            MonitorVersion::V1 => "monitor",
            MonitorVersion::V2 => "monitor_cond",
            MonitorVersion::V3 => "monitor_cond_since",
        }
    }

    /// The version a monitor method creates (`None` for any other method).
    pub fn for_method(method: &str) -> Option<MonitorVersion> {
        match method {
            "monitor" => Some(MonitorVersion::V1),
            "monitor_cond" => Some(MonitorVersion::V2),
            "monitor_cond_since" => Some(MonitorVersion::V3),
            _ => None,
        }
    }

    /// The notification method this monitor sends.
    pub fn notification(self) -> &'static str {
        match self {
            MonitorVersion::V1 => "update",
            MonitorVersion::V2 => "update2",
            MonitorVersion::V3 => "update3",
        }
    }

    fn has_conditions(self) -> bool {
        self != MonitorVersion::V1
    }
}

/// One compiled monitor: per monitored table, its columns, `select` flags and condition.
///
/// Monitors that compare equal produce identical answers for the same input, so a server
/// with many identical monitors (one per connected chassis, say) may compute an update
/// once per group.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    version: MonitorVersion,
    tables: BTreeMap<String, TableMonitor>,
}

impl Monitor {
    /// Compiles `requests`, the `{table: <monitor-request> | [<monitor-request>…]}` param of
    /// a monitor method, against `schema`. Errors are the error objects ovsdb-server replies
    /// with (`syntax error`, `unknown column`, ... from the `where` clauses).
    pub fn new(
        schema: &DatabaseSchema,
        version: MonitorVersion,
        requests: &Value,
    ) -> Result<Monitor, OvsdbError> {
        let tables = request::parse_requests(schema, version.has_conditions(), requests)?;
        Ok(Monitor { version, tables })
    }

    pub fn version(&self) -> MonitorVersion {
        self.version
    }

    /// Whether `table` is part of this monitor (lets callers skip change sets cheaply).
    pub fn monitors_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// The reply to the monitor request: every row of `db` this monitor selects, as
    /// `<table-updates>` (`new`) for v1 or `<table-updates2>` (`initial`) for v2/v3. `{}`
    /// when nothing is selected.
    pub fn initial(&self, db: &Database) -> Value {
        let mut out = Map::new();
        self.initial_rows(db, |table, uuid, update| {
            out.entry(table)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("a table's rows are an object")
                .insert(uuid.to_string(), update);
        });
        Value::Object(out)
    }

    /// The same as [`Monitor::initial`], serialised to JSON text as it is built: one row's
    /// update at a time instead of the whole table as a `Value` tree first (for 200,000
    /// `Logical_Flow` rows the tree took about 600 MB besides the 80 MB of text). The bytes are
    /// those of `serde_json::to_vec(&self.initial(db))`.
    pub fn initial_json(&self, db: &Database) -> Vec<u8> {
        let mut out = vec![b'{'];
        let mut open: Option<&str> = None;
        self.initial_rows(db, |table, uuid, update| {
            match open {
                Some(t) if t == table => out.push(b','),
                Some(_) => {
                    out.extend_from_slice(b"},");
                    write_json(&mut out, table);
                    out.extend_from_slice(b":{");
                }
                None => {
                    write_json(&mut out, table);
                    out.extend_from_slice(b":{");
                }
            }
            open = Some(table);
            write_json(&mut out, &uuid.to_string());
            out.push(b':');
            write_json(&mut out, &update);
        });
        if open.is_some() {
            out.push(b'}');
        }
        out.push(b'}');
        out
    }

    /// Every row update of the initial contents, table by table in the monitor's order (a
    /// table only appears once it has one), rows in the database's order.
    fn initial_rows<'m>(&'m self, db: &Database, mut f: impl FnMut(&'m str, Uuid, Value)) {
        for (name, tm) in &self.tables {
            if !tm.select.contains(select::Select::INITIAL) {
                continue;
            }
            for (uuid, row) in db.rows(name) {
                let update = match self.version {
                    MonitorVersion::V1 => row_update::v1(tm, None, Some(row), true),
                    _ => row_update::v2(tm, Some(row), Some(row), true, &tm.filter, &tm.filter),
                };
                if let Some(u) = update {
                    f(name, *uuid, u);
                }
            }
        }
    }

    /// The `<table-updates>` (v1) or `<table-updates2>` (v2/v3) that one committed
    /// transaction causes, or `None` when it changed nothing this monitor reports (then no
    /// notification is sent).
    pub fn update(&self, changes: &ChangeSet) -> Option<Value> {
        let mut out = Map::new();
        for (name, rows) in &changes.tables {
            let Some(tm) = self.tables.get(name) else {
                continue;
            };
            self.table_updates(
                &mut out,
                name,
                tm,
                rows.iter()
                    .map(|(u, c)| (u, c.old.as_ref(), c.new.as_ref())),
            );
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }

    /// The updates of several consecutive transactions (oldest first) merged per row, as
    /// `monitor_cond_since` answers with `found=true`: each row goes from its state before
    /// the first transaction that touched it to its state after the last one; a row
    /// inserted and deleted again does not appear. `{}` when nothing is reported.
    pub fn since<'a>(&self, changes: impl IntoIterator<Item = &'a ChangeSet>) -> Value {
        type Merged<'a> = BTreeMap<&'a str, BTreeMap<&'a Uuid, (Option<&'a Row>, Option<&'a Row>)>>;
        let mut merged: Merged<'a> = BTreeMap::new();
        for cs in changes {
            for (name, rows) in &cs.tables {
                if !self.tables.contains_key(name) {
                    continue;
                }
                let table = merged.entry(name.as_str()).or_default();
                for (uuid, change) in rows {
                    table
                        .entry(uuid)
                        .and_modify(|e| e.1 = change.new.as_ref())
                        .or_insert((change.old.as_ref(), change.new.as_ref()));
                }
            }
        }
        let mut out = Map::new();
        for (name, rows) in merged {
            let tm = &self.tables[name];
            self.table_updates(
                &mut out,
                name,
                tm,
                rows.into_iter()
                    .filter(|(_, (old, new))| old.is_some() || new.is_some())
                    .map(|(u, (old, new))| (u, old, new)),
            );
        }
        Value::Object(out)
    }

    fn table_updates<'r>(
        &self,
        out: &mut Map<String, Value>,
        name: &str,
        tm: &TableMonitor,
        rows: impl Iterator<Item = (&'r Uuid, Option<&'r Row>, Option<&'r Row>)>,
    ) {
        if tm.select.is_empty() {
            return;
        }
        let mut table = Map::new();
        for (uuid, old, new) in rows {
            let update = match self.version {
                MonitorVersion::V1 => row_update::v1(tm, old, new, false),
                _ => row_update::v2(tm, old, new, false, &tm.filter, &tm.filter),
            };
            if let Some(u) = update {
                table.insert(uuid.to_string(), u);
            }
        }
        if !table.is_empty() {
            out.insert(name.to_string(), Value::Object(table));
        }
    }

    /// `monitor_cond_change`: `requests` is `{table: [{"where": …}…]}`. Installs the new
    /// conditions (tables not named keep theirs; for one table the last `where` wins) and
    /// returns the `<table-updates2>` for rows of `db` that enter a condition (`insert`) or
    /// leave it (`delete`), `None` when there are none. On a v1 monitor the request is
    /// validated and otherwise ignored, as ovsdb-server 3.1 does. On error nothing changes.
    pub fn change_conditions(
        &mut self,
        db: &Database,
        requests: &Value,
    ) -> Result<Option<Value>, OvsdbError> {
        let changes = request::parse_cond_change(
            db.schema(),
            &self.tables,
            self.version.has_conditions(),
            requests,
        )?;
        let mut out = Map::new();
        for (name, filter) in changes {
            let tm = self
                .tables
                .get_mut(&name)
                .expect("checked by parse_cond_change");
            if tm.filter == filter {
                continue;
            }
            let mut rows = Map::new();
            for (uuid, row) in db.rows(&name) {
                if let Some(u) =
                    row_update::v2(tm, Some(row), Some(row), false, &tm.filter, &filter)
                {
                    rows.insert(uuid.to_string(), u);
                }
            }
            tm.filter = filter;
            if !rows.is_empty() {
                out.insert(name, Value::Object(rows));
            }
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("JSON values serialise");
}
