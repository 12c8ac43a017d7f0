//! Member-to-member Raft RPCs over gRPC (proto/halyard.proto), the client side.
//!
//! openraft's messages travel as bincode payloads. A peer that cannot be reached is `Unreachable`
//! (openraft backs off, then retries); a reply that misses its deadline is a `Network` error
//! (retried at once); an error returned by the remote Raft is a `RemoteError`. Every call is
//! bounded by the deadline openraft gives in `RPCOption`.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::pb::member_client::MemberClient;
use crate::pb::Payload;
use crate::types::{NodeId, TypeConfig};

/// How long a member waits to establish a connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A client for the member at `addr` (`HOST:PORT`). One lazily connecting HTTP/2 channel per
/// address is shared by every caller (Raft RPCs, forwarded writes, read barriers, admin), so a
/// forwarded write or a read barrier never pays for a new connection.
pub fn client(addr: &str) -> Result<MemberClient<Channel>, tonic::transport::Error> {
    static CHANNELS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Channel>>,
    > = std::sync::OnceLock::new();
    let channels = CHANNELS.get_or_init(Default::default);
    let mut channels = channels.lock().unwrap();
    let channel = match channels.get(addr) {
        Some(c) => c.clone(),
        None => {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            let c = endpoint.connect_lazy();
            channels.insert(addr.to_string(), c.clone());
            c
        }
    };
    Ok(MemberClient::new(channel).max_decoding_message_size(usize::MAX))
}

/// When each peer last answered a Raft RPC (the leader's view of who is alive, for lock leases).
#[derive(Default)]
pub struct PeerContact(std::sync::Mutex<std::collections::HashMap<NodeId, std::time::Instant>>);

impl PeerContact {
    pub fn last(&self, node: NodeId) -> Option<std::time::Instant> {
        self.0.lock().unwrap().get(&node).copied()
    }

    fn touch(&self, node: NodeId) {
        self.0
            .lock()
            .unwrap()
            .insert(node, std::time::Instant::now());
    }
}

pub struct Network {
    pub contact: std::sync::Arc<PeerContact>,
}

pub struct Peer {
    contact: std::sync::Arc<PeerContact>,
    target: NodeId,
    addr: String,
    client: Option<MemberClient<Channel>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(String);

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        let client = match client(&node.addr) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(peer = target, addr = %node.addr, "bad peer address: {e}");
                None
            }
        };
        Peer {
            contact: self.contact.clone(),
            target,
            addr: node.addr.clone(),
            client,
        }
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialisation cannot fail")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |msg: String| RPCError::Unreachable(Unreachable::new(&Transport(msg)));
        let Some(client) = self.client.as_mut() else {
            return Err(unreachable(format!("bad peer address {}", self.addr)));
        };
        let mut request = tonic::Request::new(Payload { data: encode(req) });
        request.set_timeout(option.hard_ttl());
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| {
            let msg = format!("{} ({})", status.message(), self.addr);
            match status.code() {
                // A peer that is down or refuses connections: openraft backs off (500 ms).
                tonic::Code::Unavailable => unreachable(msg),
                // A slow reply (the deadline is openraft's heartbeat interval, 100 ms by default,
                // easily passed by a follower's fsync on a loaded machine): retried at once, as
                // openraft does for its own timeouts. As `Unreachable`, each such timeout stopped
                // replication to that follower for 500 ms, and under load the leader went whole
                // seconds without a quorum ack (writes stalled, `_Server.connected` false).
                _ => RPCError::Network(NetworkError::new(&Transport(msg))),
            }
        })?;
        self.contact.touch(self.target);
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply.into_inner().data).map_err(|e| {
                RPCError::Network(NetworkError::new(&Transport(format!(
                    "undecodable reply: {e}"
                ))))
            })?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
