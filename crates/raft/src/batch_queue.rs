//! The bounded request queue behind the proposer, the forwarder and the shared read index: each
//! request is answered through its own oneshot, and one task drains everything queued at once
//! to serve it as a batch.

use tokio::sync::{mpsc, oneshot};

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
