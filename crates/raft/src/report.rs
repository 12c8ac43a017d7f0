//! What a member reports about itself: the document `halyard status --json` prints for one
//! member, the member-to-member `Status` call carries (as JSON), and `cluster/status`,
//! `/metrics`, `halyard kick`/`promote` and the fault suite read.
//!
//! One typed struct for every reader, so that a field means the same everywhere and the rules
//! that derive something from it (the quorum's commit index, which member a name designates)
//! exist once. Node ids travel as 16 hex digits, as ovsdb-server prints server ids.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::types::NodeId;

/// A member's Raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Candidate,
    Follower,
    /// In the membership without a vote: catching up before it votes, or `--non-voting`.
    Learner,
    Shutdown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::Follower => "follower",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
        }
    }
}

impl From<openraft::ServerState> for Role {
    fn from(s: openraft::ServerState) -> Role {
        match s {
            openraft::ServerState::Leader => Role::Leader,
            openraft::ServerState::Candidate => Role::Candidate,
            openraft::ServerState::Follower => Role::Follower,
            openraft::ServerState::Learner => Role::Learner,
            openraft::ServerState::Shutdown => Role::Shutdown,
        }
    }
}

/// One member of the membership, as the reporting member sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    #[serde(with = "hex_id")]
    pub id: NodeId,
    /// Its Raft address.
    pub address: String,
    pub voter: bool,
    /// Leader only: the last log index known to be replicated on it.
    pub match_index: Option<u64>,
    /// The reporting member's last answered Raft RPC to it (the leader's "last msg").
    pub last_contact_ms: Option<u64>,
    /// Leader only: how long its match index has been stuck behind the leader's log.
    pub match_stalled_ms: Option<u64>,
}

/// The newest state digest this member computed, to compare members (see `divergence`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestReport {
    pub index: u64,
    /// 16 hex digits.
    pub value: String,
}

/// A member's view of itself and of the cluster. Index fields are Raft log indexes; `*_ms`
/// fields are ages in milliseconds when the report was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    #[serde(with = "hex_id")]
    pub id: NodeId,
    pub server_id: Uuid,
    /// Nil while a joining member has not learnt it.
    pub cluster_id: Uuid,
    /// Its Raft address.
    pub address: String,
    pub role: Role,
    /// Joined with `--non-voting` and not promoted since.
    pub non_voting: bool,
    pub term: u64,
    #[serde(with = "hex_id::option")]
    pub leader: Option<NodeId>,
    pub leader_address: Option<String>,
    #[serde(with = "hex_id::option")]
    pub vote: Option<NodeId>,
    pub vote_committed: bool,
    pub last_log_index: Option<u64>,
    /// The highest index this member knows to be committed: on the leader, the index a quorum
    /// of voters holds; elsewhere what it has applied (openraft 0.9 does not tell followers
    /// the leader's commit index, and anything applied was committed).
    pub commit_index: u64,
    /// What this member's state machine has applied.
    pub applied_index: u64,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// Leader only: since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Since a leader's append-entries last reached this member in this run.
    pub millis_since_leader_contact: Option<u64>,
    /// In contact with a quorum through the leader (see `Member::connected`).
    pub connected: bool,
    pub digest: Option<DigestReport>,
    pub election_timer_ms: u64,
    pub proposal_queue: usize,
    pub forward_queue: usize,
    pub read_queue: usize,
    pub databases: Vec<String>,
    /// False once Raft stopped on a fatal error.
    pub running: bool,
    pub members: Vec<PeerReport>,
    /// Fields the embedding binary adds (client connections, remotes); see
    /// `Member::set_status_extra`.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Why a name given to `kick`, `promote`, `transfer-leadership` or `cluster/kick` designates no
/// single member.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FindError {
    #[error("unknown server {0:?}: no member has that id prefix or address")]
    Unknown(String),
    #[error("{0:?} matches several members; give more of the id or the address")]
    Ambiguous(String),
}

impl MemberReport {
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    pub fn peer(&self, id: NodeId) -> Option<&PeerReport> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn peer_at(&self, address: &str) -> Option<&PeerReport> {
        self.members.iter().find(|m| m.address == address)
    }

    pub fn voters(&self) -> impl Iterator<Item = &PeerReport> {
        self.members.iter().filter(|m| m.voter)
    }

    /// How long ago this member last heard from `id`: the leader's append-entries when `id`
    /// leads, else its last answered Raft RPC to `id`.
    pub fn last_contact_ms(&self, id: NodeId) -> Option<u64> {
        if self.leader == Some(id) {
            if let Some(ms) = self.millis_since_leader_contact {
                return Some(ms);
            }
        }
        self.peer(id)?.last_contact_ms
    }

    /// The member `name` designates, as ovsdb-server's `cluster/kick` resolves a server: a
    /// prefix of its id (dashes ignored, so this member's full server UUID works too; another
    /// member's id is the first 16 hex digits of its server UUID), or its Raft address with or
    /// without `tcp:`.
    pub fn find_member(&self, name: &str) -> Result<&PeerReport, FindError> {
        let addr = name.strip_prefix("tcp:").unwrap_or(name);
        let prefix: String = name
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let hex_prefix = !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_hexdigit());
        let my_sid = self.server_id.simple().to_string();
        let matches: Vec<&PeerReport> = self
            .members
            .iter()
            .filter(|m| {
                let by_id = hex_prefix
                    && if m.id == self.id {
                        my_sid.starts_with(&prefix)
                    } else {
                        prefix.len() <= 16 && format!("{:016x}", m.id).starts_with(&prefix)
                    };
                by_id || m.address == addr || m.address == name
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(FindError::Unknown(name.to_string())),
            _ => Err(FindError::Ambiguous(name.to_string())),
        }
    }
}

/// On a leader, the highest index a majority of `voters` hold, given the leader's own last log
/// index and each other voter's match index (`None`: nothing known to be replicated).
pub fn quorum_index(own_last: u64, others: impl IntoIterator<Item = Option<u64>>) -> u64 {
    let mut matched: Vec<u64> = std::iter::once(own_last)
        .chain(others.into_iter().map(|m| m.unwrap_or(0)))
        .collect();
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[matched.len() / 2]
}

/// Node ids as 16 hex digits.
mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{id:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => super::serialize(id, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| u64::from_str_radix(&t, 16).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: NodeId, address: &str, voter: bool) -> PeerReport {
        PeerReport {
            id,
            address: address.into(),
            voter,
            match_index: None,
            last_contact_ms: None,
            match_stalled_ms: None,
        }
    }

    fn report() -> MemberReport {
        let server_id = Uuid::parse_str("aaaa0000-0000-0001-9999-000000000000").unwrap();
        MemberReport {
            id: server_id.as_u64_pair().0,
            server_id,
            cluster_id: Uuid::nil(),
            address: "10.0.0.1:6643".into(),
            role: Role::Follower,
            non_voting: false,
            term: 3,
            leader: Some(0xbbbb_0000_0000_0002),
            leader_address: Some("10.0.0.2:6643".into()),
            vote: None,
            vote_committed: true,
            last_log_index: Some(10),
            commit_index: 9,
            applied_index: 9,
            snapshot_index: None,
            purged_index: None,
            millis_since_quorum_ack: None,
            millis_since_leader_contact: Some(12),
            connected: true,
            digest: None,
            election_timer_ms: 1000,
            proposal_queue: 0,
            forward_queue: 0,
            read_queue: 0,
            databases: vec!["OVN_Northbound".into()],
            running: true,
            members: vec![
                peer(0xaaaa_0000_0000_0001, "10.0.0.1:6643", true),
                peer(0xbbbb_0000_0000_0002, "10.0.0.2:6643", true),
                peer(0xbbbc_0000_0000_0003, "10.0.0.3:6643", false),
            ],
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn round_trips_through_json_with_hex_ids_and_extra_fields() {
        let mut r = report();
        r.extra.insert("connections".into(), 7.into());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["id"], "aaaa000000000001");
        assert_eq!(json["leader"], "bbbb000000000002");
        assert_eq!(json["vote"], Value::Null);
        assert_eq!(json["role"], "follower");
        assert_eq!(json["connections"], 7);
        assert_eq!(json["members"][2]["id"], "bbbc000000000003");
        let back: MemberReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn names_resolve_as_cluster_kick_resolves_them() {
        let r = report();
        let id = |name: &str| r.find_member(name).map(|m| m.id);
        assert_eq!(id("bbbb"), Ok(0xbbbb_0000_0000_0002));
        assert_eq!(id("BBBC"), Ok(0xbbbc_0000_0000_0003));
        assert_eq!(id("10.0.0.3:6643"), Ok(0xbbbc_0000_0000_0003));
        assert_eq!(id("tcp:10.0.0.2:6643"), Ok(0xbbbb_0000_0000_0002));
        // This member by its whole server UUID, with dashes.
        assert_eq!(
            id("aaaa0000-0000-0001-9999-000000000000"),
            Ok(0xaaaa_0000_0000_0001)
        );
        // Another member's id is only 16 digits long.
        assert_eq!(
            id("bbbb00000000000200"),
            Err(FindError::Unknown("bbbb00000000000200".into()))
        );
        assert_eq!(id("bbb"), Err(FindError::Ambiguous("bbb".into())));
        assert_eq!(id("zz"), Err(FindError::Unknown("zz".into())));
        assert_eq!(id(""), Err(FindError::Unknown("".into())));
    }

    #[test]
    fn quorum_index_is_what_a_majority_holds() {
        assert_eq!(quorum_index(10, []), 10);
        assert_eq!(quorum_index(10, [Some(7), None]), 7);
        assert_eq!(quorum_index(10, [Some(7), Some(9)]), 9);
        assert_eq!(quorum_index(10, [Some(3), None, Some(8), Some(9)]), 8);
    }
}
