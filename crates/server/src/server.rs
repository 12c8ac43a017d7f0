//! The server as a whole: the listeners, the connection limit, one session per connection,
//! and the task that keeps `_Server` current.

use std::sync::Arc;

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::listener::{Connection, Listener, Remote, RemoteError};
use crate::server_db::{SchemaError, ServerDb, SERVER_DB};
use crate::session::{self, Ctx};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{remote}: cannot listen: {source}")]
    Bind {
        remote: String,
        source: std::io::Error,
    },
    #[error("{0}: pssl: remotes need --private-key, --certificate and --ca-cert")]
    TlsMissing(String),
    #[error("no remotes to listen on")]
    NoRemotes,
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The OVSDB front end of one member.
pub struct Server {
    ctx: Arc<Ctx>,
    connections: Arc<Semaphore>,
}

impl Server {
    /// Installs the apply hook on `backend`, builds `_Server` from its current status and
    /// starts the task that refreshes it. Must be called inside a tokio runtime.
    pub fn new(backend: Arc<dyn Backend>, config: ServerConfig) -> Result<Server, ServerError> {
        let hub = Arc::new(Hub::default());
        let server_db = Arc::new(ServerDb::new()?);
        backend.set_apply_hook(hub.clone());
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let input = crate::input_budget::InputBudget::new(config.input_limit);
        let server = Server {
            ctx: Arc::new(Ctx {
                input,
                backend,
                config,
                hub,
                server_db,
                server_id: Uuid::new_v4(),
            }),
            connections,
        };
        server.refresh_server_db();
        let weak = Arc::downgrade(&server.ctx);
        let hub = server.ctx.hub.clone();
        tokio::spawn(async move {
            loop {
                hub.status_changed.notified().await;
                let Some(ctx) = weak.upgrade() else { break };
                refresh(&ctx);
            }
        });
        Ok(server)
    }

    /// The random id `get_server_id` returns, fixed for the life of the process.
    pub fn server_id(&self) -> Uuid {
        self.ctx.server_id
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.ctx.hub.session_count()
    }

    /// Open sessions, monitors and unsent bytes (for metrics).
    pub fn stats(&self) -> crate::FrontEndStats {
        crate::FrontEndStats {
            input_bytes: self.ctx.input.used(),
            ..self.ctx.hub.stats()
        }
    }

    /// Parses every remote first (so a typo fails before anything listens), then binds.
    pub async fn bind(&self, remotes: &[String]) -> Result<Vec<Listener>, ServerError> {
        if remotes.is_empty() {
            return Err(ServerError::NoRemotes);
        }
        let parsed = remotes
            .iter()
            .map(|r| r.parse::<Remote>())
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(r) = parsed.iter().find(|r| matches!(r, Remote::Ssl(_))) {
            if self.ctx.config.tls.is_none() {
                return Err(ServerError::TlsMissing(r.to_string()));
            }
        }
        let mut listeners = Vec::with_capacity(parsed.len());
        for r in parsed {
            let l = r.bind().await.map_err(|source| ServerError::Bind {
                remote: r.to_string(),
                source,
            })?;
            tracing::info!("{}: listening", l.local_name());
            listeners.push(l);
        }
        Ok(listeners)
    }

    /// Binds `remotes` (`ptcp:PORT[:IP]`, `punix:PATH`) and serves until the task is dropped.
    pub async fn run(&self, remotes: Vec<String>) -> Result<(), ServerError> {
        let listeners = self.bind(&remotes).await?;
        self.serve(listeners).await;
        Ok(())
    }

    /// Serves already bound listeners until the task is dropped.
    pub async fn serve(&self, listeners: Vec<Listener>) {
        let mut tasks = tokio::task::JoinSet::new();
        for l in listeners {
            let ctx = self.ctx.clone();
            let connections = self.connections.clone();
            tasks.spawn(accept_loop(ctx, l, connections));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Serves one already accepted connection, of any kind of byte stream (a TLS stream, a
    /// test's in-memory pipe), until it ends. `probe` turns the inactivity probe on, as for
    /// TCP. It does not count against `max_connections`.
    pub async fn serve_connection<S>(&self, stream: S, peer: String, probe: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let probe = if probe {
            self.ctx.config.probe_interval
        } else {
            None
        };
        session::serve(self.ctx.clone(), stream, peer, None, probe).await
    }

    fn refresh_server_db(&self) {
        refresh(&self.ctx);
    }
}

/// Recomputes `_Server` from the backend; `_Server` monitors get the changes.
fn refresh(ctx: &Ctx) {
    let rows = ctx.backend.server_rows();
    let hub = ctx.hub.clone();
    ctx.server_db.refresh(&rows, &|changes| {
        hub.fan_out(SERVER_DB, Uuid::nil(), changes)
    });
    ctx.hub.server_db_refreshed.notify_waiters();
}

async fn accept_loop(ctx: Arc<Ctx>, listener: Listener, connections: Arc<Semaphore>) {
    let name = listener.local_name();
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!("{name}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(
                "{peer}: refusing connection: {} connections already open",
                ctx.config.max_connections
            );
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match conn {
                Connection::Tcp(s) => {
                    let probe = ctx.config.probe_interval;
                    session::serve(ctx, s, peer, None, probe).await
                }
                Connection::Ssl(s) => {
                    if let Some((s, identity)) = handshake(&ctx, s, &peer).await {
                        let probe = ctx.config.probe_interval;
                        session::serve(ctx, s, peer, identity, probe).await
                    }
                }
                // ovsdb-server never probes unix-socket clients.
                Connection::Unix(s) => session::serve(ctx, s, peer, None, None).await,
            }
            drop(permit);
        });
    }
}

/// The server side of a TLS handshake on an accepted connection, bounded by
/// [`HANDSHAKE_TIMEOUT`](crate::tls::HANDSHAKE_TIMEOUT). Returns the stream and the subject CN
/// of the client's certificate, or `None` (logged) if the client did not complete it.
async fn handshake(
    ctx: &Ctx,
    stream: tokio::net::TcpStream,
    peer: &str,
) -> Option<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Option<String>,
)> {
    let tls = ctx.config.tls.as_ref()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let limit = crate::tls::HANDSHAKE_TIMEOUT;
    let s = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(
                "{peer}: TLS handshake failed: {}",
                crate::tls::describe_handshake_error(&e)
            );
            return None;
        }
        Err(_) => {
            tracing::warn!(
                "{peer}: TLS handshake not completed within {} s, disconnecting",
                limit.as_secs()
            );
            return None;
        }
    };
    let identity = s
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::tls::common_name(c));
    tracing::info!(
        "{peer}: TLS session established, client certificate CN {:?}",
        identity.as_deref().unwrap_or("")
    );
    Some((s, identity))
}
