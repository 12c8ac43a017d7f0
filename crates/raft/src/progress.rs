//! Replication progress as the leader sees it: for each member, since when its match index has
//! not moved while the leader's log was ahead of it. openraft's metrics give the match index but
//! not its history, and a follower whose replication stalls (requests that keep failing) looked
//! healthy in `halyard status` as long as it was less than `--max-lag` entries behind, while the
//! commit index could be stuck. Sampled every heartbeat by a task, so a stall is measured even
//! when nobody asks for the status.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use crate::member::Member;
use crate::types::NodeId;

/// The match index last seen, and since when it has been stuck behind the log (if it is).
type Seen = (Option<u64>, Option<Instant>);

/// Per member, what was last seen of its replication.
#[derive(Default)]
pub(crate) struct Progress(Mutex<HashMap<NodeId, Seen>>);

impl Progress {
    /// Records one sample: `matched` for `node` while the leader's log ends at `last`.
    fn sample(&self, node: NodeId, matched: Option<u64>, last: Option<u64>, now: Instant) {
        let mut map = self.0.lock().unwrap();
        let entry = map.entry(node).or_insert((matched, None));
        let behind = matched < last;
        if entry.0 != matched || !behind {
            *entry = (matched, behind.then_some(now));
        } else if entry.1.is_none() {
            entry.1 = Some(now);
        }
    }

    /// How long `node`'s match index has been stuck behind the leader's log, if it is.
    pub(crate) fn stalled(&self, node: NodeId) -> Option<Duration> {
        let map = self.0.lock().unwrap();
        map.get(&node)
            .and_then(|(_, since)| since.map(|s| s.elapsed()))
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

pub(crate) async fn run(member: Weak<Member>) {
    let Some(m) = member.upgrade() else { return };
    let tick = Duration::from_millis(m.config().heartbeat_ms);
    drop(m);
    // Members whose stall was logged, until they move again. Ids are logged in hex, as
    // `halyard status` and `cluster/status` show them.
    let mut reported = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(tick).await;
        let Some(m) = member.upgrade() else { return };
        let v = m.view();
        let progress = m.progress();
        match v.replication().filter(|_| v.is_leader()) {
            Some(replication) => {
                let now = Instant::now();
                let timer = Duration::from_millis(m.election_timeout_ms());
                for (node, matched) in replication {
                    progress.sample(node, matched, v.last_log_index(), now);
                    match progress.stalled(node) {
                        // An operator sees why commits wait (a quorum may need this member).
                        Some(stall) if stall > timer => {
                            if reported.insert(node) {
                                tracing::warn!(
                                    peer = %format_args!("{node:016x}"),
                                    term = v.term(),
                                    matched = ?matched,
                                    last = ?v.last_log_index(),
                                    stalled_ms = stall.as_millis() as u64,
                                    "replication to a member has not advanced for an election timer"
                                );
                            }
                        }
                        // Caught up, or moving again.
                        _ => {
                            if reported.remove(&node) {
                                tracing::info!(peer = %format_args!("{node:016x}"), matched = ?matched, "replication to a member advances again");
                            }
                        }
                    }
                }
            }
            None => {
                progress.clear();
                reported.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_timed_from_when_the_match_index_stopped_moving_behind_the_log() {
        let p = Progress::default();
        let t0 = Instant::now();
        p.sample(1, Some(5), Some(5), t0);
        assert_eq!(p.stalled(1), None, "caught up");
        p.sample(1, Some(5), Some(9), t0);
        assert!(p.stalled(1).is_some(), "behind and not moving");
        std::thread::sleep(Duration::from_millis(20));
        let t1 = Instant::now();
        p.sample(1, Some(7), Some(9), t1);
        assert!(
            p.stalled(1).unwrap() < Duration::from_millis(20),
            "moved: timed again from now"
        );
        p.sample(1, Some(7), Some(12), Instant::now());
        let first = p.stalled(1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        p.sample(1, Some(7), Some(15), Instant::now());
        assert!(p.stalled(1).unwrap() >= first + Duration::from_millis(20));
        p.sample(1, Some(15), Some(15), Instant::now());
        assert_eq!(p.stalled(1), None);
        assert_eq!(p.stalled(2), None, "never sampled");
    }
}
