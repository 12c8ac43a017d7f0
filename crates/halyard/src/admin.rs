//! Membership and leadership administration from the command line: `leave`, `kick`,
//! `promote`, `transfer-leadership`. Each talks to a member's Raft address over the member-to-member gRPC
//! service and follows the "not leader" hints to the leader.

use anyhow::{anyhow, bail, Context, Result};
use halyard_raft::pb;
use halyard_raft::pb::member_client::MemberClient;
use halyard_raft::MemberReport;
use tonic::transport::Channel;

async fn connect(addr: &str) -> Result<MemberClient<Channel>> {
    if halyard_raft::split_addr(addr).0 {
        // TLS: the member transport's own connector, with the files given on the command line.
        return halyard_raft::member_client(addr).map_err(|e| anyhow!("{e}"));
    }
    let addr = halyard_raft::split_addr(addr).1;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("bad member address {addr:?} (expected HOST:PORT)"))?
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(60));
    let channel = endpoint.connect().await.with_context(|| {
        format!("cannot reach the member at {addr} (is `halyard serve` running there?)")
    })?;
    Ok(MemberClient::new(channel))
}

/// The member's report of itself (see `Member::report`).
pub async fn member_status(addr: &str) -> Result<MemberReport> {
    let reply = connect(addr)
        .await?
        .status(pb::Empty {})
        .await
        .map_err(|s| anyhow!("{addr}: {}", s.message()))?;
    serde_json::from_str(&reply.into_inner().json)
        .with_context(|| format!("{addr}: undecodable status report"))
}

/// Resolves MEMBER against the membership (see `MemberReport::find_member`).
fn resolve(status: &MemberReport, member: &str) -> Result<(u64, String)> {
    let m = status.find_member(member)?;
    Ok((m.id, m.address.clone()))
}

enum Op {
    Remove(u64),
    /// The member asked leaves (it hands leadership over first if it leads).
    Leave,
    Transfer(u64),
    /// Make the non-voting member (id, Raft address) a voter.
    Promote(u64, String),
}

/// Sends the operation to `addr`, following "not leader" hints to the leader.
async fn at_leader(addr: &str, op: Op) -> Result<String> {
    let mut target = addr.to_string();
    for _ in 0..10 {
        let mut client = connect(&target).await?;
        let reply = match &op {
            Op::Remove(node_id) => client.remove(pb::RemoveRequest { node_id: *node_id }).await,
            Op::Leave => client.leave(pb::Empty {}).await,
            Op::Transfer(node_id) => {
                client
                    .transfer_leadership(pb::TransferRequest { node_id: *node_id })
                    .await
            }
            Op::Promote(node_id, raft_addr) => client
                .join(pb::JoinRequest {
                    node_id: *node_id,
                    raft_addr: raft_addr.clone(),
                    server_id: String::new(),
                    non_voting: false,
                })
                .await
                .map(|r| {
                    r.map(|j| pb::AdminReply {
                        not_leader: j.not_leader,
                        leader_addr: j.leader_addr,
                        message: format!("{node_id:016x} is a voter"),
                        error: j.error,
                    })
                }),
        }
        .map_err(|s| anyhow!("{target}: {}", s.message()))?
        .into_inner();
        if reply.not_leader {
            if reply.leader_addr.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            } else {
                target = reply.leader_addr;
            }
            continue;
        }
        if !reply.error.is_empty() {
            bail!("{target}: {}", reply.error);
        }
        return Ok(reply.message);
    }
    bail!("no leader accepted the request (an election may be in progress); try again")
}

/// `halyard kick --peer ADDR MEMBER`.
pub async fn kick(peer: &str, member: &str) -> Result<String> {
    let status = member_status(peer).await?;
    let (id, _) = resolve(&status, member)?;
    at_leader(peer, Op::Remove(id)).await
}

/// `halyard leave --peer ADDR`: the member at ADDR leaves (`Member::leave`, the same as its
/// `cluster/leave`).
pub async fn leave(peer: &str) -> Result<String> {
    at_leader(peer, Op::Leave).await
}

/// `halyard promote --peer ADDR MEMBER`: the non-voting MEMBER becomes a voter.
pub async fn promote(peer: &str, member: &str) -> Result<String> {
    let status = member_status(peer).await?;
    let (id, addr) = resolve(&status, member)?;
    if status.peer(id).is_some_and(|m| m.voter) {
        bail!("{member:?} ({id:016x}) is already a voter");
    }
    at_leader(peer, Op::Promote(id, addr)).await
}

/// `halyard transfer-leadership --peer ADDR [MEMBER]`.
pub async fn transfer(peer: &str, member: Option<&str>) -> Result<String> {
    let status = member_status(peer).await?;
    let to = match member {
        Some(m) => resolve(&status, m)?.0,
        None => 0,
    };
    at_leader(peer, Op::Transfer(to)).await
}
