//! Check-quorum: a leader that has not heard from a quorum for two election timers steps down.
//!
//! openraft 0.9 has no check-quorum: a leader cut off from the others stays leader in its own
//! view until it hears a higher term, which a partition can delay for as long as it lasts. Status
//! then showed two leaders (the cut-off one and the one the majority elected) for minutes, and
//! the cut-off one kept accepting writes that could only time out. ovsdb-server's leader steps
//! down once an election timer passes without replies from a majority (`raft.c`); Halyard does
//! the same after two, the bound `Member::connected` already uses, so a leader that reports
//! itself connected never steps down and a slow but live quorum (large transfers on a loaded
//! machine) is given the time it needs.
//!
//! openraft offers no call to step down (`trigger().elect()` is ignored on a leader). The leader
//! instead accepts, through its own `vote` handler, a vote of the next term for another voter, as
//! if that voter had asked for it: it becomes a follower, and calls an election of its own when
//! its timer runs out. This is safe: a member grants at most one vote per term either way, and a
//! real request of that voter in that term still passes openraft's log check before its vote is
//! counted; the vote given here is never sent anywhere.

use std::sync::Weak;
use std::time::{Duration, Instant};

use openraft::raft::VoteRequest;
use openraft::{CommittedLeaderId, LogId, Vote};

use crate::member::Member;

pub(crate) async fn run(member: Weak<Member>) {
    let Some(m) = member.upgrade() else { return };
    let tick = Duration::from_millis(m.config().heartbeat_ms);
    let me = m.identity().node_id;
    drop(m);
    let mut last_step_down: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let Some(m) = member.upgrade() else { return };
        let timer = Duration::from_millis(m.election_timeout_ms());
        let v = m.view();
        if !v.is_leader() || last_step_down.is_some_and(|t| t.elapsed() < timer) {
            continue;
        }
        let Some(other) = v.voters().into_iter().find(|id| *id != me) else {
            continue; // the only voter is always its own quorum
        };
        let silent = v.millis_since_quorum_ack().map(Duration::from_millis);
        if silent.is_none_or(|s| s <= timer * 2) {
            continue;
        }
        let term = v.term();
        tracing::warn!(
            term,
            silent_ms = silent.map(|s| s.as_millis() as u64),
            "no quorum has answered for two election timers: stepping down"
        );
        // The log check compares the request with this member's own last log id; giving exactly
        // that passes it without claiming anything about `other`'s log. A leader's last entry is
        // its own (at the latest its blank entry of this term).
        let last_log_id = v
            .last_log_index()
            .map(|index| LogId::new(CommittedLeaderId::new(term, me), index));
        let request = VoteRequest {
            vote: Vote::new(term + 1, other),
            last_log_id,
        };
        match m.raft().vote(request).await {
            Ok(resp) if resp.vote_granted => last_step_down = Some(Instant::now()),
            Ok(resp) => tracing::warn!(vote = %resp.vote, "could not step down: vote refused"),
            Err(e) => tracing::warn!("could not step down: {e}"),
        }
    }
}
