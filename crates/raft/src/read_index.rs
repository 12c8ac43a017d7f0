//! Shared read barriers: one read index serves every read that was waiting when it was asked.
//!
//! A linearizable read needs a read index obtained after the read arrived: the leader confirms
//! with a quorum that it still leads and names its commit index. Asking once per read-only
//! transaction cost a quorum round each (and, on a follower, a call to the leader each), so
//! reads were several times slower than ovsdb-server's local ones. Reads that arrive while a
//! read index is being obtained wait for the next one, which is asked after they arrived, so each
//! still gets an index at least as new as every write acknowledged before it began; all of them
//! share it.

use std::sync::Weak;

use tokio::sync::mpsc;

use crate::batch_queue::{BatchQueue, Request};
use crate::member::{Member, MemberError, ReadIndexError};

/// Reads waiting for a read index, at most (back-pressure on readers).
pub const QUEUE_LEN: usize = 16 * 1024;

type Waiter = Request<(), Result<u64, ReadIndexError>>;

pub(crate) struct ReadIndexer {
    queue: BatchQueue<(), Result<u64, ReadIndexError>>,
}

impl ReadIndexer {
    /// The handle, and the queue that [`run`] serves once the member exists.
    pub(crate) fn new() -> (ReadIndexer, mpsc::Receiver<Waiter>) {
        let (queue, rx) = BatchQueue::new(QUEUE_LEN, 1);
        (ReadIndexer { queue }, rx)
    }

    /// A read index obtained after this call.
    pub(crate) async fn get(&self) -> Result<u64, MemberError> {
        (self.queue.submit((), 0).await)
            .ok_or(MemberError::ShuttingDown)?
            .map_err(MemberError::NoReadIndex)
    }

    /// Reads waiting for the next read index.
    pub(crate) fn queued(&self) -> usize {
        self.queue.queued()
    }
}

pub(crate) async fn run(member: Weak<Member>, mut rx: mpsc::Receiver<Waiter>) {
    let mut waiting = Vec::new();
    loop {
        if rx.recv_many(&mut waiting, QUEUE_LEN).await == 0 {
            return;
        }
        let Some(m) = member.upgrade() else { return };
        let result = m.fetch_read_index().await;
        drop(m);
        for ((), done) in waiting.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}
