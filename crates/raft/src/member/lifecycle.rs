//! A member's life: preparing its data directory (`create-cluster`, `join-cluster`), starting
//! its Raft node and the member-to-member service, joining or bootstrapping the cluster, and
//! shutting down.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use serde_json::Value;
use uuid::Uuid;

use super::{
    check_same_transport, Identity, Member, MemberError, Observed, META_BOOTSTRAP, META_IDENTITY,
    META_JOIN, META_JOIN_NON_VOTING, MIXED_TLS,
};
use crate::command::CommandKind;
use crate::config::MemberConfig;
use crate::forwarder::Forwarder;
use crate::network::Network;
use crate::proposer::Proposer;
use crate::read_index::ReadIndexer;
use crate::state_machine::StateMachine;
use crate::types::{Raft, TypeConfig};

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
    pub async fn start(
        data_dir: impl AsRef<Path>,
        config: MemberConfig,
    ) -> Result<Arc<Member>, MemberError> {
        let data_dir = data_dir.as_ref();
        let store = halyard_storage::Store::<TypeConfig>::open_with(
            data_dir,
            &halyard_storage::StoreOptions {
                cache_capacity_bytes: config.storage_cache_bytes,
                repair: config.repair_log_tail,
                replication_read_bytes: crate::config::REPLICATION_BATCH_BYTES,
                ..Default::default()
            },
        )?;
        let meta = store.meta_store();
        let identity: Identity = meta
            .get(META_IDENTITY)?
            .ok_or_else(|| MemberError::NotCreated(data_dir.display().to_string()))?;
        let (sm, shared) = StateMachine::open(store.snapshot_store(), &identity.raft_addr)
            .map_err(|e| MemberError::Startup(e.to_string()))?;
        let raft_config = Arc::new(
            config
                .raft_config(identity.cluster_id.to_string())
                .validate()
                .map_err(|e| MemberError::Startup(e.to_string()))?,
        );
        let contact = Arc::new(crate::network::PeerContact::default());
        let network = Network::new(contact.clone());
        let raft = Raft::new(
            identity.node_id,
            raft_config,
            network,
            store.log_store()?,
            sm,
        )
        .await
        .map_err(|e| MemberError::Startup(e.to_string()))?;
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
        if let Some(name) = addr.strip_prefix("mem:") {
            return self.serve_in_process(name);
        }
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
                .http2_max_pending_accept_reset_streams(Some(
                    crate::network::PEER_PENDING_RESET_STREAMS,
                ))
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

    /// The member-to-member service on the in-process network (see `router`).
    #[cfg(feature = "in-process")]
    fn serve_in_process(self: &Arc<Self>, name: &str) -> Result<(), MemberError> {
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(crate::network::STREAM_WINDOW)
            .initial_connection_window_size(crate::network::CONNECTION_WINDOW)
            .http2_max_pending_accept_reset_streams(Some(
                crate::network::PEER_PENDING_RESET_STREAMS,
            ))
            .add_service(crate::service::server(self.clone()));
        let incoming = crate::router::listen(name);
        tokio::spawn(async move {
            if let Err(e) = server.serve_with_incoming(incoming).await {
                tracing::error!("in-process member-to-member service stopped: {e}");
            }
        });
        Ok(())
    }

    #[cfg(not(feature = "in-process"))]
    fn serve_in_process(self: &Arc<Self>, name: &str) -> Result<(), MemberError> {
        Err(MemberError::Bind {
            addr: format!("mem:{name}"),
            reason: "mem: addresses are the in-process test network's, not a real member's".into(),
        })
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
            .map_err(|e| MemberError::Startup(e.to_string()))?
        {
            self.raft
                .initialize(me)
                .await
                .map_err(|e| MemberError::Startup(e.to_string()))?;
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

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}
