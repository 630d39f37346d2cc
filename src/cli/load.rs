//! `usher load`: drives a running server (or an in-process engine) and reports
//! throughput, latency percentiles, refusals, errors and the seat invariant.
//!
//! With `--queue` the tenants queue (`on_limit = "queue"`): a user whose login is put
//! in line waits there, heartbeating the ticket at the interval the server answered
//! (compressed like every think time, since the tenants' idle timeout is) and claiming
//! the seat as soon as a heartbeat says ready. The report adds the logins queued,
//! served from the line, given up (ticket ended: `claim_missed`, `expired`) and still
//! waiting when the window closed, the wait from the queued answer to the claim's
//! answer (p50, p90, p99, max), and rows for ticket heartbeats and claims; the check
//! adds the line as the server lists it against the clients' tickets. With `--storm`
//! it checks that exactly the seats are admitted and the rest queued at positions
//! 1 to N − S, each once, then drains the line (every seat released and handed down
//! it in turn) and reports the time the line took to drain.
//!
//! ```text
//! usher load --url http://127.0.0.1:8080 --token $USHER_ADMIN_TOKEN \
//!     --tenants 10 --users 100 --duration 30 --time-scale 60
//! usher load --storm 5000 --seats 500          # 5,000 simultaneous logins, 500 seats
//! usher load --rate 5000 --duration 20         # open loop: 5,000 requests/s
//! usher load --in-process --storm 10000 --seats 1000
//! usher load --queue --tenants 4 --users 100 --seats 50 --time-scale 120
//! usher load --in-process --storm 10000 --seats 1000 --queue   # and drain the line
//! # three nodes on one Redis: requests spread over them, the check reads each
//! usher load --url http://127.0.0.1:8081 --url http://127.0.0.1:8082 \
//!     --url http://127.0.0.1:8083 --storm 10000 --seats 1000
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::settings::client_admin_token;
use crate::load::{self, LoadConfig, TargetConfig};

/// Flags of `usher load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server's URL. Repeat it (or give a comma-separated list) for several nodes
    /// serving the same tenants: requests are spread over them, each session's
    /// heartbeats, releases and logout go to another node than its login, and the
    /// seat check reads every node.
    #[arg(
        long = "url",
        env = "USHER_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub urls: Vec<String>,
    /// The admin token (to create and delete the run's tenants) [default: the one in
    /// DATA_DIR/admin-token].
    #[arg(long, env = "USHER_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The local server's data dir, to read its admin-token file when no token is given
    /// [default: ./usher-data].
    #[arg(long, env = "USHER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Drive an engine in this process instead of a server: the engine's cost alone
    /// (--url and --token are then ignored).
    #[arg(long)]
    pub in_process: bool,
    /// Tenants to create.
    #[arg(long, default_value_t = 10)]
    pub tenants: usize,
    /// Simulated users per tenant.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Licence model: named, concurrent or records.
    #[arg(long, default_value = "concurrent")]
    pub model: String,
    /// Seats per tenant [default: three quarters of --users; a tenth of --storm].
    #[arg(long)]
    pub seats: Option<u32>,
    /// Concurrent model: one seat per user or per session (tab).
    #[arg(long)]
    pub seat_per: Option<String>,
    /// Seconds of load (real time), the measured window. A quiet phase follows, shown
    /// on the progress bar and not measured: see --settle.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// The longest the quiet phase after the measured window may last, in seconds. In
    /// it the live tabs keep heartbeating while the sessions idle users left behind
    /// expire (up to one compressed idle timeout: --idle-timeout / --time-scale), so
    /// that the server's counts can be compared with what the clients hold. Cut
    /// shorter, the run checks only that no tenant is over-admitted [default: until
    /// they have all expired].
    #[arg(long)]
    pub settle: Option<f64>,
    /// Simulated seconds per real second. Think times, and the idle timeout the
    /// tenants are created with, are divided by it; the server then hands out a
    /// heartbeat interval compressed by the same factor.
    #[arg(long, default_value_t = 60.0)]
    pub time_scale: f64,
    /// The idle timeout in simulated seconds (at least 2 s once compressed).
    #[arg(long, default_value_t = 600)]
    pub idle_timeout: u64,
    /// Open loop: this many requests per second on a fixed timetable, whatever the
    /// answers; latency counts from each request's due time.
    #[arg(long, conflicts_with = "storm")]
    pub rate: Option<f64>,
    /// Instead of the workload: this many distinct users log in to one concurrent
    /// tenant at the same instant, each on its own connection.
    #[arg(long)]
    pub storm: Option<u64>,
    /// Most connections to the server for the workload.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seed of the users' choices, to repeat a run [default: random].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Create the tenants with on_limit = "queue": a login at the limit waits in line,
    /// heartbeating its ticket at the answered interval and claiming the seat as soon as
    /// it is ready, instead of being refused. Reports logins queued, served from the
    /// line, given up and still waiting, and the wait; with --storm, checks positions
    /// 1..N−S and drains the line. Concurrent model only.
    #[arg(long)]
    pub queue: bool,
    /// With --queue: the claim window in simulated seconds. Tenants get it divided by
    /// --time-scale, and never less than two ticket heartbeat intervals, so that a client
    /// heartbeating at the interval hears "ready" in time to claim. (The storm's tenant
    /// holds a seat 600 s: its drain claims at once.)
    #[arg(long, default_value_t = 300, requires = "queue")]
    pub queue_claim: u64,
    /// Keep the run's tenants on the server afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Print the report as JSON (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Runs `usher load`. Fails (exit code 1) when an invariant broke.
pub fn run(args: LoadArgs) -> Result<(), String> {
    let config = config(&args)?;
    let report = load::run(&config)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text());
    }
    if report.passed() {
        Ok(())
    } else {
        Err("the seat invariant did not hold (see the report)".into())
    }
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} must be a positive number of seconds"))
}

/// The run's configuration from the flags.
pub fn config(args: &LoadArgs) -> Result<LoadConfig, String> {
    let target = if args.in_process {
        TargetConfig::InProcess
    } else {
        TargetConfig::Http {
            urls: args.urls.clone(),
            admin_token: client_admin_token(args.token.as_deref(), args.data_dir.as_deref())
                .map_err(|e| {
                    format!("{e}. The run creates its tenants with it (--in-process needs none)")
                })?,
        }
    };
    let mut config = LoadConfig::new(target);
    config.tenants = args.tenants;
    config.users = args.users;
    config.model = args.model.clone();
    config.seats = args.seats;
    config.seat_per = args.seat_per.clone();
    config.duration = seconds(args.duration, "--duration")?;
    config.time_scale = args.time_scale;
    config.idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
    config.rate = args.rate;
    config.storm = args.storm;
    config.connections = args.connections.max(1);
    config.timeout = seconds(args.timeout, "--timeout")?;
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.keep = args.keep;
    config.queue = args.queue;
    config.queue_claim = Duration::from_secs(args.queue_claim.max(1));
    config.settle = match args.settle {
        Some(secs) => Some(
            Duration::try_from_secs_f64(secs)
                .map_err(|_| "--settle must be a number of seconds, 0 or more".to_string())?,
        ),
        None => None,
    };
    config.progress = !args.json && std::io::stderr().is_terminal();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn config_of(args: &LoadArgs) -> Result<LoadConfig, String> {
        config(args)
    }

    fn parse(args: &[&str]) -> Result<LoadArgs, clap::Error> {
        let cli = Cli::try_parse_from(["usher", "load"].iter().chain(args))?;
        match cli.command {
            Some(Command::Load(args)) => Ok(args),
            _ => unreachable!("parsed as load"),
        }
    }

    #[test]
    fn flags_become_a_run() {
        let args = parse(&[
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "--storm",
            "5000",
            "--seats",
            "500",
            "--seed",
            "7",
            "--settle",
            "0.5",
            "--json",
        ])
        .unwrap();
        let config = config(&args).unwrap();
        assert_eq!(config.settle, Some(Duration::from_millis(500)));
        let args = parse(&["--in-process", "--settle=-1"]).unwrap();
        assert!(config_of(&args).unwrap_err().contains("--settle"));
        assert_eq!(config.storm, Some(5000));
        assert_eq!(config.seats, Some(500));
        assert_eq!(config.seed, 7);
        assert!(!config.progress);
        assert!(matches!(config.target, TargetConfig::Http { .. }));
        assert!(!config.queue);
    }

    #[test]
    fn queue_makes_the_tenants_queue_and_takes_a_claim_window() {
        let args = parse(&["--in-process", "--queue", "--queue-claim", "120"]).unwrap();
        let config = config(&args).unwrap();
        assert!(config.queue);
        assert_eq!(config.queue_claim, Duration::from_secs(120));
        let args = parse(&["--in-process", "--queue", "--storm", "100"]).unwrap();
        assert!(config_of(&args).unwrap().queue);
        // A claim window means nothing without a line.
        assert!(parse(&["--in-process", "--queue-claim", "120"]).is_err());
    }

    #[test]
    fn url_repeats_for_several_nodes() {
        let urls = |args: &LoadArgs| match config(args).unwrap().target {
            TargetConfig::Http { urls, .. } => urls,
            TargetConfig::InProcess => unreachable!("over HTTP"),
        };
        let three = parse(&[
            "--token",
            "t",
            "--url",
            "http://127.0.0.1:1",
            "--url",
            "http://127.0.0.1:2,http://127.0.0.1:3",
        ])
        .unwrap();
        assert_eq!(
            urls(&three),
            [
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3"
            ]
        );
        if std::env::var_os("USHER_URL").is_none() {
            let one = parse(&["--token", "t"]).unwrap();
            assert_eq!(urls(&one), ["http://127.0.0.1:8080"]);
        }
    }

    #[test]
    fn a_server_run_needs_a_token_and_in_process_takes_none() {
        let empty = tempfile::tempdir().unwrap();
        let dir = empty.path().to_str().unwrap();
        let args = parse(&["--url", "http://127.0.0.1:9", "--data-dir", dir]).unwrap();
        if std::env::var_os("USHER_ADMIN_TOKEN").is_none() {
            let err = config(&args).unwrap_err();
            assert!(err.contains("admin token") && err.contains(dir), "{err}");
        }
        std::fs::write(empty.path().join("admin-token"), "usa_written-by-serve\n").unwrap();
        let args = parse(&["--data-dir", dir]).unwrap();
        if std::env::var_os("USHER_ADMIN_TOKEN").is_none() {
            match config(&args).unwrap().target {
                TargetConfig::Http { admin_token, .. } => {
                    assert_eq!(admin_token, "usa_written-by-serve")
                }
                other => panic!("{other:?}"),
            }
        }
        let args = parse(&["--in-process", "--rate", "100"]).unwrap();
        assert_eq!(config(&args).unwrap().target, TargetConfig::InProcess);
        assert!(parse(&["--rate", "10", "--storm", "10"]).is_err());
        assert!(config(&parse(&["--in-process", "--duration", "0"]).unwrap()).is_err());
    }
}
