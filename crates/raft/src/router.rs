//! An in-process network for tests (feature `in-process`): members whose Raft address is
//! `mem:NAME` serve their member-to-member gRPC service on in-memory streams, and every client
//! of such an address (Raft RPCs, forwarded writes, read indexes, administration) dials through
//! this router. Only the socket is simulated: the same tonic service, openraft network code,
//! forwarder and read barriers run as between processes, with real sled files, so several
//! members in one test process exercise the real paths in milliseconds.
//!
//! Limits: the channel cache of `network::client` and the member TLS settings are global, so
//! members of one process share them (harmless for plain `mem:` addresses); a member taken away
//! with [`kill`] loses every connection at once, as a crashed process does; there is no
//! partition of a live member. [`hold`] parks a request at a named point of the service so a
//! test can act (kill the leader, say) at an exact step of a forwarded write.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, Notify};

/// Bytes buffered in each direction of a stream (an AppendEntries transfer is about 2 MiB).
const STREAM_BUFFER: usize = 4 * 1024 * 1024;

/// One end of an in-memory connection; fails once its member is killed.
pub struct MemStream {
    inner: DuplexStream,
    cut: Arc<AtomicBool>,
}

fn broken() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "member killed")
}

impl AsyncRead for MemStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(broken()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(broken()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for MemStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

#[derive(Default)]
struct Router {
    listeners: HashMap<String, mpsc::UnboundedSender<MemStream>>,
    /// Per member name, the cut flags of its connections (both ends share one).
    conns: HashMap<String, Vec<Arc<AtomicBool>>>,
    /// By member name and point.
    holds: HashMap<(String, String), Arc<Hold>>,
}

fn router() -> std::sync::MutexGuard<'static, Router> {
    static ROUTER: OnceLock<Mutex<Router>> = OnceLock::new();
    ROUTER
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The connections to `name` as they are accepted (what `serve_with_incoming` takes).
pub(crate) fn listen(
    name: &str,
) -> impl futures::Stream<Item = Result<MemStream, std::io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::unbounded_channel();
    router().listeners.insert(name.to_string(), tx);
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|s| (Ok(s), rx)) },
    )
}

/// Dials `name`: refused when no member serves it (never started, or killed).
pub(crate) fn connect(name: &str) -> std::io::Result<MemStream> {
    let mut r = router();
    let Some(listener) = r.listeners.get(name) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("no member serves mem:{name}"),
        ));
    };
    let (client, server) = tokio::io::duplex(STREAM_BUFFER);
    let cut = Arc::new(AtomicBool::new(false));
    let server = MemStream {
        inner: server,
        cut: cut.clone(),
    };
    if listener.send(server).is_err() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("mem:{name} stopped listening"),
        ));
    }
    r.conns
        .entry(name.to_string())
        .or_default()
        .push(cut.clone());
    Ok(MemStream { inner: client, cut })
}

/// Takes the member serving `name` off the network, as a crash would: new connections are
/// refused and every open one fails.
pub fn kill(name: &str) {
    let mut r = router();
    r.listeners.remove(name);
    for cut in r.conns.remove(name).unwrap_or_default() {
        cut.store(true, Ordering::SeqCst);
    }
}

/// A point where requests wait while a test holds it.
#[derive(Default)]
pub struct Hold {
    arrived: Notify,
    arrivals: std::sync::atomic::AtomicUsize,
    released: AtomicBool,
    crashed: AtomicBool,
    release: Notify,
}

impl Hold {
    /// Waits until a request reached the point.
    pub async fn arrived(&self) {
        loop {
            let notified = self.arrived.notified();
            if self.arrivals.load(Ordering::SeqCst) > 0 {
                return;
            }
            notified.await;
        }
    }

    /// How many requests reached the point so far.
    pub fn arrivals(&self) -> usize {
        self.arrivals.load(Ordering::SeqCst)
    }

    /// Lets the held requests (and later ones) go on.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        self.release.notify_waiters();
    }

    /// Ends the held requests (and later ones) as a crash at this point would: at a
    /// [`crash_point`], nothing after the point runs.
    pub fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.release();
    }
}

/// Holds requests at `point` of the member `mem:NAME` (see [`pause_point`]) until the
/// returned hold is released.
pub fn hold(name: &str, point: &str) -> Arc<Hold> {
    let h = Arc::new(Hold::default());
    router()
        .holds
        .insert((name.to_string(), point.to_string()), h.clone());
    h
}

/// Takes away the hold at `point` of the member `mem:NAME`: requests pass it again.
pub fn unhold(name: &str, point: &str) {
    router()
        .holds
        .remove(&(name.to_string(), point.to_string()));
}

/// A [`pause_point`] that a test may also [`Hold::crash`] at: true if it did, and the caller
/// then stops as a crashed process would, before its next step. `snapshot-decoded`: a member
/// installing a snapshot has decoded it and not saved it yet.
pub(crate) async fn crash_point(addr: &str, point: &str) -> bool {
    pause_point(addr, point).await;
    let Some(name) = addr.strip_prefix("mem:") else {
        return false;
    };
    let key = (name.to_string(), point.to_string());
    router()
        .holds
        .get(&key)
        .is_some_and(|h| h.crashed.load(Ordering::SeqCst))
}

/// Where the service of the member at `addr` lets a test hold a request: `forward-received`,
/// before a forwarded batch is proposed; `forward-committed`, after a forwarded batch was
/// committed and before the leader answers; `append-replied`,
/// after an AppendEntries with entries was appended and before the follower answers;
/// `heartbeat-received`, an AppendEntries without entries (not a commit notice) before it is
/// handled.
pub(crate) async fn pause_point(addr: &str, point: &str) {
    let Some(name) = addr.strip_prefix("mem:") else {
        return;
    };
    let key = (name.to_string(), point.to_string());
    let Some(h) = router().holds.get(&key).cloned() else {
        return;
    };
    let released = h.release.notified();
    tokio::pin!(released);
    released.as_mut().enable();
    h.arrivals.fetch_add(1, Ordering::SeqCst);
    h.arrived.notify_waiters();
    if !h.released.load(Ordering::SeqCst) {
        released.await;
    }
}
