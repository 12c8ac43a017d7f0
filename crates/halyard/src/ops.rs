//! The operations side of a running member: what the control socket (`unixctl`), the HTTP
//! endpoint (`http`) and `halyard status` (through `Member::report`) report beyond the
//! OVSDB protocol. One [`Ops`] per `halyard serve` process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use halyard_raft::Member;
use halyard_server::Server;
use tokio::sync::Notify;

/// `halyard serve` options for operating the member.
#[derive(clap::Args, Clone, Debug)]
pub struct OpsArgs {
    /// Control socket that `ovs-appctl -t PATH` talks to (default: DATA_DIR/halyard.ctl).
    #[arg(long, value_name = "PATH")]
    pub unixctl: Option<PathBuf>,
    /// Serve `/metrics` (Prometheus) and `/health` on this HOST:PORT (off by default).
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// `/health` answers 503 when this member's applied index is more than this many entries
    /// behind the leader's log.
    #[arg(long, default_value_t = crate::http::DEFAULT_HEALTH_MAX_LAG, value_name = "ENTRIES")]
    pub health_max_lag: u64,
}

/// What the operations endpoints need from the running member.
pub struct Ops {
    pub member: Arc<Member>,
    pub server: Arc<Server>,
    pub health_max_lag: u64,
    /// Set by the control socket's `exit` (and after `cluster/leave`).
    pub exit: Notify,
    pub unixctl_path: PathBuf,
    /// `ovsdb-server/memory-trim-on-compaction`: return free memory to the system after each
    /// snapshot (off by default, as in ovsdb-server).
    pub trim_on_compaction: std::sync::atomic::AtomicBool,
}

impl Ops {
    /// Starts the control socket (always) and the HTTP endpoint (with `--http`), and makes the
    /// member's status report the front end's connection count.
    pub async fn start(
        member: Arc<Member>,
        server: Arc<Server>,
        data_dir: &Path,
        args: &OpsArgs,
    ) -> Result<Arc<Ops>> {
        let unixctl_path = args
            .unixctl
            .clone()
            .unwrap_or_else(|| data_dir.join("halyard.ctl"));
        let prometheus = match &args.http {
            Some(_) => Some(crate::metrics::install()?),
            None => None,
        };
        let ops = Arc::new(Ops {
            member: member.clone(),
            server: server.clone(),
            health_max_lag: args.health_max_lag,
            exit: Notify::new(),
            unixctl_path: unixctl_path.clone(),
            trim_on_compaction: std::sync::atomic::AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&ops);
        member.set_status_extra(Arc::new(move || match weak.upgrade() {
            Some(ops) => serde_json::json!({
                "connections": ops.server.session_count(),
                "monitors": ops.server.stats().monitors,
                "remotes": ops.server.remotes(),
                "version": env!("CARGO_PKG_VERSION"),
            }),
            None => serde_json::json!({}),
        }));
        match crate::unixctl::listen(ops.clone(), &unixctl_path).await {
            Ok(()) => {}
            // An explicit --unixctl must work; the default one (DATA_DIR/halyard.ctl) may not
            // fit a Unix socket path (108 bytes) or may be taken, which must not stop a member
            // from serving.
            Err(e) if args.unixctl.is_none() => tracing::warn!(
                path = %unixctl_path.display(),
                "no control socket (give --unixctl PATH): {e}"
            ),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot open the control socket {}", unixctl_path.display())
                })
            }
        }
        if let (Some(addr), Some(prometheus)) = (&args.http, prometheus) {
            crate::http::serve(ops.clone(), prometheus, addr)
                .await
                .with_context(|| format!("cannot serve HTTP on {addr}"))?;
        }
        crate::metrics::watch_member(member, Arc::new(move || server.stats()));
        Ok(ops)
    }

    /// Resolves once `exit` was asked for on the control socket.
    pub async fn exit_requested(&self) {
        self.exit.notified().await
    }

    /// Removes the control socket file (on shutdown).
    pub fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.unixctl_path);
    }
}
