//! A session's outbound queue, bounded in bytes (the per-client backlog limit that
//! ovsdb-server enforces in `lib/jsonrpc.c`). Messages are serialised when queued, so the
//! count is exact; anything may queue (the session task, or the apply hook on a backend
//! thread) without blocking, and one writer task drains the queue into the socket.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::jsonrpc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseKind {
    /// Send what is queued, then close.
    Flush,
    /// Close at once, dropping what is queued.
    Abort,
}

/// Bytes queued for the socket: a message of its own, or a part of one that other sessions
/// share (a monitor's initial contents, serialised once for every identical request).
#[derive(Clone)]
pub(crate) enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

struct Inner {
    queue: VecDeque<Chunk>,
    /// Queued plus taken by the writer but not yet written.
    bytes: usize,
    closing: Option<CloseKind>,
    /// The writer is gone (socket error or close done).
    done: bool,
    /// Messages queued and messages written so far (see [`Outbox::push_notice`]).
    pushed: u64,
    written: u64,
    /// Bytes the socket has taken so far.
    sent: u64,
}

pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    limit: usize,
    peer: String,
    writer_wake: Notify,
    session_wake: Notify,
    /// Woken (all waiters) after each batch is written, and when the writer ends.
    written_wake: Notify,
}

impl Outbox {
    pub(crate) fn new(limit: usize, peer: String) -> Outbox {
        Outbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                closing: None,
                done: false,
                pushed: 0,
                written: 0,
                sent: 0,
            }),
            limit,
            peer,
            writer_wake: Notify::new(),
            session_wake: Notify::new(),
            written_wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one message. Returns false if the session is closing. Going over the backlog
    /// limit aborts the session.
    pub(crate) fn push(&self, msg: &Value) -> bool {
        self.push_encoded(jsonrpc::encode(msg))
    }

    /// Queues a message already encoded as JSON text.
    pub(crate) fn push_encoded(&self, bytes: Vec<u8>) -> bool {
        self.push_chunks(vec![Chunk::Owned(bytes)])
    }

    /// Queues one message made of `chunks`, together (nothing queued by another thread can come
    /// between them).
    pub(crate) fn push_chunks(&self, chunks: Vec<Chunk>) -> bool {
        let mut inner = self.lock();
        if inner.closing.is_some() || inner.done {
            return false;
        }
        let len: usize = chunks.iter().map(|c| c.as_ref().len()).sum();
        if inner.bytes > 0 && inner.bytes + len > self.limit {
            tracing::warn!(
                "{}: send backlog of {} bytes would exceed the limit of {} bytes, disconnecting",
                self.peer,
                inner.bytes + len,
                self.limit
            );
            inner.closing = Some(CloseKind::Abort);
            inner.queue.clear();
            drop(inner);
            self.writer_wake.notify_one();
            self.session_wake.notify_one();
            return false;
        }
        inner.bytes += len;
        inner.pushed += chunks.len() as u64;
        inner.queue.extend(chunks);
        drop(inner);
        self.writer_wake.notify_one();
        true
    }

    /// Queues a notification that another session's reply must not overtake. Returns its
    /// sequence number for [`Outbox::wait_written`] when it goes out at once; None when a
    /// backlog of earlier output is still unwritten, as ovsdb-server then leaves it in the
    /// session's backlog too and does not hold other sessions back for it. "A backlog" is more
    /// than a read pause's worth: the last small message may have reached the socket (and the
    /// client) a moment before the writer accounts for it, and that is no backlog.
    pub(crate) fn push_notice(&self, msg: &Value) -> Option<u64> {
        let idle = self.lock().bytes <= crate::config::READ_PAUSE_BYTES;
        if !self.push(msg) || !idle {
            return None;
        }
        Some(self.lock().pushed)
    }

    /// Whether `seq` messages have been written (or never will be).
    pub(crate) fn is_written(&self, seq: u64) -> bool {
        let inner = self.lock();
        inner.written >= seq || inner.done || inner.closing.is_some()
    }

    /// Resolves once `seq` messages have been written, or the session is closing or gone.
    pub(crate) async fn wait_written(&self, seq: u64) {
        loop {
            let woken = self.written_wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let inner = self.lock();
                if inner.written >= seq || inner.done || inner.closing.is_some() {
                    return;
                }
            }
            woken.await;
        }
    }

    /// Bytes the socket has taken since the session started.
    pub(crate) fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// Bytes not yet written to the socket.
    pub(crate) fn backlog(&self) -> usize {
        self.lock().bytes
    }

    /// True once the session must end: closing was asked for or the writer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        let inner = self.lock();
        inner.closing.is_some() || inner.done
    }

    /// True if the session was closed without flushing (backlog overflow).
    pub(crate) fn is_aborted(&self) -> bool {
        self.lock().closing == Some(CloseKind::Abort)
    }

    pub(crate) fn close(&self, kind: CloseKind) {
        let mut inner = self.lock();
        if inner.closing != Some(CloseKind::Abort) {
            inner.closing = Some(kind);
        }
        if kind == CloseKind::Abort {
            inner.queue.clear();
        }
        drop(inner);
        self.writer_wake.notify_one();
        self.session_wake.notify_one();
    }

    /// Resolves when the backlog drops (a write completed) or the outbox closes.
    pub(crate) async fn changed(&self) {
        self.session_wake.notified().await
    }

    /// Drains the queue into `w` until the outbox is closed or a write fails.
    pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(&self, mut w: W) {
        loop {
            let notified = self.writer_wake.notified();
            let batch: Vec<Chunk> = {
                let mut inner = self.lock();
                match inner.closing {
                    Some(CloseKind::Abort) => break,
                    Some(CloseKind::Flush) if inner.queue.is_empty() => break,
                    _ => {}
                }
                inner.queue.drain(..).collect()
            };
            if batch.is_empty() {
                notified.await;
                continue;
            }
            for chunk in gather(&batch, crate::config::WRITE_GATHER_BYTES) {
                // Every write the socket takes is counted off the backlog at once, so the
                // session's inactivity probe sees a client reading a long reply (a storm's
                // initial contents take many seconds) as alive, as ovsdb-server's
                // jsonrpc_session_run counts a shrinking backlog as activity.
                let mut rest: &[u8] = &chunk;
                while !rest.is_empty() {
                    let n = match w.write(rest).await {
                        Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => Ok(n),
                        Err(e) => Err(e),
                    };
                    let n = match n {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::info!("{}: send error: {e}", self.peer);
                            self.finish();
                            return;
                        }
                    };
                    rest = &rest[n..];
                    {
                        let mut inner = self.lock();
                        inner.bytes -= n;
                        inner.sent += n as u64;
                    }
                    if !rest.is_empty() {
                        self.session_wake.notify_one();
                    }
                }
            }
            if let Err(e) = w.flush().await {
                tracing::info!("{}: send error: {e}", self.peer);
                self.finish();
                return;
            }
            self.lock().written += batch.len() as u64;
            self.session_wake.notify_one();
            self.written_wake.notify_waiters();
        }
        let _ = w.shutdown().await;
        self.finish();
    }

    fn finish(&self) {
        let mut inner = self.lock();
        inner.done = true;
        inner.queue.clear();
        inner.bytes = 0;
        drop(inner);
        self.session_wake.notify_one();
        self.written_wake.notify_waiters();
    }
}

/// Splits `batch` into the writes to make: runs of consecutive messages concatenated up to
/// `limit` bytes (copied), and any message that would not fit with its neighbours on its own
/// (not copied). Concatenating keeps the bytes in order, so framing is unchanged.
fn gather<C: AsRef<[u8]>>(batch: &[C], limit: usize) -> Vec<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    let mut out: Vec<Cow<'_, [u8]>> = Vec::new();
    // The run being gathered: batch[first..next], `len` bytes.
    let (mut first, mut len) = (0, 0);
    for (next, msg) in batch.iter().enumerate() {
        let n = msg.as_ref().len();
        if len + n > limit && next > first {
            out.push(joined(&batch[first..next]));
            (first, len) = (next, 0);
        }
        len += n;
    }
    if first < batch.len() {
        out.push(joined(&batch[first..]));
    }
    fn joined<C: AsRef<[u8]>>(run: &[C]) -> Cow<'_, [u8]> {
        match run {
            [one] => Cow::Borrowed(one.as_ref()),
            _ => Cow::Owned(
                run.iter()
                    .flat_map(|c| c.as_ref().iter().copied())
                    .collect(),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::gather;

    /// A client reading a long reply slowly is seen making progress long before the reply is
    /// written: the inactivity probe must not take it for dead (a storm's initial contents).
    #[tokio::test]
    async fn the_backlog_shrinks_while_a_large_message_is_written() {
        use tokio::io::AsyncReadExt;
        let out = std::sync::Arc::new(super::Outbox::new(usize::MAX, "test".into()));
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn({
            let out = out.clone();
            async move { out.run_writer(w).await }
        });
        let total = 8 << 20;
        assert!(out.push_encoded(vec![b' '; total]));
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < total / 4 {
            read += r.read(&mut buf).await.unwrap();
        }
        let backlog = out.backlog();
        assert!(
            backlog < total,
            "backlog {backlog} after {read} bytes were read"
        );
        assert!(
            backlog >= total - read - 64 * 1024,
            "backlog {backlog}, read {read}"
        );
        while read < total {
            read += r.read(&mut buf).await.unwrap();
        }
        out.close(super::CloseKind::Flush);
        writer.await.unwrap();
        assert_eq!(out.backlog(), 0);
    }

    fn sizes(batch: &[Vec<u8>], limit: usize) -> Vec<(usize, bool)> {
        gather(batch, limit)
            .iter()
            .map(|c| (c.len(), matches!(c, std::borrow::Cow::Owned(_))))
            .collect()
    }

    #[test]
    fn small_messages_are_gathered_up_to_the_limit_in_order() {
        let batch: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 30]).collect();
        assert_eq!(
            sizes(&batch, 100),
            vec![(90, true), (90, true), (90, true), (30, false)]
        );
        let joined: Vec<u8> = gather(&batch, 100)
            .iter()
            .flat_map(|c| c.to_vec())
            .collect();
        assert_eq!(joined, batch.concat());
    }

    #[test]
    fn a_lone_or_large_message_is_written_without_a_copy() {
        assert_eq!(sizes(&[vec![1; 10]], 100), vec![(10, false)]);
        let batch = vec![vec![1; 10], vec![2; 500], vec![3; 10], vec![4; 10]];
        assert_eq!(
            sizes(&batch, 100),
            vec![(10, false), (500, false), (20, true)]
        );
        assert!(gather::<Vec<u8>>(&[], 100).is_empty());
    }
}
