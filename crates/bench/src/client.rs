//! A small OVSDB JSON-RPC client (RFC 7047 section 4, docs/ovsdb-protocol.md sections 1.3–1.6):
//! requests with integer ids, replies matched by id, notifications (`update2`, ...) handed over
//! with the instant they were read, and the server's `echo` probes answered so a quiet monitoring
//! client is not disconnected after 10 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::framing::{FramingError, Splitter};

/// Largest message accepted from a server (a monitor's initial contents after a bulk load).
const MAX_MESSAGE: usize = 1 << 30;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("bad endpoint {0:?}: expected tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH")]
    BadEndpoint(String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}: ssl: endpoints need --private-key, --certificate and --ca-cert")]
    NoTls(String),
    #[error("connection closed")]
    Closed,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("JSON-RPC error: {0}")]
    Rpc(Value),
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
}

/// A notification from the server and when it was read off the socket.
#[derive(Debug)]
pub struct Notification {
    pub method: String,
    pub params: Value,
    pub at: Instant,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, ClientError>>>>>;

/// The client TLS configuration for `ssl:` endpoints, set once from the command line.
static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();

pub fn set_tls(config: Arc<rustls::ClientConfig>) {
    let _ = TLS.set(config);
}

/// The two halves of a connection to an endpoint.
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Opens a connection to `tcp:HOST:PORT`, `ssl:HOST:PORT` or `unix:PATH`.
pub async fn open(endpoint: &str) -> Result<(Reader, Writer), ClientError> {
    if let Some(addr) = endpoint.strip_prefix("ssl:") {
        let config = TLS
            .get()
            .cloned()
            .ok_or_else(|| ClientError::NoTls(endpoint.to_string()))?;
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(endpoint.to_string(), e))?;
        stream.set_nodelay(true).ok();
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| ClientError::BadEndpoint(endpoint.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| ClientError::Connect(endpoint.to_string(), e))?;
        let (r, w) = tokio::io::split(stream);
        Ok((Box::new(r), Box::new(w)))
    } else if let Some(addr) = endpoint.strip_prefix("tcp:") {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(endpoint.to_string(), e))?;
        // Requests are single small writes whose latency is measured: never delay them.
        stream.set_nodelay(true).ok();
        let (r, w) = stream.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else if let Some(path) = endpoint.strip_prefix("unix:") {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| ClientError::Connect(endpoint.to_string(), e))?;
        let (r, w) = stream.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else {
        Err(ClientError::BadEndpoint(endpoint.to_string()))
    }
}

/// One connection to one endpoint.
pub struct Client {
    endpoint: String,
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    notifications: Mutex<Option<mpsc::UnboundedReceiver<Notification>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Client {
    /// A client on a connection (from `open`); `leftover` is what an exchange before this client
    /// already read from it past its own end.
    pub fn on_stream(endpoint: &str, reader: Reader, writer: Writer, leftover: &[u8]) -> Client {
        let (out, out_rx) = mpsc::unbounded_channel();
        let (note_tx, note_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(write_loop(writer, out_rx));
        let reader = tokio::spawn(read_loop(
            reader,
            leftover.to_vec(),
            pending.clone(),
            out.clone(),
            note_tx,
        ));
        Client {
            endpoint: endpoint.to_string(),
            out,
            pending,
            next_id: AtomicU64::new(1),
            notifications: Mutex::new(Some(note_rx)),
            reader,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `method(params)` and waits for its reply's `result`; an `error` reply is an error.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.call_with(timeout, |id| {
            let msg = json!({"id": id, "method": method, "params": params});
            serde_json::to_vec(&msg).expect("a JSON value serialises")
        })
        .await
    }

    /// As `call`, with `params` already serialised (a load whose requests are built before its
    /// clock starts, so the figure is the server's time, not the client's).
    pub async fn call_prebuilt(
        &self,
        method: &str,
        params: &[u8],
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.call_with(timeout, |id| {
            let mut msg = format!(r#"{{"id":{id},"method":"{method}","params":"#).into_bytes();
            msg.extend_from_slice(params);
            msg.push(b'}');
            msg
        })
        .await
    }

    async fn call_with(
        &self,
        timeout: Duration,
        message: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        if self.out.send(message(id)).is_err() {
            self.pending.lock().unwrap().remove(&id);
            return Err(ClientError::Closed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// `transact` on `db` with `ops`; the result array (which may hold per-operation errors).
    pub async fn transact(
        &self,
        db: &str,
        ops: &[Value],
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(Value::String(db.to_string()));
        params.extend(ops.iter().cloned());
        self.call("transact", Value::Array(params), timeout).await
    }

    /// The stream of notifications; only one taker.
    pub fn take_notifications(&self) -> Option<mpsc::UnboundedReceiver<Notification>> {
        self.notifications.lock().unwrap().take()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Stopping the reader drops its handle on the writer, which then closes the connection.
        self.reader.abort();
        self.pending.lock().unwrap().clear();
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(first) = rx.recv().await {
        // Coalesce what is already queued into one write.
        let mut buf = first;
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        if writer.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    leftover: Vec<u8>,
    pending: Pending,
    out: mpsc::UnboundedSender<Vec<u8>>,
    notes: mpsc::UnboundedSender<Notification>,
) {
    let mut splitter = Splitter::new(MAX_MESSAGE);
    let mut chunk = vec![0u8; 256 * 1024];
    splitter.extend(&leftover);
    let mut first = true;
    let error = loop {
        // What was left over from an earlier exchange is split before anything is read.
        let n = if std::mem::take(&mut first) {
            0
        } else {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break ClientError::Closed,
                Ok(n) => n,
            }
        };
        let at = Instant::now();
        splitter.extend(&chunk[..n]);
        let mut failed = None;
        loop {
            match splitter.next_value() {
                Ok(Some(bytes)) => {
                    if let Ok(msg) = serde_json::from_slice::<Value>(&bytes) {
                        dispatch(msg, at, &pending, &out, &notes);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(ClientError::Framing(e));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break e;
        }
    };
    let waiting: Vec<_> = pending.lock().unwrap().drain().collect();
    let text = error.to_string();
    for (_, tx) in waiting {
        let _ = tx.send(Err(match &error {
            ClientError::Closed => ClientError::Closed,
            _ => ClientError::Rpc(Value::String(text.clone())),
        }));
    }
}

fn dispatch(
    mut msg: Value,
    at: Instant,
    pending: &Pending,
    out: &mpsc::UnboundedSender<Vec<u8>>,
    notes: &mpsc::UnboundedSender<Notification>,
) {
    let Some(obj) = msg.as_object_mut() else {
        return;
    };
    if let Some(Value::String(method)) = obj.get("method").cloned() {
        let params = obj.remove("params").unwrap_or(Value::Array(vec![]));
        let id = obj.remove("id").unwrap_or(Value::Null);
        if method == "echo" && !id.is_null() {
            let reply = json!({"id": id, "result": params, "error": null});
            let _ = out.send(serde_json::to_vec(&reply).expect("a JSON value serialises"));
        } else if id.is_null() {
            let _ = notes.send(Notification { method, params, at });
        }
        return;
    }
    let Some(id) = obj.get("id").and_then(Value::as_u64) else {
        return; // a reply to our own echo, or to nothing we sent
    };
    let Some(tx) = pending.lock().unwrap().remove(&id) else {
        return;
    };
    let error = obj.remove("error").unwrap_or(Value::Null);
    let reply = if error.is_null() {
        Ok(obj.remove("result").unwrap_or(Value::Null))
    } else {
        Err(ClientError::Rpc(error))
    };
    let _ = tx.send(reply);
}
