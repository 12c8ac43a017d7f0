//! The election timer the cluster agreed on (`cluster/change-election-timer`), applied.
//!
//! openraft 0.9 reads its election timeout once, when the node is built. Until the cluster's
//! log sets a timer (or while it equals this member's configured one), openraft's own timer
//! runs unchanged. Once a different one is committed, this task switches openraft's elections
//! off and calls them itself: a voter that has heard no leader for a random time between 0.75
//! and 1 times the agreed timer (the span openraft is configured with, see `config`) starts
//! one, and a candidate whose election has not produced a leader in that time starts the next.
//! Every member applies the same log entry, so all run with the new timer from its position on;
//! it is in snapshots, so a restarted member keeps it.
//!
//! It also holds a starting member's elections off for [`STARTUP_ELECTION_GRACE`]. A member
//! restarted after being down was in openraft's back-off at the leader (an unreachable peer is
//! retried every 500 ms), and its own first election timer is T/4-T/2 when its saved vote is not
//! committed: it called an election before the leader's next attempt reached it, and its higher
//! term deposed a healthy leader (openraft 0.9 has no pre-vote). Delaying a member's first
//! election changes only how soon a cluster that starts with no leader elects one; a member
//! that is its membership's only voter has nobody to wait for and skips the grace.

use std::sync::Weak;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::member::Member;

/// A random wait in [0.75, 1) times `timer_ms`.
fn draw(timer_ms: u64) -> Duration {
    let low = timer_ms * 3 / 4;
    let span = (timer_ms - low).max(1);
    // A v4 UUID is 122 random bits: enough randomness without another dependency.
    let r = (uuid::Uuid::new_v4().as_u128() as u64) % span;
    Duration::from_millis(low + r)
}

/// How long a starting member calls no election: openraft's back-off for an unreachable peer
/// (500 ms), with room for the connection and the leader's first request.
pub const STARTUP_ELECTION_GRACE: Duration = Duration::from_millis(750);

/// Whether this member is the only voter of its membership.
fn lone_voter(m: &Member) -> bool {
    let voters = m.view().voters();
    voters.len() == 1 && voters.contains(&m.identity().node_id)
}

pub(crate) async fn run(member: Weak<Member>) {
    let Some(m) = member.upgrade() else { return };
    let configured = m.config().election_timeout_ms;
    m.raft().runtime_config().elect(false);
    let grace_ends = Instant::now() + STARTUP_ELECTION_GRACE;
    let mut in_grace = true;
    drop(m);
    // Some(timer) while this task, not openraft, calls elections.
    let mut driving: Option<u64> = None;
    let mut wait = Duration::ZERO;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(crate::config::AGREED_TIMER_CHECK).await;
        let Some(m) = member.upgrade() else { return };
        let agreed = m
            .shared()
            .agreed_election_timer_ms()
            .filter(|t| *t != configured);
        // A lone voter has no leader to wait for: it elects itself at once (a one-member
        // cluster restarted under Pacemaker is healthy as soon as it answers).
        let grace_over = in_grace && (Instant::now() >= grace_ends || lone_voter(&m));
        if grace_over {
            in_grace = false;
            m.raft().runtime_config().elect(driving.is_none());
        }
        if agreed != driving {
            m.raft()
                .runtime_config()
                .elect(agreed.is_none() && !in_grace);
            tracing::info!(
                election_timer_ms = agreed.unwrap_or(configured),
                "election timer in effect"
            );
            driving = agreed;
            if let Some(t) = agreed {
                wait = draw(t);
                since = Instant::now();
            }
        }
        let Some(timer) = driving else { continue };
        if in_grace {
            continue;
        }
        let state = m.view().state();
        if !matches!(state, ServerState::Follower | ServerState::Candidate) || !m.is_voter() {
            since = Instant::now();
            continue;
        }
        if let Some(heard) = m.leader_contact() {
            if heard > since {
                since = heard;
            }
        }
        if since.elapsed() >= wait {
            let raft = m.raft().clone();
            drop(m);
            // As the nudge does (see there): a vote changed since, by this member's candidacy
            // or a vote it granted, is an election in progress, counted from that change.
            let Some((_, since_vote)) = crate::nudge::election_state(&raft).await else {
                return;
            };
            if let Some(d) = since_vote.filter(|d| *d < since.elapsed()) {
                since = Instant::now() - d;
                continue;
            }
            tracing::info!(
                silent_ms = since.elapsed().as_millis() as u64,
                election_timer_ms = timer,
                "no leader heard within the election timer: starting an election"
            );
            if let Err(e) = raft.trigger().elect().await {
                tracing::warn!("could not start an election: {e}");
            }
            // The round counts from when openraft has saved the vote and sent its requests,
            // not from the call, which returns at once (slow on a slow disk).
            let _ = raft.with_raft_state(|_| ()).await;
            since = Instant::now();
            wait = draw(timer);
        }
    }
}
