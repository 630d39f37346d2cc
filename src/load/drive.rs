//! The simulated browser users (closed loop, human pace on a compressed clock) and the
//! open-loop scheduler (a fixed timetable, whatever the answers), then the quiet
//! moment and the check.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, sleep_until};
use futures::StreamExt;

use super::report::{Op, Outcome, Report};
use super::target::Target;
use super::workload::{Action, Mix, Names, OpenMix, OpenOp, Rng, Timetable, Timing};
use super::{check_tenants, mixes, set_up, tear_down, timing, Ctx, LoadConfig, Progress};

/// One open tab.
struct Tab<K> {
    token: K,
    every: Duration,
    next_beat: Instant,
    /// The latest the server's deadline for this session can be.
    expires_by: Instant,
}

/// One simulated user and what they believe they hold.
struct Client<K> {
    tenant: usize,
    user: String,
    tabs: Vec<Tab<K>>,
    /// Sessions this user left behind (idle, or a request whose answer was lost) are
    /// all over by then.
    gone_until: Option<Instant>,
    opened: u32,
}

impl<K> Client<K> {
    fn abandon(&mut self, until: Instant) {
        self.gone_until = Some(self.gone_until.map_or(until, |g| g.max(until)));
    }
}

/// Runs the workload (closed loop, or open loop with `--rate`) and reports.
pub(super) async fn run<T: Target + 'static>(
    target: Rc<T>,
    config: &LoadConfig,
) -> Result<Report, String> {
    let timing = timing(config);
    let names = Names::new(config.seed ^ crate::token::random_u64());
    let plan = set_up(&*target, config, &names, timing.tenant_idle_timeout_secs()).await?;
    let result = drive(target.clone(), config, timing, &plan).await;
    tear_down(&*target, config, &plan.tenants).await;
    result
}

async fn drive<T: Target + 'static>(
    target: Rc<T>,
    config: &LoadConfig,
    timing: Timing,
    plan: &super::Plan,
) -> Result<Report, String> {
    let ctx = Rc::new(Ctx::new(target.clone()));
    let mut rng = Rng::new(config.seed);
    let clients: Vec<Client<T::Token>> = (0..plan.tenants.len())
        .flat_map(|t| {
            (0..config.users).map(move |u| Client {
                tenant: t,
                user: Names::user(u),
                tabs: Vec::new(),
                gone_until: None,
                opened: 0,
            })
        })
        .collect();
    let progress = Progress::new(config, config.duration.as_millis() as u64);
    let started = Instant::now();
    let running = Rc::new(Cell::new(true));
    let ticker = progress.follow(ctx.clone(), started, running.clone());
    let world = World {
        ctx: ctx.clone(),
        tenants: Rc::new(plan.tenants.clone()),
        idle: plan.idle_timeout,
    };
    let (mix, open_mix) = mixes();
    let (mut clients, skipped) = match config.rate {
        None => {
            let stop = started + config.duration;
            let tasks: Vec<_> = clients
                .into_iter()
                .map(|client| {
                    let seed = rng.next_u64();
                    actix_web::rt::spawn(user(
                        world.clone(),
                        client,
                        Rng::new(seed),
                        timing,
                        mix,
                        stop,
                    ))
                })
                .collect();
            let mut done = Vec::new();
            for task in tasks {
                done.push(
                    task.await
                        .map_err(|e| format!("a simulated user failed: {e}"))?,
                );
            }
            (done, 0)
        }
        Some(rate) => {
            open_loop(
                &world,
                clients,
                rng,
                open_mix,
                rate,
                config.duration,
                started,
            )
            .await
        }
    };
    let elapsed = started.elapsed();
    running.set(false);
    let _ = ticker.await;
    let quiet = quiet_for(&clients, Instant::now(), config.settle);
    progress.say(&format!(
        "quiet for up to {}s (not measured): live tabs heartbeat while idle sessions expire; --settle shortens it",
        quiet.as_secs_f64().ceil()
    ));
    let settled = settle(&world, &mut clients, Instant::now() + quiet).await;
    progress.finish();
    let beliefs: Vec<_> = (0..plan.tenants.len())
        .map(|t| {
            settled.then(|| {
                plan.rule.belief(
                    clients
                        .iter()
                        .filter(|c| c.tenant == t)
                        .map(|c| c.tabs.len()),
                )
            })
        })
        .collect();
    let checks = check_tenants(&*target, &plan.tenants, &beliefs).await?;
    let stats = ctx.stats.borrow().clone();
    Ok(Report {
        mode: if config.rate.is_some() {
            "open-loop"
        } else {
            "workload"
        },
        target: target.describe(),
        elapsed,
        stats,
        checks,
        storm: None,
        skipped,
        nodes: target.spread(),
    })
}

/// What every user task shares.
struct World<T: Target> {
    ctx: Rc<Ctx<T>>,
    tenants: Rc<Vec<String>>,
    idle: Duration,
}

impl<T: Target> Clone for World<T> {
    fn clone(&self) -> Self {
        World {
            ctx: self.ctx.clone(),
            tenants: self.tenants.clone(),
            idle: self.idle,
        }
    }
}

impl<T: Target> World<T> {
    /// Opens a tab: one login.
    async fn open_tab(&self, me: &mut Client<T::Token>, due: Instant) -> Outcome<()> {
        me.opened += 1;
        let label = format!("tab-{}", me.opened);
        let outcome = self
            .ctx
            .timed(
                Op::Login,
                due,
                self.ctx
                    .target
                    .login(&self.tenants[me.tenant], &me.user, &label),
            )
            .await;
        let now = Instant::now();
        match &outcome {
            Outcome::Ok(session) => me.tabs.push(Tab {
                token: session.token.clone(),
                every: session.heartbeat_every,
                next_beat: now + session.heartbeat_every,
                expires_by: now + session.idle_timeout,
            }),
            // The login may have been admitted with the answer lost.
            Outcome::Failed(_) => me.abandon(now + self.idle),
            Outcome::Refused(_) | Outcome::Ended(_) => {}
        }
        outcome.class()
    }

    /// Heartbeats tab `i`, due at `due` and started at `start`.
    async fn heartbeat(&self, me: &mut Client<T::Token>, i: usize, due: Instant, start: Instant) {
        let token = me.tabs[i].token.clone();
        let outcome = self
            .ctx
            .timed(Op::Heartbeat, start, self.ctx.target.heartbeat(&token))
            .await;
        let now = Instant::now();
        let tab = &mut me.tabs[i];
        tab.next_beat = due + tab.every;
        match outcome {
            Outcome::Ok(()) | Outcome::Failed(_) => tab.expires_by = now + self.idle,
            Outcome::Ended(_) | Outcome::Refused(_) => {
                me.tabs.swap_remove(i);
            }
        }
    }

    /// Releases tab `i`.
    async fn release(&self, me: &mut Client<T::Token>, i: usize, due: Instant) {
        let tab = me.tabs.swap_remove(i);
        let outcome = self
            .ctx
            .timed(Op::Release, due, self.ctx.target.release(&tab.token))
            .await;
        if let Outcome::Failed(_) = outcome {
            me.abandon(tab.expires_by);
        }
    }

    /// Logs out from tab `i`: every tab ends.
    async fn logout(&self, me: &mut Client<T::Token>, i: usize, due: Instant) {
        let token = me.tabs[i].token.clone();
        let outcome = self
            .ctx
            .timed(Op::Logout, due, self.ctx.target.logout(&token))
            .await;
        match outcome {
            Outcome::Ok(()) => me.tabs.clear(),
            // That tab's session was already over (expired, say), so the server
            // could not tell whose sessions to end: the other tabs live on.
            Outcome::Ended(_) | Outcome::Refused(_) => {
                me.tabs.swap_remove(i);
            }
            Outcome::Failed(_) => {
                for tab in std::mem::take(&mut me.tabs) {
                    me.abandon(tab.expires_by);
                }
            }
        }
    }

    /// Walks away: the tabs stay open on the server until they expire.
    fn go_idle(&self, me: &mut Client<T::Token>) {
        for tab in std::mem::take(&mut me.tabs) {
            me.abandon(tab.expires_by);
        }
    }
}

/// Waits for `due` and answers the moment a request's latency counts from: `due`
/// itself when the client is already late for it (a slow answer before held it up, and
/// that backlog must show), otherwise the moment the timer woke, so that the client's
/// timer resolution (about a millisecond) is not charged to the server.
async fn start_at(due: Instant) -> Instant {
    if due > Instant::now() {
        sleep_until(due.into()).await;
        Instant::now()
    } else {
        due
    }
}

/// One user at human pace until `stop`: logs in, opens tabs, heartbeats each tab at
/// the server's interval, releases, logs out or walks away, comes back.
async fn user<T: Target>(
    world: World<T>,
    mut me: Client<T::Token>,
    mut rng: Rng,
    timing: Timing,
    mix: Mix,
    stop: Instant,
) -> Client<T::Token> {
    // Users arrive spread over their think time, not all at the first instant.
    let mut next_action = Instant::now() + rng.exponential(timing.real(timing.think));
    loop {
        let beat = me
            .tabs
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.next_beat)
            .map(|(i, t)| (i, t.next_beat))
            .filter(|(_, at)| *at <= next_action);
        let due = beat.map_or(next_action, |(_, at)| at);
        if due >= stop {
            sleep_until(stop.into()).await;
            return me;
        }
        let start = start_at(due).await;
        if let Some((i, at)) = beat {
            world.heartbeat(&mut me, i, at, start).await;
            continue;
        }
        if me.tabs.is_empty() {
            next_action = match world.open_tab(&mut me, start).await {
                Outcome::Ok(()) => Instant::now() + rng.exponential(timing.real(timing.stay)),
                _ => Instant::now() + rng.exponential(timing.real(timing.retry)),
            };
            continue;
        }
        let mut pause = timing.stay;
        match mix.next_action(&mut rng, me.tabs.len()) {
            Action::OpenTab => {
                world.open_tab(&mut me, start).await;
            }
            Action::ReleaseTab => {
                let i = rng.below(me.tabs.len());
                world.release(&mut me, i, start).await;
            }
            Action::Logout => {
                let i = rng.below(me.tabs.len());
                world.logout(&mut me, i, start).await;
                pause = timing.think;
            }
            Action::GoIdle => {
                world.go_idle(&mut me);
                pause = timing.away;
            }
        }
        next_action = Instant::now() + rng.exponential(timing.real(pause));
    }
}

/// Users of the open loop; `None` while a request of theirs is out.
type Slots<K> = Rc<RefCell<Vec<Option<Client<K>>>>>;

/// The open loop: request `k` is issued at `start + k / rate` for a user not already
/// waiting for an answer, whatever became of the requests before it.
async fn open_loop<T: Target + 'static>(
    world: &World<T>,
    clients: Vec<Client<T::Token>>,
    mut rng: Rng,
    mix: OpenMix,
    rate: f64,
    duration: Duration,
    start: Instant,
) -> (Vec<Client<T::Token>>, u64) {
    let slots: Slots<T::Token> = Rc::new(RefCell::new(clients.into_iter().map(Some).collect()));
    let n = slots.borrow().len();
    let in_flight = Rc::new(Cell::new(0usize));
    let timetable = Timetable { rate };
    let mut skipped = 0;
    for k in 0..timetable.slots(duration) {
        let due = start + timetable.due(k);
        let begun = start_at(due).await;
        // A few tries at a user who is free; on a busy server most may be waiting.
        let free = (0..8)
            .map(|_| rng.below(n))
            .find(|&i| slots.borrow()[i].is_some());
        let Some(i) = free else {
            skipped += 1;
            continue;
        };
        let mut me = slots.borrow_mut()[i].take().expect("checked free");
        let op = mix.next_op(&mut rng, me.tabs.len());
        let tab = if me.tabs.is_empty() {
            0
        } else {
            rng.below(me.tabs.len())
        };
        in_flight.set(in_flight.get() + 1);
        let (world, slots, in_flight) = (world.clone(), slots.clone(), in_flight.clone());
        actix_web::rt::spawn(async move {
            match op {
                OpenOp::Login => {
                    world.open_tab(&mut me, begun).await;
                }
                OpenOp::Heartbeat => world.heartbeat(&mut me, tab, due, begun).await,
                OpenOp::Release => world.release(&mut me, tab, begun).await,
                OpenOp::Logout => world.logout(&mut me, tab, begun).await,
            }
            slots.borrow_mut()[i] = Some(me);
            in_flight.set(in_flight.get() - 1);
        });
    }
    while in_flight.get() > 0 {
        sleep(Duration::from_millis(5)).await;
    }
    let clients = Rc::try_unwrap(slots)
        .map(|cell| cell.into_inner())
        .unwrap_or_else(|shared| shared.borrow_mut().drain(..).collect())
        .into_iter()
        .flatten()
        .collect();
    (clients, skipped)
}

/// How long after a session's deadline the quiet phase waits for its expiry.
const SETTLE_MARGIN: Duration = Duration::from_millis(300);

/// How long the quiet phase takes from `now`: until every session the clients left
/// behind is past its deadline, or `limit` if that is shorter.
fn quiet_for<K>(clients: &[Client<K>], now: Instant, limit: Option<Duration>) -> Duration {
    let until = clients
        .iter()
        .filter_map(|c| c.gone_until)
        .max()
        .map_or(Duration::ZERO, |until| {
            (until + SETTLE_MARGIN).saturating_duration_since(now)
        });
    limit.map_or(until, |limit| until.min(limit))
}

/// The quiet moment: no more actions; live tabs keep heartbeating until every session
/// the clients left behind is past its deadline, then once more, so that what the
/// clients hold is exactly what is live. Not counted in the figures. Stops at
/// `deadline` if that comes first, and then answers false: what the clients hold may
/// not be all that is live.
async fn settle<T: Target>(
    world: &World<T>,
    clients: &mut [Client<T::Token>],
    deadline: Instant,
) -> bool {
    const MARGIN: Duration = SETTLE_MARGIN;
    loop {
        heartbeat_all(world, clients).await;
        let every = clients
            .iter()
            .flat_map(|c| c.tabs.iter().map(|t| t.every))
            .min()
            .unwrap_or(Duration::from_secs(1));
        let until = clients.iter().filter_map(|c| c.gone_until).max();
        let now = Instant::now();
        match until {
            Some(until) if until + MARGIN > now => {
                if now >= deadline {
                    return false;
                }
                let left = (until + MARGIN)
                    .min(deadline)
                    .saturating_duration_since(now);
                sleep(left.min(every)).await;
            }
            _ => return true,
        }
    }
}

/// One heartbeat for every live tab, a few hundred at a time. A tab found ended is
/// dropped; one whose heartbeat failed is given up and waited out.
async fn heartbeat_all<T: Target>(world: &World<T>, clients: &mut [Client<T::Token>]) {
    let tabs: Vec<(usize, usize, T::Token)> = clients
        .iter()
        .enumerate()
        .flat_map(|(c, client)| {
            client
                .tabs
                .iter()
                .enumerate()
                .map(move |(t, tab)| (c, t, tab.token.clone()))
        })
        .collect();
    let target = &world.ctx.target;
    let mut answers: Vec<(usize, usize, Outcome<()>)> = futures::stream::iter(tabs)
        .map(|(c, t, token)| async move { (c, t, target.heartbeat(&token).await) })
        .buffer_unordered(256)
        .collect()
        .await;
    // Highest tab index first, so removals leave the other indices valid.
    answers.sort_by(|a, b| (a.0, b.1).cmp(&(b.0, a.1)));
    let now = Instant::now();
    for (c, t, outcome) in answers {
        let client = &mut clients[c];
        match outcome {
            Outcome::Ok(()) => client.tabs[t].expires_by = now + world.idle,
            Outcome::Ended(_) | Outcome::Refused(_) => {
                client.tabs.remove(t);
            }
            Outcome::Failed(_) => {
                client.tabs.remove(t);
                client.abandon(now + world.idle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(until: Option<Instant>) -> Client<()> {
        Client {
            tenant: 0,
            user: "ann".into(),
            tabs: Vec::new(),
            gone_until: until,
            opened: 0,
        }
    }

    #[test]
    fn the_quiet_phase_lasts_until_the_last_abandoned_session_expires_or_the_limit() {
        let now = Instant::now();
        let secs = Duration::from_secs;
        let clients = [
            gone(Some(now + secs(4))),
            gone(Some(now + secs(9))),
            gone(None),
        ];
        assert_eq!(quiet_for(&clients, now, None), secs(9) + SETTLE_MARGIN);
        assert_eq!(quiet_for(&clients, now, Some(secs(2))), secs(2));
        assert_eq!(
            quiet_for(&clients, now, Some(secs(60))),
            secs(9) + SETTLE_MARGIN
        );
        assert_eq!(quiet_for(&[gone(None)], now, None), Duration::ZERO);
        assert_eq!(quiet_for(&clients, now + secs(20), None), Duration::ZERO);
    }
    use std::sync::Arc;

    use crate::clock::{ManualClock, Timestamp};
    use crate::engine::{Engine, EngineConfig};
    use crate::licence::LicenceSpec;
    use crate::load::target::EngineTarget;

    #[test]
    fn a_logout_through_an_expired_tab_leaves_the_users_other_tabs_held() {
        actix_web::rt::System::new().block_on(async {
            let clock = Arc::new(ManualClock::starting_at(Timestamp::from_millis(0)));
            let engine = Engine::with_clock(EngineConfig::default(), clock.clone());
            let target = Rc::new(EngineTarget::new(engine));
            let spec = LicenceSpec {
                model: "concurrent".into(),
                seats: Some(5),
                idle_timeout_secs: Some(2),
                ..Default::default()
            };
            target.create_tenant("acme", &spec).await.unwrap();
            let world = World {
                ctx: Rc::new(Ctx::new(target.clone())),
                tenants: Rc::new(vec!["acme".to_string()]),
                idle: Duration::from_secs(2),
            };
            let mut ann = Client {
                tenant: 0,
                user: "ann".into(),
                tabs: Vec::new(),
                gone_until: None,
                opened: 0,
            };
            let now = Instant::now();
            world.open_tab(&mut ann, now).await;
            world.open_tab(&mut ann, now).await;
            // Only the second tab heartbeats; the first expires.
            clock.advance(Duration::from_millis(1500));
            world.heartbeat(&mut ann, 1, now, now).await;
            clock.advance(Duration::from_millis(1000));
            world.logout(&mut ann, 0, now).await;
            assert_eq!(ann.tabs.len(), 1);
            let view = target.view("acme").await.unwrap();
            assert_eq!((view.sessions, view.seats_in_use), (1, 1));
        });
    }
}
