//! The simulated browser users (closed loop, human pace on a compressed clock) and the
//! open-loop scheduler (a fixed timetable, whatever the answers), then the quiet
//! moment and the check.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::rt::time::{sleep, sleep_until};
use futures::StreamExt;

use super::report::{Op, Outcome, Report};
use super::target::{Entry, Session, Standing, Target};
use super::workload::{
    Action, Claimed, InLine, Mix, Names, OpenMix, OpenOp, Rng, Timetable, Timing,
};
use super::{
    check_lines, check_tenants, mixes, set_up, tear_down, timing, Ctx, LoadConfig, Progress,
};

/// One open tab.
struct Tab<K> {
    token: K,
    every: Duration,
    next_beat: Instant,
    /// The latest the server's deadline for this session can be.
    expires_by: Instant,
}

impl<K> Tab<K> {
    /// A tab of a session admitted at `now`.
    fn of(session: Session<K>, now: Instant) -> Self {
        Tab {
            token: session.token,
            every: session.heartbeat_every,
            next_beat: now + session.heartbeat_every,
            expires_by: now + session.idle_timeout,
        }
    }
}

/// A place in line: a login at the limit of a licence that queues.
struct Waiting<K> {
    ticket: K,
    every: Duration,
    next_beat: Instant,
    /// When the queued answer came: the wait runs from here to the claim's answer.
    joined: Instant,
}

/// How a user left the line.
enum LeftLine {
    /// With a session.
    Served,
    /// Without: the ticket ended.
    GaveUp,
}

/// One simulated user and what they believe they hold.
struct Client<K> {
    tenant: usize,
    user: String,
    tabs: Vec<Tab<K>>,
    /// The user's place in line, while a login of theirs waits for a seat: they take
    /// no other action meanwhile (their open tabs keep heartbeating).
    waiting: Option<Waiting<K>>,
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
    let plan = set_up(&*target, config, &names, &timing).await?;
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
                waiting: None,
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
        claim_window: plan.queue_claim,
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
    ctx.queue.borrow_mut().waiting_at_end =
        clients.iter().filter(|c| c.waiting.is_some()).count() as u64;
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
    let mut checks = check_tenants(&*target, &plan.tenants, &beliefs).await?;
    if config.queue && settled {
        let waiting: Vec<Vec<String>> = (0..plan.tenants.len())
            .map(|t| {
                clients
                    .iter()
                    .filter(|c| c.tenant == t && c.waiting.is_some())
                    .map(|c| c.user.clone())
                    .collect()
            })
            .collect();
        check_lines(&*target, &plan.tenants, &waiting, &mut checks).await?;
    }
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
        queue: config.queue.then(|| ctx.queue.borrow().clone()),
    })
}

/// What every user task shares.
struct World<T: Target> {
    ctx: Rc<Ctx<T>>,
    tenants: Rc<Vec<String>>,
    idle: Duration,
    /// The tenants' claim window (zero when they do not queue).
    claim_window: Duration,
}

impl<T: Target> Clone for World<T> {
    fn clone(&self) -> Self {
        World {
            ctx: self.ctx.clone(),
            tenants: self.tenants.clone(),
            idle: self.idle,
            claim_window: self.claim_window,
        }
    }
}

impl<T: Target> World<T> {
    /// Opens a tab: one login. Put in line, the user waits there.
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
        let class = outcome.class();
        match outcome {
            Outcome::Ok(Entry::Admitted(session)) => me.tabs.push(Tab::of(session, now)),
            Outcome::Ok(Entry::Queued(place)) => {
                self.ctx.queue.borrow_mut().queued += 1;
                me.waiting = Some(Waiting {
                    ticket: place.ticket,
                    every: place.heartbeat_every,
                    next_beat: now + place.heartbeat_every,
                    joined: now,
                });
            }
            // The login may have been admitted (or put in line) with the answer lost.
            Outcome::Failed(_) => me.abandon(now + self.idle + self.claim_window),
            Outcome::Refused(_) | Outcome::Ended(_) => {}
        }
        class
    }

    /// Heartbeats the user's ticket, due at `due` and started at `start`, and claims
    /// the seat at once if one is held for it. Answers how the user left the line, if
    /// they did.
    async fn ticket_heartbeat(
        &self,
        me: &mut Client<T::Token>,
        due: Instant,
        start: Instant,
    ) -> Option<LeftLine> {
        let ticket = me.waiting.as_ref()?.ticket.clone();
        let answer = self
            .ctx
            .timed(
                Op::TicketHeartbeat,
                start,
                self.ctx.target.ticket_heartbeat(&ticket),
            )
            .await;
        match InLine::after_heartbeat(&answer) {
            InLine::Claim => self.claim(me).await,
            InLine::Wait => {
                if let Some(w) = me.waiting.as_mut() {
                    w.next_beat = due + w.every;
                }
                None
            }
            InLine::GiveUp(reason) => {
                me.waiting = None;
                self.ctx.queue.borrow_mut().record_gave_up(&reason);
                Some(LeftLine::GaveUp)
            }
        }
    }

    /// Claims the seat held for the user's ticket.
    async fn claim(&self, me: &mut Client<T::Token>) -> Option<LeftLine> {
        let ticket = me.waiting.as_ref()?.ticket.clone();
        let answer = self
            .ctx
            .timed(Op::Claim, Instant::now(), self.ctx.target.claim(&ticket))
            .await;
        let now = Instant::now();
        let mut queue = self.ctx.queue.borrow_mut();
        match Claimed::after(&answer.class()) {
            Claimed::Served => {
                if let Outcome::Ok(session) = answer {
                    me.tabs.push(Tab::of(session, now));
                }
                let waited = me.waiting.take().map(|w| now - w.joined);
                queue.record_served(waited.unwrap_or_default());
                Some(LeftLine::Served)
            }
            Claimed::Wait => {
                if let Some(w) = me.waiting.as_mut() {
                    w.next_beat = now + w.every;
                }
                None
            }
            Claimed::GiveUp(reason) => {
                me.waiting = None;
                queue.record_gave_up(&reason);
                Some(LeftLine::GaveUp)
            }
            Claimed::Lost(reason) => {
                me.waiting = None;
                queue.record_gave_up(&reason);
                me.abandon(now + self.idle);
                Some(LeftLine::GaveUp)
            }
        }
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
/// the server's interval, releases, logs out or walks away, comes back. A login put
/// in line waits there: the ticket heartbeats at the server's interval and is claimed
/// as soon as a heartbeat says ready; a ticket that ends sends the user away to retry.
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
        // In line, the user's next move is the ticket's heartbeat, nothing else.
        let in_line = me.waiting.as_ref().map(|w| w.next_beat);
        let next = in_line.unwrap_or(next_action);
        let beat = me
            .tabs
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.next_beat)
            .map(|(i, t)| (i, t.next_beat))
            .filter(|(_, at)| *at <= next);
        let due = beat.map_or(next, |(_, at)| at);
        if due >= stop {
            sleep_until(stop.into()).await;
            return me;
        }
        let start = start_at(due).await;
        if let Some((i, at)) = beat {
            world.heartbeat(&mut me, i, at, start).await;
            continue;
        }
        if let Some(at) = in_line {
            let pause = match world.ticket_heartbeat(&mut me, at, start).await {
                None => continue,
                Some(LeftLine::Served) => timing.stay,
                Some(LeftLine::GaveUp) => timing.retry,
            };
            next_action = Instant::now() + rng.exponential(timing.real(pause));
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
        // A user in line can only keep their place (and claim when ready).
        let op = match me.waiting {
            Some(_) => None,
            None => Some(mix.next_op(&mut rng, me.tabs.len())),
        };
        let tab = if me.tabs.is_empty() {
            0
        } else {
            rng.below(me.tabs.len())
        };
        in_flight.set(in_flight.get() + 1);
        let (world, slots, in_flight) = (world.clone(), slots.clone(), in_flight.clone());
        actix_web::rt::spawn(async move {
            match op {
                None => {
                    world.ticket_heartbeat(&mut me, due, begun).await;
                }
                Some(OpenOp::Login) => {
                    world.open_tab(&mut me, begun).await;
                }
                Some(OpenOp::Heartbeat) => world.heartbeat(&mut me, tab, due, begun).await,
                Some(OpenOp::Release) => world.release(&mut me, tab, begun).await,
                Some(OpenOp::Logout) => world.logout(&mut me, tab, begun).await,
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
            .flat_map(|c| {
                c.tabs
                    .iter()
                    .map(|t| t.every)
                    .chain(c.waiting.as_ref().map(|w| w.every))
            })
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

/// One heartbeat for every live tab, a few hundred at a time, then for every ticket in
/// line, claiming those ready. A tab or ticket found ended is dropped; one whose
/// request failed is given up and waited out. Not counted in the figures.
async fn heartbeat_all<T: Target>(world: &World<T>, clients: &mut [Client<T::Token>]) {
    heartbeat_tabs(world, clients).await;
    keep_places(world, clients).await;
}

/// A ticket heartbeat of the quiet phase: whose, its answer, and the claim's if it
/// was ready.
type PlaceKept<K> = (usize, Outcome<Standing>, Option<Outcome<Session<K>>>);

/// The tickets' part of [`heartbeat_all`]: heartbeat each, claim those ready.
async fn keep_places<T: Target>(world: &World<T>, clients: &mut [Client<T::Token>]) {
    let tickets: Vec<(usize, T::Token)> = clients
        .iter()
        .enumerate()
        .filter_map(|(c, client)| client.waiting.as_ref().map(|w| (c, w.ticket.clone())))
        .collect();
    if tickets.is_empty() {
        return;
    }
    let target = &world.ctx.target;
    let answers: Vec<PlaceKept<T::Token>> = futures::stream::iter(tickets)
        .map(|(c, ticket)| async move {
            let beat = target.ticket_heartbeat(&ticket).await;
            let claim = match InLine::after_heartbeat(&beat) {
                InLine::Claim => Some(target.claim(&ticket).await),
                _ => None,
            };
            (c, beat, claim)
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let now = Instant::now();
    for (c, beat, claim) in answers {
        let client = &mut clients[c];
        let step = match &claim {
            Some(answer) => Claimed::after(&answer.class()),
            None => match InLine::after_heartbeat(&beat) {
                InLine::GiveUp(reason) => Claimed::GiveUp(reason),
                _ => Claimed::Wait,
            },
        };
        match step {
            Claimed::Served => {
                if let Some(Outcome::Ok(session)) = claim {
                    client.tabs.push(Tab::of(session, now));
                }
                client.waiting = None;
            }
            Claimed::Wait => {}
            Claimed::GiveUp(_) => client.waiting = None,
            Claimed::Lost(_) => {
                client.waiting = None;
                client.abandon(now + world.idle);
            }
        }
    }
}

/// The tabs' part of [`heartbeat_all`].
async fn heartbeat_tabs<T: Target>(world: &World<T>, clients: &mut [Client<T::Token>]) {
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
            waiting: None,
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
                claim_window: Duration::ZERO,
            };
            let mut ann = Client {
                tenant: 0,
                user: "ann".into(),
                tabs: Vec::new(),
                waiting: None,
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
