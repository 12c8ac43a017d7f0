//! Log compaction by size: openraft 0.9 snapshots every `snapshot_every` entries, which bounds
//! the log in entries only. With entries of up to `config::MAX_ENTRY_BYTES` that could be tens
//! of GB, and a restarting member reads and re-applies everything after its snapshot in one go.
//! This task also asks for a snapshot once `config::SNAPSHOT_EVERY_BYTES` of commands were
//! applied since the last one, so the log a member replays stays bounded in bytes.

use std::sync::Weak;
use std::time::Duration;

use crate::config::SNAPSHOT_EVERY_BYTES;
use crate::member::Member;

/// How often the applied bytes are checked.
const CHECK_EVERY: Duration = Duration::from_millis(500);

pub(crate) async fn run(member: Weak<Member>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(m) = member.upgrade() else { return };
        let bytes = m.shared().applied_bytes_since_snapshot();
        if bytes >= SNAPSHOT_EVERY_BYTES {
            tracing::info!(
                bytes,
                "log grew past the snapshot size bound; taking a snapshot"
            );
            if let Err(e) = m.raft().trigger().snapshot().await {
                tracing::warn!("could not start a snapshot: {e}");
            }
            // The counter resets when the snapshot starts; give it time to.
            tokio::time::sleep(CHECK_EVERY * 4).await;
        }
    }
}
