//! Membership and leadership administration from the command line: `leave`, `kick`,
//! `promote`, `transfer-leadership`. Each talks to a member's Raft address over the member-to-member gRPC
//! service and follows the "not leader" hints to the leader.

use anyhow::{anyhow, bail, Context, Result};
use halyard_raft::pb;
use halyard_raft::pb::member_client::MemberClient;
use serde_json::Value;
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

/// The member's own status document (see `Member::status_json`).
pub async fn member_status(addr: &str) -> Result<Value> {
    let reply = connect(addr)
        .await?
        .status(pb::Empty {})
        .await
        .map_err(|s| anyhow!("{addr}: {}", s.message()))?;
    serde_json::from_str(&reply.into_inner().json).context("undecodable status")
}

/// Resolves MEMBER (a node id or server id prefix, or a Raft address) against the membership.
fn resolve(status: &Value, member: &str) -> Result<(u64, String)> {
    let members = status["members"].as_array().cloned().unwrap_or_default();
    let matches: Vec<&Value> = members
        .iter()
        .filter(|m| {
            m["address"].as_str() == Some(member)
                || m["id"].as_str().is_some_and(|id| id.starts_with(member))
                || m["server_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(member))
        })
        .collect();
    match matches.as_slice() {
        [m] => {
            let id = u64::from_str_radix(m["id"].as_str().unwrap_or_default(), 16)
                .context("bad member id")?;
            Ok((id, m["address"].as_str().unwrap_or_default().to_string()))
        }
        [] => bail!("unknown server {member:?}: no member has that id prefix or address"),
        _ => bail!("{member:?} matches several members; give more of the id or the address"),
    }
}

enum Op {
    Remove(u64),
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

/// `halyard leave --peer ADDR`: removes the member at ADDR. A leader first hands leadership to
/// another member so the cluster does not wait for an election timeout.
pub async fn leave(peer: &str) -> Result<String> {
    let status = member_status(peer).await?;
    let id = u64::from_str_radix(status["id"].as_str().unwrap_or_default(), 16)
        .context("bad member id")?;
    if status["role"] == "leader" {
        let others: Vec<&Value> = status["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|m| m["id"] != status["id"] && m["voter"] == true)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(next) = others.first() {
            let next_id = u64::from_str_radix(next["id"].as_str().unwrap_or_default(), 16)?;
            at_leader(peer, Op::Transfer(next_id)).await?;
            // Wait until someone else leads, then remove this member through it.
            for _ in 0..50 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let now = member_status(peer).await?;
                if now["role"] != "leader" && now["leader"].is_string() {
                    break;
                }
            }
        }
    }
    at_leader(peer, Op::Remove(id)).await
}

/// `halyard promote --peer ADDR MEMBER`: the non-voting MEMBER becomes a voter.
pub async fn promote(peer: &str, member: &str) -> Result<String> {
    let status = member_status(peer).await?;
    let (id, addr) = resolve(&status, member)?;
    let voter = status["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["address"] == addr.as_str()))
        .is_some_and(|m| m["voter"] == true);
    if voter {
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
