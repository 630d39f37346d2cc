//! The load generator behind `usher load`: simulated browser clients against a running
//! server or an in-process [`Engine`], a login storm, an open-loop
//! mode, and a report with an invariant check against the server's own view.
//!
//! # Layout
//! - [`workload`] — what clients do: the action mix, compressed human time, the
//!   open-loop timetable, how seats are counted. Pure and seeded.
//! - [`report`] — throughput, latency percentiles, refusals and errors; the
//!   invariant check; text and JSON.
//! - [`target`] — the [`Target`] trait: HTTP ([`HttpTarget`]) or in-process
//!   ([`EngineTarget`]).
//! - [`raw`] — bare pre-connected HTTP/1.1 connections for the storm.
//! - `drive` — the simulated users and the open-loop scheduler.
//! - `storm` — N simultaneous logins onto one tenant; under a licence that queues,
//!   the line they form and its draining.
//!
//! A run creates its own tenants (`load-<run>-t<i>`), drives them, lets the clients'
//! abandoned sessions expire while the live tabs keep heartbeating (the quiet
//! moment), then compares every tenant's `seats_in_use` and `sessions` with what the
//! clients hold, and deletes the tenants unless asked to keep them.
//!
//! With `queue` the tenants are created with `on_limit = "queue"`: a login at the
//! limit gets a ticket, and its user waits in line, heartbeating the ticket at the
//! interval the server answered and claiming the seat as soon as a heartbeat says
//! ready. The report then counts the logins queued, served from the line, given up
//! (their ticket ended) and still waiting when the measured window closed, and the
//! wait of those served; the check adds the line as the server lists it against the
//! tickets the clients hold.
//!
//! Against several nodes (`--url` repeated) the requests are spread over them (see
//! [`target::Spread`]): a session's heartbeats, releases and logout go to another node
//! than its login. The check then compares what the clients hold through all nodes
//! together with each node's view.

mod drive;
pub mod raw;
pub mod report;
mod storm;
pub mod target;
pub mod workload;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use report::{
    Belief, LineEntry, Op, Outcome, QueueStats, Report, ServerView, Stats, TenantCheck, Violation,
};
pub use target::{EngineTarget, Entry, HttpTarget, Place, Session, Standing, Target};
use workload::{Mix, Names, OpenMix, SeatRule, Timing};

use crate::engine::{Engine, EngineConfig};
use crate::licence::LicenceSpec;

/// Where a run sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetConfig {
    /// Running servers: one node, or several serving the same tenants.
    Http {
        /// The nodes' URLs (at least one); requests are spread over them.
        urls: Vec<String>,
        /// Their admin token.
        admin_token: String,
    },
    /// An engine started in this process.
    InProcess,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where requests go.
    pub target: TargetConfig,
    /// Tenants to create.
    pub tenants: usize,
    /// Users per tenant.
    pub users: usize,
    /// `named`, `concurrent` or `records`.
    pub model: String,
    /// Seats per tenant (default: three quarters of the users; a tenth of a storm).
    pub seats: Option<u32>,
    /// `user` or `session` (concurrent).
    pub seat_per: Option<String>,
    /// How long the workload runs (real time).
    pub duration: Duration,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    /// The idle timeout in simulated time; tenants get it divided by the time scale.
    pub idle_timeout: Duration,
    /// Open loop: requests per second on a fixed timetable.
    pub rate: Option<f64>,
    /// A storm of this many simultaneous logins instead of the workload.
    pub storm: Option<u64>,
    /// Most connections to the server (the storm opens one per login).
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Seed of the simulated users' choices.
    pub seed: u64,
    /// Keep the tenants afterwards.
    pub keep: bool,
    /// Show a live progress bar on stderr.
    pub progress: bool,
    /// The longest the quiet phase after the measured window may last; `None` waits
    /// until every session the clients left behind has expired. Cut short, the run
    /// checks only that no tenant is over-admitted, not that the server's counts equal
    /// what the clients hold.
    pub settle: Option<Duration>,
    /// Create the tenants with `on_limit = "queue"` (concurrent model): a login at the
    /// limit waits in line, heartbeating its ticket, and claims its seat when told.
    pub queue: bool,
    /// The claim window in simulated time; tenants get it compressed, and never less
    /// than two ticket heartbeat intervals (see [`Timing::tenant_queue_claim_secs`]).
    pub queue_claim: Duration,
}

impl LoadConfig {
    /// A run against `target` with the defaults of `usher load`.
    pub fn new(target: TargetConfig) -> Self {
        LoadConfig {
            target,
            tenants: 10,
            users: 100,
            model: "concurrent".into(),
            seats: None,
            seat_per: None,
            duration: Duration::from_secs(30),
            time_scale: 60.0,
            idle_timeout: Duration::from_secs(600),
            rate: None,
            storm: None,
            connections: 256,
            timeout: Duration::from_secs(10),
            seed: crate::token::random_u64(),
            keep: false,
            progress: false,
            settle: None,
            queue: false,
            queue_claim: Duration::from_secs(300),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(self.model.as_str(), "named" | "concurrent" | "records") {
            return Err(format!(
                "--model must be named, concurrent or records, not {}",
                self.model
            ));
        }
        if self.model == "records" && self.seats.is_some() {
            return Err("the records model has no seats; drop --seats".into());
        }
        if self.seat_per.is_some() && self.model != "concurrent" {
            return Err("--seat-per applies to the concurrent model only".into());
        }
        if self.queue && self.model != "concurrent" {
            return Err("--queue applies to the concurrent model only".into());
        }
        if let TargetConfig::Http { urls, .. } = &self.target {
            if urls.is_empty() {
                return Err("at least one --url is needed".into());
            }
        }
        if self.tenants == 0 || self.users == 0 {
            return Err("--tenants and --users must be at least 1".into());
        }
        if self.storm == Some(0) {
            return Err("--storm must be at least 1".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number of requests per second".into());
            }
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err("--time-scale must be positive".into());
        }
        Ok(())
    }

    fn seats_for(&self, users: u64) -> Option<u32> {
        match self.model.as_str() {
            "records" => None,
            _ => Some(
                self.seats
                    .unwrap_or_else(|| (users * 3 / 4).max(1).min(u64::from(u32::MAX)) as u32),
            ),
        }
    }
}

/// Runs the load described by `config` on a fresh actix system on this thread, and
/// returns its report (whose [`Report::passed`] tells whether the invariants held).
pub fn run(config: &LoadConfig) -> Result<Report, String> {
    config.validate()?;
    actix_web::rt::System::new().block_on(async {
        match &config.target {
            TargetConfig::Http { urls, admin_token } => {
                let target = Rc::new(HttpTarget::over(
                    urls,
                    admin_token,
                    config.connections,
                    config.timeout,
                ));
                match config.storm {
                    Some(n) => storm::over_http(target, config, n).await,
                    None => drive::run(target, config).await,
                }
            }
            TargetConfig::InProcess => {
                let target = Rc::new(EngineTarget::new(Engine::start(EngineConfig::default())));
                match config.storm {
                    Some(n) => storm::in_process(target, config, n).await,
                    None => drive::run(target, config).await,
                }
            }
        }
    })
}

/// What the drivers share: the target, the figures, the live counters.
struct Ctx<T: Target> {
    target: Rc<T>,
    stats: RefCell<Stats>,
    queue: RefCell<QueueStats>,
    done: Cell<u64>,
    refused: Cell<u64>,
    errors: Cell<u64>,
}

impl<T: Target> Ctx<T> {
    fn new(target: Rc<T>) -> Self {
        Ctx {
            target,
            stats: RefCell::default(),
            queue: RefCell::default(),
            done: Cell::new(0),
            refused: Cell::new(0),
            errors: Cell::new(0),
        }
    }

    /// Awaits a request and records it, its latency taken from `due`: when the request
    /// was due, or when the client's timer woke for it if that was later.
    async fn timed<R>(
        &self,
        op: Op,
        due: Instant,
        request: impl std::future::Future<Output = Outcome<R>>,
    ) -> Outcome<R> {
        let outcome = request.await;
        self.record(op, &outcome.class(), due.elapsed());
        outcome
    }

    fn record(&self, op: Op, outcome: &Outcome<()>, latency: Duration) {
        self.done.set(self.done.get() + 1);
        match outcome {
            Outcome::Refused(_) => self.refused.set(self.refused.get() + 1),
            Outcome::Failed(_) => self.errors.set(self.errors.get() + 1),
            _ => {}
        }
        self.stats.borrow_mut().record(op, outcome, latency);
    }
}

/// A run's tenants, created.
struct Plan {
    tenants: Vec<String>,
    rule: SeatRule,
    idle_timeout: Duration,
    /// The claim window the tenants queue with (zero when they do not).
    queue_claim: Duration,
}

/// Creates `config.tenants` tenants (named: assigns the first `seats` users).
async fn set_up<T: Target>(
    target: &T,
    config: &LoadConfig,
    names: &Names,
    timing: &Timing,
) -> Result<Plan, String> {
    let idle_timeout_secs = timing.tenant_idle_timeout_secs();
    let queue_claim_secs = config
        .queue
        .then(|| timing.tenant_queue_claim_secs(config.queue_claim));
    let seats = config.seats_for(config.users as u64);
    let spec = LicenceSpec {
        model: config.model.clone(),
        seats: seats.map(i64::from),
        seat_per: config.seat_per.clone(),
        idle_timeout_secs: Some(idle_timeout_secs as i64),
        max_users: Some(config.users.max(999) as i64),
        on_limit: config.queue.then(|| "queue".to_string()),
        queue_claim_secs: queue_claim_secs.map(|s| s as i64),
        ..Default::default()
    };
    let assigned = match config.model.as_str() {
        "named" => seats.unwrap_or(0).min(config.users as u32),
        _ => 0,
    };
    let mut tenants = Vec::new();
    for i in 0..config.tenants {
        let tenant = names.tenant(i);
        target.create_tenant(&tenant, &spec).await?;
        let assigning = futures::stream::iter(0..assigned as usize)
            .map(|j| {
                let tenant = &tenant;
                async move { target.assign(tenant, &Names::user(j)).await }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        assigning.into_iter().collect::<Result<Vec<()>, String>>()?;
        tenants.push(tenant);
    }
    Ok(Plan {
        tenants,
        rule: SeatRule::of(&config.model, config.seat_per.as_deref(), assigned),
        idle_timeout: Duration::from_secs(idle_timeout_secs),
        queue_claim: Duration::from_secs(queue_claim_secs.unwrap_or(0)),
    })
}

/// Reads every tenant's view and checks it against the clients' belief. A
/// disagreement is read again a few times (an expiry may be a tick late); an
/// over-admission is final at once.
///
/// With several nodes the belief is what the clients hold through all of them, and
/// every node's view must match it: any node answers for any tenant. The check kept
/// is the first node's that fails, or the last node's.
async fn check_tenants<T: Target>(
    target: &T,
    tenants: &[String],
    beliefs: &[Option<Belief>],
) -> Result<Vec<TenantCheck>, String> {
    let mut checks = Vec::new();
    for (tenant, belief) in tenants.iter().zip(beliefs) {
        let mut check = None;
        for node in 0..target.nodes() {
            let seen = check_on(target, tenant, *belief, node).await?;
            let failed = !seen.violations.is_empty();
            check = Some(seen);
            if failed {
                break;
            }
        }
        checks.extend(check);
    }
    Ok(checks)
}

/// One tenant's check as `node` sees it, read again while it disagrees (up to three
/// times).
async fn check_on<T: Target>(
    target: &T,
    tenant: &str,
    belief: Option<Belief>,
    node: usize,
) -> Result<TenantCheck, String> {
    let several = target.nodes() > 1;
    let mut attempt = 0;
    loop {
        let mut check = TenantCheck::new(target.view_on(tenant, node).await?, belief);
        if several {
            check.node = target.spread().get(node).map(|(url, _)| url.clone());
        }
        let over = check
            .violations
            .iter()
            .any(|v| matches!(v, Violation::OverAdmitted { .. }));
        if check.violations.is_empty() || over || attempt == 3 {
            return Ok(check);
        }
        attempt += 1;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Adds to each tenant's check its waitlist as the server lists it against the users
/// the clients believe are waiting in it (`waiting[i]` for `tenants[i]`). A
/// disagreement is read again a few times, as the seat check is.
async fn check_lines<T: Target>(
    target: &T,
    tenants: &[String],
    waiting: &[Vec<String>],
    checks: &mut [TenantCheck],
) -> Result<(), String> {
    for ((tenant, waiting), check) in tenants.iter().zip(waiting).zip(checks.iter_mut()) {
        let mut attempt = 0;
        let checked = loop {
            let listed = target.line(tenant).await?;
            let checked = check.clone().with_line(&listed, waiting);
            if checked.violations.len() == check.violations.len() || attempt == 3 {
                break checked;
            }
            attempt += 1;
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        };
        *check = checked;
    }
    Ok(())
}

/// Deletes the run's tenants unless they are to be kept.
async fn tear_down<T: Target>(target: &T, config: &LoadConfig, tenants: &[String]) {
    if config.keep {
        return;
    }
    for tenant in tenants {
        if let Err(e) = target.delete_tenant(tenant).await {
            eprintln!("usher load: {e}");
        }
    }
}

/// The live progress bar: hidden unless asked for (and only on a terminal).
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new(config: &LoadConfig, length: u64) -> Self {
        let bar = if config.progress {
            let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// Redraws from the counters every 200 ms until `running` turns false.
    fn follow<T: Target + 'static>(
        &self,
        ctx: Rc<Ctx<T>>,
        started: Instant,
        running: Rc<Cell<bool>>,
    ) -> actix_web::rt::task::JoinHandle<()> {
        let bar = self.bar.clone();
        actix_web::rt::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            while running.get() {
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                let now = Instant::now();
                let done = ctx.done.get();
                let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, done);
                bar.set_position(now.duration_since(started).as_millis() as u64);
                bar.set_message(format!(
                    "{rate:>8.0} ops/s  {done} done  {} refused  {} errors",
                    ctx.refused.get(),
                    ctx.errors.get()
                ));
            }
        })
    }

    fn say(&self, message: &str) {
        self.bar.set_message(message.to_string());
        self.bar.tick();
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The shared part of the timing of a run: real idle timeout and the compressed clock.
fn timing(config: &LoadConfig) -> Timing {
    Timing::new(config.time_scale, config.idle_timeout)
}

/// A handy default for the [`Mix`] and [`OpenMix`] of a run.
fn mixes() -> (Mix, OpenMix) {
    (Mix::default(), OpenMix::default())
}

#[cfg(test)]
mod tests;
