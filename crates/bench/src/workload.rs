//! The workloads and what they share: the endpoints, the database, the request timeout, the
//! server pids whose memory is reported, and a run prefix that keeps row names unique across
//! runs against the same database (Logical_Switch_Port names are an index).

pub mod bulk;
pub mod bulk_large;
pub mod condmon;
pub mod monitor;
pub mod read;
pub mod storm;
pub mod write;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::{self, Client, ClientError};

#[derive(Clone, Debug)]
pub struct Common {
    pub endpoints: Vec<String>,
    pub database: String,
    pub timeout: Duration,
    pub pids: Vec<u32>,
    pub label: Option<String>,
    pub prefix: String,
}

impl Common {
    pub fn new(
        endpoints: Vec<String>,
        database: String,
        timeout: Duration,
        pids: Vec<u32>,
        label: Option<String>,
    ) -> Common {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let prefix = format!(
            "b{:x}",
            (nanos as u64) ^ ((std::process::id() as u64) << 40)
        );
        Common {
            endpoints,
            database,
            timeout,
            pids,
            label,
            prefix,
        }
    }

    /// The endpoint client `i` uses: round-robin over the endpoints.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.endpoints[i % self.endpoints.len()]
    }
}

/// Connects, retrying for up to `within` (a member may be restarting).
pub async fn connect_retrying(endpoint: &str, within: Duration) -> Result<Client, ClientError> {
    let (r, w) = open_retrying(endpoint, within).await?;
    Ok(Client::on_stream(endpoint, r, w, &[]))
}

/// A raw connection to `endpoint`, retried as `connect_retrying` does.
pub async fn open_retrying(
    endpoint: &str,
    within: Duration,
) -> Result<(client::Reader, client::Writer), ClientError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match client::open(endpoint).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A tiny deterministic generator for picking rows to read (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
