//! Member-to-member gRPC service, the server side: Raft RPCs into openraft, forwarded commands
//! and read-index requests from followers, and cluster administration.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use openraft::error::RaftError;
use openraft::raft::AppendEntriesResponse;
use tonic::{Request, Response, Status};

use crate::command::Command;
use crate::commit_notice::{split, Pending, Ready};
use crate::member::Member;
use crate::network::{decode, encode};
use crate::pb;
use crate::pb::member_server::MemberServer;
use crate::proposer::ProposeError;

pub(crate) struct Service {
    member: Arc<Member>,
    /// A commit notice that came before its entry (`commit_notice`).
    pending: Arc<Pending>,
}

pub(crate) fn server(member: Arc<Member>) -> MemberServer<Service> {
    let pending = Arc::default();
    MemberServer::new(Service { member, pending }).max_decoding_message_size(usize::MAX)
}

fn bad_payload(e: bincode::Error) -> Status {
    Status::invalid_argument(format!("undecodable payload: {e}"))
}

/// One AppendEntries from the leader, however it came (a call of its own or on the stream).
async fn append(
    member: &Member,
    pending: &Pending,
    payload: pb::Payload,
) -> Result<pb::Payload, Status> {
    let rpc: AppendRequest = decode(&payload.data).map_err(bad_payload)?;
    #[cfg(feature = "in-process")]
    let carries_entries = !rpc.entries.is_empty();
    #[cfg(feature = "in-process")]
    if !carries_entries {
        crate::router::pause_point(&member.identity().raft_addr, "heartbeat-received").await;
    }
    let (vote, last) = (
        rpc.vote,
        rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id),
    );
    let result = append_rpc(member, rpc).await;
    if matches!(result, Ok(AppendEntriesResponse::Success)) {
        // A commit notice that came before this request's entries, or a commit inferred from
        // the leader's flush hint now that this member holds the entries too (commit_notice).
        if let Some(ready) = pending.appended(vote, last, |leader| member.quorum_with(leader)) {
            run_notice(member, pending, ready).await;
        }
    }
    #[cfg(feature = "in-process")]
    if carries_entries {
        crate::router::pause_point(&member.identity().raft_addr, "append-replied").await;
    }
    Ok(pb::Payload {
        data: encode(&result),
    })
}

type AppendRequest = openraft::raft::AppendEntriesRequest<crate::types::TypeConfig>;
type AppendResult =
    Result<AppendEntriesResponse<crate::types::NodeId>, RaftError<crate::types::NodeId>>;

async fn append_rpc(member: &Member, rpc: AppendRequest) -> AppendResult {
    // Contact is the leader's request reaching this member, not its completion: an append is
    // answered after this member's fsync, which under a load of large entries on a busy disk
    // took over a second, and the election nudge then took a live leader for silent and called
    // an election. Only a request from the leader this member follows (or a newer one) counts.
    if rpc.vote.is_committed() && rpc.vote >= member.view().vote() {
        member.heard_from_leader();
    }
    let result = member.raft().append_entries(rpc).await;
    if result.is_ok() {
        member.heard_from_leader();
    }
    result
}

/// Runs a notice this member kept or inferred (`commit_notice::Ready`) through openraft.
async fn run_notice(member: &Member, pending: &Pending, ready: Ready) {
    let result = append_rpc(member, ready.rpc.clone()).await;
    if ready.inferred {
        if matches!(result, Ok(AppendEntriesResponse::Success)) {
            metrics::counter!("halyard_raft_commits_inferred_total").increment(1);
        }
    } else {
        count_notice(&result);
    }
    // Remembers the commit openraft took; an early notice is kept again (its entry is known to
    // be appended, so that cannot repeat).
    if let Some(again) = pending.keep_if_early(ready.rpc, &result) {
        let result = append_rpc(member, again).await;
        count_notice(&result);
    }
}

fn count_notice(result: &AppendResult) {
    let outcome = match result {
        Ok(AppendEntriesResponse::Success) | Ok(AppendEntriesResponse::PartialSuccess(_)) => {
            "applied"
        }
        Ok(AppendEntriesResponse::Conflict) => "early",
        Ok(AppendEntriesResponse::HigherVote(_)) => "stale",
        Err(_) => "error",
    };
    metrics::counter!("halyard_raft_commit_notices_received_total", "result" => outcome)
        .increment(1);
}

/// Runs `chunk` (one InstallSnapshot request from the leader this member follows) as contact
/// with that leader: at once, then every heartbeat interval until it is answered.
///
/// openraft 0.9 sends a follower nothing else while a snapshot is in flight to it (no heartbeat:
/// the follower's progress has a request in flight), handles the chunks outside its core, so
/// they do not count as leader contact, and answers the last chunk only once the snapshot is
/// installed. A member catching up through a large snapshot therefore heard no leader for the
/// whole transfer and install (seconds for hundreds of megabytes), called an election, and its
/// higher term deposed the leader, which started the transfer again under the next term: with
/// a 415 MB snapshot the cluster lost its leader every 3 s, for a minute or for good
/// (tests/bench/snapshot-memory.sh; `cluster_snapshot.rs`). Contact is given to openraft as the
/// heartbeat the leader would have sent: an empty AppendEntries of the same vote whose previous
/// entry is none (always consistent: it appends, truncates and commits nothing), so openraft
/// accepts the vote and restarts its election timer exactly as for a real heartbeat; a newer
/// vote seen meanwhile makes openraft refuse it.
async fn with_leader_contact<F: std::future::Future>(
    member: &Member,
    vote: openraft::Vote<crate::types::NodeId>,
    chunk: F,
) -> F::Output {
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(
        member.config().heartbeat_ms,
    ));
    let contact = async {
        loop {
            ticks.tick().await;
            member.heard_from_leader();
            let beat = openraft::raft::AppendEntriesRequest::<crate::types::TypeConfig> {
                vote,
                prev_log_id: None,
                entries: Vec::new(),
                leader_commit: None,
            };
            // Not awaited: openraft updates the vote (and restarts its election timer) when it
            // handles the request, but answers it only after the commands queued before, and the
            // install the last chunk starts is one of them.
            let raft = member.raft().clone();
            tokio::spawn(async move {
                let _ = raft.append_entries(beat).await;
            });
        }
    };
    tokio::select! {
        result = chunk => result,
        () = contact => unreachable!("the contact loop never ends"),
    }
}

/// Proposes a follower's forwarded commands; one reply per command, in order, once all are
/// committed (or failed).
async fn forward(member: &Member, cmds: Vec<Command>) -> Vec<pb::ForwardReply> {
    #[cfg(feature = "in-process")]
    crate::router::pause_point(&member.identity().raft_addr, "forward-received").await;
    // All are queued for the proposer before any is awaited, so they share entries.
    let results =
        futures::future::join_all(cmds.into_iter().map(|cmd| member.propose_forwarded(cmd))).await;
    #[cfg(feature = "in-process")]
    crate::router::pause_point(&member.identity().raft_addr, "forward-committed").await;
    results
        .into_iter()
        .map(|r| {
            let mut reply = pb::ForwardReply::default();
            match r {
                Ok(()) => {}
                Err(ProposeError::NotLeader(addr)) => {
                    reply.not_leader = true;
                    reply.leader_addr = addr.unwrap_or_default();
                }
                Err(e) => reply.error = e.to_string(),
            }
            reply
        })
        .collect()
}

async fn next_batch(
    requests: &mut Option<tonic::Streaming<pb::ForwardBatch>>,
) -> Result<Option<pb::ForwardBatch>, Status> {
    match requests {
        Some(r) => r.message().await,
        None => std::future::pending().await,
    }
}

#[tonic::async_trait]
impl pb::member_server::Member for Service {
    async fn append_entries(
        &self,
        req: Request<pb::Payload>,
    ) -> Result<Response<pb::Payload>, Status> {
        Ok(Response::new(
            append(&self.member, &self.pending, req.into_inner()).await?,
        ))
    }

    type AppendStreamStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Payload, Status>> + Send>>;

    async fn append_stream(
        &self,
        req: Request<tonic::Streaming<pb::Payload>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        // Each request is served as the reply stream is polled (by the HTTP/2 stream's own
        // task), one at a time and in order: no task of ours in between. A bad request or a
        // broken request stream ends it; the leader opens another.
        let (member, pending) = (self.member.clone(), self.pending.clone());
        let replies = futures::stream::unfold(
            Some((req.into_inner(), member, pending)),
            |state| async move {
                let (mut requests, member, pending) = state?;
                let reply = match requests.message().await {
                    Ok(Some(payload)) => append(&member, &pending, payload).await,
                    Ok(None) => return None,
                    Err(status) => Err(status),
                };
                let next = reply.is_ok().then_some((requests, member, pending));
                Some((reply, next))
            },
        );
        Ok(Response::new(Box::pin(replies)))
    }

    async fn commit_stream(
        &self,
        req: Request<tonic::Streaming<pb::Payload>>,
    ) -> Result<Response<pb::Empty>, Status> {
        // Notices are applied in order and never answered (commit_notice).
        let mut notices = req.into_inner();
        while let Some(payload) = notices.message().await? {
            let message: AppendRequest = decode(&payload.data).map_err(bad_payload)?;
            let (notice, hint) = split(message);
            if let Some((vote, flushed)) = hint {
                metrics::counter!("halyard_raft_flush_hints_received_total").increment(1);
                let quorum = |leader| self.member.quorum_with(leader);
                if let Some(ready) = self.pending.hinted(vote, flushed, quorum) {
                    run_notice(&self.member, &self.pending, ready).await;
                }
            }
            let Some(mut notice) = notice.filter(|n| !self.pending.is_known(n)) else {
                continue;
            };
            // Run again at most once: handed back, its entry is known to be appended.
            for _ in 0..2 {
                let result = append_rpc(&self.member, notice.clone()).await;
                count_notice(&result);
                match self.pending.keep_if_early(notice, &result) {
                    Some(again) => notice = again,
                    None => break,
                }
            }
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn vote(&self, req: Request<pb::Payload>) -> Result<Response<pb::Payload>, Status> {
        let rpc = decode(&req.into_inner().data).map_err(bad_payload)?;
        let result = self.member.raft().vote(rpc).await;
        Ok(Response::new(pb::Payload {
            data: encode(&result),
        }))
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::Payload>,
    ) -> Result<Response<pb::Payload>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<crate::types::TypeConfig> =
            decode(&req.into_inner().data).map_err(bad_payload)?;
        let vote = rpc.vote;
        let install = self.member.raft().install_snapshot(rpc);
        let result = if vote.is_committed() && vote >= self.member.view().vote() {
            with_leader_contact(&self.member, vote, install).await
        } else {
            install.await
        };
        if result.is_ok() {
            self.member.heard_from_leader();
        }
        Ok(Response::new(pb::Payload {
            data: encode(&result),
        }))
    }

    async fn forward(
        &self,
        req: Request<pb::Payload>,
    ) -> Result<Response<pb::ForwardReplies>, Status> {
        let cmds: Vec<Command> = decode(&req.into_inner().data).map_err(bad_payload)?;
        let replies = forward(&self.member, cmds).await;
        Ok(Response::new(pb::ForwardReplies { replies }))
    }

    type ForwardStreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::ForwardBatchReplies, Status>> + Send>,
    >;

    async fn forward_stream(
        &self,
        req: Request<tonic::Streaming<pb::ForwardBatch>>,
    ) -> Result<Response<Self::ForwardStreamStream>, Status> {
        // Batches are proposed as they arrive and answered as they commit, all polled by the
        // HTTP/2 stream's own task. When the follower ends its side, the batches still running
        // are answered, then the stream ends. A bad batch ends it at once.
        type Running =
            FuturesUnordered<futures::future::BoxFuture<'static, pb::ForwardBatchReplies>>;
        struct State {
            requests: Option<tonic::Streaming<pb::ForwardBatch>>,
            running: Running,
            member: Arc<Member>,
        }
        let state = State {
            requests: Some(req.into_inner()),
            running: FuturesUnordered::new(),
            member: self.member.clone(),
        };
        let replies = futures::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            loop {
                let reading = state.requests.is_some();
                tokio::select! {
                    Some(reply) = state.running.next(), if !state.running.is_empty() => {
                        return Some((Ok(reply), Some(state)));
                    }
                    batch = next_batch(&mut state.requests), if reading => match batch {
                        Ok(Some(batch)) => match decode::<Vec<Command>>(&batch.commands) {
                            Ok(cmds) => {
                                let member = state.member.clone();
                                state.running.push(Box::pin(async move {
                                    pb::ForwardBatchReplies {
                                        id: batch.id,
                                        replies: forward(&member, cmds).await,
                                    }
                                }));
                            }
                            Err(e) => return Some((Err(bad_payload(e)), None)),
                        },
                        Ok(None) => state.requests = None,
                        Err(status) => return Some((Err(status), None)),
                    },
                    else => return None,
                }
            }
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn read_index(
        &self,
        _req: Request<pb::Empty>,
    ) -> Result<Response<pb::ReadIndexReply>, Status> {
        let mut reply = pb::ReadIndexReply::default();
        match self.member.raft().get_read_log_id().await {
            Ok((read, _applied)) => reply.index = read.map(|l| l.index).unwrap_or(0),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                reply.not_leader = true;
                reply.leader_addr = f.leader_node.map(|n| n.addr).unwrap_or_default();
            }
            Err(e) => reply.error = e.to_string(),
        }
        Ok(Response::new(reply))
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        let req = req.into_inner();
        let reply = match self
            .member
            .add_member(req.node_id, &req.raft_addr, !req.non_voting)
            .await
        {
            Ok(()) => pb::JoinReply {
                cluster_id: self.member.identity().cluster_id.to_string(),
                ..Default::default()
            },
            Err(crate::member::AdminError::NotLeader(addr)) => pb::JoinReply {
                not_leader: true,
                leader_addr: addr,
                ..Default::default()
            },
            Err(e) => pb::JoinReply {
                error: e.to_string(),
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let node = req.into_inner().node_id;
        Ok(Response::new(admin_reply(
            self.member.remove_member(node).await,
        )))
    }

    async fn transfer_leadership(
        &self,
        req: Request<pb::TransferRequest>,
    ) -> Result<Response<pb::AdminReply>, Status> {
        let to = req.into_inner().node_id;
        Ok(Response::new(admin_reply(
            self.member
                .transfer_leadership((to != 0).then_some(to))
                .await,
        )))
    }

    async fn leave(&self, _req: Request<pb::Empty>) -> Result<Response<pb::AdminReply>, Status> {
        let me = self.member.identity().node_id;
        Ok(Response::new(admin_reply(
            self.member
                .leave()
                .await
                .map(|()| format!("{me:016x} left the cluster")),
        )))
    }

    async fn status(&self, _req: Request<pb::Empty>) -> Result<Response<pb::StatusReply>, Status> {
        let json = serde_json::to_string(&self.member.report()).expect("a report serialises");
        Ok(Response::new(pb::StatusReply { json }))
    }
}

fn admin_reply(r: Result<String, crate::member::AdminError>) -> pb::AdminReply {
    match r {
        Ok(message) => pb::AdminReply {
            message,
            ..Default::default()
        },
        Err(crate::member::AdminError::NotLeader(addr)) => pb::AdminReply {
            not_leader: true,
            leader_addr: addr,
            ..Default::default()
        },
        Err(e) => pb::AdminReply {
            error: e.to_string(),
            ..Default::default()
        },
    }
}

/// Accepted member connections after their TLS handshake (bounded by
/// [`PEER_HANDSHAKE_TIMEOUT`](crate::network::PEER_HANDSHAKE_TIMEOUT)); a connection that fails
/// it is logged and dropped, and the others are served.
pub(crate) fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: Arc<dyn crate::network::PeerTls>,
) -> tokio_stream::wrappers::ReceiverStream<Result<PeerStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("member-to-member accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                break;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
            let tx = tx.clone();
            tokio::spawn(async move {
                let limit = crate::network::PEER_HANDSHAKE_TIMEOUT;
                match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(PeerStream(s))).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("ssl:{peer}: member-to-member TLS handshake failed: {e}")
                    }
                    Err(_) => tracing::warn!(
                        "ssl:{peer}: member-to-member TLS handshake not completed within {} s",
                        limit.as_secs()
                    ),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A member connection over TLS, as tonic's server takes it.
pub(crate) struct PeerStream(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for PeerStream {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl tokio::io::AsyncRead for PeerStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PeerStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
