//! The client-facing path of a member: writes proposed here or forwarded to the leader (retried
//! through elections up to the write wait), read barriers, transactions, schema conversion and
//! locks.
//!
//! The path of a write: the command gets its id here, is proposed (or, on a follower,
//! forwarded to the leader), and the caller is answered only once THIS member has applied it,
//! after the observer queued the monitor updates. While there is no leader the proposal is
//! retried with backoff up to `MemberConfig::write_wait`: clients see a pause, not an error.
//! Read-only transactions go through a read barrier and execute locally.

use std::time::{Duration, Instant};

use openraft::error::RaftError;
use serde_json::Value;
use uuid::Uuid;

use super::{Member, MemberError, ReadIndexError};
use crate::command::{Command, CommandKind, Outcome};
use crate::forwarder::ForwardError;
use crate::proposer::ProposeError;
use crate::types::NodeId;

/// One run of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Transaction {
    /// The reply's `result` array.
    Done(Value),
    /// A `wait` does not hold yet; nothing changed. `retry_in_ms`: when its own timeout passes,
    /// counted from the elapsed time the run was given.
    Blocked { retry_in_ms: Option<u64> },
}

impl Member {
    /// Proposes `kind` under a fresh id and waits until this member applied it.
    pub(super) async fn propose(&self, kind: CommandKind) -> Result<Outcome, MemberError> {
        self.propose_as(Uuid::new_v4(), kind).await
    }

    async fn propose_as(&self, id: Uuid, kind: CommandKind) -> Result<Outcome, MemberError> {
        let cmd = Command {
            id,
            origin: self.identity.node_id,
            kind,
        };
        // Answered from this member's own apply of the command, which implies it is committed
        // and gives read-your-writes here. That usually comes before the proposer's or the
        // leader's answer (which follow the leader's apply, then a hop through the Raft task or
        // back over gRPC), so the two are raced: the acknowledgement is the first of them, and an
        // error from the proposal path still leads to a retry unless the apply already came.
        let mut applied = self.shared.wait_for(id);
        let deadline = Instant::now() + self.config.write_wait;
        let mut backoff = Duration::from_millis(10);
        loop {
            // A follower that knows the leader forwards at once; the proposer (and openraft) are
            // asked only when this member may be the leader, and they correct a stale view.
            // Bounded by the write wait: a leader cut off from its quorum holds the proposal
            // until it steps down (check-quorum), a forwarded call until the leader answers.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let leader = match self.known_leader() {
                Some(addr) => Err(ProposeError::NotLeader(Some(addr))),
                None => {
                    let proposed =
                        tokio::time::timeout(remaining, self.proposer.propose(cmd.clone()));
                    tokio::select! {
                        biased;
                        outcome = &mut applied => return outcome.map_err(|_| MemberError::ShuttingDown),
                        r = proposed => r.unwrap_or(Err(ProposeError::Timeout)),
                    }
                }
            };
            match leader {
                Ok(()) => break,
                Err(ProposeError::NotLeader(Some(leader))) if !leader.is_empty() => {
                    let forwarded = tokio::time::timeout(
                        remaining,
                        self.forwarder.forward(&leader, cmd.clone()),
                    );
                    let forwarded = tokio::select! {
                        biased;
                        outcome = &mut applied => return outcome.map_err(|_| MemberError::ShuttingDown),
                        r = forwarded => r.unwrap_or_else(|_| {
                            Err(ForwardError::Unreachable {
                                addr: leader.clone(),
                                reason: "no answer within the write wait".into(),
                            })
                        }),
                    };
                    match forwarded {
                        Ok(()) => break,
                        Err(ForwardError::NotLeader(next)) => tracing::debug!(
                            %leader, next = next.as_deref().unwrap_or(""),
                            "forwarded to a member that is no longer the leader; retrying"
                        ),
                        Err(e) => tracing::debug!(%leader, "forwarding failed, retrying: {e}"),
                    }
                }
                Err(ProposeError::NotLeader(_)) => {
                    tracing::debug!("no leader known (election); retrying")
                }
                Err(e) => tracing::debug!("proposal failed, retrying: {e}"),
            }
            if Instant::now() >= deadline {
                self.shared.forget(&id);
                return Err(MemberError::NoLeader(self.config.write_wait));
            }
            // Retry when the backoff ends, or as soon as a (new) leader is known: after a
            // failover the pause clients see is then the election, not the election plus a
            // backoff. A retried command that was committed after all is answered by its apply.
            tokio::select! {
                biased;
                outcome = &mut applied => return outcome.map_err(|_| MemberError::ShuttingDown),
                _ = tokio::time::sleep(backoff) => {}
                _ = self.leader_changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        match tokio::time::timeout(self.config.write_wait, applied).await {
            Ok(outcome) => outcome.map_err(|_| MemberError::ShuttingDown),
            Err(_) => {
                self.shared.forget(&id);
                Err(MemberError::ApplyTimeout(self.config.write_wait))
            }
        }
    }

    /// Resolves when this member learns of a leader other than the one it knows now.
    async fn leader_changed(&self) {
        // A watch on openraft's server metrics (role, vote, leader, membership), not a `View`:
        // this waits for the next change, and is not woken by every append and commit.
        let mut metrics = self.raft.server_metrics();
        let now = metrics.borrow_and_update().current_leader;
        while metrics.changed().await.is_ok() {
            let leader = metrics.borrow_and_update().current_leader;
            if leader.is_some() && leader != now {
                return;
            }
        }
        // Raft stopped: the caller's deadline ends the wait.
        std::future::pending::<()>().await
    }

    /// The Raft address of the leader when it is another member, as this member last heard.
    fn known_leader(&self) -> Option<String> {
        let v = self.view();
        let leader = v.leader().filter(|id| *id != self.identity.node_id)?;
        v.addr(leader).filter(|a| !a.is_empty()).map(str::to_string)
    }

    /// Waits until this member has applied everything committed before the call: the leader
    /// confirms its leadership with a quorum and names its commit index (a read index), and this
    /// member waits to have applied that far.
    pub async fn read_barrier(&self) -> Result<(), MemberError> {
        let index = self.reads.get().await?;
        self.wait_applied(index).await
    }

    /// Obtains one read index (through the leader when this member is a follower), retrying
    /// through elections up to `write_wait`. Called by the shared read-index task only.
    pub(crate) async fn fetch_read_index(&self) -> Result<u64, ReadIndexError> {
        let deadline = Instant::now() + self.config.write_wait;
        let mut last_error;
        loop {
            match self.raft.get_read_log_id().await {
                Ok((read, _)) => return Ok(read.map(|l| l.index).unwrap_or(0)),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                    f,
                ))) => match f.leader_node {
                    Some(node) => match self.remote_read_index(&node.addr).await {
                        Ok(index) => return Ok(index),
                        Err(e) => last_error = e,
                    },
                    None => last_error = ReadIndexError::NoLeader,
                },
                Err(RaftError::Fatal(e)) => {
                    tracing::debug!("read index: raft stopped: {e}");
                    return Err(ReadIndexError::ShuttingDown);
                }
                Err(e) => last_error = ReadIndexError::NotConfirmed(e.to_string()),
            }
            if Instant::now() >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn remote_read_index(&self, addr: &str) -> Result<u64, ReadIndexError> {
        let unreachable = |reason: String| ReadIndexError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let mut client = crate::network::client(addr).map_err(|e| unreachable(e.to_string()))?;
        let mut req = tonic::Request::new(crate::pb::Empty {});
        req.set_timeout(Duration::from_millis(self.config.election_timeout_ms * 2));
        let reply = client
            .read_index(req)
            .await
            .map_err(|s| unreachable(s.message().to_string()))?
            .into_inner();
        if reply.not_leader {
            Err(ReadIndexError::LeaderMoved(addr.to_string()))
        } else if !reply.error.is_empty() {
            Err(ReadIndexError::NotConfirmed(reply.error))
        } else {
            Ok(reply.index)
        }
    }

    async fn wait_applied(&self, index: u64) -> Result<(), MemberError> {
        let mut applied = self.shared.subscribe_applied();
        let result =
            tokio::time::timeout(self.config.write_wait, applied.wait_for(|i| *i >= index)).await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(MemberError::ShuttingDown),
            Err(_) => Err(MemberError::BehindReadIndex {
                index,
                wait: self.config.write_wait,
            }),
        }
    }

    /// Proposes a command forwarded by a follower; resolves once it is committed.
    pub(crate) async fn propose_forwarded(&self, cmd: Command) -> Result<(), ProposeError> {
        self.proposer.propose(cmd).await
    }

    /// `cluster/change-election-timer`: commits the new timer, which every member then runs with
    /// (see `election_timer`). The caller checks the value as ovsdb-server does.
    pub async fn set_election_timer(&self, ms: u64) -> Result<(), MemberError> {
        self.propose(CommandKind::SetElectionTimer { ms }).await?;
        Ok(())
    }

    /// One run of an OVSDB `transact` on `db` (ops = params after the db name), its `wait`
    /// operations having waited `wait_elapsed_ms` (the front end re-runs a blocked one).
    /// `rbac`: the session's role and identity, checked by the engine at apply time on every
    /// member (reads are never restricted by RBAC).
    pub async fn transact(
        &self,
        db: &str,
        ops: &[Value],
        session: Uuid,
        rbac: Option<ovsdb::RbacIdentityBuf>,
        wait_elapsed_ms: u64,
    ) -> Result<Transaction, MemberError> {
        if !self.with_state(|s| s.dbs.contains_key(db)) {
            return Err(MemberError::UnknownDb(db.to_string()));
        }
        let id = Uuid::new_v4();
        // A transaction with `abort` never commits (ovsdb-client query sends one): read it locally.
        let read_only = ovsdb::is_read_only_transaction(ops);
        // See `MemberConfig::unsafe_ack_before_commit` (the fault suite's broken mode).
        if !read_only && self.config.unsafe_ack_before_commit {
            return Ok(Transaction::Done(self.with_state(|s| {
                let mut env = crate::txn_env::ApplyEnv::new(id, session, &s.locks, 0);
                s.dbs[db].db.clone().transact(ops, &mut env).result
            })));
        }
        let outcome = if read_only {
            self.read_barrier().await?;
            self.execute_locally(db, ops, session, wait_elapsed_ms)
        } else {
            let kind = CommandKind::Transact {
                db: db.to_string(),
                ops: serde_json::to_string(ops).expect("JSON values serialise"),
                session,
                wait_elapsed_ms: Some(wait_elapsed_ms),
                rbac,
            };
            self.propose_as(id, kind).await?
        };
        match outcome {
            Outcome::Transact { result } => Ok(Transaction::Done(
                serde_json::from_str(&result).expect("the engine emits valid JSON"),
            )),
            Outcome::Blocked { retry_in_ms } => Ok(Transaction::Blocked { retry_in_ms }),
            Outcome::UnknownDb => Err(MemberError::UnknownDb(db.to_string())),
            other => Err(MemberError::UnexpectedOutcome(format!("{other:?}"))),
        }
    }

    fn execute_locally(&self, db: &str, ops: &[Value], session: Uuid, elapsed_ms: u64) -> Outcome {
        // Reads share the read lock: they wait for an apply in progress, not for each other.
        let state = self.shared.state.read().unwrap();
        state.execute_read_only(db, ops, session, Some(elapsed_ms))
    }

    /// Online schema conversion of `db` to `schema`. `Ok(Err(error object))` when the
    /// conversion itself fails (the data does not fit the new schema).
    pub async fn convert(
        &self,
        db: &str,
        schema: &Value,
    ) -> Result<Result<(), Value>, MemberError> {
        let kind = CommandKind::Convert {
            db: db.to_string(),
            schema: schema.to_string(),
        };
        match self.propose(kind).await? {
            Outcome::Converted { error: None } => Ok(Ok(())),
            Outcome::Converted { error: Some(e) } => {
                Ok(Err(serde_json::from_str(&e).unwrap_or(Value::String(e))))
            }
            Outcome::UnknownDb => Err(MemberError::UnknownDb(db.to_string())),
            other => Err(MemberError::UnexpectedOutcome(format!("{other:?}"))),
        }
    }

    pub async fn lock(
        &self,
        session: Uuid,
        name: &str,
        steal: bool,
    ) -> Result<Outcome, MemberError> {
        let incarnation = self.incarnation;
        self.propose(CommandKind::Lock {
            session,
            incarnation,
            name: name.to_string(),
            steal,
        })
        .await
    }

    pub(crate) async fn expire_member(
        &self,
        member: NodeId,
        keep: Option<Uuid>,
    ) -> Result<(), MemberError> {
        self.propose(CommandKind::ExpireMember { member, keep })
            .await
            .map(|_| ())
    }

    pub async fn unlock(&self, session: Uuid, name: &str) -> Result<Outcome, MemberError> {
        self.propose(CommandKind::Unlock {
            session,
            name: name.to_string(),
        })
        .await
    }

    /// Releases the locks of sessions that ended. Only proposed when they held or waited for one.
    pub async fn sessions_closed(&self, sessions: Vec<Uuid>) -> Result<(), MemberError> {
        self.propose(CommandKind::SessionsClosed { sessions })
            .await
            .map(|_| ())
    }
}
