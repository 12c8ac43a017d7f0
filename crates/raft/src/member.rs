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

use openraft::error::RaftError;
use openraft::{BasicNode, ServerState};
use serde_json::Value;
use uuid::Uuid;

use crate::command::{Command, CommandKind, Outcome};
use crate::config::MemberConfig;
use crate::forwarder::{ForwardError, Forwarder};
use crate::network::Network;
use crate::proposer::{ProposeError, Proposer};
use crate::read_index::ReadIndexer;
use crate::state::{ApplyObserver, ReplicatedState};
use crate::state_machine::{Shared, StateMachine};
use crate::types::{NodeId, Raft, TypeConfig};

/// Identity of a member, written once into its data directory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub cluster_id: Uuid,
    pub server_id: Uuid,
    pub node_id: NodeId,
    pub raft_addr: String,
}

const META_IDENTITY: &str = "identity";
/// Raft addresses of existing members a `join-cluster` member asks to be added (cleared once in).
const META_JOIN: &str = "join";
/// Present (true) when `join-cluster --non-voting` prepared the data directory.
const META_JOIN_NON_VOTING: &str = "join_non_voting";
/// The schema(s) a freshly created cluster still has to propose (cleared once committed).
const META_BOOTSTRAP: &str = "bootstrap";

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{0}")]
    Storage(#[from] halyard_storage::StorageError),
    #[error(
        "data directory {0} holds no Halyard member; create one with `halyard create-cluster`"
    )]
    NotCreated(String),
    #[error("data directory {0} already holds a member of cluster {1}; refusing to overwrite it")]
    AlreadyCreated(String, Uuid),
    #[error("invalid schema: {0}")]
    Schema(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no leader could commit the write within {0:?}")]
    NoLeader(Duration),
    /// No leader confirmed a read index within the write wait (elections, no quorum).
    #[error("no leader could confirm a read index ({0})")]
    NoReadIndex(String),
    /// Committed but not applied here in time: only a split command whose pieces were cut by a
    /// leader change (nothing of it was applied; the client may retry).
    #[error("the write was committed but not applied within {0:?}")]
    ApplyTimeout(Duration),
    #[error("unknown database {0}")]
    UnknownDb(String),
    #[error("the member is shutting down")]
    ShuttingDown,
    #[error("cannot serve member-to-member traffic on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("could not join the cluster through {peers:?}: {reason}")]
    Join { peers: Vec<String>, reason: String },
    /// Some members' Raft addresses are `ssl:` and others plain.
    #[error("{0}")]
    MixedTls(String),
}

/// Starts the refusal of a membership that mixes `ssl:` and plain Raft addresses (a joiner
/// that gets it in a reply gives up instead of retrying).
pub const MIXED_TLS: &str = "a cluster cannot mix ssl: and plain (tcp:) Raft addresses";

/// Refuses `others` unless all are `ssl:` exactly when `own` is.
pub fn check_same_transport<'a>(
    own: &str,
    others: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    let (tls, _) = crate::network::split_addr(own);
    for other in others {
        if crate::network::split_addr(other).0 != tls {
            return Err(format!("{MIXED_TLS}: {own} and {other}"));
        }
    }
    Ok(())
}

/// Failures of membership and leadership administration.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Only the leader changes the membership; the address is the leader's Raft address if known.
    #[error("not the leader (leader: {0})")]
    NotLeader(String),
    #[error("no member with id {0:016x} in the cluster")]
    UnknownMember(NodeId),
    #[error("{0}")]
    Raft(String),
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
    /// This member is the Raft leader.
    pub is_leader: bool,
}

impl Identity {
    fn new(cluster_id: Uuid, server_id: Uuid, raft_addr: &str) -> Identity {
        Identity {
            cluster_id,
            server_id,
            node_id: server_id.as_u64_pair().0,
            raft_addr: raft_addr.to_string(),
        }
    }
}

pub struct Member {
    /// Fixed at creation, except the cluster id of a joining member, learnt when it joins (kept
    /// in `cluster_id`).
    identity: Identity,
    cluster_id: std::sync::RwLock<Uuid>,
    /// This process's run of the member: lock requests carry it so that a restart can expire
    /// the previous run's locks without touching its own.
    incarnation: Uuid,
    /// Joined with `--non-voting`: while a learner, it is a non-voting member by design, not a
    /// member catching up before it votes.
    non_voting: bool,
    contact: Arc<crate::network::PeerContact>,
    last_leader_contact: std::sync::Mutex<Option<Instant>>,
    raft: Raft,
    proposer: Proposer,
    forwarder: Forwarder,
    reads: ReadIndexer,
    shared: Arc<Shared>,
    config: MemberConfig,
    /// What operations tooling reports beyond openraft's metrics (see [`Observed`]).
    observed: Observed,
}

/// Observations for status and the control socket that openraft 0.9's metrics lack.
#[derive(Default)]
struct Observed {
    /// Fields the embedding binary adds to [`Member::status_json`] (client connections, remotes).
    status_extra: std::sync::RwLock<Option<StatusExtra>>,
    /// The leader's view of each member's replication progress.
    progress: crate::progress::Progress,
}

/// Produces extra fields (a JSON object) merged into [`Member::status_json`].
pub type StatusExtra = Arc<dyn Fn() -> Value + Send + Sync>;

impl Member {
    /// `halyard create-cluster`: prepares `data_dir` as the first member of a new cluster that
    /// will serve `schemas` (parsed and validated here so a bad schema fails now, not at serve).
    pub fn create_cluster(
        data_dir: &Path,
        schemas: &[Value],
        raft_addr: &str,
    ) -> Result<Identity, MemberError> {
        Self::create_cluster_as(data_dir, schemas, raft_addr, Uuid::new_v4(), Uuid::new_v4())
    }

    /// [`Member::create_cluster`] with the cluster and server ids given, for a member that
    /// takes over the identity `ovsdb-tool create-cluster` wrote into a database file.
    pub fn create_cluster_as(
        data_dir: &Path,
        schemas: &[Value],
        raft_addr: &str,
        cluster_id: Uuid,
        server_id: Uuid,
    ) -> Result<Identity, MemberError> {
        for s in schemas {
            ovsdb::DatabaseSchema::from_json(s).map_err(|e| MemberError::Schema(e.to_string()))?;
        }
        let (_store, meta) = Self::fresh_data_dir(data_dir)?;
        let identity = Identity::new(cluster_id, server_id, raft_addr);
        let texts: Vec<String> = schemas.iter().map(|s| s.to_string()).collect();
        meta.put_blocking(META_BOOTSTRAP, &texts)?;
        meta.put_blocking(META_IDENTITY, &identity)?;
        Ok(identity)
    }

    /// Opens the storage in `data_dir` for a new member, refusing one that already holds a
    /// member (create and join never overwrite). The store is returned to stay open while the
    /// metadata is written.
    fn fresh_data_dir(
        data_dir: &Path,
    ) -> Result<
        (
            halyard_storage::Store<TypeConfig>,
            halyard_storage::MetaStore,
        ),
        MemberError,
    > {
        let store = halyard_storage::Store::<TypeConfig>::open(
            data_dir,
            crate::config::DEFAULT_STORAGE_CACHE_BYTES,
        )?;
        let meta = store.meta_store();
        if let Some(existing) = meta.get::<Identity>(META_IDENTITY)? {
            return Err(MemberError::AlreadyCreated(
                data_dir.display().to_string(),
                existing.cluster_id,
            ));
        }
        Ok((store, meta))
    }

    /// `halyard join-cluster`: prepares `data_dir` for a member that joins an existing cluster
    /// through any of `peers` (Raft addresses) when `halyard serve` starts on it. Like
    /// `ovsdb-tool join-cluster`, it returns at once; the cluster id is learnt on joining.
    pub fn join_cluster(
        data_dir: &Path,
        raft_addr: &str,
        peers: &[String],
    ) -> Result<Identity, MemberError> {
        Self::prepare_join(data_dir, raft_addr, peers, Uuid::new_v4(), false)
    }

    /// `halyard join-cluster --non-voting`: as [`Member::join_cluster`], for a member that
    /// replicates the log and serves clients (reads, monitors, forwarded writes) without
    /// voting, so clients can be spread over more machines without making the quorum larger.
    pub fn join_cluster_non_voting(
        data_dir: &Path,
        raft_addr: &str,
        peers: &[String],
    ) -> Result<Identity, MemberError> {
        Self::prepare_join(data_dir, raft_addr, peers, Uuid::new_v4(), true)
    }

    /// [`Member::join_cluster`] with the server id given (the one `ovsdb-tool join-cluster`
    /// wrote into a database file).
    pub fn join_cluster_as(
        data_dir: &Path,
        raft_addr: &str,
        peers: &[String],
        server_id: Uuid,
    ) -> Result<Identity, MemberError> {
        Self::prepare_join(data_dir, raft_addr, peers, server_id, false)
    }

    fn prepare_join(
        data_dir: &Path,
        raft_addr: &str,
        peers: &[String],
        server_id: Uuid,
        non_voting: bool,
    ) -> Result<Identity, MemberError> {
        check_same_transport(raft_addr, peers.iter().map(String::as_str))
            .map_err(MemberError::MixedTls)?;
        let (_store, meta) = Self::fresh_data_dir(data_dir)?;
        let identity = Identity::new(Uuid::nil(), server_id, raft_addr);
        meta.put_blocking(META_JOIN, &peers.to_vec())?;
        if non_voting {
            meta.put_blocking(META_JOIN_NON_VOTING, &true)?;
        }
        meta.put_blocking(META_IDENTITY, &identity)?;
        Ok(identity)
    }

    /// `halyard serve`: opens the member in `data_dir` and starts its Raft node.
    pub async fn start(data_dir: &Path, config: MemberConfig) -> Result<Arc<Member>, MemberError> {
        let store = halyard_storage::Store::<TypeConfig>::open_with(
            data_dir,
            &halyard_storage::StoreOptions {
                cache_capacity_bytes: config.storage_cache_bytes,
                repair: config.repair_log_tail,
                replication_read_bytes: crate::config::REPLICATION_BATCH_BYTES,
            },
        )?;
        let meta = store.meta_store();
        let identity: Identity = meta
            .get(META_IDENTITY)?
            .ok_or_else(|| MemberError::NotCreated(data_dir.display().to_string()))?;
        let (sm, shared) = StateMachine::open(store.snapshot_store())
            .map_err(|e| MemberError::Raft(e.to_string()))?;
        let raft_config = Arc::new(
            config
                .raft_config(identity.cluster_id.to_string())
                .validate()
                .map_err(|e| MemberError::Raft(e.to_string()))?,
        );
        let contact = Arc::new(crate::network::PeerContact::default());
        let network = Network {
            contact: contact.clone(),
        };
        let raft = Raft::new(
            identity.node_id,
            raft_config,
            network,
            store.log_store()?,
            sm,
        )
        .await
        .map_err(|e| MemberError::Raft(e.to_string()))?;
        let proposer = Proposer::start(raft.clone(), config.max_entry_bytes);
        let forwarder = Forwarder::start(config.write_wait);
        let (reads, reads_rx) = ReadIndexer::new();
        let cluster_id = std::sync::RwLock::new(identity.cluster_id);
        let non_voting: bool = meta.get(META_JOIN_NON_VOTING)?.unwrap_or(false);
        let member = Arc::new(Member {
            identity,
            cluster_id,
            incarnation: Uuid::new_v4(),
            non_voting,
            contact,
            last_leader_contact: std::sync::Mutex::new(None),
            raft,
            proposer,
            forwarder,
            reads,
            shared,
            config,
            observed: Observed::default(),
        });
        member.clone().serve_peers().await?;
        let bootstrap: Option<Vec<String>> = meta.get(META_BOOTSTRAP)?;
        if let Some(schemas) = bootstrap {
            member.bootstrap(&schemas).await?;
            meta.remove(META_BOOTSTRAP).await?;
        }
        let join: Option<Vec<String>> = meta.get(META_JOIN)?;
        if let Some(peers) = join {
            let cluster_id = member.join(&peers, member.non_voting).await?;
            *member.cluster_id.write().unwrap() = cluster_id;
            meta.put(META_IDENTITY, &member.identity()).await?;
            // META_JOIN_NON_VOTING stays: it says what this member is while a learner.
            meta.remove(META_JOIN).await?;
            tracing::info!(cluster = %cluster_id, "joined the cluster; restart not needed");
        }
        tokio::spawn(crate::lease::run(Arc::downgrade(&member)));
        tokio::spawn(crate::divergence::run(Arc::downgrade(&member)));
        tokio::spawn(crate::nudge::run(Arc::downgrade(&member)));
        tokio::spawn(crate::check_quorum::run(Arc::downgrade(&member)));
        tokio::spawn(crate::election_timer::run(Arc::downgrade(&member)));
        tokio::spawn(crate::compaction::run(Arc::downgrade(&member)));
        tokio::spawn(crate::progress::run(Arc::downgrade(&member)));
        tokio::spawn(crate::read_index::run(Arc::downgrade(&member), reads_rx));
        Ok(member)
    }

    /// Starts the gRPC service other members call, on this member's Raft address (over TLS
    /// for an `ssl:` address). Refuses a stored membership that mixes `ssl:` and plain.
    async fn serve_peers(self: Arc<Self>) -> Result<(), MemberError> {
        let addr = self.identity.raft_addr.clone();
        let bind_err = |reason: String| MemberError::Bind {
            addr: addr.clone(),
            reason,
        };
        let peers = self.peers();
        check_same_transport(&addr, peers.iter().map(|(_, a)| a.as_str()))
            .map_err(MemberError::MixedTls)?;
        let (tls, host_port) = crate::network::split_addr(&addr);
        let tls = match (tls, crate::network::peer_tls()) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => {
                return Err(bind_err(
                    "an ssl: Raft address needs --private-key, --certificate and --ca-cert".into(),
                ))
            }
        };
        let sock = tokio::net::lookup_host(host_port)
            .await
            .map_err(|e| bind_err(e.to_string()))?
            .next()
            .ok_or_else(|| bind_err("address does not resolve".into()))?;
        let listener = tokio::net::TcpListener::bind(sock)
            .await
            .map_err(|e| bind_err(e.to_string()))?;
        let service = crate::service::server(self.clone());
        let builder = || {
            tonic::transport::Server::builder()
                .initial_stream_window_size(crate::network::STREAM_WINDOW)
                .initial_connection_window_size(crate::network::CONNECTION_WINDOW)
                .add_service(service)
        };
        match tls {
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                let server = builder();
                tokio::spawn(async move {
                    if let Err(e) = server.serve_with_incoming(incoming).await {
                        tracing::error!("member-to-member service stopped: {e}");
                    }
                });
            }
            Some(tls) => {
                let incoming = crate::service::tls_incoming(listener, tls);
                let server = builder();
                tokio::spawn(async move {
                    if let Err(e) = server.serve_with_incoming(incoming).await {
                        tracing::error!("member-to-member service stopped: {e}");
                    }
                });
            }
        }
        tracing::info!(%addr, node = format_args!("{:016x}", self.identity.node_id), "serving member-to-member traffic");
        Ok(())
    }

    /// Asks the peers (any member; followers point to the leader) to add this member, retrying
    /// until one accepts. Returns the cluster id.
    async fn join(&self, peers: &[String], non_voting: bool) -> Result<Uuid, MemberError> {
        let req = crate::pb::JoinRequest {
            node_id: self.identity.node_id,
            raft_addr: self.identity.raft_addr.clone(),
            server_id: self.identity.server_id.to_string(),
            non_voting,
        };
        let mut targets: Vec<String> = peers.to_vec();
        let mut last_error = String::from("no peer answered");
        for attempt in 0..600u32 {
            for addr in targets.clone() {
                tracing::info!(peer = %addr, attempt, "asking to join the cluster");
                let Ok(mut client) = crate::network::client(&addr) else {
                    continue;
                };
                match client.join(req.clone()).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        if reply.not_leader {
                            if !reply.leader_addr.is_empty()
                                && !targets.contains(&reply.leader_addr)
                            {
                                targets.insert(0, reply.leader_addr);
                            }
                            last_error = "peer is not the leader".into();
                        } else if reply.error.starts_with(MIXED_TLS) {
                            return Err(MemberError::MixedTls(reply.error));
                        } else if !reply.error.is_empty() {
                            last_error = reply.error;
                        } else {
                            return Uuid::parse_str(&reply.cluster_id).map_err(|e| {
                                MemberError::Join {
                                    peers: peers.to_vec(),
                                    reason: format!("bad cluster id in reply: {e}"),
                                }
                            });
                        }
                    }
                    Err(status) => last_error = status.message().to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(MemberError::Join {
            peers: peers.to_vec(),
            reason: last_error,
        })
    }

    async fn bootstrap(&self, schemas: &[String]) -> Result<(), MemberError> {
        let me = BTreeMap::from([(
            self.identity.node_id,
            BasicNode::new(&self.identity.raft_addr),
        )]);
        if !self
            .raft
            .is_initialized()
            .await
            .map_err(|e| MemberError::Raft(e.to_string()))?
        {
            self.raft
                .initialize(me)
                .await
                .map_err(|e| MemberError::Raft(e.to_string()))?;
        }
        for schema in schemas {
            let kind = CommandKind::CreateDb {
                schema: schema.clone(),
            };
            self.propose(kind).await?;
        }
        tracing::info!(cluster = %self.identity().cluster_id, "cluster bootstrapped");
        Ok(())
    }

    pub fn identity(&self) -> Identity {
        Identity {
            cluster_id: *self.cluster_id.read().unwrap(),
            ..self.identity.clone()
        }
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
        let cmd = Command {
            id,
            origin: self.identity.node_id,
            kind,
        };
        // Answered from this member's own apply of the command, which implies it is committed
        // and gives read-your-writes here. That usually comes before the proposer's or the
        // leader's answer (which follow the leader's apply, then a hop through the Raft task or
        // back over gRPC), so the two are raced: the acknowledgement is the first of them, and an
        // error from the proposal path still leads to a retry unless the apply already came.
        let mut applied = self.shared.wait_for(id);
        let deadline = Instant::now() + self.config.write_wait;
        let mut backoff = Duration::from_millis(10);
        loop {
            // A follower that knows the leader forwards at once; the proposer (and openraft) are
            // asked only when this member may be the leader, and they correct a stale view.
            // Bounded by the write wait: a leader cut off from its quorum holds the proposal
            // until it steps down (check-quorum), a forwarded call until the leader answers.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let leader = match self.known_leader() {
                Some(addr) => Err(ProposeError::NotLeader(Some(addr))),
                None => {
                    let proposed =
                        tokio::time::timeout(remaining, self.proposer.propose(cmd.clone()));
                    tokio::select! {
                        biased;
                        outcome = &mut applied => return outcome.map_err(|_| MemberError::ShuttingDown),
                        r = proposed => r.unwrap_or_else(|_| {
                            Err(ProposeError::Raft("no commit within the write wait".into()))
                        }),
                    }
                }
            };
            match leader {
                Ok(()) => break,
                Err(ProposeError::NotLeader(Some(leader))) if !leader.is_empty() => {
                    let forwarded = tokio::time::timeout(
                        remaining,
                        self.forwarder.forward(&leader, cmd.clone()),
                    );
                    let forwarded = tokio::select! {
                        biased;
                        outcome = &mut applied => return outcome.map_err(|_| MemberError::ShuttingDown),
                        r = forwarded => r.unwrap_or_else(|_| {
                            Err(ForwardError::Failed(
                                "no answer within the write wait".into(),
                            ))
                        }),
                    };
                    match forwarded {
                        Ok(()) => break,
                        Err(ForwardError::NotLeader(next)) => tracing::debug!(
                            %leader, next = next.as_deref().unwrap_or(""),
                            "forwarded to a member that is no longer the leader; retrying"
                        ),
                        Err(e) => tracing::debug!(%leader, "forwarding failed, retrying: {e}"),
                    }
                }
                Err(ProposeError::NotLeader(_)) => {
                    tracing::debug!("no leader known (election); retrying")
                }
                Err(ProposeError::Raft(e)) => tracing::debug!("proposal failed, retrying: {e}"),
            }
            if Instant::now() >= deadline {
                self.shared.forget(&id);
                return Err(MemberError::NoLeader(self.config.write_wait));
            }
            // Retry when the backoff ends, or as soon as a (new) leader is known: after a
            // failover the pause clients see is then the election, not the election plus a
            // backoff. A retried command that was committed after all is answered by its apply.
            tokio::select! {
                biased;
                outcome = &mut applied => return outcome.map_err(|_| MemberError::ShuttingDown),
                _ = tokio::time::sleep(backoff) => {}
                _ = self.leader_changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        match tokio::time::timeout(self.config.write_wait, applied).await {
            Ok(outcome) => outcome.map_err(|_| MemberError::ShuttingDown),
            Err(_) => {
                self.shared.forget(&id);
                Err(MemberError::ApplyTimeout(self.config.write_wait))
            }
        }
    }

    /// Resolves when this member learns of a leader other than the one it knows now.
    async fn leader_changed(&self) {
        let mut metrics = self.raft.metrics();
        let now = metrics.borrow_and_update().current_leader;
        while metrics.changed().await.is_ok() {
            let leader = metrics.borrow_and_update().current_leader;
            if leader.is_some() && leader != now {
                return;
            }
        }
        // Raft stopped: the caller's deadline ends the wait.
        std::future::pending::<()>().await
    }

    /// The Raft address of the leader when it is another member, as this member last heard.
    fn known_leader(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader.filter(|id| *id != self.identity.node_id)?;
        let node = m.membership_config.membership().get_node(&leader)?;
        Some(node.addr.clone()).filter(|a| !a.is_empty())
    }

    /// Waits until this member has applied everything committed before the call: the leader
    /// confirms its leadership with a quorum and names its commit index (a read index), and this
    /// member waits to have applied that far.
    pub async fn read_barrier(&self) -> Result<(), MemberError> {
        let index = self.reads.get().await?;
        self.wait_applied(index).await
    }

    /// Obtains one read index (through the leader when this member is a follower), retrying
    /// through elections up to `write_wait`. Called by the shared read-index task only.
    pub(crate) async fn fetch_read_index(&self) -> Result<u64, String> {
        let deadline = Instant::now() + self.config.write_wait;
        let mut last_error;
        loop {
            match self.raft.get_read_log_id().await {
                Ok((read, _)) => return Ok(read.map(|l| l.index).unwrap_or(0)),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                    f,
                ))) => match f.leader_node {
                    Some(node) => match self.remote_read_index(&node.addr).await {
                        Ok(index) => return Ok(index),
                        Err(e) => last_error = e,
                    },
                    None => last_error = "no leader known".to_string(),
                },
                Err(e) => last_error = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn remote_read_index(&self, addr: &str) -> Result<u64, String> {
        let mut client = crate::network::client(addr).map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(crate::pb::Empty {});
        req.set_timeout(Duration::from_millis(self.config.election_timeout_ms * 2));
        let reply = client
            .read_index(req)
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        if reply.not_leader {
            Err(format!("{addr} is no longer the leader"))
        } else if !reply.error.is_empty() {
            Err(reply.error)
        } else {
            Ok(reply.index)
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), MemberError> {
        let mut applied = self.shared.subscribe_applied();
        let result =
            tokio::time::timeout(self.config.write_wait, applied.wait_for(|i| *i >= index)).await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(MemberError::ShuttingDown),
            Err(_) => Err(MemberError::Raft(format!(
                "did not apply up to index {index} in time"
            ))),
        }
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Proposes a command forwarded by a follower; resolves once it is committed.
    pub(crate) async fn propose_forwarded(&self, cmd: Command) -> Result<(), ProposeError> {
        self.proposer.propose(cmd).await
    }

    fn not_leader(&self) -> AdminError {
        let m = self.raft.metrics().borrow().clone();
        let addr = m
            .current_leader
            .and_then(|id| {
                m.membership_config
                    .membership()
                    .get_node(&id)
                    .map(|n| n.addr.clone())
            })
            .unwrap_or_default();
        AdminError::NotLeader(addr)
    }

    /// Adds a member: first as a learner that catches up (from a snapshot if the log was
    /// compacted), then, if `voter`, as a voter. One change at a time, as openraft's joint
    /// consensus allows. A non-voting member stays a learner; adding it again as a voter
    /// promotes it. A voter is never demoted by a (retried) non-voting request.
    pub async fn add_member(
        &self,
        node: NodeId,
        addr: &str,
        voter: bool,
    ) -> Result<(), AdminError> {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return Err(self.not_leader());
        }
        check_same_transport(&self.identity.raft_addr, [addr]).map_err(AdminError::Raft)?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let known = membership.membership().get_node(&node).is_some();
        if known && membership.membership().voter_ids().any(|v| v == node) {
            return Ok(());
        }
        if !known {
            tracing::info!(node = format_args!("{node:016x}"), %addr, voter, "adding member as learner");
            self.raft
                .add_learner(node, BasicNode::new(addr), true)
                .await
                .map_err(|e| AdminError::Raft(e.to_string()))?;
        }
        if !voter {
            tracing::info!(
                node = format_args!("{node:016x}"),
                "member is a non-voting member"
            );
            return Ok(());
        }
        let mut voters: std::collections::BTreeSet<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        voters.insert(node);
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(|e| AdminError::Raft(e.to_string()))?;
        tracing::info!(node = format_args!("{node:016x}"), "member is a voter");
        Ok(())
    }

    /// Removes a member from the cluster (kick, or leave).
    pub async fn remove_member(&self, node: NodeId) -> Result<String, AdminError> {
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return Err(self.not_leader());
        }
        let membership = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let mut voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        if membership.get_node(&node).is_none() {
            return Err(AdminError::UnknownMember(node));
        }
        let change = if voters.remove(&node) {
            openraft::ChangeMembers::ReplaceAllVoters(voters)
        } else {
            // A non-voting member (learner): only its node goes.
            openraft::ChangeMembers::RemoveNodes([node].into())
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| AdminError::Raft(e.to_string()))?;
        Ok(format!("removed {node:016x}"))
    }

    /// Asks for a new leader. openraft 0.9 has no leadership-transfer message; the target (or
    /// this member) starts an election at once, which a caught-up member wins.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<String, AdminError> {
        match to {
            Some(id) if id != self.identity.node_id => {
                let m = self.raft.metrics().borrow().clone();
                let node = m
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned()
                    .ok_or(AdminError::UnknownMember(id))?;
                let mut client = crate::network::client(&node.addr)
                    .map_err(|e| AdminError::Raft(e.to_string()))?;
                let reply = client
                    .transfer_leadership(crate::pb::TransferRequest { node_id: id })
                    .await
                    .map_err(|s| AdminError::Raft(s.message().to_string()))?
                    .into_inner();
                if reply.error.is_empty() {
                    Ok(reply.message)
                } else {
                    Err(AdminError::Raft(reply.error))
                }
            }
            _ => {
                self.raft
                    .trigger()
                    .elect()
                    .await
                    .map_err(|e| AdminError::Raft(e.to_string()))?;
                Ok(format!(
                    "election started by {:016x}",
                    self.identity.node_id
                ))
            }
        }
    }

    /// This member's view, as `halyard status --json` prints it for one member. Index fields
    /// are Raft log indexes; `*_ms` fields are ages in milliseconds at the time of the call.
    pub fn status_json(&self) -> Value {
        let m = self.raft.metrics().borrow().clone();
        let members: Vec<Value> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| {
                let voter = m.membership_config.membership().voter_ids().any(|v| v == *id);
                let matched = m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map(|l| l.index);
                // This member's last answered Raft RPC to that peer (the leader's "last msg").
                let contact = self.peer_contact(*id).map(|t| t.elapsed().as_millis() as u64);
                // Leader only: how long its match index has been stuck behind the log.
                let stalled = self.observed.progress.stalled(*id).map(|d| d.as_millis() as u64);
                serde_json::json!({
                    "id": format!("{id:016x}"), "address": node.addr, "voter": voter, "match_index": matched,
                    "last_contact_ms": contact, "match_stalled_ms": stalled,
                })
            })
            .collect();
        let leader_addr = m.current_leader.and_then(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        let mut doc = serde_json::json!({
            "id": format!("{:016x}", self.identity.node_id),
            "server_id": self.identity.server_id.to_string(),
            "cluster_id": self.identity().cluster_id.to_string(),
            "address": self.identity.raft_addr,
            "role": format!("{:?}", m.state).to_lowercase(),
            "non_voting": self.is_non_voting(),
            "term": m.current_term,
            "leader": m.current_leader.map(|l| format!("{l:016x}")),
            "leader_address": leader_addr,
            "vote": m.vote.leader_id().voted_for().map(|v| format!("{v:016x}")),
            "vote_committed": m.vote.is_committed(),
            "last_log_index": m.last_log_index,
            "committed_index": m.last_applied.map(|l| l.index),
            "applied_index": self.shared.applied_index(),
            "snapshot_index": m.snapshot.map(|l| l.index),
            "purged_index": m.purged.map(|l| l.index),
            "millis_since_quorum_ack": m.millis_since_quorum_ack,
            "millis_since_leader_contact": self.last_leader_contact.lock().unwrap().map(|t| t.elapsed().as_millis() as u64),
            "connected": self.connected(),
            "digest": self.shared.digests.latest().map(|(index, d)| serde_json::json!({"index": index, "value": format!("{d:016x}")})),
            "election_timer_ms": self.election_timeout_ms(),
            "proposal_queue": self.proposal_queue_len(),
            "forward_queue": self.forward_queue_len(),
            "read_queue": self.read_queue_len(),
            "databases": self.db_names(),
            "running": m.running_state.is_ok(),
            "members": members,
        });
        let extra = self.observed.status_extra.read().unwrap().clone();
        if let (Some(extra), Some(obj)) = (extra, doc.as_object_mut()) {
            if let Value::Object(fields) = extra() {
                obj.extend(fields);
            }
        }
        doc
    }

    pub(crate) fn progress(&self) -> &crate::progress::Progress {
        &self.observed.progress
    }

    /// Adds fields to every [`Member::status_json`] (the binary reports its client connections
    /// and remotes this way; the member knows nothing of the front end).
    pub fn set_status_extra(&self, extra: StatusExtra) {
        *self.observed.status_extra.write().unwrap() = Some(extra);
    }

    /// The election timeout this member runs with (openraft 0.9 fixes it at start).
    pub fn election_timeout_ms(&self) -> u64 {
        self.with_state(|s| s.election_timer_ms)
            .unwrap_or(self.config.election_timeout_ms)
    }

    /// `cluster/change-election-timer`: commits the new timer, which every member then runs with
    /// (see `election_timer`). The caller checks the value as ovsdb-server does.
    pub async fn set_election_timer(&self, ms: u64) -> Result<(), MemberError> {
        self.propose(CommandKind::SetElectionTimer { ms }).await?;
        Ok(())
    }

    /// Builds a snapshot now (and lets openraft purge the log behind it). Returns the index the
    /// snapshot covers, or `None` when the latest snapshot already covers everything applied
    /// (ovsdb-server's "not storing a duplicate snapshot").
    pub async fn compact(&self, wait: Duration) -> Result<Option<u64>, AdminError> {
        let mut metrics = self.raft.metrics();
        let (snap, applied) = {
            let m = metrics.borrow();
            (m.snapshot.map(|l| l.index), m.last_applied.map(|l| l.index))
        };
        if applied.is_none() || snap == applied {
            return Ok(None);
        }
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| AdminError::Raft(e.to_string()))?;
        let built = tokio::time::timeout(
            wait,
            metrics.wait_for(|m| m.snapshot.map(|l| l.index) > snap),
        )
        .await;
        match built {
            Ok(Ok(m)) => Ok(m.snapshot.map(|l| l.index)),
            Ok(Err(_)) => Err(AdminError::Raft("the member is shutting down".into())),
            Err(_) => Err(AdminError::Raft(format!(
                "no snapshot was built within {wait:?}"
            ))),
        }
    }

    /// Removes `node` from the cluster through the leader, wherever that is: on the leader this
    /// is [`Member::remove_member`]; elsewhere the request is sent to the leader's Raft address.
    /// Returns whether this member is the leader (ovsdb-server words its reply differently).
    pub async fn remove_through_leader(&self, node: NodeId) -> Result<bool, AdminError> {
        match self.remove_member(node).await {
            Ok(_) => Ok(true),
            Err(AdminError::NotLeader(addr)) if !addr.is_empty() => {
                let mut client =
                    crate::network::client(&addr).map_err(|e| AdminError::Raft(e.to_string()))?;
                let mut req = tonic::Request::new(crate::pb::RemoveRequest { node_id: node });
                req.set_timeout(self.config.write_wait);
                let reply = client
                    .remove(req)
                    .await
                    .map_err(|s| AdminError::Raft(s.message().to_string()))?
                    .into_inner();
                if reply.not_leader {
                    Err(AdminError::NotLeader(reply.leader_addr))
                } else if !reply.error.is_empty() {
                    Err(AdminError::Raft(reply.error))
                } else {
                    Ok(false)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// An OVSDB `transact` on `db` (ops = params after the db name); returns the result array.
    /// `rbac`: the session's role and identity, checked by the engine at apply time on every
    /// member (reads are never restricted by RBAC).
    pub async fn transact(
        &self,
        db: &str,
        ops: Vec<Value>,
        session: Uuid,
        rbac: Option<ovsdb::RbacIdentityBuf>,
    ) -> Result<Value, MemberError> {
        if !self.with_state(|s| s.dbs.contains_key(db)) {
            return Err(MemberError::UnknownDb(db.to_string()));
        }
        let started = Instant::now();
        let id = Uuid::new_v4();
        // A transaction with `abort` never commits (ovsdb-client query sends one): read it locally.
        let read_only = ovsdb::is_read_only_transaction(&ops);
        let text = serde_json::to_string(&ops).expect("JSON values serialise");
        // See `MemberConfig::unsafe_ack_before_commit` (the fault suite's broken mode).
        if !read_only && self.config.unsafe_ack_before_commit {
            return Ok(self.with_state(|s| {
                let mut env = crate::txn_env::ApplyEnv::new(id, session, &s.locks, 0);
                s.dbs[db].db.clone().transact(&ops, &mut env).result
            }));
        }
        let mut first_run = true;
        loop {
            // The engine decides which waits failed from this; the first run counts as 0 ms,
            // as in ovsdb-server, whose `timeout: 0` failure is worded for elapsed 0.
            let elapsed = if first_run {
                0
            } else {
                started.elapsed().as_millis() as u64
            };
            first_run = false;
            // Subscribed before running, so a change applied meanwhile is not missed.
            let mut changed = self.shared.subscribe_data_changed();
            let outcome = if read_only {
                self.read_barrier().await?;
                self.execute_locally(db, &ops, session, elapsed)
            } else {
                let kind = CommandKind::Transact {
                    db: db.to_string(),
                    ops: text.clone(),
                    session,
                    wait_elapsed_ms: Some(elapsed),
                    rbac: rbac.clone(),
                };
                self.propose_as(id, kind).await?
            };
            match outcome {
                Outcome::Transact { result } => {
                    return Ok(serde_json::from_str(&result).expect("the engine emits valid JSON"))
                }
                Outcome::UnknownDb => return Err(MemberError::UnknownDb(db.to_string())),
                Outcome::Blocked { retry_in_ms } => {
                    // A `wait` that does not hold yet: re-run after the next applied change, or
                    // when the blocking wait's own timeout passes (the engine then fails it).
                    match retry_in_ms {
                        Some(ms) => {
                            let at = started + Duration::from_millis(elapsed.saturating_add(ms));
                            let _ = tokio::time::timeout_at(at.into(), changed.changed()).await;
                        }
                        None => {
                            if changed.changed().await.is_err() {
                                return Err(MemberError::ShuttingDown);
                            }
                        }
                    }
                }
                other => return Err(MemberError::Raft(format!("unexpected outcome {other:?}"))),
            }
        }
    }

    fn execute_locally(&self, db: &str, ops: &[Value], session: Uuid, elapsed_ms: u64) -> Outcome {
        // Reads share the read lock: they wait for an apply in progress, not for each other.
        let state = self.shared.state.read().unwrap();
        state.execute_read_only(db, ops, session, Some(elapsed_ms))
    }

    /// Online schema conversion of `db` to `schema`. `Ok(Err(error object))` when the
    /// conversion itself fails (the data does not fit the new schema).
    pub async fn convert(
        &self,
        db: &str,
        schema: &Value,
    ) -> Result<Result<(), Value>, MemberError> {
        let kind = CommandKind::Convert {
            db: db.to_string(),
            schema: schema.to_string(),
        };
        match self.propose(kind).await? {
            Outcome::Converted { error: None } => Ok(Ok(())),
            Outcome::Converted { error: Some(e) } => {
                Ok(Err(serde_json::from_str(&e).unwrap_or(Value::String(e))))
            }
            Outcome::UnknownDb => Err(MemberError::UnknownDb(db.to_string())),
            other => Err(MemberError::Raft(format!("unexpected outcome {other:?}"))),
        }
    }

    pub async fn lock(
        &self,
        session: Uuid,
        name: &str,
        steal: bool,
    ) -> Result<Outcome, MemberError> {
        let incarnation = self.incarnation;
        self.propose(CommandKind::Lock {
            session,
            incarnation,
            name: name.to_string(),
            steal,
        })
        .await
    }

    pub(crate) async fn expire_member(
        &self,
        member: NodeId,
        keep: Option<Uuid>,
    ) -> Result<(), MemberError> {
        self.propose(CommandKind::ExpireMember { member, keep })
            .await
            .map(|_| ())
    }

    /// A learner that joined with `--non-voting` (and was not promoted since).
    pub fn is_non_voting(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let me = self.identity.node_id;
        self.non_voting
            && membership.get_node(&me).is_some()
            && !membership.voter_ids().any(|v| v == me)
    }

    pub(crate) fn incarnation(&self) -> Uuid {
        self.incarnation
    }

    pub(crate) fn config(&self) -> &MemberConfig {
        &self.config
    }

    pub(crate) fn peer_contact(&self, node: NodeId) -> Option<Instant> {
        self.contact.last(node)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The members (node id, Raft address) of the current membership.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    pub(crate) fn digest_at(&self, index: u64) -> Option<u64> {
        self.shared.digests.at(index)
    }

    /// Called when the leader's append-entries or snapshot reaches this member.
    pub(crate) fn heard_from_leader(&self) {
        *self.last_leader_contact.lock().unwrap() = Some(Instant::now());
    }

    /// When a leader's append-entries last reached this member in this process.
    pub(crate) fn leader_contact(&self) -> Option<Instant> {
        *self.last_leader_contact.lock().unwrap()
    }

    /// This member votes in elections (not a learner, not removed).
    pub(crate) fn is_voter(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .voter_ids()
            .any(|id| id == self.identity.node_id)
    }

    /// Whether this member is in contact with a quorum (through the leader): it can commit
    /// writes and its reads are current. `_Server.connected` reports this, so IDL clients move
    /// to another member when it is false.
    pub fn connected(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let within = |ms: u128| ms < u128::from(self.config.election_timeout_ms) * 2;
        let me = self.identity.node_id;
        if m.membership_config.membership().get_node(&me).is_none() {
            return false;
        }
        match m.state {
            ServerState::Leader => {
                let voters = m.membership_config.membership().voter_ids().count();
                voters == 1
                    || m.millis_since_quorum_ack
                        .is_some_and(|ms| within(ms.into()))
            }
            ServerState::Follower | ServerState::Learner => {
                m.current_leader.is_some()
                    && self
                        .last_leader_contact
                        .lock()
                        .unwrap()
                        .is_some_and(|t| within(t.elapsed().as_millis()))
            }
            _ => false,
        }
    }

    /// How long this member has gone without evidence that it is in contact with a quorum: for
    /// the leader, since a quorum last acknowledged it; for others, since the leader last reached
    /// it. `None` if it never had such contact in this run. The lock lease runs on this.
    pub(crate) fn without_quorum(&self) -> Option<Duration> {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            let voters = m.membership_config.membership().voter_ids().count();
            if voters == 1 {
                return Some(Duration::ZERO);
            }
            return m.millis_since_quorum_ack.map(Duration::from_millis);
        }
        self.last_leader_contact
            .lock()
            .unwrap()
            .map(|t| t.elapsed())
    }

    /// What `_Server` reports as `connected` (and, in active-active mode, `leader`): connected,
    /// or a voter that heard from a leader less than three election timers ago — an election
    /// starts 1.5 to 2 timers after the last heartbeat, so one is normally over by then.
    /// Transactions made meanwhile wait for the next leader (up to `write_wait`), so clients see
    /// a pause instead of leader-only clients (ovn-nbctl, the IDLs) giving up at once with
    /// "database connection failed" when `_Server` flips during every election.
    pub fn serving(&self) -> bool {
        if self.connected() {
            return true;
        }
        let m = self.raft.metrics().borrow().clone();
        let me = self.identity.node_id;
        let voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == me);
        let grace = u128::from(self.config.election_timeout_ms) * 3;
        // Any role: the winner of the election is a leader without a quorum ack for a moment.
        voter
            && self
                .last_leader_contact
                .lock()
                .unwrap()
                .is_some_and(|t| t.elapsed().as_millis() < grace)
    }

    pub async fn unlock(&self, session: Uuid, name: &str) -> Result<Outcome, MemberError> {
        self.propose(CommandKind::Unlock {
            session,
            name: name.to_string(),
        })
        .await
    }

    /// Releases the locks of sessions that ended. Only proposed when they held or waited for one.
    pub async fn sessions_closed(&self, sessions: Vec<Uuid>) -> Result<(), MemberError> {
        self.propose(CommandKind::SessionsClosed { sessions })
            .await
            .map(|_| ())
    }

    pub fn status(&self) -> MemberStatus {
        let m = self.raft.metrics().borrow().clone();
        MemberStatus {
            identity: self.identity(),
            state: m.state,
            term: m.current_term,
            leader: m.current_leader,
            applied_index: self.shared.applied_index(),
            last_log_index: m.last_log_index,
            committed_index: m.last_applied.map(|l| l.index),
            connected: self.connected(),
            is_leader: m.state == ServerState::Leader,
        }
    }

    /// Notified whenever the Raft role, term or leader changes (for `_Server` updates).
    pub fn metrics(
        &self,
    ) -> tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>> {
        self.raft.metrics()
    }

    /// Commands waiting for the next Raft entry on this member (group commit queue depth).
    pub fn proposal_queue_len(&self) -> usize {
        self.proposer.queued()
    }

    /// Commands of this member's clients waiting to be forwarded to the leader.
    pub fn forward_queue_len(&self) -> usize {
        self.forwarder.queued()
    }

    /// Bytes of commands queued or in flight in the proposer and the forwarder (each bounded
    /// by `config::QUEUE_BYTES`).
    pub fn queued_command_bytes(&self) -> usize {
        self.proposer.queued_bytes() + self.forwarder.queued_bytes()
    }

    /// Bytes of split commands applied in part (waiting for their last piece).
    pub fn incomplete_command_bytes(&self) -> usize {
        self.with_state(|s| s.incomplete_part_bytes())
    }

    /// Reads waiting for the next shared read index.
    pub fn read_queue_len(&self) -> usize {
        self.reads.queued()
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
