//! The bounded request queue behind the proposer, the forwarder and the shared read index: each
//! request is answered through its own oneshot, and one task drains everything queued at once
//! to serve it as a batch.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// A request and where its answer goes.
pub(crate) type Request<T, R> = (T, oneshot::Sender<R>);

pub(crate) struct BatchQueue<T, R> {
    tx: mpsc::Sender<Request<T, R>>,
    capacity: usize,
}

// Derived `Clone` would require `T: Clone` and `R: Clone`.
impl<T, R> Clone for BatchQueue<T, R> {
    fn clone(&self) -> Self {
        BatchQueue {
            tx: self.tx.clone(),
            capacity: self.capacity,
        }
    }
}

impl<T, R> BatchQueue<T, R> {
    /// The queue, bounded at `capacity` requests (back-pressure on the callers), and the
    /// receiver its serving task drains.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Request<T, R>>) {
        let (tx, rx) = mpsc::channel(capacity);
        (BatchQueue { tx, capacity }, rx)
    }

    /// Queues `item` and waits for its answer; `None` once the serving task has stopped.
    pub(crate) async fn submit(&self, item: T) -> Option<R> {
        let (done, rx) = oneshot::channel();
        self.tx.send((item, done)).await.ok()?;
        rx.await.ok()
    }

    /// Requests waiting to be served.
    pub(crate) fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }
}

/// The next batch of a serving task that keeps up to `slots`' permits worth of batches in
/// flight: waits for a free slot first (requests keep accumulating meanwhile, so batches grow
/// when the served side is slow), then moves everything queued, at most `max`, into `batch`.
/// The slot is held until the returned permit is dropped; `None` once every sender is gone.
pub(crate) async fn next_batch<T>(
    rx: &mut mpsc::Receiver<T>,
    slots: &Arc<Semaphore>,
    batch: &mut Vec<T>,
    max: usize,
) -> Option<OwnedSemaphorePermit> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    (rx.recv_many(batch, max).await > 0).then_some(slot)
}
