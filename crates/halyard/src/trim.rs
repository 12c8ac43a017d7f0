//! Giving memory back after a burst of client input. mimalloc keeps freed pages for reuse; after
//! clients sent (or started and abandoned) messages of hundreds of MB, the member kept that
//! much RSS for good. When the bytes held for incomplete messages fall back from a burst, the
//! allocator is asked to return its free memory to the system. With
//! `ovsdb-server/memory-trim-on-compaction on` (what kube-ovn and ovn-ctl sites turn on) it is
//! also asked after every snapshot, as ovsdb-server calls `malloc_trim` after compaction.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
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
                    return_free_memory();
                }
            }
            nudge_workers();
            let held = ops.server.stats().input_bytes;
            peak = peak.max(held);
            if peak >= BURST_BYTES && held <= CALM_BYTES {
                tracing::info!(peak, "client input burst over; returning free memory");
                return_free_memory();
                peak = 0;
            }
        }
    });
}

/// Bumped each time free memory is to be returned to the system.
static COLLECT_EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COLLECTED_EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// Asks every thread of the member's runtimes to return its free memory. mimalloc returns a
/// thread's free pages only from that thread: a collect run on the one thread that noticed the
/// burst left the buffers the other workers had allocated (and freed) resident, so RSS came back
/// or not depending on which worker the check ran on.
fn return_free_memory() {
    COLLECT_EPOCH.fetch_add(1, Ordering::Relaxed);
    NUDGES_LEFT.store(NUDGES, Ordering::Relaxed);
    collect_if_asked();
    nudge_workers();
}

/// Seconds after a request during which idle workers are woken to return their memory.
const NUDGES: u64 = 5;
static NUDGES_LEFT: AtomicU64 = AtomicU64::new(0);

/// Workers of this (the sessions') runtime that are parked run the park hook only when they
/// next wake: for a few seconds after a request, give each of them something to wake for. The
/// Raft runtime's workers wake at every heartbeat and need no nudge.
fn nudge_workers() {
    if NUDGES_LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_err()
    {
        return;
    }
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    for _ in 0..2 * workers {
        tokio::spawn(async {
            collect_if_asked();
            tokio::task::yield_now().await;
            collect_if_asked();
        });
    }
}

/// Runs on a runtime worker when it is about to wait for work (`on_thread_park`): it returns its
/// own free memory once per request.
fn collect_if_asked() {
    let epoch = COLLECT_EPOCH.load(Ordering::Relaxed);
    COLLECTED_EPOCH.with(|seen| {
        if seen.get() != epoch {
            seen.set(epoch);
            // SAFETY: mi_collect only walks the calling thread's heap and the allocator's own
            // free lists; it may be called from any thread at any time.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    });
}

/// A runtime whose workers return their free memory when asked (see [`return_free_memory`]):
/// the client sessions' runtime and the member's Raft runtime are built with it.
pub fn runtime_builder(worker_threads: Option<usize>) -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        b.worker_threads(n);
    }
    b.enable_all().on_thread_park(collect_if_asked);
    b
}
