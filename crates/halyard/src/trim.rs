//! Giving memory back after a burst of client input. mimalloc keeps freed pages for reuse; after
//! clients sent (or started and abandoned) messages of hundreds of MB, the member kept that
//! much RSS for good. When the bytes held for incomplete messages fall back from a burst, the
//! allocator is asked to return its free memory to the system.

use std::sync::Arc;
use std::time::Duration;

/// How often the input held by sessions is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A burst: at least this much input held at once.
const BURST_BYTES: usize = 64 * 1024 * 1024;
/// Over: at most this much held.
const CALM_BYTES: usize = 1024 * 1024;

pub fn spawn(server: Arc<halyard_server::Server>) {
    tokio::spawn(async move {
        let mut peak = 0usize;
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let held = server.stats().input_bytes;
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
