//! A member's health as clients and operators see it: whether it is in contact with a quorum
//! (`connected`, `serving`), its role, and the report `halyard status` prints.

use std::time::Duration;

use openraft::ServerState;

use super::{Member, MemberStatus, StatusExtra};
use crate::report::{DigestReport, MemberReport, PeerReport};
use crate::types::NodeId;

impl Member {
    /// This member's view of itself and of the cluster (what `halyard status --json` prints
    /// for one member).
    pub fn report(&self) -> MemberReport {
        let v = self.view();
        let members = v
            .nodes()
            .map(|(id, addr)| PeerReport {
                id,
                address: addr.to_string(),
                voter: v.is_voter(id),
                match_index: v.matched(id),
                last_contact_ms: self
                    .peer_contact(id)
                    .map(|t| t.elapsed().as_millis() as u64),
                match_stalled_ms: self.progress().stalled(id).map(|d| d.as_millis() as u64),
            })
            .collect();
        let identity = self.identity();
        let applied = self.shared.applied_index();
        let extra = self.observed.status_extra.read().unwrap().clone();
        let extra = match extra.map(|f| f()) {
            Some(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        MemberReport {
            id: identity.node_id,
            server_id: identity.server_id,
            cluster_id: identity.cluster_id,
            address: identity.raft_addr,
            role: v.role(),
            non_voting: self.is_non_voting(),
            term: v.term(),
            leader: v.leader(),
            leader_address: v.leader_addr().map(str::to_string),
            vote: v.voted_for(),
            vote_committed: v.vote_committed(),
            last_log_index: v.last_log_index(),
            commit_index: v.commit_index(applied),
            applied_index: applied,
            snapshot_index: v.snapshot_index(),
            purged_index: v.purged_index(),
            millis_since_quorum_ack: v.millis_since_quorum_ack(),
            millis_since_leader_contact: self
                .leader_contact()
                .map(|t| t.elapsed().as_millis() as u64),
            connected: self.connected(),
            digest: self.shared.digests.latest().map(|(index, d)| DigestReport {
                index,
                value: format!("{d:016x}"),
            }),
            election_timer_ms: self.election_timeout_ms(),
            proposal_queue: self.proposal_queue_len(),
            forward_queue: self.forward_queue_len(),
            read_queue: self.read_queue_len(),
            databases: self.db_names(),
            running: v.running(),
            members,
            extra,
        }
    }

    /// Adds fields to every [`Member::report`] (the binary reports its client connections and
    /// remotes this way; the member knows nothing of the front end).
    pub fn set_status_extra(&self, extra: StatusExtra) {
        *self.observed.status_extra.write().unwrap() = Some(extra);
    }

    /// What `_Server` and the status checks need, cheaper than a whole report.
    pub fn status(&self) -> MemberStatus {
        let v = self.view();
        MemberStatus {
            identity: self.identity(),
            role: v.role(),
            term: v.term(),
            leader: v.leader(),
            applied_index: self.shared.applied_index(),
            last_log_index: v.last_log_index(),
            connected: self.connected(),
            is_leader: v.is_leader(),
        }
    }

    /// The index the latest snapshot covers.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.view().snapshot_index()
    }

    /// The election timeout this member runs with: the one the cluster agreed on
    /// (`cluster/change-election-timer`), else its configured one.
    pub fn election_timeout_ms(&self) -> u64 {
        self.shared
            .agreed_election_timer_ms()
            .unwrap_or(self.config.election_timeout_ms)
    }

    /// A learner that joined with `--non-voting` (and was not promoted since).
    pub fn is_non_voting(&self) -> bool {
        let v = self.view();
        let me = self.identity.node_id;
        self.non_voting && v.contains(me) && !v.is_voter(me)
    }

    /// The members (node id, Raft address) of the current membership.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        self.view()
            .nodes()
            .map(|(id, addr)| (id, addr.to_string()))
            .collect()
    }

    /// This member votes in elections (not a learner, not removed).
    pub(crate) fn is_voter(&self) -> bool {
        self.view().is_voter(self.identity.node_id)
    }

    /// Whether this member is in contact with a quorum (through the leader): it can commit
    /// writes and its reads are current. `_Server.connected` reports this, so IDL clients move
    /// to another member when it is false.
    pub fn connected(&self) -> bool {
        let v = self.view();
        let within = |ms: u128| ms < u128::from(self.config.election_timeout_ms) * 2;
        if !v.contains(self.identity.node_id) {
            return false;
        }
        match v.state() {
            ServerState::Leader => {
                v.voters().len() == 1
                    || v.millis_since_quorum_ack()
                        .is_some_and(|ms| within(ms.into()))
            }
            ServerState::Follower | ServerState::Learner => {
                v.leader().is_some()
                    && self
                        .leader_contact()
                        .is_some_and(|t| within(t.elapsed().as_millis()))
            }
            _ => false,
        }
    }

    /// How long this member has gone without evidence that it is in contact with a quorum: for
    /// the leader, since a quorum last acknowledged it; for others, since the leader last reached
    /// it. `None` if it never had such contact in this run. The lock lease runs on this.
    pub(crate) fn without_quorum(&self) -> Option<Duration> {
        let v = self.view();
        if v.is_leader() {
            if v.voters().len() == 1 {
                return Some(Duration::ZERO);
            }
            return v.millis_since_quorum_ack().map(Duration::from_millis);
        }
        self.leader_contact().map(|t| t.elapsed())
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
        let grace = u128::from(self.config.election_timeout_ms) * 3;
        // Any role: the winner of the election is a leader without a quorum ack for a moment.
        self.is_voter()
            && self
                .leader_contact()
                .is_some_and(|t| t.elapsed().as_millis() < grace)
    }
}
