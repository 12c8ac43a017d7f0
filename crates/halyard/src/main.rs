//! `halyard`: an OVSDB server for OVN whose databases are replicated by Raft, active-active.
//!
//! This binary is the operator's edge: it parses the command line, turns library errors into
//! messages that say what to do, and wires the member (halyard-raft) to the OVSDB front end
//! (halyard-server).

mod admin;
mod backend;
mod backup;
mod cli;
mod http;
mod metrics;
mod migrate;
mod ops;
mod ovsdb_file;
mod status;
mod trim;
mod unixctl;
mod vlog;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halyard: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
