//! The engine's figures (SPEC §6), each beside a floor measured in the same run.
//!
//! - `simultaneous_logins`: 10,000 logins of distinct users fired at once onto one
//!   tenant of 1,000 seats, beside 10,000 bare actix round trips to a no-op actor.
//! - `mixed_ops`: login / heartbeat / release across 1,000 tenants with thousands of
//!   requests in flight, beside the same number of bare round trips to 1,000 no-op
//!   actors.
//! - `expiry_tick`: one timer tick over 100,000 and 1,000,000 live sessions in 10,000
//!   tenants with nothing due.
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
use usher::{Engine, EngineConfig, Licence, TenantId, UserId};

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

// ---- simultaneous_logins -------------------------------------------------------------

fn simultaneous_logins(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::start(EngineConfig::default());
    let floor = Floor::start(workers());
    let noop = Arc::new(floor.actor(0, engine.config().mailbox_capacity));
    let users = users(LOGINS);
    // Enough accounts for every user who might get a seat: the seat limit is under test.
    let licence = Licence::concurrent(SEATS).max_users(LOGINS as u32);

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
                let start = Instant::now();
                for _ in 0..iters {
                    let answers = fire(LOGINS, |_| {
                        let noop = noop.clone();
                        async move { noop.send(Ping).await }
                    })
                    .await;
                    assert!(answers.iter().all(Result::is_ok));
                }
                start.elapsed()
            })
        })
    });

    group.bench_function("logins_10k_users_1k_seats", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let tenant = unique("crowd");
                    engine.put_tenant(&tenant, licence).await.unwrap();

                    let start = Instant::now();
                    let answers = fire(LOGINS, |i| {
                        let (engine, tenant, users) =
                            (engine.clone(), tenant.clone(), users.clone());
                        async move { engine.login(&tenant, &users[i], None).await }
                    })
                    .await;
                    timed += start.elapsed();

                    let admitted = answers.iter().filter(|a| a.is_ok()).count();
                    assert_eq!(admitted, SEATS as usize, "exactly the seats are admitted");
                    assert!(answers
                        .iter()
                        .filter_map(|a| a.as_ref().err())
                        .all(|e| e.code() == "licence_limit_reached"));
                    assert_eq!(engine.tenant(&tenant).await.unwrap().seats_in_use, SEATS);
                    engine.delete_tenant(&tenant).await.unwrap();
                }
                timed
            })
        })
    });
    group.finish();
}

// ---- mixed_ops -----------------------------------------------------------------------

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
                let start = Instant::now();
                for _ in 0..iters {
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
                }
                start.elapsed()
            })
        })
    });

    group.bench_function("login_heartbeat_release", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    fire(MIXED_CLIENTS, |i| {
                        let (engine, tenants, users) =
                            (engine.clone(), tenants.clone(), users.clone());
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
                }
                start.elapsed()
            })
        })
    });
    group.finish();

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

criterion_group!(benches, simultaneous_logins, mixed_ops, expiry_tick);
criterion_main!(benches);
