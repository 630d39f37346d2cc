//! What a run measured — throughput, latency percentiles, refusals and errors per
//! operation — and the invariant check against the server's own view, as plain data
//! rendered as a table for people or JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The operations a client performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `POST /v1/tenants/{t}/sessions`.
    Login,
    /// `POST /v1/sessions/{token}/heartbeat`.
    Heartbeat,
    /// `POST /v1/sessions/{token}/release`.
    Release,
    /// `POST /v1/sessions/{token}/logout`.
    Logout,
    /// `POST /v1/tickets/{ticket}/heartbeat`: a place in the waitlist kept.
    TicketHeartbeat,
    /// `POST /v1/tickets/{ticket}/claim`: a ready ticket turned into a session.
    Claim,
}

impl Op {
    /// The operation's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Heartbeat => "heartbeat",
            Op::Release => "release",
            Op::Logout => "logout",
            Op::TicketHeartbeat => "ticket_heartbeat",
            Op::Claim => "claim",
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Success.
    Ok(T),
    /// A login refused by the licence: `licence_limit_reached`, `user_not_licensed`,
    /// `user_limit_reached`; or a claim of a ticket not ready yet (`not_ready`). The
    /// system working as sold, not an error.
    Refused(String),
    /// `session_ended` or `ticket_ended` with its reason: the session, or the place
    /// in line, was already over.
    Ended(String),
    /// Anything else: an unexpected code, a 5xx, `overloaded`, a transport failure.
    Failed(String),
}

impl<T> Outcome<T> {
    /// The outcome without its value.
    pub fn class(&self) -> Outcome<()> {
        match self {
            Outcome::Ok(_) => Outcome::Ok(()),
            Outcome::Refused(r) => Outcome::Refused(r.clone()),
            Outcome::Ended(r) => Outcome::Ended(r.clone()),
            Outcome::Failed(e) => Outcome::Failed(e.clone()),
        }
    }

    /// Sorts an error code of SPEC §4 into refused, ended or failed.
    pub fn from_code(code: &str, reason: Option<&str>) -> Self {
        match code {
            "licence_limit_reached" | "user_not_licensed" | "user_limit_reached" | "not_ready" => {
                Outcome::Refused(code.to_string())
            }
            "session_ended" | "ticket_ended" => {
                Outcome::Ended(reason.unwrap_or("unknown").to_string())
            }
            other => Outcome::Failed(other.to_string()),
        }
    }
}

/// Latencies are recorded in microseconds, up to a minute, to 3 significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// The figures of one operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Successes.
    pub ok: u64,
    /// Refusals by reason.
    pub refused: BTreeMap<String, u64>,
    /// Sessions found already ended, by reason.
    pub ended: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency of every answer, in microseconds, measured from the moment the request
    /// was due, not from when it could be sent, so a stalled server cannot hide its
    /// backlog (coordinated omission).
    pub latency: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            ok: 0,
            refused: BTreeMap::new(),
            ended: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency: new_histogram(),
        }
    }
}

impl OpStats {
    /// Requests answered or failed.
    pub fn count(&self) -> u64 {
        self.ok + self.refused_total() + self.ended_total() + self.errors_total()
    }

    /// Refusals, all reasons.
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Ended sessions, all reasons.
    pub fn ended_total(&self) -> u64 {
        self.ended.values().sum()
    }

    /// Errors, all kinds.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests per second over `elapsed`.
    pub fn per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.count(), elapsed)
    }

    /// The latency at quantile `q` (0.5, 0.99, 0.999) in microseconds; 0 when empty.
    pub fn latency_us(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    fn record(&mut self, outcome: &Outcome<()>, latency: Duration) {
        match outcome {
            Outcome::Ok(()) => self.ok += 1,
            Outcome::Refused(r) => *self.refused.entry(r.clone()).or_default() += 1,
            Outcome::Ended(r) => *self.ended.entry(r.clone()).or_default() += 1,
            Outcome::Failed(e) => *self.errors.entry(e.clone()).or_default() += 1,
        }
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
        self.latency.saturating_record(us);
    }

    fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        for (mine, theirs) in [
            (&mut self.refused, &other.refused),
            (&mut self.ended, &other.ended),
            (&mut self.errors, &other.errors),
        ] {
            for (k, v) in theirs {
                *mine.entry(k.clone()).or_default() += v;
            }
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn to_json(&self, elapsed: Duration) -> Value {
        json!({
            "count": self.count(),
            "ok": self.ok,
            "per_sec": round1(self.per_sec(elapsed)),
            "refused": self.refused,
            "ended": self.ended,
            "errors": self.errors,
            "latency_us": {
                "p50": self.latency_us(0.5),
                "p99": self.latency_us(0.99),
                "p99_9": self.latency_us(0.999),
                "max": self.latency.max(),
                "mean": round1(if self.latency.is_empty() { 0.0 } else { self.latency.mean() }),
            },
        })
    }
}

fn per_sec(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        count as f64 / elapsed.as_secs_f64()
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The figures of every operation.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Per operation.
    pub ops: BTreeMap<Op, OpStats>,
}

impl Stats {
    /// Records one request's outcome and latency.
    pub fn record(&mut self, op: Op, outcome: &Outcome<()>, latency: Duration) {
        self.ops.entry(op).or_default().record(outcome, latency);
    }

    /// All operations together.
    pub fn total(&self) -> OpStats {
        let mut total = OpStats::default();
        for stats in self.ops.values() {
            total.merge(stats);
        }
        total
    }

    /// Adds another run's figures (another thread's, say).
    pub fn merge(&mut self, other: &Stats) {
        for (op, stats) in &other.ops {
            self.ops.entry(*op).or_default().merge(stats);
        }
    }
}

/// A tenant as the server sees it: the part of `GET /v1/tenants/{t}` the check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// The tenant.
    pub tenant: String,
    /// Seats in the licence (none for records).
    pub seats: Option<u32>,
    /// Seats held.
    pub seats_in_use: u32,
    /// Live sessions.
    pub sessions: u32,
    /// Waitlist tickets in line, those a seat is held for included.
    pub queued: u32,
    /// Seats held for tickets at the head of the line, not yet claimed.
    pub held_for_queue: u32,
}

/// What the clients believe they hold in one tenant once the run is quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Belief {
    /// Seats the clients' live tabs hold, by the licence's rule.
    pub seats_in_use: u32,
    /// Live tabs.
    pub sessions: u32,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// More seats held than the licence has: the one thing that must never happen.
    /// A seat held for the head of the waitlist is held too.
    OverAdmitted {
        /// Seats in the licence.
        seats: u32,
        /// Seats held by sessions.
        seats_in_use: u32,
        /// Seats held for tickets at the head of the line.
        held_for_queue: u32,
    },
    /// The server counts other seats than the clients hold.
    SeatsDisagree {
        /// The server's count.
        server: u32,
        /// The clients' count.
        clients: u32,
    },
    /// The server counts other sessions than the clients hold.
    SessionsDisagree {
        /// The server's count.
        server: u32,
        /// The clients' count.
        clients: u32,
    },
    /// The waitlist the server lists is not the one the clients stand in.
    LineDisagrees {
        /// Users the clients believe are waiting whom the server does not list.
        missing: Vec<String>,
        /// Users the server lists whom no client believes is waiting.
        unknown: Vec<String>,
    },
    /// Seats still held for the head of the line once the run is quiet: a ready
    /// ticket nobody claimed, with clients that claim as soon as they hear.
    HeldForLine {
        /// Seats held.
        held: u32,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::OverAdmitted {
                seats,
                seats_in_use,
                held_for_queue: 0,
            } => write!(f, "over-admitted: {seats_in_use} seats in use of {seats}"),
            Violation::OverAdmitted {
                seats,
                seats_in_use,
                held_for_queue,
            } => write!(
                f,
                "over-admitted: {seats_in_use} seats in use and {held_for_queue} held for the line, of {seats}"
            ),
            Violation::SeatsDisagree { server, clients } => write!(
                f,
                "seats in use: the server counts {server}, the clients hold {clients}"
            ),
            Violation::SessionsDisagree { server, clients } => write!(
                f,
                "sessions: the server counts {server}, the clients hold {clients}"
            ),
            Violation::LineDisagrees { missing, unknown } => {
                write!(f, "waitlist:")?;
                if !missing.is_empty() {
                    write!(
                        f,
                        " {} waiting as the clients see it but not listed ({})",
                        missing.len(),
                        some_of(missing)
                    )?;
                }
                if !unknown.is_empty() {
                    write!(
                        f,
                        " {} listed whom no client holds a ticket for ({})",
                        unknown.len(),
                        some_of(unknown)
                    )?;
                }
                Ok(())
            }
            Violation::HeldForLine { held } => write!(
                f,
                "{held} seats still held for the line with every client claiming as soon as it hears"
            ),
        }
    }
}

/// The first few names of a list, for a message.
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        let _ = write!(text, ", …");
    }
    text
}

/// Checks one tenant: never more seats in use (or held for the line) than sold, and
/// exactly what the clients hold (when they know it: `None` skips that half, e.g.
/// mid-run).
pub fn check(view: &ServerView, belief: Option<Belief>) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(seats) = view.seats {
        if view.seats_in_use + view.held_for_queue > seats {
            violations.push(Violation::OverAdmitted {
                seats,
                seats_in_use: view.seats_in_use,
                held_for_queue: view.held_for_queue,
            });
        }
    }
    if let Some(belief) = belief {
        if view.seats_in_use != belief.seats_in_use {
            violations.push(Violation::SeatsDisagree {
                server: view.seats_in_use,
                clients: belief.seats_in_use,
            });
        }
        if view.sessions != belief.sessions {
            violations.push(Violation::SessionsDisagree {
                server: view.sessions,
                clients: belief.sessions,
            });
        }
    }
    violations
}

/// One ticket of a tenant's waitlist as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEntry {
    /// Whose.
    pub user: String,
    /// Its place in line (1 is next); 0 once a seat is held for it.
    pub position: u32,
}

/// The waitlist as the server lists it against the tickets the clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCheck {
    /// Tickets the server lists, ready or waiting.
    pub listed: u32,
    /// Tickets the clients hold, believing they wait.
    pub clients_waiting: u32,
    /// Listed tickets a seat is held for.
    pub held: u32,
}

/// Checks a tenant's line once the run is quiet: the server lists exactly the users
/// the clients believe are waiting (one ticket each), and holds no seat for any of
/// them, since a client claims as soon as its heartbeat says ready.
pub fn check_line(listed: &[LineEntry], waiting: &[String]) -> (LineCheck, Vec<Violation>) {
    let mut server: Vec<&str> = listed.iter().map(|e| e.user.as_str()).collect();
    let mut clients: Vec<&str> = waiting.iter().map(String::as_str).collect();
    server.sort_unstable();
    clients.sort_unstable();
    // Both sorted: walk them side by side, as a multiset difference.
    let (mut missing, mut unknown) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < server.len() || j < clients.len() {
        match (server.get(i), clients.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => {
                unknown.push(a.to_string());
                i += 1;
            }
            (Some(a), None) => {
                unknown.push(a.to_string());
                i += 1;
            }
            (_, Some(b)) => {
                missing.push(b.to_string());
                j += 1;
            }
            (None, None) => break,
        }
    }
    let held = listed.iter().filter(|e| e.position == 0).count() as u32;
    let mut violations = Vec::new();
    if !(missing.is_empty() && unknown.is_empty()) {
        violations.push(Violation::LineDisagrees { missing, unknown });
    }
    if held > 0 {
        violations.push(Violation::HeldForLine { held });
    }
    let line = LineCheck {
        listed: listed.len() as u32,
        clients_waiting: waiting.len() as u32,
        held,
    };
    (line, violations)
}

/// One tenant's check, for the report.
#[derive(Debug, Clone)]
pub struct TenantCheck {
    /// The server's view.
    pub view: ServerView,
    /// The clients' belief.
    pub belief: Option<Belief>,
    /// What is wrong, if anything.
    pub violations: Vec<Violation>,
    /// The node whose view this is, when several serve the tenant.
    pub node: Option<String>,
    /// The waitlist against the clients' tickets, for a run that queues.
    pub line: Option<LineCheck>,
}

impl TenantCheck {
    /// Checks `view` against `belief`.
    pub fn new(view: ServerView, belief: Option<Belief>) -> Self {
        let violations = check(&view, belief);
        TenantCheck {
            view,
            belief,
            violations,
            node: None,
            line: None,
        }
    }

    /// Adds the check of the tenant's line (see [`check_line`]).
    pub fn with_line(mut self, listed: &[LineEntry], waiting: &[String]) -> Self {
        let (line, violations) = check_line(listed, waiting);
        self.line = Some(line);
        self.violations.extend(violations);
        self
    }
}

/// Waits in line are recorded in microseconds, up to an hour, to 3 significant digits.
const WAIT_MAX_US: u64 = 3_600_000_000;

/// The waitlist's figures: how many logins were put in line, what became of them, and
/// how long those served waited, from the queued answer to the claim's answer.
#[derive(Debug, Clone)]
pub struct QueueStats {
    /// Logins answered with a place in line.
    pub queued: u64,
    /// Tickets claimed: sessions served from the line.
    pub served: u64,
    /// Tickets that ended before their claim (`claim_missed`, `expired`, …), or whose
    /// claim failed, by reason.
    pub gave_up: BTreeMap<String, u64>,
    /// Tickets still in line when the measured window closed.
    pub waiting_at_end: u64,
    /// Each served ticket's wait, in microseconds.
    pub wait: Histogram<u64>,
}

impl Default for QueueStats {
    fn default() -> Self {
        QueueStats {
            queued: 0,
            served: 0,
            gave_up: BTreeMap::new(),
            waiting_at_end: 0,
            wait: Histogram::new_with_bounds(1, WAIT_MAX_US, 3).expect("valid histogram bounds"),
        }
    }
}

impl QueueStats {
    /// Tickets given up, all reasons.
    pub fn gave_up_total(&self) -> u64 {
        self.gave_up.values().sum()
    }

    /// Whether every queued login is accounted for: served, given up, or still waiting.
    pub fn adds_up(&self) -> bool {
        self.queued == self.served + self.gave_up_total() + self.waiting_at_end
    }

    /// The wait at quantile `q` in microseconds; 0 when nobody was served.
    pub fn wait_us(&self, q: f64) -> u64 {
        if self.wait.is_empty() {
            0
        } else {
            self.wait.value_at_quantile(q)
        }
    }

    /// A ticket served after waiting `wait`.
    pub fn record_served(&mut self, wait: Duration) {
        self.served += 1;
        let us = (wait.as_micros() as u64).clamp(1, WAIT_MAX_US);
        self.wait.saturating_record(us);
    }

    /// A ticket given up, for `reason`.
    pub fn record_gave_up(&mut self, reason: &str) {
        *self.gave_up.entry(reason.to_string()).or_default() += 1;
    }

    fn to_json(&self) -> Value {
        let ms = |us: u64| round1(us as f64 / 1000.0);
        json!({
            "queued": self.queued,
            "served": self.served,
            "gave_up": self.gave_up_total(),
            "gave_up_by_reason": self.gave_up,
            "waiting_at_end": self.waiting_at_end,
            "adds_up": self.adds_up(),
            "wait_ms": {
                "p50": ms(self.wait_us(0.5)),
                "p90": ms(self.wait_us(0.9)),
                "p99": ms(self.wait_us(0.99)),
                "max": ms(self.wait.max()),
                "mean": round1(if self.wait.is_empty() { 0.0 } else { self.wait.mean() / 1000.0 }),
            },
        })
    }

    fn to_text(&self, logins: u64) -> String {
        let mut out = format!(
            "queue: {} of {logins} logins answered were put in line: {} served from the line, {} gave up",
            self.queued,
            self.served,
            self.gave_up_total()
        );
        if !self.gave_up.is_empty() {
            let parts: Vec<String> = self
                .gave_up
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = write!(out, " ({})", parts.join(", "));
        }
        let _ = write!(out, ", {} still waiting at the end", self.waiting_at_end);
        if !self.adds_up() {
            let _ = write!(out, " — FIGURES DO NOT ADD UP");
        }
        if self.served > 0 {
            let _ = write!(
                out,
                "\nwait in line (queued answer to claim answer): p50 {}  p90 {}  p99 {}  max {}",
                wait(self.wait_us(0.5)),
                wait(self.wait_us(0.9)),
                wait(self.wait_us(0.99)),
                wait(self.wait.max())
            );
        }
        out
    }
}

/// The storm's own figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormSummary {
    /// Simultaneous logins.
    pub logins: u64,
    /// Seats of the tenant.
    pub seats: u32,
    /// From the common start to the last answer.
    pub wall: Duration,
    /// Under a licence that queues: the line the storm formed, and its draining.
    pub line: Option<StormLine>,
}

/// The line a storm forms under a licence that queues: every login past the seats is
/// put in line, at positions 1 to N − S, each exactly once; then the seats are
/// released and passed down the line, one claim after the other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormLine {
    /// Logins answered with a place in line.
    pub queued: u64,
    /// Positions of 1 to N − S not answered exactly once, plus positions outside it.
    pub position_faults: u64,
    /// Tickets whose heartbeat did not say ready, or whose claim failed, when their
    /// turn came: the line did not serve first come, first served.
    pub out_of_turn: u64,
    /// From the first release to the last claim's answer, once every ticket was
    /// served.
    pub drained: Option<Duration>,
}

impl StormSummary {
    /// How many logins the licence must admit: one per seat, or all if fewer.
    pub fn expected_admitted(&self) -> u64 {
        self.logins.min(u64::from(self.seats))
    }

    /// How many logins must be put in line: all past the seats, when the licence
    /// queues; none otherwise.
    pub fn expected_queued(&self) -> u64 {
        match self.line {
            Some(_) => self.logins - self.expected_admitted(),
            None => 0,
        }
    }
}

/// How far the positions answered to a storm's queued logins are from 1 to `expected`,
/// each exactly once: the positions missing, plus every extra answer (a duplicate or a
/// position past `expected`).
pub fn position_faults(positions: &[u32], expected: u64) -> u64 {
    let mut seen = vec![0u32; expected as usize];
    let mut extra = 0u64;
    for &p in positions {
        match seen.get_mut((p as usize).wrapping_sub(1)) {
            Some(n) if *n == 0 => *n = 1,
            _ => extra += 1,
        }
    }
    let missing = seen.iter().filter(|&&n| n == 0).count() as u64;
    missing + extra
}

/// A run's report.
#[derive(Debug, Clone)]
pub struct Report {
    /// `workload`, `open-loop` or `storm`.
    pub mode: &'static str,
    /// The server's URL, or `in-process`.
    pub target: String,
    /// Measured time (the quiet moment and set-up excluded).
    pub elapsed: Duration,
    /// Per operation.
    pub stats: Stats,
    /// Tenants checked.
    pub checks: Vec<TenantCheck>,
    /// Storm figures, for a storm.
    pub storm: Option<StormSummary>,
    /// Open-loop requests that found no user free to act for them.
    pub skipped: u64,
    /// Requests sent to each node, by URL (over HTTP).
    pub nodes: Vec<(String, u64)>,
    /// The waitlist's figures, for a run whose tenants queue.
    pub queue: Option<QueueStats>,
}

impl Report {
    /// Whether every invariant held (and a storm admitted exactly one login per seat
    /// without errors).
    ///
    /// With a waitlist, its figures must add up too, and a storm must have put every
    /// login past the seats in line at its own position and served them in order.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.violations.is_empty())
            && self.storm_exact().unwrap_or(true)
            && self.queue.as_ref().is_none_or(QueueStats::adds_up)
    }

    /// Logins admitted at once: answered, less those put in line.
    pub fn admitted(&self) -> u64 {
        let login = self.stats.ops.get(&Op::Login).map_or(0, |s| s.ok);
        login - self.queue.as_ref().map_or(0, |q| q.queued.min(login))
    }

    /// For a storm: admitted exactly `min(logins, seats)` and nothing failed; under a
    /// licence that queues, every other login in line at positions 1 to N − S, and
    /// the line drained in order.
    pub fn storm_exact(&self) -> Option<bool> {
        let storm = self.storm?;
        let login = self.stats.ops.get(&Op::Login).cloned().unwrap_or_default();
        let line_exact = storm.line.is_none_or(|line| {
            line.queued == storm.expected_queued()
                && line.position_faults == 0
                && line.out_of_turn == 0
                && line.drained.is_some()
        });
        Some(
            self.admitted() == storm.expected_admitted() && login.errors_total() == 0 && line_exact,
        )
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let total = self.stats.total();
        let ops: serde_json::Map<String, Value> = self
            .stats
            .ops
            .iter()
            .map(|(op, s)| (op.as_str().to_string(), s.to_json(self.elapsed)))
            .collect();
        let tenants: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "tenant": c.view.tenant,
                    "seats": c.view.seats,
                    "seats_in_use": c.view.seats_in_use,
                    "sessions": c.view.sessions,
                    "clients_seats_in_use": c.belief.map(|b| b.seats_in_use),
                    "clients_sessions": c.belief.map(|b| b.sessions),
                    "violations": c.violations.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                    "node": c.node,
                    "queued": c.view.queued,
                    "held_for_queue": c.view.held_for_queue,
                    "line": c.line.map(|l| json!({
                        "listed": l.listed,
                        "clients_waiting": l.clients_waiting,
                        "held": l.held,
                    })),
                })
            })
            .collect();
        let mut out = json!({
            "mode": self.mode,
            "target": self.target,
            "elapsed_secs": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "operations": ops,
            "total": total.to_json(self.elapsed),
            "invariant": {
                "ok": self.checks.iter().all(|c| c.violations.is_empty()),
                "tenants": tenants,
            },
            "passed": self.passed(),
        });
        if self.skipped > 0 {
            out["skipped"] = json!(self.skipped);
        }
        if self.nodes.len() > 1 {
            out["nodes"] = self
                .nodes
                .iter()
                .map(|(url, sent)| json!({"url": url, "requests": sent}))
                .collect();
        }
        if let Some(storm) = self.storm {
            let login = self.stats.ops.get(&Op::Login).cloned().unwrap_or_default();
            out["storm"] = json!({
                "logins": storm.logins,
                "seats": storm.seats,
                "admitted": self.admitted(),
                "expected_admitted": storm.expected_admitted(),
                "refused": login.refused_total(),
                "errors": login.errors_total(),
                "wall_secs": secs6(storm.wall),
                "exact": self.storm_exact(),
            });
            if let Some(line) = storm.line {
                out["storm"]["queued"] = json!(line.queued);
                out["storm"]["expected_queued"] = json!(storm.expected_queued());
                out["storm"]["position_faults"] = json!(line.position_faults);
                out["storm"]["out_of_turn"] = json!(line.out_of_turn);
                out["storm"]["drain_secs"] = json!(line.drained.map(secs6));
            }
        }
        if let Some(queue) = &self.queue {
            out["queue"] = queue.to_json();
        }
        out
    }

    /// The report as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "usher load: {} against {}, {:.2}s measured",
            self.mode,
            self.target,
            self.elapsed.as_secs_f64()
        );
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "OPERATION",
            "COUNT",
            "PER SEC",
            "OK",
            "REFUSED",
            "ENDED",
            "ERRORS",
            "P50",
            "P99",
            "P99.9",
            "MAX",
        ]);
        let total = self.stats.total();
        let rows = self
            .stats
            .ops
            .iter()
            .map(|(op, s)| (op.as_str(), s))
            .chain(std::iter::once(("total", &total)));
        for (name, s) in rows {
            table.add_row(vec![
                name.to_string(),
                s.count().to_string(),
                format!("{:.0}", s.per_sec(self.elapsed)),
                s.ok.to_string(),
                s.refused_total().to_string(),
                s.ended_total().to_string(),
                s.errors_total().to_string(),
                micros(s.latency_us(0.5)),
                micros(s.latency_us(0.99)),
                micros(s.latency_us(0.999)),
                micros(s.latency.max()),
            ]);
        }
        let _ = writeln!(out, "{table}");
        for (what, map) in [
            ("refused", &total.refused),
            ("ended", &total.ended),
            ("errors", &total.errors),
        ] {
            if !map.is_empty() {
                let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(out, "{what}: {}", parts.join(", "));
            }
        }
        if self.skipped > 0 {
            let _ = writeln!(
                out,
                "skipped: {} requests found every user busy",
                self.skipped
            );
        }
        if self.nodes.len() > 1 {
            let parts: Vec<String> = self
                .nodes
                .iter()
                .map(|(url, sent)| format!("{url} {sent}"))
                .collect();
            let _ = writeln!(out, "requests per node: {}", parts.join(", "));
        }
        if let Some(storm) = self.storm {
            let login = self.stats.ops.get(&Op::Login).cloned().unwrap_or_default();
            let queued = storm
                .line
                .map(|line| {
                    format!(
                        ", {} queued (expected {}, positions {})",
                        line.queued,
                        storm.expected_queued(),
                        if line.position_faults == 0 {
                            "1 to N − S each once".to_string()
                        } else {
                            format!("{} off", line.position_faults)
                        }
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "storm: {} simultaneous logins onto {} seats: {} admitted (expected {}){queued}, {} refused, {} errors, all answered in {:.3}s — {}",
                storm.logins,
                storm.seats,
                self.admitted(),
                storm.expected_admitted(),
                login.refused_total(),
                login.errors_total(),
                storm.wall.as_secs_f64(),
                if self.storm_exact() == Some(true) { "exact" } else { "NOT EXACT" }
            );
            if let Some(line) = storm.line {
                match line.drained {
                    Some(drained) => {
                        let _ = writeln!(
                            out,
                            "line: drained in {:.3}s after the seats were released ({} served in turn, {} out of turn)",
                            drained.as_secs_f64(),
                            line.queued,
                            line.out_of_turn
                        );
                    }
                    None => {
                        let _ =
                            writeln!(out, "line: NOT DRAINED ({} out of turn)", line.out_of_turn);
                    }
                }
            }
        }
        if let Some(queue) = &self.queue {
            let logins = self.stats.ops.get(&Op::Login).map_or(0, |s| s.ok);
            let _ = writeln!(out, "{}", queue.to_text(logins));
        }
        let broken: Vec<&TenantCheck> = self
            .checks
            .iter()
            .filter(|c| !c.violations.is_empty())
            .collect();
        if broken.is_empty() && self.checks.iter().any(|c| c.belief.is_none()) {
            let _ = writeln!(
                out,
                "invariant: held in all {} tenants (seats in use within the licence; the quiet phase was cut short by --settle, so they were not compared with what the clients hold)",
                self.checks.len()
            );
        } else if broken.is_empty() {
            let _ = writeln!(
                out,
                "invariant: held in all {} tenants (seats in use within the licence and equal to what the clients hold{}){}",
                self.checks.len(),
                if self.checks.iter().any(|c| c.line.is_some()) {
                    "; the waitlist as listed equal to the tickets the clients hold, no seat left held for it"
                } else {
                    ""
                },
                if self.nodes.len() > 1 { ", as every node sees them" } else { "" }
            );
        } else {
            for c in broken {
                let seen = c
                    .node
                    .as_ref()
                    .map(|node| format!(" (as {node} sees it)"))
                    .unwrap_or_default();
                for v in &c.violations {
                    let _ = writeln!(out, "INVARIANT BROKEN in {}{seen}: {v}", c.view.tenant);
                }
            }
        }
        out
    }
}

/// A wait in line: seconds once it is one.
fn wait(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else {
        micros(us)
    }
}

fn secs6(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

fn micros(us: u64) -> String {
    if us >= 10_000_000 {
        return format!("{:.1}s", us as f64 / 1e6);
    }
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn throughput_is_answers_per_second_of_measured_time() {
        let mut stats = Stats::default();
        for _ in 0..300 {
            stats.record(Op::Heartbeat, &Outcome::Ok(()), ms(1));
        }
        for _ in 0..100 {
            stats.record(
                Op::Login,
                &Outcome::Refused("licence_limit_reached".into()),
                ms(1),
            );
        }
        let hb = &stats.ops[&Op::Heartbeat];
        assert_eq!(hb.per_sec(Duration::from_secs(2)), 150.0);
        assert_eq!(stats.total().count(), 400);
        assert_eq!(stats.total().per_sec(Duration::from_secs(4)), 100.0);
        assert_eq!(hb.per_sec(Duration::ZERO), 0.0);
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut stats = Stats::default();
        // 1..=1000 ms: p50 is 500 ms, p99 990 ms, p99.9 999 ms (to 3 digits).
        for n in 1..=1000 {
            stats.record(Op::Login, &Outcome::Ok(()), ms(n));
        }
        let login = &stats.ops[&Op::Login];
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() / (want as f64) < 0.002;
        assert!(
            close(login.latency_us(0.5), 500_000),
            "{}",
            login.latency_us(0.5)
        );
        assert!(
            close(login.latency_us(0.99), 990_000),
            "{}",
            login.latency_us(0.99)
        );
        assert!(
            close(login.latency_us(0.999), 999_000),
            "{}",
            login.latency_us(0.999)
        );
        assert_eq!(OpStats::default().latency_us(0.99), 0);
    }

    #[test]
    fn outcomes_are_counted_by_kind_and_reason() {
        let mut stats = Stats::default();
        let outcomes = [
            Outcome::Ok(()),
            Outcome::from_code("licence_limit_reached", None),
            Outcome::from_code("licence_limit_reached", None),
            Outcome::from_code("user_not_licensed", None),
            Outcome::from_code("session_ended", Some("expired")),
            Outcome::from_code("overloaded", None),
            Outcome::Failed("timeout".into()),
        ];
        for o in &outcomes {
            stats.record(Op::Login, o, ms(1));
        }
        let login = &stats.ops[&Op::Login];
        assert_eq!(login.ok, 1);
        assert_eq!(login.refused["licence_limit_reached"], 2);
        assert_eq!(login.refused_total(), 3);
        assert_eq!(login.ended["expired"], 1);
        assert_eq!(login.errors_total(), 2);
        assert_eq!(login.count(), outcomes.len() as u64);
    }

    #[test]
    fn merging_adds_counts_and_latencies() {
        let (mut a, mut b) = (Stats::default(), Stats::default());
        a.record(Op::Heartbeat, &Outcome::Ok(()), ms(1));
        b.record(Op::Heartbeat, &Outcome::Ok(()), ms(100));
        b.record(Op::Release, &Outcome::Failed("io".into()), ms(2));
        a.merge(&b);
        assert_eq!(a.ops[&Op::Heartbeat].count(), 2);
        assert!(a.ops[&Op::Heartbeat].latency.max() >= 99_000);
        assert_eq!(a.ops[&Op::Release].errors["io"], 1);
    }

    fn view(seats: Option<u32>, seats_in_use: u32, sessions: u32) -> ServerView {
        ServerView {
            tenant: "t".into(),
            seats,
            seats_in_use,
            sessions,
            queued: 0,
            held_for_queue: 0,
        }
    }

    #[test]
    fn the_check_passes_when_the_server_agrees_with_the_clients() {
        let belief = Belief {
            seats_in_use: 3,
            sessions: 5,
        };
        assert!(check(&view(Some(3), 3, 5), Some(belief)).is_empty());
        assert!(check(&view(None, 3, 5), Some(belief)).is_empty());
    }

    #[test]
    fn the_check_catches_an_over_admission() {
        let violations = check(&view(Some(500), 501, 501), None);
        assert_eq!(
            violations,
            vec![Violation::OverAdmitted {
                seats: 500,
                seats_in_use: 501,
                held_for_queue: 0,
            }]
        );
        // Even when the clients (wrongly) believe the same.
        let belief = Belief {
            seats_in_use: 501,
            sessions: 501,
        };
        assert_eq!(check(&view(Some(500), 501, 501), Some(belief)).len(), 1);
    }

    #[test]
    fn the_check_catches_seats_or_sessions_the_clients_do_not_hold() {
        let belief = Belief {
            seats_in_use: 2,
            sessions: 2,
        };
        let violations = check(&view(Some(10), 3, 4), Some(belief));
        assert_eq!(
            violations,
            vec![
                Violation::SeatsDisagree {
                    server: 3,
                    clients: 2
                },
                Violation::SessionsDisagree {
                    server: 4,
                    clients: 2
                },
            ]
        );
    }

    #[test]
    fn a_storm_is_exact_only_with_one_admission_per_seat_and_no_errors() {
        let mut stats = Stats::default();
        for _ in 0..5 {
            stats.record(Op::Login, &Outcome::Ok(()), ms(1));
        }
        for _ in 0..45 {
            stats.record(
                Op::Login,
                &Outcome::Refused("licence_limit_reached".into()),
                ms(1),
            );
        }
        let mut report = Report {
            mode: "storm",
            target: "in-process".into(),
            elapsed: ms(10),
            stats,
            checks: vec![TenantCheck::new(
                view(Some(5), 5, 5),
                Some(Belief {
                    seats_in_use: 5,
                    sessions: 5,
                }),
            )],
            storm: Some(StormSummary {
                logins: 50,
                seats: 5,
                wall: ms(10),
                line: None,
            }),
            skipped: 0,
            nodes: Vec::new(),
            queue: None,
        };
        assert!(report.passed());
        assert_eq!(report.to_json()["storm"]["admitted"], 5);
        assert_eq!(report.to_json()["passed"], true);
        report
            .stats
            .record(Op::Login, &Outcome::Failed("timeout".into()), ms(1));
        assert!(!report.passed());
        assert!(report.to_text().contains("NOT EXACT"));
    }

    #[test]
    fn a_run_whose_quiet_phase_was_cut_short_says_what_it_did_not_compare() {
        let report = Report {
            mode: "workload",
            target: "in-process".into(),
            elapsed: ms(10),
            stats: Stats::default(),
            checks: vec![TenantCheck::new(view(Some(5), 3, 4), None)],
            storm: None,
            skipped: 0,
            nodes: Vec::new(),
            queue: None,
        };
        assert!(report.passed());
        let text = report.to_text();
        assert!(text.contains("cut short by --settle"), "{text}");
        assert!(!text.contains("equal to what the clients hold"), "{text}");
    }

    #[test]
    fn a_report_with_a_broken_invariant_fails_and_says_so() {
        let report = Report {
            mode: "workload",
            target: "in-process".into(),
            elapsed: ms(10),
            stats: Stats::default(),
            checks: vec![TenantCheck::new(view(Some(1), 2, 2), None)],
            storm: None,
            skipped: 0,
            nodes: Vec::new(),
            queue: None,
        };
        assert!(!report.passed());
        assert!(report.to_text().contains("INVARIANT BROKEN"));
        assert_eq!(report.to_json()["invariant"]["ok"], false);
    }

    fn entry(user: &str, position: u32) -> LineEntry {
        LineEntry {
            user: user.into(),
            position,
        }
    }

    fn names(users: &[&str]) -> Vec<String> {
        users.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn the_line_check_passes_when_the_server_lists_exactly_who_the_clients_think_waits() {
        let listed = [entry("bob", 2), entry("ann", 1)];
        let (line, violations) = check_line(&listed, &names(&["ann", "bob"]));
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            line,
            LineCheck {
                listed: 2,
                clients_waiting: 2,
                held: 0
            }
        );
        assert!(check_line(&[], &[]).1.is_empty());
    }

    #[test]
    fn the_line_check_names_who_is_missing_or_unknown_and_seats_left_held() {
        let listed = [entry("ann", 0), entry("cat", 1), entry("cat", 2)];
        let (line, violations) = check_line(&listed, &names(&["ann", "bob", "cat"]));
        assert_eq!(line.held, 1);
        assert_eq!(
            violations,
            vec![
                Violation::LineDisagrees {
                    missing: names(&["bob"]),
                    unknown: names(&["cat"]),
                },
                Violation::HeldForLine { held: 1 },
            ]
        );
        let text = violations[0].to_string();
        assert!(
            text.contains("not listed (bob)") && text.contains("(cat)"),
            "{text}"
        );
    }

    #[test]
    fn seats_held_for_the_line_count_against_the_licence() {
        let mut full = view(Some(5), 4, 4);
        full.held_for_queue = 1;
        assert!(check(&full, None).is_empty());
        full.held_for_queue = 2;
        assert_eq!(
            check(&full, None),
            vec![Violation::OverAdmitted {
                seats: 5,
                seats_in_use: 4,
                held_for_queue: 2
            }]
        );
    }

    #[test]
    fn storm_positions_must_be_one_to_n_each_exactly_once() {
        assert_eq!(position_faults(&[3, 1, 2], 3), 0);
        assert_eq!(position_faults(&[], 0), 0);
        // 2 twice: one extra answer and 3 missing.
        assert_eq!(position_faults(&[1, 2, 2], 3), 2);
        // 0 and 4 lie outside 1..=3, which then misses 2 and 3.
        assert_eq!(position_faults(&[0, 1, 4], 3), 4);
        assert_eq!(position_faults(&[1, 2], 3), 1);
    }

    #[test]
    fn queue_figures_add_up_and_a_report_whose_figures_do_not_fails() {
        let mut queue = QueueStats {
            queued: 5,
            waiting_at_end: 1,
            ..Default::default()
        };
        queue.record_served(ms(1500));
        queue.record_served(ms(500));
        queue.record_gave_up("claim_missed");
        assert!(!queue.adds_up(), "one of the five is unaccounted for");
        queue.record_gave_up("expired");
        assert!(queue.adds_up());
        assert_eq!(queue.gave_up_total(), 2);
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() / (want as f64) < 0.002;
        assert!(close(queue.wait_us(0.5), 500_000), "{}", queue.wait_us(0.5));
        assert!(close(queue.wait.max(), 1_500_000));
        let json = queue.to_json();
        assert_eq!(json["gave_up_by_reason"]["claim_missed"], 1);
        // To 3 significant digits.
        let max = json["wait_ms"]["max"].as_f64().unwrap();
        assert!((max - 1500.0).abs() < 2.0, "{max}");
        let mut report = Report {
            mode: "workload",
            target: "in-process".into(),
            elapsed: ms(10),
            stats: Stats::default(),
            checks: Vec::new(),
            storm: None,
            skipped: 0,
            nodes: Vec::new(),
            queue: Some(queue),
        };
        assert!(report.passed());
        assert!(report
            .to_text()
            .contains("2 gave up (claim_missed 1, expired 1)"));
        assert!(
            report.to_text().contains("max 1.50s"),
            "{}",
            report.to_text()
        );
        if let Some(queue) = report.queue.as_mut() {
            queue.queued += 1;
        }
        assert!(!report.passed());
        assert!(report.to_text().contains("DO NOT ADD UP"));
    }

    #[test]
    fn a_storm_that_queues_is_exact_only_with_every_position_once_and_the_line_drained() {
        let mut stats = Stats::default();
        for _ in 0..50 {
            stats.record(Op::Login, &Outcome::Ok(()), ms(1));
        }
        let line = StormLine {
            queued: 45,
            position_faults: 0,
            out_of_turn: 0,
            drained: Some(ms(20)),
        };
        let mut report = Report {
            mode: "storm",
            target: "in-process".into(),
            elapsed: ms(30),
            stats,
            checks: Vec::new(),
            storm: Some(StormSummary {
                logins: 50,
                seats: 5,
                wall: ms(10),
                line: Some(line),
            }),
            skipped: 0,
            nodes: Vec::new(),
            queue: Some(QueueStats {
                queued: 45,
                waiting_at_end: 45,
                ..Default::default()
            }),
        };
        assert_eq!(report.admitted(), 5);
        assert_eq!(report.storm_exact(), Some(true));
        assert_eq!(report.to_json()["storm"]["expected_queued"], 45);
        for broken in [
            StormLine {
                position_faults: 2,
                ..line
            },
            StormLine {
                out_of_turn: 1,
                ..line
            },
            StormLine {
                drained: None,
                ..line
            },
            StormLine { queued: 44, ..line },
        ] {
            report.storm = report.storm.map(|s| StormSummary {
                line: Some(broken),
                ..s
            });
            assert_eq!(report.storm_exact(), Some(false), "{broken:?}");
            assert!(report.to_text().contains("NOT EXACT"));
        }
    }
}
