//! What the simulated clients do, as pure functions of a seeded random source: the
//! mix of actions, think times on a compressed clock, and the open-loop timetable.
//!
//! Nothing here touches the network or the clock, so every rule is tested exactly.

use std::time::Duration;

use super::report::Outcome;
use super::target::Standing;

/// A small seeded generator (SplitMix64): reproducible runs with `--seed`, and no
/// dependency for a load tool that needs no cryptographic quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An exponentially distributed duration with this mean: the waiting time between
    /// independent events, such as a user's next click.
    pub fn exponential(&mut self, mean: Duration) -> Duration {
        // 1 - unit() is in (0, 1], so the logarithm is finite.
        mean.mul_f64(-(1.0 - self.unit()).ln())
    }

    /// An index drawn with probability proportional to its weight; `None` when all
    /// weights are zero.
    pub fn weighted(&mut self, weights: &[f64]) -> Option<usize> {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        if total <= 0.0 {
            return None;
        }
        let mut point = self.unit() * total;
        let mut last = None;
        for (i, w) in weights.iter().enumerate() {
            if *w <= 0.0 {
                continue;
            }
            if point < *w {
                return Some(i);
            }
            point -= w;
            last = Some(i);
        }
        last
    }
}

/// What a logged-in user does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Opens another browser tab: another login of the same user.
    OpenTab,
    /// "Release licence" in one tab.
    ReleaseTab,
    /// Logs out: every tab ends.
    Logout,
    /// Walks away with the tabs open: heartbeats stop and expiry must free the seat.
    GoIdle,
}

/// How often a logged-in user takes each [`Action`] (relative weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Weight of [`Action::OpenTab`].
    pub open_tab: f64,
    /// Weight of [`Action::ReleaseTab`].
    pub release_tab: f64,
    /// Weight of [`Action::Logout`].
    pub logout: f64,
    /// Weight of [`Action::GoIdle`].
    pub go_idle: f64,
    /// Most tabs one user keeps open.
    pub max_tabs: usize,
}

impl Default for Mix {
    /// Office users: most end their day by logging out, many just close the laptop.
    fn default() -> Self {
        Mix {
            open_tab: 0.20,
            release_tab: 0.20,
            logout: 0.35,
            go_idle: 0.25,
            max_tabs: 4,
        }
    }
}

impl Mix {
    /// The next action of a user with `tabs` open tabs (`tabs > 0`). Another tab only
    /// below [`Mix::max_tabs`].
    pub fn next_action(&self, rng: &mut Rng, tabs: usize) -> Action {
        let open = if tabs < self.max_tabs {
            self.open_tab
        } else {
            0.0
        };
        let weights = [open, self.release_tab, self.logout, self.go_idle];
        match rng.weighted(&weights) {
            Some(0) => Action::OpenTab,
            Some(1) => Action::ReleaseTab,
            Some(2) => Action::Logout,
            _ => Action::GoIdle,
        }
    }
}

/// One request of the open-loop mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenOp {
    /// Log in (a first tab, or another one).
    Login,
    /// Heartbeat one tab.
    Heartbeat,
    /// Release one tab.
    Release,
    /// Log the user out.
    Logout,
}

/// The open-loop mix: what share of the timetable each request takes, given the
/// chosen user's state. Heartbeats dominate, as they do in production.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenMix {
    /// Weight of a heartbeat.
    pub heartbeat: f64,
    /// Weight of a login.
    pub login: f64,
    /// Weight of a release.
    pub release: f64,
    /// Weight of a logout.
    pub logout: f64,
    /// Most tabs one user keeps open.
    pub max_tabs: usize,
}

impl Default for OpenMix {
    fn default() -> Self {
        OpenMix {
            heartbeat: 0.80,
            login: 0.10,
            release: 0.05,
            logout: 0.05,
            max_tabs: 4,
        }
    }
}

impl OpenMix {
    /// The request for a user with `tabs` open tabs: a user with none can only log in;
    /// one at [`OpenMix::max_tabs`] opens no more.
    pub fn next_op(&self, rng: &mut Rng, tabs: usize) -> OpenOp {
        if tabs == 0 {
            return OpenOp::Login;
        }
        let login = if tabs < self.max_tabs {
            self.login
        } else {
            0.0
        };
        match rng.weighted(&[self.heartbeat, login, self.release, self.logout]) {
            Some(1) => OpenOp::Login,
            Some(2) => OpenOp::Release,
            Some(3) => OpenOp::Logout,
            _ => OpenOp::Heartbeat,
        }
    }
}

/// Human time compressed by a factor: one real second is `scale` simulated seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How many simulated seconds pass in one real second.
    pub scale: f64,
    /// Mean time before an offline user logs in.
    pub think: Duration,
    /// Mean time between a logged-in user's actions.
    pub stay: Duration,
    /// Mean time an idle user stays away before logging in again.
    pub away: Duration,
    /// Mean time before a refused user tries again.
    pub retry: Duration,
    /// The idle timeout the tenants would have in real life.
    pub idle_timeout: Duration,
}

/// The shortest idle timeout the tool gives a tenant: with the server's heartbeat
/// interval of a quarter of it (at least one second), two seconds still leave a
/// heartbeat in hand.
pub const MIN_IDLE_TIMEOUT_SECS: u64 = 2;

impl Timing {
    /// Human defaults (minutes), compressed by `scale`.
    pub fn new(scale: f64, idle_timeout: Duration) -> Self {
        Timing {
            scale: if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            },
            think: Duration::from_secs(5 * 60),
            stay: Duration::from_secs(10 * 60),
            away: Duration::from_secs(15 * 60),
            retry: Duration::from_secs(2 * 60),
            idle_timeout,
        }
    }

    /// A simulated duration in real time.
    pub fn real(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.scale)
    }

    /// The idle timeout to create tenants with, in whole seconds as the API takes it:
    /// the simulated one compressed, and at least [`MIN_IDLE_TIMEOUT_SECS`]. The
    /// server then hands out a heartbeat interval compressed by the same factor.
    pub fn tenant_idle_timeout_secs(&self) -> u64 {
        (self.real(self.idle_timeout).as_secs_f64().round() as u64).max(MIN_IDLE_TIMEOUT_SECS)
    }

    /// The heartbeat interval the server hands out to the tenants the tool creates: a
    /// quarter of their idle timeout, at least a second (as `Licence::heartbeat_interval`).
    pub fn tenant_heartbeat_secs(&self) -> u64 {
        (self.tenant_idle_timeout_secs() / 4).max(1)
    }

    /// The claim window to create queueing tenants with, in whole seconds: the
    /// simulated `claim` compressed, but never less than two heartbeat intervals, since
    /// a client that heartbeats its ticket at the interval it was given hears that it
    /// is ready up to one interval late, and must still be in time to claim.
    pub fn tenant_queue_claim_secs(&self, claim: Duration) -> u64 {
        let compressed = self.real(claim).as_secs_f64().round() as u64;
        compressed
            .max(2 * self.tenant_heartbeat_secs())
            .clamp(1, MAX_QUEUE_CLAIM_SECS)
    }
}

/// The longest claim window a licence takes.
const MAX_QUEUE_CLAIM_SECS: u64 = 3600;

/// What a client standing in line does once its ticket heartbeat is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InLine {
    /// A seat is held for it: claim at once.
    Claim,
    /// Still in line (or the answer was lost): heartbeat again an interval after this
    /// heartbeat was due.
    Wait,
    /// The ticket is over (`expired`, `claim_missed`, …, or unknown): out of the line.
    GiveUp(String),
}

impl InLine {
    /// The step after a ticket heartbeat's answer.
    pub fn after_heartbeat(answer: &Outcome<Standing>) -> Self {
        match answer {
            Outcome::Ok(standing) if standing.ready => InLine::Claim,
            Outcome::Ok(_) | Outcome::Refused(_) => InLine::Wait,
            Outcome::Ended(reason) => InLine::GiveUp(reason.clone()),
            Outcome::Failed(kind) if kind == "ticket_not_found" => InLine::GiveUp(kind.clone()),
            // A transport failure: the place is kept until the ticket's idle timeout,
            // and the next heartbeat is in time for it.
            Outcome::Failed(_) => InLine::Wait,
        }
    }
}

/// What became of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A session: the user is in, served from the line.
    Served,
    /// Not ready after all (its user's seat, which it was to share, went meanwhile):
    /// back to heartbeating at its place.
    Wait,
    /// The ticket is over: out of the line.
    GiveUp(String),
    /// The answer was lost: the claim may have become a session nobody heartbeats.
    /// Out of the line, and the session, if any, is waited out.
    Lost(String),
}

impl Claimed {
    /// The step after a claim's answer.
    pub fn after(answer: &Outcome<()>) -> Self {
        match answer {
            Outcome::Ok(()) => Claimed::Served,
            Outcome::Refused(code) if code == "not_ready" => Claimed::Wait,
            Outcome::Ended(reason) => Claimed::GiveUp(reason.clone()),
            Outcome::Refused(code) => Claimed::GiveUp(code.clone()),
            Outcome::Failed(kind) if kind == "ticket_not_found" => Claimed::GiveUp(kind.clone()),
            Outcome::Failed(kind) => Claimed::Lost(kind.clone()),
        }
    }
}

/// The open-loop timetable: request `k` is due `k / rate` seconds after the start,
/// whatever happened to the requests before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timetable {
    /// Requests per second.
    pub rate: f64,
}

impl Timetable {
    /// When request `k` is due, from the start.
    pub fn due(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// How many requests fall due in `duration`.
    pub fn slots(&self, duration: Duration) -> u64 {
        (duration.as_secs_f64() * self.rate).ceil() as u64
    }
}

/// How a tenant counts seats, from the clients' side: what the server's
/// `seats_in_use` must equal once the clients' idle sessions are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatRule {
    /// Concurrent (one seat per user) and records: users with a live tab.
    PerUser,
    /// Concurrent with `seat_per = "session"`: live tabs.
    PerSession,
    /// Named: the seats assigned, whoever is logged in.
    Assigned(u32),
}

impl SeatRule {
    /// The rule of a licence as the tool creates it.
    pub fn of(model: &str, seat_per: Option<&str>, assigned: u32) -> Self {
        match (model, seat_per) {
            ("named", _) => SeatRule::Assigned(assigned),
            ("concurrent", Some("session")) => SeatRule::PerSession,
            _ => SeatRule::PerUser,
        }
    }

    /// Seats and sessions held by users with these numbers of live tabs.
    pub fn belief(self, tabs_per_user: impl IntoIterator<Item = usize>) -> super::report::Belief {
        let (mut users, mut tabs) = (0u32, 0u32);
        for n in tabs_per_user {
            users += u32::from(n > 0);
            tabs += n as u32;
        }
        super::report::Belief {
            seats_in_use: match self {
                SeatRule::PerUser => users,
                SeatRule::PerSession => tabs,
                SeatRule::Assigned(n) => n,
            },
            sessions: tabs,
        }
    }
}

/// Tenant and user ids of a run, unique per run so that runs never collide on a
/// shared server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The run's prefix, e.g. `load-3f9a2c`.
    pub prefix: String,
}

impl Names {
    /// Names under `load-<run>`.
    pub fn new(run: u64) -> Self {
        Names {
            prefix: format!("load-{:06x}", run & 0xff_ffff),
        }
    }

    /// The id of tenant `i`.
    pub fn tenant(&self, i: usize) -> String {
        format!("{}-t{i}", self.prefix)
    }

    /// The id of user `j` (of any tenant).
    pub fn user(j: usize) -> String {
        format!("u{j}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn shares<T: std::hash::Hash + Eq>(draws: impl Iterator<Item = T>) -> HashMap<T, f64> {
        let mut counts = HashMap::new();
        let mut n = 0.0;
        for d in draws {
            *counts.entry(d).or_insert(0.0) += 1.0;
            n += 1.0;
        }
        counts.into_iter().map(|(k, c)| (k, c / n)).collect()
    }

    #[test]
    fn the_action_mix_follows_its_weights() {
        let mix = Mix::default();
        let mut rng = Rng::new(7);
        let got = shares((0..200_000).map(|_| mix.next_action(&mut rng, 1)));
        for (action, want) in [
            (Action::OpenTab, 0.20),
            (Action::ReleaseTab, 0.20),
            (Action::Logout, 0.35),
            (Action::GoIdle, 0.25),
        ] {
            assert!((got[&action] - want).abs() < 0.01, "{action:?}: {got:?}");
        }
    }

    #[test]
    fn a_user_at_the_tab_limit_opens_no_more_tabs() {
        let mix = Mix::default();
        let mut rng = Rng::new(1);
        let got = shares((0..100_000).map(|_| mix.next_action(&mut rng, mix.max_tabs)));
        assert!(!got.contains_key(&Action::OpenTab));
        // The other weights keep their proportions: logout is 0.35 / 0.80.
        assert!((got[&Action::Logout] - 0.35 / 0.80).abs() < 0.01, "{got:?}");
    }

    #[test]
    fn the_open_loop_mix_is_mostly_heartbeats_and_logs_in_users_without_tabs() {
        let mix = OpenMix::default();
        let mut rng = Rng::new(3);
        assert!((0..1000).all(|_| mix.next_op(&mut rng, 0) == OpenOp::Login));
        let got = shares((0..200_000).map(|_| mix.next_op(&mut rng, 2)));
        assert!((got[&OpenOp::Heartbeat] - 0.80).abs() < 0.01, "{got:?}");
        assert!((got[&OpenOp::Login] - 0.10).abs() < 0.01, "{got:?}");
        let full = shares((0..100_000).map(|_| mix.next_op(&mut rng, mix.max_tabs)));
        assert!(!full.contains_key(&OpenOp::Login));
    }

    #[test]
    fn weighted_draws_skip_zero_weights_and_give_none_when_all_are_zero() {
        let mut rng = Rng::new(11);
        assert_eq!(rng.weighted(&[0.0, 0.0]), None);
        assert!((0..1000).all(|_| rng.weighted(&[0.0, 2.0, 0.0]) == Some(1)));
    }

    #[test]
    fn exponential_waits_have_the_requested_mean() {
        let mut rng = Rng::new(5);
        let mean = Duration::from_millis(100);
        let n = 100_000;
        let total: Duration = (0..n).map(|_| rng.exponential(mean)).sum();
        let got = total.as_secs_f64() / n as f64;
        assert!((got - 0.1).abs() < 0.002, "mean {got}");
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert!((0..10_000).all(|_| a.below(7) < 7));
    }

    #[test]
    fn time_scale_compresses_human_time_and_the_tenants_idle_timeout() {
        let timing = Timing::new(60.0, Duration::from_secs(600));
        assert_eq!(
            timing.real(Duration::from_secs(120)),
            Duration::from_secs(2)
        );
        assert_eq!(timing.tenant_idle_timeout_secs(), 10);
        // Never below the floor, however fast the clock runs.
        let fast = Timing::new(10_000.0, Duration::from_secs(600));
        assert_eq!(fast.tenant_idle_timeout_secs(), MIN_IDLE_TIMEOUT_SECS);
        // A nonsensical scale means real time.
        assert_eq!(Timing::new(0.0, Duration::from_secs(600)).scale, 1.0);
    }

    #[test]
    fn the_claim_window_is_compressed_but_leaves_two_ticket_heartbeats() {
        // Ten simulated minutes of idle timeout at 60×: 10 s, heartbeats every 2 s.
        let timing = Timing::new(60.0, Duration::from_secs(600));
        assert_eq!(timing.tenant_heartbeat_secs(), 2);
        // Five simulated minutes of claim window: 5 s, more than two heartbeats.
        assert_eq!(timing.tenant_queue_claim_secs(Duration::from_secs(300)), 5);
        // A minute would be 1 s: raised to two heartbeat intervals.
        assert_eq!(timing.tenant_queue_claim_secs(Duration::from_secs(60)), 4);
        // At the floor of the idle timeout the heartbeat is a second.
        let fast = Timing::new(10_000.0, Duration::from_secs(600));
        assert_eq!(fast.tenant_queue_claim_secs(Duration::from_secs(60)), 2);
        // Real time: the window given, up to the licence's most.
        let real = Timing::new(1.0, Duration::from_secs(600));
        assert_eq!(real.tenant_queue_claim_secs(Duration::from_secs(400)), 400);
        assert_eq!(
            real.tenant_queue_claim_secs(Duration::from_secs(9000)),
            3600
        );
    }

    #[test]
    fn a_client_in_line_claims_when_ready_waits_otherwise_and_leaves_when_its_ticket_ends() {
        let standing = |position, ready| Outcome::Ok(Standing { position, ready });
        assert_eq!(InLine::after_heartbeat(&standing(0, true)), InLine::Claim);
        assert_eq!(InLine::after_heartbeat(&standing(3, false)), InLine::Wait);
        assert_eq!(
            InLine::after_heartbeat(&Outcome::Ended("claim_missed".into())),
            InLine::GiveUp("claim_missed".into())
        );
        assert_eq!(
            InLine::after_heartbeat(&Outcome::from_code("ticket_ended", Some("expired"))),
            InLine::GiveUp("expired".into())
        );
        // A lost answer keeps the place; an unknown ticket does not.
        assert_eq!(
            InLine::after_heartbeat(&Outcome::Failed("timeout".into())),
            InLine::Wait
        );
        assert_eq!(
            InLine::after_heartbeat(&Outcome::from_code("ticket_not_found", None)),
            InLine::GiveUp("ticket_not_found".into())
        );
    }

    #[test]
    fn a_claim_serves_or_sends_back_to_the_line_or_ends_it() {
        assert_eq!(Claimed::after(&Outcome::Ok(())), Claimed::Served);
        assert_eq!(
            Claimed::after(&Outcome::from_code("not_ready", None)),
            Claimed::Wait
        );
        assert_eq!(
            Claimed::after(&Outcome::from_code("ticket_ended", Some("claim_missed"))),
            Claimed::GiveUp("claim_missed".into())
        );
        assert_eq!(
            Claimed::after(&Outcome::Failed("timeout".into())),
            Claimed::Lost("timeout".into())
        );
    }

    #[test]
    fn the_timetable_is_fixed_in_advance() {
        let t = Timetable { rate: 1000.0 };
        assert_eq!(t.due(0), Duration::ZERO);
        assert_eq!(t.due(1500), Duration::from_millis(1500));
        assert_eq!(t.slots(Duration::from_secs(2)), 2000);
        assert_eq!(Timetable { rate: 3.0 }.slots(Duration::from_millis(500)), 2);
    }

    #[test]
    fn the_clients_expect_seats_by_the_licences_rule() {
        let tabs = [0, 1, 3, 2, 0];
        let per_user = SeatRule::of("concurrent", None, 0).belief(tabs);
        assert_eq!((per_user.seats_in_use, per_user.sessions), (3, 6));
        let per_tab = SeatRule::of("concurrent", Some("session"), 0).belief(tabs);
        assert_eq!(per_tab.seats_in_use, 6);
        assert_eq!(
            SeatRule::of("records", None, 0).belief(tabs).seats_in_use,
            3
        );
        let named = SeatRule::of("named", None, 4).belief(tabs);
        assert_eq!((named.seats_in_use, named.sessions), (4, 6));
    }

    #[test]
    fn run_names_are_valid_ids() {
        let names = Names::new(0xabcdef12);
        let tenant = names.tenant(3);
        assert_eq!(tenant, "load-cdef12-t3");
        assert!(crate::TenantId::parse(&tenant).is_ok());
        assert!(crate::UserId::parse(&Names::user(17)).is_ok());
    }
}
