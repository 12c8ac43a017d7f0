//! The JSON-RPC methods (RFC 7047 §4.1 and the ovsdb-server extensions, docs/ovsdb-protocol.md
//! §2): argument checks with ovsdb-server's exact error replies, and dispatch to the backend,
//! the `_Server` database or the session's monitors.

use futures::future::{AbortHandle, Abortable};
use futures::FutureExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::backend::{BackendError, DbView, Transacted};
use crate::jsonrpc::{self, error_object, error_reply, reply, syntax_error};
use crate::monitor::{Monitor, MonitorVersion};
use crate::server_db::{ServerTxn, SERVER_DB};
use crate::session::{Done, LockEntry, Session};

/// Whether `s` is an OVSDB `<id>`: a letter or `_`, then letters, digits or `_`.
pub fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unknown_method(id: Value) -> Value {
    error_reply(id, Value::String("unknown method".into()))
}

impl Session {
    pub(crate) fn request(&mut self, id: Value, method: &str, params: Vec<Value>) {
        match method {
            "list_dbs" => {
                let mut names = self.ctx.backend.db_names();
                names.push(SERVER_DB.into());
                names.sort();
                names.dedup();
                self.send(reply(id, json!(names)));
            }
            "get_schema" => self.get_schema(id, params),
            "transact" => self.transact(id, params),
            "echo" => self.send(reply(id, Value::Array(params))),
            "get_server_id" => {
                let sid = self.ctx.server_id.to_string();
                self.send(reply(id, Value::String(sid)))
            }
            "set_db_change_aware" => match params.as_slice() {
                [Value::Bool(b)] => {
                    self.shared.state().change_aware = *b;
                    self.send(reply(id, json!({})));
                }
                _ => self.send(error_reply(
                    id,
                    syntax_error(
                        "set_db_change_aware: true or false parameter expected",
                        &Value::Array(params),
                    ),
                )),
            },
            "lock" | "steal" => self.lock(id, method, params),
            "unlock" => self.unlock(id, params),
            "monitor" | "monitor_cond" | "monitor_cond_since" => self.monitor(id, method, params),
            "monitor_cond_change" => self.monitor_cond_change(id, params),
            "monitor_cancel" => self.monitor_cancel(id, params),
            "convert" => self.convert(id, params),
            // Halyard's own: where this member's Raft side listens (`halyard status --remote
            // tcp:HOST:CLIENT_PORT` finds the member through its client address).
            "halyard_raft_address" => match self.ctx.backend.raft_address() {
                Some(addr) => self.send(reply(id, Value::String(addr))),
                None => self.send(unknown_method(id)),
            },
            _ => self.send(unknown_method(id)),
        }
    }

    /// Checks that params start with the name of a database. Returns it, or sends the error.
    fn db_param(&self, id: &Value, method: &str, params: &[Value]) -> Option<String> {
        let all = || Value::Array(params.to_vec());
        let Some(Value::String(db)) = params.first() else {
            self.send(error_reply(
                id.clone(),
                syntax_error(
                    &format!("{method} request params must begin with <db-name>"),
                    &all(),
                ),
            ));
            return None;
        };
        if db != SERVER_DB && !self.ctx.backend.db_names().iter().any(|n| n == db) {
            self.send(error_reply(
                id.clone(),
                error_object(
                    "unknown database",
                    Some(&format!("{method} request specifies unknown database {db}")),
                    Some(&all()),
                ),
            ));
            return None;
        }
        Some(db.clone())
    }

    fn not_available(&self, id: Value, method: &str, db: &str) {
        self.send(error_reply(id, not_available(method, db)));
    }

    fn get_schema(&mut self, id: Value, params: Vec<Value>) {
        let Some(db) = self.db_param(&id, "get_schema", &params) else {
            return;
        };
        if db == SERVER_DB {
            let schema = self.ctx.server_db.schema_json();
            self.send(reply(id, schema));
            return;
        }
        let mut schema = None;
        let found = self.ctx.backend.with_db(&db, &mut |v: &DbView<'_>| {
            schema = Some(v.db.schema().to_json())
        });
        match schema {
            Some(s) if found => self.send(reply(id, s)),
            _ => self.not_available(id, "get_schema", &db),
        }
    }

    fn transact(&mut self, id: Value, params: Vec<Value>) {
        let Some(db) = self.db_param(&id, "transact", &params) else {
            return;
        };
        let key = jsonrpc::to_sorted_string(&id);
        if self.pending_ids.contains_key(&key) {
            self.send(error_reply(
                id,
                syntax_error("transact: duplicate request ID", &Value::Array(params)),
            ));
            return;
        }
        let ops: Vec<Value> = params.into_iter().skip(1).collect();
        let n_ops = ops.len();
        let fut = if db == SERVER_DB {
            self.server_transact(ops)
        } else if self.shared.options.read_only && !ovsdb::is_read_only_transaction(&ops) {
            self.read_only_transact(db.clone(), ops)
        } else {
            self.replicated_transact(db.clone(), ops)
        };
        let (handle, reg) = AbortHandle::new_pair();
        self.pending_ids
            .insert(key.clone(), (id.clone(), db, handle));
        self.park(
            Abortable::new(fut, reg)
                .map(move |r| match r {
                    Ok(Err(BackendError::Retry(details))) => Done::Transact {
                        id,
                        key,
                        result: Ok(crate::session::retry_result(&details, n_ops)),
                    },
                    Ok(result) => Done::Transact { id, key, result },
                    Err(_) => Done::Cancelled,
                })
                .boxed(),
        );
    }

    /// `transact` on a replicated database, re-run while a `wait` blocks it.
    fn replicated_transact(
        &self,
        db: String,
        ops: Vec<Value>,
    ) -> futures::future::BoxFuture<'static, Result<Value, BackendError>> {
        let ops = std::sync::Arc::new(ops);
        let ctx = self.ctx.clone();
        let (key, rbac) = (self.shared.key, self.shared.options.rbac());
        async move {
            crate::trigger::until_unblocked(&ctx.hub.data_changed, |elapsed| {
                ctx.backend
                    .transact(db.clone(), ops.clone(), key, rbac.clone(), elapsed)
            })
            .await
        }
        .boxed()
    }

    /// A transaction that may write, from a session of a read-only listener
    /// (`Connection.read_only`): run here on a copy of the current state, after a read barrier,
    /// so its reads are current and its first write op fails as ovsdb-server fails it ("not
    /// allowed ... read only mode"); nothing reaches the log. A `wait` before that op that does
    /// not hold yet blocks as it would in ovsdb-server (see `trigger`).
    fn read_only_transact(
        &self,
        db: String,
        ops: Vec<Value>,
    ) -> futures::future::BoxFuture<'static, Result<Value, BackendError>> {
        let ctx = self.ctx.clone();
        let shared = self.shared.clone();
        async move {
            crate::trigger::until_unblocked(&ctx.hub.data_changed, |elapsed| {
                let (ctx, shared, db, ops) = (ctx.clone(), shared.clone(), db.clone(), ops.clone());
                async move {
                    ctx.backend.read_barrier().await?;
                    let mut outcome = None;
                    ctx.backend.with_db(&db, &mut |view: &DbView<'_>| {
                        let has_lock = |name: &str| shared.has_lock(name);
                        let mut env = crate::server_db::Env {
                            has_lock: &has_lock,
                            wait_elapsed_ms: elapsed,
                        };
                        let mut copy = view.db.clone();
                        outcome = Some(copy.transact_read_only(&ops, &mut env));
                    });
                    match outcome {
                        Some(o) if o.blocked => Ok(Transacted::Blocked {
                            retry_in_ms: o.retry_in_ms,
                        }),
                        Some(o) => Ok(Transacted::Done(o.result)),
                        // No such database: the backend gives the error a client expects.
                        None => {
                            let rbac = shared.options.rbac();
                            ctx.backend
                                .transact(db, std::sync::Arc::new(ops), shared.key, rbac, elapsed)
                                .await
                        }
                    }
                }
            })
            .await
        }
        .boxed()
    }

    /// `transact` on `_Server`, answered by this process, re-run after every refresh of
    /// `_Server` while a `wait` blocks it.
    fn server_transact(
        &self,
        ops: Vec<Value>,
    ) -> futures::future::BoxFuture<'static, Result<Value, BackendError>> {
        let ctx = self.ctx.clone();
        let shared = self.shared.clone();
        async move {
            let _reading = ServerReader::new(&ctx.hub);
            crate::trigger::until_unblocked(&ctx.hub.server_db_refreshed, |elapsed| {
                crate::server::ensure_fresh(&ctx);
                let has_lock = |name: &str| shared.has_lock(name);
                let txn = ServerTxn {
                    has_lock: &has_lock,
                    wait_elapsed_ms: elapsed,
                };
                let outcome = match ctx.server_db.transact(&ops, &txn) {
                    Ok(result) => Transacted::Done(result),
                    Err(retry_in_ms) => Transacted::Blocked { retry_in_ms },
                };
                async move { Ok(outcome) }
            })
            .await
        }
        .boxed()
    }

    /// `convert` (§2.12), with ovsdb-server's checks in its order: the database name, two
    /// params, a valid schema, a matching name. Unlike 3.1, `_Server` cannot be converted.
    fn convert(&mut self, id: Value, params: Vec<Value>) {
        let Some(db) = self.db_param(&id, "convert", &params) else {
            return;
        };
        // ovsdb-server's order (`ovsdb/trigger.c`): the role, read-only, then the params.
        if let Some(rbac) = self.shared.options.rbac() {
            if let Err(e) = rbac.as_identity().check_convert(&db) {
                self.send(error_reply(id, e.to_json()));
                return;
            }
        }
        if self.shared.options.read_only {
            let details = format!("conversion is not allowed for read-only database {db}");
            self.send(error_reply(
                id,
                error_object("not allowed", Some(&details), None),
            ));
            return;
        }
        let all = Value::Array(params.clone());
        if params.len() != 2 {
            self.send(error_reply(id, syntax_error("array expected", &all)));
            return;
        }
        let schema = match ovsdb::DatabaseSchema::from_json(&params[1]) {
            Ok(s) => s,
            Err(e) => {
                self.send(error_reply(id, e.to_json()));
                return;
            }
        };
        if schema.name() != db {
            let details = format!(
                "new schema name ({}) does not match database name ({db})",
                schema.name()
            );
            self.send(error_reply(
                id,
                error_object("invalid parameters", Some(&details), None),
            ));
            return;
        }
        if db == SERVER_DB {
            let details = "convert operation not allowed on reserved database _Server";
            self.send(error_reply(
                id,
                error_object("not allowed", Some(details), None),
            ));
            return;
        }
        let fut = self.ctx.backend.convert(db, params[1].clone());
        self.park(
            fut.map(move |r| {
                Done::Reply(match r {
                    Ok(Ok(())) => reply(id, json!({})),
                    Ok(Err(e)) => error_reply(id, e),
                    Err(e) => {
                        error_reply(id, crate::session::backend_error(&e, "convert", Some(&all)))
                    }
                })
            })
            .boxed(),
        );
    }

    fn lock_name(&self, id: &Value, method: &str, params: &[Value]) -> Option<String> {
        match params {
            [Value::String(name)] if is_id(name) => Some(name.clone()),
            _ => {
                self.send(error_reply(
                    id.clone(),
                    syntax_error(
                        &format!("{method} request params must be <id>"),
                        &Value::Array(params.to_vec()),
                    ),
                ));
                None
            }
        }
    }

    fn lock(&mut self, id: Value, method: &str, params: Vec<Value>) {
        let Some(name) = self.lock_name(&id, method, &params) else {
            return;
        };
        let steal = method == "steal";
        {
            let mut st = self.shared.state();
            if st.locks.contains_key(&name) {
                drop(st);
                self.send(error_reply(
                    id,
                    syntax_error(
                        &format!("must issue \"unlock\" before new \"{method}\""),
                        &Value::Array(params),
                    ),
                ));
                return;
            }
            st.locks.insert(
                name.clone(),
                LockEntry {
                    owned: false,
                    in_flight: true,
                    deferred: Vec::new(),
                },
            );
        }
        let fut = self.ctx.backend.lock(self.shared.key, name.clone(), steal);
        let hub = self.ctx.hub.clone();
        let fut = async move {
            let result = fut.await;
            hub.lock_notices_written().await;
            result
        };
        let params = Value::Array(params);
        self.park(
            fut.map(move |result| Done::Lock {
                id,
                name,
                params,
                result,
            })
            .boxed(),
        );
    }

    fn unlock(&mut self, id: Value, params: Vec<Value>) {
        let Some(name) = self.lock_name(&id, "unlock", &params) else {
            return;
        };
        if self.shared.state().locks.remove(&name).is_none() {
            self.send(error_reply(
                id,
                syntax_error(
                    "unlock: \"unlock\" without \"lock\" or \"steal\"",
                    &Value::Array(params),
                ),
            ));
            return;
        }
        let fut = self.ctx.backend.unlock(self.shared.key, name);
        let hub = self.ctx.hub.clone();
        let fut = async move {
            let result = fut.await;
            hub.lock_notices_written().await;
            result
        };
        let params = Value::Array(params);
        self.park(
            fut.map(move |result| Done::Unlock { id, params, result })
                .boxed(),
        );
    }

    fn monitor(&mut self, id: Value, method: &str, params: Vec<Value>) {
        let version = MonitorVersion::for_method(method).expect("monitor method");
        let Some(db) = self.db_param(&id, method, &params) else {
            return;
        };
        // ovsdb-server 3.1 checks the count only for monitor_cond and monitor_cond_since: a
        // v1 `monitor` ignores extra params, and with fewer than 3 it reads past the array and
        // crashes, where Halyard answers as monitor_cond does.
        let count_ok = match version {
            MonitorVersion::V1 => params.len() >= 3,
            MonitorVersion::V2 => params.len() == 3,
            MonitorVersion::V3 => params.len() == 4,
        };
        if !count_ok {
            self.send(error_reply(
                id,
                syntax_error("invalid parameters", &Value::Array(params)),
            ));
            return;
        }
        // The checks below come in ovsdb-server's order (ovsdb_jsonrpc_monitor_create): the
        // requests' type, the monitor id, each table's requests (in `register`), then the
        // last transaction id.
        if !params[2].is_object() {
            self.send(error_reply(
                id,
                syntax_error("monitor-requests must be object", &params[2]),
            ));
            return;
        }
        let mon_id = params[1].clone();
        if self.shared.state().monitors.iter().any(|m| m.id == mon_id) {
            self.send(error_reply(
                id,
                syntax_error("duplicate monitor ID", &mon_id),
            ));
            return;
        }
        let (last_txn, last_txn_error) =
            match params.get(3).filter(|_| version == MonitorVersion::V3) {
                None => (None, None),
                Some(Value::String(s)) => match Uuid::parse_str(s) {
                    Ok(u) => (Some(u), None),
                    Err(_) => (
                        None,
                        Some(syntax_error("last-txn-id must be UUID format.", &params[3])),
                    ),
                },
                Some(other) => (
                    None,
                    Some(syntax_error("last-txn-id must be string", other)),
                ),
            };
        let setup = MonitorSetup {
            id: id.clone(),
            version,
            db: db.clone(),
            mon_id,
            requests: params[2].clone(),
            last_txn_error,
            shared: self.shared.clone(),
            hub: self.ctx.hub.clone(),
        };
        if db == SERVER_DB {
            // `_Server` keeps no history: always `found=false` with the all-zero id.
            crate::server::ensure_fresh(&self.ctx);
            let outcome = self
                .ctx
                .server_db
                .with_db(|state| setup.register(state, Uuid::nil(), None));
            // An index that moved while this monitor registered may have found no watcher and
            // only marked `_Server` stale: the refresh's changes now reach this monitor.
            crate::server::ensure_fresh(&self.ctx);
            if let Err(e) = outcome {
                self.send(error_reply(id, e));
            }
            return;
        }
        // The initial contents must not be older than a write acknowledged anywhere before this
        // request (clients such as ovn-nbctl read them as the database): pass a read barrier
        // first, as read-only transactions do.
        let backend = self.ctx.backend.clone();
        let method = method.to_string();
        self.park(
            async move {
                if let Err(e) = backend.read_barrier().await {
                    let err = crate::session::backend_error(&e, &method, None);
                    return Done::Reply(error_reply(id, err));
                }
                // Registering may take seconds (building a large database's initial contents,
                // or waiting for another session's build of them to share it): on the blocking
                // pool, so this session meanwhile reads (a reply to the server's inactivity
                // probe) and writes, and the runtime's other sessions are not held up. (Run on
                // the session's own task, a storm of 1,000 clients held both of a member's
                // session threads for two builds, and sessions that could not read their
                // client's probe reply were closed.)
                let outcome = {
                    let db = db.clone();
                    let registered = tokio::task::spawn_blocking(move || {
                        let mut outcome = None;
                        backend.with_db(&db, &mut |v: &DbView<'_>| {
                            let since = last_txn.and_then(|t| {
                                if t == v.last_txn_id {
                                    Some(Vec::new())
                                } else {
                                    v.history.since(&t)
                                }
                            });
                            outcome = Some(setup.register(v.db, v.last_txn_id, since));
                        });
                        outcome
                    })
                    .await;
                    match registered {
                        Ok(outcome) => outcome,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        // The runtime is shutting down.
                        Err(_) => return Done::Cancelled,
                    }
                };
                match outcome {
                    Some(Ok(())) => Done::Cancelled,
                    Some(Err(e)) => Done::Reply(error_reply(id, e)),
                    None => Done::Reply(error_reply(id, not_available(&method, &db))),
                }
            }
            .boxed(),
        );
    }

    fn monitor_cancel(&mut self, id: Value, params: Vec<Value>) {
        let [mon_id] = params.as_slice() else {
            self.send(error_reply(id, Value::String("invalid parameters".into())));
            return;
        };
        let mut st = self.shared.state();
        let Some(pos) = st.monitors.iter().position(|m| &m.id == mon_id) else {
            drop(st);
            self.send(error_reply(id, Value::String("unknown monitor".into())));
            return;
        };
        let m = st.monitors.remove(pos);
        let last_on_db = !st.monitors.iter().any(|x| x.db == m.db);
        drop(st);
        if last_on_db {
            self.ctx.hub.set_monitoring(&m.db, &self.shared, false);
        }
        self.send(reply(id, json!({})));
    }

    fn monitor_cond_change(&mut self, id: Value, params: Vec<Value>) {
        let [old_id, new_id, requests] = params.as_slice() else {
            self.send(error_reply(
                id,
                syntax_error("invalid parameters", &Value::Array(params)),
            ));
            return;
        };
        let db = {
            let st = self.shared.state();
            let Some(m) = st.monitors.iter().find(|m| &m.id == old_id) else {
                drop(st);
                self.send(error_reply(
                    id,
                    syntax_error("unknown monitor session", old_id),
                ));
                return;
            };
            if old_id != new_id && st.monitors.iter().any(|m| &m.id == new_id) {
                drop(st);
                self.send(error_reply(
                    id,
                    syntax_error("duplicate monitor ID", new_id),
                ));
                return;
            }
            m.db.clone()
        };
        let shared = self.shared.clone();
        let mut answered = false;
        let mut change = |state: &ovsdb::Database, txn_id: Uuid| {
            answered = true;
            let mut st = shared.state();
            let Some(m) = st.monitors.iter_mut().find(|m| &m.id == old_id) else {
                return;
            };
            match m.change_conditions(state, requests) {
                Ok(updates) => {
                    m.id = new_id.clone();
                    if let Some(u) = updates {
                        shared.out.push(&m.wrap(txn_id, u));
                    }
                    shared.out.push(&reply(id.clone(), json!({})));
                }
                Err(e) => {
                    shared.out.push(&error_reply(id.clone(), e.to_json()));
                }
            }
        };
        if db == SERVER_DB {
            crate::server::ensure_fresh(&self.ctx);
            self.ctx.server_db.with_db(|s| change(s, Uuid::nil()));
        } else {
            self.ctx
                .backend
                .with_db(&db, &mut |v: &DbView<'_>| change(v.db, v.last_txn_id));
        }
        if !answered {
            self.send(error_reply(id, Value::String("canceled".into())));
        }
    }
}

fn not_available(method: &str, db: &str) -> Value {
    error_object(
        "database not available",
        Some(&format!(
            "{method} request specifies database {db} which is not yet available because it has not completed joining its cluster"
        )),
        None,
    )
}

/// A monitor request that passed its argument checks, ready to be compiled, answered and
/// registered in one step under the state lock, so the reply holds exactly the state before the
/// first update the monitor will send.
struct MonitorSetup {
    id: Value,
    version: MonitorVersion,
    db: String,
    mon_id: Value,
    requests: Value,
    /// A `monitor_cond_since` whose last transaction id is unusable: refused once the requests
    /// have parsed, since ovsdb-server reports a bad request before a bad id.
    last_txn_error: Option<Value>,
    shared: std::sync::Arc<crate::session::SessionShared>,
    hub: std::sync::Arc<crate::hub::Hub>,
}

impl MonitorSetup {
    fn register(
        &self,
        db_state: &ovsdb::Database,
        last_id: Uuid,
        since: Option<Vec<(Uuid, std::sync::Arc<ovsdb::ChangeSet>)>>,
    ) -> Result<(), Value> {
        let compiled =
            ovsdb::monitor::Monitor::new(db_state.schema(), self.version, &self.requests)
                .map_err(|e| e.to_json())?;
        if let Some(e) = &self.last_txn_error {
            return Err(e.clone());
        }
        let mut st = self.shared.state();
        // Checked again here: another request may have taken the id while this one waited.
        if st.monitors.iter().any(|m| m.id == self.mon_id) {
            return Err(syntax_error("duplicate monitor ID", &self.mon_id));
        }
        let fingerprint = crate::monitor::fingerprint(&compiled);
        let compiled = std::sync::Arc::new(compiled);
        match (self.version, since) {
            (MonitorVersion::V3, Some(changes)) => {
                let result = json!([
                    true,
                    last_id.to_string(),
                    compiled.since(changes.iter().map(|(_, c)| &**c))
                ]);
                self.shared.out.push(&reply(self.id.clone(), result));
            }
            // `_Server` has no transaction ids to tell its versions apart: not shared.
            (version, _) if last_id.is_nil() => {
                let initial = compiled.initial(db_state);
                let result = if version == MonitorVersion::V3 {
                    json!([false, last_id.to_string(), initial])
                } else {
                    initial
                };
                self.shared.out.push(&reply(self.id.clone(), result));
            }
            (version, _) => {
                let initial =
                    self.hub
                        .initial_contents(&self.db, last_id, &compiled, fingerprint, || {
                            compiled.initial_json(db_state)
                        });
                let since = (version == MonitorVersion::V3).then_some(last_id);
                self.shared
                    .out
                    .push_chunks(crate::monitor::initial_reply(&self.id, since, initial));
            }
        }
        let first_on_db = !st.monitors.iter().any(|m| m.db == self.db);
        st.monitors.push(Monitor::shared(
            self.mon_id.clone(),
            self.db.clone(),
            compiled,
            fingerprint,
        ));
        drop(st);
        if first_on_db {
            self.hub.set_monitoring(&self.db, &self.shared, true);
        }
        Ok(())
    }
}

/// Counts a `_Server` transaction in `Hub::server_readers` while it runs or waits.
struct ServerReader(std::sync::Arc<crate::hub::Hub>);

impl ServerReader {
    fn new(hub: &std::sync::Arc<crate::hub::Hub>) -> ServerReader {
        hub.server_readers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ServerReader(hub.clone())
    }
}

impl Drop for ServerReader {
    fn drop(&mut self) {
        self.0
            .server_readers
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        for (s, ok) in [
            ("ovn_northd", true),
            ("_x1", true),
            ("L", true),
            ("9x", false),
            ("", false),
            ("a-b", false),
            ("é", false),
        ] {
            assert_eq!(super::is_id(s), ok, "{s}");
        }
    }
}
