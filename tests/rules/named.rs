//! Named users (SPEC §1): a seat per assigned user, every assigned user in any number
//! of tabs.

use super::*;
use usher::Refusal;

#[tokio::test]
async fn named_seats_through_the_engine() {
    let (engine, _clock) = start().await;
    let charity = tenant("charity");
    engine
        .put_tenant(&charity, Licence::named(2))
        .await
        .unwrap();
    for name in ["ann", "bob"] {
        let view = engine.put_user(&charity, &user(name)).await.unwrap();
        assert!(view.assigned);
    }
    assert_eq!(
        engine.put_user(&charity, &user("carol")).await,
        Err(Error::SeatsExhausted { seats: 2 })
    );
    assert_eq!(
        refusal(&engine, &charity, "carol").await,
        Error::UserNotLicensed {
            user: "carol".into()
        }
    );

    // Every named user, in many tabs, at once.
    let mut ann_tabs = Vec::new();
    for _ in 0..5 {
        ann_tabs.push(admit(&engine, &charity, "ann").await);
        admit(&engine, &charity, "bob").await;
    }
    let users = engine.users(&charity).await.unwrap();
    let summary: Vec<(&str, bool, u32)> = users
        .iter()
        .map(|u| (u.user.as_str(), u.assigned, u.sessions))
        .collect();
    assert_eq!(summary, vec![("ann", true, 5), ("bob", true, 5)]);

    // Unassigning ends the user's sessions and frees the seat.
    engine.remove_user(&charity, &user("ann")).await.unwrap();
    for tab in &ann_tabs {
        assert_eq!(
            engine.heartbeat(tab).await.unwrap_err(),
            ended(EndReason::Evicted)
        );
    }
    assert_eq!(
        engine.remove_user(&charity, &user("ann")).await,
        Err(Error::UserNotFound)
    );
    assert!(
        engine
            .put_user(&charity, &user("carol"))
            .await
            .unwrap()
            .assigned
    );
    admit(&engine, &charity, "carol").await;
    let view = engine.tenant(&charity).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (2, 6));
}

#[tokio::test]
async fn assigning_a_user_takes_a_named_seat() {
    let (engine, clock, t) = start_tenant(Licence::named(3)).await;
    let mut watch = Watch::start(&engine).await;
    let view = engine.put_user(&t, &user("ann")).await.unwrap();
    assert!(view.assigned);
    assert_eq!(view.sessions, 0);
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    assert_eq!(engine.tenant(&t).await.unwrap().users, 1);
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            T0,
            EventKind::UserAssigned {
                groups: Vec::new(),
                user: user("ann"),
                assigned: true,
                seats_in_use: 1
            }
        )]
    );

    // Assigning again changes nothing and says nothing.
    clock.set(at_secs(1));
    assert!(engine.put_user(&t, &user("ann")).await.unwrap().assigned);
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    assert!(watch.take(&engine, &t).await.is_empty());
}

#[tokio::test]
async fn assigning_past_the_seats_is_refused_with_seats_exhausted() {
    let (engine, _clock, t) = start_tenant(Licence::named(2)).await;
    engine.put_user(&t, &user("ann")).await.unwrap();
    engine.put_user(&t, &user("bob")).await.unwrap();
    let mut watch = Watch::start(&engine).await;

    let err = engine.put_user(&t, &user("carol")).await.unwrap_err();
    assert_eq!(err, Error::SeatsExhausted { seats: 2 });
    assert_eq!(err.code(), "seats_exhausted");
    assert_eq!(err.http_status(), 409);
    assert_eq!(usage_now(&engine, &t).await.0, 2);
    let users = engine.users(&t).await.unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u.user != user("carol")));
    // A refused assignment is not a licence refusal of a login.
    assert!(watch.take(&engine, &t).await.is_empty());
}

#[tokio::test]
async fn an_unassigned_user_is_refused_with_user_not_licensed() {
    let (engine, clock, t) = start_tenant(Licence::named(2)).await;
    engine.put_user(&t, &user("ann")).await.unwrap();
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(1));
    let err = login(&engine, &t, "bob").await.unwrap_err();
    assert_eq!(err, not_licensed("bob"));
    assert_eq!(err.code(), "user_not_licensed");
    assert_eq!(err.http_status(), 403);
    assert!(
        err.to_string().contains("ask your administrator"),
        "the message must tell the user what to do: {err}"
    );
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            at_secs(1),
            EventKind::Refused {
                user: user("bob"),
                reason: Refusal::UserNotLicensed
            }
        )]
    );
    // A refused login neither registers the user nor opens a session.
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.users, view.sessions), (1, 0));
}

#[tokio::test]
async fn all_named_users_log_in_at_once_in_many_tabs() {
    let names: Vec<String> = (0..5).map(|i| format!("user{i}")).collect();
    let (engine, clock, t) = start_tenant(Licence::named(5)).await;
    for name in &names {
        engine.put_user(&t, &user(name)).await.unwrap();
    }
    for tab in 0..10 {
        clock.set(at_secs(tab));
        for name in &names {
            admit(&engine, &t, name).await;
        }
    }
    assert_eq!(usage_now(&engine, &t).await, (5, 50));
    let users = engine.users(&t).await.unwrap();
    assert_eq!(users.len(), 5);
    assert!(users.iter().all(|u| u.assigned && u.sessions == 10));
}

#[tokio::test]
async fn unassigning_ends_that_users_sessions() {
    let (engine, clock, t) = start_tenant(Licence::named(2)).await;
    engine.put_user(&t, &user("ann")).await.unwrap();
    engine.put_user(&t, &user("bob")).await.unwrap();
    let mut ann_tabs = Vec::new();
    for _ in 0..3 {
        ann_tabs.push(admit(&engine, &t, "ann").await);
    }
    let bob = admit(&engine, &t, "bob").await;
    assert_eq!(
        engine
            .put_user(&t, &user("carol"))
            .await
            .unwrap_err()
            .code(),
        "seats_exhausted"
    );
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(5));
    engine.remove_user(&t, &user("ann")).await.unwrap();

    let evs = watch.take(&engine, &t).await;
    assert_eq!(evs.len(), 4, "{evs:?}");
    let mut ended_ids = Vec::new();
    for ev in &evs[..3] {
        match &ev.kind {
            EventKind::Ended {
                user: who,
                session,
                reason: EndReason::Evicted,
                ..
            } => {
                assert_eq!((who, ev.at), (&user("ann"), at_secs(5)));
                ended_ids.push(*session);
            }
            other => panic!("expected ann's sessions to end, got {other:?}"),
        }
    }
    ended_ids.sort();
    let mut tab_ids: Vec<_> = ann_tabs.iter().map(SessionToken::id).collect();
    tab_ids.sort();
    assert_eq!(ended_ids, tab_ids);
    assert_eq!(
        evs[3],
        event(
            &t,
            at_secs(5),
            EventKind::UserRemoved {
                user: user("ann"),
                seats_in_use: 1
            }
        )
    );
    clock.set(at_secs(6));
    for tab in &ann_tabs {
        assert_eq!(beat(&engine, tab).await, Err(ended(EndReason::Evicted)));
    }
    assert_eq!(beat(&engine, &bob).await, Ok(at_secs(606)));
    assert_eq!(usage_now(&engine, &t).await, (1, 1));
    clock.set(at_secs(7));
    assert_eq!(
        login(&engine, &t, "ann").await.unwrap_err(),
        not_licensed("ann")
    );

    // The freed seat goes to someone else.
    clock.set(at_secs(8));
    assert!(engine.put_user(&t, &user("carol")).await.unwrap().assigned);
    assert_eq!(usage_now(&engine, &t).await.0, 2);
    admit(&engine, &t, "carol").await;
}

#[tokio::test]
async fn removing_an_unknown_user_is_user_not_found() {
    let (engine, _clock, t) = start_tenant(Licence::named(2)).await;
    let mut watch = Watch::start(&engine).await;
    assert_eq!(
        engine.remove_user(&t, &user("ghost")).await,
        Err(Error::UserNotFound)
    );
    assert_eq!(
        engine.logout_user(&t, &user("ghost")).await,
        Err(Error::UserNotFound)
    );
    assert!(watch.take(&engine, &t).await.is_empty());
}

#[tokio::test]
async fn a_lower_named_limit_keeps_every_assigned_user() {
    let (engine, clock, t) = start_tenant(Licence::named(3)).await;
    for name in ["ann", "bob", "carol"] {
        engine.put_user(&t, &user(name)).await.unwrap();
    }
    let ann = admit(&engine, &t, "ann").await;
    clock.set(at_secs(1));
    engine.put_tenant(&t, Licence::named(1)).await.unwrap();

    assert_eq!(usage_now(&engine, &t).await.0, 3);
    assert!(is_live(&engine, &t, &ann).await);
    clock.set(at_secs(2));
    for name in ["ann", "bob", "carol"] {
        admit(&engine, &t, name).await;
    }
    clock.set(at_secs(3));
    assert_eq!(
        engine.put_user(&t, &user("dave")).await,
        Err(Error::SeatsExhausted { seats: 1 })
    );
    // Only when usage falls below the new limit is a seat assignable again.
    clock.set(at_secs(4));
    engine.remove_user(&t, &user("ann")).await.unwrap();
    engine.remove_user(&t, &user("bob")).await.unwrap();
    clock.set(at_secs(5));
    assert_eq!(
        engine.put_user(&t, &user("dave")).await,
        Err(Error::SeatsExhausted { seats: 1 })
    );
    clock.set(at_secs(6));
    engine.remove_user(&t, &user("carol")).await.unwrap();
    clock.set(at_secs(7));
    assert!(engine.put_user(&t, &user("dave")).await.unwrap().assigned);
}
