//! The `usher` command line: `serve` (the default), `admin`, `load`, and the shell
//! completions and man pages generated from this definition.
//!
//! Settings come from flags, then `USHER_*` environment variables, then the TOML
//! config file, then the defaults.

pub mod admin;
pub mod docs;
pub mod listen;
pub mod load;
pub mod serve;
pub mod settings;

use clap::{Parser, Subcommand};

/// What `usher --help` says after the commands.
const TOP_LEVEL_HELP: &str = "\
With no subcommand, usher serves: `usher --addr 0.0.0.0:8080` is `usher serve --addr 0.0.0.0:8080`, \
and takes the options above. `usher serve --help` lists the environment variables.";

/// What `usher serve --help` says after the options.
const SERVE_HELP: &str = "\
Environment:
  USHER_ADMIN_TOKEN  the admin token (at least 16 characters); otherwise admin_token in the
                     config file, or one generated on first start and kept in
                     <data-dir>/admin-token
  RUST_LOG           the log filter [default: info,actix_http::h1::dispatcher=off]: one
                     line per request at info (target usher::access), none for requests
                     too malformed to parse; RUST_LOG=info,usher::access=warn leaves
                     requests out
  USHER_*            every option above, as shown beside it
Boolean variables take 1/true/yes/on and 0/false/no/off.";

/// The `usher` command.
#[derive(Debug, Parser)]
#[command(
    name = "usher",
    version,
    about = "Licence-seat engine: race-free admission, heartbeats and usage",
    args_conflicts_with_subcommands = true,
    after_help = TOP_LEVEL_HELP
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `usher serve`'s options, for `usher` without a subcommand.
    #[command(flatten)]
    pub serve: serve::ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API, the dashboard and the browser client (the default).
    #[command(after_help = SERVE_HELP)]
    Serve(serve::ServeArgs),
    /// Talk to a running server: tenants, holders, releases, licences, usage.
    Admin(admin::AdminArgs),
    /// Drive a server (or an in-process engine) with simulated browser clients, a
    /// login storm or an open-loop rate, then check the seat invariant.
    ///
    /// The workload's measured window (--duration) is followed by a quiet phase that is
    /// not measured: live tabs keep heartbeating until the sessions idle users left
    /// behind have expired, so the server's counts can be compared with what the
    /// clients hold. It lasts up to one compressed idle timeout; --settle shortens it.
    ///
    /// With --queue the tenants queue at their limit: users put in line wait there,
    /// heartbeating their ticket and claiming the seat when it is ready, and the report
    /// adds the queue figures (queued, served, gave up, still waiting, the wait) and
    /// checks the line the server lists against the clients' tickets.
    Load(load::LoadArgs),
    /// Print a shell completion script: `usher completions bash > /etc/bash_completion.d/usher`.
    Completions(docs::CompletionsArgs),
    /// Print the man page, or write one per command with --out-dir.
    Man(docs::ManArgs),
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        None => serve::run(cli.serve),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Admin(args)) => admin::run(args),
        Some(Command::Load(args)) => load::run(args),
        Some(Command::Completions(args)) => docs::completions(args),
        Some(Command::Man(args)) => docs::man(args),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("usher: {message}");
            1
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The log filter without `RUST_LOG`: info, which includes one access-log line per
/// request, without actix-http's own lines about requests it could not parse (any
/// client can send those, and each would be an ERROR line; they are answered 400).
const DEFAULT_LOG_FILTER: &str = "info,actix_http::h1::dispatcher=off";

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default: [`DEFAULT_LOG_FILTER`]).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
