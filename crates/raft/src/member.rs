//! A member of a Halyard cluster: its Raft node, its replicated state, and the client-facing
//! operations the front end calls (transactions, locks, read barriers, status).
//!
//! The path of a write (architecture): the command gets its id here, is proposed (or, on a
//! follower, forwarded to the leader), and the caller is answered only once THIS member has
//! applied it, after the observer queued the monitor updates. While there is no leader the
//! proposal is retried with backoff up to `MemberConfig::write_wait`: clients see a pause, not an
//! error. Read-only transactions go through a read barrier and execute locally.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use serde_json::Value;
use uuid::Uuid;

use crate::command::{Command, CommandKind, Outcome};
use crate::config::MemberConfig;
use crate::network::Network;
use crate::state::{ApplyObserver, ReplicatedState};
use crate::state_machine::{Shared, StateMachine};
use crate::types::{NodeId, Raft};

/// Identity of a member, written once into its data directory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub cluster_id: Uuid,
    pub server_id: Uuid,
    pub node_id: NodeId,
    pub raft_addr: String,
}

const META_IDENTITY: &str = "identity";
/// The schema(s) a freshly created cluster still has to propose (cleared once committed).
const META_BOOTSTRAP: &str = "bootstrap";

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{0}")]
    Storage(#[from] halyard_storage::StorageError),
    #[error("data directory {0} holds no Halyard member; create one with `halyard create-cluster`")]
    NotCreated(String),
    #[error("data directory {0} already holds a member of cluster {1}; refusing to overwrite it")]
    AlreadyCreated(String, Uuid),
    #[error("invalid schema: {0}")]
    Schema(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no leader could commit the write within {0:?}")]
    NoLeader(Duration),
    #[error("unknown database {0}")]
    UnknownDb(String),
    #[error("the member is shutting down")]
    ShuttingDown,
}

/// What `_Server` and the status commands report about this member.
#[derive(Clone, Debug)]
pub struct MemberStatus {
    pub identity: Identity,
    pub state: ServerState,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub applied_index: u64,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    /// Hears a leader (and so can commit writes and serve linearizable reads).
    pub connected: bool,
}

pub struct Member {
    identity: Identity,
    raft: Raft,
    shared: Arc<Shared>,
    config: MemberConfig,
}

impl Member {
    /// `halyard create-cluster`: prepares `data_dir` as the first member of a new cluster that
    /// will serve `schemas` (parsed and validated here so a bad schema fails now, not at serve).
    pub fn create_cluster(data_dir: &Path, schemas: &[Value], raft_addr: &str) -> Result<Identity, MemberError> {
        for s in schemas {
            ovsdb::DatabaseSchema::from_json(s).map_err(|e| MemberError::Schema(e.to_string()))?;
        }
        let store = halyard_storage::Store::open(data_dir, crate::config::DEFAULT_STORAGE_CACHE_BYTES)?;
        let meta = store.meta();
        if let Some(existing) = meta.get::<Identity>(META_IDENTITY)? {
            return Err(MemberError::AlreadyCreated(data_dir.display().to_string(), existing.cluster_id));
        }
        let server_id = Uuid::new_v4();
        let identity = Identity {
            cluster_id: Uuid::new_v4(),
            server_id,
            node_id: server_id.as_u64_pair().0,
            raft_addr: raft_addr.to_string(),
        };
        let texts: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
        meta.put(META_BOOTSTRAP, &texts)?;
        meta.put(META_IDENTITY, &identity)?;
        Ok(identity)
    }

    /// `halyard serve`: opens the member in `data_dir` and starts its Raft node.
    pub async fn start(data_dir: &Path, config: MemberConfig) -> Result<Arc<Member>, MemberError> {
        let store = halyard_storage::Store::open(data_dir, config.storage_cache_bytes)?;
        let meta = store.meta();
        let identity: Identity =
            meta.get(META_IDENTITY)?.ok_or_else(|| MemberError::NotCreated(data_dir.display().to_string()))?;
        let (sm, shared) = StateMachine::open(store.snapshot_store()).map_err(|e| MemberError::Raft(e.to_string()))?;
        let raft_config = Arc::new(
            config
                .raft_config(identity.cluster_id.to_string())
                .validate()
                .map_err(|e| MemberError::Raft(e.to_string()))?,
        );
        let raft = Raft::new(identity.node_id, raft_config, Network::default(), store.log_store(), sm)
            .await
            .map_err(|e| MemberError::Raft(e.to_string()))?;
        let member = Arc::new(Member { identity, raft, shared, config });
        let bootstrap: Option<Vec<String>> = meta.get(META_BOOTSTRAP)?;
        if let Some(schemas) = bootstrap {
            member.bootstrap(&schemas).await?;
            meta.remove(META_BOOTSTRAP)?;
        }
        Ok(member)
    }

    async fn bootstrap(&self, schemas: &[String]) -> Result<(), MemberError> {
        let me = BTreeMap::from([(self.identity.node_id, BasicNode::new(&self.identity.raft_addr))]);
        if !self.raft.is_initialized().await.map_err(|e| MemberError::Raft(e.to_string()))? {
            self.raft.initialize(me).await.map_err(|e| MemberError::Raft(e.to_string()))?;
        }
        for schema in schemas {
            let kind = CommandKind::CreateDb { schema: schema.clone() };
            self.propose(kind).await?;
        }
        tracing::info!(cluster = %self.identity.cluster_id, "cluster bootstrapped");
        Ok(())
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn set_observer(&self, observer: Arc<dyn ApplyObserver>) {
        self.shared.set_observer(observer);
    }

    /// Runs `f` on the applied state, atomically with respect to applies.
    pub fn with_state<R>(&self, f: impl FnOnce(&ReplicatedState) -> R) -> R {
        f(&self.shared.state.read().unwrap())
    }

    pub fn db_names(&self) -> Vec<String> {
        self.with_state(|s| s.dbs.keys().cloned().collect())
    }

    /// Proposes `kind` under a fresh id and waits until this member applied it.
    async fn propose(&self, kind: CommandKind) -> Result<Outcome, MemberError> {
        self.propose_as(Uuid::new_v4(), kind).await
    }

    async fn propose_as(&self, id: Uuid, kind: CommandKind) -> Result<Outcome, MemberError> {
        let cmd = Command { id, origin: self.identity.node_id, kind };
        let applied = self.shared.wait_for(id);
        let deadline = Instant::now() + self.config.write_wait;
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.raft.client_write(cmd.clone()).await {
                Ok(_) => break,
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(fwd))) => {
                    // Forwarding to a remote leader is the cluster layer's job; with no leader
                    // known yet (an election) we wait and retry.
                    tracing::debug!(leader = ?fwd.leader_id, "not leader; retrying");
                }
                Err(RaftError::APIError(e)) => {
                    self.shared.forget(&id);
                    return Err(MemberError::Raft(e.to_string()));
                }
                Err(RaftError::Fatal(e)) => {
                    self.shared.forget(&id);
                    tracing::error!("raft stopped: {e}");
                    return Err(MemberError::ShuttingDown);
                }
            }
            if Instant::now() >= deadline {
                self.shared.forget(&id);
                return Err(MemberError::NoLeader(self.config.write_wait));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        applied.await.map_err(|_| MemberError::ShuttingDown)
    }

    /// Waits until this member has applied everything committed before the call (a read index
    /// from the leader).
    pub async fn read_barrier(&self) -> Result<(), MemberError> {
        let deadline = Instant::now() + self.config.write_wait;
        loop {
            match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(MemberError::Raft(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// An OVSDB `transact` on `db` (ops = params after the db name); returns the result array.
    pub async fn transact(&self, db: &str, ops: Vec<Value>, session: Uuid) -> Result<Value, MemberError> {
        if !self.with_state(|s| s.dbs.contains_key(db)) {
            return Err(MemberError::UnknownDb(db.to_string()));
        }
        let deadline = wait_deadline(&ops);
        let started = Instant::now();
        let id = Uuid::new_v4();
        let read_only = ovsdb::is_read_only(&ops);
        let text = Value::Array(ops.clone()).to_string();
        loop {
            let expired = deadline.filter(|d| started.elapsed() >= *d).map(|_| started.elapsed().as_millis() as u64);
            let mut applied = self.shared.subscribe_applied();
            let outcome = if read_only {
                self.read_barrier().await?;
                self.execute_locally(db, &ops, session, expired)
            } else {
                let kind = CommandKind::Transact {
                    db: db.to_string(),
                    ops: text.clone(),
                    session,
                    wait_expired_ms: expired,
                    role: None,
                };
                self.propose_as(id, kind).await?
            };
            match outcome {
                Outcome::Transact { result } => {
                    return Ok(serde_json::from_str(&result).expect("the engine emits valid JSON"))
                }
                Outcome::UnknownDb => return Err(MemberError::UnknownDb(db.to_string())),
                Outcome::Blocked => {
                    // A `wait` that does not hold yet: re-run after the next applied change, or
                    // once more (failing) at its deadline.
                    let sleep = match deadline {
                        Some(d) => d.saturating_sub(started.elapsed()),
                        None => Duration::from_secs(3600),
                    };
                    let _ = tokio::time::timeout(sleep, applied.changed()).await;
                }
                other => return Err(MemberError::Raft(format!("unexpected outcome {other:?}"))),
            }
        }
    }

    fn execute_locally(&self, db: &str, ops: &[Value], session: Uuid, expired: Option<u64>) -> Outcome {
        let mut state = self.shared.state.write().unwrap();
        state.execute_read_only(db, ops, session, expired)
    }

    pub async fn lock(&self, session: Uuid, name: &str, steal: bool) -> Result<Outcome, MemberError> {
        self.propose(CommandKind::Lock { session, name: name.to_string(), steal }).await
    }

    pub async fn unlock(&self, session: Uuid, name: &str) -> Result<Outcome, MemberError> {
        self.propose(CommandKind::Unlock { session, name: name.to_string() }).await
    }

    /// Releases the locks of sessions that ended. Only proposed when they held or waited for one.
    pub async fn sessions_closed(&self, sessions: Vec<Uuid>) -> Result<(), MemberError> {
        self.propose(CommandKind::SessionsClosed { sessions }).await.map(|_| ())
    }

    pub fn status(&self) -> MemberStatus {
        let m = self.raft.metrics().borrow().clone();
        MemberStatus {
            identity: self.identity.clone(),
            state: m.state,
            term: m.current_term,
            leader: m.current_leader,
            applied_index: self.shared.applied_index(),
            last_log_index: m.last_log_index,
            committed_index: m.last_applied.map(|l| l.index),
            connected: m.current_leader.is_some(),
        }
    }

    /// Notified whenever the Raft role, term or leader changes (for `_Server` updates).
    pub fn metrics(&self) -> tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>> {
        self.raft.metrics()
    }

    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.subscribe_applied()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// The shortest positive `timeout` among the transaction's `wait` operations, if any (a wait
/// without a timeout blocks for ever).
fn wait_deadline(ops: &[Value]) -> Option<Duration> {
    ops.iter()
        .filter(|op| op.get("op").and_then(Value::as_str) == Some("wait"))
        .filter_map(|op| op.get("timeout").and_then(Value::as_f64))
        .filter(|t| *t > 0.0)
        .map(|t| Duration::from_millis(t as u64))
        .min()
}
