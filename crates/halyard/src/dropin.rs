//! `halyard` started under the name `ovsdb-server`: ovsdb-server's command line, so that a
//! symlink `ovsdb-server -> halyard` first on PATH is the whole switch for scripts such as
//! OVN's `ovn-ctl` (docs/replacing-ovsdb-server.md).
//!
//! The database file on the command line is the one `ovsdb-tool create-cluster` or
//! `ovsdb-tool join-cluster` wrote (or a standalone database). Halyard reads its header once,
//! keeps its own state in `FILE.halyard/` beside it, and never writes the file, so the
//! `ovsdb-tool` commands that read the header keep answering. The daemon options follow OVS
//! `lib/daemon-unix.c`: `--detach` returns once the member serves (pidfile written, remotes
//! bound), `--monitor` restarts a crashed server.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use halyard_raft::{Member, MemberConfig};
use serde_json::Value;
use uuid::Uuid;

use crate::cli::TlsArgs;

/// The release of ovsdb-server whose command line this reproduces (as `version` answers).
const OVSDB_SERVER_VERSION: &str = "3.1.0";

/// The Raft address of a member made from a standalone database file: a one-member cluster
/// that nobody joins, so any free local port does.
const STANDALONE_RAFT_ADDR: &str = "tcp:127.0.0.1:0";

/// `--monitor`: a server that crashes sooner than this after its start is restarted only once
/// this much time has passed since that start (OVS waits 10 s too), so a crash loop does not
/// spin.
const MONITOR_RESTART_INTERVAL: Duration = Duration::from_secs(10);

/// `--detach`: how long a started member may wait to hear its leader before the starter is
/// told it runs (see `run`): long enough for a restarted member to be reached again after a
/// failover, short enough that a whole cluster started one member at a time is not held up.
const READY_WAIT_FOR_LEADER: Duration = Duration::from_secs(5);

/// Beside the database file: the sub-directory holding this member's Halyard state.
const DATA_DIR_SUFFIX: &str = ".halyard";

/// In the data directory: which file (and which server id in it) the member was made from.
const SOURCE_FILE: &str = "ovsdb-file.json";

/// Is `argv0` (the name the process was started under) `ovsdb-server`?
pub fn invoked_as_ovsdb_server(argv0: &OsString) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "ovsdb-server")
}

/// What the command line asked for.
#[derive(Default, Debug)]
struct Options {
    files: Vec<PathBuf>,
    remotes: Vec<String>,
    private_key: Option<PathBuf>,
    certificate: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    ssl_protocols: Option<String>,
    ssl_ciphers: Option<String>,
    bootstrap_ca_cert: Option<PathBuf>,
    /// `--pidfile` without a name: Some(None).
    pidfile: Option<Option<PathBuf>>,
    overwrite_pidfile: bool,
    detach: bool,
    monitor: bool,
    no_chdir: bool,
    log_file: Option<Option<PathBuf>>,
    unixctl: Option<PathBuf>,
    user: Option<String>,
    verbose: Vec<String>,
    help: bool,
    version: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Arg {
    None,
    Required,
    Optional,
}

/// ovsdb-server's long options that Halyard accepts, with their argument kind.
const LONG: &[(&str, Arg)] = &[
    ("remote", Arg::Required),
    ("private-key", Arg::Required),
    ("certificate", Arg::Required),
    ("ca-cert", Arg::Required),
    ("bootstrap-ca-cert", Arg::Required),
    ("ssl-protocols", Arg::Required),
    ("ssl-ciphers", Arg::Required),
    ("pidfile", Arg::Optional),
    ("overwrite-pidfile", Arg::None),
    ("detach", Arg::None),
    ("monitor", Arg::None),
    ("no-chdir", Arg::None),
    ("user", Arg::Required),
    ("log-file", Arg::Optional),
    ("verbose", Arg::Optional),
    ("unixctl", Arg::Required),
    ("disable-file-column-diff", Arg::None),
    ("help", Arg::None),
    ("version", Arg::None),
];

/// ovsdb-server options Halyard refuses, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("sync-from", "active-backup replication is not supported: every Halyard member of a cluster serves reads and writes"),
    ("sync-exclude-tables", "active-backup replication is not supported"),
    ("active", "active-backup replication is not supported"),
    ("run", "not supported"),
    ("record", "replay files are not supported"),
    ("replay", "replay files are not supported"),
    ("syslog-method", "Halyard logs to its log file or stderr only"),
    ("syslog-target", "Halyard logs to its log file or stderr only"),
    ("peer-ca-cert", "not supported; give the CA certificate with --ca-cert"),
    ("config-file", "not supported; give the options on the command line"),
];

#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("unrecognized option '{0}' (use --help for help)")]
    Unknown(String),
    #[error("option '--{0}' requires an argument")]
    MissingArgument(String),
    #[error("option '--{0}' doesn't allow an argument")]
    UnexpectedArgument(String),
    #[error("option '--{0}': {1}")]
    Unsupported(String, &'static str),
}

fn parse(args: &[String]) -> Result<Options, UsageError> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            o.files.extend(args[i..].iter().map(PathBuf::from));
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == name) {
                return Err(UsageError::Unsupported(name.into(), why));
            }
            let Some((_, kind)) = LONG.iter().find(|(n, _)| *n == name) else {
                return Err(UsageError::Unknown(arg.clone()));
            };
            let value = match (kind, inline) {
                (Arg::None, Some(_)) => return Err(UsageError::UnexpectedArgument(name.into())),
                (Arg::None, None) => None,
                (Arg::Optional, v) => v,
                (Arg::Required, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    let Some(v) = args.get(i) else {
                        return Err(UsageError::MissingArgument(name.into()));
                    };
                    i += 1;
                    Some(v.clone())
                }
            };
            apply(&mut o, name, value);
        } else if arg.len() > 1 && arg.starts_with('-') {
            // Short options: -v takes its argument attached only; -p/-c/-C attached or next.
            let flag = &arg[1..2];
            let rest = &arg[2..];
            let long = match flag {
                "v" => "verbose",
                "p" => "private-key",
                "c" => "certificate",
                "C" => "ca-cert",
                "h" => "help",
                "V" => "version",
                _ => return Err(UsageError::Unknown(arg.clone())),
            };
            let value = match flag {
                "v" => (!rest.is_empty()).then(|| rest.to_string()),
                "h" | "V" if !rest.is_empty() => return Err(UsageError::Unknown(arg.clone())),
                "h" | "V" => None,
                _ if !rest.is_empty() => Some(rest.to_string()),
                _ => {
                    let Some(v) = args.get(i) else {
                        return Err(UsageError::MissingArgument(long.into()));
                    };
                    i += 1;
                    Some(v.clone())
                }
            };
            apply(&mut o, long, value);
        } else {
            o.files.push(PathBuf::from(arg));
        }
    }
    Ok(o)
}

fn apply(o: &mut Options, name: &str, value: Option<String>) {
    let path = |v: &Option<String>| v.as_ref().map(PathBuf::from);
    match name {
        "remote" => o.remotes.extend(value),
        "private-key" => o.private_key = path(&value),
        "certificate" => o.certificate = path(&value),
        "ca-cert" => o.ca_cert = path(&value),
        "bootstrap-ca-cert" => o.bootstrap_ca_cert = path(&value),
        "ssl-protocols" => o.ssl_protocols = value,
        "ssl-ciphers" => o.ssl_ciphers = value,
        "pidfile" => o.pidfile = Some(path(&value)),
        "overwrite-pidfile" => o.overwrite_pidfile = true,
        "detach" => o.detach = true,
        "monitor" => o.monitor = true,
        "no-chdir" => o.no_chdir = true,
        "user" => o.user = value,
        "log-file" => o.log_file = Some(path(&value)),
        "verbose" => o.verbose.push(value.unwrap_or_default()),
        "unixctl" => o.unixctl = path(&value),
        // Halyard does not write ovsdb-server's file format, so there is no column diff to turn off.
        "disable-file-column-diff" => {}
        "help" => o.help = true,
        "version" => o.version = true,
        _ => unreachable!("every option in LONG is applied"),
    }
}

fn rundir() -> PathBuf {
    std::env::var_os("OVS_RUNDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/openvswitch"))
}

fn logdir() -> PathBuf {
    std::env::var_os("OVS_LOGDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/log/openvswitch"))
}

fn default_db() -> PathBuf {
    std::env::var_os("OVS_DBDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/openvswitch"))
        .join("conf.db")
}

fn help() -> String {
    format!(
        "ovsdb-server: Open vSwitch database server (Halyard {halyard}, replicated by Raft)
usage: ovsdb-server [OPTIONS] DATABASE
where DATABASE is a database file made by ovsdb-tool (create-cluster, join-cluster, or
create for a standalone database); Halyard keeps its own state in DATABASE.halyard/.
The default DATABASE, if none is given, is
{db}.

JSON-RPC options (may be specified any number of times):
  --remote=REMOTE         listen to REMOTE

Passive JSON-RPC connection methods:
  ptcp:PORT[:IP]          listen to TCP PORT on IP
  pssl:PORT[:IP]          listen for SSL on PORT on IP
  punix:FILE              listen on Unix domain socket FILE
  db:DB,TABLE,COLUMN      listen on the remotes named in the database
PKI configuration (required to use SSL):
  -p, --private-key=FILE  file with private key
  -c, --certificate=FILE  file with certificate for private key
  -C, --ca-cert=FILE      file with peer CA certificate
SSL options:
  --ssl-protocols=PROTOS  list of SSL protocols to enable
  --ssl-ciphers=CIPHERS   list of SSL ciphers to enable

Daemon options:
  --detach                run in background as daemon
  --monitor               creates a process to monitor this daemon
  --user=username[:group] changes the effective daemon user:group
  --no-chdir              do not chdir to '/'
  --pidfile[=FILE]        create pidfile (default: {run}/ovsdb-server.pid)
  --overwrite-pidfile     with --pidfile, start even if already running

Logging options:
  -vSPEC, --verbose=SPEC   set logging levels
  -v, --verbose            set maximum verbosity level
  --log-file[=FILE]        enable logging to specified FILE
                           (default: {log}/ovsdb-server.log)

Other options:
  --unixctl=SOCKET        override default control socket name
  --disable-file-column-diff
                          accepted for compatibility (Halyard writes no column diffs)
  -h, --help              display this help message
  -V, --version           display version information
",
        halyard = env!("CARGO_PKG_VERSION"),
        db = default_db().display(),
        run = rundir().display(),
        log = logdir().display(),
    )
}

/// Runs `halyard` as `ovsdb-server ARGS...`.
pub fn main(args: Vec<String>) -> ExitCode {
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ovsdb-server: {e}");
            return ExitCode::from(1);
        }
    };
    if opts.help {
        print!("{}", help());
        return ExitCode::SUCCESS;
    }
    if opts.version {
        println!(
            "ovsdb-server (Halyard {}) {OVSDB_SERVER_VERSION}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    match run(opts) {
        Ok(code) => code,
        Err(e) => {
            let text = format!("ovsdb-server: {e:#}");
            daemon::tell_starter(&text);
            eprintln!("{text}");
            ExitCode::from(1)
        }
    }
}

/// A path made absolute against the directory the process was started in (before `--detach`
/// leaves it for `/`).
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// The paths the daemon uses, fixed before it changes directory.
struct Paths {
    db: PathBuf,
    pidfile: Option<PathBuf>,
    log_file: Option<PathBuf>,
    unixctl: Option<PathBuf>,
}

fn run(opts: Options) -> Result<ExitCode> {
    let db = match opts.files.as_slice() {
        [] => default_db(),
        [one] => one.clone(),
        [_, more @ ..] => bail!(
            "{} database files given; Halyard serves one database file per process (start \
             one ovsdb-server per database, as ovn-ctl does)",
            1 + more.len()
        ),
    };
    if db.to_string_lossy().starts_with("relay:") {
        bail!("{}: relay databases are not supported (every Halyard member serves reads and writes itself)", db.display());
    }
    let paths = Paths {
        db: absolute(&db)?,
        pidfile: match &opts.pidfile {
            None => None,
            Some(None) => Some(rundir().join("ovsdb-server.pid")),
            Some(Some(p)) => Some(absolute(p)?),
        },
        log_file: match &opts.log_file {
            None => None,
            Some(None) => Some(logdir().join("ovsdb-server.log")),
            Some(Some(p)) => Some(absolute(p)?),
        },
        unixctl: opts.unixctl.as_deref().map(absolute).transpose()?,
    };
    let tls = TlsArgs {
        private_key: opts.private_key.clone(),
        certificate: opts.certificate.clone(),
        ca_cert: opts.ca_cert.clone(),
        ssl_protocols: opts.ssl_protocols.clone(),
        ssl_ciphers: opts.ssl_ciphers.clone(),
        bootstrap_ca_cert: opts.bootstrap_ca_cert.clone(),
    };
    // Checked before detaching, so that a bad option fails where the operator sees it.
    let file_tls = tls.file_settings()?;
    let db_tls = tls.db_options()?;
    if opts.remotes.is_empty() {
        bail!("no --remote given: Halyard needs at least one (e.g. --remote=punix:/var/run/ovn/ovnnb_db.sock)");
    }
    if let Some(pidfile) = &paths.pidfile {
        check_pidfile(pidfile, opts.overwrite_pidfile)?;
    }
    let log = match &paths.log_file {
        Some(p) => Some(open_log(p)?),
        None => None,
    };
    let filter = log_filter(&opts.verbose, log.is_some())?;
    let user = opts.user.as_deref().map(User::look_up).transpose()?;

    // No thread may exist before this point: fork() keeps only the calling thread.
    let mut daemon = if opts.detach {
        daemon::detach(opts.monitor)?
    } else {
        daemon::Daemon::foreground()
    };
    if let Some(log) = &log {
        // Logs go to the file from the start; a failure to start is also shown on the
        // starter's terminal (see `main`).
        daemon::save_stderr();
        daemon::redirect_stderr(log)?;
    }
    crate::vlog::init(&filter.0)?;
    for spec in &filter.1 {
        crate::vlog::set(spec).map_err(|e| anyhow::anyhow!("-v{spec}: {e}"))?;
    }
    if !filter
        .1
        .iter()
        .any(|s| s.contains("openraft") || s.contains("dbg") || s.contains("debug"))
    {
        // A module-less `-vfile:info` would otherwise let openraft's chatty info lines through.
        let _ = crate::vlog::set("openraft:warn");
    }
    if let Some(user) = &user {
        user.switch()?;
    }
    if !opts.no_chdir && opts.detach {
        std::env::set_current_dir("/").context("cannot change directory to /")?;
    }
    let source = read_source(&paths.db)?;
    let data_dir = prepare(&paths.db, &source)?;
    let unixctl = paths
        .unixctl
        .clone()
        .unwrap_or_else(|| rundir().join(format!("ovsdb-server.{}.ctl", std::process::id())));
    let (server, mut ops) = crate::cli::serve_defaults();
    ops.unixctl = Some(unixctl);
    let config = MemberConfig::default();
    let pidfile = paths.pidfile.clone();
    let pid_guard = PidfileGuard(pidfile.clone());
    let ready = Box::new(move |member: std::sync::Arc<Member>| {
        tokio::spawn(async move {
            // What the starter does next (ovn-ctl: `ovn-nbctl init`, `ovsdb-client wait ...
            // connected`) wants a member in contact with its leader; a member that cannot find
            // one (the rest of its cluster is still down) is reported started anyway.
            let deadline = Instant::now() + READY_WAIT_FOR_LEADER;
            while !member.connected() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Some(p) = &pidfile {
                if let Err(e) = write_pidfile(p) {
                    tracing::error!(pidfile = %p.display(), "cannot write the pidfile: {e}");
                }
            }
            daemon.ready(log.as_ref());
            tracing::info!(
                connected = member.connected(),
                "ovsdb-server started (Halyard)"
            );
        });
    });
    tracing::info!(
        file = %paths.db.display(),
        data_dir = %data_dir.display(),
        "serving the database file as ovsdb-server"
    );
    let rt = crate::trim::runtime_builder(None).build()?;
    let code = rt.block_on(crate::cli::serve(
        &data_dir,
        opts.remotes.clone(),
        config,
        server,
        (file_tls, db_tls),
        ops,
        ready,
    ));
    drop(pid_guard);
    code
}

/// Removes the pidfile when the server stops (as ovsdb-server does at exit).
struct PidfileGuard(Option<PathBuf>);

impl Drop for PidfileGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            // Only our own: a monitor's restarted server may have written its pid since.
            if std::fs::read_to_string(p)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                == Some(std::process::id())
            {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Refuses to start over a pidfile whose process still runs (unless `--overwrite-pidfile`).
fn check_pidfile(path: &Path, overwrite: bool) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(());
    };
    if !overwrite && pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
        bail!(
            "{}: already running as pid {pid}, aborting (--overwrite-pidfile starts anyway)",
            path.display()
        );
    }
    Ok(())
}

/// Writes the pidfile by renaming a complete temporary file over it, so a reader never sees
/// it half written.
fn write_pidfile(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}

/// The base tracing filter and the `-v` specs to apply on top of it. Halyard has one log
/// output: the log file with `--log-file`, stderr without it. A spec naming another
/// destination (`-vconsole:off` next to `--log-file`, any `syslog`) is left out, so
/// ovn-ctl's `-vconsole:off -vfile:info` keeps the file at info.
fn log_filter(specs: &[String], to_file: bool) -> Result<(String, Vec<String>)> {
    let base = std::env::var("HALYARD_LOG").unwrap_or_else(|_| "info,openraft=warn".into());
    let ours = if to_file { "file" } else { "console" };
    let mut kept = Vec::new();
    for spec in specs {
        if spec.is_empty() {
            // Bare -v / --verbose: the most verbose level for every module.
            kept.push("dbg".to_string());
            continue;
        }
        let words: Vec<String> = spec.split(':').map(|w| w.to_ascii_lowercase()).collect();
        let dest = words
            .iter()
            .find(|w| ["console", "syslog", "file", "any"].contains(&w.as_str()));
        if matches!(dest, Some(d) if d != ours && d != "any") {
            continue;
        }
        kept.push(spec.clone());
    }
    Ok((base, kept))
}

/// `--user USER[:GROUP]`, looked up before detaching so a typo fails on the terminal.
struct User {
    name: String,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl User {
    fn look_up(spec: &str) -> Result<User> {
        let (name, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let cname = std::ffi::CString::new(name).context("--user")?;
        // SAFETY: getpwnam returns a pointer to static storage or null; read at once, before
        // any other thread exists.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if pw.is_null() {
            bail!("--user {spec}: no user {name:?}");
        }
        let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        if let Some(group) = group.filter(|g| !g.is_empty()) {
            let cgroup = std::ffi::CString::new(group).context("--user")?;
            // SAFETY: as getpwnam above.
            let gr = unsafe { libc::getgrnam(cgroup.as_ptr()) };
            if gr.is_null() {
                bail!("--user {spec}: no group {group:?}");
            }
            gid = unsafe { (*gr).gr_gid };
        }
        Ok(User {
            name: name.to_string(),
            uid,
            gid,
        })
    }

    /// Becomes the user (and group); a no-op when already running as them.
    fn switch(&self) -> Result<()> {
        // SAFETY: plain system calls on integers.
        unsafe {
            if libc::getuid() == self.uid && libc::getgid() == self.gid {
                return Ok(());
            }
            let cname = std::ffi::CString::new(self.name.clone())?;
            if libc::initgroups(cname.as_ptr(), self.gid) != 0
                || libc::setgid(self.gid) != 0
                || libc::setuid(self.uid) != 0
            {
                bail!(
                    "--user {}: cannot switch to uid {} gid {}: {}",
                    self.name,
                    self.uid,
                    self.gid,
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(())
    }
}

/// What the database file on the command line holds.
#[derive(Debug, PartialEq)]
enum Source {
    /// `ovsdb-tool create-cluster FILE SCHEMA|DB LOCAL`: a new cluster with the file's schema
    /// and rows.
    Created {
        cluster_id: Uuid,
        server_id: Uuid,
        local: String,
    },
    /// `ovsdb-tool join-cluster FILE NAME LOCAL REMOTE...`.
    Joining {
        server_id: Uuid,
        local: String,
        remotes: Vec<String>,
    },
    /// `ovsdb-tool create FILE SCHEMA` (or a standalone database ovsdb-server wrote).
    Standalone,
}

impl Source {
    fn server_id(&self) -> Option<Uuid> {
        match self {
            Source::Created { server_id, .. } | Source::Joining { server_id, .. } => {
                Some(*server_id)
            }
            Source::Standalone => None,
        }
    }
}

/// Reads the header of the database file.
fn read_source(db: &Path) -> Result<Source> {
    let bytes = std::fs::read(db).with_context(|| {
        format!(
            "cannot read the database file {} (make it with `ovsdb-tool create-cluster`, \
             `ovsdb-tool join-cluster` or `ovsdb-tool create`)",
            db.display()
        )
    })?;
    let (magic, records) = crate::ovsdb_file::read_records(&bytes)
        .with_context(|| format!("{} is not an OVSDB database file", db.display()))?;
    if magic != crate::ovsdb_file::CLUSTERED_MAGIC {
        return Ok(Source::Standalone);
    }
    let header = records
        .first()
        .with_context(|| format!("{}: clustered database file without a header", db.display()))?;
    if records.len() > 1 {
        bail!(
            "{} has Raft log records: it belongs to a member ovsdb-server has run. Halyard takes \
             over files that ovsdb-tool create-cluster/join-cluster just made; move a running \
             ovsdb-server cluster with `halyard create-cluster --from` (docs/replacing-ovsdb-server.md)",
            db.display()
        );
    }
    let field = |name: &str| -> Result<&str> {
        header[name]
            .as_str()
            .with_context(|| format!("{}: the cluster header has no {name:?}", db.display()))
    };
    let uuid = |name: &str| -> Result<Uuid> {
        Uuid::parse_str(field(name)?)
            .with_context(|| format!("{}: bad {name:?} in the cluster header", db.display()))
    };
    let server_id = uuid("server_id")?;
    let local = field("local_address")?.to_string();
    if header.get("cluster_id").is_some_and(|c| !c.is_null()) {
        return Ok(Source::Created {
            cluster_id: uuid("cluster_id")?,
            server_id,
            local,
        });
    }
    let remotes: Vec<String> = header["remote_addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if remotes.is_empty() {
        bail!(
            "{}: the cluster header has neither a cluster id nor remote addresses",
            db.display()
        );
    }
    Ok(Source::Joining {
        server_id,
        local,
        remotes,
    })
}

/// The data directory for `db`, created from the file on the first start and reused after.
fn prepare(db: &Path, source: &Source) -> Result<PathBuf> {
    let mut name = db
        .file_name()
        .context("database file has no name")?
        .to_owned();
    name.push(DATA_DIR_SUFFIX);
    let data_dir = db.with_file_name(&name);
    let marker = data_dir.join(SOURCE_FILE);
    if data_dir.exists() {
        let recorded: Value = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .with_context(|| {
                format!(
                    "{} exists but was not made by ovsdb-server (Halyard) from {}: move it away",
                    data_dir.display(),
                    db.display()
                )
            })?;
        let recorded_sid = recorded["server_id"].as_str().map(String::from);
        if let Some(sid) = source.server_id() {
            if recorded_sid.as_deref() != Some(sid.to_string().as_str()) {
                bail!(
                    "{} was made from an earlier {} (server id {}, the file now has {sid}): \
                     the file was recreated; remove {} to start this member afresh",
                    data_dir.display(),
                    db.display(),
                    recorded_sid.unwrap_or_default(),
                    data_dir.display()
                );
            }
        }
        return Ok(data_dir);
    }
    let mut tmp_name = name.clone();
    tmp_name.push(".tmp");
    let tmp = db.with_file_name(tmp_name);
    if tmp.exists() {
        // An earlier first start died half way: nothing in it was ever served.
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    match source {
        Source::Created {
            cluster_id,
            server_id,
            local,
        } => {
            let imports = crate::migrate::read_files(&[db.to_path_buf()])?;
            let schemas: Vec<Value> = imports.iter().map(|i| i.0.clone()).collect();
            Member::create_cluster_as(&tmp, &schemas, local, *cluster_id, *server_id)?;
            crate::migrate::stage(&tmp, imports)?;
            tracing::info!(cluster = %cluster_id, server = %server_id, %local, "created the cluster from the database file");
        }
        Source::Joining {
            server_id,
            local,
            remotes,
        } => {
            Member::join_cluster_as(&tmp, local, remotes, *server_id)?;
            tracing::info!(server = %server_id, %local, remotes = ?remotes, "joining the cluster the database file names");
        }
        Source::Standalone => {
            let imports = crate::migrate::read_files(&[db.to_path_buf()])?;
            let schemas: Vec<Value> = imports.iter().map(|i| i.0.clone()).collect();
            Member::create_cluster_as(
                &tmp,
                &schemas,
                STANDALONE_RAFT_ADDR,
                Uuid::new_v4(),
                Uuid::new_v4(),
            )?;
            crate::migrate::stage(&tmp, imports)?;
            tracing::info!("serving the standalone database as a one-member cluster");
        }
    }
    let recorded = serde_json::json!({
        "file": db.display().to_string(),
        "server_id": source.server_id().map(|s| s.to_string()),
    });
    std::fs::write(tmp.join(SOURCE_FILE), recorded.to_string())
        .with_context(|| format!("cannot write into {}", tmp.display()))?;
    std::fs::rename(&tmp, &data_dir)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), data_dir.display()))?;
    Ok(data_dir)
}

/// Daemonizing as OVS `lib/daemon-unix.c` does, with fork(2) before any thread exists.
mod daemon {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// The process that serves, and what it owes its starter once it is ready.
    pub struct Daemon {
        /// The write end of the pipe the detaching parent waits on (None: not detached, or a
        /// server the monitor restarted).
        notify: Option<OwnedFd>,
        detached: bool,
    }

    impl Daemon {
        pub fn foreground() -> Daemon {
            Daemon {
                notify: None,
                detached: false,
            }
        }

        /// Tells the waiting parent that the server runs, and lets go of the terminal: stdin
        /// and stdout to /dev/null, stderr to the log file (or /dev/null).
        pub fn ready(&mut self, log: Option<&std::fs::File>) {
            if !self.detached {
                return;
            }
            forget_starter();
            if let Some(fd) = self.notify.take() {
                let mut f = std::fs::File::from(fd);
                let _ = f.write_all(b"1");
            }
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null");
            if let Ok(null) = &null {
                // SAFETY: dup2 onto the standard descriptors, which stay open.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
            }
            match (log, &null) {
                (Some(log), _) => {
                    let _ = redirect_stderr(log);
                }
                (None, Ok(null)) => unsafe {
                    libc::dup2(null.as_raw_fd(), 2);
                },
                (None, Err(_)) => {}
            }
        }
    }

    /// The stderr the process was started with, while the log file has taken fd 2 and the
    /// server is not ready yet.
    static STARTER_STDERR: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

    pub fn save_stderr() {
        // SAFETY: dup of fd 2 gives a new descriptor we own.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
        if fd >= 0 {
            *STARTER_STDERR.lock().unwrap() = Some(unsafe { std::fs::File::from_raw_fd(fd) });
        }
    }

    /// Writes why the server could not start to the stderr it was started with.
    pub fn tell_starter(text: &str) {
        if let Some(f) = STARTER_STDERR.lock().unwrap().as_mut() {
            let _ = writeln!(f, "{text}");
        }
    }

    fn forget_starter() {
        STARTER_STDERR.lock().unwrap().take();
    }

    pub fn redirect_stderr(log: &std::fs::File) -> Result<()> {
        // SAFETY: dup2 onto fd 2, which stays open.
        if unsafe { libc::dup2(log.as_raw_fd(), 2) } < 0 {
            bail!(
                "cannot send stderr to the log file: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    fn fork() -> Result<libc::pid_t> {
        // SAFETY: called while the process has a single thread (see `run`).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork failed: {}", std::io::Error::last_os_error());
        }
        Ok(pid)
    }

    /// `--detach`: the caller's process waits until the server says it is ready (exit 0) or
    /// dies first (exit 1); the returned `Daemon` is the server, in a new session.
    pub fn detach(monitor: bool) -> Result<Daemon> {
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            bail!("pipe failed: {}", std::io::Error::last_os_error());
        }
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        if fork()? > 0 {
            drop(write);
            let mut byte = [0u8; 1];
            let mut f = std::fs::File::from(read);
            let ok = std::io::Read::read(&mut f, &mut byte)
                .map(|n| n == 1)
                .unwrap_or(false);
            // The server printed why it failed on the shared stderr.
            std::process::exit(if ok { 0 } else { 1 });
        }
        drop(read);
        // SAFETY: the child leaves the caller's session and terminal.
        unsafe { libc::setsid() };
        let notify = if monitor {
            monitor_loop(write)?
        } else {
            Some(write)
        };
        Ok(Daemon {
            notify,
            detached: true,
        })
    }

    /// `--monitor`: this process stays as the monitor, forking servers; returns in each server.
    /// A server that exits (any status) or is killed (TERM, KILL, INT) ends the monitor with
    /// it; one that crashes is restarted.
    fn monitor_loop(notify: OwnedFd) -> Result<Option<OwnedFd>> {
        // Only the first server answers the starter; should it die before that, the starter
        // must see the pipe close, so the monitor keeps no copy.
        let mut notify = Some(notify);
        loop {
            let started = Instant::now();
            let pid = fork()?;
            if pid == 0 {
                return Ok(notify.take());
            }
            if notify.take().is_some() {
                // The monitor prints nothing: let go of the starter's terminal (or pipes, which
                // a starter may read to their end) at once.
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    // SAFETY: dup2 onto the standard descriptors, which stay open.
                    unsafe {
                        libc::dup2(null.as_raw_fd(), 0);
                        libc::dup2(null.as_raw_fd(), 1);
                        libc::dup2(null.as_raw_fd(), 2);
                    }
                }
                forget_starter();
            }
            let mut status = 0;
            loop {
                // SAFETY: waiting for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, 0) };
                if r == pid {
                    break;
                }
                if r < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    std::process::exit(1);
                }
            }
            let crashed = libc::WIFSIGNALED(status)
                && (libc::WCOREDUMP(status)
                    || [
                        libc::SIGABRT,
                        libc::SIGALRM,
                        libc::SIGBUS,
                        libc::SIGFPE,
                        libc::SIGILL,
                        libc::SIGPIPE,
                        libc::SIGSEGV,
                        libc::SIGXCPU,
                        libc::SIGXFSZ,
                    ]
                    .contains(&libc::WTERMSIG(status)));
            if !crashed {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    1
                };
                std::process::exit(code);
            }
            let since = started.elapsed();
            if since < MONITOR_RESTART_INTERVAL {
                std::thread::sleep(MONITOR_RESTART_INTERVAL - since);
            }
        }
    }
}
