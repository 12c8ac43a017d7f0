//! A tiny type config and a minimal but complete key-value state machine, so
//! that openraft's conformance suite and single-node Raft runs can exercise
//! the stores. The state machine keeps its snapshots in [`SnapshotStore`], the
//! way the real one in `crates/raft` is meant to.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::SnapshotStore;

/// Carries a JSON value so the tests prove application payloads holding
/// `serde_json::Value` survive the log's encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub key: String,
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Option<serde_json::Value>);

openraft::declare_raft_types!(
    pub TestConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TestConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SmState {
    pub last_applied: Option<LogId<u64>>,
    pub last_membership: StoredMembership<u64, BasicNode>,
    pub data: BTreeMap<String, serde_json::Value>,
}

pub struct TestStateMachine {
    pub state: Arc<Mutex<SmState>>,
    snapshots: SnapshotStore<TestConfig>,
    built: u64,
}

fn io_err(e: crate::StorageError) -> StorageError<u64> {
    e.into()
}

impl TestStateMachine {
    /// Restores from the stored snapshot, if any (what a restart does).
    pub async fn new(snapshots: SnapshotStore<TestConfig>) -> Result<Self, StorageError<u64>> {
        let state = match snapshots.load().await.map_err(io_err)? {
            Some(s) => serde_json::from_slice(&s.data)
                .map_err(|e| StorageIOError::read_snapshot(None, &e))?,
            None => SmState::default(),
        };
        Ok(TestStateMachine {
            state: Arc::new(Mutex::new(state)),
            snapshots,
            built: 0,
        })
    }
}

pub struct TestSnapshotBuilder {
    copy: SmState,
    snapshots: SnapshotStore<TestConfig>,
    id: u64,
}

impl RaftSnapshotBuilder<TestConfig> for TestSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TestConfig>, StorageError<u64>> {
        let data =
            serde_json::to_vec(&self.copy).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let meta = SnapshotMeta {
            last_log_id: self.copy.last_applied,
            last_membership: self.copy.last_membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                self.copy.last_applied.map_or(0, |l| l.index),
                self.id
            ),
        };
        self.snapshots.save(&meta, &data).await.map_err(io_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TestConfig> for TestStateMachine {
    type SnapshotBuilder = TestSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let s = self.state.lock().unwrap();
        Ok((s.last_applied, s.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TestConfig>> + Send,
    {
        let mut s = self.state.lock().unwrap();
        let mut out = Vec::new();
        for entry in entries {
            s.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Response(None)),
                EntryPayload::Normal(req) => {
                    out.push(Response(s.data.insert(req.key, req.value)));
                }
                EntryPayload::Membership(m) => {
                    s.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Response(None));
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> TestSnapshotBuilder {
        self.built += 1;
        TestSnapshotBuilder {
            copy: self.state.lock().unwrap().clone(),
            snapshots: self.snapshots.clone(),
            id: self.built,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let mut new: SmState = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        new.last_applied = meta.last_log_id;
        new.last_membership = meta.last_membership.clone();
        self.snapshots.save(meta, &data).await.map_err(io_err)?;
        *self.state.lock().unwrap() = new;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TestConfig>>, StorageError<u64>> {
        Ok(self
            .snapshots
            .load()
            .await
            .map_err(io_err)?
            .map(|s| Snapshot {
                meta: s.meta,
                snapshot: Box::new(Cursor::new(s.data)),
            }))
    }
}

/// An entry at `index` in `term` (leader node 0) carrying `key = value`.
pub fn normal_entry(
    term: u64,
    index: u64,
    key: &str,
    value: serde_json::Value,
) -> openraft::Entry<TestConfig> {
    openraft::Entry {
        log_id: openraft::testing::log_id(term, 0, index),
        payload: EntryPayload::Normal(Request {
            key: key.to_string(),
            value,
        }),
    }
}
