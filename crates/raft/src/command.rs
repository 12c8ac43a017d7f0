//! The replicated command: what a member proposes to the Raft log.
//!
//! Execute-on-apply (architecture, "The path of a write"): a command carries the client's
//! operations exactly as sent plus everything that must be decided once for all replicas — its
//! id (the transaction id `monitor_cond_since` reports, and the key that makes a re-sent command
//! apply once) and the seed of every UUID the engine will generate. Nothing in it depends on the
//! proposing member's local state, so every member computes the same result from it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One client command, applied on every member in log order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique per command; for transactions also the OVSDB transaction id.
    pub id: Uuid,
    /// The Raft node id of the member whose client asked for it.
    pub origin: u64,
    pub kind: CommandKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandKind {
    /// Adds a database with this schema (JSON text). Applying it for a name that exists is a
    /// no-op, so a bootstrap interrupted by a crash can simply be proposed again.
    CreateDb {
        schema: String,
    },
    /// Online schema conversion (`convert`): the database's data moved to `schema` (JSON
    /// text), converted identically on every member.
    Convert {
        db: String,
        schema: String,
    },
    /// An OVSDB `transact`: `ops` is the JSON text of the operations after the database name
    /// (text, not a JSON value, so the log encoding stays compact and non-self-describing).
    Transact {
        db: String,
        ops: String,
        session: Uuid,
        /// `Some(ms)` once the proposer's deadline for a blocking `wait` has passed: an
        /// unsatisfied wait then fails with "timed out" instead of blocking.
        wait_expired_ms: Option<u64>,
        /// Room for the security context (RBAC role, TLS client identity) so that every member
        /// enforces the same permissions at apply time.
        role: Option<String>,
    },
    Lock {
        session: Uuid,
        incarnation: Uuid,
        name: String,
        steal: bool,
    },
    Unlock {
        session: Uuid,
        name: String,
    },
    /// The sessions ended (disconnect): release every lock they hold or wait for.
    SessionsClosed {
        sessions: Vec<Uuid>,
    },
    /// Expire every lock request made through member `member` (it lost its lease, or it
    /// restarted), except those of its incarnation `keep` (the running one, after a restart).
    ExpireMember {
        member: u64,
        keep: Option<Uuid>,
    },
}

/// One Raft log entry: the commands gathered while the previous entry was being made durable
/// (group commit — openraft 0.9 makes each append durable before it starts the next, so one
/// command per entry would cost one fsync per transaction).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Command>);

/// The result of applying a command (openraft's `R`), the same on every member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The JSON text of the `transact` result array.
    Transact {
        result: String,
    },
    /// An unsatisfied `wait` with a timeout: nothing was applied; the proposer re-parks it.
    Blocked,
    Lock {
        locked: bool,
    },
    Unlocked,
    /// A lock request the protocol refuses (the text is the error's details).
    LockRefused {
        details: String,
    },
    /// `convert`: `error` is the JSON text of the error object when the conversion failed.
    Converted {
        error: Option<String>,
    },
    /// `transact` or lock operation on a database this cluster does not have.
    UnknownDb,
    #[default]
    Done,
}
