//! Commit notices: the leader's commit index, sent to each follower as it moves on a stream of
//! its own (`CommitStream` in proto/halyard.proto) instead of in an AppendEntries round.
//!
//! Why. openraft 0.9 keeps one AppendEntries in flight per follower. Upstream, every commit
//! sends each follower an AppendEntries without entries to carry the new commit index, and
//! entries proposed meanwhile wait for its answer. That round cost a quarter of the cluster's
//! CPU per write with one writer (docs/performance.md, "Session 20"), and under load it held
//! back the next entries. A notice is one message one way; the follower's answer is dropped.
//! With the patched openraft (`RaftNetworkFactory::notify_committed`,
//! vendor/openraft/HALYARD-PATCH.md) the leader's core sends the notice as soon as it commits,
//! and replication sends no commit round when a notice was handed over; AppendEntries with
//! entries still carry the commit index, and so do the heartbeats. Sent by the core, a notice
//! does not wait for the request in flight to that follower (openraft hands a replication task
//! the new commit index only between two requests): a follower whose answer did not form the
//! quorum learns the commit while its own append may still be running, which is the early
//! notice case below, and the common one under load.
//!
//! Safety. A notice is an AppendEntries without entries from the leader's vote, whose previous
//! entry and commit index are both the leader's newest committed entry. The follower runs it
//! through openraft like any AppendEntries: a stale vote is refused, a previous entry it does
//! not hold is a conflict (nothing is committed; a different entry at that index is not the
//! committed one, so dropping it is what the leader's next request would do), and a match
//! commits up to that entry, which by the log matching property is the leader's committed
//! prefix. Nothing a notice does is outside what openraft already does for a heartbeat.
//!
//! Liveness. A notice may overtake the request carrying its entry (another stream on the same
//! connection). The follower keeps the latest such notice ([`Pending`]) and applies it again
//! right after the append that brings the entry; otherwise that commit would wait for the next
//! request or heartbeat (50 ms).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{LogId, Vote};
use tonic::transport::Channel;

use crate::config::COMMIT_NOTICE_RETRY;
use crate::network::encode;
use crate::pb::member_client::MemberClient;
use crate::pb::Payload;
use crate::types::{NodeId, TypeConfig};

/// The notice for `committed` under the leader's `vote`.
pub(crate) fn notice(
    vote: Vote<NodeId>,
    committed: LogId<NodeId>,
) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote,
        prev_log_id: Some(committed),
        leader_commit: Some(committed),
        entries: Vec::new(),
    }
}

/// Whether `rpc` is a notice (what [`notice`] builds).
fn is_notice(rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
    rpc.entries.is_empty() && rpc.prev_log_id.is_some() && rpc.prev_log_id == rpc.leader_commit
}

/// The leader's side, one per follower (the network factory keeps it across replication
/// sessions): the newest notice waits in a watch slot and the stream's task sends it when it
/// can, so a notice replaced before its turn is never sent (a slot of one: the queue is bounded
/// by construction).
#[derive(Default)]
pub(crate) struct Sender {
    open: Option<Open>,
    /// The last stream failed: no new one before then (the follower is down or restarting;
    /// openraft's own backoff covers the AppendEntries meanwhile).
    retry_at: Option<Instant>,
    /// The follower has no `CommitStream` (a member of an earlier version, during an upgrade).
    unsupported: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
}

struct Open {
    latest: tokio::sync::watch::Sender<Payload>,
    task: tokio::task::JoinHandle<()>,
}

impl Sender {
    /// Hands the notice for `committed` to the stream to `target`, opening it if needed. False
    /// when no notice can go (no client, no stream support, a recent failure): the caller then
    /// carries the commit index on an AppendEntries, as upstream does.
    pub(crate) fn notify(
        &mut self,
        client: Option<&MemberClient<Channel>>,
        target: NodeId,
        vote: Vote<NodeId>,
        committed: LogId<NodeId>,
    ) -> bool {
        if self.unsupported.load(Ordering::Relaxed) {
            return false;
        }
        let payload = Payload {
            data: encode(&notice(vote, committed)),
        };
        if let Some(open) = &self.open {
            if !open.task.is_finished() {
                open.latest.send_replace(payload);
                return true;
            }
            self.open = None;
            if self.failed.swap(false, Ordering::Relaxed) {
                self.retry_at = Some(Instant::now() + COMMIT_NOTICE_RETRY);
            }
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        let Some(mut client) = client.cloned() else {
            return false;
        };
        // The stream ends when this sender is dropped (the peer left or changed address) or the
        // connection breaks; the next notice opens another.
        let (latest, slot) = tokio::sync::watch::channel(payload);
        let (unsupported, failed) = (self.unsupported.clone(), self.failed.clone());
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            let notices = tokio_stream::wrappers::WatchStream::new(slot).inspect(|_| {
                metrics::counter!("halyard_raft_commit_notices_sent_total").increment(1);
            });
            match client.commit_stream(notices).await {
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    tracing::info!(
                        peer = target,
                        "peer takes no commit notices (earlier version)"
                    );
                    unsupported.store(true, Ordering::Relaxed);
                }
                Err(status) => {
                    tracing::debug!(peer = target, "commit notices: {status}");
                    failed.store(true, Ordering::Relaxed);
                }
                Ok(_) => {}
            }
        });
        self.open = Some(Open { latest, task });
        true
    }
}

/// The follower's side: the latest notice that came before its entry, and how far this
/// member's appends reached (so that a notice refused just before its entry was appended is
/// run again at once, whichever of the two finishes last).
#[derive(Default)]
pub(crate) struct Pending(Mutex<Slot>);

#[derive(Default)]
struct Slot {
    notice: Option<AppendEntriesRequest<TypeConfig>>,
    /// The vote and last index of this member's latest successful append.
    appended: Option<(Vote<NodeId>, u64)>,
}

impl Slot {
    fn covers(&self, notice: &AppendEntriesRequest<TypeConfig>) -> bool {
        let wanted = notice.prev_log_id.map_or(0, |l| l.index);
        self.appended
            .is_some_and(|(vote, last)| vote == notice.vote && last >= wanted)
    }
}

impl Pending {
    /// After openraft answered the notice `rpc` with `result`: a notice refused for lack of
    /// its entry is kept for the append that brings it, or handed back to be run again now if
    /// that append has finished meanwhile.
    pub(crate) fn keep_if_early(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
        result: &Result<AppendEntriesResponse<NodeId>, impl Sized>,
    ) -> Option<AppendEntriesRequest<TypeConfig>> {
        if !is_notice(&rpc) || !matches!(result, Ok(AppendEntriesResponse::Conflict)) {
            return None;
        }
        let mut slot = self.0.lock().unwrap();
        if slot.covers(&rpc) {
            return Some(rpc);
        }
        slot.notice = Some(rpc);
        None
    }

    /// After a successful append of `vote` that reached `last`: the kept notice, if that append
    /// brought its entry.
    pub(crate) fn appended(
        &self,
        vote: Vote<NodeId>,
        last: Option<LogId<NodeId>>,
    ) -> Option<AppendEntriesRequest<TypeConfig>> {
        let mut slot = self.0.lock().unwrap();
        if let Some(last) = last {
            let further = slot
                .appended
                .is_none_or(|(v, l)| v != vote || last.index > l);
            if further {
                slot.appended = Some((vote, last.index));
            }
        }
        let notice = slot.notice.as_ref()?;
        if notice.vote != vote {
            // Another leader's: its entry, if committed, comes with this leader's commit index.
            slot.notice = None;
            return None;
        }
        if slot.covers(notice) {
            slot.notice.take()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer of an earlier version answers `CommitStream` with Unimplemented: the first notice
    /// goes (the stream opens), the ones after it are refused, so the leader's core tells
    /// replication to carry the commit index on AppendEntries again.
    #[tokio::test]
    async fn a_peer_without_commit_notices_gets_append_entries_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // No Halyard service at all: tonic answers every call Unimplemented.
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(tonic::service::Routes::default())
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let client = crate::network::client(&addr.to_string()).unwrap();
        let vote = Vote::new_committed(2, 1);
        let mut sender = Sender::default();
        assert!(
            sender.notify(Some(&client), 2, vote, id(2, 1)),
            "first notice"
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !sender.unsupported.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "no answer from the peer");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!sender.notify(Some(&client), 2, vote, id(2, 2)));
        assert!(!sender.notify(Some(&client), 2, vote, id(2, 3)), "for good");
        server.abort();
    }

    fn id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn a_notice_is_told_apart_from_a_heartbeat() {
        let vote = Vote::new_committed(2, 1);
        assert!(is_notice(&notice(vote, id(2, 7))));
        let heartbeat = AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: Some(id(2, 7)),
            leader_commit: Some(id(2, 5)),
            entries: Vec::new(),
        };
        assert!(!is_notice(&heartbeat));
    }

    #[test]
    fn an_early_notice_is_applied_after_the_append_that_brings_its_entry() {
        let vote = Vote::new_committed(2, 1);
        let pending = Pending::default();
        let ok: Result<_, ()> = Ok(AppendEntriesResponse::Success);
        let conflict: Result<_, ()> = Ok(AppendEntriesResponse::Conflict);
        // A notice that matched is not kept.
        assert!(pending.keep_if_early(notice(vote, id(2, 7)), &ok).is_none());
        assert!(pending.appended(vote, Some(id(2, 9))).is_none());
        // One that came first waits for an append reaching its entry.
        let pending = Pending::default();
        assert!(pending
            .keep_if_early(notice(vote, id(2, 7)), &conflict)
            .is_none());
        assert!(
            pending.appended(vote, Some(id(2, 6))).is_none(),
            "entry 7 not there yet"
        );
        let again = pending.appended(vote, Some(id(2, 8))).expect("kept");
        assert_eq!(again.leader_commit, Some(id(2, 7)));
        assert!(
            pending.appended(vote, Some(id(2, 9))).is_none(),
            "applied once"
        );
        // Refused, but the append that brought its entry finished before it was kept: run it
        // again at once.
        let retry = pending.keep_if_early(notice(vote, id(2, 9)), &conflict);
        assert_eq!(retry.expect("run again").prev_log_id, Some(id(2, 9)));
        // Another leader's notice is dropped.
        assert!(pending
            .keep_if_early(notice(vote, id(2, 12)), &conflict)
            .is_none());
        let next_leader = Vote::new_committed(3, 2);
        assert!(pending.appended(next_leader, Some(id(3, 13))).is_none());
        assert!(pending.appended(vote, Some(id(2, 13))).is_none());
    }
}
