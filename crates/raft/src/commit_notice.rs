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
//!
//! Flush hints. With three voters the leader and any one follower are a quorum. The leader's
//! own flush runs beside replication (Halyard's first openraft change), and when it is reported
//! while the commit index is still behind, the leader's core tells each follower that has not
//! yet matched it how far its log is durable (`RaftNetworkFactory::notify_flushed`). The hint
//! takes the notices' slot and stream: one message, an AppendEntries without entries whose
//! previous entry is the leader's durable end and whose commit index is the leader's (a member
//! of an earlier version runs it as the heartbeat it is), so a newer notice or hint carries
//! both figures and the slot stays one message deep. A follower
//! whose own log is durable and matches that leader's up to an entry of the leader's term that
//! the leader holds durably too knows the entry is committed (Raft §5.4.2: stored by a quorum
//! in the leader's term) and runs the notice for it at once ([`Pending::hinted`],
//! [`Pending::appended`]), without waiting for the leader to count its answer and send the
//! commit index back: a round trip and two of the leader's steps off a write through a
//! follower, where the follower answers its client at its own apply.
//!
//! Why it is safe: the follower counts only its own append, answered by openraft after its
//! flush, and the leader's flush, reported by the leader's log store; both under the leader's
//! vote, which openraft checks again when it runs the notice. It infers only when its own
//! membership (the latest in its log) is three voters including itself and the leader, with no
//! joint configuration. A configuration change the leader appended beyond what this follower
//! holds does not break it: while the joint configuration rules, elections need a majority of
//! the old voters too, which meets the two holders; once the new configuration rules, its
//! entry was committed under the joint one, so a majority of the new voters holds it and every
//! entry before it. An entry of an earlier term is never counted this way. Reads: a follower
//! applies such an entry before the leader counts it, so the leader's read index covers every
//! entry it hinted at (`Leader::hinted` in the patched openraft), or a read at the leader could
//! miss a write a follower's client already saw (found by the fault suite's soak).

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

/// What goes on the stream: the notice for `committed`, or, while the leader's own log is
/// durable beyond it, an AppendEntries without entries whose previous entry is `flushed` and
/// whose commit index is `committed` (a flush hint; a member of an earlier version runs it as the
/// heartbeat it is).
fn message(
    vote: Vote<NodeId>,
    committed: Option<LogId<NodeId>>,
    flushed: Option<LogId<NodeId>>,
) -> Option<AppendEntriesRequest<TypeConfig>> {
    match (committed, flushed) {
        (_, Some(flushed)) if Some(flushed) > committed => Some(AppendEntriesRequest {
            vote,
            prev_log_id: Some(flushed),
            leader_commit: committed,
            entries: Vec::new(),
        }),
        (Some(committed), _) => Some(notice(vote, committed)),
        (None, _) => None,
    }
}

/// Whether `rpc` is a notice (what [`notice`] builds).
fn is_notice(rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
    rpc.entries.is_empty() && rpc.prev_log_id.is_some() && rpc.prev_log_id == rpc.leader_commit
}

type Notice = AppendEntriesRequest<TypeConfig>;

/// The leader's vote and its durable end (a flush hint).
pub(crate) type Hint = (Vote<NodeId>, LogId<NodeId>);

/// What a message of the stream says: the notice of its commit index, if it has one, and the
/// leader's durable end when that is ahead of it (a flush hint).
pub(crate) fn split(rpc: AppendEntriesRequest<TypeConfig>) -> (Option<Notice>, Option<Hint>) {
    if !rpc.entries.is_empty() || rpc.prev_log_id <= rpc.leader_commit {
        return (Some(rpc), None);
    }
    let hint = rpc.prev_log_id.map(|flushed| (rpc.vote, flushed));
    (rpc.leader_commit.map(|c| notice(rpc.vote, c)), hint)
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
    /// What the stream last carried: the leader's vote, its commit index and its durable end.
    told: Option<Told>,
}

#[derive(Clone, Copy)]
struct Told {
    vote: Vote<NodeId>,
    committed: Option<LogId<NodeId>>,
    flushed: Option<LogId<NodeId>>,
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
        let told = self.told.filter(|t| t.vote == vote);
        let flushed = told.and_then(|t| t.flushed);
        self.send(
            client,
            target,
            Told {
                vote,
                committed: Some(committed),
                flushed,
            },
        )
    }

    /// Tells `target` that the leader of `vote` holds its log durably up to `flushed`, ahead of
    /// its commit index `committed` (the flush hint: `RaftNetworkFactory::notify_flushed`). The
    /// hint travels in the notices' slot: a newer notice or hint carries both figures.
    pub(crate) fn hint(
        &mut self,
        client: Option<&MemberClient<Channel>>,
        target: NodeId,
        vote: Vote<NodeId>,
        flushed: LogId<NodeId>,
        committed: Option<LogId<NodeId>>,
    ) -> bool {
        let told = self.told.filter(|t| t.vote == vote);
        let committed = committed.max(told.and_then(|t| t.committed));
        if committed >= Some(flushed) || told.is_some_and(|t| t.flushed >= Some(flushed)) {
            return false;
        }
        metrics::counter!("halyard_raft_flush_hints_sent_total").increment(1);
        self.send(
            client,
            target,
            Told {
                vote,
                committed,
                flushed: Some(flushed),
            },
        )
    }

    fn send(&mut self, client: Option<&MemberClient<Channel>>, target: NodeId, told: Told) -> bool {
        if self.unsupported.load(Ordering::Relaxed) {
            return false;
        }
        let Some(rpc) = message(told.vote, told.committed, told.flushed) else {
            return false;
        };
        let payload = Payload { data: encode(&rpc) };
        if let Some(open) = &self.open {
            if !open.task.is_finished() {
                open.latest.send_replace(payload);
                self.told = Some(told);
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
        self.told = Some(told);
        true
    }
}

/// The follower's side: the latest notice that came before its entry, how far this member's
/// appends reached (so that a notice refused just before its entry was appended is run again at
/// once, whichever of the two finishes last), and the leader's latest flush hint.
#[derive(Default)]
pub(crate) struct Pending(Mutex<Slot>);

#[derive(Default)]
struct Slot {
    notice: Option<AppendEntriesRequest<TypeConfig>>,
    /// The vote and last log id of this member's latest successful append: openraft answers a
    /// follower's append only after its flush, so the log is durable and matches that leader's
    /// up to there.
    appended: Option<(Vote<NodeId>, LogId<NodeId>)>,
    /// The leader's durable end, ahead of its commit index (a flush hint).
    hint: Option<(Vote<NodeId>, LogId<NodeId>)>,
    /// The newest commit index openraft took from a notice of this vote.
    committed: Option<(Vote<NodeId>, u64)>,
}

/// A notice to run through openraft now, and whether this member inferred it from a flush hint
/// rather than received it.
pub(crate) struct Ready {
    pub(crate) rpc: AppendEntriesRequest<TypeConfig>,
    pub(crate) inferred: bool,
}

impl Slot {
    fn covers(&self, notice: &AppendEntriesRequest<TypeConfig>) -> bool {
        let wanted = notice.prev_log_id.map_or(0, |l| l.index);
        self.appended
            .is_some_and(|(vote, last)| vote == notice.vote && last.index >= wanted)
    }

    fn known(&self, vote: Vote<NodeId>, index: u64) -> bool {
        self.committed.is_some_and(|(v, c)| v == vote && c >= index)
    }

    /// The commit this member can infer from the leader's flush hint and its own appends: with
    /// three voters, an entry of the leader's term that the leader and this member both hold
    /// durably is held by a quorum, which is Raft's commit rule (§5.4.2; an entry of an earlier
    /// term is never counted so). `quorum` says whether this member and the leader are one.
    fn inferable(&self, quorum: impl FnOnce(NodeId) -> bool) -> Option<LogId<NodeId>> {
        let (vote, flushed) = self.hint?;
        let (appended_vote, last) = self.appended?;
        if appended_vote != vote || !vote.is_committed() {
            return None;
        }
        let upto = if flushed.index <= last.index {
            flushed
        } else {
            last
        };
        if upto.leader_id != *vote.leader_id() || self.known(vote, upto.index) {
            return None;
        }
        quorum(vote.leader_id().voted_for()?).then_some(upto)
    }

    /// The kept notice if this member's appends brought its entry, or the inferred commit,
    /// whichever reaches further.
    fn ready(&mut self, quorum: impl FnOnce(NodeId) -> bool) -> Option<Ready> {
        let kept = match &self.notice {
            Some(notice) if self.covers(notice) => self.notice.take(),
            _ => None,
        };
        let inferred = self.inferable(quorum);
        match (kept, inferred) {
            (Some(kept), Some(upto)) if kept.prev_log_id >= Some(upto) => Some(Ready {
                rpc: kept,
                inferred: false,
            }),
            (_, Some(upto)) => {
                let (vote, _) = self.hint?;
                Some(Ready {
                    rpc: notice(vote, upto),
                    inferred: true,
                })
            }
            (Some(kept), None) => Some(Ready {
                rpc: kept,
                inferred: false,
            }),
            (None, None) => None,
        }
    }
}

impl Pending {
    /// After openraft answered the notice `rpc` with `result`: a notice refused for lack of
    /// its entry is kept for the append that brings it, or handed back to be run again now if
    /// that append has finished meanwhile. A notice taken is remembered, so that one the member
    /// already inferred is not run again ([`Pending::is_known`]).
    pub(crate) fn keep_if_early(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
        result: &Result<AppendEntriesResponse<NodeId>, impl Sized>,
    ) -> Option<AppendEntriesRequest<TypeConfig>> {
        if !is_notice(&rpc) {
            return None;
        }
        let mut slot = self.0.lock().unwrap();
        match result {
            Ok(AppendEntriesResponse::Success) => {
                let index = rpc.prev_log_id.map_or(0, |l| l.index);
                if !slot.known(rpc.vote, index) {
                    slot.committed = Some((rpc.vote, index));
                }
                None
            }
            Ok(AppendEntriesResponse::Conflict) => {
                if slot.covers(&rpc) {
                    return Some(rpc);
                }
                slot.notice = Some(rpc);
                None
            }
            _ => None,
        }
    }

    /// Whether openraft already took a commit index at least as far as the notice `rpc`'s under
    /// its vote (then running it again would change nothing).
    pub(crate) fn is_known(&self, rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
        let index = rpc.prev_log_id.map_or(0, |l| l.index);
        self.0.lock().unwrap().known(rpc.vote, index)
    }

    /// After a successful append of `vote` that reached `last`: the kept notice, if that append
    /// brought its entry, or the commit inferred from the leader's flush hint.
    pub(crate) fn appended(
        &self,
        vote: Vote<NodeId>,
        last: Option<LogId<NodeId>>,
        quorum: impl FnOnce(NodeId) -> bool,
    ) -> Option<Ready> {
        let mut slot = self.0.lock().unwrap();
        if let Some(last) = last {
            let further = slot
                .appended
                .is_none_or(|(v, l)| v != vote || last.index > l.index);
            if further {
                slot.appended = Some((vote, last));
            }
        }
        if slot.notice.as_ref().is_some_and(|n| n.vote != vote) {
            // Another leader's: its entry, if committed, comes with this leader's commit index.
            slot.notice = None;
        }
        slot.ready(quorum)
    }

    /// The leader of `vote` holds its log durably up to `flushed`: the commit this member can
    /// infer from it now, if any (otherwise an append that brings the entry may).
    pub(crate) fn hinted(
        &self,
        vote: Vote<NodeId>,
        flushed: LogId<NodeId>,
        quorum: impl FnOnce(NodeId) -> bool,
    ) -> Option<Ready> {
        let mut slot = self.0.lock().unwrap();
        if slot.hint.is_none_or(|(v, f)| v != vote || flushed > f) {
            slot.hint = Some((vote, flushed));
        }
        let upto = slot.inferable(quorum)?;
        Some(Ready {
            rpc: notice(vote, upto),
            inferred: true,
        })
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

    /// Three voters, this member and the leader among them.
    fn quorum(_: NodeId) -> bool {
        true
    }

    fn no_quorum(_: NodeId) -> bool {
        false
    }

    #[test]
    fn an_early_notice_is_applied_after_the_append_that_brings_its_entry() {
        let vote = Vote::new_committed(2, 1);
        let pending = Pending::default();
        let ok: Result<_, ()> = Ok(AppendEntriesResponse::Success);
        let conflict: Result<_, ()> = Ok(AppendEntriesResponse::Conflict);
        // A notice that matched is not kept.
        assert!(pending.keep_if_early(notice(vote, id(2, 7)), &ok).is_none());
        assert!(pending.appended(vote, Some(id(2, 9)), quorum).is_none());
        // One that came first waits for an append reaching its entry.
        let pending = Pending::default();
        assert!(pending
            .keep_if_early(notice(vote, id(2, 7)), &conflict)
            .is_none());
        assert!(
            pending.appended(vote, Some(id(2, 6)), quorum).is_none(),
            "entry 7 not there yet"
        );
        let again = pending
            .appended(vote, Some(id(2, 8)), quorum)
            .expect("kept");
        assert!(!again.inferred);
        assert_eq!(again.rpc.leader_commit, Some(id(2, 7)));
        assert!(
            pending.appended(vote, Some(id(2, 9)), quorum).is_none(),
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
        assert!(pending
            .appended(next_leader, Some(id(3, 13)), quorum)
            .is_none());
        assert!(pending.appended(vote, Some(id(2, 13)), quorum).is_none());
    }

    /// The stream carries the commit index alone, or with the leader's durable end ahead of it;
    /// the follower reads back what was meant.
    #[test]
    fn a_flush_hint_travels_with_the_commit_index() {
        let vote = Vote::new_committed(2, 1);
        let plain = message(vote, Some(id(2, 7)), Some(id(2, 7))).unwrap();
        assert!(is_notice(&plain));
        let (commit, flushed) = split(plain.clone());
        assert_eq!(commit.map(shape), Some(shape(plain)));
        assert!(flushed.is_none());
        let hint = message(vote, Some(id(2, 7)), Some(id(2, 9))).unwrap();
        assert!(
            !is_notice(&hint),
            "an earlier version runs it as a heartbeat"
        );
        let (commit, flushed) = split(hint);
        assert_eq!(commit.map(shape), Some(shape(notice(vote, id(2, 7)))));
        assert_eq!(flushed, Some((vote, id(2, 9))));
        let first = message(vote, None, Some(id(2, 1))).unwrap();
        let (commit, flushed) = split(first);
        assert!(commit.is_none());
        assert_eq!(flushed, Some((vote, id(2, 1))));
        assert!(message(vote, None, None).is_none());
        assert_eq!(
            message(vote, Some(id(2, 9)), Some(id(2, 8))).map(shape),
            Some(shape(notice(vote, id(2, 9)))),
            "a hint behind the commit index says nothing"
        );
    }

    /// Raft's commit rule at the follower: an entry of the leader's term held durably by the
    /// leader and by this member, with three voters.
    #[test]
    fn a_follower_infers_a_commit_from_the_leaders_flush_and_its_own() {
        let vote = Vote::new_committed(2, 1);
        let pending = Pending::default();
        // No hint, nothing inferred.
        assert!(pending.appended(vote, Some(id(2, 8)), quorum).is_none());
        // The hint first.
        let pending = Pending::default();
        assert!(
            pending.hinted(vote, id(2, 9), quorum).is_none(),
            "nothing held"
        );
        let ready = pending
            .appended(vote, Some(id(2, 8)), quorum)
            .expect("8 is held by both");
        assert!(ready.inferred);
        assert_eq!(shape(&ready.rpc), shape(notice(vote, id(2, 8))));
        let ok: Result<_, ()> = Ok(AppendEntriesResponse::Success);
        assert!(pending.keep_if_early(ready.rpc, &ok).is_none());
        let ready = pending
            .appended(vote, Some(id(2, 10)), quorum)
            .expect("9 is held by both");
        assert_eq!(shape(&ready.rpc), shape(notice(vote, id(2, 9))));
        assert!(pending.keep_if_early(ready.rpc, &ok).is_none());
        assert!(
            pending.is_known(&notice(vote, id(2, 9))),
            "the leader's own notice for 9 is not run again"
        );
        assert!(!pending.is_known(&notice(vote, id(2, 10))));
        assert!(
            pending.appended(vote, Some(id(2, 10)), quorum).is_none(),
            "nothing new"
        );
        // The hint after the append.
        let ready = pending.hinted(vote, id(2, 12), quorum).expect("10");
        assert_eq!(shape(&ready.rpc), shape(notice(vote, id(2, 10))));
    }

    #[test]
    fn no_commit_is_inferred_without_a_quorum_of_two_or_from_another_term() {
        let vote = Vote::new_committed(2, 1);
        // Five voters, a joint configuration, or this member a learner.
        let pending = Pending::default();
        assert!(pending.appended(vote, Some(id(2, 8)), no_quorum).is_none());
        assert!(pending.hinted(vote, id(2, 9), no_quorum).is_none());
        // An entry of an earlier term is not committed by counting its copies (Raft §5.4.2).
        let pending = Pending::default();
        assert!(pending.appended(vote, Some(id(1, 8)), quorum).is_none());
        assert!(pending.hinted(vote, id(2, 9), quorum).is_none());
        // Another leader's hint, or an append under another leader.
        let pending = Pending::default();
        let next = Vote::new_committed(3, 2);
        assert!(pending.appended(vote, Some(id(2, 8)), quorum).is_none());
        assert!(pending.hinted(next, id_of(3, 2, 9), quorum).is_none());
        assert!(pending
            .appended(next, Some(id_of(3, 2, 9)), quorum)
            .is_some_and(|r| r.inferred && shape(r.rpc) == shape(notice(next, id_of(3, 2, 9)))));
        // A vote not yet granted by a quorum is not a leader's.
        let pending = Pending::default();
        let candidate = Vote::new(4, 3);
        assert!(pending
            .appended(candidate, Some(id_of(4, 3, 9)), quorum)
            .is_none());
        assert!(pending.hinted(candidate, id_of(4, 3, 9), quorum).is_none());
    }

    #[test]
    fn a_kept_notice_and_an_inferred_commit_give_the_further_one() {
        let vote = Vote::new_committed(2, 1);
        let conflict: Result<_, ()> = Ok(AppendEntriesResponse::Conflict);
        // (the leader's durable end, the kept notice's entry, whether the commit run is the
        // inferred one); this member's append reaches entry 9 in each.
        for (flushed, kept, inferred) in [(9, 7, true), (8, 9, false)] {
            let pending = Pending::default();
            assert!(pending.hinted(vote, id(2, flushed), quorum).is_none());
            assert!(pending
                .keep_if_early(notice(vote, id(2, kept)), &conflict)
                .is_none());
            let ready = pending.appended(vote, Some(id(2, 9)), quorum).unwrap();
            assert_eq!(ready.inferred, inferred, "hint {flushed}, kept {kept}");
            assert_eq!(shape(&ready.rpc), shape(notice(vote, id(2, 9))));
        }
    }

    type Shape = (
        Vote<NodeId>,
        Option<LogId<NodeId>>,
        Option<LogId<NodeId>>,
        usize,
    );

    fn shape(rpc: impl std::borrow::Borrow<AppendEntriesRequest<TypeConfig>>) -> Shape {
        let rpc = rpc.borrow();
        (
            rpc.vote,
            rpc.prev_log_id,
            rpc.leader_commit,
            rpc.entries.len(),
        )
    }

    fn id_of(term: u64, node: NodeId, index: u64) -> LogId<NodeId> {
        LogId::new(openraft::CommittedLeaderId::new(term, node), index)
    }
}
