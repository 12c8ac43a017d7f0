//! The command line: `create-cluster`, `serve`, and the cluster commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use halyard_raft::{Member, MemberConfig};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "halyard",
    version,
    about = "An OVSDB server for OVN, replicated by Raft; every member serves reads and writes.",
    after_help = "Example (one member, then point OVN at it):\n  \
        halyard create-cluster --data-dir /var/lib/halyard/nb --schema /usr/share/ovn/ovn-nb.ovsschema --raft-addr 127.0.0.1:6643\n  \
        halyard serve --data-dir /var/lib/halyard/nb --remote ptcp:6641:127.0.0.1 --remote punix:/run/halyard/nb.sock\n  \
        ovn-nbctl --db=tcp:127.0.0.1:6641 show"
)]
pub struct Cli {
    /// Log filter (tracing-subscriber syntax), e.g. `info`, `halyard_raft=debug`.
    #[arg(
        long,
        global = true,
        env = "HALYARD_LOG",
        default_value = "info,openraft=warn"
    )]
    pub log: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Prepare DATA_DIR as the first member of a new cluster serving the given schema(s).
    ///
    /// Like `ovsdb-tool create-cluster`, this only writes the data directory; the cluster is
    /// bootstrapped when `halyard serve` first starts on it.
    #[command(
        after_help = "Example:\n  halyard create-cluster --data-dir /var/lib/halyard/nb \\\n    \
        --schema /usr/share/ovn/ovn-nb.ovsschema --raft-addr 10.0.0.1:6643"
    )]
    CreateCluster {
        /// Directory for this member's durable state (created if missing; must not hold a member).
        #[arg(long)]
        data_dir: PathBuf,
        /// An .ovsschema file; repeat to serve several databases from one cluster.
        #[arg(long, required_unless_present = "from")]
        schema: Vec<PathBuf>,
        /// An ovsdb-server database file (standalone or clustered) whose schema and rows the
        /// new cluster starts with; repeat for several databases. See `halyard backup`.
        #[arg(long, value_name = "FILE")]
        from: Vec<PathBuf>,
        /// HOST:PORT other members use to reach this one for Raft (not a client port);
        /// `ssl:HOST:PORT` for TLS between members (then every member must use ssl:).
        #[arg(long)]
        raft_addr: String,
    },
    /// Prepare DATA_DIR for a member that joins an existing cluster through any of its members.
    ///
    /// Like `ovsdb-tool join-cluster`, this returns at once; the member asks to be added when
    /// `halyard serve` starts on it, catches up (from a snapshot if needed) as a non-voting
    /// learner, then becomes a voter. `serve` logs the progress. With `--non-voting` it stays
    /// a non-voting member: it replicates the log and serves clients like any member (reads,
    /// monitors, forwarded writes) but is not part of the quorum (`halyard promote` makes it a
    /// voter later).
    #[command(
        after_help = "Example:\n  halyard join-cluster --data-dir /var/lib/halyard/nb \\\n    \
        --raft-addr 10.0.0.2:6643 --peer 10.0.0.1:6643"
    )]
    JoinCluster {
        #[arg(long)]
        data_dir: PathBuf,
        /// HOST:PORT other members use to reach this one for Raft (`ssl:HOST:PORT` for TLS).
        #[arg(long)]
        raft_addr: String,
        /// Raft address of an existing member (any; repeat to give several), ssl: if the
        /// cluster's are.
        #[arg(long = "peer", required = true)]
        peers: Vec<String>,
        /// Join as a non-voting member (serves clients, does not vote).
        #[arg(long)]
        non_voting: bool,
    },
    /// Show every member of the cluster: role, term, leader, indexes, lag, health.
    ///
    /// Exit status: 0 healthy, 2 degraded (a member is down or lagging but the cluster has a
    /// quorum), 3 unhealthy (no leader or quorum, or a member named with --remote/--control is
    /// unhealthy), 1 if no member could be asked.
    #[command(
        after_help = "Examples:\n  halyard status --remote tcp:10.0.0.1:6643\n  \
        halyard status --control /var/lib/halyard/nb/halyard.ctl --json\n  halyard status --remote tcp:10.0.0.1:6643 --watch"
    )]
    Status(crate::status::StatusArgs),
    /// Write a database to an ovsdb-server standalone database file (like `ovsdb-client backup`).
    #[command(
        after_help = "Example:\n  halyard backup --remote tcp:10.0.0.1:6641 > nb-backup.db\n  \
        ovsdb-tool db-name nb-backup.db"
    )]
    Backup(crate::backup::BackupArgs),
    /// Remove the member at PEER from its cluster (a leader hands leadership over first).
    #[command(after_help = "Example:\n  halyard leave --peer 10.0.0.3:6643")]
    Leave {
        /// Raft HOST:PORT of the member that leaves (or its client address, tcp:HOST:PORT or unix:PATH).
        #[arg(long)]
        peer: String,
    },
    /// Remove MEMBER (id prefix, server id prefix or Raft address) from the cluster, e.g. a dead one.
    #[command(
        after_help = "Example:\n  halyard kick --peer 10.0.0.1:6643 10.0.0.3:6643\n  halyard kick --peer 10.0.0.1:6643 3f2a"
    )]
    Kick {
        /// Raft HOST:PORT of any live member (or its client address, tcp:HOST:PORT or unix:PATH).
        #[arg(long)]
        peer: String,
        member: String,
    },
    /// Make the non-voting MEMBER (id prefix, server id prefix or Raft address) a voter.
    #[command(after_help = "Example:\n  halyard promote --peer 10.0.0.1:6643 10.0.0.4:6643")]
    Promote {
        /// Raft HOST:PORT of any live member.
        #[arg(long)]
        peer: String,
        member: String,
    },
    /// Make MEMBER (or, without it, another up-to-date member) the leader.
    #[command(
        after_help = "Example:\n  halyard transfer-leadership --peer 10.0.0.1:6643 10.0.0.2:6643"
    )]
    TransferLeadership {
        /// Raft HOST:PORT of any live member (or its client address, tcp:HOST:PORT or unix:PATH).
        #[arg(long)]
        peer: String,
        member: Option<String>,
    },
    /// Run a member: serve OVSDB clients on the given remotes and take part in Raft.
    #[command(
        after_help = "Example:\n  halyard serve --data-dir /var/lib/halyard/nb \\\n    \
        --remote ptcp:6641:0.0.0.0 --remote punix:/run/halyard/nb.sock"
    )]
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        /// Where clients connect: `ptcp:PORT[:IP]`, `pssl:PORT[:IP]` or `punix:PATH`; repeat
        /// for several.
        #[arg(long = "remote", required = true)]
        remotes: Vec<String>,
        /// Election timeout in milliseconds (ovsdb-server's --election-timer).
        #[arg(long, default_value_t = halyard_raft::config::DEFAULT_ELECTION_TIMEOUT_MS)]
        election_timer: u64,
        /// How long a write waits for a leader to commit it before it is answered with the
        /// retryable "timed out" error (milliseconds).
        #[arg(long, default_value_t = halyard_raft::config::DEFAULT_WRITE_WAIT.as_millis() as u64)]
        write_wait_ms: u64,
        /// Build a snapshot (and compact the log) every N applied entries, plus a random share
        /// of up to half of N drawn at start, so that members do not all build at once.
        #[arg(long, default_value_t = halyard_raft::config::DEFAULT_SNAPSHOT_EVERY)]
        snapshot_every: u64,
        /// Log entries kept behind each snapshot, so that a member only slightly behind catches
        /// up from the log; one further behind is sent the snapshot.
        #[arg(long, default_value_t = halyard_raft::config::DEFAULT_LOG_KEPT_BEHIND_SNAPSHOT)]
        log_kept_behind_snapshot: u64,
        /// If the end of the Raft log on disk is damaged (a torn write), truncate it back to the
        /// last good entry instead of refusing to start. Entries after it are lost on this
        /// member (other members still have them; a single member loses them for good).
        #[arg(long)]
        repair_log_tail: bool,
        /// Worker threads of the member's Raft runtime (openraft, replication, the peer service,
        /// applying), apart from the client sessions'. One is fastest for small transactions; a
        /// second helps loads of multi-megabyte transactions on a machine with cores to spare.
        #[arg(long, default_value_t = halyard_raft::config::RAFT_RUNTIME_THREADS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
        raft_threads: u16,
        /// BROKEN ON PURPOSE, for the fault suite only: acknowledge writes from a dry run
        /// without committing them, so the suite can show that its checker catches lost writes.
        #[arg(long, hide = true)]
        unsafe_ack_before_commit: bool,
        /// TESTS ONLY: bytes of commands in one Raft log entry (default 1 MiB), to write logs
        /// with the huge entries of earlier releases.
        #[arg(long, hide = true, default_value_t = halyard_raft::config::MAX_ENTRY_BYTES)]
        max_entry_bytes: usize,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        ops: crate::ops::OpsArgs,
    },
}

/// ovsdb-server's SSL options: for `serve` (`pssl:` remotes, `ssl:` Raft addresses) and for
/// the commands that talk to members at `ssl:` Raft addresses (`status`, `leave`, `kick`,
/// `transfer-leadership`) or to an `ssl:` client remote (`backup`).
#[derive(clap::Args)]
#[command(next_help_heading = "TLS (ovsdb-server's SSL options)")]
#[derive(Default)]
pub struct TlsArgs {
    /// PEM private key (as `ovs-pki` writes NAME-privkey.pem) for pssl: remotes and ssl: Raft.
    #[arg(long, short = 'p', value_name = "FILE", global = true)]
    pub(crate) private_key: Option<PathBuf>,
    /// PEM certificate for the private key (NAME-cert.pem), signed by the CA peers trust.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub(crate) certificate: Option<PathBuf>,
    /// PEM CA certificate clients and members must be signed by (e.g. switchca/cacert.pem).
    #[arg(long = "ca-cert", short = 'C', value_name = "FILE", global = true)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// TLS versions to allow, e.g. `TLSv1.2,TLSv1.3` (TLSv1 and TLSv1.1 are not supported).
    #[arg(long, value_name = "PROTOCOLS", global = true)]
    pub(crate) ssl_protocols: Option<String>,
    /// OpenSSL cipher string selecting TLS 1.2 suites, e.g. `HIGH:!aNULL:!MD5`.
    #[arg(long, value_name = "CIPHERS", global = true)]
    pub(crate) ssl_ciphers: Option<String>,
    /// Not supported: give the CA certificate with --ca-cert.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) bootstrap_ca_cert: Option<PathBuf>,
}

impl TlsArgs {
    /// The options given as `db:DB,TABLE,COLUMN` (with the others as given), if any is: `serve`
    /// follows them in the database (see `halyard_server::remotes::DbTlsOptions`).
    pub(crate) fn db_options(&self) -> Result<Option<halyard_server::remotes::DbTlsOptions>> {
        let parse = |v: Option<String>| -> Result<Option<halyard_server::remotes::OptionValue>> {
            v.map(|v| halyard_server::remotes::OptionValue::parse(&v))
                .transpose()
                .map_err(Into::into)
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        let opts = halyard_server::remotes::DbTlsOptions {
            private_key: parse(path(&self.private_key))?,
            certificate: parse(path(&self.certificate))?,
            ca_cert: parse(path(&self.ca_cert))?,
            protocols: parse(self.ssl_protocols.clone())?,
            ciphers: parse(self.ssl_ciphers.clone())?,
        };
        let any_db = [
            &opts.private_key,
            &opts.certificate,
            &opts.ca_cert,
            &opts.protocols,
            &opts.ciphers,
        ]
        .iter()
        .any(|o| o.as_ref().is_some_and(|o| o.is_db()));
        Ok(any_db.then_some(opts))
    }

    /// The command line's own settings: key, certificate and CA given as files (a `db:`
    /// protocols or ciphers option is left to the database, see [`TlsArgs::db_options`]).
    pub(crate) fn file_settings(&self) -> Result<Option<halyard_server::TlsSettings>> {
        let is_db = |v: Option<String>| v.is_some_and(|v| v.starts_with("db:"));
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        if is_db(path(&self.private_key))
            || is_db(path(&self.certificate))
            || is_db(path(&self.ca_cert))
        {
            return Ok(None);
        }
        let mut files = TlsArgs {
            private_key: self.private_key.clone(),
            certificate: self.certificate.clone(),
            ca_cert: self.ca_cert.clone(),
            ssl_protocols: self.ssl_protocols.clone().filter(|v| !v.starts_with("db:")),
            ssl_ciphers: self.ssl_ciphers.clone().filter(|v| !v.starts_with("db:")),
            bootstrap_ca_cert: self.bootstrap_ca_cert.clone(),
        };
        if files.private_key.is_none() && files.certificate.is_none() && files.ca_cert.is_none() {
            // Only db: protocols/ciphers (what ovn-ctl passes without certificates): no TLS.
            files.ssl_protocols = None;
            files.ssl_ciphers = None;
        }
        files.settings()
    }

    /// The settings, if any TLS option was given; all three files are needed together.
    fn settings(&self) -> Result<Option<halyard_server::TlsSettings>> {
        if let Some(p) = &self.bootstrap_ca_cert {
            bail!(
                "--bootstrap-ca-cert {}: not supported by Halyard; copy the CA certificate to \
                 the member and give it with --ca-cert",
                p.display()
            );
        }
        let given = [
            self.private_key.is_some(),
            self.certificate.is_some(),
            self.ca_cert.is_some(),
        ];
        if given.iter().all(|g| !g) {
            if self.ssl_protocols.is_some() || self.ssl_ciphers.is_some() {
                bail!("--ssl-protocols and --ssl-ciphers need --private-key, --certificate and --ca-cert");
            }
            return Ok(None);
        }
        let (Some(private_key), Some(certificate), Some(ca_cert)) = (
            self.private_key.clone(),
            self.certificate.clone(),
            self.ca_cert.clone(),
        ) else {
            bail!("TLS needs all of --private-key, --certificate and --ca-cert");
        };
        Ok(Some(halyard_server::TlsSettings {
            private_key,
            certificate,
            ca_cert,
            protocols: self.ssl_protocols.clone(),
            ciphers: self.ssl_ciphers.clone(),
        }))
    }
}

/// The front end's TLS loader as the member-to-member transport asks for it.
struct PeerTlsFromLoader(Arc<halyard_server::TlsLoader>);

impl halyard_raft::PeerTls for PeerTlsFromLoader {
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.0.server_config()
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.0.client_config()
    }
}

/// `serve`'s operator options at their defaults, for runs not started by `halyard serve`.
#[derive(Parser)]
struct ServeDefaults {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    ops: crate::ops::OpsArgs,
}

/// The front-end and operations options `halyard serve` runs with when none is given.
pub(crate) fn serve_defaults() -> (ServerArgs, crate::ops::OpsArgs) {
    let d = ServeDefaults::parse_from(["halyard"]);
    (d.server, d.ops)
}

/// Front-end limits (defaults documented in halyard-server's config module).
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Largest JSON-RPC message accepted from a client, in bytes; a larger one closes the connection.
    #[arg(long, default_value_t = halyard_server::framing::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_bytes: usize,
    /// Disconnect a client whose unsent output (replies and monitor updates) exceeds this many bytes.
    #[arg(long, default_value_t = halyard_server::config::DEFAULT_BACKLOG_LIMIT)]
    backlog_limit_bytes: usize,
    /// Bytes all clients together may have sent in messages not yet complete; the connection
    /// whose data would pass it is closed.
    #[arg(long, default_value_t = halyard_server::config::DEFAULT_INPUT_LIMIT)]
    max_input_bytes: usize,
    /// Most client connections held at once.
    #[arg(long, default_value_t = halyard_server::config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Idle time in ms before an echo probe is sent to a TCP client (0 disables; minimum 1000).
    #[arg(long, default_value_t = halyard_server::config::DEFAULT_PROBE_INTERVAL.as_millis() as u64)]
    inactivity_probe: u64,
    /// Report the true Raft role in `_Server.leader` (as ovsdb-server does) instead of
    /// `true` on every connected member. Leader-only clients then refuse followers.
    #[arg(long)]
    strict_leader: bool,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    crate::vlog::init(&cli.log)?;
    let tls = cli.tls.settings()?;
    // The commands that dial members use the same files as `serve`.
    let dial_tls = |tls: Option<halyard_server::TlsSettings>| -> Result<()> {
        if let Some(settings) = tls {
            let loader = halyard_server::TlsLoader::new(settings).context("TLS settings")?;
            halyard_raft::set_peer_tls(Arc::new(PeerTlsFromLoader(loader)));
        }
        Ok(())
    };
    match cli.command {
        Command::CreateCluster {
            data_dir,
            schema,
            from,
            raft_addr,
        } => create_cluster(&data_dir, &schema, &from, &raft_addr),
        Command::Status(args) => {
            dial_tls(tls)?;
            crate::status::run(args)
        }
        Command::Backup(args) => crate::backup::run(args, tls),
        Command::JoinCluster {
            data_dir,
            raft_addr,
            peers,
            non_voting,
        } => {
            check_raft_addr(&raft_addr)?;
            for p in &peers {
                check_raft_addr(p).context("--peer")?;
            }
            halyard_raft::check_same_transport(&raft_addr, peers.iter().map(String::as_str))
                .map_err(|e| anyhow::anyhow!("--raft-addr and --peer: {e}"))?;
            let id = if non_voting {
                Member::join_cluster_non_voting(&data_dir, &raft_addr, &peers)?
            } else {
                Member::join_cluster(&data_dir, &raft_addr, &peers)?
            };
            println!(
                "prepared {} to join through {}: member {} at {}; it joins when `halyard serve --data-dir {}` starts",
                data_dir.display(),
                peers.join(", "),
                id.server_id,
                raft_addr,
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Leave { peer } => {
            dial_tls(tls)?;
            admin(async move {
                let peer = crate::status::member_address(&peer).await?;
                crate::admin::leave(&peer).await
            })
        }
        Command::Kick { peer, member } => {
            dial_tls(tls)?;
            admin(async move {
                let peer = crate::status::member_address(&peer).await?;
                crate::admin::kick(&peer, &member).await
            })
        }
        Command::Promote { peer, member } => {
            dial_tls(tls)?;
            admin(crate::admin::promote(&peer, &member))
        }
        Command::TransferLeadership { peer, member } => {
            dial_tls(tls)?;
            admin(async move {
                let peer = crate::status::member_address(&peer).await?;
                crate::admin::transfer(&peer, member.as_deref()).await
            })
        }
        Command::Serve {
            data_dir,
            remotes,
            election_timer,
            write_wait_ms,
            snapshot_every,
            log_kept_behind_snapshot,
            repair_log_tail,
            raft_threads,
            unsafe_ack_before_commit,
            max_entry_bytes,
            server,
            ops,
        } => {
            if unsafe_ack_before_commit {
                tracing::warn!("--unsafe-ack-before-commit: writes are acknowledged WITHOUT being committed (fault-suite test mode)");
            }
            let config = MemberConfig {
                election_timeout_ms: election_timer,
                write_wait: std::time::Duration::from_millis(write_wait_ms),
                heartbeat_ms: halyard_raft::config::heartbeat_for(election_timer),
                snapshot_every,
                log_kept_behind_snapshot,
                repair_log_tail,
                raft_threads: raft_threads.into(),
                unsafe_ack_before_commit,
                max_entry_bytes,
                ..MemberConfig::default()
            };
            let rt = crate::trim::runtime_builder(None).build()?;
            let _ = tls;
            let tls = cli.tls.file_settings()?;
            let tls_from_db = cli.tls.db_options()?;
            rt.block_on(serve(
                &data_dir,
                remotes,
                config,
                server,
                (tls, tls_from_db),
                ops,
                Box::new(|_| {}),
            ))
        }
    }
}

fn admin(f: impl std::future::Future<Output = Result<String>>) -> Result<ExitCode> {
    let message = tokio::runtime::Runtime::new()?.block_on(f)?;
    if !message.is_empty() {
        println!("{message}");
    }
    Ok(ExitCode::SUCCESS)
}

fn read_schema(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema {}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    ovsdb::DatabaseSchema::from_json(&json)
        .with_context(|| format!("{} is not a valid OVSDB schema", path.display()))?;
    Ok(json)
}

fn check_raft_addr(addr: &str) -> Result<()> {
    let (_, host_port) = halyard_raft::split_addr(addr);
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => bail!(
            "--raft-addr must be HOST:PORT, tcp:HOST:PORT or ssl:HOST:PORT (for example \
             ssl:10.0.0.1:6643), not {addr:?}"
        ),
    }
}

fn create_cluster(
    data_dir: &Path,
    schemas: &[PathBuf],
    from: &[PathBuf],
    raft_addr: &str,
) -> Result<ExitCode> {
    check_raft_addr(raft_addr)?;
    let mut schemas = schemas
        .iter()
        .map(|p| read_schema(p))
        .collect::<Result<Vec<_>>>()?;
    let imports = crate::migrate::read_files(from)?;
    schemas.extend(imports.iter().map(|i| i.0.clone()));
    let id = Member::create_cluster(data_dir, &schemas, raft_addr)?;
    crate::migrate::stage(data_dir, imports)?;
    println!(
        "created cluster {} in {}: member {} at {}; start it with `halyard serve --data-dir {} --remote ptcp:PORT`",
        id.cluster_id,
        data_dir.display(),
        id.server_id,
        raft_addr,
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs a member until it is told to stop; `ready` is called once the control socket listens
/// and every command-line remote is bound.
pub(crate) async fn serve(
    data_dir: &Path,
    remotes: Vec<String>,
    config: MemberConfig,
    args: ServerArgs,
    (tls, tls_from_db): (
        Option<halyard_server::TlsSettings>,
        Option<halyard_server::remotes::DbTlsOptions>,
    ),
    ops_args: crate::ops::OpsArgs,
    ready: Box<dyn FnOnce(Arc<Member>) + Send>,
) -> Result<ExitCode> {
    crate::hangup::log_sender_of_sighup();
    let tls = match tls {
        Some(settings) => {
            let loader = halyard_server::TlsLoader::new(settings).context("TLS settings")?;
            halyard_raft::set_peer_tls(Arc::new(PeerTlsFromLoader(loader.clone())));
            Some(loader)
        }
        None => None,
    };
    let raft_runtime = RaftRuntime::new(config.raft_threads)?;
    let member = raft_runtime
        .spawn(Member::start(data_dir.to_path_buf(), config))
        .await
        .context("the member's runtime stopped while the member started")?;
    let member = member.map_err(|e| {
        // The storage error says a repair option exists; name the flag that sets it.
        let hint = match &e {
            halyard_raft::MemberError::Storage(halyard_storage::StorageError::CorruptLogTail { .. }) => {
                " (`halyard serve --repair-log-tail ...` truncates the log back to the last good entry)"
            }
            halyard_raft::MemberError::Storage(halyard_storage::StorageError::LostCommittedEntries { .. }) => {
                " (`halyard serve --repair-log-tail ...` accepts the loss; the member then catches up from its peers)"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot start the member in {}: {e}{hint}", data_dir.display())
    })?;
    tracing::info!(
        cluster = %member.identity().cluster_id,
        server = %member.identity().server_id,
        "member started"
    );
    // From here: opening the store and reloading the state block the runtime by design, and
    // are logged as the start's own steps.
    crate::stall::spawn(raft_runtime.handle()).context("starting the Raft runtime's watchdog")?;
    crate::migrate::apply_staged(&member, data_dir).await?;
    let backend = crate::backend::MemberBackend::new(member.clone(), args.strict_leader);
    let server_config = halyard_server::config::ServerConfig {
        max_message_size: args.max_message_bytes,
        backlog_limit: args.backlog_limit_bytes,
        max_connections: args.max_connections,
        input_limit: args.max_input_bytes,
        tls,
        tls_from_db,
        ..Default::default()
    }
    .with_probe_interval_ms(args.inactivity_probe);
    let server = Arc::new(halyard_server::Server::new(
        Arc::new(backend),
        server_config,
    )?);
    let ops = crate::ops::Ops::start(member.clone(), server.clone(), data_dir, &ops_args).await?;
    crate::trim::spawn(ops.clone());
    tokio::select! {
        r = server.run_notify(remotes, {
            let member = member.clone();
            move || ready(member)
        }) => r.context("serving clients")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        _ = terminate() => tracing::info!("terminated; shutting down"),
        _ = ops.exit_requested() => tracing::info!("exit requested on the control socket; shutting down"),
    }
    ops.cleanup();
    member.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The runtime a member's Raft work runs on, apart from the client sessions' (see
/// `halyard_raft::config::RAFT_RUNTIME_THREADS`). Everything the member spawns while it starts
/// (openraft, the peer service, its background tasks) stays on it.
struct RaftRuntime(Option<tokio::runtime::Runtime>);

impl RaftRuntime {
    fn new(threads: usize) -> Result<RaftRuntime> {
        let rt = crate::trim::runtime_builder(Some(threads))
            .thread_name("raft")
            .build()
            .context("starting the member's runtime")?;
        Ok(RaftRuntime(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("running").handle()
    }

    fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.as_ref().expect("running").spawn(f)
    }
}

impl Drop for RaftRuntime {
    fn drop(&mut self) {
        // Dropped inside the sessions' runtime, where blocking on its tasks is not allowed; the
        // member was shut down (or never started) by then.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
