//! `halyard`: an OVSDB server for OVN whose databases are replicated by Raft, active-active.
//!
//! This binary is the operator's edge: it parses the command line, turns library errors into
//! messages that say what to do, and wires the member (halyard-raft) to the OVSDB front end
//! (halyard-server).

mod admin;
mod allocator;
mod backend;
mod backup;
mod cli;
mod dropin;
mod hangup;
mod http;
mod metrics;
mod migrate;
mod ops;
mod ovsdb_file;
mod stall;
mod status;
mod trim;
mod unixctl;
mod vlog;

use clap::Parser;

fn main() -> std::process::ExitCode {
    allocator::configure();
    // Started through a symlink named ovsdb-server: take ovsdb-server's command line.
    let mut args = std::env::args_os();
    if args
        .next()
        .is_some_and(|a| dropin::invoked_as_ovsdb_server(&a))
    {
        let args: Result<Vec<String>, _> = args.map(|a| a.into_string()).collect();
        let Ok(args) = args else {
            eprintln!("ovsdb-server: an argument is not valid UTF-8");
            return std::process::ExitCode::from(1);
        };
        return dropin::main(args);
    }
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("halyard: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
