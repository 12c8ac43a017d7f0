//! Listeners taken from the database: ovsdb-server's `--remote=db:DB,TABLE,COLUMN`
//! (ovsdb-server(1), "db:" remotes; `query_db_remotes` and `add_manager_options` in
//! `ovsdb/ovsdb-server.c`). This is how `ovn-ctl` starts the OVN databases
//! (`--remote=db:OVN_Northbound,NB_Global,connections`), and `ovn-nbctl set-connection` then
//! decides which ports are open.
//!
//! The column holds either remote names (a set of strings) or references to rows (OVN's
//! `Connection`, the vswitch `Manager`) whose `target`, `inactivity_probe`, `read_only` and
//! `role` columns give the listener and the options of its sessions (`max_backoff` and `dscp`
//! only matter to active remotes and are ignored). Every member applies the rows to itself and
//! follows them live: a change of those tables wakes [`run`], which binds new listeners, closes
//! removed ones with their sessions (as ovsdb-server does), and re-binds a listener whose options
//! changed, closing its sessions so their clients reconnect under the new options. A listener
//! that cannot be bound (port in use, address absent) is logged and retried every
//! [`RETRY_BIND`]; the others keep serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::listener::Remote;
use crate::session::{Ctx, SessionOptions};

/// How often a listener from the database that could not be bound is tried again.
pub const RETRY_BIND: Duration = Duration::from_secs(1);
/// Least time between two writes of listeners' `status` (only the leader writes, and only what
/// changed; see [`write_status`]).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// Least time between two evaluations of the rows, so a burst of writes to the watched tables
/// costs one evaluation.
const COALESCE: Duration = Duration::from_millis(50);

/// `db:DB,TABLE,COLUMN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbColumn {
    pub db: String,
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbColumnError {
    #[error("\"{0}\": invalid syntax (expected db:DATABASE,TABLE,COLUMN)")]
    Syntax(String),
    #[error("\"{name}\": no database named {db}")]
    NoDatabase { name: String, db: String },
    #[error("\"{name}\": no table named {table}")]
    NoTable { name: String, table: String },
    #[error("\"{name}\": table \"{table}\" has no string column \"{column}\"")]
    NotString {
        name: String,
        table: String,
        column: String,
    },
    #[error("\"{name}\": table \"{table}\" has no column \"{column}\"")]
    NoColumn {
        name: String,
        table: String,
        column: String,
    },
}

impl DbColumn {
    /// Parses `db:DB,TABLE,COLUMN`; `None` when `name` is not a `db:` name at all.
    pub fn parse(name: &str) -> Option<Result<DbColumn, DbColumnError>> {
        let rest = name.strip_prefix("db:")?;
        let parts: Vec<&str> = rest.split(',').collect();
        Some(match parts.as_slice() {
            [db, table, column] if !db.is_empty() && !table.is_empty() && !column.is_empty() => {
                Ok(DbColumn {
                    db: db.to_string(),
                    table: table.to_string(),
                    column: column.to_string(),
                })
            }
            _ => Err(DbColumnError::Syntax(name.to_string())),
        })
    }

    fn name(&self) -> String {
        format!("db:{},{},{}", self.db, self.table, self.column)
    }
}

impl DbColumn {
    /// The column this names in `schema`.
    fn column_in<'s>(
        &self,
        schema: &'s ovsdb::DatabaseSchema,
    ) -> Result<&'s ovsdb::ColumnSchema, DbColumnError> {
        let table = schema
            .tables
            .iter()
            .find(|t| t.name == self.table)
            .ok_or_else(|| DbColumnError::NoTable {
                name: self.name(),
                table: self.table.clone(),
            })?;
        table
            .column(&self.column)
            .ok_or_else(|| DbColumnError::NoColumn {
                name: self.name(),
                table: self.table.clone(),
                column: self.column.clone(),
            })
    }
}

impl std::fmt::Display for DbColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A table of a database: (database, table).
type DbTable = (String, String);

/// One TLS option as given: a value (a file name, a protocol list...) or `db:DB,TABLE,COLUMN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Given(String),
    Db(DbColumn),
}

impl OptionValue {
    /// `db:` names become [`OptionValue::Db`]; anything else is taken as it is.
    pub fn parse(value: &str) -> Result<OptionValue, DbColumnError> {
        match DbColumn::parse(value) {
            Some(spec) => Ok(OptionValue::Db(spec?)),
            None => Ok(OptionValue::Given(value.to_string())),
        }
    }

    pub fn is_db(&self) -> bool {
        matches!(self, OptionValue::Db(_))
    }
}

/// ovsdb-server's SSL options when at least one is given as `db:` (`ovn-ctl` passes
/// `--private-key=db:OVN_Northbound,SSL,private_key` and so on, and `ovn-nbctl set-ssl` fills
/// the row). Resolved like `query_db_string`; a TLS configuration is built once the key,
/// certificate and CA all resolve, and rebuilt when a value changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbTlsOptions {
    pub private_key: Option<OptionValue>,
    pub certificate: Option<OptionValue>,
    pub ca_cert: Option<OptionValue>,
    pub protocols: Option<OptionValue>,
    pub ciphers: Option<OptionValue>,
}

impl DbTlsOptions {
    fn all(&self) -> [&Option<OptionValue>; 5] {
        [
            &self.private_key,
            &self.certificate,
            &self.ca_cert,
            &self.protocols,
            &self.ciphers,
        ]
    }

    /// The settings the options name now (`Ok(None)`: key, certificate or CA not set yet), and
    /// the tables they read.
    fn resolve(
        &self,
        backend: &dyn crate::Backend,
    ) -> Result<(Option<crate::tls::TlsSettings>, Vec<DbTable>), DbColumnError> {
        let mut watched = Vec::new();
        let mut values: Vec<Option<String>> = Vec::new();
        for opt in self.all() {
            values.push(match opt {
                None => None,
                Some(OptionValue::Given(v)) => Some(v.clone()),
                Some(OptionValue::Db(spec)) => {
                    watched.push((spec.db.clone(), spec.table.clone()));
                    query_string(backend, spec)?
                }
            });
        }
        let settings = match (&values[0], &values[1], &values[2]) {
            (Some(k), Some(c), Some(ca)) => Some(crate::tls::TlsSettings {
                private_key: k.into(),
                certificate: c.into(),
                ca_cert: ca.into(),
                protocols: values[3].clone(),
                ciphers: values[4].clone(),
            }),
            _ => None,
        };
        Ok((settings, watched))
    }
}

/// Builds or updates the TLS configuration from `db:` options (see [`DbTlsOptions`]).
fn follow_tls(
    ctx: &Arc<Ctx>,
    opts: &DbTlsOptions,
    watched: &mut Vec<(String, String)>,
    reported: &mut Option<String>,
) {
    let mut report = |text: String| {
        if reported.as_ref() != Some(&text) {
            tracing::warn!("{text}");
            *reported = Some(text);
        }
    };
    let settings = match opts.resolve(ctx.backend.as_ref()) {
        Ok((settings, tables)) => {
            watched.extend(tables);
            settings
        }
        Err(e) => {
            report(format!("TLS options: {e}"));
            return;
        }
    };
    let Some(settings) = settings else {
        return; // `set-ssl` not run yet: SSL listeners refuse connections meanwhile.
    };
    let current = ctx.tls();
    if current.as_ref().is_some_and(|l| l.settings() == settings) {
        return;
    }
    let result = match &current {
        Some(loader) => loader.replace(settings.clone()),
        None => crate::tls::TlsLoader::new(settings.clone()).map(|loader| {
            *ctx.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(loader);
        }),
    };
    match result {
        Ok(()) => {
            *reported = None;
            tracing::info!(
                "TLS: using {} and {} (CA {}) from the database",
                settings.private_key.display(),
                settings.certificate.display(),
                settings.ca_cert.display()
            );
        }
        Err(e) => report(format!("TLS options from the database cannot be used: {e}")),
    }
}

/// One listener the rows ask for: its remote name and the options of its sessions (the probe
/// is `None` for "the server's default", `Some(0)` for "never").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbListener {
    pub target: String,
    /// The row it came from (`table`, uuid), when it came from a referenced row.
    pub row: Option<(String, uuid::Uuid)>,
    pub probe_ms: Option<u64>,
    pub read_only: bool,
    pub role: Option<String>,
}

/// What the rows of `spec` ask for now, plus the tables whose changes can change it. The
/// first row naming a target wins, as ovsdb-server's `add_remote` keeps the first.
pub(crate) fn query(
    backend: &dyn crate::Backend,
    spec: &DbColumn,
) -> Result<(Vec<DbListener>, Vec<String>), DbColumnError> {
    let mut out: Result<(Vec<DbListener>, Vec<String>), DbColumnError> =
        Err(DbColumnError::NoDatabase {
            name: spec.name(),
            db: spec.db.clone(),
        });
    backend.with_db(&spec.db, &mut |view| {
        out = query_db(view.db, spec);
    });
    out
}

/// The value of an option given as `db:DB,TABLE,COLUMN` (`--private-key=db:...` and the other
/// TLS options): the first non-empty string in the column over the table's rows, as
/// ovsdb-server's `query_db_string` (rows in UUID order here, hash order there: an SSL table
/// has one row). `Ok(None)` when there is none (e.g. `set-ssl` not run yet).
pub fn query_string(
    backend: &dyn crate::Backend,
    spec: &DbColumn,
) -> Result<Option<String>, DbColumnError> {
    let mut out = Err(DbColumnError::NoDatabase {
        name: spec.name(),
        db: spec.db.clone(),
    });
    backend.with_db(&spec.db, &mut |view| {
        out = query_db_string(view.db, spec);
    });
    out
}

fn query_db_string(db: &ovsdb::Database, spec: &DbColumn) -> Result<Option<String>, DbColumnError> {
    let schema = db.schema();
    let column = spec.column_in(schema)?;
    if column.type_.key.atomic != ovsdb::AtomicType::String || column.type_.value.is_some() {
        return Err(DbColumnError::NotString {
            name: spec.name(),
            table: spec.table.clone(),
            column: spec.column.clone(),
        });
    }
    for (_, row) in db.rows(&spec.table) {
        for atom in row.get(column.index).set_to_vec() {
            if let Some(v) = atom.as_str().filter(|v| !v.is_empty()) {
                return Ok(Some(v.to_string()));
            }
        }
    }
    Ok(None)
}

fn query_db(
    db: &ovsdb::Database,
    spec: &DbColumn,
) -> Result<(Vec<DbListener>, Vec<String>), DbColumnError> {
    let schema = db.schema();
    let column = spec.column_in(schema)?;
    let ty = &column.type_;
    let mut found: Vec<DbListener> = Vec::new();
    let mut add = |l: DbListener| {
        if l.target.starts_with("pfd:") {
            tracing::warn!(
                "pfd: remotes can only be specified on the command line; ignoring \"{}\" from database",
                l.target
            );
        } else if !found.iter().any(|f| f.target == l.target) {
            found.push(l);
        }
    };
    let mut watched = vec![spec.table.clone()];
    if ty.value.is_none() && ty.key.atomic == ovsdb::AtomicType::String {
        for (_, row) in db.rows(&spec.table) {
            for atom in row.get(column.index).set_to_vec() {
                if let Some(target) = atom.as_str() {
                    add(DbListener {
                        target: target.to_string(),
                        row: None,
                        probe_ms: None,
                        read_only: false,
                        role: None,
                    });
                }
            }
        }
    } else if let (None, ovsdb::AtomicType::Uuid, Some(ref_table)) =
        (&ty.value, ty.key.atomic, &ty.key.ref_table)
    {
        let Some(ref_schema) = schema.tables.iter().find(|t| &t.name == ref_table) else {
            return Ok((found, watched));
        };
        watched.push(ref_table.clone());
        for (_, row) in db.rows(&spec.table) {
            for atom in row.get(column.index).set_to_vec() {
                let Some(uuid) = atom.as_uuid() else { continue };
                if let Some(r) = db.row(ref_table, uuid) {
                    if let Some(mut l) = connection_row(&r.to_json(ref_schema)) {
                        l.row = Some((ref_table.clone(), *uuid));
                        add(l);
                    }
                }
            }
        }
    }
    Ok((found, watched))
}

/// The listener a `Connection`-like row asks for; `None` without a string `target`.
fn connection_row(row: &Value) -> Option<DbListener> {
    let target = row.get("target")?.as_str()?.to_string();
    // Optional columns are `["set", []]` when empty, the bare value otherwise.
    let scalar = |name: &str| row.get(name).filter(|v| !v.is_array());
    Some(DbListener {
        target,
        row: None,
        probe_ms: scalar("inactivity_probe")
            .and_then(Value::as_i64)
            .map(|ms| ms.max(0) as u64),
        read_only: scalar("read_only")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        role: scalar("role")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_string),
    })
}

/// A listener from the database that is serving.
struct Active {
    want: DbListener,
    tag: u64,
    bound_port: Option<u16>,
    task: tokio::task::JoinHandle<()>,
}

/// A listener named on the command line or by `ovsdb-server/add-remote`: default options.
fn plain(target: &str) -> DbListener {
    DbListener {
        target: target.to_string(),
        row: None,
        probe_ms: None,
        read_only: false,
        role: None,
    }
}

/// Serves the configured remotes (`Hub::remotes`: the command line's, changed by
/// `ovsdb-server/add-remote` and `remove-remote`) and the listeners their `db:` entries name,
/// for the life of the server (see the module header). `prebound`: the command line's
/// listeners, bound before (so that a bad one fails the start).
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    prebound: Vec<(String, crate::listener::Listener)>,
    connections: Arc<Semaphore>,
) {
    let mut active: BTreeMap<String, Active> = BTreeMap::new();
    for (name, listener) in prebound {
        let want = plain(&name);
        let a = serve_listener(&ctx, &want, listener, connections.clone());
        active.insert(name, a);
    }
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    let mut written: BTreeMap<(String, uuid::Uuid), Value> = BTreeMap::new();
    let mut last_status: Option<tokio::time::Instant> = None;
    let mut tls_reported: Option<String> = None;
    loop {
        // Registered before the rows are read, so a change made meanwhile is not missed.
        let changed = ctx.hub.remotes_changed.notified();
        let mut want: Vec<DbListener> = Vec::new();
        let mut watched: Vec<(String, String)> = Vec::new();
        let configured = ctx.hub.remotes();
        let mut specs = Vec::new();
        for r in &configured {
            match DbColumn::parse(r) {
                Some(Ok(spec)) => specs.push(spec),
                Some(Err(_)) => {} // refused when configured
                None => {
                    if !want.iter().any(|w| &w.target == r) {
                        want.push(plain(r));
                    }
                }
            }
        }
        for spec in &specs {
            match query(ctx.backend.as_ref(), spec) {
                Ok((listeners, tables)) => {
                    reported.remove(&spec.name());
                    for l in listeners {
                        if !want.iter().any(|w| w.target == l.target) {
                            want.push(l);
                        }
                    }
                    watched.extend(tables.into_iter().map(|t| (spec.db.clone(), t)));
                }
                Err(e) => {
                    // A database not there yet (a member still joining) is normal: say it once.
                    let text = e.to_string();
                    if reported.get(&spec.name()) != Some(&text) {
                        tracing::warn!("{text}");
                        reported.insert(spec.name(), text);
                    }
                    watched.push((spec.db.clone(), spec.table.clone()));
                }
            }
        }
        if let Some(opts) = &ctx.config.tls_from_db {
            follow_tls(&ctx, opts, &mut watched, &mut tls_reported);
        }
        ctx.hub.watch_tables(watched);

        // Close what is no longer asked for, or asked for with other options.
        let stale: Vec<String> = active
            .iter()
            .filter(|(_, a)| !want.contains(&a.want))
            .map(|(t, _)| t.clone())
            .collect();
        for target in stale {
            if let Some(a) = active.remove(&target) {
                a.task.abort();
                let closed = ctx.hub.close_listener(a.tag);
                tracing::info!(
                    "{target}: listener removed or changed; closed it and {closed} session(s)"
                );
            }
        }
        failing.retain(|t, _| want.iter().any(|w| &w.target == t));
        for w in &want {
            if active.contains_key(&w.target) {
                continue;
            }
            match bind(&ctx, w, connections.clone()).await {
                Ok(a) => {
                    failing.remove(&w.target);
                    active.insert(w.target.clone(), a);
                }
                Err(e) => {
                    if failing.get(&w.target) != Some(&e) {
                        tracing::warn!("{e} (retrying every {RETRY_BIND:?})");
                        failing.insert(w.target.clone(), e);
                    }
                }
            }
        }
        ctx.hub.set_db_listeners(
            active
                .iter()
                .map(|(t, a)| (t.clone(), a.tag))
                .collect::<Vec<_>>(),
        );

        let status_due = last_status.is_none_or(|t| t.elapsed() >= STATUS_INTERVAL);
        if status_due && ctx.backend.is_raft_leader() {
            last_status = Some(tokio::time::Instant::now());
            write_status(&ctx, &specs, &active, &mut written).await;
        } else if !ctx.backend.is_raft_leader() {
            // A later leadership starts from what the rows say, not from what we wrote.
            written.clear();
        }

        let retry = !failing.is_empty();
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(RETRY_BIND), if retry => {}
            _ = tokio::time::sleep(STATUS_INTERVAL) => {}
        }
        tokio::time::sleep(COALESCE).await;
    }
}

/// The leader writes each listener row's `is_connected` and `status` (`bound_port`, and
/// `n_connections` when above one, as ovsdb-server's `update_remote_row` does for a passive
/// remote), describing its own listener, only when they differ from what the row holds, at most
/// every [`STATUS_INTERVAL`]. ovsdb-server 3.1 writes status every few seconds on each server of
/// a standalone database and not at all for a clustered one (each member would overwrite the
/// others'); with one writer and writes only on change, a steady cluster adds no log entries.
async fn write_status(
    ctx: &Arc<Ctx>,
    specs: &[DbColumn],
    active: &BTreeMap<String, Active>,
    written: &mut BTreeMap<(String, uuid::Uuid), Value>,
) {
    let counts: BTreeMap<u64, usize> = {
        let mut m = BTreeMap::new();
        for tag in ctx.hub.session_tags() {
            *m.entry(tag).or_insert(0) += 1;
        }
        m
    };
    for spec in specs {
        let mut ops = Vec::new();
        for a in active.values() {
            let Some((table, uuid)) = &a.want.row else {
                continue;
            };
            let n = counts.get(&a.tag).copied().unwrap_or(0);
            let mut status = Vec::new();
            if let Some(p) = a.bound_port {
                status.push(serde_json::json!(["bound_port", p.to_string()]));
            }
            if n > 1 {
                status.push(serde_json::json!(["n_connections", n.to_string()]));
            }
            let row = serde_json::json!({
                "is_connected": n > 0,
                "status": ["map", status],
            });
            let key = (table.clone(), *uuid);
            let current = current_status(ctx, &spec.db, table, uuid);
            if written.get(&key) == Some(&row) && current.as_ref() == Some(&row) {
                continue;
            }
            if current.as_ref() == Some(&row) {
                written.insert(key, row);
                continue;
            }
            ops.push(serde_json::json!({
                "op": "update", "table": table,
                "where": [["_uuid", "==", ["uuid", uuid.to_string()]]],
                "row": row,
            }));
            written.insert(key, row);
        }
        if ops.is_empty() {
            continue;
        }
        let result = ctx
            .backend
            // No `wait` in it: one run.
            .transact(
                spec.db.clone(),
                std::sync::Arc::new(ops),
                crate::SessionKey::random(),
                None,
                0,
            )
            .await;
        if let Err(e) = result {
            tracing::debug!("could not write listener status: {e}");
            written.clear();
        }
    }
}

/// `is_connected` and `status` of a row as the database holds them, in the form
/// [`write_status`] writes.
fn current_status(ctx: &Arc<Ctx>, db: &str, table: &str, uuid: &uuid::Uuid) -> Option<Value> {
    let mut out = None;
    ctx.backend.with_db(db, &mut |view| {
        let schema = view.db.schema();
        let Some(t) = schema.tables.iter().find(|t| t.name == table) else {
            return;
        };
        if let Some(r) = view.db.row(table, uuid) {
            let json = r.to_json(t);
            out = Some(serde_json::json!({
                "is_connected": json.get("is_connected").cloned().unwrap_or(Value::Null),
                "status": json.get("status").cloned().unwrap_or(Value::Null),
            }));
        }
    });
    out
}

async fn bind(
    ctx: &Arc<Ctx>,
    w: &DbListener,
    connections: Arc<Semaphore>,
) -> Result<Active, String> {
    let remote: Remote = w
        .target
        .parse()
        .map_err(|e: crate::listener::RemoteError| e.to_string())?;
    if matches!(remote, Remote::Ssl(_)) && ctx.tls().is_none() {
        return Err(format!(
            "{}: SSL listener without --private-key, --certificate and --ca-cert",
            w.target
        ));
    }
    let listener = remote
        .bind()
        .await
        .map_err(|e| format!("{}: cannot listen: {e}", w.target))?;
    Ok(serve_listener(ctx, w, listener, connections))
}

/// Starts accepting on `listener` with the options `w` gives its sessions.
fn serve_listener(
    ctx: &Arc<Ctx>,
    w: &DbListener,
    listener: crate::listener::Listener,
    connections: Arc<Semaphore>,
) -> Active {
    let tag = ctx.hub.next_listener_tag();
    let bound_port = listener.local_addr().map(|a| a.port());
    let options = SessionOptions {
        probe: match w.probe_ms {
            None => ctx.config.probe_interval,
            Some(0) => None,
            // ovsdb-server raises a non-zero probe below a second to a second.
            Some(ms) => Some(Duration::from_millis(ms.max(1000))),
        },
        read_only: w.read_only,
        role: w.role.clone(),
        identity: None,
    };
    tracing::info!(
        "{}: listening{}{}",
        listener.local_name(),
        if w.read_only { " (read-only)" } else { "" },
        w.role
            .as_ref()
            .map(|r| format!(" (role {r})"))
            .unwrap_or_default()
    );
    let task = tokio::spawn(crate::server::accept_loop(
        ctx.clone(),
        listener,
        connections,
        options,
        tag,
    ));
    Active {
        want: w.clone(),
        tag,
        bound_port,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names_parse_like_ovsdb_server() {
        assert_eq!(DbColumn::parse("ptcp:6641"), None);
        assert_eq!(
            DbColumn::parse("db:OVN_Northbound,NB_Global,connections"),
            Some(Ok(DbColumn {
                db: "OVN_Northbound".into(),
                table: "NB_Global".into(),
                column: "connections".into()
            }))
        );
        for bad in ["db:", "db:A,B", "db:A,B,C,D", "db:A,,C"] {
            assert!(
                matches!(DbColumn::parse(bad), Some(Err(DbColumnError::Syntax(_)))),
                "{bad}"
            );
        }
    }

    #[test]
    fn connection_rows_give_targets_and_options() {
        let row = serde_json::json!({
            "target": "pssl:6642", "inactivity_probe": 60000, "read_only": true,
            "role": "ovn-controller", "max_backoff": ["set", []]
        });
        assert_eq!(
            connection_row(&row),
            Some(DbListener {
                target: "pssl:6642".into(),
                row: None,
                probe_ms: Some(60000),
                read_only: true,
                role: Some("ovn-controller".into()),
            })
        );
        let bare = serde_json::json!({
            "target": "ptcp:6641", "inactivity_probe": ["set", []], "read_only": false,
            "role": ""
        });
        assert_eq!(
            connection_row(&bare),
            Some(DbListener {
                target: "ptcp:6641".into(),
                row: None,
                probe_ms: None,
                read_only: false,
                role: None,
            })
        );
        assert_eq!(connection_row(&serde_json::json!({"name": "x"})), None);
    }
}
