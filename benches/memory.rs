//! Memory per live session (SPEC §6): 1,000,000 sessions across 10,000 tenants,
//! counted by a global allocator that tracks the bytes live at each moment.
//!
//! Run with `cargo bench --bench memory`. It prints its figures and exits; it is not a
//! criterion bench, because counting every allocation would slow the timed ones.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use usher::{Engine, EngineConfig, Licence, TenantId, UserId};

/// The system allocator, counting the bytes it has handed out and not yet got back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TENANTS: usize = 10_000;
const SESSIONS: usize = 1_000_000;
/// Logins in flight at once while loading.
const BATCH: usize = 20_000;

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Resident set size in bytes, from /proc (Linux only; 0 elsewhere).
fn rss() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names nothing here skips the run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"memory".contains(a.as_str()))
    {
        return;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let at_start = live();
    let engine = Engine::start(EngineConfig::default());
    let tenants: Arc<Vec<TenantId>> = Arc::new(
        (0..TENANTS)
            .map(|i| TenantId::parse(&format!("tenant-{i:05}")).unwrap())
            .collect(),
    );
    rt.block_on(async {
        for tenant in tenants.iter() {
            engine
                .put_tenant(tenant, Licence::concurrent(1_000))
                .await
                .unwrap();
        }
        // Usage answers after every event before it: the consumer has caught up.
        engine.usage(&tenants[0], 1).await.unwrap();
    });
    let with_tenants = live();
    let rss_with_tenants = rss();

    rt.block_on(async {
        let mut next = 0;
        while next < SESSIONS {
            let batch = (SESSIONS - next).min(BATCH);
            let handles: Vec<_> = (0..batch)
                .map(|i| {
                    let (engine, tenants) = (engine.clone(), tenants.clone());
                    let n = next + i;
                    tokio::spawn(async move {
                        // As the HTTP layer would: a user id parsed for each request.
                        let user = UserId::parse(&format!("user-{:03}", n / TENANTS)).unwrap();
                        engine.login(&tenants[n % TENANTS], &user, None).await
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap().expect("the login is admitted");
            }
            next += batch;
        }
        engine.usage(&tenants[0], 1).await.unwrap();
    });
    let with_sessions = live();
    let rss_with_sessions = rss();
    assert_eq!(engine.stats().sessions_routed, SESSIONS);

    let per_session = (with_sessions - with_tenants) as f64 / SESSIONS as f64;
    let all_in = (with_sessions - at_start) as f64 / SESSIONS as f64;
    let per_tenant = (with_tenants - at_start) as f64 / TENANTS as f64;
    let rss_per_session = (rss_with_sessions - rss_with_tenants) as f64 / SESSIONS as f64;
    println!();
    println!("memory: {SESSIONS} live sessions across {TENANTS} tenants");
    println!(
        "  engine and empty tenants    {:>8.1} MiB live ({per_tenant:.0} B per tenant, event channel included)",
        mib(with_tenants - at_start)
    );
    println!(
        "  after the logins            {:>8.1} MiB live",
        mib(with_sessions - at_start)
    );
    println!("  bytes per session           {per_session:>8.1} B   (live heap bytes added by the sessions)");
    println!(
        "  all-in bytes per session    {all_in:>8.1} B   (everything since before Engine::start)"
    );
    println!("  resident set per session    {rss_per_session:>8.1} B   (RSS growth, allocator overhead included)");
    println!();
}
