//! The openraft type configuration. openraft types stay inside this crate so that moving to a
//! newer openraft is mechanical.

use crate::command::{Batch, Outcome};

openraft::declare_raft_types!(
    /// Halyard's Raft types: batches of commands in (each command's outcome reaches its proposer
    /// through the state machine's waiters, so `R` is only a summary), u64 node ids addressed by their Raft
    /// `HOST:PORT`, snapshots as files (written and sent as streams).
    pub TypeConfig:
        D = Batch,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = halyard_storage::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
