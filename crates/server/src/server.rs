//! The server as a whole: the listeners, the connection limit, one session per connection,
//! and the task that keeps `_Server` current.

use std::sync::Arc;

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::listener::{Connection, Listener, Remote, RemoteError};
use crate::remotes::{DbColumn, DbColumnError};
use crate::server_db::{SchemaError, ServerDb, SERVER_DB};
use crate::session::{self, Ctx, SessionOptions};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    DbRemote(#[from] DbColumnError),
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
                tls: std::sync::RwLock::new(config.tls.clone()),
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

    /// Parses every remote first (so a typo fails before anything listens), then binds the
    /// command line's listeners. `db:` remotes are only checked for syntax here: their rows may
    /// not be there yet (see `remotes`).
    pub async fn bind(&self, remotes: &[String]) -> Result<Vec<Listener>, ServerError> {
        Ok(self
            .bind_named(remotes)
            .await?
            .into_iter()
            .map(|(_, l)| l)
            .collect())
    }

    async fn bind_named(&self, remotes: &[String]) -> Result<Vec<(String, Listener)>, ServerError> {
        if remotes.is_empty() {
            return Err(ServerError::NoRemotes);
        }
        let mut parsed = Vec::new();
        for r in remotes {
            match DbColumn::parse(r) {
                Some(spec) => {
                    spec?;
                }
                None => parsed.push((r.clone(), r.parse::<Remote>()?)),
            }
        }
        if let Some((_, r)) = parsed.iter().find(|(_, r)| matches!(r, Remote::Ssl(_))) {
            if self.ctx.config.tls.is_none() && self.ctx.config.tls_from_db.is_none() {
                return Err(ServerError::TlsMissing(r.to_string()));
            }
        }
        let mut listeners = Vec::with_capacity(parsed.len());
        for (name, r) in parsed {
            let l = r.bind().await.map_err(|source| ServerError::Bind {
                remote: r.to_string(),
                source,
            })?;
            listeners.push((name, l));
        }
        Ok(listeners)
    }

    /// Binds `remotes` (`ptcp:PORT[:IP]`, `punix:PATH`, `db:DB,TABLE,COLUMN`) and serves them,
    /// following `db:` rows and `add-remote`/`remove-remote`, until the task is dropped.
    pub async fn run(&self, remotes: Vec<String>) -> Result<(), ServerError> {
        self.run_notify(remotes, || {}).await
    }

    /// [`Server::run`], calling `bound` once every command-line listener is bound (a daemon
    /// reports itself started only then, so that clients started after it can connect).
    pub async fn run_notify(
        &self,
        remotes: Vec<String>,
        bound: impl FnOnce(),
    ) -> Result<(), ServerError> {
        let listeners = self.bind_named(&remotes).await?;
        bound();
        self.ctx.hub.set_remotes(remotes);
        crate::remotes::run(self.ctx.clone(), listeners, self.connections.clone()).await;
        Ok(())
    }

    /// The configured remotes (`ovsdb-server/list-remotes`), sorted.
    pub fn remotes(&self) -> Vec<String> {
        let mut r = self.ctx.hub.remotes();
        r.sort();
        r
    }

    /// `ovsdb-server/add-remote`: listens on one more remote (a `db:` one too) while running.
    /// A remote that cannot be bound is retried, as from the database.
    pub fn add_remote(&self, remote: &str) -> Result<(), String> {
        if remote.starts_with("pfd:") {
            return Err("pfd: remotes can only be specified on the command line".into());
        }
        match DbColumn::parse(remote) {
            Some(spec) => {
                let spec = spec.map_err(|e| e.to_string())?;
                crate::remotes::query(self.ctx.backend.as_ref(), &spec)
                    .map_err(|e| e.to_string())?;
            }
            None => {
                remote.parse::<Remote>().map_err(|e| e.to_string())?;
            }
        }
        let mut all = self.ctx.hub.remotes();
        if !all.iter().any(|r| r == remote) {
            all.push(remote.to_string());
            self.ctx.hub.set_remotes(all);
        }
        Ok(())
    }

    /// `ovsdb-server/remove-remote`: stops listening on a configured remote and closes its
    /// sessions.
    pub fn remove_remote(&self, remote: &str) -> Result<(), String> {
        let mut all = self.ctx.hub.remotes();
        let before = all.len();
        all.retain(|r| r != remote);
        if all.len() == before {
            return Err("no such remote".into());
        }
        self.ctx.hub.set_remotes(all);
        Ok(())
    }

    /// `ovsdb-server/reconnect`: closes every client session (clients reconnect).
    pub fn reconnect(&self) -> usize {
        self.ctx.hub.close_all()
    }

    /// Serves already bound listeners until the task is dropped.
    pub async fn serve(&self, listeners: Vec<Listener>) {
        let mut tasks = tokio::task::JoinSet::new();
        for l in listeners {
            let ctx = self.ctx.clone();
            let connections = self.connections.clone();
            let options = SessionOptions {
                probe: ctx.config.probe_interval,
                ..Default::default()
            };
            tasks.spawn(accept_loop(ctx, l, connections, options, 0));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The listeners opened from `db:` remotes, with their open sessions.
    pub fn db_listeners(&self) -> Vec<(String, usize)> {
        self.ctx.hub.db_listeners()
    }

    /// Serves one already accepted connection, of any kind of byte stream (a TLS stream, a
    /// test's in-memory pipe), until it ends. `probe` turns the inactivity probe on, as for
    /// TCP. It does not count against `max_connections`.
    pub async fn serve_connection<S>(&self, stream: S, peer: String, probe: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let options = SessionOptions {
            probe: probe.then_some(self.ctx.config.probe_interval).flatten(),
            ..Default::default()
        };
        session::serve(self.ctx.clone(), stream, peer, options, 0).await
    }

    fn refresh_server_db(&self) {
        refresh(&self.ctx);
    }
}

/// Recomputes `_Server` from the backend; `_Server` monitors get the changes.
fn refresh(ctx: &Ctx) {
    ctx.hub
        .server_stale
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let rows = ctx.backend.server_rows();
    let hub = ctx.hub.clone();
    ctx.server_db.refresh(&rows, &|changes| {
        hub.fan_out(SERVER_DB, Uuid::nil(), changes)
    });
    ctx.hub.server_db_refreshed.notify_waiters();
}

/// Brings `_Server` up to date if the applied index moved while nobody watched it (see
/// `Hub::server_stale`). Called before anything reads `_Server`'s rows.
pub(crate) fn ensure_fresh(ctx: &Ctx) {
    if ctx
        .hub
        .server_stale
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        refresh(ctx);
    }
}

/// Accepts connections on `listener` until the task is aborted; its sessions get `options`
/// and carry `tag` (so closing a listener from the database can close them).
pub(crate) async fn accept_loop(
    ctx: Arc<Ctx>,
    listener: Listener,
    connections: Arc<Semaphore>,
    options: SessionOptions,
    tag: u64,
) {
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
        let options = options.clone();
        tokio::spawn(async move {
            match conn {
                Connection::Tcp(s) => session::serve(ctx, s, peer, options, tag).await,
                Connection::Ssl(s) => {
                    if let Some((s, identity)) = handshake(&ctx, s, &peer).await {
                        let options = SessionOptions {
                            identity,
                            ..options
                        };
                        session::serve(ctx, s, peer, options, tag).await
                    }
                }
                // ovsdb-server never probes unix-socket clients.
                Connection::Unix(s) => {
                    let options = SessionOptions {
                        probe: None,
                        ..options
                    };
                    session::serve(ctx, s, peer, options, tag).await
                }
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
    let Some(tls) = ctx.tls() else {
        tracing::warn!(
            "{peer}: SSL connection refused: no TLS key, certificate and CA yet (the db: options \
             have not resolved)"
        );
        return None;
    };
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
