//! halyard-bench: a load tool for OVSDB servers (Halyard members or ovsdb-server), speaking raw
//! JSON-RPC (RFC 7047) with OVN Northbound-shaped transactions. See docs/performance.md.

mod client;
mod cpu;
mod framing;
mod nb;
mod reply_scan;
mod report;
mod rss;
mod stats;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use workload::{
    bulk::BulkOpts, bulk_large::BulkLargeOpts, monitor::MonitorOpts, read::ReadOpts,
    write::WriteOpts, Common,
};

#[derive(Parser)]
#[command(
    name = "halyard-bench",
    about = "Drive OVSDB endpoints (Halyard members or ovsdb-servers) with OVN Northbound load; report \
             throughput, latency percentiles, errors and server RSS.",
    after_help = "Examples:\n  \
        halyard-bench --db tcp:127.0.0.1:6641,tcp:127.0.0.1:6642 write --clients 16 --duration 10\n  \
        halyard-bench --db tcp:127.0.0.1:6641 --pid 1234 --json bulk --switches 1000 --ports-per-switch 100"
)]
struct Cli {
    /// Endpoints, comma-separated: tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH. Clients are
    /// spread round-robin.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "tcp:127.0.0.1:6641"
    )]
    db: Vec<String>,
    /// Database name.
    #[arg(long, global = true, default_value = "OVN_Northbound")]
    database: String,
    /// A server process whose RSS (VmRSS) is read before and after; repeat for several.
    #[arg(long = "pid", global = true)]
    pids: Vec<u32>,
    /// Seconds to wait for any one reply before counting it as an error.
    #[arg(long, global = true, default_value_t = 30.0)]
    timeout: f64,
    /// A name for this run, carried into the report.
    #[arg(long, global = true)]
    label: Option<String>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// PEM private key for ssl: endpoints (as for ovsdb-client).
    #[arg(long, short = 'p', global = true)]
    private_key: Option<std::path::PathBuf>,
    /// PEM certificate for ssl: endpoints.
    #[arg(long, short = 'c', global = true)]
    certificate: Option<std::path::PathBuf>,
    /// PEM CA certificate the servers' certificates are verified against.
    #[arg(long = "ca-cert", short = 'C', global = true)]
    ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Single-insert transactions (lsp-add: insert a port, add it to a switch's ports).
    Write {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many transactions in total.
        #[arg(long)]
        count: Option<u64>,
        /// Transactions each client sends first, left out of the figures.
        #[arg(long, default_value_t = 0)]
        warmup: u64,
    },
    /// Latency of one writer at a time (ovn-northd, ovn-nbctl): `write` with one client, after
    /// a warm-up; p50/p99/mean are the figures that matter.
    Latency {
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long)]
        count: Option<u64>,
        /// Transactions sent first, left out of the figures.
        #[arg(long, default_value_t = 200)]
        warmup: u64,
    },
    /// Read-only transactions: select one port by name or by _uuid.
    Read {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long)]
        count: Option<u64>,
        /// Ports loaded before reading.
        #[arg(long, default_value_t = 1000)]
        rows: u64,
    },
    /// Monitor fan-out: M monitor_cond clients, one writer; update latency per write and monitor.
    Monitor {
        #[arg(long, default_value_t = 10)]
        monitors: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Writes per second (0: back to back).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Endpoint of the writer (default: the first of --db).
        #[arg(long)]
        writer_db: Option<String>,
        /// Seconds to wait after the last write for missing updates.
        #[arg(long, default_value_t = 10.0)]
        settle: f64,
    },
    /// Bulk load: SWITCHES switches with PORTS_PER_SWITCH ports each, BATCH switches per transaction.
    Bulk {
        #[arg(long, default_value_t = 1000)]
        switches: u64,
        #[arg(long, default_value_t = 100)]
        ports_per_switch: u64,
        #[arg(long, default_value_t = 1)]
        batch: u64,
        #[arg(long, default_value_t = 1)]
        clients: usize,
    },
    /// Southbound reconnection storm (database OVN_Southbound): FLOWS Logical_Flow rows loaded
    /// in transactions of BATCH, then CLIENTS monitor_cond_since requests at once; time until
    /// each client has the whole table, RSS after, one write's fan-out.
    Storm {
        #[arg(long, default_value_t = 50_000)]
        flows: u64,
        #[arg(long, default_value_t = 100)]
        datapaths: u64,
        #[arg(long, default_value_t = 2_000)]
        batch: u64,
        #[arg(long, default_value_t = 100)]
        clients: usize,
    },
    /// Conditional monitoring as ovn-controller does it (database OVN_Southbound): one
    /// monitor_cond session per chassis with per-chassis conditions; the subscription, a
    /// condition change, a port binding's and a new flow's fan-out, and spurious updates.
    Condmon {
        #[arg(long, default_value_t = 1_000)]
        chassis: usize,
        #[arg(long, default_value_t = 100)]
        datapaths: u64,
        #[arg(long, default_value_t = 20_000)]
        flows: u64,
        #[arg(long, default_value_t = 2)]
        ports_per_chassis: u64,
        #[arg(long, default_value_t = 2_000)]
        batch: u64,
        /// Sessions measured one at a time for a condition change and a port binding.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Flows written one at a time for the fan-out.
        #[arg(long, default_value_t = 20)]
        writes: usize,
    },
    /// Large rows: ROWS Logical_Switch rows, PER_TXN per transaction, each with an
    /// external_ids value of VALUE_LEN characters; rows/s and the longest gap between acks.
    BulkLarge {
        #[arg(long, default_value_t = 20_000)]
        rows: u64,
        #[arg(long, default_value_t = 100)]
        per_txn: u64,
        #[arg(long, default_value_t = 16_000)]
        value_len: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.db.is_empty() {
        eprintln!("halyard-bench: --db needs at least one endpoint");
        return ExitCode::from(2);
    }
    if let (Some(private_key), Some(certificate), Some(ca_cert)) =
        (&cli.private_key, &cli.certificate, &cli.ca_cert)
    {
        let settings = halyard_server::TlsSettings {
            private_key: private_key.clone(),
            certificate: certificate.clone(),
            ca_cert: ca_cert.clone(),
            protocols: None,
            ciphers: None,
        };
        match halyard_server::tls::build(&settings) {
            Ok(c) => client::set_tls(c.client),
            Err(e) => {
                eprintln!("halyard-bench: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let common = Common::new(
        cli.db.clone(),
        cli.database.clone(),
        Duration::from_secs_f64(cli.timeout),
        cli.pids.clone(),
        cli.label.clone(),
    );
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("halyard-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let secs = Duration::from_secs_f64;
    let report = rt.block_on(async {
        match cli.workload {
            Workload::Write {
                clients,
                duration,
                count,
                warmup,
            } => {
                workload::write::run(
                    &common,
                    &WriteOpts {
                        clients,
                        duration: secs(duration),
                        count,
                        warmup,
                    },
                )
                .await
            }
            Workload::Latency {
                duration,
                count,
                warmup,
            } => {
                workload::write::run(
                    &common,
                    &WriteOpts {
                        clients: 1,
                        duration: secs(duration),
                        count,
                        warmup,
                    },
                )
                .await
            }
            Workload::Read {
                clients,
                duration,
                count,
                rows,
            } => {
                workload::read::run(
                    &common,
                    &ReadOpts {
                        clients,
                        duration: secs(duration),
                        count,
                        rows,
                    },
                )
                .await
            }
            Workload::Monitor {
                monitors,
                duration,
                rate,
                writer_db,
                settle,
            } => {
                let opts = MonitorOpts {
                    monitors,
                    duration: secs(duration),
                    rate,
                    writer: writer_db,
                    settle: secs(settle),
                };
                workload::monitor::run(&common, &opts).await
            }
            Workload::Bulk {
                switches,
                ports_per_switch,
                batch,
                clients,
            } => {
                workload::bulk::run(
                    &common,
                    &BulkOpts {
                        switches,
                        ports_per_switch,
                        batch,
                        clients,
                    },
                )
                .await
            }
            Workload::Storm {
                flows,
                datapaths,
                batch,
                clients,
            } => {
                let opts = workload::storm::StormOpts {
                    flows,
                    datapaths: datapaths.max(1),
                    batch: batch.max(1),
                    clients,
                };
                workload::storm::run(&common, &opts).await
            }
            Workload::Condmon {
                chassis,
                datapaths,
                flows,
                ports_per_chassis,
                batch,
                samples,
                writes,
            } => {
                let opts = workload::condmon::CondMonOpts {
                    chassis: chassis.max(1),
                    datapaths: datapaths.max(1),
                    flows,
                    ports_per_chassis: ports_per_chassis.max(1),
                    batch: batch.max(1),
                    samples,
                    writes,
                };
                workload::condmon::run(&common, &opts).await
            }
            Workload::BulkLarge {
                rows,
                per_txn,
                value_len,
                clients,
            } => {
                let opts = BulkLargeOpts {
                    rows,
                    per_txn,
                    value_len,
                    clients,
                };
                workload::bulk_large::run(&common, &opts).await
            }
        }
    });
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serialises")
        );
    } else {
        print!("{}", report.table());
    }
    // Errors are measured, not fatal; but a run where nothing succeeded is a failed run.
    if report.ok == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
