//! A member of a Halyard cluster: its Raft node, its replicated state, and the operations the
//! front end calls. Split by concern:
//! - `lifecycle`: data directory, start, join, bootstrap, shutdown;
//! - `transactions`: proposing, forwarding and retrying writes, read barriers, locks;
//! - `admin`: membership and leadership changes, compaction;
//! - `health`: contact with the quorum, `_Server` status, the member's report;
//! - `view`: the one reader of openraft's metrics;
//! - `error`: what callers get back.

mod admin;
mod error;
mod health;
mod lifecycle;
mod transactions;
mod view;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use uuid::Uuid;

use crate::config::MemberConfig;
use crate::forwarder::Forwarder;
use crate::proposer::Proposer;
use crate::read_index::ReadIndexer;
use crate::report::Role;
use crate::state::{ApplyObserver, ReplicatedState};
use crate::state_machine::Shared;
use crate::types::{NodeId, Raft};

pub use error::{AdminError, MemberError, ReadIndexError};
pub use transactions::Transaction;
pub(crate) use view::View;

/// Identity of a member, written once into its data directory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub cluster_id: Uuid,
    pub server_id: Uuid,
    pub node_id: NodeId,
    pub raft_addr: String,
}

const META_IDENTITY: &str = "identity";
/// Raft addresses of existing members a `join-cluster` member asks to be added (cleared once in).
const META_JOIN: &str = "join";
/// Present (true) when `join-cluster --non-voting` prepared the data directory.
const META_JOIN_NON_VOTING: &str = "join_non_voting";
/// The schema(s) a freshly created cluster still has to propose (cleared once committed).
const META_BOOTSTRAP: &str = "bootstrap";

/// Starts the refusal of a membership that mixes `ssl:` and plain Raft addresses (a joiner
/// that gets it in a reply gives up instead of retrying).
pub const MIXED_TLS: &str = "a cluster cannot mix ssl: and plain (tcp:) Raft addresses";

/// Refuses `others` unless all are `ssl:` exactly when `own` is.
pub fn check_same_transport<'a>(
    own: &str,
    others: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    let (tls, _) = crate::network::split_addr(own);
    for other in others {
        if crate::network::split_addr(other).0 != tls {
            return Err(format!("{MIXED_TLS}: {own} and {other}"));
        }
    }
    Ok(())
}

/// What `_Server` and the status commands report about this member.
#[derive(Clone, Debug)]
pub struct MemberStatus {
    pub identity: Identity,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub applied_index: u64,
    pub last_log_index: Option<u64>,
    /// Hears a leader (and so can commit writes and serve linearizable reads).
    pub connected: bool,
    /// This member is the Raft leader.
    pub is_leader: bool,
}

impl Identity {
    fn new(cluster_id: Uuid, server_id: Uuid, raft_addr: &str) -> Identity {
        Identity {
            cluster_id,
            server_id,
            node_id: server_id.as_u64_pair().0,
            raft_addr: raft_addr.to_string(),
        }
    }
}

pub struct Member {
    /// Fixed at creation, except the cluster id of a joining member, learnt when it joins (kept
    /// in `cluster_id`).
    identity: Identity,
    cluster_id: std::sync::RwLock<Uuid>,
    /// This process's run of the member: lock requests carry it so that a restart can expire
    /// the previous run's locks without touching its own.
    incarnation: Uuid,
    /// Joined with `--non-voting`: while a learner, it is a non-voting member by design, not a
    /// member catching up before it votes.
    non_voting: bool,
    contact: Arc<crate::network::PeerContact>,
    last_leader_contact: std::sync::Mutex<Option<Instant>>,
    raft: Raft,
    proposer: Proposer,
    forwarder: Forwarder,
    reads: ReadIndexer,
    shared: Arc<Shared>,
    config: MemberConfig,
    /// What operations tooling reports beyond openraft's metrics (see [`Observed`]).
    observed: Observed,
}

/// Observations for status and the control socket that openraft 0.9's metrics lack.
#[derive(Default)]
struct Observed {
    /// Fields the embedding binary adds to [`Member::report`] (client connections, remotes).
    status_extra: std::sync::RwLock<Option<StatusExtra>>,
    /// The leader's view of each member's replication progress.
    progress: crate::progress::Progress,
}

/// Produces extra fields (a JSON object) merged into [`Member::report`].
pub type StatusExtra = Arc<dyn Fn() -> Value + Send + Sync>;

/// Resolves when a member's Raft role, vote (term), leader or membership moves (see
/// [`Member::subscribe_changes`]).
pub struct Changes(
    tokio::sync::watch::Receiver<openraft::metrics::RaftServerMetrics<NodeId, openraft::BasicNode>>,
);

impl Changes {
    /// Waits for the next change; `false` once the member stopped.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

impl Member {
    /// openraft's metrics now, through the questions the member asks of them.
    pub(crate) fn view(&self) -> View {
        View::new(self.raft.metrics().borrow().clone())
    }

    /// Whether this member and `leader` are a quorum of the membership as this member holds it:
    /// three voters, both among them, no joint configuration (`commit_notice`, flush hints).
    pub(crate) fn quorum_with(&self, leader: NodeId) -> bool {
        let metrics = self.raft.server_metrics();
        let metrics = metrics.borrow();
        let joint = metrics.membership_config.membership().get_joint_config();
        joint.len() == 1
            && joint[0].len() == 3
            && joint[0].contains(&metrics.id)
            && joint[0].contains(&leader)
    }

    /// Notified whenever the Raft role, vote (term), leader or membership changes (for `_Server`
    /// updates and metrics). Not on log appends, commits or heartbeats: openraft's full metrics
    /// move several times per write, and every subscriber woken for each of them cost a thread
    /// wake-up per write on every member (docs/performance.md, "One writer at a time").
    pub fn subscribe_changes(&self) -> Changes {
        Changes(self.raft.server_metrics())
    }

    pub fn identity(&self) -> Identity {
        Identity {
            cluster_id: *self.cluster_id.read().unwrap(),
            ..self.identity.clone()
        }
    }

    pub fn set_observer(&self, observer: Arc<dyn ApplyObserver>) {
        self.shared.set_observer(observer);
    }

    /// Runs `f` on the applied state, atomically with respect to applies.
    pub fn with_state<R>(&self, f: impl FnOnce(&ReplicatedState) -> R) -> R {
        f(&self.shared.state.read().unwrap())
    }

    /// Holds the replicated state's write lock as a long apply does, for in-process tests.
    #[cfg(feature = "in-process")]
    pub fn lock_state_for_test(&self) -> std::sync::RwLockWriteGuard<'_, ReplicatedState> {
        self.shared.state.write().unwrap()
    }

    pub fn db_names(&self) -> Vec<String> {
        self.with_state(|s| s.dbs.keys().cloned().collect())
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub(crate) fn progress(&self) -> &crate::progress::Progress {
        &self.observed.progress
    }

    pub(crate) fn incarnation(&self) -> Uuid {
        self.incarnation
    }

    pub(crate) fn config(&self) -> &MemberConfig {
        &self.config
    }

    pub(crate) fn peer_contact(&self, node: NodeId) -> Option<Instant> {
        self.contact.last(node)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn digest_at(&self, index: u64) -> Option<u64> {
        self.shared.digests.at(index)
    }

    /// Called when the leader's append-entries or snapshot reaches this member.
    pub(crate) fn heard_from_leader(&self) {
        *self.last_leader_contact.lock().unwrap() = Some(Instant::now());
    }

    /// When a leader's append-entries last reached this member in this process.
    pub(crate) fn leader_contact(&self) -> Option<Instant> {
        *self.last_leader_contact.lock().unwrap()
    }

    /// Commands waiting for the next Raft entry on this member (group commit queue depth).
    pub fn proposal_queue_len(&self) -> usize {
        self.proposer.queued()
    }

    /// Commands of this member's clients waiting to be forwarded to the leader.
    pub fn forward_queue_len(&self) -> usize {
        self.forwarder.queued()
    }

    /// Bytes of commands queued or in flight in the proposer and the forwarder (each bounded
    /// by `config::QUEUE_BYTES`).
    pub fn queued_command_bytes(&self) -> usize {
        self.proposer.queued_bytes() + self.forwarder.queued_bytes()
    }

    /// Bytes of split commands applied in part (waiting for their last piece).
    pub fn incomplete_command_bytes(&self) -> usize {
        self.with_state(|s| s.incomplete_part_bytes())
    }

    /// Reads waiting for the next shared read index.
    pub fn read_queue_len(&self) -> usize {
        self.reads.queued()
    }

    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.subscribe_applied()
    }
}
