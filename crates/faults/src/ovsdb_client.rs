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
    next_id: u64,
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
            if !self.buf.is_empty() {
                let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
                match it.next() {
                    Some(Ok(v)) => {
                        let used = it.byte_offset();
                        self.buf.drain(..used);
                        return Ok(v);
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
                    None => self.buf.clear(),
                }
            }
            let mut chunk = [0u8; 16 * 1024];
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
