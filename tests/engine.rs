//! The rule suite (`tests/rules`) on the embedded backend, and what only the embedded
//! backend has: pool snapshots and their restoration.

use std::sync::Arc;
use std::time::Duration;

use usher::{EndReason, Engine, EngineConfig, Error, Licence, ManualClock};

mod rules;

use rules::*;

/// An embedded engine on `clock`.
pub async fn engine_on(config: EngineConfig, clock: ManualClock) -> Engine {
    Engine::with_clock(config, Arc::new(clock))
}

#[tokio::test]
async fn a_restored_tenant_counts_its_sessions_and_gives_them_a_full_idle_window() {
    let (before, clock) = start().await;
    let acme = tenant("acme");
    let licence = Licence::concurrent(2).idle_timeout(Duration::from_secs(60));
    before.put_tenant(&acme, licence).await.unwrap();
    let ann = admit(&before, &acme, "ann").await;
    let bob = admit(&before, &acme, "bob").await;
    let gone = admit(&before, &acme, "ann").await;
    before.release(&gone).await.unwrap();
    let snapshot = before.snapshot(&acme).await.unwrap();
    drop(before);

    // The restart comes long after every deadline.
    clock.advance(Duration::from_secs(3000));
    let restart = clock_now(&clock);
    let after = Engine::with_clock(EngineConfig::default(), Arc::new(clock.clone()));
    after.restore_tenant(snapshot.clone()).unwrap();
    assert_eq!(
        after.restore_tenant(snapshot).unwrap_err().code(),
        "invalid_request"
    );

    let view = after.tenant(&acme).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (2, 2));
    assert!(after
        .sessions(&acme)
        .await
        .unwrap()
        .iter()
        .all(|s| s.expires_at == restart + Duration::from_secs(60)));
    assert_eq!(
        refusal(&after, &acme, "carol").await,
        Error::LicenceLimitReached {
            reserved: 0,
            seats: 2,
            seats_in_use: 2,
            retry_after: Some(millis(60_001)),
        }
    );
    assert_eq!(
        after.heartbeat(&gone).await,
        Err(ended(EndReason::Released))
    );

    clock.advance(Duration::from_secs(60));
    after.heartbeat(&ann).await.unwrap();
    clock.advance(millis(1));
    after.expire_due().await.unwrap();
    assert_eq!(after.heartbeat(&bob).await, Err(ended(EndReason::Expired)));
    admit(&after, &acme, "carol").await;
}

#[tokio::test]
async fn a_deleted_tenant_leaves_no_route_behind() {
    let (engine, _clock) = start().await;
    let (gone, kept) = (tenant("gone"), tenant("kept"));
    for t in [&gone, &kept] {
        engine.put_tenant(t, Licence::concurrent(2)).await.unwrap();
    }
    admit(&engine, &gone, "ann").await;
    admit(&engine, &kept, "bob").await;
    engine.delete_tenant(&gone).await.unwrap();
    let stats = engine.stats();
    assert_eq!((stats.tenants, stats.sessions_routed), (1, 1));
}
