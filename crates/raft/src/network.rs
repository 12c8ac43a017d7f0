//! Member-to-member Raft RPCs over gRPC (proto/halyard.proto), the client side.
//!
//! openraft's messages travel as bincode payloads. A peer that cannot be reached is `Unreachable`
//! (openraft backs off, then retries); a reply that misses its deadline is a `Network` error
//! (retried at once); an error returned by the remote Raft is a `RemoteError`.
//!
//! Deadlines. openraft 0.9 gives every AppendEntries one heartbeat interval (50 ms by default)
//! and drops the call after it, whatever it carries. A request with entries must be sent,
//! decoded, written and flushed by the follower in that time; on a busy machine even a bounded
//! request (`config::REPLICATION_BATCH_BYTES`) sometimes is not, and a request that never
//! finishes in time is re-sent for ever: replication to that follower stops for good (this
//! wedged clusters under loads of large rows). So a request with entries runs as a *transfer*
//! on its own task, with a deadline that follows its size (`transfer_deadline`); openraft's
//! call waits for it up to its own deadline and otherwise reports it still in flight, and the
//! retry that follows (same leader, same previous entry) joins the same transfer instead of
//! starting another. While a transfer is in flight each retry also sends the follower an empty
//! AppendEntries (a heartbeat), so the follower keeps hearing from its leader and calls no
//! election. Votes and heartbeats are never queued behind a transfer: they are separate calls
//! (HTTP/2 streams) on the connection.
//!
//! The stream. Every other AppendEntries (heartbeats, the commit index, entries up to
//! `STREAM_APPEND_BYTES`) travels on one long-lived `AppendStream` per peer: a request is one
//! HTTP/2 DATA frame and so is its reply, where a call of its own opens a stream (HEADERS, DATA
//! and an end-of-stream frame, three writes, with a hand-off between tasks before the DATA) and
//! answers with HEADERS, DATA and trailers. On one client writing at a time that was about
//! 50 us of every write's critical path, twice for a write through a follower
//! (docs/performance.md, "One writer at a time"). The stream carries one request at a time,
//! so each reply belongs to the request before it. A reply openraft stopped waiting for (its
//! deadline passed) stays owed: the retry that asks for the same entries waits on for it (as a
//! retry joins a transfer), a heartbeat meanwhile goes on a call of its own, and a request for
//! anything else drops the stream and opens a new one, so a stale reply is never read as the
//! answer to another request.
//!
//! Addresses. A member's Raft address is `HOST:PORT` or `tcp:HOST:PORT` (plain gRPC) or
//! `ssl:HOST:PORT` (gRPC over TLS, as with `ovsdb-tool create-cluster`). Over TLS both members
//! authenticate with the key, certificate and CA given to `serve` ([`PeerTls`]); the handshake
//! is ours (a connector here, an accept loop in the member) rather than tonic's, so that the
//! peer is verified against the CA alone, as Open vSwitch does, and rotated files apply to the
//! next connection.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, LogId, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::pb::member_client::MemberClient;
use crate::pb::Payload;
use crate::types::{NodeId, TypeConfig};

/// AppendEntries requests up to this size (encoded) travel on the peer's stream; larger ones
/// are transfers of their own (see the module header).
const STREAM_APPEND_BYTES: usize = 256 * 1024;
/// How long a member waits to establish a connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// HTTP/2 flow-control windows of member-to-member connections (both ends).
pub(crate) const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
pub(crate) const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Streams a peer may cancel before this member's service has taken them, on one connection,
/// before h2 closes the connection (its guard against the "rapid reset" attack: 20 by default,
/// then GOAWAY with ENHANCE_YOUR_CALM). Members cancel their calls at their deadlines (one
/// heartbeat interval for most): when a partition or a pause ends, dozens of queued heartbeats,
/// votes and appends are cancelled at once, and the connection was closed just as the members
/// needed it, failing every call in flight on it ("remotely-reset pending-accept streams reached
/// limit" in the log, about 50 times in a 420 s soak). Members are peers of one cluster (with
/// TLS, authenticated ones).
pub(crate) const PEER_PENDING_RESET_STREAMS: usize = 10_000;
/// A transfer's deadline: this much, plus [`TRANSFER_SECS_PER_MB`] per MB it carries.
const TRANSFER_BASE: Duration = Duration::from_secs(5);
/// Seconds per MB of entries added to a transfer's deadline: a floor of 1 MB/s, far below any
/// link members use, so only a peer that is gone or stuck ends a transfer by its deadline.
const TRANSFER_SECS_PER_MB: u64 = 1;

/// How long a transfer of `bytes` may take before it is abandoned (and retried).
fn transfer_deadline(bytes: usize) -> Duration {
    TRANSFER_BASE + Duration::from_secs(TRANSFER_SECS_PER_MB * (bytes as u64 / 1_000_000))
}

/// The TLS configurations members use between themselves (built from `serve`'s
/// `--private-key`, `--certificate`, `--ca-cert`), asked for at each new connection so a
/// rotated certificate is used from then on.
pub trait PeerTls: Send + Sync + 'static {
    /// For accepting a member: requires a certificate signed by the CA.
    fn server_config(&self) -> std::sync::Arc<rustls::ServerConfig>;
    /// For dialling a member: presents our certificate and verifies the peer's chain.
    fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig>;
}

static PEER_TLS: std::sync::OnceLock<std::sync::Arc<dyn PeerTls>> = std::sync::OnceLock::new();

/// Installs the process's member TLS configuration (once, before the member starts).
pub fn set_peer_tls(tls: std::sync::Arc<dyn PeerTls>) {
    let _ = PEER_TLS.set(tls);
}

pub(crate) fn peer_tls() -> Option<std::sync::Arc<dyn PeerTls>> {
    PEER_TLS.get().cloned()
}

/// Whether a Raft address asks for TLS, and its `HOST:PORT`.
pub fn split_addr(addr: &str) -> (bool, &str) {
    if let Some(rest) = addr.strip_prefix("ssl:") {
        (true, rest)
    } else {
        (false, addr.strip_prefix("tcp:").unwrap_or(addr))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}: an ssl: member address needs --private-key, --certificate and --ca-cert")]
    NoTls(String),
    /// `mem:` addresses exist only in test builds with the in-process network.
    #[error("{0}: mem: addresses are the in-process test network's, not a real member's")]
    Mem(String),
}

/// A client for the member at `addr` (see the module header for its forms). One lazily
/// connecting HTTP/2 channel per address is shared by every caller (Raft RPCs, forwarded
/// writes, read barriers, admin), so a forwarded write or a read barrier never pays for a new
/// connection.
pub fn client(addr: &str) -> Result<MemberClient<Channel>, ClientError> {
    static CHANNELS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Channel>>,
    > = std::sync::OnceLock::new();
    let channels = CHANNELS.get_or_init(Default::default);
    let mut channels = channels.lock().unwrap();
    let channel = match channels.get(addr) {
        Some(c) => c.clone(),
        None if addr.starts_with("mem:") => {
            let c = mem_channel(addr)?;
            channels.insert(addr.to_string(), c.clone());
            c
        }
        None => {
            let (tls, host_port) = split_addr(addr);
            let endpoint = Endpoint::from_shared(format!("http://{host_port}"))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                // HTTP/2's default 64 KiB windows make a MB-sized request wait for a window
                // update every 64 KiB.
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            let c = if tls {
                let config = peer_tls().ok_or_else(|| ClientError::NoTls(addr.to_string()))?;
                endpoint.connect_with_connector_lazy(tls_connector(host_port.to_string(), config))
            } else {
                endpoint.connect_lazy()
            };
            channels.insert(addr.to_string(), c.clone());
            c
        }
    };
    Ok(MemberClient::new(channel).max_decoding_message_size(usize::MAX))
}

/// A channel to the in-process member `mem:NAME` (see `router`).
#[cfg(feature = "in-process")]
fn mem_channel(addr: &str) -> Result<Channel, ClientError> {
    let name = addr["mem:".len()..].to_string();
    let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
        let name = name.clone();
        async move { crate::router::connect(&name).map(hyper_util::rt::TokioIo::new) }
    });
    Ok(Endpoint::from_static("http://in-process.invalid")
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect_with_connector_lazy(connector))
}

#[cfg(not(feature = "in-process"))]
fn mem_channel(addr: &str) -> Result<Channel, ClientError> {
    Err(ClientError::Mem(addr.to_string()))
}

/// Dials `host_port` and runs the client side of the TLS handshake, each bounded by
/// [`CONNECT_TIMEOUT`] and [`PEER_HANDSHAKE_TIMEOUT`].
fn tls_connector(
    host_port: String,
    tls: std::sync::Arc<dyn PeerTls>,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Send,
> + Send
       + Clone
       + 'static {
    tower::service_fn(move |_uri: tonic::transport::Uri| {
        let host_port = host_port.clone();
        let tls = tls.clone();
        async move {
            let timed_out = |what: &str| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{what} {host_port} timed out"),
                )
            };
            let tcp =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&host_port))
                    .await
                    .map_err(|_| timed_out("connecting to"))??;
            let _ = tcp.set_nodelay(true);
            // The name only has to be well formed: the peer is verified against the CA.
            let host = host_port
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                .unwrap_or(&host_port);
            let name =
                rustls::pki_types::ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
                    rustls::pki_types::ServerName::try_from("halyard-member").expect("valid name")
                });
            let connector = tokio_rustls::TlsConnector::from(tls.client_config());
            let stream = tokio::time::timeout(PEER_HANDSHAKE_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| timed_out("TLS handshake with"))?
                .map_err(|e| {
                    tracing::warn!(peer = %host_port, "TLS handshake with member failed: {e}");
                    e
                })?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// How long a member-to-member TLS handshake may take, either side.
pub const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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
    contact: std::sync::Arc<PeerContact>,
    /// The commit notices to each peer (`commit_notice`), sent by the leader's core as the
    /// commit index moves. They outlive a replication session (one stream per peer, idle while
    /// this member does not lead); the client is the latest `new_client` made for the peer.
    notices: std::collections::HashMap<NodeId, Notices>,
}

struct Notices {
    addr: String,
    client: Option<MemberClient<Channel>>,
    sender: crate::commit_notice::Sender,
}

impl Network {
    pub fn new(contact: std::sync::Arc<PeerContact>) -> Network {
        Network {
            contact,
            notices: Default::default(),
        }
    }
}

pub struct Peer {
    contact: std::sync::Arc<PeerContact>,
    target: NodeId,
    addr: String,
    client: Option<MemberClient<Channel>>,
    /// The AppendEntries with entries in flight to this peer as a transfer, if any.
    transfer: Option<Transfer>,
    /// The AppendEntries stream to this peer, once opened (see the module header).
    stream: Option<AppendStream>,
    /// AppendEntries are calls of their own: the first of this client (openraft makes a
    /// client per replication session, which sends many, and one per leadership check for a
    /// read, which sends one: a stream would only add its opening to those), and all of them
    /// when the peer has no `AppendStream` (a member of an earlier version, during an upgrade).
    calls_only: bool,
    /// The peer has no `AppendStream`.
    no_stream: bool,
}

type AppendResult =
    Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>>;

/// An AppendEntries with entries, running on its own task (see the module header).
struct Transfer {
    sent: Sent,
    task: tokio::task::JoinHandle<AppendResult>,
}

impl Transfer {
    fn serves(&self, rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
        self.sent.serves(rpc)
    }
}

/// What an AppendEntries in flight asked for.
#[derive(Clone, Copy)]
struct Sent {
    vote: Vote<NodeId>,
    prev: Option<LogId<NodeId>>,
    last: Option<LogId<NodeId>>,
    leader_commit: Option<LogId<NodeId>>,
}

impl Sent {
    fn of(rpc: &AppendEntriesRequest<TypeConfig>) -> Sent {
        Sent {
            vote: rpc.vote,
            prev: rpc.prev_log_id,
            last: rpc.entries.last().map(|e| e.log_id),
            leader_commit: rpc.leader_commit,
        }
    }

    /// Whether `rpc` asks for what is already being sent: entries, from the same leader and
    /// the same previous entry (so its entries start alike; the reader bounds both by bytes).
    /// A request without entries is never one to wait for: the answer to a heartbeat says
    /// nothing of the entries a retry carries (read as theirs, it took the follower's match
    /// back to nothing, and the leader went back to a snapshot for it).
    fn serves(&self, rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
        self.last.is_some()
            && !rpc.entries.is_empty()
            && self.vote == rpc.vote
            && self.prev == rpc.prev_log_id
    }

    /// An empty AppendEntries that keeps the follower hearing from its leader while this one
    /// is in flight.
    fn heartbeat(&self) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: self.vote,
            prev_log_id: self.prev,
            leader_commit: self.leader_commit.min(self.prev),
            entries: Vec::new(),
        }
    }

    /// The answer to a retry that wanted entries up to `wanted_last`, from the answer to this
    /// request: it may have carried fewer entries than the retry asks for (the log grew
    /// meanwhile), so it reports what the follower has.
    // openraft's error type, as `RaftNetwork` returns it.
    #[allow(clippy::result_large_err)]
    fn answer_for(&self, wanted_last: Option<LogId<NodeId>>, result: AppendResult) -> AppendResult {
        match result? {
            AppendEntriesResponse::Success if self.last < wanted_last => {
                Ok(AppendEntriesResponse::PartialSuccess(self.last))
            }
            AppendEntriesResponse::PartialSuccess(m) => {
                Ok(AppendEntriesResponse::PartialSuccess(m.min(wanted_last)))
            }
            other => Ok(other),
        }
    }
}

/// The long-lived AppendEntries stream to a peer (`AppendStream` in proto/halyard.proto): one
/// request at a time, each answered by the next reply.
struct AppendStream {
    requests: tokio::sync::mpsc::Sender<Payload>,
    replies: tonic::Streaming<Payload>,
    /// The request whose reply has not been read yet (its caller gave up waiting).
    in_flight: Option<Sent>,
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
        match self.notices.get_mut(&target) {
            Some(n) if n.addr == node.addr => n.client = client.clone(),
            _ => {
                // A new peer, or a new address for it: a stream to the old one is dropped.
                let n = Notices {
                    addr: node.addr.clone(),
                    client: client.clone(),
                    sender: Default::default(),
                };
                self.notices.insert(target, n);
            }
        }
        Peer {
            contact: self.contact.clone(),
            target,
            addr: node.addr.clone(),
            client,
            transfer: None,
            stream: None,
            calls_only: true,
            no_stream: false,
        }
    }

    fn notify_committed(
        &mut self,
        target: &NodeId,
        vote: &Vote<NodeId>,
        committed: &LogId<NodeId>,
    ) -> bool {
        let Some(n) = self.notices.get_mut(target) else {
            return false;
        };
        n.sender
            .notify(n.client.as_ref(), *target, *vote, *committed)
    }

    fn notify_flushed(
        &mut self,
        target: &NodeId,
        vote: &Vote<NodeId>,
        flushed: &LogId<NodeId>,
        committed: Option<&LogId<NodeId>>,
    ) -> bool {
        let Some(n) = self.notices.get_mut(target) else {
            return false;
        };
        n.sender.hint(
            n.client.as_ref(),
            *target,
            *vote,
            *flushed,
            committed.copied(),
        )
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialisation cannot fail")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}

#[derive(Clone, Copy)]
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
        let Some(client) = self.client.clone() else {
            return Err(unreachable(format!("bad peer address {}", self.addr)));
        };
        call(
            client,
            self.contact.clone(),
            self.target,
            self.addr.clone(),
            rpc,
            encode(req),
            option.hard_ttl(),
        )
        .await
    }

    /// AppendEntries with entries, as a transfer (see the module header). `data` is `rpc`
    /// encoded.
    async fn transfer(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        data: Vec<u8>,
        option: RPCOption,
    ) -> AppendResult {
        if self.transfer.as_ref().is_some_and(|t| !t.serves(&rpc)) {
            // openraft moved on (new leader term, a conflict, a snapshot): what the old
            // transfer carries is no longer asked for. It finishes or fails on its own.
            self.transfer = None;
        }
        let wanted_last = rpc.entries.last().map(|e| e.log_id);
        match &self.transfer {
            Some(t) => {
                // A retry of the transfer in flight: a heartbeat keeps the follower from
                // calling an election meanwhile. A higher vote in its answer ends this leadership.
                let heartbeat = t.sent.heartbeat();
                let beat: AppendResult = self.call(Rpc::Append, &heartbeat, &option).await;
                if let Ok(AppendEntriesResponse::HigherVote(v)) = beat {
                    return Ok(AppendEntriesResponse::HigherVote(v));
                }
            }
            None => {
                let Some(client) = self.client.clone() else {
                    return Err(self.bad_address());
                };
                let deadline = transfer_deadline(data.len());
                let (target, bytes, sent) = (self.target, data.len(), Sent::of(&rpc));
                let call = call(
                    client,
                    self.contact.clone(),
                    self.target,
                    self.addr.clone(),
                    Rpc::Append,
                    data,
                    deadline,
                );
                let task = tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let result = call.await;
                    log_slow_transfer(target, bytes, sent, started.elapsed(), &result);
                    result
                });
                self.transfer = Some(Transfer { sent, task });
            }
        }
        let t = self.transfer.as_mut().expect("set above");
        // Answer before openraft's own deadline drops this call.
        let Ok(joined) = tokio::time::timeout(option.soft_ttl(), &mut t.task).await else {
            return Err(self.still_in_flight());
        };
        let sent = t.sent;
        self.transfer = None;
        let result = joined.map_err(|e| {
            RPCError::Network(NetworkError::new(&Transport(format!(
                "append task failed: {e}"
            ))))
        })?;
        sent.answer_for(wanted_last, result)
    }

    /// AppendEntries on the stream (see the module header). `data` is `rpc` encoded.
    async fn streamed(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        data: Vec<u8>,
        option: RPCOption,
    ) -> AppendResult {
        let wanted_last = rpc.entries.last().map(|e| e.log_id);
        let in_flight = self.stream.as_ref().and_then(|s| s.in_flight);
        match in_flight {
            Some(sent) if sent.serves(&rpc) => {
                // A retry of the request whose reply is late: keep the follower hearing from
                // its leader on a call of its own (the stream is busy), then wait on.
                let beat: AppendResult = self.call(Rpc::Append, &sent.heartbeat(), &option).await;
                if let Ok(AppendEntriesResponse::HigherVote(v)) = beat {
                    return Ok(AppendEntriesResponse::HigherVote(v));
                }
            }
            // A heartbeat while the stream is busy goes on a call of its own.
            Some(_) if rpc.entries.is_empty() => {
                return self.call(Rpc::Append, &rpc, &option).await;
            }
            _ => {
                // openraft moved on from a late request (or there is none): a fresh stream
                // never delivers the stale reply to the new request.
                if in_flight.is_some() {
                    self.stream = None;
                }
                if let Err(e) = self.send_on_stream(data, &option).await {
                    self.stream = None;
                    return Err(e);
                }
                self.stream.as_mut().expect("opened").in_flight = Some(Sent::of(&rpc));
            }
        }
        let stream = self.stream.as_mut().expect("a request in flight");
        let sent = stream.in_flight.expect("a request in flight");
        let reply = match tokio::time::timeout(option.soft_ttl(), stream.replies.message()).await {
            // Answered before openraft's own deadline drops this call; the reply is read by
            // the retry that follows.
            Err(_) => return Err(self.still_in_flight()),
            Ok(reply) => reply,
        };
        stream.in_flight = None;
        let payload = match reply {
            Ok(Some(payload)) => payload,
            Ok(None) => {
                self.stream = None;
                return Err(RPCError::Network(NetworkError::new(&Transport(format!(
                    "append stream to {} ended",
                    self.addr
                )))));
            }
            Err(status) => {
                self.stream = None;
                return Err(self.stream_failed(status));
            }
        };
        self.contact.touch(self.target);
        sent.answer_for(wanted_last, decode_reply(self.target, payload))
    }

    /// Sends `data` on the stream, opening it first if there is none.
    async fn send_on_stream(
        &mut self,
        data: Vec<u8>,
        option: &RPCOption,
    ) -> Result<(), AppendError> {
        let payload = Payload { data };
        if let Some(stream) = &self.stream {
            return stream.requests.send(payload).await.map_err(|_| {
                RPCError::Network(NetworkError::new(&Transport(format!(
                    "append stream to {} closed",
                    self.addr
                ))))
            });
        }
        let Some(mut client) = self.client.clone() else {
            return Err(self.bad_address());
        };
        // The first request waits in the channel and travels with the stream's opening.
        let (requests, rx) = tokio::sync::mpsc::channel(1);
        requests.try_send(payload).expect("a new channel has room");
        let opened = tokio::time::timeout(
            option.hard_ttl(),
            client.append_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await
        .map_err(|_| {
            RPCError::Network(NetworkError::new(&Transport(format!(
                "opening the append stream to {} timed out",
                self.addr
            ))))
        })?
        .map_err(|status| self.stream_failed(status))?;
        self.stream = Some(AppendStream {
            requests,
            replies: opened.into_inner(),
            in_flight: None,
        });
        Ok(())
    }

    /// The error for a stream that failed with `status`; a peer without the stream (the
    /// call is unknown to it) gets calls from now on.
    fn stream_failed(&mut self, status: tonic::Status) -> AppendError {
        if status.code() == tonic::Code::Unimplemented {
            tracing::info!(peer = %self.addr, "peer has no append stream: AppendEntries as calls");
            self.no_stream = true;
            self.calls_only = true;
        }
        status_error(status, &self.addr)
    }

    fn bad_address<E: std::error::Error>(
        &self,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::Unreachable(Unreachable::new(&Transport(format!(
            "bad peer address {}",
            self.addr
        ))))
    }

    fn still_in_flight(&self) -> AppendError {
        RPCError::Network(NetworkError::new(&Transport(format!(
            "append to {} still in flight",
            self.addr
        ))))
    }
}

type AppendError = RPCError<NodeId, BasicNode, RaftError<NodeId>>;

/// A transfer that took longer than this is logged (with its outcome): replication to that
/// follower, and the commit if it is needed for a quorum, waited for it.
const SLOW_TRANSFER: Duration = Duration::from_secs(1);

fn log_slow_transfer(
    target: NodeId,
    bytes: usize,
    sent: Sent,
    took: Duration,
    result: &AppendResult,
) {
    if took < SLOW_TRANSFER {
        return;
    }
    let outcome = match result {
        Ok(AppendEntriesResponse::Success) => "success".to_string(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("failed: {e}"),
    };
    tracing::warn!(
        peer = %format_args!("{target:016x}"),
        bytes,
        took_ms = took.as_millis() as u64,
        prev = ?sent.prev.map(|l| l.index),
        last = ?sent.last.map(|l| l.index),
        term = sent.vote.leader_id().term,
        "slow append transfer: {outcome}"
    );
}

/// openraft's error kind for a failed gRPC call to `addr`.
fn status_error<E: std::error::Error>(
    status: tonic::Status,
    addr: &str,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    let msg = format!("{} ({addr})", status.message());
    match status.code() {
        // A peer that is down or refuses connections: openraft backs off (500 ms).
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&Transport(msg))),
        // A slow reply (a heartbeat's or a vote's deadline is openraft's, a fraction of the
        // election timer, easily passed by a follower's fsync on a loaded machine): retried at
        // once, as openraft does for its own timeouts. As `Unreachable`, each such timeout
        // stopped replication to that follower for 500 ms, and under load the leader went whole
        // seconds without a quorum ack (writes stalled, `_Server.connected` false).
        _ => RPCError::Network(NetworkError::new(&Transport(msg))),
    }
}

/// A reply's payload from `target`: the remote Raft's result, with openraft's error kinds.
#[allow(clippy::result_large_err)] // openraft's error type, as `RaftNetwork` returns it
fn decode_reply<Resp, E>(
    target: NodeId,
    payload: Payload,
) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
where
    Resp: DeserializeOwned,
    E: std::error::Error + DeserializeOwned,
{
    let result: Result<Resp, RaftError<NodeId, E>> = decode(&payload.data).map_err(|e| {
        RPCError::Network(NetworkError::new(&Transport(format!(
            "undecodable reply: {e}"
        ))))
    })?;
    result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

/// One call to the peer at `addr`, bounded by `deadline`, with openraft's error kinds.
async fn call<Resp, E>(
    mut client: MemberClient<Channel>,
    contact: std::sync::Arc<PeerContact>,
    target: NodeId,
    addr: String,
    rpc: Rpc,
    data: Vec<u8>,
    deadline: Duration,
) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
where
    Resp: DeserializeOwned,
    E: std::error::Error + DeserializeOwned,
{
    let mut request = tonic::Request::new(Payload { data });
    request.set_timeout(deadline);
    let reply = match rpc {
        Rpc::Append => client.append_entries(request).await,
        Rpc::Vote => client.vote(request).await,
        Rpc::Snapshot => client.install_snapshot(request).await,
    };
    let reply = reply.map_err(|status| status_error(status, &addr))?;
    contact.touch(target);
    decode_reply(target, reply.into_inner())
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        // A retry of a transfer joins it; a request too large for the stream is a transfer.
        let calls_only = std::mem::replace(&mut self.calls_only, self.no_stream);
        if calls_only && rpc.entries.is_empty() {
            return self.call(Rpc::Append, &rpc, &option).await;
        }
        let data = encode(&rpc);
        if !rpc.entries.is_empty()
            && (calls_only
                || data.len() > STREAM_APPEND_BYTES
                || self.transfer.as_ref().is_some_and(|t| t.serves(&rpc)))
        {
            return self.transfer(rpc, data, option).await;
        }
        self.streamed(rpc, data, option).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        assert_eq!(split_addr("ssl:10.0.0.1:6643"), (true, "10.0.0.1:6643"));
        assert_eq!(split_addr("tcp:10.0.0.1:6643"), (false, "10.0.0.1:6643"));
        assert_eq!(split_addr("10.0.0.1:6643"), (false, "10.0.0.1:6643"));
        let own = "ssl:10.0.0.1:6643";
        assert!(crate::member::check_same_transport(own, ["ssl:10.0.0.2:6643"]).is_ok());
        let e =
            crate::member::check_same_transport(own, ["ssl:10.0.0.2:1", "10.0.0.3:1"]).unwrap_err();
        assert!(e.starts_with(crate::member::MIXED_TLS), "{e}");
        assert!(e.contains("10.0.0.3:1"), "{e}");
        assert!(crate::member::check_same_transport("tcp:a:1", ["b:2", "tcp:c:3"]).is_ok());
    }

    fn append(prev: u64, entries: std::ops::Range<u64>) -> AppendEntriesRequest<TypeConfig> {
        let id = |i: u64| LogId::new(openraft::CommittedLeaderId::new(1, 1), i);
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(id(prev)),
            leader_commit: Some(id(prev)),
            entries: entries
                .map(|i| openraft::Entry {
                    log_id: id(i),
                    payload: openraft::EntryPayload::Blank,
                })
                .collect(),
        }
    }

    #[test]
    fn only_a_request_with_entries_is_waited_for_by_a_retry() {
        let with_entries = Sent::of(&append(5, 6..9));
        assert!(
            with_entries.serves(&append(5, 6..10)),
            "the same entries and more"
        );
        assert!(
            !with_entries.serves(&append(8, 9..10)),
            "another previous entry"
        );
        let empty = append(5, 6..6);
        assert!(
            !with_entries.serves(&empty),
            "a heartbeat is sent on its own"
        );
        // A late heartbeat: its answer is no answer for entries.
        let heartbeat = Sent::of(&empty);
        assert!(!heartbeat.serves(&append(5, 6..9)));
        // The answer for a retry that wanted more than was sent is what was sent.
        let partial = with_entries.answer_for(
            Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 9)),
            Ok(AppendEntriesResponse::Success),
        );
        assert_eq!(
            partial.unwrap(),
            AppendEntriesResponse::PartialSuccess(with_entries.last)
        );
    }

    #[tokio::test]
    async fn ssl_address_without_tls_settings_is_a_clear_error() {
        // No test in this binary installs member TLS.
        let e = client("ssl:127.0.0.1:1").unwrap_err().to_string();
        assert!(e.contains("needs --private-key"), "{e}");
    }
}
