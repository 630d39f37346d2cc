//! Fencing tokens (SPEC §8): every admission takes a fence larger than all before it in
//! its tenant, and a session keeps its fence for life.

use super::*;

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
