//! Log compaction by size: openraft 0.9 snapshots every `snapshot_every` entries, which bounds
//! the log in entries only. With entries of up to `config::MAX_ENTRY_BYTES` that could be tens
//! of GB, and a restarting member reads and re-applies everything after its snapshot in one go.
//! This task also asks for a snapshot once `config::SNAPSHOT_EVERY_BYTES` of commands were
//! applied since the last one, so the log a member replays stays bounded in bytes.
//!
//! Each member draws its bound anew after every snapshot, between one and one and a half times
//! `SNAPSHOT_EVERY_BYTES` (and its entry count once, `config::staggered`). Every member applies the same commands, so with one fixed bound they
//! all built their snapshots at the same moment; members sharing a machine or a disk (a lab, a
//! compose file, the fault suite's five members on two cores) then all stalled together, and
//! after a whole-cluster restart, when every member had the same log to replay, the cluster went
//! seconds without a leader (a soak of session 13). ovsdb-server staggers its members'
//! snapshots the same way (a random delay in `schedule_next_snapshot`).
//!
//! A snapshot installed from the leader starts the count again too (`StateMachine::
//! install_snapshot`): a member that caught up by one used to build its own at once, beside the
//! leader's build of the snapshot it had just been sent (soaks of session 24).

use std::sync::Weak;
use std::time::Duration;

use crate::config::SNAPSHOT_EVERY_BYTES;
use crate::member::Member;

/// How often the applied bytes are checked.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// This member's next bound: `SNAPSHOT_EVERY_BYTES` plus a random share of up to half of it.
fn next_bound() -> u64 {
    crate::config::staggered(SNAPSHOT_EVERY_BYTES)
}

pub(crate) async fn run(member: Weak<Member>) {
    let mut bound = next_bound();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(m) = member.upgrade() else { return };
        let bytes = m.shared().applied_bytes_since_snapshot();
        if bytes >= bound {
            tracing::info!(
                bytes,
                bound,
                "log grew past the snapshot size bound; taking a snapshot"
            );
            bound = next_bound();
            if let Err(e) = m.raft().trigger().snapshot().await {
                tracing::warn!("could not start a snapshot: {e}");
            }
            // The counter resets when the snapshot starts; give it time to.
            tokio::time::sleep(CHECK_EVERY * 4).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_vary_between_one_and_one_and_a_half_times_the_setting() {
        let bounds: Vec<u64> = (0..200).map(|_| next_bound()).collect();
        assert!(bounds
            .iter()
            .all(|b| (SNAPSHOT_EVERY_BYTES..SNAPSHOT_EVERY_BYTES * 3 / 2).contains(b)));
        let spread = bounds.iter().max().unwrap() - bounds.iter().min().unwrap();
        // 200 draws over a range of 128 MiB: far more than a tenth of it apart.
        assert!(spread > SNAPSHOT_EVERY_BYTES / 20, "spread {spread}");
    }
}
