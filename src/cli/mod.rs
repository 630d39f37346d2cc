//! The `usher` command line: `serve` (the default), `admin` and `load`.
//!
//! Settings come from flags, then `USHER_*` environment variables, then the TOML
//! config file, then the defaults.

pub mod admin;
pub mod load;
pub mod serve;

use clap::{Parser, Subcommand};

/// The `usher` command.
#[derive(Debug, Parser)]
#[command(
    name = "usher",
    version,
    about = "Licence-seat engine: race-free admission, heartbeats and usage"
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API, the dashboard and the browser client.
    Serve(serve::ServeArgs),
    /// Talk to a running server: tenants, holders, releases, licences, usage.
    Admin(admin::AdminArgs),
    /// Drive a server (or an in-process engine) with simulated browser clients, a
    /// login storm or an open-loop rate, then check the seat invariant.
    Load(load::LoadArgs),
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        None => serve::run(serve::ServeArgs::default()),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Admin(args)) => admin::run(args),
        Some(Command::Load(args)) => load::run(args),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("usher: {message}");
            1
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
