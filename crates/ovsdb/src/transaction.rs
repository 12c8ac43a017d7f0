//! The `transact` method (RFC 7047 §4.1.3 and §5.2): every operation (`insert` with
//! `uuid-name` and the caller-chosen `uuid` extension, `select` with `columns` and the
//! undocumented `sort`, `update`, `mutate`, `delete`, `wait`, `commit`, `abort`, `comment`,
//! `assert`) executed against a working overlay of the rows it touches, the result array
//! shaped as ovsdb-server does (protocol doc §5.1), then the commit-time checks of
//! the `commit` module.
//!
//! Everything that must be identical on every replica comes from [`TxnEnv`]: fresh UUIDs,
//! lock ownership, how long a blocking `wait` has been waiting and the session's RBAC role
//! and identity (checked by the `rbac` module before each write operation).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::atom::parse_uuid_str;
use crate::changes::ChangeSet;
use crate::condition::Condition;
use crate::database::{project, Database};
use crate::datum::Datum;
use crate::error::{ErrorTag, OvsdbError};
use crate::json::JsonLike;
use crate::mutation;
use crate::parser::{Kind, Parser};
use crate::per_table::PerTable;
use crate::rbac::{self, RbacIdentity, Write};
use crate::row::Row;
use crate::schema::{ColumnRef, TableSchema};

/// What a transaction needs from the outside world, decided once for all replicas.
pub trait TxnEnv {
    /// Every fresh row UUID and every new `_version` comes from here.
    fn new_uuid(&mut self) -> Uuid;
    /// Whether the session owns `lock` (for `assert`).
    fn has_lock(&self, lock: &str) -> bool;
    /// Milliseconds since the transaction was first received (0 on its first run). As in
    /// ovsdb-server's `ovsdb_execute_wait`, an unsatisfied `wait` fails only once ITS OWN
    /// `timeout` has elapsed; one without `timeout` blocks for ever, whatever the others say.
    fn wait_elapsed_ms(&self) -> u64;
    /// The role and identity of the session, when it came in through a listener with a
    /// `role` (ovsdb-server's `Connection.role`). None, or an empty role: no RBAC check.
    fn rbac(&self) -> Option<RbacIdentity<'_>> {
        None
    }
}

/// The outcome of one `transact`.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOutcome {
    /// The JSON array replied to the client (`null` when `blocked`).
    pub result: Value,
    /// Some only when something was committed.
    pub changes: Option<ChangeSet>,
    /// An unsatisfied `wait` blocks: nothing was applied; retry after the database changes.
    pub blocked: bool,
    /// When `blocked`: the blocking wait's own timeout passes this many ms after the elapsed
    /// time the environment reported, so a re-run then fails it. None: only a change helps.
    pub retry_in_ms: Option<u64>,
    /// The text of the last `comment` operation, if any (for the database log).
    pub comment: Option<String>,
    /// A `commit` operation asked for `durable: true`.
    pub durable: bool,
}

/// A simple deterministic [`TxnEnv`]: UUIDs from a counter (high 64 bits = `seed`),
/// a fixed set of held locks, and a fixed elapsed time for blocking waits.
#[derive(Debug, Clone, Default)]
pub struct SeqEnv {
    pub seed: u64,
    pub next: u64,
    pub locks: BTreeSet<String>,
    pub wait_elapsed: u64,
}

impl SeqEnv {
    pub fn new(seed: u64) -> SeqEnv {
        SeqEnv {
            seed,
            ..SeqEnv::default()
        }
    }
}

impl TxnEnv for SeqEnv {
    fn new_uuid(&mut self) -> Uuid {
        self.next += 1;
        Uuid::from_u64_pair(self.seed, self.next)
    }

    fn has_lock(&self, lock: &str) -> bool {
        self.locks.contains(lock)
    }

    fn wait_elapsed_ms(&self) -> u64 {
        self.wait_elapsed
    }
}

#[cfg(test)]
thread_local! {
    /// Makes every query of this thread scan its table, for comparing with the index path.
    pub(crate) static FORCE_SCAN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many queries of this thread went through an index.
    pub(crate) static INDEXED_QUERIES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    /// A reserved database such as `_Server`.
    Reserved,
    /// A read-only server.
    ReadOnly,
}

/// One touched row in the working overlay. `old` is the committed row (None if inserted
/// by this transaction); `new` is the working content (None if deleted).
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub old: Option<Row>,
    pub new: Option<Vec<Datum>>,
}

pub(crate) struct Exec<'a> {
    pub db: &'a Database,
    pub env: &'a mut dyn TxnEnv,
    mode: Mode,
    /// Per table: the rows this transaction touched.
    pub overlay: PerTable<Work>,
    symtab: BTreeMap<String, (Uuid, bool)>,
    comment: Option<String>,
    durable: bool,
    blocked: bool,
    retry_in_ms: Option<u64>,
}

fn resolve(symtab: &mut BTreeMap<String, (Uuid, bool)>, env: &mut dyn TxnEnv, name: &str) -> Uuid {
    if let Some((u, _)) = symtab.get(name) {
        return *u;
    }
    let u = env.new_uuid();
    symtab.insert(name.to_string(), (u, false));
    u
}

/// How [`run`] ended: with the outcome, or with changes that passed every check and are
/// still to be applied.
enum Ran {
    Done(TxnOutcome),
    Commit {
        plan: crate::commit::Plan,
        results: Vec<Value>,
        comment: Option<String>,
        durable: bool,
    },
}

/// Executes the operations and the commit-time checks against `db`, which is only read.
fn run<'j, J: JsonLike<'j>>(
    db: &Database,
    ops: impl ExactSizeIterator<Item = J>,
    env: &mut dyn TxnEnv,
    mode: Mode,
) -> Ran {
    let n = ops.len();
    let mut results: Vec<Value> = Vec::with_capacity(n + 1);
    let mut x = Exec {
        db,
        env,
        mode,
        overlay: PerTable::new(db.schema().tables.len()),
        symtab: BTreeMap::new(),
        comment: None,
        durable: false,
        blocked: false,
        retry_in_ms: None,
    };
    for (i, op) in ops.enumerate() {
        match x.execute(op, i, n) {
            Ok(v) => results.push(v),
            Err(_) if x.blocked => {
                return Ran::Done(TxnOutcome {
                    result: Value::Null,
                    changes: None,
                    blocked: true,
                    retry_in_ms: x.retry_in_ms,
                    comment: None,
                    durable: false,
                })
            }
            Err(e) => {
                results.push(e.to_json());
                results.resize(n, Value::Null);
                return Ran::Done(TxnOutcome {
                    result: Value::Array(results),
                    changes: None,
                    blocked: false,
                    retry_in_ms: None,
                    comment: x.comment,
                    durable: x.durable,
                });
            }
        }
    }
    let plan = crate::commit::precommit(&mut x);
    let (comment, durable) = (x.comment, x.durable);
    match plan {
        Err(e) => {
            results.push(e.to_json());
            Ran::Done(TxnOutcome {
                result: Value::Array(results),
                changes: None,
                blocked: false,
                retry_in_ms: None,
                comment,
                durable,
            })
        }
        Ok(None) => Ran::Done(TxnOutcome {
            result: Value::Array(results),
            changes: None,
            blocked: false,
            retry_in_ms: None,
            comment,
            durable,
        }),
        Ok(Some(plan)) => Ran::Commit {
            plan,
            results,
            comment,
            durable,
        },
    }
}

pub(crate) fn transact<'j, J: JsonLike<'j>>(
    db: &mut Database,
    ops: impl ExactSizeIterator<Item = J>,
    env: &mut dyn TxnEnv,
    mode: Mode,
) -> TxnOutcome {
    match run(db, ops, env, mode) {
        Ran::Done(outcome) => outcome,
        Ran::Commit {
            plan,
            results,
            comment,
            durable,
        } => {
            let cs = db.apply(plan.rows, &plan.ref_delta);
            TxnOutcome {
                result: Value::Array(results),
                changes: Some(cs),
                blocked: false,
                retry_in_ms: None,
                comment,
                durable,
            }
        }
    }
}

/// [`transact`] on a shared database, for operations that [`reads_only`] accepts. Such a
/// transaction never reaches a commit with changes: without write operations the overlay
/// stays empty, and an `abort` fails the transaction before the commit-time checks.
pub(crate) fn transact_read<'j, J: JsonLike<'j>>(
    db: &Database,
    ops: impl ExactSizeIterator<Item = J> + Clone,
    env: &mut dyn TxnEnv,
    mode: Mode,
) -> Result<TxnOutcome, NotReadOnly> {
    reads_only(ops.clone())?;
    match run(db, ops, env, mode) {
        Ran::Done(outcome) => Ok(outcome),
        Ran::Commit { .. } => unreachable!("operations without writes or with an abort commit"),
    }
}

/// Refused by the read-only entry points: the operations may write, so they need
/// [`Database::transact`] (through the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "operation {index} is not one of select, wait, comment, assert, commit and abort, \
     and no operation is abort: the transaction may write"
)]
pub struct NotReadOnly {
    /// The position of the first operation that is not read-only.
    pub index: usize,
}

/// Refused by [`Database::transact_read_text`].
#[derive(Debug, thiserror::Error)]
pub enum ReadTextError {
    /// Not a JSON array (serde_json's error, as for [`Database::transact_text`]).
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    NotReadOnly(#[from] NotReadOnly),
}

/// The read-only operations: they never touch the overlay.
fn read_only_op(name: Option<&str>) -> bool {
    matches!(
        name,
        Some("select" | "wait" | "comment" | "assert" | "commit" | "abort")
    )
}

/// Ok when the transaction cannot change the database: every operation is `select`,
/// `wait`, `comment`, `assert`, `commit` or `abort`, or some operation is `abort` (which
/// always fails, so nothing before it commits, as for `ovsdb-client query`).
fn reads_only<'j, J: JsonLike<'j>>(
    ops: impl Iterator<Item = J> + Clone,
) -> Result<(), NotReadOnly> {
    let name = |op: J| op.get("op").and_then(J::as_str);
    if ops.clone().any(|op| name(op) == Some("abort")) {
        return Ok(());
    }
    match ops.map(name).position(|n| !read_only_op(n)) {
        Some(index) => Err(NotReadOnly { index }),
        None => Ok(()),
    }
}

/// True when [`Database::transact_read`] accepts `ops`: they cannot change the database
/// (every operation is `select`, `wait`, `comment`, `assert`, `commit` or `abort`, or some
/// operation is `abort`). The one predicate for routing and for metrics.
pub fn is_read_only_transaction(ops: &[Value]) -> bool {
    reads_only(ops.iter()).is_ok()
}

impl<'a> Exec<'a> {
    fn execute<'j, J: JsonLike<'j>>(
        &mut self,
        op: J,
        i: usize,
        n: usize,
    ) -> Result<Value, OvsdbError> {
        let mut p = Parser::new(op, crate::parser::Context::Operation(i + 1, n));
        let name = p.required("op", Kind::Id).and_then(J::as_str);
        let placeholder = || OvsdbError::bare(ErrorTag::SyntaxError);
        let r = match name {
            Some("insert") => self.op_insert(&mut p),
            Some("select") => self.op_select(&mut p),
            Some("update") => self.op_update(&mut p),
            Some("mutate") => self.op_mutate(&mut p),
            Some("delete") => self.op_delete(&mut p),
            Some("wait") => self.op_wait(&mut p),
            Some("commit") => self.op_commit(&mut p),
            Some("abort") => Err(OvsdbError::new(ErrorTag::Aborted, "aborted by request")),
            Some("comment") => self.op_comment(&mut p),
            Some("assert") => self.op_assert(&mut p),
            Some(other) => {
                p.raise(&format!("No operation \"{other}\""));
                Err(placeholder())
            }
            None => Err(placeholder()),
        };
        if self.blocked {
            return r;
        }
        // A parse error overrides any other error, as in ovsdb-server.
        p.finish()?;
        let v = r?;
        let name = name.unwrap_or_default();
        if matches!(name, "insert" | "update" | "mutate" | "delete") {
            match self.mode {
                Mode::Normal => {}
                Mode::Reserved => {
                    return Err(OvsdbError::new(
                        ErrorTag::NotAllowed,
                        format!(
                            "{name} operation not allowed on table in reserved database {}",
                            self.db.schema().name
                        ),
                    ))
                }
                Mode::ReadOnly => {
                    return Err(OvsdbError::new(
                        ErrorTag::NotAllowed,
                        format!(
                        "{name} operation not allowed when database server is in read only mode"
                    ),
                    ))
                }
            }
        }
        Ok(v)
    }

    fn parse_table<'j, J: JsonLike<'j>>(&self, p: &mut Parser<J>) -> Option<usize> {
        let name = p.required("table", Kind::Id)?.as_str()?;
        let t = self.db.schema().table_index(name);
        if t.is_none() {
            p.raise(&format!("No table named {name}."));
        }
        t
    }

    fn ts(&self, t: usize) -> &'a TableSchema {
        let db: &'a Database = self.db;
        db.table_schema(t)
    }

    fn parse_condition<'j>(
        &mut self,
        t: usize,
        where_: impl JsonLike<'j>,
    ) -> Result<Condition, OvsdbError> {
        let ts = self.ts(t);
        let (symtab, env) = (&mut self.symtab, &mut *self.env);
        let mut f = |n: &str| resolve(symtab, env, n);
        Condition::from_json(ts, where_, &mut Some(&mut f))
    }

    fn parse_datum<'j>(
        &mut self,
        v: impl JsonLike<'j>,
        t: &crate::ColumnType,
    ) -> Result<Datum, OvsdbError> {
        let (symtab, env) = (&mut self.symtab, &mut *self.env);
        let mut f = |n: &str| resolve(symtab, env, n);
        Datum::from_json(v, t, &mut Some(&mut f))
    }

    /// Parses a `<row>` object: (column, value) pairs; `_uuid`/`_version` are parsed as
    /// UUIDs and reported as such so that callers can ignore or refuse them.
    fn parse_row<'j>(
        &mut self,
        t: usize,
        row: impl JsonLike<'j>,
    ) -> Result<Vec<(ColumnRef, Datum)>, OvsdbError> {
        let ts = self.ts(t);
        let obj = row
            .members()
            .ok_or_else(|| OvsdbError::syntax(row, "row must be JSON object"))?;
        let mut out = Vec::with_capacity(obj.size_hint().0);
        for (name, v) in obj {
            let c = ts.column_ref(name).ok_or_else(|| {
                OvsdbError::new(
                    ErrorTag::UnknownColumn,
                    format!("No column {name} in table {}.", ts.name),
                )
                .with_syntax(row)
            })?;
            let d = self.parse_datum(v, ts.column_ref_type(c))?;
            out.push((c, d));
        }
        Ok(out)
    }

    /// The current (working) content of a row, if it exists in this transaction's view.
    pub(crate) fn current(&self, t: usize, u: &Uuid) -> Option<(Uuid, &[Datum])> {
        match self.overlay[t].get(u) {
            Some(w) => w
                .new
                .as_deref()
                .map(|cols| (w.old.as_ref().map_or(Uuid::nil(), |r| *r.version()), cols)),
            None => self.db.tables[t]
                .rows
                .get(u)
                .map(|r| (*r.version(), r.columns())),
        }
    }

    /// UUIDs of the rows of table `t` that match `cond`, in UUID order.
    pub(crate) fn query(&self, t: usize, cond: &Condition) -> Vec<Uuid> {
        let mut out = Vec::new();
        if cond.is_false() {
            return out;
        }
        if let Some(u) = cond.uuid_lookup() {
            if let Some((v, cols)) = self.current(t, &u) {
                if cond.evaluate(&u, &v, cols) {
                    out.push(u);
                }
            }
            return out;
        }
        let table = &self.db.tables[t];
        let committed = |u: &Uuid, r: &Row| {
            !self.overlay[t].contains_key(u) && cond.evaluate(u, r.version(), r.columns())
        };
        match self.index_candidates(t, cond) {
            // The committed index covers exactly the committed rows, so the candidates are
            // checked like the scan checks them; the overlay is walked below either way.
            Some(candidates) => {
                for u in candidates {
                    if let Some(r) = table.rows.get(u) {
                        if committed(u, r) {
                            out.push(*u);
                        }
                    }
                }
            }
            // Matches collected in hash order, then sorted.
            None => {
                for (u, r) in table.rows.unordered() {
                    if committed(u, r) {
                        out.push(*u);
                    }
                }
            }
        }
        for (u, w) in self.overlay[t].iter() {
            if let Some(cols) = &w.new {
                let v = w.old.as_ref().map_or(Uuid::nil(), |r| *r.version());
                if cond.evaluate(u, &v, cols) {
                    out.push(*u);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The committed rows that may match `cond` when it pins every column of a schema index
    /// of table `t` (the first such index): those whose values on it hash like the pinned
    /// ones. A committed row whose index values differ from the pinned ones fails an `==`
    /// clause, so the others need no look. None: scan the table.
    fn index_candidates(&self, t: usize, cond: &Condition) -> Option<&'a [Uuid]> {
        #[cfg(test)]
        if FORCE_SCAN.with(std::cell::Cell::get) {
            return None;
        }
        let db: &'a Database = self.db;
        let ts = db.table_schema(t);
        let found = ts.indexes.iter().enumerate().find_map(|(ii, idx)| {
            let key = cond.pinned(ts, idx)?;
            Some(db.tables[t].indexes[ii].candidates(&key))
        });
        #[cfg(test)]
        if found.is_some() {
            INDEXED_QUERIES.with(|n| n.set(n.get() + 1));
        }
        found
    }

    /// The working columns of an existing row, copying it into the overlay on first write.
    fn modify(&mut self, t: usize, u: &Uuid) -> &mut Vec<Datum> {
        let committed = &self.db.tables[t].rows;
        let w = self.overlay[t].entry(*u).or_insert_with(|| {
            let r = committed.get(u).expect("row exists");
            Work {
                old: Some(r.clone()),
                new: Some(r.columns().to_vec()),
            }
        });
        w.new.as_mut().expect("modify of a live row")
    }

    fn op_insert<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let t = self.parse_table(p);
        let uuid_name = p.optional("uuid-name", Kind::Id);
        let uuid_json = p.optional("uuid", Kind::String);
        let row_json = p.required("row", Kind::Object);
        let (Some(t), Some(row_json)) = (t, row_json) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        let mut row_uuid = None;
        if let Some(uj) = uuid_json {
            let u = parse_uuid_str(uj.as_str().unwrap_or_default())
                .ok_or_else(|| OvsdbError::syntax(uj, "bad uuid"))?;
            if self.overlay[t].contains_key(&u) || self.db.tables[t].rows.contains_key(&u) {
                return Err(OvsdbError::new(
                    ErrorTag::DuplicateUuid,
                    "This UUID would duplicate a UUID already present within the table or deleted within the same transaction.",
                )
                .with_syntax(uj));
            }
            row_uuid = Some(u);
        }
        if let Some(nj) = uuid_name {
            let name = nj.as_str().unwrap_or_default();
            if self.symtab.get(name).is_some_and(|s| s.1) {
                return Err(OvsdbError::new(
                    ErrorTag::DuplicateUuidName,
                    "This \"uuid-name\" appeared on an earlier \"insert\" operation.",
                )
                .with_syntax(nj));
            }
            let sym_uuid = resolve(&mut self.symtab, self.env, name);
            let u = row_uuid.unwrap_or(sym_uuid);
            *self.symtab.get_mut(name).expect("just resolved") = (u, true);
            row_uuid = Some(u);
        }
        let u = match row_uuid {
            Some(u) => u,
            None => self.env.new_uuid(),
        };
        let ts = self.ts(t);
        let mut cols: Vec<Datum> = ts
            .columns
            .iter()
            .map(|c| Datum::default_for(&c.type_))
            .collect();
        for (c, d) in self.parse_row(t, row_json)? {
            if let ColumnRef::Column(i) = c {
                cols[i] = d;
            }
        }
        for (c, d) in ts.columns.iter().zip(&cols) {
            if d.len() == 1 {
                d.check_constraints(&c.type_)?;
            }
        }
        rbac::check(self, t, &Write::Insert(&cols))?;
        // A UUID that a previous insert in this transaction used (possible through a
        // uuid-name bound to a caller-chosen uuid) is a duplicate too.
        if self.overlay[t].contains_key(&u) || self.db.tables[t].rows.contains_key(&u) {
            return Err(OvsdbError::new(
                ErrorTag::DuplicateUuid,
                "This UUID would duplicate a UUID already present within the table or deleted within the same transaction.",
            ));
        }
        self.overlay[t].insert(
            u,
            Work {
                old: None,
                new: Some(cols),
            },
        );
        Ok(object1("uuid", crate::Atom::Uuid(u).to_json()))
    }

    fn op_select<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let t = self.parse_table(p);
        let where_ = p.required("where", Kind::Array);
        let columns = p.optional("columns", Kind::Array);
        let sort = p.optional("sort", Kind::Array);
        let (Some(t), Some(where_)) = (t, where_) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        let cond = self.parse_condition(t, where_)?;
        let ts = self.ts(t);
        let cols: Vec<ColumnRef> = match columns {
            Some(c) => ts.parse_column_set(c)?,
            None => all_columns(ts),
        };
        let sort: Vec<ColumnRef> = match sort {
            Some(s) => ts.parse_column_set(s)?,
            None => Vec::new(),
        };
        let distinct = columns.is_some() && !cols.contains(&ColumnRef::Uuid);
        let mut seen: BTreeSet<Vec<Datum>> = BTreeSet::new();
        let mut rows: Vec<(Vec<Datum>, Vec<Datum>)> = Vec::new();
        for u in self.query(t, &cond) {
            let (v, c) = self.current(t, &u).expect("matched row exists");
            let proj = project(&u, &v, c, &cols);
            if distinct && !seen.insert(proj.clone()) {
                continue;
            }
            let key = if sort.is_empty() {
                Vec::new()
            } else {
                project(&u, &v, c, &sort)
            };
            rows.push((key, proj));
        }
        if !sort.is_empty() {
            rows.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let out: Vec<Value> = rows
            .into_iter()
            .map(|(_, proj)| {
                let mut m = Map::new();
                for (c, d) in cols.iter().zip(proj) {
                    m.insert(ts.column_ref_name(*c).to_string(), d.to_json());
                }
                Value::Object(m)
            })
            .collect();
        Ok(object1("rows", Value::Array(out)))
    }

    fn op_update<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let op_json = p_json(p);
        let t = self.parse_table(p);
        let where_ = p.required("where", Kind::Array);
        let row_json = p.required("row", Kind::Object);
        let (Some(t), Some(where_), Some(row_json)) = (t, where_, row_json) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        let ts = self.ts(t);
        let row = self.parse_row(t, row_json)?;
        for (c, _) in &row {
            let mutable = match c {
                ColumnRef::Column(i) => ts.columns[*i].is_mutable(),
                _ => false,
            };
            if !mutable {
                return Err(OvsdbError::constraint(format!(
                    "Cannot update immutable column {} in table {}.",
                    ts.column_ref_name(*c),
                    ts.name
                ))
                .with_syntax(op_json));
            }
        }
        let cond = self.parse_condition(t, where_)?;
        let columns: Vec<usize> = row
            .iter()
            .filter_map(|(c, _)| match c {
                ColumnRef::Column(i) => Some(*i),
                _ => None,
            })
            .collect();
        rbac::check(self, t, &Write::Update(&cond, &columns))?;
        let matches = self.query(t, &cond);
        for u in &matches {
            let (_, cur) = self.current(t, u).expect("matched");
            let differs = row.iter().any(|(c, d)| match c {
                ColumnRef::Column(i) => cur[*i] != *d,
                _ => false,
            });
            if differs {
                let cols = self.modify(t, u);
                for (c, d) in &row {
                    if let ColumnRef::Column(i) = c {
                        cols[*i] = d.clone();
                    }
                }
            }
        }
        Ok(object1("count", Value::from(matches.len())))
    }

    fn op_mutate<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let t = self.parse_table(p);
        let where_ = p.required("where", Kind::Array);
        let mutations = p.required("mutations", Kind::Array);
        let (Some(t), Some(where_), Some(mutations)) = (t, where_, mutations) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        let ts = self.ts(t);
        let muts = {
            let (symtab, env) = (&mut self.symtab, &mut *self.env);
            let mut f = |n: &str| resolve(symtab, env, n);
            mutation::parse_mutations(ts, mutations, &mut Some(&mut f))?
        };
        let cond = self.parse_condition(t, where_)?;
        let columns: Vec<usize> = muts.iter().map(|m| m.column).collect();
        rbac::check(self, t, &Write::Mutate(&cond, &columns))?;
        let matches = self.query(t, &cond);
        for u in &matches {
            // Mutated in place: an error aborts the whole transaction anyway, and rows left
            // unchanged are dropped at commit.
            mutation::apply(ts, self.modify(t, u), &muts)?;
        }
        Ok(object1("count", Value::from(matches.len())))
    }

    fn op_delete<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let t = self.parse_table(p);
        let where_ = p.required("where", Kind::Array);
        let (Some(t), Some(where_)) = (t, where_) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        let cond = self.parse_condition(t, where_)?;
        rbac::check(self, t, &Write::Delete(&cond))?;
        let matches = self.query(t, &cond);
        for u in &matches {
            let committed = self.db.tables[t].rows.get(u).cloned();
            let w = self.overlay[t].entry(*u).or_insert(Work {
                old: committed,
                new: None,
            });
            w.new = None;
        }
        Ok(object1("count", Value::from(matches.len())))
    }

    fn op_wait<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let timeout = p.optional("timeout", Kind::Integer);
        let where_ = p.required("where", Kind::Array);
        let columns = p.optional("columns", Kind::Array);
        let until = p.required("until", Kind::String);
        let rows = p.required("rows", Kind::Array);
        let t = self.parse_table(p);
        let (Some(t), Some(where_), Some(until), Some(rows)) = (t, where_, until, rows) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        let cond = self.parse_condition(t, where_)?;
        let ts = self.ts(t);
        let cols: Vec<ColumnRef> = match columns {
            Some(c) => ts.parse_column_set(c)?,
            None => all_columns(ts),
        };
        let timeout_ms = match timeout {
            Some(tj) => {
                let ms = tj.as_f64().unwrap_or(0.0);
                if ms < 0.0 {
                    return Err(OvsdbError::syntax(tj, "timeout must be nonnegative"));
                }
                // JSON integers beyond u64 (or reals) saturate: such a wait never times out.
                Some(ms as u64)
            }
            None => None,
        };
        let until_eq = match until.as_str() {
            Some("==") => true,
            Some("!=") => false,
            _ => {
                return Err(OvsdbError::syntax(
                    until,
                    "\"until\" must be \"==\" or \"!=\"",
                ))
            }
        };
        let mut expected: BTreeSet<Vec<Datum>> = BTreeSet::new();
        for r in rows.elems().expect("checked") {
            let mut rc: Vec<Datum> = ts
                .columns
                .iter()
                .map(|c| Datum::default_for(&c.type_))
                .collect();
            let (mut ru, mut rv) = (Uuid::nil(), Uuid::nil());
            for (c, d) in self.parse_row(t, r)? {
                match c {
                    ColumnRef::Column(i) => rc[i] = d,
                    ColumnRef::Uuid => ru = *d.as_scalar().and_then(|a| a.as_uuid()).expect("uuid"),
                    ColumnRef::Version => {
                        rv = *d.as_scalar().and_then(|a| a.as_uuid()).expect("uuid")
                    }
                }
            }
            expected.insert(project(&ru, &rv, &rc, &cols));
        }
        let mut actual: BTreeSet<Vec<Datum>> = BTreeSet::new();
        let mut equal = true;
        for u in self.query(t, &cond) {
            let (v, c) = self.current(t, &u).expect("matched");
            let proj = project(&u, &v, c, &cols);
            if !expected.contains(&proj) {
                equal = false;
                break;
            }
            actual.insert(proj);
        }
        let equal = equal && actual.len() == expected.len();
        if until_eq == equal {
            return Ok(json!({}));
        }
        let elapsed = self.env.wait_elapsed_ms();
        match timeout_ms {
            // ovsdb-server words the first run's failure (elapsed 0) differently.
            Some(t) if elapsed >= t && elapsed == 0 => Err(OvsdbError::new(
                ErrorTag::TimedOut,
                "\"where\" clause test failed",
            )),
            Some(t) if elapsed >= t => Err(OvsdbError::new(
                ErrorTag::TimedOut,
                format!("\"wait\" timed out after {elapsed} ms"),
            )),
            _ => {
                self.blocked = true;
                self.retry_in_ms = timeout_ms.map(|t| t - elapsed);
                Err(OvsdbError::bare(ErrorTag::NotSupported))
            }
        }
    }

    fn op_commit<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let durable = p.required("durable", Kind::Boolean);
        if durable.and_then(J::as_bool) == Some(true) {
            self.durable = true;
        }
        Ok(json!({}))
    }

    fn op_comment<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        if let Some(c) = p.required("comment", Kind::String).and_then(J::as_str) {
            self.comment = Some(c.to_string());
        }
        Ok(json!({}))
    }

    fn op_assert<'j, J: JsonLike<'j>>(&mut self, p: &mut Parser<J>) -> Result<Value, OvsdbError> {
        let Some(lock) = p.required("lock", Kind::Id).and_then(J::as_str) else {
            return Err(OvsdbError::bare(ErrorTag::SyntaxError));
        };
        if self.env.has_lock(lock) {
            Ok(json!({}))
        } else {
            Err(OvsdbError::new(
                ErrorTag::NotOwner,
                format!("Asserted lock {lock} not held."),
            ))
        }
    }
}

/// `{key: value}` (the `json!` macro would copy `value` through its serializer).
fn object1(key: &str, value: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(key.to_string(), value);
    Value::Object(m)
}

fn p_json<'j, J: JsonLike<'j>>(p: &Parser<J>) -> J {
    p.json()
}

/// `_uuid`, `_version`, then every schema column.
fn all_columns(ts: &TableSchema) -> Vec<ColumnRef> {
    let mut v = vec![ColumnRef::Uuid, ColumnRef::Version];
    v.extend((0..ts.columns.len()).map(ColumnRef::Column));
    v
}
