//! Forwarding on a follower: commands of this member's clients travel to the leader in batches.
//!
//! One gRPC call per client command cost each forwarded write an HTTP/2 stream on both members
//! (frames, a task on the leader, wake-ups): on a 2-core machine that was a large share of a
//! follower's CPU. The commands submitted while earlier batches are on their way form the next
//! batch, as the proposer does for Raft entries; the leader proposes them together and answers
//! each one when its entry is committed. A few batches may be in flight at once so one slow
//! commit does not hold back the others.
//!
//! Batches travel on one long-lived stream to the leader (`ForwardStream`), tagged with an id:
//! a batch is one HTTP/2 DATA frame, where a call of its own opens a stream (HEADERS, DATA and
//! an end-of-stream frame, with a hand-off between tasks before the DATA). A task per stream
//! reads the replies and hands each to its batch. When the stream breaks (the leader died or
//! restarted), every batch waiting on it fails as unreachable and the next one opens another.
//! A leader without the stream (an earlier version, during an upgrade) gets calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::batch_queue::{next_batch, split_by_bytes, BatchQueue, Idle, Request};
use crate::config::{MAX_FORWARD_BYTES, QUEUE_BYTES};

use crate::command::Command;
use crate::pb;

/// Commands waiting to be forwarded, at most (back-pressure on this member's clients).
pub const QUEUE_LEN: usize = 16 * 1024;
/// Commands in one forwarded batch, at most.
pub const MAX_BATCH: usize = 1024;
/// Batches sent and not yet answered, at most.
pub const MAX_IN_FLIGHT: usize = 8;
/// How long opening the forwarding stream to a leader may take (it answers at once when alive;
/// the connection's own dial is bounded by `network::CONNECT_TIMEOUT`).
const OPEN_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a forwarded command did not commit (the caller retries, possibly elsewhere).
#[derive(Debug, Clone, PartialEq)]
pub enum ForwardError {
    /// The receiver is not the leader; the leader it knows of, if any.
    NotLeader(Option<String>),
    /// The leader could not be called (connection refused, no answer within the write wait).
    Unreachable { addr: String, reason: String },
    /// The leader took the command and could not commit it (the reason it gave).
    Rejected(String),
    /// The leader answered a batch with the wrong number of replies (a bug on one side).
    BadReply(String),
    /// This member's forwarding task is gone (shutting down).
    Stopped,
}

impl std::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardError::NotLeader(Some(addr)) => write!(f, "not the leader (leader: {addr})"),
            ForwardError::NotLeader(None) => write!(f, "not the leader (no leader known)"),
            ForwardError::Unreachable { addr, reason } => {
                write!(f, "forwarding to {addr}: {reason}")
            }
            ForwardError::Rejected(e) | ForwardError::BadReply(e) => f.write_str(e),
            ForwardError::Stopped => f.write_str("the forwarder stopped"),
        }
    }
}

/// A command and the leader address it goes to.
type Pending = Request<(String, Command), Result<(), ForwardError>>;

#[derive(Clone)]
pub struct Forwarder {
    queue: BatchQueue<(String, Command), Result<(), ForwardError>>,
    idle: Idle,
    timeout: Duration,
    links: Arc<Links>,
}

impl Forwarder {
    /// Starts the forwarding task; each call waits at most `timeout` for the leader's answer.
    pub fn start(timeout: Duration) -> Forwarder {
        let (queue, rx) = BatchQueue::new(QUEUE_LEN, QUEUE_BYTES);
        let idle = Idle::default();
        let links = Arc::new(Links::default());
        tokio::spawn(run(rx, timeout, idle.clone(), links.clone()));
        Forwarder {
            queue,
            idle,
            timeout,
            links,
        }
    }

    /// Has the member at `addr` propose `cmd`; resolves once it is committed there.
    ///
    /// When nothing else is being forwarded (one writer at a time), the caller makes the call
    /// itself instead of going through the batching task (two task hops, nothing to batch with).
    pub async fn forward(&self, addr: &str, cmd: Command) -> Result<(), ForwardError> {
        let bytes = cmd.payload_bytes();
        if bytes <= MAX_FORWARD_BYTES && self.queue.queued() == 0 {
            if let Some(_alone) = self.idle.take() {
                let cmds = std::slice::from_ref(&cmd);
                return match self.links.call(addr, cmds, self.timeout).await? {
                    replies if replies.len() == 1 => {
                        outcome(replies.into_iter().next().expect("one reply"))
                    }
                    replies => Err(ForwardError::BadReply(format!(
                        "{addr} answered {} of 1 forwarded command",
                        replies.len()
                    ))),
                };
            }
        }
        (self.queue.submit((addr.to_string(), cmd), bytes).await)
            .unwrap_or(Err(ForwardError::Stopped))
    }

    /// Commands waiting for the next batch.
    pub fn queued(&self) -> usize {
        self.queue.queued()
    }

    /// Bytes of the commands queued or being forwarded.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued_bytes()
    }
}

async fn run(mut rx: mpsc::Receiver<Pending>, timeout: Duration, idle: Idle, links: Arc<Links>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(slot) = next_batch(&mut rx, &slots, &mut batch, MAX_BATCH).await {
        let busy = idle.busy();
        // Normally every command goes to the same leader; after a leader change a batch may
        // mix the old and the new address. One call carries at most MAX_FORWARD_BYTES (or one
        // larger command), so a few huge commands do not make one enormous message.
        let mut by_addr: Vec<(String, Vec<Pending>)> = Vec::new();
        for p in batch.drain(..) {
            let ((addr, _), _) = &p;
            match by_addr.iter_mut().find(|(a, _)| a == addr) {
                Some((_, g)) => g.push(p),
                None => by_addr.push((addr.clone(), vec![p])),
            }
        }
        let groups: Vec<(String, Vec<Pending>)> = by_addr
            .into_iter()
            .flat_map(|(addr, g)| {
                split_by_bytes(g, MAX_FORWARD_BYTES, |((_, c), _)| c.payload_bytes())
                    .into_iter()
                    .map(move |part| (addr.clone(), part))
            })
            .collect();
        let links = links.clone();
        tokio::spawn(async move {
            let sends = groups
                .into_iter()
                .map(|(addr, g)| send(&links, addr, g, timeout));
            futures::future::join_all(sends).await;
            drop(slot);
            drop(busy);
        });
    }
}

async fn send(links: &Links, addr: String, group: Vec<Pending>, timeout: Duration) {
    let (cmds, dones): (Vec<Command>, Vec<_>) = group
        .into_iter()
        .map(|((_, cmd), done)| (cmd, done))
        .unzip();
    match links.call(&addr, &cmds, timeout).await {
        Ok(replies) if replies.len() == dones.len() => {
            for (reply, done) in replies.into_iter().zip(dones) {
                let _ = done.send(outcome(reply));
            }
        }
        Ok(replies) => {
            let e = ForwardError::BadReply(format!(
                "{addr} answered {} of {} forwarded commands",
                replies.len(),
                dones.len()
            ));
            for done in dones {
                let _ = done.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for done in dones {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

type Replies = Result<Vec<pb::ForwardReply>, ForwardError>;

/// The forwarding stream to the leader this member forwards to (normally one address; after a
/// leader change the old one's stream ends once nothing uses it); `None` for a leader without
/// the stream.
#[derive(Default)]
struct Links(tokio::sync::Mutex<Option<(String, Option<Arc<Link>>)>>);

/// One `ForwardStream`: batches go out on `requests`; the reader task answers `waiting`.
struct Link {
    requests: mpsc::Sender<pb::ForwardBatch>,
    waiting: Arc<Waiting>,
    next_id: AtomicU64,
}

/// The batches sent on a stream and not answered yet, by id, each answered with its replies
/// or why the stream broke; once it broke, that reason.
struct Waiting(Mutex<Result<HashMap<u64, Answer>, String>>);

type Answer = oneshot::Sender<Result<Vec<pb::ForwardReply>, String>>;

impl Waiting {
    fn fail_all(&self, reason: String) {
        let was = std::mem::replace(&mut *self.0.lock().unwrap(), Err(reason.clone()));
        for (_, done) in was.into_iter().flatten() {
            let _ = done.send(Err(reason.clone()));
        }
    }

    fn is_broken(&self) -> bool {
        self.0.lock().unwrap().is_err()
    }
}

impl Links {
    /// Has the leader at `addr` propose `cmds`; its replies, one per command.
    async fn call(&self, addr: &str, cmds: &[Command], timeout: Duration) -> Replies {
        let unreachable = |reason: String| ForwardError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let link = match tokio::time::timeout(timeout, self.link(addr)).await {
            Ok(Ok(Some(link))) => link,
            Ok(Ok(None)) => return unary(addr, cmds, timeout).await,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(unreachable(
                    "opening the forwarding stream timed out".into(),
                ))
            }
        };
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        match &mut *link.waiting.0.lock().unwrap() {
            Ok(waiting) => waiting.insert(id, done),
            Err(reason) => return Err(unreachable(reason.clone())),
        };
        let batch = pb::ForwardBatch {
            id,
            commands: crate::network::encode(&cmds),
        };
        if link.requests.send(batch).await.is_err() {
            return Err(unreachable("the forwarding stream closed".into()));
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(replies))) => Ok(replies),
            Ok(Ok(Err(reason))) => Err(unreachable(reason)),
            Ok(Err(_)) => Err(unreachable("the forwarding stream closed".into())),
            Err(_) => {
                if let Ok(waiting) = &mut *link.waiting.0.lock().unwrap() {
                    waiting.remove(&id);
                }
                Err(unreachable("no answer within the write wait".into()))
            }
        }
    }

    /// The live stream to `addr`, opened if there is none; `None` when `addr` has no stream
    /// (calls instead).
    async fn link(&self, addr: &str) -> Result<Option<Arc<Link>>, ForwardError> {
        let mut current = self.0.lock().await;
        if let Some((a, link)) = &*current {
            if a == addr && !link.as_ref().is_some_and(|l| l.waiting.is_broken()) {
                return Ok(link.clone());
            }
        }
        let unreachable = |reason: String| ForwardError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let mut client = crate::network::client(addr).map_err(|e| unreachable(e.to_string()))?;
        let (requests, rx) = mpsc::channel(2 * MAX_IN_FLIGHT);
        // A live leader answers the opening at once. Bounded well below the write wait: the
        // other writers wait on this opening (the lock), and after the leader stopped
        // answering (SIGSTOP, a partition) they must get to the next one without waiting it.
        let opened = tokio::time::timeout(
            OPEN_TIMEOUT,
            client.forward_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await
        .map_err(|_| unreachable("opening the forwarding stream timed out".into()))?;
        let replies = match opened {
            Ok(replies) => replies.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!(leader = %addr, "leader has no forwarding stream: forwarding as calls");
                *current = Some((addr.to_string(), None));
                return Ok(None);
            }
            Err(status) => return Err(unreachable(status.message().to_string())),
        };
        let waiting = Arc::new(Waiting(Mutex::new(Ok(HashMap::new()))));
        tokio::spawn(read_replies(replies, waiting.clone()));
        let link = Arc::new(Link {
            requests,
            waiting,
            next_id: AtomicU64::new(0),
        });
        *current = Some((addr.to_string(), Some(link.clone())));
        Ok(Some(link))
    }
}

/// Hands each reply on a forwarding stream to its batch; when the stream ends or breaks, fails
/// the batches still waiting.
async fn read_replies(
    mut replies: tonic::Streaming<pb::ForwardBatchReplies>,
    waiting: Arc<Waiting>,
) {
    let reason = loop {
        match replies.message().await {
            Ok(Some(r)) => {
                let done = match &mut *waiting.0.lock().unwrap() {
                    Ok(w) => w.remove(&r.id),
                    Err(_) => None,
                };
                if let Some(done) = done {
                    let _ = done.send(Ok(r.replies));
                }
            }
            Ok(None) => break "the leader ended the forwarding stream".to_string(),
            Err(status) => break status.message().to_string(),
        }
    };
    waiting.fail_all(reason);
}

/// One forwarded batch as a call of its own (a leader without the stream).
async fn unary(addr: &str, cmds: &[Command], timeout: Duration) -> Replies {
    let unreachable = |reason: String| ForwardError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let mut client = crate::network::client(addr).map_err(|e| unreachable(e.to_string()))?;
    let mut req = tonic::Request::new(pb::Payload {
        data: crate::network::encode(&cmds),
    });
    req.set_timeout(timeout);
    let reply = client
        .forward(req)
        .await
        .map_err(|s| unreachable(s.message().to_string()))?;
    Ok(reply.into_inner().replies)
}

fn outcome(reply: pb::ForwardReply) -> Result<(), ForwardError> {
    if reply.not_leader {
        Err(ForwardError::NotLeader(
            Some(reply.leader_addr).filter(|a| !a.is_empty()),
        ))
    } else if !reply.error.is_empty() {
        Err(ForwardError::Rejected(reply.error))
    } else {
        Ok(())
    }
}
