//! Group commit: gathers the commands submitted on this member while the previous Raft entry is
//! being made durable, and proposes them as one entry.
//!
//! openraft 0.9 flushes each append before it starts the next one, so proposing one command per
//! entry caps writes at one fsync each. The queue is bounded (back-pressure on clients, and its
//! depth is reported), and a batch is bounded in commands so one entry stays small enough to
//! replicate promptly.

use openraft::error::ClientWriteError;
use tokio::sync::mpsc;

use crate::batch_queue::{next_batch, BatchQueue, Request};

use crate::command::{Batch, Command};
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
    /// Raft refused or stopped.
    Raft(String),
}

type Proposal = Request<Command, Result<(), ProposeError>>;

#[derive(Clone)]
pub struct Proposer {
    queue: BatchQueue<Command, Result<(), ProposeError>>,
}

impl Proposer {
    pub fn start(raft: Raft) -> Proposer {
        let (queue, rx) = BatchQueue::new(QUEUE_LEN);
        tokio::spawn(run(raft, rx));
        Proposer { queue }
    }

    /// Proposes `cmd` (batched with others); resolves once the entry holding it is committed.
    pub async fn propose(&self, cmd: Command) -> Result<(), ProposeError> {
        (self.queue.submit(cmd).await)
            .unwrap_or_else(|| Err(ProposeError::Raft("proposer stopped".into())))
    }

    /// Commands waiting for the next entry.
    pub fn queued(&self) -> usize {
        self.queue.queued()
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(slot) = next_batch(&mut rx, &slots, &mut batch, MAX_BATCH).await {
        let (cmds, dones): (Vec<Command>, Vec<_>) = batch.drain(..).unzip();
        // Entries enter the log in the order they are handed to openraft here.
        match raft.client_write_ff(Batch(cmds)).await {
            Ok(committed) => {
                tokio::spawn(async move {
                    let result = match committed.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(ClientWriteError::ForwardToLeader(f))) => {
                            Err(ProposeError::NotLeader(f.leader_node.map(|n| n.addr)))
                        }
                        Ok(Err(e)) => Err(ProposeError::Raft(e.to_string())),
                        Err(_) => Err(ProposeError::Raft("raft stopped".into())),
                    };
                    for done in dones {
                        let _ = done.send(result.clone());
                    }
                    drop(slot);
                });
            }
            Err(fatal) => {
                let result = Err(ProposeError::Raft(fatal.to_string()));
                for done in dones {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}
