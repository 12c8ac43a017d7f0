//! Group commit for log appends: one background thread makes appended entries
//! durable with a single `fsync` per batch and only then tells openraft.
//!
//! `append` writes its entries into the log's segment files (visible to readers at
//! once) and queues openraft's `LogFlushed` callback here. The thread takes
//! every callback queued so far, syncs the segments written once (`fdatasync`), and
//! completes those callbacks in order. Because each callback is queued only
//! after its entries were written, that one flush covers all of them; appends
//! that arrive while a flush is running form the next batch. Under load the
//! number of fsyncs is therefore the number of disk round trips, not the
//! number of appends.
//!
//! Upstream openraft 0.9.25's `RaftCore` awaits each append's callback
//! before it issues the next append (`append_to_log`), so batches held one
//! append each. With Halyard's patch (`vendor/openraft/HALYARD-PATCH.md`) a
//! leader's own appends are not awaited: the proposer's entries in flight
//! (up to `MAX_IN_FLIGHT`) share flushes here. A follower's appends are still
//! awaited one by one (it must answer each AppendEntries after its flush);
//! there throughput comes from openraft putting many entries in one call.
//!
//! Such an awaited append is synced in the caller instead (on the Raft runtime's worker) when
//! the flusher is idle and recent syncs were quick (at most [`INLINE_SYNC_MAX`] on average):
//! handing it to this thread and being woken back costs two thread wake-ups, about as long
//! as the sync itself on a fast disk, on every replicated write's path. On a slow disk the
//! thread keeps the sync off the worker, which also serves the member's clients' forwarded
//! writes and reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openraft::storage::LogFlushed;
use openraft::RaftTypeConfig;
use tokio::sync::mpsc;

use crate::error::StorageError;

/// Callbacks waiting for the flusher. Bounded so that a disk slower than the
/// Raft pipeline pushes back on `append` (which awaits) instead of growing
/// memory; openraft's own in-flight limit normally keeps it far below this.
const QUEUE_CAPACITY: usize = 4096;

/// An awaited append is synced in the caller while the recent syncs took at most this long
/// on average (a moving average over about the last four); above it, on the flusher thread.
pub const INLINE_SYNC_MAX: Duration = Duration::from_millis(1);

/// Counters of the flusher, for metrics and for checking that appends are
/// batched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Database flushes (fsyncs) done for appends.
    pub flushes: u64,
    /// `append` callbacks completed (successfully or not).
    pub completed_appends: u64,
    /// Callbacks queued and not yet completed.
    pub pending_appends: u64,
    /// Of `flushes`, those run in the appending caller (see [`INLINE_SYNC_MAX`]).
    pub inline_flushes: u64,
}

/// A handle on the flusher's counters that outlives handing the log store to
/// openraft (for the metrics endpoint).
#[derive(Clone)]
pub struct FlushMetrics {
    counters: Arc<Counters>,
}

impl FlushMetrics {
    pub fn get(&self) -> FlushStats {
        let c = &self.counters;
        let completed = c.completed.load(Ordering::Relaxed);
        FlushStats {
            flushes: c.flushes.load(Ordering::Relaxed),
            completed_appends: completed,
            pending_appends: c
                .submitted
                .load(Ordering::Relaxed)
                .saturating_sub(completed),
            inline_flushes: c.inline.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Counters {
    flushes: AtomicU64,
    submitted: AtomicU64,
    completed: AtomicU64,
    inline: AtomicU64,
    /// Moving average of the sync time, in microseconds.
    sync_micros: AtomicU64,
}

impl Counters {
    /// Syncs, keeps the moving average, and warns of a sync of [`SLOW_STORAGE_OP`] or more
    /// (`appends`: how many appends it makes durable), whether the thread or an appending
    /// caller ran it.
    ///
    /// [`SLOW_STORAGE_OP`]: crate::log_store::SLOW_STORAGE_OP
    fn timed_sync(
        &self,
        sync: &dyn Fn() -> std::io::Result<()>,
        appends: usize,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let result = sync();
        let elapsed = started.elapsed();
        if elapsed >= crate::log_store::SLOW_STORAGE_OP {
            tracing::warn!(
                ms = elapsed.as_millis() as u64,
                appends,
                "syncing the raft log took {} ms",
                elapsed.as_millis()
            );
        }
        let took = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let avg = self.sync_micros.load(Ordering::Relaxed);
        self.sync_micros
            .store((avg * 3 + took) / 4, Ordering::Relaxed);
        self.flushes.fetch_add(1, Ordering::Relaxed);
        result
    }
}

/// Something to tell once its writes are durable (or the flush failed).
/// openraft's `LogFlushed` in production; the seam lets the batching be tested
/// without a running Raft, since openraft does not let others build a
/// `LogFlushed`.
pub(crate) trait Completion: Send + 'static {
    fn complete(self, result: Result<(), std::io::Error>);
    /// openraft waits for this completion before it does anything else (a follower's
    /// append), so nothing would share its sync.
    fn awaited(&self) -> bool;
}

impl<C: RaftTypeConfig> Completion for LogFlushed<C> {
    fn complete(self, result: Result<(), std::io::Error>) {
        self.log_io_completed(result)
    }

    fn awaited(&self) -> bool {
        self.is_awaited()
    }
}

type Sync = Arc<dyn Fn() -> std::io::Result<()> + Send + std::marker::Sync>;

pub(crate) struct Flusher<T: Completion> {
    tx: Option<mpsc::Sender<T>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    sync: Sync,
}

impl<T: Completion> Flusher<T> {
    /// Starts the thread. `sync` makes every write so far durable (the log's segments); `at_exit`
    /// runs once the queue is closed and drained (the store's last flush at shutdown).
    pub(crate) fn start(
        sync: impl Fn() -> std::io::Result<()> + Send + std::marker::Sync + 'static,
        at_exit: impl FnOnce() + Send + 'static,
    ) -> Result<Self, StorageError> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let sync: Sync = Arc::new(sync);
        let thread_sync = sync.clone();
        let thread = std::thread::Builder::new()
            .name("halyard-log-flush".into())
            .spawn(move || {
                run(&*thread_sync, rx, &thread_counters);
                at_exit();
            })
            .map_err(|e| StorageError::Background(format!("cannot start log flusher: {e}")))?;
        Ok(Flusher {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            sync,
        })
    }

    /// Completes `callback` once everything written so far is durable: at once, synced here,
    /// for an awaited append while the thread is idle and syncs are quick; otherwise queued
    /// for the thread.
    pub(crate) async fn submit(&self, callback: T) -> Result<(), StorageError> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(StorageError::Background("log flusher is shut down".into()));
        };
        let c = &self.counters;
        // Nothing queued or being synced (every submitted callback is completed, which the
        // thread does after its sync): a sync here covers this append and cannot complete
        // it before an earlier one.
        let idle = c.submitted.load(Ordering::Acquire) == c.completed.load(Ordering::Acquire);
        let quick = c.sync_micros.load(Ordering::Relaxed) <= INLINE_SYNC_MAX.as_micros() as u64;
        if callback.awaited() && idle && quick {
            let result = c.timed_sync(&*self.sync, 1);
            if let Err(e) = &result {
                tracing::error!(error = %e, "syncing the raft log failed");
            }
            c.inline.fetch_add(1, Ordering::Relaxed);
            c.submitted.fetch_add(1, Ordering::Relaxed);
            callback.complete(result);
            c.completed.fetch_add(1, Ordering::Release);
            return Ok(());
        }
        self.counters.submitted.fetch_add(1, Ordering::Release);
        tx.send(callback).await.map_err(|_| {
            self.counters.submitted.fetch_sub(1, Ordering::Relaxed);
            StorageError::Background("log flusher thread has stopped".into())
        })
    }

    pub(crate) fn stats(&self) -> FlushStats {
        self.metrics().get()
    }

    pub(crate) fn metrics(&self) -> FlushMetrics {
        FlushMetrics {
            counters: self.counters.clone(),
        }
    }
}

fn run<T: Completion>(
    sync: &dyn Fn() -> std::io::Result<()>,
    mut rx: mpsc::Receiver<T>,
    counters: &Counters,
) {
    let mut batch = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let result = counters.timed_sync(sync, batch.len());
        if let Err(e) = &result {
            tracing::error!(error = %e, appends = batch.len(), "syncing the raft log failed");
        }
        for callback in batch.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            callback.complete(r);
            counters.completed.fetch_add(1, Ordering::Release);
        }
    }
}

impl<T: Completion> Drop for Flusher<T> {
    /// Closing the queue lets the thread finish the last batch and exit; joining
    /// it releases its handle on the database so the path can be reopened.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("log flusher thread panicked");
            }
        }
    }
}
