//! A minimal OVSDB JSON-RPC client (RFC 7047 §4: `transact`, answering the server's `echo`
//! probes), written against the raw wire so that nothing between the workload and the server
//! retries, reorders or hides an error.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the server")]
    Closed,
    #[error("undecodable message from the server: {0}")]
    Protocol(String),
    /// A JSON-RPC error reply (the request as a whole was refused or could not be carried out).
    #[error("server error: {0}")]
    Rpc(Value),
    #[error("timed out")]
    Timeout,
}

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where a complete message ends in `buf`, as far as it was scanned.
    framer: Framer,
    next_id: u64,
}

/// Finds where a JSON message ends by nesting depth, scanning each byte once. Parsing the whole
/// buffer again after every read made a read of a 20 MB reply (a final read of 360,000 rows)
/// quadratic: over the final read's 15 s on a soak's members.
#[derive(Default)]
struct Framer {
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Framer {
    /// The length of the first complete message in `buf`, if it holds one.
    fn complete(&mut self, buf: &[u8]) -> Option<usize> {
        while self.scanned < buf.len() {
            let b = buf[self.scanned];
            self.scanned += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let end = self.scanned;
                        *self = Framer::default();
                        return Some(end);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            framer: Framer::default(),
            next_id: 1,
        })
    }

    /// Sends `transact` on `db` and returns the result array. After any error the connection
    /// must be dropped: a late reply would be taken for the next request's.
    pub async fn transact(&mut self, db: &str, ops: Vec<Value>) -> Result<Value, ClientError> {
        let mut params = vec![json!(db)];
        params.extend(ops);
        self.call("transact", Value::Array(params)).await
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"method": method, "params": params, "id": id}))
            .await?;
        loop {
            let msg = self.receive().await?;
            if msg.get("method").and_then(Value::as_str) == Some("echo") {
                let reply = json!({"result": msg["params"], "id": msg["id"]});
                self.send(&reply).await?;
                continue;
            }
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return match msg.get("error") {
                    Some(e) if !e.is_null() => Err(ClientError::Rpc(e.clone())),
                    _ => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
            // Notifications (none are requested) and anything else are ignored.
        }
    }

    async fn send(&mut self, v: &Value) -> Result<(), ClientError> {
        self.stream.write_all(v.to_string().as_bytes()).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Value, ClientError> {
        loop {
            if let Some(end) = self.framer.complete(&self.buf) {
                let msg: Result<Value, _> = serde_json::from_slice(&self.buf[..end]);
                self.buf.drain(..end);
                return msg.map_err(|e| ClientError::Protocol(e.to_string()));
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The first error object in a transact result array, if any (RFC 7047 §4.1.3: a failed
/// operation's result, or the extra commit error at the end).
pub fn first_error(result: &Value) -> Option<&Value> {
    result
        .as_array()?
        .iter()
        .find(|r| r.get("error").is_some_and(|e| !e.is_null()))
}

#[cfg(test)]
mod tests {
    use super::Framer;

    #[test]
    fn frames_messages_by_depth_outside_strings() {
        // A string holding brackets, an escaped quote and an escaped backslash.
        let two = br#"{"id":1,"result":[{"s":"a}]\"{\\"}]} {"id":2}"#;
        let end = br#"{"id":1,"result":[{"s":"a}]\"{\\"}]}"#.len();
        let mut f = Framer::default();
        assert_eq!(f.complete(two), Some(end));
        let rest = &two[end..];
        assert_eq!(f.complete(rest), Some(rest.len()));
        // Fed as it arrives, cut anywhere: the same end, once the end has arrived.
        for cut in 1..two.len() {
            let mut f = Framer::default();
            let first = f.complete(&two[..cut]);
            if cut < end {
                assert_eq!(first, None, "cut {cut}");
                assert_eq!(f.complete(two), Some(end), "cut {cut}");
            } else {
                assert_eq!(first, Some(end), "cut {cut}");
            }
        }
    }
}
