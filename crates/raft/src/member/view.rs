//! The one reader of openraft's metrics: a snapshot of them with the questions the member asks
//! (who leads, at which address, who votes, how far each follower is), so the rest of the crate
//! does not walk openraft's membership types, and nothing outside the crate sees them.

use std::collections::BTreeSet;

use openraft::{BasicNode, RaftMetrics, ServerState};

use crate::report::{quorum_index, Role};
use crate::types::NodeId;

/// openraft's metrics at one moment.
pub(crate) struct View(RaftMetrics<NodeId, BasicNode>);

impl View {
    pub(crate) fn new(metrics: RaftMetrics<NodeId, BasicNode>) -> View {
        View(metrics)
    }

    pub(crate) fn state(&self) -> ServerState {
        self.0.state
    }

    pub(crate) fn role(&self) -> Role {
        self.0.state.into()
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.0.state == ServerState::Leader
    }

    pub(crate) fn term(&self) -> u64 {
        self.0.current_term
    }

    pub(crate) fn leader(&self) -> Option<NodeId> {
        self.0.current_leader
    }

    /// The Raft address of member `id` in the current membership.
    pub(crate) fn addr(&self, id: NodeId) -> Option<&str> {
        self.0
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.as_str())
    }

    pub(crate) fn leader_addr(&self) -> Option<&str> {
        self.addr(self.leader()?)
    }

    /// The member this one voted for in the current term.
    pub(crate) fn voted_for(&self) -> Option<NodeId> {
        self.0.vote.leader_id().voted_for()
    }

    pub(crate) fn vote(&self) -> openraft::Vote<NodeId> {
        self.0.vote
    }

    pub(crate) fn vote_committed(&self) -> bool {
        self.0.vote.is_committed()
    }

    /// In the membership, voter or not.
    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.addr(id).is_some()
    }

    pub(crate) fn is_voter(&self, id: NodeId) -> bool {
        self.0
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
    }

    pub(crate) fn voters(&self) -> BTreeSet<NodeId> {
        self.0.membership_config.membership().voter_ids().collect()
    }

    /// Every member (voters and learners) with its Raft address.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.0
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.as_str()))
    }

    /// Leader only: the last index known to be replicated on `id`.
    pub(crate) fn matched(&self, id: NodeId) -> Option<u64> {
        self.0
            .replication
            .as_ref()?
            .get(&id)
            .cloned()
            .flatten()
            .map(|l| l.index)
    }

    /// Leader only: each follower's match index.
    pub(crate) fn replication(&self) -> Option<Vec<(NodeId, Option<u64>)>> {
        let r = self.0.replication.as_ref()?;
        Some(r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
    }

    pub(crate) fn last_log_index(&self) -> Option<u64> {
        self.0.last_log_index
    }

    /// The last entry openraft handed to the state machine.
    pub(crate) fn last_applied(&self) -> Option<u64> {
        self.0.last_applied.map(|l| l.index)
    }

    pub(crate) fn snapshot_index(&self) -> Option<u64> {
        self.0.snapshot.map(|l| l.index)
    }

    pub(crate) fn purged_index(&self) -> Option<u64> {
        self.0.purged.map(|l| l.index)
    }

    pub(crate) fn millis_since_quorum_ack(&self) -> Option<u64> {
        self.0.millis_since_quorum_ack
    }

    /// False once Raft stopped on a fatal error.
    pub(crate) fn running(&self) -> bool {
        self.0.running_state.is_ok()
    }

    /// The highest index known committed: on the leader what a quorum of voters holds, else
    /// `applied` (anything applied was committed; openraft 0.9 gives followers no more).
    pub(crate) fn commit_index(&self, applied: u64) -> u64 {
        if !self.is_leader() {
            return applied;
        }
        let me = self.0.id;
        let own = self.0.last_log_index.unwrap_or(0);
        let others: Vec<Option<u64>> = self
            .voters()
            .into_iter()
            .filter(|v| *v != me)
            .map(|v| self.matched(v))
            .collect();
        quorum_index(own, others).max(applied)
    }
}
