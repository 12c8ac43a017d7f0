//! Tunables of the front end, with the defaults ovsdb-server uses where it has one.

use std::time::Duration;

use crate::framing::DEFAULT_MAX_MESSAGE_SIZE;

/// ovsdb-server probes an idle TCP/TLS client after 5 s and drops it 5 s later
/// (`RECONNECT_DEFAULT_PROBE_INTERVAL`, docs/ovsdb-protocol.md §1.6).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Bytes a session may have queued for its client (replies and monitor updates not yet
/// written to the socket) before it is disconnected. A single message larger than this is
/// still sent when nothing else is queued: an initial monitor reply for a big database must
/// get through. 256 MiB covers the largest OVN southbound updates seen in practice while
/// bounding what a stuck client can make the server hold.
pub const DEFAULT_BACKLOG_LIMIT: usize = 256 * 1024 * 1024;

/// Concurrent client connections accepted over all listeners; further connections are
/// closed at once with a log line. An idle session costs a few KiB, so this is mostly a
/// guard against file-descriptor exhaustion.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// A session stops reading requests while more than this many bytes wait to be written,
/// so a client that does not read its replies cannot make the server queue without bound
/// (ovsdb-server reads nothing until its send queue is empty; this is a little looser so
/// pipelining clients are not slowed down).
pub const READ_PAUSE_BYTES: usize = 64 * 1024;

/// Messages queued together for a session are gathered into writes of up to this many bytes:
/// few system calls (and, over TLS, few full records instead of one per message). The buffer
/// exists only while a batch is written, so idle sessions hold none. Larger messages go alone.
pub const WRITE_GATHER_BYTES: usize = 64 * 1024;

/// Bytes of monitors' initial contents a member keeps serialised for reuse, over all databases
/// (only the latest version of each database is kept; see `Hub::initial_contents`).
pub const INITIAL_CACHE_BYTES: usize = 512 * 1024 * 1024;

/// Bytes all sessions together may hold for messages they have not received whole; the session
/// whose read would pass it is closed (see `input_budget`). Eight largest messages.
pub const DEFAULT_INPUT_LIMIT: usize = 512 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Key, certificate and CA for `pssl:` listeners; a `pssl:` remote without it is refused.
    /// TLS options given as `db:DB,TABLE,COLUMN` (as `ovn-ctl` gives them): followed live
    /// from the database; a loader is made (or its settings replaced) once the key, certificate
    /// and CA resolve. See `remotes::DbTlsOptions`.
    pub tls_from_db: Option<crate::remotes::DbTlsOptions>,
    pub tls: Option<std::sync::Arc<crate::tls::TlsLoader>>,
    /// Idle time on a TCP session before the server sends an echo probe, and again before it
    /// gives up on the client. `None` disables probing. Unix-socket sessions are never probed.
    pub probe_interval: Option<Duration>,
    /// Largest JSON-RPC message accepted; a larger one closes the connection.
    pub max_message_size: usize,
    /// See [`DEFAULT_BACKLOG_LIMIT`].
    pub backlog_limit: usize,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_INPUT_LIMIT`].
    pub input_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            tls: None,
            tls_from_db: None,
            probe_interval: Some(DEFAULT_PROBE_INTERVAL),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            backlog_limit: DEFAULT_BACKLOG_LIMIT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            input_limit: DEFAULT_INPUT_LIMIT,
        }
    }
}

impl ServerConfig {
    /// Like ovsdb-server, a non-zero interval below one second is raised to one second.
    pub fn with_probe_interval_ms(mut self, ms: u64) -> ServerConfig {
        self.probe_interval = match ms {
            0 => None,
            ms => Some(Duration::from_millis(ms.max(1000))),
        };
        self
    }
}
