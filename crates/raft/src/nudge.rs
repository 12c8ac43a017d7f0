//! Election nudge: a voter that has heard no leader for longer than an election should take calls
//! an election itself.
//!
//! openraft 0.9 adds a penalty of twice the maximum election timeout to a member's election timer
//! once one of its vote requests was refused for a shorter log, and clears it only when that
//! member next starts an election. The flag outlives the election that set it: a member that lost
//! one election that way is, at the next failover, a second slower than its peers. When the other
//! survivor then calls its election first with a slightly shorter log (normal under write load:
//! the two followers rarely hold exactly the same entries when the leader dies), it is refused,
//! and the cluster waited for the penalised member: failovers of 2-3 s instead of about one
//! election timer.
//!
//! The nudge does not change normal elections: it only acts once a member has heard no leader for
//! a whole election timer plus a random fraction of one (normal elections start within 0.75-1 of
//! it), and then calls an election directly, which skips the penalty. A member that hears a leader
//! is never nudged, so a healthy leader is not deposed by it.
//!
//! Silence is counted from the last leader heard or from the last moment this member led itself,
//! whichever is later. A leader cut off from its peers hears no other leader while the majority
//! elects one; counted from its last contact with a leader, the silence it came out of a healed
//! partition with was already longer than an election, and it called one at the first tick after
//! stepping down, before the new leader's first heartbeat reached it. That election deposed the
//! new leader (no pre-vote in openraft 0.9), whose own lock owners were then told `stolen`: the
//! lock-lease test caught it once in twenty runs.
//!
//! Nor is a silence counted while this member itself was not running. A follower stopped for a
//! few seconds (SIGSTOP, a stalled VM, a starved CPU) woke with its silence as long as the
//! stop and called an election at its first tick, before it had read the heartbeats waiting
//! on its sockets: a healthy leader was deposed after every such pause (the soak showed it on
//! every SIGSTOP of a follower). A tick that comes more than half an election timer late means
//! the member was stopped ([`STOPPED_AFTER`]); its silence starts again from then. openraft's
//! own election timer had the same fault and has the same rule (Halyard's openraft patch).
//!
//! Nor does a nudge overtake an election in progress: before calling one it asks openraft's own
//! state (the metrics lag while openraft waits on a slow disk) and stands back while this member
//! is a candidate or changed its vote less than a timer ago, and after one it waits for openraft
//! to have acted on it. On a disk where saving a vote takes hundreds of milliseconds, nudges
//! otherwise started a new term over every round and the cluster stayed leaderless.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::member::Member;

/// A tick this late (beyond the tick itself), as a fraction of the election timer, means this
/// member was not running meanwhile: half, as openraft's own election tick (Halyard's patch)
/// judges it, so a member that is merely slow still nudges.
const STOPPED_AFTER: u32 = 2;

/// A random duration in `[0, max)`, different in every member and every call.
fn jitter(max: Duration) -> Duration {
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    Duration::from_millis(r % (max.as_millis() as u64).max(1))
}

/// How long this member has been without a leader: since it last heard one, since it last led
/// itself, or since it came back from being stopped, whichever is latest (`started` when none
/// happened yet).
fn silence(
    heard: Option<Instant>,
    led: Option<Instant>,
    resumed: Option<Instant>,
    started: Instant,
) -> Duration {
    heard.max(led).max(resumed).unwrap_or(started).elapsed()
}

/// openraft's own view, fresh (the metrics lag while openraft waits on the disk): its server
/// state and how long ago its vote last changed. `None` once it has shut down.
pub(crate) async fn election_state(
    raft: &crate::types::Raft,
) -> Option<(openraft::ServerState, Option<Duration>)> {
    raft.with_raft_state(|s| {
        let since = s
            .vote_last_modified()
            .map(|t| tokio::time::Instant::now() - t);
        (s.server_state, since)
    })
    .await
    .ok()
}

pub(crate) async fn run(member: Weak<Member>) {
    let Some(m) = member.upgrade() else { return };
    let mut timer = Duration::from_millis(m.election_timeout_ms());
    let tick = Duration::from_millis(m.config().heartbeat_ms);
    drop(m);
    let started = Instant::now();
    let mut patience = timer + jitter(timer / 4);
    // After a nudge, the next one waits a fresh random time: with a fixed interval, every
    // voter that lost contact nudged in the same rhythm, their candidacies kept splitting the
    // vote, and a 5-member cluster once went 6 s and 8 terms without a leader.
    let mut next_nudge: Option<Instant> = None;
    // The last tick at which this member was the leader.
    let mut led: Option<Instant> = None;
    // The last tick that came so late that this member had been stopped.
    let mut resumed: Option<Instant> = None;
    loop {
        let asleep = Instant::now();
        tokio::time::sleep(tick).await;
        if asleep.elapsed() > tick + timer / STOPPED_AFTER {
            resumed = Some(Instant::now());
        }
        let Some(m) = member.upgrade() else { return };
        // The timer the cluster agreed on (`cluster/change-election-timer`) rules here too.
        let agreed = Duration::from_millis(m.election_timeout_ms());
        if agreed != timer {
            timer = agreed;
            patience = timer + jitter(timer / 4);
        }
        let status = m.status();
        if status.is_leader {
            led = Some(Instant::now());
        }
        if status.is_leader || !m.is_voter() {
            continue;
        }
        let silence = silence(m.leader_contact(), led, resumed, started);
        if silence < patience || next_nudge.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let raft = m.raft().clone();
        drop(m);
        // The metrics behind `status` lag while openraft waits on the disk (they are published
        // between its steps), and a vote this member just granted, or its own candidacy, is an
        // election in progress that must not be overtaken: openraft's own state decides. A
        // slow vote save once let the nudge see "term 1, follower" a second after this member
        // had voted for a candidate, and its election deposed that candidate the moment it won.
        let Some((state, since_vote)) = election_state(&raft).await else {
            return;
        };
        // A candidate's round is openraft's to time: it counts from when the voters can have
        // saved their votes (Halyard's openraft patch), longer than the nudge's patience on a
        // slow disk; a nudge would start a new term over the round in flight.
        if state != openraft::ServerState::Follower || since_vote.is_some_and(|d| d < patience) {
            continue;
        }
        tracing::info!(
            term = status.term,
            silence_ms = silence.as_millis() as u64,
            "no leader heard for longer than an election: calling an election"
        );
        if let Err(e) = raft.trigger().elect().await {
            tracing::warn!("could not call an election: {e}");
        }
        // The next nudge counts from when openraft has acted on this one (saved the vote and
        // sent its requests), not from the call, which returns at once. On a slow disk a vote's
        // save takes longer than the nudge's interval: nudges then queued up behind it, each
        // starting a new term over the last one's round, and no round ever finished (a
        // 3-member cluster throttled to a few syncs per second stayed leaderless for minutes).
        let _ = raft.with_raft_state(|_| ()).await;
        next_nudge = Some(Instant::now() + timer / 2 + jitter(timer));
        patience = timer + jitter(timer / 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_counts_from_the_latest_of_leader_heard_leading_and_resuming() {
        let now = Instant::now();
        let ago = |ms| now - Duration::from_millis(ms);
        let close = |d: Duration, ms: u64| d.as_millis().abs_diff(ms as u128) < 200;
        // (heard, led, resumed, started, expected silence in ms)
        let cases = [
            (Some(ago(3000)), None, None, ago(9000), 3000),
            (None, None, None, ago(9000), 9000),
            // A leader cut off for 2.3 s that stepped down just now: no silence yet.
            (Some(ago(2300)), Some(ago(20)), None, ago(9000), 20),
            (None, Some(ago(20)), None, ago(9000), 20),
            // Led long ago, heard a leader since.
            (Some(ago(500)), Some(ago(4000)), None, ago(9000), 500),
            // Stopped for 3 s, back just now: the stop is not a silence.
            (Some(ago(3050)), None, Some(ago(10)), ago(9000), 10),
            // Back from a stop long ago, no leader heard since.
            (Some(ago(4000)), None, Some(ago(2500)), ago(9000), 2500),
        ];
        for (heard, led, resumed, started, expected) in cases {
            let got = silence(heard, led, resumed, started);
            assert!(
                close(got, expected),
                "{heard:?} {led:?}: {got:?}, expected {expected} ms"
            );
        }
    }
}
