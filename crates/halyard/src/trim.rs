//! Giving memory back after a burst of client input. mimalloc keeps freed pages for reuse; after
//! clients sent (or started and abandoned) messages of hundreds of MB, the member kept that
//! much RSS for good. When the bytes held for incomplete messages fall back from a burst, the
//! allocator is asked to return its free memory to the system. With
//! `ovsdb-server/memory-trim-on-compaction on` (what kube-ovn and ovn-ctl sites turn on) it is
//! also asked after every snapshot, as ovsdb-server calls `malloc_trim` after compaction.

use std::sync::Arc;
use std::time::Duration;

/// How often the input held by sessions is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A burst: at least this much input held at once, as seen by the once-a-second sample (a burst
/// that fills the input budget can be cut short by the limit between two samples, so the bar is
/// well below it).
const BURST_BYTES: usize = 16 * 1024 * 1024;
/// Over: at most this much held.
const CALM_BYTES: usize = 1024 * 1024;

pub fn spawn(ops: Arc<crate::ops::Ops>) {
    tokio::spawn(async move {
        let mut peak = 0usize;
        let snapshot = |ops: &crate::ops::Ops| ops.member.snapshot_index();
        let mut last_snapshot = snapshot(&ops);
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let now = snapshot(&ops);
            if now != last_snapshot {
                last_snapshot = now;
                if ops
                    .trim_on_compaction
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::debug!("snapshot taken; returning free memory");
                    // SAFETY: as below.
                    unsafe { libmimalloc_sys::mi_collect(true) };
                }
            }
            let held = ops.server.stats().input_bytes;
            peak = peak.max(held);
            if peak >= BURST_BYTES && held <= CALM_BYTES {
                tracing::info!(peak, "client input burst over; returning free memory");
                // SAFETY: mi_collect only walks the allocator's own free lists; it may be
                // called from any thread at any time.
                unsafe { libmimalloc_sys::mi_collect(true) };
                peak = 0;
            }
        }
    });
}
