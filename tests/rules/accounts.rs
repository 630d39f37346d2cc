//! The technical limit on user accounts (SPEC §1): `max_users` per tenant, whichever
//! the model, counted on first login or on assignment.

use super::*;
use usher::Refusal;

#[tokio::test]
async fn max_users_limits_accounts() {
    assert_eq!(Licence::records().max_users, 999);
    assert_eq!(Licence::named(1).max_users, 999);
    assert_eq!(Licence::concurrent(1).max_users, 999);

    // Records and concurrent: users are registered on their first login.
    let (engine, _clock, t) = start_tenant(Licence::records()).await;
    for i in 0..999 {
        admit(&engine, &t, &format!("user{i}")).await;
    }
    assert_eq!(engine.tenant(&t).await.unwrap().users, 999);
    let mut watch = Watch::start(&engine).await;
    let err = refusal(&engine, &t, "user999").await;
    assert_eq!(err, Error::UserLimitReached { max_users: 999 });
    assert_eq!(err.code(), "user_limit_reached");
    assert_eq!(err.http_status(), 403);
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            T0,
            EventKind::Refused {
                user: user("user999"),
                reason: Refusal::UserLimitReached
            }
        )]
    );
    assert_eq!(
        engine.put_user(&t, &user("user999")).await,
        Err(Error::UserLimitReached { max_users: 999 })
    );
    // Known users still log in, in more tabs.
    admit(&engine, &t, "user0").await;
    // Removing an account makes room for another.
    engine.remove_user(&t, &user("user1")).await.unwrap();
    admit(&engine, &t, "user999").await;
    assert_eq!(engine.tenant(&t).await.unwrap().users, 999);
}

#[tokio::test]
async fn max_users_counts_accounts_registered_by_assignment_too() {
    let (engine, _clock, t) = start_tenant(Licence::concurrent(10).max_users(2)).await;
    engine.put_user(&t, &user("ann")).await.unwrap();
    admit(&engine, &t, "bob").await;
    assert_eq!(
        login(&engine, &t, "carol").await,
        Err(Error::UserLimitReached { max_users: 2 })
    );
    // The account limit is checked before the seat limit: carol is not counted as
    // a seat refusal.
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    let refusals = &engine.usage(&t, 1).await.unwrap()[0].refusals;
    assert_eq!(
        (refusals.user_limit_reached, refusals.licence_limit_reached),
        (1, 0)
    );

    let named = tenant("named");
    engine
        .put_tenant(&named, Licence::named(10).max_users(2))
        .await
        .unwrap();
    engine.put_user(&named, &user("ann")).await.unwrap();
    engine.put_user(&named, &user("bob")).await.unwrap();
    assert_eq!(
        engine.put_user(&named, &user("carol")).await,
        Err(Error::UserLimitReached { max_users: 2 })
    );
    assert_eq!(usage_now(&engine, &named).await.0, 2);
}

#[tokio::test]
async fn a_lower_account_limit_keeps_existing_accounts() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(10)).await;
    for name in ["ann", "bob", "carol"] {
        admit(&engine, &t, name).await;
    }
    clock.set(at_secs(1));
    engine
        .put_tenant(&t, Licence::concurrent(10).max_users(2))
        .await
        .unwrap();
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.users, view.sessions), (3, 3));
    clock.set(at_secs(2));
    admit(&engine, &t, "ann").await;
    assert_eq!(
        login(&engine, &t, "dave").await,
        Err(Error::UserLimitReached { max_users: 2 })
    );
}
