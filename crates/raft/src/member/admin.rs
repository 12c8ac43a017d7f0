//! Membership and leadership administration: adding, promoting and removing members, handing
//! leadership over, leaving, compacting the log.

use std::time::Duration;

use openraft::BasicNode;

use super::{check_same_transport, AdminError, Member};
use crate::types::NodeId;

/// How many times a leaving member asks the leader to remove it (elections may intervene).
const LEAVE_ATTEMPTS: u32 = 20;
const LEAVE_RETRY: Duration = Duration::from_millis(250);

/// openraft's refusal of a membership change, as an [`AdminError`]. Leadership can pass between
/// the caller's leader check and openraft's own: that refusal is "not the leader", naming the
/// new leader if known, so that `halyard promote` / `kick` (and a joining member) follow it
/// instead of failing (the fault suite's soak stopped on exactly that during an election).
fn membership_error(
    e: openraft::error::RaftError<NodeId, openraft::error::ClientWriteError<NodeId, BasicNode>>,
) -> AdminError {
    match e.api_error() {
        Some(openraft::error::ClientWriteError::ForwardToLeader(f)) => AdminError::NotLeader(
            f.leader_node
                .as_ref()
                .map(|n| n.addr.clone())
                .unwrap_or_default(),
        ),
        _ => AdminError::Membership(e.to_string()),
    }
}

impl Member {
    fn not_leader(&self) -> AdminError {
        AdminError::NotLeader(
            self.view()
                .leader_addr()
                .map(str::to_string)
                .unwrap_or_default(),
        )
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
        let v = self.view();
        if !v.is_leader() {
            return Err(self.not_leader());
        }
        check_same_transport(&self.identity.raft_addr, [addr]).map_err(AdminError::MixedTls)?;
        if v.is_voter(node) {
            return Ok(());
        }
        if !v.contains(node) {
            tracing::info!(node = format_args!("{node:016x}"), %addr, voter, "adding member as learner");
            self.raft
                .add_learner(node, BasicNode::new(addr), true)
                .await
                .map_err(membership_error)?;
        }
        if !voter {
            tracing::info!(
                node = format_args!("{node:016x}"),
                "member is a non-voting member"
            );
            return Ok(());
        }
        let mut voters = self.view().voters();
        voters.insert(node);
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(membership_error)?;
        tracing::info!(node = format_args!("{node:016x}"), "member is a voter");
        Ok(())
    }

    /// Removes a member from the cluster (kick, or leave).
    pub async fn remove_member(&self, node: NodeId) -> Result<String, AdminError> {
        let v = self.view();
        if !v.is_leader() {
            return Err(self.not_leader());
        }
        if !v.contains(node) {
            return Err(AdminError::UnknownMember(node));
        }
        let mut voters = v.voters();
        let change = if voters.remove(&node) {
            openraft::ChangeMembers::ReplaceAllVoters(voters)
        } else {
            // A non-voting member (learner): only its node goes.
            openraft::ChangeMembers::RemoveNodes([node].into())
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(format!("removed {node:016x}"))
    }

    /// Asks for a new leader. openraft 0.9 has no leadership-transfer message; the target (or
    /// this member) starts an election at once, which a caught-up member wins.
    pub async fn transfer_leadership(&self, to: Option<NodeId>) -> Result<String, AdminError> {
        match to {
            Some(id) if id != self.identity.node_id => {
                let addr = self
                    .view()
                    .addr(id)
                    .map(str::to_string)
                    .ok_or(AdminError::UnknownMember(id))?;
                let unreachable = |reason: String| AdminError::Unreachable {
                    addr: addr.clone(),
                    reason,
                };
                let mut client =
                    crate::network::client(&addr).map_err(|e| unreachable(e.to_string()))?;
                let reply = client
                    .transfer_leadership(crate::pb::TransferRequest { node_id: id })
                    .await
                    .map_err(|s| unreachable(s.message().to_string()))?
                    .into_inner();
                if reply.error.is_empty() {
                    Ok(reply.message)
                } else {
                    Err(AdminError::Remote(reply.error))
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

    /// Takes this member out of the cluster through the leader. A leader first hands
    /// leadership to another voter and waits for it to take over, so the cluster does not
    /// wait an election timeout for a successor.
    pub async fn leave(&self) -> Result<(), AdminError> {
        let me = self.identity.node_id;
        let v = self.view();
        if v.is_leader() {
            if let Some(next) = v.voters().into_iter().find(|id| *id != me) {
                self.transfer_leadership(Some(next)).await?;
                let mut metrics = self.raft.metrics();
                let handed_over = tokio::time::timeout(
                    Duration::from_millis(self.election_timeout_ms() * 10),
                    metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != me)),
                )
                .await;
                if !matches!(handed_over, Ok(Ok(_))) {
                    return Err(AdminError::HandOver);
                }
            }
        }
        let mut last = AdminError::HandOver;
        for _ in 0..LEAVE_ATTEMPTS {
            match self.remove_through_leader(me).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(LEAVE_RETRY).await;
        }
        Err(last)
    }

    /// Builds a snapshot now (and lets openraft purge the log behind it). Returns the index the
    /// snapshot covers, or `None` when the latest snapshot already covers everything applied
    /// (ovsdb-server's "not storing a duplicate snapshot").
    pub async fn compact(&self, wait: Duration) -> Result<Option<u64>, AdminError> {
        let v = self.view();
        let (snap, applied) = (v.snapshot_index(), v.last_applied());
        if applied.is_none() || snap == applied {
            return Ok(None);
        }
        let mut metrics = self.raft.metrics();
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
            Ok(Err(_)) => Err(AdminError::ShuttingDown),
            Err(_) => Err(AdminError::SnapshotTimeout(wait)),
        }
    }

    /// Removes `node` from the cluster through the leader, wherever that is: on the leader this
    /// is [`Member::remove_member`]; elsewhere the request is sent to the leader's Raft address.
    /// Returns whether this member is the leader (ovsdb-server words its reply differently).
    pub async fn remove_through_leader(&self, node: NodeId) -> Result<bool, AdminError> {
        match self.remove_member(node).await {
            Ok(_) => Ok(true),
            Err(AdminError::NotLeader(addr)) if !addr.is_empty() => {
                let unreachable = |reason: String| AdminError::Unreachable {
                    addr: addr.clone(),
                    reason,
                };
                let mut client =
                    crate::network::client(&addr).map_err(|e| unreachable(e.to_string()))?;
                let mut req = tonic::Request::new(crate::pb::RemoveRequest { node_id: node });
                req.set_timeout(self.config.write_wait);
                let reply = client
                    .remove(req)
                    .await
                    .map_err(|s| unreachable(s.message().to_string()))?
                    .into_inner();
                if reply.not_leader {
                    Err(AdminError::NotLeader(reply.leader_addr))
                } else if !reply.error.is_empty() {
                    Err(AdminError::Remote(reply.error))
                } else {
                    Ok(false)
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};

    use super::*;

    #[test]
    fn a_lost_leadership_is_not_the_leader_and_names_the_next_one() {
        let forward = |leader: Option<(NodeId, &str)>| {
            RaftError::APIError(ClientWriteError::ForwardToLeader(ForwardToLeader {
                leader_id: leader.map(|(id, _)| id),
                leader_node: leader.map(|(_, addr)| BasicNode::new(addr)),
            }))
        };
        assert!(matches!(
            membership_error(forward(Some((7, "10.0.0.3:6643")))),
            AdminError::NotLeader(a) if a == "10.0.0.3:6643"
        ));
        assert!(matches!(
            membership_error(forward(None)),
            AdminError::NotLeader(a) if a.is_empty()
        ));
        let other = RaftError::APIError(ClientWriteError::ChangeMembershipError(
            openraft::error::ChangeMembershipError::EmptyMembership(
                openraft::error::EmptyMembership {},
            ),
        ));
        assert!(matches!(
            membership_error(other),
            AdminError::Membership(m) if m.contains("empty")
        ));
    }
}
