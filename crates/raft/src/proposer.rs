//! Group commit: gathers the commands submitted on this member while the previous Raft entry is
//! being made durable, and proposes them as one entry.
//!
//! openraft 0.9 flushes each append before it starts the next one, so proposing one command per
//! entry caps writes at one fsync each. The queue is bounded in commands and in bytes
//! (back-pressure on clients; both depths are reported). An entry is bounded in commands and in
//! bytes ([`crate::config::MAX_ENTRY_BYTES`]), and a command larger than that is split into
//! pieces of its own entries (`command::split`), so that every entry, and every AppendEntries
//! request, can be replicated within openraft's per-request deadline whatever clients send.

use openraft::error::ClientWriteError;
use tokio::sync::mpsc;

use crate::batch_queue::{next_batch, split_by_bytes, BatchQueue, Idle, Request};

use crate::command::{self, Batch, Command};
use crate::config::QUEUE_BYTES;
use crate::types::Raft;

/// Commands waiting to be proposed, at most.
pub const QUEUE_LEN: usize = 16 * 1024;
/// Commands in one Raft entry, at most.
pub const MAX_BATCH: usize = 1024;
/// Raft entries proposed and not yet committed, at most: while one entry is being replicated
/// the next can already be appended, instead of waiting a whole round trip per entry.
pub const MAX_IN_FLIGHT: usize = 8;

/// Why a submitted command was not proposed here.
#[derive(Debug, Clone)]
pub enum ProposeError {
    /// This member is not the leader; the leader's Raft address if known.
    NotLeader(Option<String>),
    /// openraft refused the entry (the reason it gave).
    Rejected(String),
    /// No commit within the write wait.
    Timeout,
    /// The proposer or openraft stopped (shutting down).
    Stopped,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader(Some(addr)) => write!(f, "not the leader (leader: {addr})"),
            ProposeError::NotLeader(None) => f.write_str("not the leader (no leader known)"),
            ProposeError::Rejected(e) => f.write_str(e),
            ProposeError::Timeout => f.write_str("no commit within the write wait"),
            ProposeError::Stopped => f.write_str("raft stopped"),
        }
    }
}

type Proposal = Request<Command, Result<(), ProposeError>>;

#[derive(Clone)]
pub struct Proposer {
    queue: BatchQueue<Command, Result<(), ProposeError>>,
    raft: Raft,
    idle: Idle,
    max_entry_bytes: usize,
}

impl Proposer {
    /// `max_entry_bytes`: `MemberConfig::max_entry_bytes` (`MAX_ENTRY_BYTES` by default).
    pub fn start(raft: Raft, max_entry_bytes: usize) -> Proposer {
        let (queue, rx) = BatchQueue::new(QUEUE_LEN, QUEUE_BYTES);
        let idle = Idle::default();
        tokio::spawn(run(raft.clone(), rx, max_entry_bytes, idle.clone()));
        Proposer {
            queue,
            raft,
            idle,
            max_entry_bytes,
        }
    }

    /// Proposes `cmd` (batched with others); resolves once the entry holding it is committed.
    ///
    /// When nothing else is being proposed (one writer at a time: ovn-northd, ovn-nbctl), the
    /// caller hands its command to openraft itself: going through the batching task would cost
    /// a task hop and gain nothing, as there is nothing to batch with.
    pub async fn propose(&self, cmd: Command) -> Result<(), ProposeError> {
        let bytes = cmd.payload_bytes();
        if bytes <= self.max_entry_bytes && self.queue.queued() == 0 {
            if let Some(_alone) = self.idle.take() {
                let proposed = self.raft.client_write_ff(Batch(vec![cmd])).await;
                return committed(proposed).await;
            }
        }
        (self.queue.submit(cmd, bytes).await).unwrap_or(Err(ProposeError::Stopped))
    }

    /// Commands waiting for the next entry.
    pub fn queued(&self) -> usize {
        self.queue.queued()
    }

    /// Bytes of the commands queued or being proposed.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued_bytes()
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>, max_entry_bytes: usize, idle: Idle) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(slot) = next_batch(&mut rx, &slots, &mut batch, MAX_BATCH).await {
        let busy = idle.busy();
        // Pieces tagged with the number of the command they belong to.
        let mut pieces: Vec<(usize, Command)> = Vec::new();
        let mut dones = Vec::with_capacity(batch.len());
        for (n, (cmd, done)) in batch.drain(..).enumerate() {
            pieces.extend(
                command::split(cmd, max_entry_bytes)
                    .into_iter()
                    .map(|p| (n, p)),
            );
            dones.push(done);
        }
        let entries = split_by_bytes(pieces, max_entry_bytes, |(_, c)| c.payload_bytes());
        // The entries holding each command's pieces (contiguous: pieces stay in order).
        let mut spans: Vec<(usize, usize)> = vec![(usize::MAX, 0); dones.len()];
        let mut proposed = Vec::with_capacity(entries.len());
        for (e, entry) in entries.into_iter().enumerate() {
            let cmds: Vec<Command> = entry
                .into_iter()
                .map(|(n, cmd)| {
                    spans[n].0 = spans[n].0.min(e);
                    spans[n].1 = e;
                    cmd
                })
                .collect();
            // Entries enter the log in the order they are handed to openraft here.
            proposed.push(raft.client_write_ff(Batch(cmds)).await);
        }
        tokio::spawn(async move {
            let mut results = Vec::with_capacity(proposed.len());
            for p in proposed {
                results.push(committed(p).await);
            }
            // A command is committed when every entry holding a piece of it is.
            for (done, (first, last)) in dones.into_iter().zip(spans) {
                let result = results[first..=last]
                    .iter()
                    .find(|r| r.is_err())
                    .cloned()
                    .unwrap_or(Ok(()));
                let _ = done.send(result);
            }
            drop(slot);
            drop(busy);
        });
    }
}

/// Waits for one entry handed to openraft to be committed.
async fn committed<F, T, E>(
    proposed: Result<F, openraft::error::Fatal<crate::types::NodeId>>,
) -> Result<(), ProposeError>
where
    F: std::future::Future<
        Output = Result<Result<T, ClientWriteError<crate::types::NodeId, openraft::BasicNode>>, E>,
    >,
{
    match proposed {
        Ok(committed) => match committed.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader(f.leader_node.map(|n| n.addr)))
            }
            Ok(Err(e)) => Err(ProposeError::Rejected(e.to_string())),
            Err(_) => Err(ProposeError::Stopped),
        },
        Err(fatal) => Err(ProposeError::Rejected(fatal.to_string())),
    }
}
