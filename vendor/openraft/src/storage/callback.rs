//! Callbacks used by Storage API

use std::io;

use tokio::sync::oneshot;

use crate::async_runtime::AsyncOneshotSendExt;
use crate::raft_state::io_state::log_io_id::LogIOId;
use crate::type_config::alias::OneshotSenderOf;
use crate::LogId;
use crate::RaftTypeConfig;
use crate::StorageIOError;

/// A oneshot callback for completion of log io operation.
pub struct LogFlushed<C>
where C: RaftTypeConfig
{
    log_io_id: LogIOId<C::NodeId>,
    tx: FlushedTx<C>,
}

/// Halyard patch: where a completed log io is reported. `RaftCore` awaits the oneshot (the
/// upstream behaviour) except for a leader's own appends, whose completion goes to its notify
/// channel so that replication does not wait for the leader's flush (Raft thesis, 10.2.1).
enum FlushedTx<C>
where C: RaftTypeConfig
{
    Oneshot(OneshotSenderOf<C, Result<LogIOId<C::NodeId>, io::Error>>),
    Notify(
        tokio::sync::mpsc::UnboundedSender<crate::core::notify::Notify<C>>,
        crate::Vote<C::NodeId>,
    ),
}

impl<C> LogFlushed<C>
where C: RaftTypeConfig
{
    pub(crate) fn new(
        log_io_id: LogIOId<C::NodeId>,
        tx: OneshotSenderOf<C, Result<LogIOId<C::NodeId>, io::Error>>,
    ) -> Self {
        Self {
            log_io_id,
            tx: FlushedTx::Oneshot(tx),
        }
    }

    /// Halyard patch: the completion is sent to `RaftCore` as a `Notify::LocalLogFlushed`.
    pub(crate) fn new_notify(
        vote: crate::Vote<C::NodeId>,
        log_io_id: LogIOId<C::NodeId>,
        tx: tokio::sync::mpsc::UnboundedSender<crate::core::notify::Notify<C>>,
    ) -> Self {
        Self {
            log_io_id,
            tx: FlushedTx::Notify(tx, vote),
        }
    }

    /// Halyard patch: `RaftCore` waits for this completion before it runs its next command
    /// (every append but a leader's own). A store whose sync is quick may then sync in the
    /// caller and complete at once, rather than wake another thread and be woken back.
    pub fn is_awaited(&self) -> bool {
        matches!(self.tx, FlushedTx::Oneshot(_))
    }

    /// Report log io completion event.
    ///
    /// It will be called when the log is successfully appended to the storage or an error occurs.
    pub fn log_io_completed(self, result: Result<(), io::Error>) {
        if let Err(e) = &result {
            tracing::error!("LogFlush error: {}, while flushing upto {}", e, self.log_io_id);
        }
        match self.tx {
            FlushedTx::Oneshot(tx) => {
                let res = match result {
                    Err(e) => tx.send(Err(e)),
                    Ok(()) => tx.send(Ok(self.log_io_id)),
                };
                if let Err(e) = res {
                    tracing::error!("failed to send log io completion event: {:?}", e);
                }
            }
            FlushedTx::Notify(tx, vote) => {
                let notify = crate::core::notify::Notify::LocalLogFlushed {
                    vote,
                    log_io_id: self.log_io_id,
                    result,
                };
                if tx.send(notify).is_err() {
                    tracing::debug!("log io completed after RaftCore stopped");
                }
            }
        }
    }
}

/// A oneshot callback for completion of applying logs to state machine.
pub struct LogApplied<C>
where C: RaftTypeConfig
{
    last_log_id: LogId<C::NodeId>,
    tx: oneshot::Sender<Result<(LogId<C::NodeId>, Vec<C::R>), StorageIOError<C::NodeId>>>,
}

impl<C> LogApplied<C>
where C: RaftTypeConfig
{
    #[allow(dead_code)]
    pub(crate) fn new(
        last_log_id: LogId<C::NodeId>,
        tx: oneshot::Sender<Result<(LogId<C::NodeId>, Vec<C::R>), StorageIOError<C::NodeId>>>,
    ) -> Self {
        Self { last_log_id, tx }
    }

    /// Report apply io completion event.
    ///
    /// It will be called when the log is successfully applied to the state machine or an error
    /// occurs.
    pub fn completed(self, result: Result<Vec<C::R>, StorageIOError<C::NodeId>>) {
        let res = match result {
            Ok(x) => {
                tracing::debug!("LogApplied upto {}", self.last_log_id);
                let resp = (self.last_log_id.clone(), x);
                self.tx.send(Ok(resp))
            }
            Err(e) => {
                tracing::error!("LogApplied error: {}, while applying upto {}", e, self.last_log_id);
                self.tx.send(Err(e))
            }
        };

        if let Err(_e) = res {
            tracing::error!("failed to send apply complete event, last_log_id: {}", self.last_log_id);
        }
    }
}
