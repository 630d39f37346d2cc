//! Fencing tokens (SPEC §8): every admission takes a fence larger than all before it in
//! its tenant, and a session keeps its fence for life.

use super::*;

#[tokio::test]
async fn login_heartbeat_and_session_list_carry_the_same_growing_fence() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    engine
        .put_tenant(
            &acme,
            Licence::concurrent(1).idle_timeout(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let first = engine.login(&acme, &user("ann"), None).await.unwrap();
    // The list is in login order.
    clock.advance(Duration::from_secs(1));
    let second_tab = engine.login(&acme, &user("ann"), None).await.unwrap();
    assert!(first.fence < second_tab.fence);
    let beat = engine.heartbeat(&first.token).await.unwrap();
    assert_eq!(beat.fence, first.fence);
    let listed: Vec<(usher::SessionId, u64)> = engine
        .sessions(&acme)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.id, s.fence))
        .collect();
    assert_eq!(
        listed,
        [
            (first.token.id(), first.fence),
            (second_tab.token.id(), second_tab.fence)
        ]
    );

    // Ann's tabs go idle and Bob takes the seat: his fence shuts out both of hers.
    clock.advance(Duration::from_secs(61));
    let bob = engine.login(&acme, &user("bob"), None).await.unwrap();
    assert!(bob.fence > second_tab.fence);
    assert_eq!(engine.heartbeat(&bob.token).await.unwrap().fence, bob.fence);
}

#[tokio::test]
async fn a_tenant_created_again_continues_above_its_old_incarnations_fences() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    engine.put_tenant(&acme, Licence::records()).await.unwrap();
    let mut old = 0;
    for name in ["ann", "bob", "cat"] {
        old = engine.login(&acme, &user(name), None).await.unwrap().fence;
    }
    engine.delete_tenant(&acme).await.unwrap();
    engine.put_tenant(&acme, Licence::records()).await.unwrap();
    let new = engine.login(&acme, &user("ann"), None).await.unwrap().fence;
    assert!(new > old, "{new} must pass the old incarnation's {old}");

    // Another tenant's fences are its own.
    let other = tenant("other");
    engine.put_tenant(&other, Licence::records()).await.unwrap();
    assert_eq!(
        engine
            .login(&other, &user("ann"), None)
            .await
            .unwrap()
            .fence,
        1
    );
}

#[tokio::test]
async fn every_admission_takes_a_larger_fence_than_all_before_it() {
    let (engine, clock, t) = start_tenant(Licence::records()).await;
    let mut fences = Vec::new();
    for (i, name) in ["ann", "bob", "ann", "cat", "bob"].into_iter().enumerate() {
        clock.set(at_secs(i as u64));
        fences.push(admit_fence(&engine, &t, name).await.1);
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
}

#[tokio::test]
async fn tabs_of_the_same_user_share_a_seat_but_not_a_fence() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let (_, first) = admit_fence(&engine, &t, "ann").await;
    clock.set(at_secs(1));
    let (_, second) = admit_fence(&engine, &t, "ann").await;
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    assert!(first < second, "{first} then {second}");
}

#[tokio::test]
async fn a_refused_login_takes_no_fence() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let (ann, first) = admit_fence(&engine, &t, "ann").await;
    assert_eq!(first, 1);
    clock.set(at_secs(1));
    for _ in 0..3 {
        assert_eq!(
            refusal(&engine, &t, "bob").await.code(),
            "licence_limit_reached"
        );
    }
    clock.set(at_secs(2));
    engine.release(&ann).await.unwrap();
    clock.set(at_secs(3));
    assert_eq!(
        admit_fence(&engine, &t, "bob").await.1,
        2,
        "refusals leave the fences alone"
    );
}

#[tokio::test]
async fn a_heartbeat_keeps_the_sessions_fence() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(2)).await;
    let (ann, fence) = admit_fence(&engine, &t, "ann").await;
    clock.set(at_secs(1));
    admit_fence(&engine, &t, "bob").await;
    clock.set(at_secs(2));
    assert_eq!(engine.heartbeat(&ann).await.unwrap().fence, fence);
    let listed = engine.sessions(&t).await.unwrap();
    let ann_listed = listed.iter().find(|s| s.id == ann.id()).unwrap();
    assert_eq!(ann_listed.fence, fence);
}

#[tokio::test]
async fn a_holder_that_expired_and_was_replaced_holds_the_older_fence() {
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant(licence).await;
    let (ann, paused) = admit_fence(&engine, &t, "ann").await;
    // Ann's tab is paused past its idle deadline; Bob takes the seat.
    clock.set(at_secs(61));
    let (_, replacing) = admit_fence(&engine, &t, "bob").await;
    assert!(replacing > paused, "{replacing} must fence out {paused}");
    clock.set(at_secs(62));
    assert_eq!(beat(&engine, &ann).await, Err(ended(EndReason::Expired)));
    assert!(!is_live(&engine, &t, &ann).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_logins_get_distinct_fences() {
    const LOGINS: usize = 2_000;
    let (engine, _clock) = start().await;
    let t = tenant("storm");
    engine
        .put_tenant(&t, Licence::records().max_users(1_000_000))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(LOGINS));
    let mut tasks = JoinSet::new();
    for i in 0..LOGINS {
        let (engine, t, barrier) = (engine.clone(), t.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let login = engine.login(&t, &user(&format!("u{i}")), None).await;
            login.unwrap().fence
        });
    }
    let mut fences = Vec::with_capacity(LOGINS);
    while let Some(fence) = tasks.join_next().await {
        fences.push(fence.unwrap());
    }
    fences.sort_unstable();
    fences.dedup();
    assert_eq!(fences.len(), LOGINS, "no two sessions share a fence");

    // The list shows exactly the fences the logins were answered with.
    let mut listed: Vec<u64> = engine
        .sessions(&t)
        .await
        .unwrap()
        .iter()
        .map(|s| s.fence)
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, fences);
}
