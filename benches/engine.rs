//! The engine's figures (SPEC §6), each beside a floor measured in the same run.
//!
//! - `simultaneous_logins`: 10,000 logins of distinct users fired at once onto one
//!   tenant of 1,000 seats, beside 10,000 bare actix round trips to a no-op actor.
//! - `mixed_ops`: login / heartbeat / release across 1,000 tenants with thousands of
//!   requests in flight, beside the same number of bare round trips to 1,000 no-op
//!   actors.
//! - `expiry_tick`: one timer tick over 100,000 and 1,000,000 live sessions in 10,000
//!   tenants with nothing due.
//! - `queue_ops`: the waitlist (SPEC §10) with 10,000 tickets in line on one tenant:
//!   every ticket heartbeating at once, and 1,000 ready tickets claiming at once, each
//!   beside the simultaneous logins' figure in the same run.
//!
//! Memory per session is measured by the `memory` bench, which needs a counting
//! allocator that would slow these down.
//!
//! Run with `cargo bench --bench engine`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use actix::dev::channel;
use actix::{Actor, Addr, Arbiter, Context, Handler, Message, System};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tokio::runtime::Runtime;
use usher::{Engine, EngineConfig, Entry, Licence, OnLimit, SessionToken, TenantId, UserId};

/// Logins fired at once in `simultaneous_logins`.
const LOGINS: usize = 10_000;
/// Seats of the tenant they compete for.
const SEATS: u32 = 1_000;
/// Tenants in `mixed_ops`.
const MIXED_TENANTS: usize = 1_000;
/// Client tasks in flight at once in `mixed_ops`.
const MIXED_CLIENTS: usize = 4_000;
/// Login / heartbeat / release rounds per client task.
const MIXED_ROUNDS: usize = 4;
/// Tenants in `expiry_tick`.
const TICK_TENANTS: usize = 10_000;

/// The tokio runtime the callers run on: multi-threaded, one worker per core.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Spawns `n` tasks at once and waits for all of them, in order.
async fn fire<T, F, Fut>(n: usize, mut make: F) -> Vec<T>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut out = Vec::with_capacity(n);
    for handle in handles {
        out.push(handle.await.expect("a bench task panicked"));
    }
    out
}

fn unique(prefix: &str) -> TenantId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TenantId::parse(&format!("{prefix}-{n}")).expect("a valid tenant id")
}

fn users(n: usize) -> Arc<Vec<UserId>> {
    Arc::new(
        (0..n)
            .map(|i| UserId::parse(&format!("user-{i:05}")).expect("a valid user id"))
            .collect(),
    )
}

// ---- The floor: bare actix round trips ----------------------------------------------

/// An actor that does nothing: the cheapest request/response actix can do.
struct Noop;

impl Actor for Noop {
    type Context = Context<Self>;
}

struct Ping;

impl Message for Ping {
    type Result = ();
}

impl Handler<Ping> for Noop {
    type Result = ();

    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {}
}

/// An actix system of its own, on a thread, with `n` arbiters: the same topology the
/// engine gives its pools.
struct Floor {
    arbiters: Vec<Arbiter>,
    system: System,
}

impl Floor {
    fn start(n: usize) -> Floor {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let runner = System::new();
            let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
            let _ = tx.send((arbiters, System::current()));
            let _ = runner.run();
        });
        let (arbiters, system) = rx.recv().expect("the floor's actix system started");
        Floor { arbiters, system }
    }

    /// A no-op actor on arbiter `index`, with the same mailbox capacity as an engine
    /// pool, so that neither side parks its senders.
    fn actor(&self, index: usize, capacity: usize) -> Addr<Noop> {
        let (tx, rx) = channel::channel(capacity);
        self.arbiters[index % self.arbiters.len()].spawn_fn(move || {
            Context::with_receiver(rx).run(Noop);
        });
        Addr::new(tx)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        for arbiter in self.arbiters.drain(..) {
            arbiter.stop();
        }
        self.system.stop();
    }
}

fn workers() -> usize {
    thread::available_parallelism().map_or(2, |n| n.get())
}

// ---- paired ratios -------------------------------------------------------------------

/// Engine and floor rounds run back to back, so that both see the same machine: on a
/// shared, noisy machine the ratio of neighbours is steadier than that of two criterion
/// runs taken seconds apart.
#[derive(Default)]
struct Pairs(Vec<(Duration, Duration)>);

impl Pairs {
    fn report(&self, what: &str) {
        if self.0.is_empty() {
            return;
        }
        let mut ratios: Vec<f64> = self
            .0
            .iter()
            .map(|(engine, floor)| engine.as_secs_f64() / floor.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let mut engine: Vec<Duration> = self.0.iter().map(|p| p.0).collect();
        let mut floor: Vec<Duration> = self.0.iter().map(|p| p.1).collect();
        engine.sort();
        floor.sort();
        let mid = |n: usize| n / 2;
        println!(
            "{what}: engine / floor, paired over {} rounds: median {:.2}x (quartiles {:.2}x .. {:.2}x); \
             median round: engine {:.2?}, floor {:.2?}",
            ratios.len(),
            ratios[mid(ratios.len())],
            ratios[ratios.len() / 4],
            ratios[ratios.len() * 3 / 4],
            engine[mid(engine.len())],
            floor[mid(floor.len())],
        );
    }
}

// ---- simultaneous_logins -------------------------------------------------------------

/// 10,000 bare round trips to one no-op actor, fired at once.
async fn floor_round(noop: &Arc<Addr<Noop>>) -> Duration {
    let start = Instant::now();
    let answers = fire(LOGINS, |_| {
        let noop = noop.clone();
        async move { noop.send(Ping).await }
    })
    .await;
    let elapsed = start.elapsed();
    assert!(answers.iter().all(Result::is_ok));
    elapsed
}

/// 10,000 logins of distinct users fired at once onto a fresh tenant of 1,000 seats.
/// Only the logins are timed; the checks and the tenant's creation and deletion are not.
async fn login_round(engine: &Engine, users: &Arc<Vec<UserId>>) -> Duration {
    // Enough accounts for every user who might get a seat: the seat limit is under test.
    let licence = Licence::concurrent(SEATS).max_users(LOGINS as u32);
    let tenant = unique("crowd");
    engine.put_tenant(&tenant, licence).await.unwrap();

    let start = Instant::now();
    let answers = fire(LOGINS, |i| {
        let (engine, tenant, users) = (engine.clone(), tenant.clone(), users.clone());
        async move { engine.login(&tenant, &users[i], None).await }
    })
    .await;
    let elapsed = start.elapsed();

    let admitted = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(admitted, SEATS as usize, "exactly the seats are admitted");
    assert!(answers
        .iter()
        .filter_map(|a| a.as_ref().err())
        .all(|e| e.code() == "licence_limit_reached"));
    assert_eq!(engine.tenant(&tenant).await.unwrap().seats_in_use, SEATS);
    engine.delete_tenant(&tenant).await.unwrap();
    elapsed
}

fn simultaneous_logins(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::start(EngineConfig::default());
    let floor = Floor::start(workers());
    let noop = Arc::new(floor.actor(0, engine.config().mailbox_capacity));
    let users = users(LOGINS);
    let mut pairs = Pairs::default();

    let mut group = c.benchmark_group("simultaneous_logins");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(LOGINS as u64));

    group.bench_function("floor_actix_round_trips", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    timed += floor_round(&noop).await;
                }
                timed
            })
        })
    });

    group.bench_function("logins_10k_users_1k_seats", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let logins = login_round(&engine, &users).await;
                    timed += logins;
                    // Untimed by criterion: the floor's neighbour for the paired ratio.
                    pairs.0.push((logins, floor_round(&noop).await));
                }
                timed
            })
        })
    });
    group.finish();
    pairs.report("simultaneous_logins");
}

// ---- mixed_ops -----------------------------------------------------------------------

/// Client tasks each making `MIXED_ROUNDS` x 3 bare round trips to one of the no-op
/// actors.
async fn mixed_floor_round(noops: &Arc<Vec<Addr<Noop>>>) -> Duration {
    let start = Instant::now();
    fire(MIXED_CLIENTS, |i| {
        let noops = noops.clone();
        async move {
            let noop = &noops[i % MIXED_TENANTS];
            for _ in 0..MIXED_ROUNDS * 3 {
                noop.send(Ping).await.unwrap();
            }
        }
    })
    .await;
    start.elapsed()
}

/// Client tasks each logging in to one of the tenants, heartbeating and releasing,
/// `MIXED_ROUNDS` times.
async fn mixed_round(
    engine: &Engine,
    tenants: &Arc<Vec<TenantId>>,
    users: &Arc<Vec<UserId>>,
) -> Duration {
    let start = Instant::now();
    fire(MIXED_CLIENTS, |i| {
        let (engine, tenants, users) = (engine.clone(), tenants.clone(), users.clone());
        async move {
            let tenant = &tenants[i % MIXED_TENANTS];
            for _ in 0..MIXED_ROUNDS {
                let login = engine.login(tenant, &users[i], None).await.unwrap();
                engine.heartbeat(&login.token).await.unwrap();
                engine.release(&login.token).await.unwrap();
            }
        }
    })
    .await;
    start.elapsed()
}

fn mixed_ops(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::start(EngineConfig::default());
    let tenants: Arc<Vec<TenantId>> =
        Arc::new((0..MIXED_TENANTS).map(|_| unique("mixed")).collect());
    rt.block_on(async {
        for tenant in tenants.iter() {
            engine
                .put_tenant(tenant, Licence::concurrent(SEATS))
                .await
                .unwrap();
        }
    });
    let users = users(MIXED_CLIENTS);
    let floor = Floor::start(workers());
    let noops: Arc<Vec<Addr<Noop>>> = Arc::new(
        (0..MIXED_TENANTS)
            .map(|i| floor.actor(i, engine.config().mailbox_capacity))
            .collect(),
    );
    let ops = (MIXED_CLIENTS * MIXED_ROUNDS * 3) as u64;
    let mut pairs = Pairs::default();

    let mut group = c.benchmark_group("mixed_ops");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(ops));

    group.bench_function("floor_actix_round_trips", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    timed += mixed_floor_round(&noops).await;
                }
                timed
            })
        })
    });

    group.bench_function("login_heartbeat_release", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let round = mixed_round(&engine, &tenants, &users).await;
                    timed += round;
                    pairs.0.push((round, mixed_floor_round(&noops).await));
                }
                timed
            })
        })
    });
    group.finish();
    pairs.report("mixed_ops");
    let mut rounds: Vec<Duration> = pairs.0.iter().map(|p| p.0).collect();
    rounds.sort();
    if let Some(round) = rounds.get(rounds.len() / 2) {
        println!(
            "mixed_ops: median round {:.0} ops/s ({ops} ops in {round:.2?})",
            ops as f64 / round.as_secs_f64()
        );
    }

    let live: u32 = rt.block_on(async {
        let mut live = 0;
        for tenant in tenants.iter() {
            live += engine.tenant(tenant).await.unwrap().sessions;
        }
        live
    });
    assert_eq!(live, 0, "every session was released");
}

// ---- expiry_tick ---------------------------------------------------------------------

/// Logs in sessions until there are `total` spread evenly over `tenants`, a few
/// thousand at a time.
fn load_sessions(
    rt: &Runtime,
    engine: &Engine,
    tenants: &Arc<Vec<TenantId>>,
    from: usize,
    total: usize,
) {
    rt.block_on(async {
        let mut next = from;
        while next < total {
            let batch = (total - next).min(20_000);
            let answers = fire(batch, |i| {
                let (engine, tenants) = (engine.clone(), tenants.clone());
                let n = next + i;
                async move {
                    let tenant = &tenants[n % tenants.len()];
                    let user = UserId::parse(&format!("user-{}", n / tenants.len())).unwrap();
                    engine.login(tenant, &user, None).await
                }
            })
            .await;
            assert!(answers.iter().all(Result::is_ok));
            next += batch;
        }
    });
}

fn expiry_tick(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::start(EngineConfig::default());
    let tenants: Arc<Vec<TenantId>> = Arc::new((0..TICK_TENANTS).map(|_| unique("tick")).collect());
    rt.block_on(async {
        for tenant in tenants.iter() {
            engine.put_tenant(tenant, Licence::records()).await.unwrap();
        }
    });

    let mut group = c.benchmark_group("expiry_tick");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // Sessions are loaded only when a bench that needs them runs (criterion may be
    // filtering), and never inside the timed part.
    let mut loaded = 0;
    for (label, sessions) in [("100k_sessions", 100_000), ("1m_sessions", 1_000_000)] {
        group.bench_with_input(
            BenchmarkId::new("tick_10k_tenants", label),
            &sessions,
            |b, &sessions| {
                if loaded < sessions {
                    load_sessions(&rt, &engine, &tenants, loaded, sessions);
                    loaded = sessions;
                    assert_eq!(engine.stats().sessions_routed, sessions);
                }
                assert_eq!(engine.tick(), 0, "nothing is due");
                b.iter(|| engine.tick());
            },
        );
    }
    assert_eq!(engine.tick(), 0, "nothing became due");
    group.finish();
}

// ---- queue_ops -----------------------------------------------------------------------

/// Tickets in line in `queue_ops`.
const QUEUED: usize = 10_000;
/// Tickets claimed per round in `queue_ops`.
const CLAIMS: usize = 1_000;

/// A fresh tenant of one seat, held, with [`QUEUED`] logins waiting in line; their
/// tickets head first.
async fn queue_of(engine: &Engine, users: &Arc<Vec<UserId>>) -> (TenantId, Vec<SessionToken>) {
    let licence = Licence::concurrent(1)
        .on_limit(OnLimit::Queue)
        .max_users(QUEUED as u32 + 1);
    let tenant = unique("line");
    engine.put_tenant(&tenant, licence).await.unwrap();
    let holder = UserId::parse("holder").expect("a valid user id");
    engine.login(&tenant, &holder, None).await.unwrap();
    let entries = fire(QUEUED, |i| {
        let (engine, tenant, users) = (engine.clone(), tenant.clone(), users.clone());
        async move { engine.enter(&tenant, &users[i], None).await }
    })
    .await;
    let mut tickets: Vec<(u32, SessionToken)> = entries
        .into_iter()
        .map(|entry| match entry {
            Ok(Entry::Queued(ticket)) => (ticket.position, ticket.token),
            other => panic!("every login waits in line: {other:?}"),
        })
        .collect();
    // Head first: the line's order is the order the logins reached the pool.
    tickets.sort_by_key(|(position, _)| *position);
    (
        tenant,
        tickets.into_iter().map(|(_, token)| token).collect(),
    )
}

/// Every ticket of a line of [`QUEUED`] heartbeats at once.
async fn ticket_beat_round(engine: &Engine, tickets: &Arc<Vec<SessionToken>>) -> Duration {
    let start = Instant::now();
    let answers = fire(tickets.len(), |i| {
        let (engine, tickets) = (engine.clone(), tickets.clone());
        async move { engine.ticket_heartbeat(&tickets[i]).await }
    })
    .await;
    let elapsed = start.elapsed();
    assert!(answers
        .iter()
        .all(|a| a.as_ref().is_ok_and(|s| s.position > 0)));
    elapsed
}

/// [`CLAIMS`] ready tickets at the head of a line of [`QUEUED`] claim at once; the
/// line and the raise that readies them are not timed.
async fn claim_round(engine: &Engine, users: &Arc<Vec<UserId>>) -> Duration {
    let (tenant, tickets) = queue_of(engine, users).await;
    let raised = Licence::concurrent(1 + CLAIMS as u32)
        .on_limit(OnLimit::Queue)
        .max_users(QUEUED as u32 + 1);
    let (view, _) = engine.put_tenant(&tenant, raised).await.unwrap();
    assert_eq!(view.held_for_queue, CLAIMS as u32);
    let tickets = Arc::new(tickets);
    let start = Instant::now();
    let answers = fire(CLAIMS, |i| {
        let (engine, tickets) = (engine.clone(), tickets.clone());
        async move { engine.claim(&tickets[i]).await }
    })
    .await;
    let elapsed = start.elapsed();
    assert!(
        answers.iter().all(Result::is_ok),
        "every ready ticket is claimed"
    );
    engine.delete_tenant(&tenant).await.unwrap();
    elapsed
}

fn queue_ops(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::start(EngineConfig::default());
    let users = users(QUEUED.max(LOGINS));
    let (tenant, tickets) = rt.block_on(queue_of(&engine, &users));
    let tickets = Arc::new(tickets);
    let mut beats = Pairs::default();
    let mut claims = Pairs::default();

    let mut group = c.benchmark_group("queue_ops");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    group.throughput(Throughput::Elements(LOGINS as u64));
    group.bench_function("logins_10k_users_1k_seats", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    timed += login_round(&engine, &users).await;
                }
                timed
            })
        })
    });
    group.throughput(Throughput::Elements(QUEUED as u64));
    group.bench_function("ticket_heartbeats_10k_in_line", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let beat = ticket_beat_round(&engine, &tickets).await;
                    timed += beat;
                    beats.0.push((beat, login_round(&engine, &users).await));
                }
                timed
            })
        })
    });
    group.throughput(Throughput::Elements(CLAIMS as u64));
    group.bench_function("claims_1k_of_10k_in_line", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let claimed = claim_round(&engine, &users).await;
                    timed += claimed;
                    // Against the time of as many logins: a tenth of a 10,000 round.
                    claims
                        .0
                        .push((claimed, login_round(&engine, &users).await / 10));
                }
                timed
            })
        })
    });
    group.finish();
    rt.block_on(engine.delete_tenant(&tenant)).unwrap();
    beats.report("queue_ops: 10,000 ticket heartbeats against 10,000 logins");
    claims.report("queue_ops: 1,000 claims against 1,000 logins (a tenth of a 10,000 round)");
}

criterion_group!(
    benches,
    simultaneous_logins,
    mixed_ops,
    expiry_tick,
    queue_ops
);
criterion_main!(benches);
