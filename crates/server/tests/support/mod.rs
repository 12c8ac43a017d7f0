//! TEST FIXTURE, not a product backend: a single-process `Backend` that applies each
//! transaction directly to an `ovsdb::Database` (no Raft, no durability), with an in-memory
//! lock table following ovsdb-server's lock rules. It exists so the front end's session tests
//! have something real to talk to; the product backend is `crates/raft`.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use halyard_server::framing::Framer;
use halyard_server::{
    ApplyHook, Backend, BackendError, DbView, LockEvent, Server, ServerConfig, ServerDbStatus,
    SessionKey, Transacted, TxnHistory,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use uuid::Uuid;

pub const TEST_SCHEMA: &str = r#"{"name":"T","version":"1.0.0","tables":{"A":{"columns":{"s":{"type":"string"},"n":{"type":"integer"}}}}}"#;

struct Db {
    db: ovsdb::Database,
    last_txn_id: Uuid,
    history: Vec<(Uuid, Arc<ovsdb::ChangeSet>)>,
}

struct History<'a>(&'a [(Uuid, Arc<ovsdb::ChangeSet>)]);

impl TxnHistory for History<'_> {
    fn since(&self, txn_id: &Uuid) -> Option<Vec<(Uuid, Arc<ovsdb::ChangeSet>)>> {
        let pos = self.0.iter().position(|(id, _)| id == txn_id)?;
        Some(self.0[pos + 1..].to_vec())
    }
}

#[derive(Default)]
struct State {
    dbs: BTreeMap<String, Db>,
    /// Per lock: the owner first, then waiters; `bool` = obtained by `steal`.
    locks: BTreeMap<String, VecDeque<(SessionKey, bool)>>,
}

#[derive(Default)]
pub struct TestBackend {
    state: RwLock<State>,
    hook: Mutex<Option<Arc<dyn ApplyHook>>>,
    index: AtomicI64,
    /// Sessions the front end reported closed, in order.
    pub closed: Mutex<Vec<SessionKey>>,
    pub cid: Uuid,
    pub sid: Uuid,
}

struct Env<'a> {
    session: SessionKey,
    locks: &'a BTreeMap<String, VecDeque<(SessionKey, bool)>>,
    wait_elapsed_ms: u64,
}

impl ovsdb::TxnEnv for Env<'_> {
    fn new_uuid(&mut self) -> Uuid {
        Uuid::new_v4()
    }
    fn has_lock(&self, lock: &str) -> bool {
        self.locks
            .get(lock)
            .and_then(|q| q.front())
            .is_some_and(|(s, _)| *s == self.session)
    }
    fn wait_elapsed_ms(&self) -> u64 {
        self.wait_elapsed_ms
    }
}

impl TestBackend {
    pub fn new(schemas: &[&str]) -> Arc<TestBackend> {
        let b = Arc::new(TestBackend {
            cid: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            ..Default::default()
        });
        {
            let mut st = b.state.write().unwrap();
            for s in schemas {
                let v: Value = serde_json::from_str(s).unwrap();
                let schema = Arc::new(ovsdb::DatabaseSchema::from_json(&v).unwrap());
                st.dbs.insert(
                    schema.name().to_string(),
                    Db {
                        db: ovsdb::Database::new(schema),
                        last_txn_id: Uuid::nil(),
                        history: Vec::new(),
                    },
                );
            }
        }
        b
    }

    fn hook(&self) -> Option<Arc<dyn ApplyHook>> {
        self.hook.lock().unwrap().clone()
    }

    fn apply(
        &self,
        db: &str,
        ops: &[Value],
        session: SessionKey,
        wait_elapsed_ms: u64,
    ) -> Result<Transacted, BackendError> {
        let mut st = self.state.write().unwrap();
        let State { dbs, locks } = &mut *st;
        let d = dbs
            .get_mut(db)
            .ok_or_else(|| BackendError::UnknownDatabase(db.into()))?;
        let out = d.db.transact(
            ops,
            &mut Env {
                session,
                locks,
                wait_elapsed_ms,
            },
        );
        if out.blocked {
            return Ok(Transacted::Blocked {
                retry_in_ms: out.retry_in_ms,
            });
        }
        if let Some(changes) = out.changes {
            let id = Uuid::new_v4();
            let changes = Arc::new(changes);
            d.last_txn_id = id;
            d.history.push((id, changes.clone()));
            self.index.fetch_add(1, Ordering::SeqCst);
            if let Some(h) = self.hook() {
                h.applied(db, &d.db, id, &changes);
                // As the member's observer does: `_Server` is refreshed at once only if watched.
                h.server_index_changed();
            }
        }
        Ok(Transacted::Done(out.result))
    }

    /// Replaces `db` by an empty database with the same schema, as a conversion or a snapshot
    /// install would, and tells the hook.
    pub fn replace_db(&self, db: &str) {
        let mut st = self.state.write().unwrap();
        let d = st.dbs.get_mut(db).unwrap();
        d.db = ovsdb::Database::new(d.db.schema().clone());
        d.history.clear();
        d.last_txn_id = Uuid::new_v4();
        if let Some(h) = self.hook() {
            h.database_replaced(db);
        }
    }

    fn release(&self, session: SessionKey, only: Option<&str>) -> bool {
        let hook = self.hook();
        let mut st = self.state.write().unwrap();
        let mut found = false;
        for (name, q) in st.locks.iter_mut() {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let Some(pos) = q.iter().position(|(s, _)| *s == session) else {
                continue;
            };
            found = true;
            q.remove(pos);
            if pos == 0 {
                if let (Some((next, _)), Some(h)) = (q.front(), &hook) {
                    h.lock_event(*next, name, LockEvent::Locked);
                }
            }
        }
        st.locks.retain(|_, q| !q.is_empty());
        found
    }
}

impl Backend for TestBackend {
    fn db_names(&self) -> Vec<String> {
        self.state.read().unwrap().dbs.keys().cloned().collect()
    }

    fn with_db(&self, db: &str, f: &mut dyn FnMut(&DbView<'_>)) -> bool {
        let st = self.state.read().unwrap();
        let Some(d) = st.dbs.get(db) else {
            return false;
        };
        f(&DbView {
            db: &d.db,
            last_txn_id: d.last_txn_id,
            history: &History(&d.history),
        });
        true
    }

    fn set_apply_hook(&self, hook: Arc<dyn ApplyHook>) {
        *self.hook.lock().unwrap() = Some(hook);
    }

    fn transact(
        &self,
        db: String,
        ops: Arc<Vec<Value>>,
        session: SessionKey,
        _rbac: Option<ovsdb::RbacIdentityBuf>,
        wait_elapsed_ms: u64,
    ) -> BoxFuture<'static, Result<Transacted, BackendError>> {
        // The fixture applies at once; the front end re-runs a blocked `wait`.
        let result = self.apply(&db, &ops, session, wait_elapsed_ms);
        async move { result }.boxed()
    }

    fn read_barrier(&self) -> BoxFuture<'static, Result<(), BackendError>> {
        // The fixture applies everything synchronously: its state is always current.
        async { Ok(()) }.boxed()
    }

    fn convert(
        &self,
        db: String,
        schema: Value,
    ) -> BoxFuture<'static, Result<Result<(), Value>, BackendError>> {
        let result = (|| {
            let schema = ovsdb::DatabaseSchema::from_json(&schema).map_err(|e| e.to_json())?;
            let mut st = self.state.write().unwrap();
            let d = st
                .dbs
                .get_mut(&db)
                .ok_or_else(|| Value::String("unknown database".into()))?;
            let mut env = ovsdb::SeqEnv::default();
            d.db =
                d.db.convert(Arc::new(schema), &mut env)
                    .map_err(|e| e.to_json())?;
            d.history.clear();
            d.last_txn_id = Uuid::new_v4();
            drop(st);
            if let Some(h) = self.hook() {
                h.database_replaced(&db);
                h.server_status_changed();
            }
            Ok(())
        })();
        async move { Ok(result) }.boxed()
    }

    fn lock(
        &self,
        session: SessionKey,
        name: String,
        steal: bool,
    ) -> BoxFuture<'static, Result<bool, BackendError>> {
        let hook = self.hook();
        let mut st = self.state.write().unwrap();
        let q = st.locks.entry(name.clone()).or_default();
        let owned = if q.is_empty() {
            q.push_back((session, steal));
            true
        } else if steal {
            let (victim, victim_stole) = *q.front().unwrap();
            if victim_stole {
                q.pop_front();
            }
            q.push_front((session, true));
            if let Some(h) = hook {
                h.lock_event(victim, &name, LockEvent::Stolen);
            }
            true
        } else {
            q.push_back((session, false));
            false
        };
        futures::future::ready(Ok(owned)).boxed()
    }

    fn unlock(
        &self,
        session: SessionKey,
        name: String,
    ) -> BoxFuture<'static, Result<(), BackendError>> {
        self.release(session, Some(&name));
        futures::future::ready(Ok(())).boxed()
    }

    fn session_closed(&self, session: SessionKey) {
        self.release(session, None);
        self.closed.lock().unwrap().push(session);
    }

    fn server_rows(&self) -> Vec<ServerDbStatus> {
        let st = self.state.read().unwrap();
        st.dbs
            .values()
            .map(|d| ServerDbStatus {
                name: d.db.schema().name().to_string(),
                model: "clustered".into(),
                connected: true,
                leader: true,
                schema: Some(halyard_server::server_db::schema_column_text(
                    &d.db.schema().to_json(),
                )),
                cid: Some(self.cid),
                sid: Some(self.sid),
                index: Some(self.index.load(Ordering::SeqCst)),
            })
            .collect()
    }
}

/// A client speaking raw JSON-RPC over an in-memory pipe.
pub struct Client {
    rd: ReadHalf<DuplexStream>,
    wr: WriteHalf<DuplexStream>,
    framer: Framer,
    next_id: i64,
}

pub fn config() -> ServerConfig {
    ServerConfig::default()
}

/// Starts a session on a fresh pipe. `probe`: as for TCP.
pub fn connect(server: &Arc<Server>, probe: bool) -> Client {
    connect_with_buffer(server, probe, 1 << 20)
}

pub fn connect_with_buffer(server: &Arc<Server>, probe: bool, buf: usize) -> Client {
    let (c, s) = tokio::io::duplex(buf);
    let server = server.clone();
    tokio::spawn(async move { server.serve_connection(s, "test".into(), probe).await });
    let (rd, wr) = tokio::io::split(c);
    Client {
        rd,
        wr,
        framer: Framer::new(1 << 30),
        next_id: 100,
    }
}

impl Client {
    /// Inserts an empty row into `T.A` and waits for the reply.
    pub async fn insert_a(&mut self) {
        self.ok(
            "transact",
            json!(["T", {"op":"insert","table":"A","row":{}}]),
        )
        .await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // The server may already have closed; that is what some tests check.
        let _ = self.wr.write_all(bytes).await;
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(&serde_json::to_vec(&v).unwrap()).await
    }

    /// The next message, or None on EOF. Panics after 10 s (virtual time in paused tests).
    pub async fn recv(&mut self) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(30), self.recv_inner())
            .await
            .expect("timed out waiting for a message")
    }

    async fn recv_inner(&mut self) -> Option<Value> {
        loop {
            if let Some(v) = self.framer.next_message().unwrap() {
                return Some(v);
            }
            let buf = self.framer.buffer_mut();
            buf.reserve(4096);
            match self.rd.read_buf(buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends a request with a fresh id and returns the first message with that id (anything
    /// received before it is returned in the Vec, in order).
    pub async fn call(&mut self, method: &str, params: Value) -> (Value, Vec<Value>) {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(json!({"id": id, "method": method, "params": params}))
            .await;
        let mut before = Vec::new();
        loop {
            let m = self.recv().await.expect("connection closed");
            if m["id"] == id {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Sends a request and returns the `result`, panicking on an error reply.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let (m, _) = self.call(method, params).await;
        assert!(m.get("error").is_some_and(Value::is_null), "{method}: {m}");
        m["result"].clone()
    }

    /// Reads at most `max` bytes (kept for `recv`); 0 on EOF.
    pub async fn read_some(&mut self, max: usize) -> usize {
        let mut chunk = vec![0u8; max];
        match self.rd.read(&mut chunk).await {
            Ok(n) => {
                self.framer.buffer_mut().extend_from_slice(&chunk[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// True if the server closed the connection (EOF), skipping any messages before it.
    pub async fn closed(&mut self) -> bool {
        loop {
            match self.recv().await {
                None => return true,
                Some(m) if m["id"] == json!("echo") => continue,
                Some(_) => return false,
            }
        }
    }
}
