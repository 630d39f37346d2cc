//! Concurrent users (SPEC §1): at most `seats` users at a time, a seat per user or per
//! tab, and a refusal that says when to try again.

use super::*;
use usher::Refusal;

#[tokio::test]
async fn a_concurrent_licence_admits_up_to_its_seats() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    let (view, created) = engine
        .put_tenant(&acme, Licence::concurrent(2))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(view.seats, Some(2));
    assert_eq!(view.seats_in_use, 0);

    let login = engine
        .login(&acme, &user("ann"), Some("tab 1"))
        .await
        .unwrap();
    assert_eq!(login.tenant, acme);
    assert_eq!(login.user, user("ann"));
    assert_eq!(login.expires_at, T0 + Duration::from_secs(600));
    assert_eq!(login.idle_timeout, Duration::from_secs(600));
    assert_eq!(login.heartbeat_interval, Duration::from_secs(150));
    admit(&engine, &acme, "ann").await; // a second tab shares ann's seat
    admit(&engine, &acme, "bob").await;

    assert_eq!(
        refusal(&engine, &acme, "carol").await,
        Error::LicenceLimitReached {
            reserved: 0,
            seats: 2,
            seats_in_use: 2,
            retry_after: Some(millis(600_001)),
        }
    );
    let view = engine.tenant(&acme).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions, view.users), (2, 3, 2));

    let sessions = engine.sessions(&acme).await.unwrap();
    assert_eq!(sessions.len(), 3);
    let first = sessions.iter().find(|s| s.id == login.token.id()).unwrap();
    assert_eq!(first.user, user("ann"));
    assert_eq!(first.client.as_deref(), Some("tab 1"));
    assert_eq!(first.started_at, T0);
}

#[tokio::test]
async fn a_second_tab_shares_the_users_seat() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let tab1 = admit(&engine, &t, "ann").await;
    clock.set(at_secs(1));
    let tab2 = admit(&engine, &t, "ann").await;
    assert_ne!(tab1.id(), tab2.id());
    assert_eq!(usage_now(&engine, &t).await, (1, 2));
    assert_eq!(engine.sessions(&t).await.unwrap().len(), 2);
    clock.set(at_secs(2));
    assert_eq!(
        refusal(&engine, &t, "bob").await.code(),
        "licence_limit_reached"
    );
}

#[tokio::test]
async fn at_the_limit_a_new_user_is_refused_with_licence_limit_reached() {
    let (engine, _clock, t) = start_tenant(Licence::concurrent(2)).await;
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "bob").await;
    let mut watch = Watch::start(&engine).await;

    let err = refusal(&engine, &t, "carol").await;
    assert_eq!(err.code(), "licence_limit_reached");
    assert_eq!(err.http_status(), 409);
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            T0,
            EventKind::Refused {
                user: user("carol"),
                reason: Refusal::LicenceLimitReached
            }
        )]
    );
    assert_eq!(usage_now(&engine, &t).await, (2, 2));
    // Refused logins register no account.
    assert_eq!(engine.tenant(&t).await.unwrap().users, 2);
}

#[tokio::test]
async fn refusal_carries_seats_in_use_and_retry_after() {
    let idle = Duration::from_secs(600);
    let (engine, clock, t) = start_tenant(Licence::concurrent(2).idle_timeout(idle)).await;
    let ann = admit(&engine, &t, "ann").await; // deadline T0 + 600 s
    clock.set(at_secs(100));
    admit(&engine, &t, "bob").await; // deadline T0 + 700 s

    // The earliest a seat could free itself is just past ann's deadline.
    clock.set(at_secs(250));
    assert_eq!(
        login(&engine, &t, "carol").await,
        Err(limit_reached(2, 2, Some(millis(350_001))))
    );

    // Ann heartbeats: now bob's deadline is the nearest.
    clock.set(at_secs(300));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(900)));
    clock.set(at_secs(400));
    assert_eq!(
        login(&engine, &t, "carol").await,
        Err(limit_reached(2, 2, Some(millis(300_001))))
    );

    // The hint is exact: one millisecond earlier is still too early.
    let retry_at = at_secs(400) + millis(300_001);
    clock.set(retry_at - millis(1));
    assert_eq!(
        refusal(&engine, &t, "carol").await.code(),
        "licence_limit_reached"
    );
    clock.set(retry_at);
    admit(&engine, &t, "carol").await;
}

#[tokio::test]
async fn a_licence_of_no_seats_refuses_without_a_retry_hint() {
    let (engine, _clock, t) = start_tenant(Licence::concurrent(0)).await;
    assert_eq!(
        login(&engine, &t, "ann").await,
        Err(limit_reached(0, 0, None))
    );
}

#[tokio::test]
async fn seat_per_session_counts_every_tab() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(2).seat_per(SeatPer::Session)).await;
    let tab1 = admit(&engine, &t, "ann").await;
    admit(&engine, &t, "ann").await;
    assert_eq!(usage_now(&engine, &t).await.0, 2);
    assert_eq!(
        engine.tenant(&t).await.unwrap().seat_per,
        Some(SeatPer::Session)
    );

    // A third tab of the same user needs a seat of its own.
    clock.set(at_secs(1));
    assert_eq!(
        login(&engine, &t, "ann").await,
        Err(limit_reached(2, 2, Some(millis(599_001))))
    );
    assert_eq!(
        refusal(&engine, &t, "bob").await.code(),
        "licence_limit_reached"
    );

    clock.set(at_secs(2));
    engine.release(&tab1).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    clock.set(at_secs(3));
    admit(&engine, &t, "bob").await;
    assert_eq!(usage_now(&engine, &t).await.0, 2);
}

#[tokio::test]
async fn the_users_seat_frees_when_their_last_tab_ends() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let tab1 = admit(&engine, &t, "ann").await;
    let tab2 = admit(&engine, &t, "ann").await;

    clock.set(at_secs(1));
    engine.release(&tab1).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    assert_eq!(
        refusal(&engine, &t, "bob").await.code(),
        "licence_limit_reached"
    );

    clock.set(at_secs(2));
    engine.release(&tab2).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await.0, 0);
    admit(&engine, &t, "bob").await;
}
