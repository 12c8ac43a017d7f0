//! What a member's operations return when they fail. Each variant is one condition a caller
//! can act on: the front end answers the retryable ones (no leader, no read index, not applied
//! in time, shutting down) as such rather than as internal errors.

use std::time::Duration;

use uuid::Uuid;

use crate::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{0}")]
    Storage(#[from] halyard_storage::StorageError),
    #[error(
        "data directory {0} holds no Halyard member; create one with `halyard create-cluster`"
    )]
    NotCreated(String),
    #[error("data directory {0} already holds a member of cluster {1}; refusing to overwrite it")]
    AlreadyCreated(String, Uuid),
    #[error("invalid schema: {0}")]
    Schema(String),
    /// openraft refused to start or initialise (a bad configuration, storage it cannot read).
    #[error("cannot start the Raft node: {0}")]
    Startup(String),
    #[error("no leader could commit the write within {0:?}")]
    NoLeader(Duration),
    /// No leader confirmed a read index within the write wait (elections, no quorum).
    #[error("no leader could confirm a read index ({0})")]
    NoReadIndex(ReadIndexError),
    /// Committed but not applied here in time: only a split command whose pieces were cut by a
    /// leader change (nothing of it was applied; the client may retry).
    #[error("the write was committed but not applied within {0:?}")]
    ApplyTimeout(Duration),
    /// A read index was obtained but this member did not apply up to it within the write wait
    /// (it is far behind, or cut off from the leader since).
    #[error("did not apply up to the read index {index} within {wait:?}")]
    BehindReadIndex { index: u64, wait: Duration },
    /// The state machine answered a command with an outcome of another kind: a bug.
    #[error("internal error: unexpected outcome {0}")]
    UnexpectedOutcome(String),
    #[error("unknown database {0}")]
    UnknownDb(String),
    #[error("the member is shutting down")]
    ShuttingDown,
    #[error("cannot serve member-to-member traffic on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("could not join the cluster through {peers:?}: {reason}")]
    Join { peers: Vec<String>, reason: String },
    /// Some members' Raft addresses are `ssl:` and others plain.
    #[error("{0}")]
    MixedTls(String),
}

/// Failures of membership and leadership administration.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Only the leader changes the membership; the address is the leader's Raft address if known.
    #[error("not the leader (leader: {0})")]
    NotLeader(String),
    #[error("no member with id {0:016x} in the cluster")]
    UnknownMember(NodeId),
    /// The other member's Raft address has the other transport (`ssl:` against plain).
    #[error("{0}")]
    MixedTls(String),
    /// openraft refused the membership change (another one in progress, not committed...).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// openraft could not start an election or build a snapshot.
    #[error("{0}")]
    Raft(String),
    #[error("cannot reach the member at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// Another member answered the request with this error.
    #[error("{0}")]
    Remote(String),
    #[error("no snapshot was built within {0:?}")]
    SnapshotTimeout(Duration),
    /// A leaving leader's successor did not take over in time.
    #[error("leadership could not be handed over; try again")]
    HandOver,
    #[error("the member is shutting down")]
    ShuttingDown,
}

/// Why no read index could be obtained (retried through elections up to the write wait; the
/// last reason is reported).
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ReadIndexError {
    #[error("no leader known")]
    NoLeader,
    /// The member asked was no longer the leader.
    #[error("{0} is no longer the leader")]
    LeaderMoved(String),
    #[error("cannot reach the leader at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The leader could not confirm its leadership with a quorum (or its Raft stopped).
    #[error("leadership not confirmed: {0}")]
    NotConfirmed(String),
    #[error("the member is shutting down")]
    ShuttingDown,
}
