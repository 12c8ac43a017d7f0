//! halyard-raft: the replicated OVSDB state machine and the Raft plumbing around it.
//!
//! Owns the command format (`command`), the deterministic replicated state (`state`, `locks`,
//! `txn_env`, `recent`), the openraft type configuration and state machine, and the member (`member`):
//! proposing, forwarding, read barriers, and what it reports about itself (`report`). It knows nothing of JSON-RPC sessions: the front end
//! observes applied changes through [`state::ApplyObserver`].
//!
//! openraft 0.9 (stable, storage-v2) is used rather than a 0.10 pre-release: its API is settled
//! and documented. 0.10's leadership transfer would serve `halyard leave`; with 0.9 a leaving
//! leader removes itself from the membership and the remaining members elect a successor.

mod background;
mod batch_queue;
mod check_quorum;
pub mod command;
mod commit_notice;
mod compaction;
pub mod config;
pub mod divergence;
mod election_timer;
mod forwarder;
mod lease;
pub mod locks;
pub mod member;
mod network;
mod nudge;
mod progress;
mod proposer;
mod read_index;
mod recent;
pub mod report;
#[cfg(feature = "in-process")]
pub mod router;
mod service;
pub mod state;
mod state_machine;
mod txn_env;
pub mod types;

/// Generated from proto/halyard.proto.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("halyard.v1");
}

pub use command::{Batch, Command, CommandKind, Outcome};
pub use config::MemberConfig;
pub use locks::LockEvent;
pub use member::{
    check_same_transport, AdminError, Changes, Identity, Member, MemberError, MemberStatus,
    ReadIndexError, Transaction, MIXED_TLS,
};
pub use network::{
    client as member_client, set_peer_tls, split_addr, ClientError, PeerTls, PEER_HANDSHAKE_TIMEOUT,
};
pub use report::{FindError, MemberReport, PeerReport, Role};
pub use state::{ApplyObserver, DbState, ReplicatedState};
