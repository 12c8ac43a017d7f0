//! Group commit: gathers the commands submitted on this member while the previous Raft entry is
//! being made durable, and proposes them as one entry.
//!
//! openraft 0.9 flushes each append before it starts the next one, so proposing one command per
//! entry caps writes at one fsync each. The queue is bounded (back-pressure on clients, and its
//! depth is reported), and a batch is bounded in commands so one entry stays small enough to
//! replicate promptly.

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Batch, Command};
use crate::types::Raft;

/// Commands waiting to be proposed, at most.
pub const QUEUE_LEN: usize = 16 * 1024;
/// Commands in one Raft entry, at most.
pub const MAX_BATCH: usize = 1024;

/// Why a submitted command was not proposed here.
#[derive(Debug, Clone)]
pub enum ProposeError {
    /// This member is not the leader; the leader's Raft address if known.
    NotLeader(Option<String>),
    /// Raft refused or stopped.
    Raft(String),
}

struct Proposal {
    cmd: Command,
    done: oneshot::Sender<Result<(), ProposeError>>,
}

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    pub fn start(raft: Raft) -> Proposer {
        let (tx, rx) = mpsc::channel(QUEUE_LEN);
        tokio::spawn(run(raft, rx));
        Proposer { tx }
    }

    /// Proposes `cmd` (batched with others); resolves once the entry holding it is committed.
    pub async fn propose(&self, cmd: Command) -> Result<(), ProposeError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Proposal { cmd, done })
            .await
            .map_err(|_| ProposeError::Raft("proposer stopped".into()))?;
        rx.await
            .map_err(|_| ProposeError::Raft("proposer stopped".into()))?
    }

    /// Commands waiting for the next entry.
    pub fn queued(&self) -> usize {
        QUEUE_LEN - self.tx.capacity()
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (cmds, dones): (Vec<Command>, Vec<_>) =
            batch.drain(..).map(|p| (p.cmd, p.done)).unzip();
        let result = match raft.client_write(Batch(cmds)).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader(f.leader_node.map(|n| n.addr)))
            }
            Err(e) => Err(ProposeError::Raft(e.to_string())),
        };
        for done in dones {
            let _ = done.send(result.clone());
        }
    }
}
