//! The bounded request queue behind the proposer, the forwarder and the shared read index: each
//! request is answered through its own oneshot, and one task drains everything queued at once
//! to serve it as a batch.
//!
//! Bounded twice: in requests, and in the bytes of the requests queued or being served (a
//! client command can be 64 MiB, so 16k queued commands alone would bound nothing useful). A
//! request larger than the byte bound waits until it is alone.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// A request and where its answer goes.
pub(crate) type Request<T, R> = (T, oneshot::Sender<R>);

pub(crate) struct BatchQueue<T, R> {
    tx: mpsc::Sender<Request<T, R>>,
    capacity: usize,
    bytes: Arc<Semaphore>,
    byte_capacity: u32,
}

// Derived `Clone` would require `T: Clone` and `R: Clone`.
impl<T, R> Clone for BatchQueue<T, R> {
    fn clone(&self) -> Self {
        BatchQueue {
            tx: self.tx.clone(),
            capacity: self.capacity,
            bytes: self.bytes.clone(),
            byte_capacity: self.byte_capacity,
        }
    }
}

impl<T, R> BatchQueue<T, R> {
    /// The queue, bounded at `capacity` requests and `byte_capacity` bytes of requests waiting
    /// or being served (back-pressure on the callers), and the receiver its serving task drains.
    pub(crate) fn new(
        capacity: usize,
        byte_capacity: u32,
    ) -> (Self, mpsc::Receiver<Request<T, R>>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = BatchQueue {
            tx,
            capacity,
            bytes: Arc::new(Semaphore::new(byte_capacity as usize)),
            byte_capacity,
        };
        (queue, rx)
    }

    /// Queues `item`, which holds `bytes` bytes, and waits for its answer; `None` once the
    /// serving task has stopped. The bytes count against the bound until the answer arrives.
    pub(crate) async fn submit(&self, item: T, bytes: usize) -> Option<R> {
        let weight = bytes.min(self.byte_capacity as usize) as u32;
        let _held = self.bytes.acquire_many(weight).await.ok()?;
        let (done, rx) = oneshot::channel();
        self.tx.send((item, done)).await.ok()?;
        rx.await.ok()
    }

    /// Requests waiting to be served.
    pub(crate) fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Bytes of the requests queued or being served.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.byte_capacity as usize - self.bytes.available_permits()
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

/// Splits `items` in order into groups of at most `max_bytes` (by `size`), except that an item
/// larger than that is a group of its own.
pub(crate) fn split_by_bytes<T>(
    items: impl IntoIterator<Item = T>,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for item in items {
        let n = size(&item);
        if !current.is_empty() && current_bytes + n > max_bytes {
            groups.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += n;
        current.push(item);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_goes_alone_only_when_nothing_is_in_flight() {
        let idle = Idle::default();
        let alone = idle.take().expect("nothing in flight");
        assert!(
            idle.take().is_none(),
            "a second caller while the first is in flight"
        );
        drop(alone);
        let batch = idle.busy();
        assert!(idle.take().is_none(), "a caller while a batch is in flight");
        let second = idle.busy();
        drop(batch);
        assert!(idle.take().is_none(), "one batch still in flight");
        drop(second);
        assert!(idle.take().is_some());
    }

    #[test]
    fn groups_stay_under_the_byte_bound_and_keep_order() {
        let sizes = [10, 20, 70, 5, 200, 1, 1, 99, 100];
        let groups = split_by_bytes(sizes, 100, |n| *n);
        assert_eq!(
            groups,
            vec![
                vec![10, 20, 70],
                vec![5],
                vec![200],
                vec![1, 1],
                vec![99],
                vec![100]
            ]
        );
        assert!(split_by_bytes(Vec::<usize>::new(), 100, |n| *n).is_empty());
    }

    #[tokio::test]
    async fn bytes_in_flight_are_bounded() {
        let (queue, mut rx) = BatchQueue::<usize, ()>::new(16, 100);
        let q = queue.clone();
        let first = tokio::spawn(async move { q.submit(80, 80).await });
        tokio::task::yield_now().await;
        let (item, done) = rx.recv().await.unwrap();
        assert_eq!(item, 80);
        assert_eq!(queue.queued_bytes(), 80);
        // 30 more bytes do not fit while the first request is unanswered.
        let q = queue.clone();
        let second = tokio::spawn(async move { q.submit(30, 30).await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(rx.try_recv().is_err());
        done.send(()).unwrap();
        first.await.unwrap().unwrap();
        let (item, done) = rx.recv().await.unwrap();
        assert_eq!(item, 30);
        done.send(()).unwrap();
        second.await.unwrap().unwrap();
        // A request larger than the bound is admitted alone.
        let q = queue.clone();
        let big = tokio::spawn(async move { q.submit(1000, 1000).await });
        let (item, done) = rx.recv().await.unwrap();
        assert_eq!(item, 1000);
        assert_eq!(queue.queued_bytes(), 100);
        done.send(()).unwrap();
        big.await.unwrap().unwrap();
        assert_eq!(queue.queued_bytes(), 0);
    }
}

/// Whether a batching task (proposer, forwarder) has anything in flight, so that a caller may
/// skip it when it has not: with one writer at a time there is nothing to batch with, and the
/// hop through the task is pure latency.
#[derive(Clone, Default)]
pub(crate) struct Idle(Arc<std::sync::atomic::AtomicUsize>);

/// Held while something is in flight; dropping it ends that.
pub(crate) struct Busy(Arc<std::sync::atomic::AtomicUsize>);

impl Idle {
    /// Marks a batch in flight (the batching task's own).
    pub(crate) fn busy(&self) -> Busy {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Busy(self.0.clone())
    }

    /// Marks one caller's command in flight if nothing else is; `None` when something is.
    pub(crate) fn take(&self) -> Option<Busy> {
        use std::sync::atomic::Ordering;
        self.0
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Busy(self.0.clone()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
