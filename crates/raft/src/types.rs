//! The openraft type configuration. openraft types stay inside this crate so that moving to a
//! newer openraft is mechanical.

use std::io::Cursor;

use crate::command::{Command, Outcome};

openraft::declare_raft_types!(
    /// Halyard's Raft types: commands in, outcomes out, u64 node ids addressed by their Raft
    /// `HOST:PORT`, snapshots as in-memory byte images.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
