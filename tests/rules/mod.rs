//! The rule suite: the rules through the public async [`Engine`], on a manual clock,
//! plus real concurrency (thousands of simultaneous logins on a multi-threaded
//! runtime). It runs against every backend: each test crate that includes it says
//! how to start an engine (`engine_on`) — `tests/engine.rs` on the embedded pools,
//! `tests/engine_redis.rs` on Redis, `tests/engine_cluster.rs` on a Redis Cluster —
//! and the expected answers are the same.
//!
//! The rules by concern, each in a file of its own: [`named`] seats, [`concurrent`]
//! seats, [`sessions`] (release, logout, revoke, idle expiry, ended sessions),
//! [`licences`] changed at runtime, [`records`], [`accounts`] (the account limit),
//! [`lists`] (the tenant view and the lists a page at a time), [`fences`],
//! [`events`] and the [`waitlist`]. This file holds what they share, and the tests of
//! the engine as a whole: across tenants, the usage report, and real concurrency.

mod policies;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;
use tokio::task::JoinSet;
use usher::{
    EndReason, Engine, EngineConfig, Error, Event, EventKind, Licence, ManualClock, SeatPer,
    SessionToken, TenantId, Timestamp, UserId,
};

mod accounts;
mod concurrent;
mod events;
mod fences;
mod licences;
mod lists;
mod named;
mod records;
mod sessions;
mod waitlist;

/// 2026-01-15T00:00:00Z: a Thursday in the middle of a month.
pub const T0: Timestamp = Timestamp::from_millis(1_768_435_200_000);
pub const DAY: Duration = Duration::from_secs(24 * 3600);
pub const HOUR: Duration = Duration::from_secs(3600);

/// No background sweep: only the test's own operations expire anything, so the order
/// of what they do (and of the events) is the same in every run.
pub fn no_sweeper() -> EngineConfig {
    EngineConfig {
        tick_every: Duration::from_secs(24 * 3600),
        ..EngineConfig::default()
    }
}

pub async fn start() -> (Engine, ManualClock) {
    start_with(EngineConfig::default()).await
}

pub async fn start_with(config: EngineConfig) -> (Engine, ManualClock) {
    let clock = ManualClock::starting_at(T0);
    let engine = crate::engine_on(config, clock.clone()).await;
    (engine, clock)
}

/// An engine with one tenant, `st-mungos`, created at [`T0`] with `licence`.
pub async fn start_tenant(licence: Licence) -> (Engine, ManualClock, TenantId) {
    start_tenant_with(EngineConfig::default(), licence).await
}

pub async fn start_tenant_with(
    config: EngineConfig,
    licence: Licence,
) -> (Engine, ManualClock, TenantId) {
    let (engine, clock) = start_with(config).await;
    let t = tenant("st-mungos");
    engine.put_tenant(&t, licence).await.unwrap();
    (engine, clock, t)
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// What the engine's clock reads now.
pub fn clock_now(clock: &ManualClock) -> Timestamp {
    usher::Clock::now(clock)
}

/// The moment `s` seconds after [`T0`].
pub fn at_secs(s: u64) -> Timestamp {
    T0 + Duration::from_secs(s)
}

/// The moment `ms` milliseconds after [`T0`].
pub fn at_millis(ms: u64) -> Timestamp {
    T0 + Duration::from_millis(ms)
}

pub fn limit_reached(seats: u32, seats_in_use: u32, retry_after: Option<Duration>) -> Error {
    Error::LicenceLimitReached {
        reserved: 0,
        seats,
        seats_in_use,
        retry_after,
    }
}

pub fn not_licensed(name: &str) -> Error {
    Error::UserNotLicensed { user: name.into() }
}

pub fn ended(reason: EndReason) -> Error {
    Error::SessionEnded { reason }
}

pub async fn admit(engine: &Engine, t: &TenantId, name: &str) -> SessionToken {
    match engine.login(t, &user(name), Some("tab")).await {
        Ok(login) => login.token,
        Err(e) => panic!("{name} should be admitted: {e:?}"),
    }
}

pub async fn refusal(engine: &Engine, t: &TenantId, name: &str) -> Error {
    match engine.login(t, &user(name), None).await {
        Ok(_) => panic!("{name} should be refused"),
        Err(e) => e,
    }
}

/// A login of `name` in a tab, as the engine answers it.
pub async fn login(engine: &Engine, t: &TenantId, name: &str) -> Result<SessionToken, Error> {
    engine
        .login(t, &user(name), Some("tab"))
        .await
        .map(|login| login.token)
}

/// The seats in use and the live sessions of a tenant.
pub async fn usage_now(engine: &Engine, t: &TenantId) -> (u32, u32) {
    let view = engine.tenant(t).await.unwrap();
    (view.seats_in_use, view.sessions)
}

/// Whether `token`'s session is in the tenant's session list.
pub async fn is_live(engine: &Engine, t: &TenantId, token: &SessionToken) -> bool {
    let sessions = engine.sessions(t).await.unwrap();
    sessions.iter().any(|s| s.id == token.id())
}

/// The deadline a heartbeat of `token` answers with.
pub async fn beat(engine: &Engine, token: &SessionToken) -> Result<Timestamp, Error> {
    engine.heartbeat(token).await.map(|beat| beat.expires_at)
}

/// Logs `name` in and returns the admission's fence, checking that the session list
/// shows the same one.
pub async fn admit_fence(engine: &Engine, t: &TenantId, name: &str) -> (SessionToken, u64) {
    let login = match engine.login(t, &user(name), None).await {
        Ok(login) => login,
        Err(e) => panic!("{name} should be admitted: {e:?}"),
    };
    let listed = engine
        .sessions(t)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id == login.token.id())
        .map(|s| s.fence);
    assert_eq!(
        listed,
        Some(login.fence),
        "the list shows the login's fence"
    );
    (login.token, login.fence)
}

pub fn event(t: &TenantId, at: Timestamp, kind: EventKind) -> Event {
    Event {
        tenant: t.clone(),
        at,
        kind,
    }
}

pub fn ended_event(
    t: &TenantId,
    at: Timestamp,
    name: &str,
    token: &SessionToken,
    reason: EndReason,
    seats_in_use: u32,
) -> Event {
    event(
        t,
        at,
        EventKind::Ended {
            user: user(name),
            session: token.id(),
            reason,
            seats_in_use,
        },
    )
}

/// What the engine's subscribers see, read up to the calls answered so far
/// ([`Engine::flush_events`]).
pub struct Watch {
    events: crossbeam_channel::Receiver<Event>,
}

impl Watch {
    /// Watches every event from now on.
    pub async fn start(engine: &Engine) -> Watch {
        Watch {
            events: engine.subscribe(100_000),
        }
    }

    /// The events of `t` decided since the last take, in order.
    pub async fn take(&mut self, engine: &Engine, t: &TenantId) -> Vec<Event> {
        engine.flush_events().await;
        self.events.try_iter().filter(|e| e.tenant == *t).collect()
    }

    /// The kinds of those events.
    pub async fn kinds(&mut self, engine: &Engine, t: &TenantId) -> Vec<EventKind> {
        let events = self.take(engine, t).await;
        events.into_iter().map(|e| e.kind).collect()
    }
}

// ---------------------------------------------------------------------------------
// The usage report, and tenants apart
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_usage_report_counts_each_day() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    let licence = Licence::concurrent(2)
        .idle_timeout(Duration::from_secs(60))
        .max_users(3);
    engine.put_tenant(&acme, licence).await.unwrap();

    admit(&engine, &acme, "ann").await;
    let bob = admit(&engine, &acme, "bob").await;
    refusal(&engine, &acme, "carol").await; // licence_limit_reached
    engine.release(&bob).await.unwrap();
    admit(&engine, &acme, "carol").await;
    refusal(&engine, &acme, "dave").await; // user_limit_reached: the fourth account
    for count in [10, 30, 20] {
        engine.report_records(&acme, count).await.unwrap();
    }
    clock.advance(Duration::from_secs(61));
    engine.expire_due().await.unwrap(); // ann and carol expire

    engine
        .put_tenant(&acme, Licence::named(1).max_users(3))
        .await
        .unwrap();
    refusal(&engine, &acme, "ann").await; // user_not_licensed

    let days = engine.usage(&acme, 1).await.unwrap();
    assert_eq!(days.len(), 1);
    let today = &days[0];
    assert_eq!(today.day, T0.day());
    assert_eq!(today.peak_seats_in_use, 2);
    assert_eq!(today.logins, 3);
    assert_eq!(today.refusals.licence_limit_reached, 1);
    assert_eq!(today.refusals.user_limit_reached, 1);
    assert_eq!(today.refusals.user_not_licensed, 1);
    assert_eq!(today.refusals.total(), 3);
    assert_eq!(today.expiries, 2);
    assert_eq!(today.peak_records, 30);

    // A quiet day carries the level the last one closed at.
    clock.advance(DAY);
    let days = engine.usage(&acme, 2).await.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0], *today);
    let quiet = &days[1];
    assert_eq!(quiet.day, (T0 + DAY).day());
    assert_eq!(
        (
            quiet.peak_seats_in_use,
            quiet.logins,
            quiet.refusals.total()
        ),
        (0, 0, 0)
    );
    assert_eq!((quiet.expiries, quiet.peak_records), (0, 20));

    assert_eq!(
        engine.usage(&tenant("nobody"), 1).await,
        Err(Error::TenantNotFound)
    );
}

#[tokio::test]
async fn usage_follows_seats_changed_by_a_licence_change() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    engine
        .put_tenant(&acme, Licence::concurrent(5))
        .await
        .unwrap();
    for _ in 0..3 {
        admit(&engine, &acme, "ann").await;
    }
    assert_eq!(
        engine.usage(&acme, 1).await.unwrap()[0].peak_seats_in_use,
        1
    );

    // With a seat per tab, ann's three tabs hold three seats from now on.
    let (view, _) = engine
        .put_tenant(&acme, Licence::concurrent(5).seat_per(SeatPer::Session))
        .await
        .unwrap();
    assert_eq!(view.seats_in_use, 3);
    assert_eq!(
        engine.usage(&acme, 1).await.unwrap()[0].peak_seats_in_use,
        3
    );

    // Under named seats nobody is assigned: nothing is in use from then on.
    let (view, _) = engine.put_tenant(&acme, Licence::named(5)).await.unwrap();
    assert_eq!(view.seats_in_use, 0);
    clock.advance(DAY);
    let days = engine.usage(&acme, 2).await.unwrap();
    assert_eq!(days[0].peak_seats_in_use, 3);
    assert_eq!(days[1].peak_seats_in_use, 0);
}

#[tokio::test]
async fn deleting_a_tenant_ends_its_sessions() {
    let (engine, clock) = start().await;
    let gone = tenant("gone");
    let kept = tenant("kept");
    engine
        .put_tenant(&gone, Licence::concurrent(5))
        .await
        .unwrap();
    engine
        .put_tenant(&kept, Licence::concurrent(5))
        .await
        .unwrap();
    let tabs = [
        admit(&engine, &gone, "ann").await,
        admit(&engine, &gone, "bob").await,
    ];
    let other = admit(&engine, &kept, "ann").await;
    let events = engine.subscribe(100);

    engine.delete_tenant(&gone).await.unwrap();

    assert_eq!(engine.tenant(&gone).await, Err(Error::TenantNotFound));
    assert_eq!(
        engine.login(&gone, &user("ann"), None).await.unwrap_err(),
        Error::TenantNotFound
    );
    assert_eq!(
        engine.delete_tenant(&gone).await,
        Err(Error::TenantNotFound)
    );
    for tab in &tabs {
        // The pool is gone, but its tabs still learn why they ended.
        assert_eq!(
            engine.heartbeat(tab).await.unwrap_err(),
            ended(EndReason::Evicted)
        );
        assert_eq!(
            engine.release(tab).await.unwrap_err(),
            ended(EndReason::Evicted)
        );
    }
    engine.heartbeat(&other).await.unwrap();
    assert_eq!(engine.tenant_ids().await.unwrap(), vec![kept.clone()]);

    // The consumer saw both sessions end, then the deletion.
    engine.flush_events().await;
    let seen: Vec<Event> = events.try_iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let mut ended_ids: Vec<_> = seen[..2]
        .iter()
        .map(|e| match e.kind {
            EventKind::Ended {
                session,
                reason: EndReason::Evicted,
                ..
            } => session,
            ref other => panic!("unexpected {other:?}"),
        })
        .collect();
    ended_ids.sort();
    let mut expected: Vec<_> = tabs.iter().map(SessionToken::id).collect();
    expected.sort();
    assert_eq!(ended_ids, expected);
    assert_eq!(seen[2].kind, EventKind::TenantDeleted);
    assert!(seen.iter().all(|e| e.tenant == gone));

    // A tenant of the same name starts afresh.
    let (view, created) = engine
        .put_tenant(&gone, Licence::concurrent(1))
        .await
        .unwrap();
    assert!(created);
    assert_eq!((view.seats_in_use, view.sessions, view.users), (0, 0, 0));
    // Like any ended session, they are forgotten after the retention.
    clock.advance(Duration::from_secs(3600));
    engine.expire_due().await.unwrap();
    assert_eq!(
        engine.heartbeat(&tabs[0]).await.unwrap_err(),
        Error::SessionNotFound
    );
}

#[tokio::test]
async fn one_tenant_cannot_touch_anothers_sessions() {
    let (engine, _clock) = start().await;
    let a = tenant("a");
    let b = tenant("b");
    engine.put_tenant(&a, Licence::concurrent(1)).await.unwrap();
    engine.put_tenant(&b, Licence::concurrent(1)).await.unwrap();
    let ann = admit(&engine, &a, "ann").await;
    assert_eq!(
        engine.revoke(&b, ann.id()).await,
        Err(Error::SessionNotFound)
    );
    engine.heartbeat(&ann).await.unwrap();
    assert!(engine.sessions(&b).await.unwrap().is_empty());
    // Seats are per tenant.
    admit(&engine, &b, "ann").await;
}

// ---------------------------------------------------------------------------------
// Real concurrency
// ---------------------------------------------------------------------------------

/// What a burst of operations came back with.
#[derive(Default, Debug)]
struct Tally {
    admitted: Vec<(UserId, SessionToken)>,
    refused: HashMap<&'static str, usize>,
}

/// Seats held, as the admission events reported them, never above `seats`.
fn assert_no_event_over(events: &[Event], seats: u32) -> usize {
    let mut admitted = 0;
    for event in events {
        if let EventKind::Admitted { seats_in_use, .. } = event.kind {
            assert!(
                seats_in_use <= seats,
                "{seats_in_use} seats in use of {seats}"
            );
            admitted += 1;
        }
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_simultaneous_logins_admit_exactly_the_seats() {
    const SEATS: u32 = 1_000;
    const LOGINS: usize = 10_000;
    let (engine, _clock) = start().await;
    let events = engine.subscribe(2 * LOGINS);
    for round in 0..20 {
        let t = tenant(&format!("round-{round}"));
        let licence = Licence::concurrent(SEATS).max_users(LOGINS as u32);
        engine.put_tenant(&t, licence).await.unwrap();

        let go = Arc::new(Barrier::new(LOGINS));
        let mut tasks = JoinSet::new();
        for i in 0..LOGINS {
            let (engine, t, go) = (engine.clone(), t.clone(), go.clone());
            tasks.spawn(async move {
                let who = user(&format!("user-{i}"));
                go.wait().await;
                let result = engine.login(&t, &who, None).await;
                (who, result)
            });
        }
        let mut tally = Tally::default();
        while let Some(joined) = tasks.join_next().await {
            let (who, result) = joined.unwrap();
            match result {
                Ok(login) => tally.admitted.push((who, login.token)),
                Err(e) => {
                    if let Error::LicenceLimitReached {
                        seats,
                        seats_in_use,
                        ..
                    } = e
                    {
                        assert_eq!((seats, seats_in_use), (SEATS, SEATS));
                    }
                    *tally.refused.entry(e.code()).or_default() += 1;
                }
            }
        }

        assert_eq!(tally.admitted.len(), SEATS as usize, "round {round}");
        assert_eq!(
            tally.refused,
            HashMap::from([("licence_limit_reached", LOGINS - SEATS as usize)]),
            "round {round}"
        );
        let view = engine.tenant(&t).await.unwrap();
        assert_eq!((view.seats_in_use, view.sessions), (SEATS, SEATS));

        let usage = engine.usage(&t, 1).await.unwrap();
        assert_eq!(usage[0].logins, u64::from(SEATS));
        assert_eq!(usage[0].peak_seats_in_use, SEATS);
        assert_eq!(
            usage[0].refusals.licence_limit_reached,
            (LOGINS - SEATS as usize) as u64
        );
        let seen: Vec<Event> = events.try_iter().collect();
        assert_eq!(assert_no_event_over(&seen, SEATS), SEATS as usize);
        engine.delete_tenant(&t).await.unwrap();
    }
    assert_eq!(engine.stats().events_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_releases_and_heartbeats_interleaved_never_over_admit() {
    const SEATS: u32 = 1_000;
    const LOGINS: usize = 2_000;
    let (engine, clock) = start().await;
    let t = tenant("busy");
    engine
        .put_tenant(&t, Licence::concurrent(SEATS).max_users(1_000_000))
        .await
        .unwrap();
    let events = engine.subscribe(1_000_000);

    // Users holding a seat, each with their tabs.
    let mut held: Vec<(UserId, Vec<SessionToken>)> = Vec::new();
    let mut next_user = 0;
    for round in 0..10 {
        clock.advance(Duration::from_secs(1));
        let before = held.len();
        // Half the holders log out (all their tabs at once); the others heartbeat and
        // open another tab, which shares their seat and so is never refused.
        let leaving: Vec<(UserId, Vec<SessionToken>)> = held.drain(..before / 2).collect();
        let staying = std::mem::take(&mut held);

        let mut tasks = JoinSet::new();
        let go = Arc::new(Barrier::new(LOGINS + leaving.len() + 2 * staying.len()));
        enum Done {
            Login(UserId, Result<SessionToken, Error>),
            Logout(usize, Result<u32, Error>),
            Heartbeat(Result<(), Error>),
            Tab(usize, Result<SessionToken, Error>),
        }
        for _ in 0..LOGINS {
            let who = user(&format!("user-{next_user}"));
            next_user += 1;
            let (engine, t, go) = (engine.clone(), t.clone(), go.clone());
            tasks.spawn(async move {
                go.wait().await;
                let result = engine.login(&t, &who, None).await.map(|l| l.token);
                Done::Login(who, result)
            });
        }
        for (i, (_, tabs)) in leaving.iter().enumerate() {
            let (engine, token, go) = (engine.clone(), tabs[0].clone(), go.clone());
            tasks.spawn(async move {
                go.wait().await;
                Done::Logout(i, engine.logout(&token).await)
            });
        }
        for (i, (who, tabs)) in staying.iter().enumerate() {
            let (engine_, token, go_) = (engine.clone(), tabs[0].clone(), go.clone());
            tasks.spawn(async move {
                go_.wait().await;
                Done::Heartbeat(engine_.heartbeat(&token).await.map(|_| ()))
            });
            let (engine, t, who, go) = (engine.clone(), t.clone(), who.clone(), go.clone());
            tasks.spawn(async move {
                go.wait().await;
                Done::Tab(i, engine.login(&t, &who, None).await.map(|l| l.token))
            });
        }

        let mut admitted = Vec::new();
        let mut refused = 0;
        let mut staying = staying;
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                Done::Login(who, Ok(token)) => admitted.push((who, vec![token])),
                Done::Login(_, Err(e)) => {
                    assert_eq!(e.code(), "licence_limit_reached", "{e:?}");
                    refused += 1;
                }
                Done::Logout(i, result) => {
                    assert_eq!(result, Ok(leaving[i].1.len() as u32), "round {round}")
                }
                Done::Heartbeat(result) => result.unwrap(),
                Done::Tab(i, result) => staying[i].1.push(result.unwrap()),
            }
        }

        let free_at_start = SEATS as usize - before;
        assert!(admitted.len() <= free_at_start + leaving.len());
        if refused > 0 {
            // Refused only when full: every seat free at the start was taken.
            assert!(admitted.len() >= free_at_start, "round {round}");
        }
        assert_eq!(admitted.len() + refused, LOGINS);

        held = staying;
        held.extend(admitted);
        let tabs: usize = held.iter().map(|(_, tabs)| tabs.len()).sum();
        let view = engine.tenant(&t).await.unwrap();
        assert_eq!(view.seats_in_use as usize, held.len(), "round {round}");
        assert!(view.seats_in_use <= SEATS);
        assert_eq!(view.sessions as usize, tabs, "round {round}");

        engine.usage(&t, 1).await.unwrap(); // every event so far has been delivered
        let seen: Vec<Event> = events.try_iter().collect();
        let logins_seen = assert_no_event_over(&seen, SEATS);
        assert_eq!(logins_seen, LOGINS - refused + before - leaving.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooded_pool_sheds_load_and_keeps_working() {
    const SEATS: u32 = 100;
    let config = EngineConfig {
        mailbox_capacity: 2,
        overload_retry_after: Duration::from_secs(3),
        ..EngineConfig::default()
    };
    let (engine, _clock) = start_with(config).await;
    let t = tenant("flooded");
    engine
        .put_tenant(&t, Licence::concurrent(SEATS).max_users(1_000_000))
        .await
        .unwrap();

    let mut admitted = Vec::new();
    let mut refused = 0u64;
    let mut overloaded = 0;
    let mut next_user = 0;
    // A flood or two is enough in practice; the bound only keeps a quiet machine from
    // looping forever.
    for _ in 0..20 {
        const FLOOD: usize = 2_000;
        let go = Arc::new(Barrier::new(FLOOD));
        let mut tasks = JoinSet::new();
        for _ in 0..FLOOD {
            let who = user(&format!("user-{next_user}"));
            next_user += 1;
            let (engine, t, go) = (engine.clone(), t.clone(), go.clone());
            tasks.spawn(async move {
                go.wait().await;
                engine.login(&t, &who, None).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                Ok(login) => admitted.push(login.token),
                Err(Error::Overloaded { retry_after }) => {
                    assert_eq!(retry_after, Duration::from_secs(3));
                    overloaded += 1;
                }
                Err(e) => {
                    assert_eq!(e.code(), "licence_limit_reached", "{e:?}");
                    refused += 1;
                }
            }
        }
        if overloaded > 0 && admitted.len() == SEATS as usize {
            break;
        }
    }
    assert!(overloaded > 0, "a mailbox of 2 never overflowed");
    assert_eq!(admitted.len(), SEATS as usize);
    assert_eq!(
        Error::Overloaded {
            retry_after: Duration::from_secs(3)
        }
        .http_status(),
        503
    );

    // Shed requests left no trace; the pool still answers, one request at a time.
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (SEATS, SEATS));
    let usage = engine.usage(&t, 1).await.unwrap();
    assert_eq!(usage[0].logins, u64::from(SEATS));
    assert_eq!(usage[0].refusals.licence_limit_reached, refused);
    assert_eq!(
        refusal(&engine, &t, "late").await.code(),
        "licence_limit_reached"
    );
    for token in &admitted {
        engine.release(token).await.unwrap();
    }
    assert_eq!(engine.tenant(&t).await.unwrap().seats_in_use, 0);
    admit(&engine, &t, "late").await;
}
