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
//! A leader that has had no quorum's answer at all since its election counts its silence from
//! when this task first saw it lead in its term: openraft reports no time since a quorum ack
//! until there is a first one, and a leader whose followers heard its heartbeats but whose
//! replication never got an answer stayed leader for 6.5 s in a soak, with nothing committed
//! and no follower calling an election (tests/faults/README.md, "Session 17").
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
    let mut silence = Silence::default();
    loop {
        tokio::time::sleep(tick).await;
        let Some(m) = member.upgrade() else { return };
        let timer = Duration::from_millis(m.election_timeout_ms());
        let v = m.view();
        let acked = v.millis_since_quorum_ack().map(Duration::from_millis);
        let Some(silent) = silence.sample(v.is_leader(), v.term(), acked, Instant::now()) else {
            continue;
        };
        let term = v.term();
        if last_step_down.is_some_and(|t| t.elapsed() < timer) {
            continue;
        }
        let Some(other) = v.voters().into_iter().find(|id| *id != me) else {
            continue; // the only voter is always its own quorum
        };
        if silent <= timer * 2 {
            continue;
        }
        tracing::warn!(
            term,
            silent_ms = silent.as_millis() as u64,
            ever_acked = acked.is_some(),
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

/// How long a leader has gone without its quorum's answer: since the last quorum ack, or, when
/// there has been none in its term, since it was first seen leading in that term.
#[derive(Default)]
struct Silence {
    /// The term this member was last seen leading in, and since when.
    leading: Option<(u64, Instant)>,
}

impl Silence {
    /// One sample of the member's state; `None` when it does not lead.
    fn sample(
        &mut self,
        is_leader: bool,
        term: u64,
        since_ack: Option<Duration>,
        now: Instant,
    ) -> Option<Duration> {
        if !is_leader {
            self.leading = None;
            return None;
        }
        let since = match self.leading {
            Some((t, since)) if t == term => since,
            _ => self.leading.insert((term, now)).1,
        };
        Some(since_ack.unwrap_or(now.saturating_duration_since(since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_never_acknowledged_is_silent_since_its_election_in_that_term() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut s = Silence::default();
        assert_eq!(s.sample(false, 3, None, t0), None, "a follower");
        assert_eq!(s.sample(true, 4, None, t0), Some(ms(0)), "elected");
        assert_eq!(s.sample(true, 4, None, t0 + ms(2_500)), Some(ms(2_500)));
        assert_eq!(
            s.sample(true, 4, Some(ms(30)), t0 + ms(2_600)),
            Some(ms(30)),
            "a quorum ack is what counts once there is one"
        );
        assert_eq!(s.sample(true, 4, None, t0 + ms(3_000)), Some(ms(3_000)));
        // A new term (elected again, with no follower turn seen in between) starts again.
        assert_eq!(s.sample(true, 5, None, t0 + ms(4_000)), Some(ms(0)));
        assert_eq!(s.sample(true, 5, None, t0 + ms(4_100)), Some(ms(100)));
        assert_eq!(s.sample(false, 6, None, t0 + ms(5_000)), None);
        assert_eq!(
            s.sample(true, 7, None, t0 + ms(9_000)),
            Some(ms(0)),
            "led again"
        );
    }
}
