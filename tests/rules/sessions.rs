//! How sessions end (SPEC §1): release of one tab, logout of every tab, a forced
//! release, inactivity; and what an ended session answers afterwards.

use super::*;
use usher::pool::Retention;

#[tokio::test]
async fn heartbeat_after_release_is_session_ended_released() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    engine
        .put_tenant(&acme, Licence::concurrent(1))
        .await
        .unwrap();
    let tab1 = admit(&engine, &acme, "ann").await;
    let tab2 = admit(&engine, &acme, "ann").await;

    clock.advance(Duration::from_secs(30));
    let beat = engine.heartbeat(&tab1).await.unwrap();
    assert_eq!(beat.expires_at, T0 + Duration::from_secs(630));
    assert_eq!(beat.idle_timeout, Duration::from_secs(600));

    engine.release(&tab1).await.unwrap();
    assert_eq!(
        engine.heartbeat(&tab1).await.unwrap_err(),
        ended(EndReason::Released)
    );
    let err = engine.release(&tab1).await.unwrap_err();
    assert_eq!(err, ended(EndReason::Released));
    assert_eq!(err.http_status(), 410);
    assert_eq!(
        engine.logout(&tab1).await.unwrap_err(),
        ended(EndReason::Released)
    );

    // The other tab keeps ann's seat.
    engine.heartbeat(&tab2).await.unwrap();
    assert_eq!(engine.tenant(&acme).await.unwrap().seats_in_use, 1);
    assert_eq!(
        refusal(&engine, &acme, "bob").await.code(),
        "licence_limit_reached"
    );
    engine.release(&tab2).await.unwrap();
    admit(&engine, &acme, "bob").await;
}

#[tokio::test]
async fn logout_and_forced_release_end_sessions_with_their_reason() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    engine
        .put_tenant(&acme, Licence::concurrent(3))
        .await
        .unwrap();
    let ann: Vec<SessionToken> = [
        admit(&engine, &acme, "ann").await,
        admit(&engine, &acme, "ann").await,
        admit(&engine, &acme, "ann").await,
    ]
    .into();
    let bob = admit(&engine, &acme, "bob").await;
    let carol = admit(&engine, &acme, "carol").await;

    assert_eq!(engine.logout(&ann[2]).await, Ok(3));
    for tab in &ann {
        assert_eq!(
            engine.heartbeat(tab).await.unwrap_err(),
            ended(EndReason::LoggedOut)
        );
    }

    engine.revoke(&acme, bob.id()).await.unwrap();
    assert_eq!(
        engine.heartbeat(&bob).await.unwrap_err(),
        ended(EndReason::Revoked)
    );
    assert_eq!(
        engine.revoke(&acme, bob.id()).await.unwrap_err(),
        ended(EndReason::Revoked)
    );

    assert_eq!(engine.logout_user(&acme, &user("carol")).await, Ok(1));
    assert_eq!(
        engine.heartbeat(&carol).await.unwrap_err(),
        ended(EndReason::LoggedOut)
    );
    assert_eq!(
        engine.logout_user(&acme, &user("nobody")).await,
        Err(Error::UserNotFound)
    );

    let view = engine.tenant(&acme).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (0, 0));
}

#[tokio::test]
async fn heartbeats_keep_a_session_alive() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    engine.put_tenant(&acme, licence).await.unwrap();
    let ann = admit(&engine, &acme, "ann").await;
    for _ in 0..10 {
        clock.advance(Duration::from_secs(50));
        engine.expire_due().await.unwrap();
        let beat = engine.heartbeat(&ann).await.unwrap();
        assert_eq!(beat.expires_at, clock_now(&clock) + Duration::from_secs(60));
    }
    assert_eq!(engine.tenant(&acme).await.unwrap().seats_in_use, 1);
    assert_eq!(
        refusal(&engine, &acme, "bob").await,
        Error::LicenceLimitReached {
            reserved: 0,
            seats: 1,
            seats_in_use: 1,
            retry_after: Some(millis(60_001)),
        }
    );
}

#[tokio::test]
async fn releasing_a_tab_ends_only_that_session() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(2)).await;
    let tab1 = admit(&engine, &t, "ann").await;
    let tab2 = admit(&engine, &t, "ann").await;
    let bob = admit(&engine, &t, "bob").await;
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(10));
    engine.release(&tab1).await.unwrap();

    assert_eq!(
        watch.take(&engine, &t).await,
        vec![ended_event(
            &t,
            at_secs(10),
            "ann",
            &tab1,
            EndReason::Released,
            2
        )]
    );
    clock.set(at_secs(11));
    assert_eq!(beat(&engine, &tab1).await, Err(ended(EndReason::Released)));
    assert_eq!(engine.release(&tab1).await, Err(ended(EndReason::Released)));
    assert_eq!(beat(&engine, &tab2).await, Ok(at_secs(611)));
    assert_eq!(beat(&engine, &bob).await, Ok(at_secs(611)));
    assert_eq!(usage_now(&engine, &t).await, (2, 2));
}

#[tokio::test]
async fn logout_ends_all_of_the_users_tabs() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(2)).await;
    let mut tabs = Vec::new();
    for _ in 0..3 {
        tabs.push(admit(&engine, &t, "ann").await);
    }
    let bob = admit(&engine, &t, "bob").await;
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(5));
    assert_eq!(engine.logout(&tabs[1]).await, Ok(3));

    let evs = watch.take(&engine, &t).await;
    assert_eq!(evs.len(), 3, "{evs:?}");
    let mut ended_ids: Vec<_> = evs
        .iter()
        .map(|e| match &e.kind {
            EventKind::Ended {
                user: who,
                session,
                reason: EndReason::LoggedOut,
                ..
            } if who == &user("ann") && e.at == at_secs(5) => *session,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    ended_ids.sort();
    let mut tab_ids: Vec<_> = tabs.iter().map(SessionToken::id).collect();
    tab_ids.sort();
    assert_eq!(ended_ids, tab_ids);
    // Ann's seat is held until her last tab ends, then freed.
    let seats: Vec<u32> = evs
        .iter()
        .map(|e| match e.kind {
            EventKind::Ended { seats_in_use, .. } => seats_in_use,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(seats, vec![2, 2, 1]);

    clock.set(at_secs(6));
    for tab in &tabs {
        assert_eq!(beat(&engine, tab).await, Err(ended(EndReason::LoggedOut)));
    }
    assert_eq!(
        engine.logout(&tabs[0]).await,
        Err(ended(EndReason::LoggedOut))
    );
    assert!(is_live(&engine, &t, &bob).await);
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    // Logging out does not remove the account.
    assert_eq!(engine.tenant(&t).await.unwrap().users, 2);
}

#[tokio::test]
async fn an_administrator_can_log_a_user_out_of_every_tab() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(2)).await;
    let tabs = [
        admit(&engine, &t, "ann").await,
        admit(&engine, &t, "ann").await,
    ];
    let bob = admit(&engine, &t, "bob").await;

    clock.set(at_secs(1));
    assert_eq!(engine.logout_user(&t, &user("ann")).await, Ok(2));
    clock.set(at_secs(2));
    for tab in &tabs {
        assert_eq!(beat(&engine, tab).await, Err(ended(EndReason::LoggedOut)));
    }
    assert!(is_live(&engine, &t, &bob).await);
    clock.set(at_secs(3));
    assert_eq!(engine.logout_user(&t, &user("ann")).await, Ok(0));
}

#[tokio::test]
async fn ending_one_users_sessions_leaves_every_other_session_alone() {
    // Thousands of other users' tabs, logged in between ann's, bob's and carol's.
    let (engine, clock, t) = start_tenant(Licence::records()).await;
    let mut others = Vec::new();
    let mut tabs: Vec<(&str, Vec<SessionToken>)> = vec![
        ("ann", Vec::new()),
        ("bob", Vec::new()),
        ("carol", Vec::new()),
    ];
    for i in 0..3_000u64 {
        clock.set(at_millis(i));
        let name = format!("user-{:03}", i % 900);
        others.push(admit(&engine, &t, &name).await);
        if i % 1_000 == 500 {
            for (name, tabs) in &mut tabs {
                tabs.push(admit(&engine, &t, name).await);
            }
        }
    }
    let mut watch = Watch::start(&engine).await;
    let [(_, ann), (_, bob), (_, carol)] = &tabs[..] else {
        unreachable!()
    };
    let ended_ids = |evs: &[Event], who: &str, reason: EndReason| -> Vec<_> {
        evs.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Ended {
                    user: u,
                    session,
                    reason: r,
                    ..
                } => {
                    assert_eq!((u, *r), (&user(who), reason), "{e:?}");
                    Some(*session)
                }
                _ => None,
            })
            .collect()
    };
    let ids = |tabs: &[SessionToken]| tabs.iter().map(SessionToken::id).collect::<Vec<_>>();

    clock.set(at_secs(10));
    assert_eq!(engine.logout(&ann[1]).await, Ok(3));
    let evs = watch.take(&engine, &t).await;
    assert_eq!(evs.len(), 3);
    assert_eq!(ended_ids(&evs, "ann", EndReason::LoggedOut), ids(ann));

    clock.set(at_secs(11));
    assert_eq!(engine.logout_user(&t, &user("bob")).await, Ok(3));
    let evs = watch.take(&engine, &t).await;
    assert_eq!(evs.len(), 3);
    assert_eq!(ended_ids(&evs, "bob", EndReason::LoggedOut), ids(bob));

    clock.set(at_secs(12));
    engine.remove_user(&t, &user("carol")).await.unwrap();
    let evs = watch.take(&engine, &t).await;
    assert_eq!(evs.len(), 4, "three ends and the removal");
    assert_eq!(ended_ids(&evs, "carol", EndReason::Evicted), ids(carol));

    assert_eq!(usage_now(&engine, &t).await.1 as usize, others.len());
    clock.set(at_secs(13));
    for tab in &others {
        assert_eq!(beat(&engine, tab).await, Ok(at_secs(613)));
    }
    // Ann's next login is her only session.
    clock.set(at_secs(14));
    let again = admit(&engine, &t, "ann").await;
    clock.set(at_secs(15));
    assert_eq!(engine.logout(&again).await, Ok(1));
}

#[tokio::test]
async fn forced_release_revokes_one_session() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let tab1 = admit(&engine, &t, "ann").await;
    let tab2 = admit(&engine, &t, "ann").await;
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(1));
    engine.revoke(&t, tab1.id()).await.unwrap();
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![ended_event(
            &t,
            at_secs(1),
            "ann",
            &tab1,
            EndReason::Revoked,
            1
        )]
    );
    clock.set(at_secs(2));
    assert_eq!(beat(&engine, &tab1).await, Err(ended(EndReason::Revoked)));
    assert_eq!(
        engine.revoke(&t, tab1.id()).await,
        Err(ended(EndReason::Revoked))
    );
    assert!(is_live(&engine, &t, &tab2).await);

    clock.set(at_secs(3));
    engine.revoke(&t, tab2.id()).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await.0, 0);
    admit(&engine, &t, "bob").await;

    clock.set(at_secs(4));
    let unknown = SessionToken::generate();
    assert_eq!(
        engine.revoke(&t, unknown.id()).await,
        Err(Error::SessionNotFound)
    );
}

#[tokio::test]
async fn idle_session_frees_its_seat_after_timeout() {
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant(licence).await;
    let ann = admit(&engine, &t, "ann").await;
    let mut watch = Watch::start(&engine).await;

    // At its deadline the session is still alive...
    clock.set(at_secs(60));
    engine.expire_due().await.unwrap();
    assert_eq!(engine.sessions(&t).await.unwrap().len(), 1);
    assert!(watch.take(&engine, &t).await.is_empty());

    // ...one millisecond later it has expired.
    clock.set(at_millis(60_001));
    engine.expire_due().await.unwrap();
    assert!(engine.sessions(&t).await.unwrap().is_empty());
    assert_eq!(usage_now(&engine, &t).await, (0, 0));
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![ended_event(
            &t,
            at_millis(60_001),
            "ann",
            &ann,
            EndReason::Expired,
            0
        )]
    );
    clock.set(at_millis(60_002));
    assert_eq!(beat(&engine, &ann).await, Err(ended(EndReason::Expired)));
    admit(&engine, &t, "bob").await;
}

#[tokio::test]
async fn heartbeats_extend_the_idle_deadline() {
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant(licence).await;
    let ann = admit(&engine, &t, "ann").await;

    clock.set(at_secs(50));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(110)));
    let view = engine.sessions(&t).await.unwrap().remove(0);
    assert_eq!(view.started_at, T0);
    assert_eq!(view.last_heartbeat_at, at_secs(50));
    assert_eq!(view.expires_at, at_secs(110));

    clock.set(at_secs(100));
    engine.expire_due().await.unwrap();
    assert!(is_live(&engine, &t, &ann).await);
    // A heartbeat right at the deadline still counts.
    clock.set(at_secs(110));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(170)));
    clock.set(at_secs(170));
    engine.expire_due().await.unwrap();
    assert!(is_live(&engine, &t, &ann).await);
    clock.set(at_millis(170_001));
    engine.expire_due().await.unwrap();
    assert!(!is_live(&engine, &t, &ann).await);
    clock.set(at_secs(171));
    assert_eq!(beat(&engine, &ann).await, Err(ended(EndReason::Expired)));
}

#[tokio::test]
async fn a_new_idle_timeout_moves_a_deadline_only_at_the_next_heartbeat() {
    let licence = Licence::concurrent(2).idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant(licence).await;
    let ann = admit(&engine, &t, "ann").await;
    clock.set(at_secs(1));
    let bob = admit(&engine, &t, "bob").await;
    clock.set(at_secs(50));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(110)));

    let longer = Licence::concurrent(2).idle_timeout(Duration::from_secs(600));
    engine.put_tenant(&t, longer).await.unwrap();
    let views = engine.sessions(&t).await.unwrap();
    let times: Vec<_> = views
        .iter()
        .map(|v| (v.last_heartbeat_at, v.expires_at))
        .collect();
    assert_eq!(
        times,
        [(at_secs(50), at_secs(110)), (at_secs(1), at_secs(61))]
    );

    clock.set(at_secs(70));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(670)));
    clock.set(at_secs(80));
    engine.expire_due().await.unwrap();
    assert!(!is_live(&engine, &t, &bob).await);
    let view = engine.sessions(&t).await.unwrap().remove(0);
    assert_eq!(
        (view.last_heartbeat_at, view.expires_at),
        (at_secs(70), at_secs(670))
    );
    clock.set(at_secs(90));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(690)));
    let view = engine.sessions(&t).await.unwrap().remove(0);
    assert_eq!(
        (view.last_heartbeat_at, view.expires_at),
        (at_secs(90), at_secs(690))
    );
}

#[tokio::test]
async fn due_sessions_are_expired_before_the_limit_is_checked() {
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant(licence).await;
    let ann = admit(&engine, &t, "ann").await;
    clock.set(at_secs(60));
    assert_eq!(
        login(&engine, &t, "bob").await,
        Err(limit_reached(1, 1, Some(millis(1))))
    );
    let mut watch = Watch::start(&engine).await;

    // Nobody ran an expiry pass: the login itself must see that ann is past due.
    clock.set(at_millis(60_001));
    let bob = admit(&engine, &t, "bob").await;
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![
            ended_event(&t, at_millis(60_001), "ann", &ann, EndReason::Expired, 0),
            event(
                &t,
                at_millis(60_001),
                EventKind::Admitted {
                    user: user("bob"),
                    session: bob.id(),
                    seats_in_use: 1,
                    overage: false,
                }
            ),
        ]
    );
    assert_eq!(beat(&engine, &ann).await, Err(ended(EndReason::Expired)));
}

#[tokio::test]
async fn ended_sessions_are_remembered_with_their_reason() {
    let idle = Duration::from_secs(60);
    let (engine, clock, t) = start_tenant(Licence::concurrent(10).idle_timeout(idle)).await;
    let names = ["expired", "released", "logged-out", "revoked", "evicted"];
    let mut tabs = Vec::new();
    for name in names {
        tabs.push(admit(&engine, &t, name).await);
    }
    clock.set(at_secs(30));
    for tab in &tabs[1..] {
        engine.heartbeat(tab).await.unwrap();
    }

    clock.set(at_secs(40));
    engine.release(&tabs[1]).await.unwrap();
    engine.logout(&tabs[2]).await.unwrap();
    engine.revoke(&t, tabs[3].id()).await.unwrap();
    engine.remove_user(&t, &user("evicted")).await.unwrap();
    clock.set(at_secs(61)); // the first session's deadline was T0 + 60 s
    engine.expire_due().await.unwrap();
    let reasons = [
        EndReason::Expired,
        EndReason::Released,
        EndReason::LoggedOut,
        EndReason::Revoked,
        EndReason::Evicted,
    ];
    assert_eq!(usage_now(&engine, &t).await, (0, 0));

    clock.set(at_secs(62));
    for (tab, reason) in tabs.iter().zip(reasons) {
        let err = engine.heartbeat(tab).await.unwrap_err();
        assert_eq!(err, ended(reason));
        assert_eq!(err.code(), "session_ended");
        assert_eq!(err.http_status(), 410);
        assert!(err.to_string().contains(reason.as_str()), "{err}");
        assert_eq!(engine.release(tab).await, Err(ended(reason)));
        assert_eq!(engine.logout(tab).await, Err(ended(reason)));
    }

    // Remembered for an hour...
    clock.set(at_secs(40) + HOUR - millis(1));
    engine.expire_due().await.unwrap();
    for (tab, reason) in tabs.iter().zip(reasons) {
        assert_eq!(beat(&engine, tab).await, Err(ended(reason)));
    }
    // ...then forgotten.
    clock.set(at_secs(40) + HOUR);
    engine.expire_due().await.unwrap();
    for tab in &tabs[1..] {
        assert_eq!(beat(&engine, tab).await, Err(Error::SessionNotFound));
        assert_eq!(
            engine.revoke(&t, tab.id()).await,
            Err(Error::SessionNotFound)
        );
    }
    clock.set(at_secs(61) + HOUR - millis(1));
    assert_eq!(
        beat(&engine, &tabs[0]).await,
        Err(ended(EndReason::Expired))
    );
    clock.set(at_secs(61) + HOUR);
    assert_eq!(beat(&engine, &tabs[0]).await, Err(Error::SessionNotFound));
}

#[tokio::test]
async fn remembered_sessions_are_bounded_by_the_retention_capacity() {
    let retention = |capacity| EngineConfig {
        retention: Retention {
            ended_for: HOUR,
            capacity,
        },
        ..EngineConfig::default()
    };
    let (engine, clock, t) = start_tenant_with(retention(3), Licence::concurrent(10)).await;
    let mut tabs = Vec::new();
    for i in 0..5 {
        tabs.push(admit(&engine, &t, &format!("u{i}")).await);
    }
    for (i, tab) in tabs.iter().enumerate() {
        clock.set(at_secs(i as u64));
        engine.release(tab).await.unwrap();
    }
    clock.set(at_secs(10));
    for tab in &tabs[..2] {
        assert_eq!(beat(&engine, tab).await, Err(Error::SessionNotFound));
    }
    for tab in &tabs[2..] {
        assert_eq!(beat(&engine, tab).await, Err(ended(EndReason::Released)));
    }

    // With no room at all, an ended session is forgotten at once.
    let (engine, _clock, t) = start_tenant_with(retention(0), Licence::concurrent(10)).await;
    let tab = admit(&engine, &t, "ann").await;
    engine.release(&tab).await.unwrap();
    assert_eq!(beat(&engine, &tab).await, Err(Error::SessionNotFound));
}

#[tokio::test]
async fn a_wrong_secret_is_not_found() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let ann = admit(&engine, &t, "ann").await;
    // Someone who knows only the public session id (it is listed to administrators).
    let thief = SessionToken::with_id(ann.id());
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(1));
    assert_eq!(engine.heartbeat(&thief).await, Err(Error::SessionNotFound));
    assert_eq!(engine.release(&thief).await, Err(Error::SessionNotFound));
    assert_eq!(engine.logout(&thief).await, Err(Error::SessionNotFound));
    assert!(watch.take(&engine, &t).await.is_empty());
    let sessions = engine.sessions(&t).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].last_heartbeat_at, T0);
    clock.set(at_secs(2));
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(602)));

    // The holder's token, as the browser sends it back.
    let parsed = SessionToken::parse(&ann.expose()).unwrap();
    assert_eq!(beat(&engine, &parsed).await, Ok(at_secs(602)));

    // Once it has ended, only the holder learns why.
    clock.set(at_secs(3));
    engine.release(&parsed).await.unwrap();
    clock.set(at_secs(4));
    assert_eq!(engine.heartbeat(&thief).await, Err(Error::SessionNotFound));
    assert_eq!(beat(&engine, &ann).await, Err(ended(EndReason::Released)));
}

#[tokio::test]
async fn a_session_idle_past_its_deadline_when_its_tenant_is_deleted_ends_expired() {
    let licence = Licence::concurrent(2).idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant_with(no_sweeper(), licence).await;
    let ann = admit(&engine, &t, "ann").await;
    let bob = admit(&engine, &t, "bob").await;
    clock.advance(Duration::from_secs(30));
    engine.heartbeat(&bob).await.unwrap();
    clock.advance(Duration::from_secs(31)); // past ann's deadline, not bob's
    let mut watch = Watch::start(&engine).await;
    engine.delete_tenant(&t).await.unwrap();
    let kinds = watch.kinds(&engine, &t).await;
    assert_eq!(
        beat(&engine, &ann).await.unwrap_err(),
        ended(EndReason::Expired),
        "{kinds:?}"
    );
    assert_eq!(
        beat(&engine, &bob).await.unwrap_err(),
        ended(EndReason::Evicted)
    );
    assert_eq!(
        kinds,
        vec![
            EventKind::Ended {
                user: user("ann"),
                session: ann.id(),
                reason: EndReason::Expired,
                seats_in_use: 1,
            },
            EventKind::Ended {
                user: user("bob"),
                session: bob.id(),
                reason: EndReason::Evicted,
                seats_in_use: 0,
            },
            EventKind::TenantDeleted,
        ]
    );
}

#[tokio::test]
async fn an_ended_session_of_a_deleted_tenant_is_remembered_an_hour_from_its_end() {
    let (engine, clock, t) = start_tenant_with(no_sweeper(), Licence::concurrent(2)).await;
    let ann = admit(&engine, &t, "ann").await;
    engine.release(&ann).await.unwrap();
    clock.advance(Duration::from_secs(50 * 60));
    engine.delete_tenant(&t).await.unwrap();
    assert_eq!(
        beat(&engine, &ann).await.unwrap_err(),
        ended(EndReason::Released)
    );
    // 61 minutes after ann's release, 11 after the deletion.
    clock.advance(Duration::from_secs(11 * 60));
    engine.expire_due().await.unwrap();
    assert_eq!(
        beat(&engine, &ann).await.unwrap_err(),
        Error::SessionNotFound
    );
}
