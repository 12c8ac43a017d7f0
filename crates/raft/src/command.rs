//! The replicated command: what a member proposes to the Raft log.
//!
//! Execute-on-apply (architecture, "The path of a write"): a command carries the client's
//! operations exactly as sent plus everything that must be decided once for all replicas — its
//! id (the transaction id `monitor_cond_since` reports, and the key that makes a re-sent command
//! apply once) and the seed of every UUID the engine will generate. Nothing in it depends on the
//! proposing member's local state, so every member computes the same result from it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
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
        /// How long the proposer has held the transaction (ms; None = 0, its first run). The
        /// engine fails an unsatisfied `wait` whose own timeout this reaches, so every member
        /// decides the same. (An Option because older logs hold none here.)
        wait_elapsed_ms: Option<u64>,
        /// The session's RBAC role and client identity (TLS certificate CN) when its listener
        /// has a role, so every member enforces the same permissions at apply time. (Entries
        /// written before RBAC hold `role: null` here in JSON and a None in bincode.)
        #[serde(default, alias = "role")]
        rbac: Option<ovsdb::RbacIdentityBuf>,
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
    /// Piece `index` of `count` of a command too large for one log entry (see [`split`]): the
    /// bincode bytes of the whole command in base64, cut in order. Base64 because the log
    /// stores entries as JSON, where bytes would become arrays of numbers (about four times
    /// larger and slow to parse). The command (same `id`) is applied when its last piece is,
    /// at that log position; pieces left incomplete when a new leader takes over are dropped
    /// (their proposer re-sends the whole command, applied once).
    Part {
        index: u32,
        count: u32,
        data: String,
    },
    /// `cluster/change-election-timer`: every member's election timer becomes `ms` from this
    /// log position on (kept in snapshots, so it survives restarts).
    SetElectionTimer {
        ms: u64,
    },
}

impl Command {
    /// The bytes this command adds to a log entry, roughly (its variable-size text).
    pub fn payload_bytes(&self) -> usize {
        const FIXED: usize = 64;
        FIXED
            + match &self.kind {
                CommandKind::CreateDb { schema } => schema.len(),
                CommandKind::Convert { db, schema } => db.len() + schema.len(),
                CommandKind::Transact { db, ops, rbac, .. } => {
                    db.len()
                        + ops.len()
                        + rbac
                            .as_ref()
                            .map_or(0, |r| r.role.len() + r.id.as_ref().map_or(0, String::len))
                }
                CommandKind::Lock { name, .. } | CommandKind::Unlock { name, .. } => name.len(),
                CommandKind::SessionsClosed { sessions } => sessions.len() * 16,
                CommandKind::ExpireMember { .. } | CommandKind::SetElectionTimer { .. } => 0,
                CommandKind::Part { data, .. } => data.len(),
            }
    }
}

/// `cmd` as it goes into the log: itself when it is at most `max_bytes`, otherwise the pieces
/// (`CommandKind::Part`, each at most `max_bytes` of payload) that rebuild it. A log entry, and
/// so an AppendEntries request, then stays small whatever a client sends: one 60 MB transaction
/// in one entry could not be replicated within openraft's one-heartbeat deadline per request.
pub fn split(cmd: Command, max_bytes: usize) -> Vec<Command> {
    if cmd.payload_bytes() <= max_bytes {
        return vec![cmd];
    }
    let whole = bincode::serialize(&cmd).expect("in-memory serialisation cannot fail");
    let text = BASE64.encode(whole);
    let max_bytes = max_bytes.max(1);
    let count = text.len().div_ceil(max_bytes) as u32;
    // Base64 is ASCII: every byte offset is a character boundary.
    text.as_bytes()
        .chunks(max_bytes)
        .enumerate()
        .map(|(index, piece)| Command {
            id: cmd.id,
            origin: cmd.origin,
            kind: CommandKind::Part {
                index: index as u32,
                count,
                data: String::from_utf8(piece.to_vec()).expect("base64 is ASCII"),
            },
        })
        .collect()
}

/// The command whose pieces' `data`, concatenated, is `text` (see [`split`]).
pub fn join(text: &str) -> Option<Command> {
    let whole = BASE64.decode(text).ok()?;
    bincode::deserialize(&whole).ok()
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
    /// An unsatisfied `wait`: nothing was applied; the proposer re-runs it after the next
    /// change, or `retry_in_ms` after the elapsed time it sent (the blocking wait's own timeout).
    Blocked {
        retry_in_ms: Option<u64>,
    },
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
    /// A piece of a command that is not the last one: nothing applied yet.
    Pending,
}
