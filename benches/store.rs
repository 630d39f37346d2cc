//! Durable against in-memory login throughput, side by side in one run.
//!
//! Each iteration fires 10,000 logins at once across 100 fresh tenants, on an engine
//! whose pools answer at once (memory) or only after the embedded store committed the
//! login (redb, group commit, fsync). After criterion's groups, the same rounds run
//! alternately and the ratio of their medians is printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use futures::future::join_all;
use usher::store::redb::{RedbConfig, RedbStore};
use usher::{Engine, EngineConfig, Licence, SystemClock, TenantId, UserId};

const TENANTS: usize = 100;
const LOGINS: usize = 10_000;

struct Bed {
    engine: Engine,
    round: usize,
    _dir: Option<tempfile::TempDir>,
}

impl Bed {
    fn memory() -> Bed {
        Bed {
            engine: Engine::start(EngineConfig::default()),
            round: 0,
            _dir: None,
        }
    }

    fn durable() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(SystemClock::new());
        let store = RedbStore::open(dir.path(), clock.clone(), RedbConfig::default()).unwrap();
        Bed {
            engine: Engine::with_store(EngineConfig::default(), clock, Arc::new(store)),
            round: 0,
            _dir: Some(dir),
        }
    }

    /// One round: fresh tenants (not timed), then 10,000 logins at once (timed).
    async fn round(&mut self) -> Duration {
        self.round += 1;
        let tenants: Vec<TenantId> = (0..TENANTS)
            .map(|t| TenantId::parse(&format!("r{}-t{t}", self.round)).unwrap())
            .collect();
        for tenant in &tenants {
            self.engine
                .put_tenant(tenant, Licence::concurrent(1_000))
                .await
                .unwrap();
        }
        let users: Vec<UserId> = (0..LOGINS / TENANTS)
            .map(|u| UserId::parse(&format!("user-{u}")).unwrap())
            .collect();
        let engine = &self.engine;
        let started = Instant::now();
        let logins = tenants
            .iter()
            .flat_map(|t| users.iter().map(move |u| engine.login(t, u, None)));
        let results = join_all(logins).await;
        let elapsed = started.elapsed();
        assert!(results.iter().all(Result::is_ok), "every login is admitted");
        elapsed
    }
}

fn durable_vs_memory(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("durable_logins");
    group.throughput(Throughput::Elements(LOGINS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, make) in [
        ("memory", Bed::memory as fn() -> Bed),
        ("redb", Bed::durable),
    ] {
        let mut bed = make();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += bed.round().await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
}

/// Alternating rounds, so both see the same machine; prints the throughput ratio.
fn ratio() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut memory, mut durable) = (Bed::memory(), Bed::durable());
    let (mut m, mut d) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for _ in 0..9 {
            m.push(memory.round().await);
            d.push(durable.round().await);
        }
    });
    m.sort();
    d.sort();
    let (m, d) = (m[m.len() / 2], d[d.len() / 2]);
    let per_sec = |t: Duration| LOGINS as f64 / t.as_secs_f64();
    println!(
        "durable_logins ratio: redb {:.0} logins/s, memory {:.0} logins/s, durable/memory = {:.2}",
        per_sec(d),
        per_sec(m),
        m.as_secs_f64() / d.as_secs_f64()
    );
}

criterion_group!(benches, durable_vs_memory);

fn main() {
    benches();
    ratio();
    Criterion::default().configure_from_args().final_summary();
}
