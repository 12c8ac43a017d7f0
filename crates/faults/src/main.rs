//! `halyard-faults`: runs the fault suite against the `halyard` binary and prints the verdict.
//! The last line is always `N histories, M operations, K anomalies`; the exit status is 1 when
//! K > 0 and 2 when the suite itself could not run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use halyard_faults::check::DEFAULT_MAX_STEPS;
use halyard_faults::netns::Net;
use halyard_faults::suite::{self, Options};

const SCHEMA: &str = include_str!("../../../tests/faults/faults.ovsschema");

#[derive(Parser)]
#[command(
    name = "halyard-faults",
    about = "Fault-injection suite for a Halyard cluster (needs root: network namespaces)."
)]
struct Args {
    /// The halyard binary to test.
    #[arg(long, env = "HALYARD_BIN")]
    halyard: PathBuf,
    /// The short run for CI: every fault once, about a minute of load (the default).
    #[arg(long, conflicts_with = "soak")]
    quick: bool,
    /// A long run: random faults for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<u64>,
    /// Cluster size at the start (3 or 5).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Start the members with `halyard serve --unsafe-ack-before-commit` (writes acknowledged without
    /// being committed): the run must then report anomalies.
    #[arg(long)]
    unsafe_ack_before_commit: bool,
    /// Concurrent set-workload clients.
    #[arg(long, default_value_t = 8)]
    set_clients: usize,
    /// Register keys in use at a time.
    #[arg(long, default_value_t = 3)]
    register_keys: usize,
    /// Concurrent register-workload clients per key.
    #[arg(long, default_value_t = 4)]
    clients_per_key: usize,
    /// A client gives up on an operation after this many ms (recorded as indeterminate).
    #[arg(long, default_value_t = 5000)]
    op_timeout_ms: u64,
    /// Concurrent clients of the large-value workload (rows of 1 KiB to 1 MiB; 0: none).
    #[arg(long, default_value_t = 2)]
    large_clients: usize,
    /// MB per second the large clients send together (default: 1.5, or less in a soak so that
    /// the whole run stays within --large-budget-mb).
    #[arg(long)]
    large_rate_mb: Option<f64>,
    /// MB the large clients send in a soak run at most (the members hold it all in memory).
    #[arg(long, default_value_t = 1024.0)]
    large_budget_mb: f64,
    /// Longest stretch without a leader allowed, in election timers.
    #[arg(long, default_value_t = 4)]
    leaderless_timers: u64,
    /// After a fault that grew the cluster (a join, a promotion), kick followers until it is back
    /// at --members: a soak then runs with three voters, where flush hints are on, most of the time.
    #[arg(long)]
    steady_voters: bool,
    /// The members' election timer (`halyard serve --election-timer`).
    #[arg(long, default_value_t = 1000)]
    election_timer_ms: u64,
    /// Data directories, logs and history.jsonl go here (default: /tmp/halyard-faults-TAG).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Names the run's namespaces hfx-TAG-* (default: from the process id).
    #[arg(long)]
    tag: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halyard-faults: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(matches!(args.members, 3 | 5), "--members must be 3 or 5");
    anyhow::ensure!(
        unsafe { libc::geteuid() } == 0,
        "needs root to create network namespaces"
    );
    let halyard = std::fs::canonicalize(&args.halyard)
        .map_err(|e| anyhow::anyhow!("halyard binary {}: {e}", args.halyard.display()))?;
    let tag = args
        .tag
        .unwrap_or_else(|| format!("{:04x}", std::process::id() % 0x10000));
    anyhow::ensure!(
        tag.len() <= 8 && tag.chars().all(|c| c.is_ascii_alphanumeric()),
        "--tag: up to 8 letters or digits"
    );
    let workdir = args
        .workdir
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/halyard-faults-{tag}")));
    if workdir.exists() {
        std::fs::remove_dir_all(&workdir)?;
    }
    std::fs::create_dir_all(&workdir)?;
    let workdir = std::fs::canonicalize(&workdir)?;
    let schema = workdir.join("faults.ovsschema");
    std::fs::write(&schema, SCHEMA)?;
    let args_leaderless_limit = args.leaderless_timers * args.election_timer_ms;
    let large_rate = args.large_rate_mb.unwrap_or_else(|| match args.soak {
        Some(s) => 1.5f64.min(args.large_budget_mb / s.max(1) as f64),
        None => 1.5,
    }) * 1e6;
    let opts = Options {
        halyard,
        workdir: workdir.clone(),
        schema,
        members: args.members,
        soak: args.soak.map(Duration::from_secs),
        unsafe_ack: args.unsafe_ack_before_commit,
        set_clients: args.set_clients,
        register_groups: args.register_keys,
        clients_per_group: args.clients_per_key,
        op_timeout: Duration::from_millis(args.op_timeout_ms),
        election_timer_ms: args.election_timer_ms,
        max_steps: DEFAULT_MAX_STEPS,
        large_clients: args.large_clients,
        large_rate,
        leaderless_timers: args.leaderless_timers,
        steady_voters: args.steady_voters,
    };

    // Namespaces first, then move this (still single-threaded) process into the client one so
    // every thread the runtime starts talks from there.
    let net = Net::create(&tag)?;
    net.enter_client()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // On SIGINT/SIGTERM the run is dropped, which stops the members and deletes the namespaces.
    let outcome = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = suite::run(net, &opts) => r,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; cluster stopped and namespaces removed"),
            _ = term.recv() => anyhow::bail!("terminated; cluster stopped and namespaces removed"),
        }
    })?;
    drop(runtime);

    let r = &outcome.report;
    println!("faults injected: {}", outcome.faults.len());
    println!(
        "set: {} ok, {} fail, {} info; final reads from {} members ({} rows on the first)",
        r.set_counts.ok,
        r.set_counts.fail,
        r.set_counts.info,
        outcome.history.final_reads.len(),
        outcome
            .history
            .final_reads
            .first()
            .map(|f| f.values.len())
            .unwrap_or(0)
    );
    println!(
        "register: {} ok, {} fail, {} info",
        r.register_counts.ok, r.register_counts.fail, r.register_counts.info
    );
    if !outcome.history.large.is_empty() {
        let huge = outcome
            .history
            .large
            .iter()
            .filter(|e| e.rows.len() == halyard_faults::large::HUGE_ROWS)
            .map(|e| format!("{:.1} MB {:?}", e.bytes() as f64 / 1e6, e.status))
            .collect::<Vec<_>>();
        let acked: usize = outcome
            .history
            .large
            .iter()
            .filter(|e| e.status == halyard_faults::history::Status::Ok)
            .map(|e| e.bytes())
            .sum();
        let biggest = outcome
            .history
            .large
            .iter()
            .map(|e| e.bytes())
            .max()
            .unwrap_or(0);
        println!(
            "large: {} ok, {} fail, {} info; {:.1} MB acknowledged, largest transaction {:.1} MB; huge transactions: [{}]; final reads from {} members ({} rows on the first)",
            r.large_counts.ok,
            r.large_counts.fail,
            r.large_counts.info,
            acked as f64 / 1e6,
            biggest as f64 / 1e6,
            huge.join(", "),
            outcome.history.large_reads.len(),
            outcome.history.large_reads.first().map(|f| f.rows.len()).unwrap_or(0)
        );
    }
    if let Some((ms, at)) = r.longest_leaderless {
        println!(
            "longest stretch without a leader: {ms} ms from {at:.1} s (limit {} ms; whole-cluster kills excused until every member answers)",
            args_leaderless_limit
        );
    }
    if !r.undecided.is_empty() {
        println!(
            "register keys not decided within the search budget (not counted): {:?}",
            r.undecided
        );
    }
    if !r.anomalies.is_empty() {
        println!("anomalies by kind: {}", r.by_kind());
    }
    for a in r.anomalies.iter().take(30) {
        println!("ANOMALY {a}");
    }
    if r.anomalies.len() > 30 {
        println!("... and {} more anomalies", r.anomalies.len() - 30);
    }
    println!("history: {}", workdir.join("history.jsonl").display());
    println!("{}", r.summary_line());
    Ok(if r.anomalies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
