//! Licences change at runtime (SPEC §1): more or fewer seats, another model, another
//! idle timeout, and live sessions carry on.

use usher::OnLimit;

use super::*;

#[tokio::test]
async fn licences_change_at_runtime() {
    let (engine, clock, acme) = start_tenant(Licence::concurrent(2)).await;
    let ann = admit(&engine, &acme, "ann").await;
    let bob = admit(&engine, &acme, "bob").await;
    assert_eq!(
        refusal(&engine, &acme, "carol").await.code(),
        "licence_limit_reached"
    );

    // More seats admit at once.
    let (view, created) = engine
        .put_tenant(&acme, Licence::concurrent(3))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(view.seats, Some(3));
    let carol = admit(&engine, &acme, "carol").await;

    // Fewer seats end nothing; new users wait until usage falls below the limit.
    let short = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    let (view, _) = engine.put_tenant(&acme, short).await.unwrap();
    assert_eq!(
        (view.seats, view.seats_in_use, view.sessions),
        (Some(1), 3, 3)
    );
    for tab in [&ann, &bob, &carol] {
        // The new idle timeout applies from each session's next heartbeat.
        let beat = engine.heartbeat(tab).await.unwrap();
        assert_eq!(beat.expires_at, T0 + Duration::from_secs(60));
        assert_eq!(beat.idle_timeout, Duration::from_secs(60));
    }
    assert_eq!(
        refusal(&engine, &acme, "dave").await,
        Error::LicenceLimitReached {
            reserved: 0,
            seats: 1,
            seats_in_use: 3,
            retry_after: Some(millis(60_001)),
        }
    );
    engine.release(&ann).await.unwrap();
    engine.release(&bob).await.unwrap();
    assert_eq!(
        refusal(&engine, &acme, "dave").await.code(),
        "licence_limit_reached"
    );
    engine.release(&carol).await.unwrap();
    let dave = admit(&engine, &acme, "dave").await;

    // Another model: records has no seat limit.
    engine.put_tenant(&acme, Licence::records()).await.unwrap();
    for name in ["erin", "frank", "grace"] {
        admit(&engine, &acme, name).await;
    }
    let view = engine.tenant(&acme).await.unwrap();
    assert_eq!(
        (view.model, view.seats, view.seats_in_use),
        ("records", None, 4)
    );

    // And named: those not assigned are refused; live sessions carry on.
    engine.put_tenant(&acme, Licence::named(1)).await.unwrap();
    assert_eq!(
        refusal(&engine, &acme, "dave").await.code(),
        "user_not_licensed"
    );
    clock.advance(Duration::from_secs(30));
    engine.heartbeat(&dave).await.unwrap();
}

#[tokio::test]
async fn a_lower_limit_never_ends_live_sessions() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(3)).await;
    let ann = admit(&engine, &t, "ann").await;
    let bob = admit(&engine, &t, "bob").await;
    let carol = admit(&engine, &t, "carol").await;
    let mut watch = Watch::start(&engine).await;

    clock.set(at_secs(1));
    engine.put_tenant(&t, Licence::concurrent(1)).await.unwrap();
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            at_secs(1),
            EventKind::LicenceChanged {
                licence: Box::new(Licence::concurrent(1)),
                seats_in_use: 3
            }
        )]
    );
    assert_eq!(usage_now(&engine, &t).await, (3, 3));
    clock.set(at_secs(2));
    for tab in [&ann, &bob, &carol] {
        assert_eq!(beat(&engine, tab).await, Ok(at_secs(602)));
    }

    // New users are refused until usage falls below the new limit...
    clock.set(at_secs(3));
    assert_eq!(
        login(&engine, &t, "dave").await,
        Err(limit_reached(1, 3, Some(millis(599_001))))
    );
    // ...but a user who holds a seat may open another tab in it.
    admit(&engine, &t, "ann").await;
    assert_eq!(usage_now(&engine, &t).await.0, 3);

    clock.set(at_secs(4));
    engine.logout(&ann).await.unwrap();
    engine.release(&bob).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    clock.set(at_secs(5));
    assert_eq!(
        refusal(&engine, &t, "dave").await.code(),
        "licence_limit_reached"
    );
    clock.set(at_secs(6));
    engine.release(&carol).await.unwrap();
    admit(&engine, &t, "dave").await;
    assert_eq!(usage_now(&engine, &t).await.0, 1);
}

#[tokio::test]
async fn more_seats_admit_at_once() {
    let (engine, _clock, t) = start_tenant(Licence::concurrent(1)).await;
    admit(&engine, &t, "ann").await;
    assert_eq!(
        refusal(&engine, &t, "bob").await.code(),
        "licence_limit_reached"
    );
    let (view, created) = engine.put_tenant(&t, Licence::concurrent(2)).await.unwrap();
    assert!(!created);
    assert_eq!(view.seats, Some(2));
    admit(&engine, &t, "bob").await;
    assert_eq!(usage_now(&engine, &t).await.0, 2);
    assert_eq!(engine.tenant(&t).await.unwrap().seats, Some(2));
}

#[tokio::test]
async fn a_model_change_applies_from_the_next_login() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(1)).await;
    let ann = admit(&engine, &t, "ann").await;

    // Concurrent → named: ann's session lives on, but she now needs a named seat.
    clock.set(at_secs(1));
    engine.put_tenant(&t, Licence::named(2)).await.unwrap();
    assert!(is_live(&engine, &t, &ann).await);
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.model, view.seats_in_use), ("named", 0));
    clock.set(at_secs(2));
    assert_eq!(login(&engine, &t, "ann").await, Err(not_licensed("ann")));
    clock.set(at_secs(3));
    assert!(engine.put_user(&t, &user("ann")).await.unwrap().assigned);
    assert!(engine.put_user(&t, &user("bob")).await.unwrap().assigned);
    clock.set(at_secs(4));
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "bob").await;
    assert_eq!(usage_now(&engine, &t).await.0, 2);

    // Named → records: no seat limit at all.
    clock.set(at_secs(5));
    engine.put_tenant(&t, Licence::records()).await.unwrap();
    assert_eq!(engine.tenant(&t).await.unwrap().seats, None);
    clock.set(at_secs(6));
    for name in ["carol", "dave", "erin"] {
        admit(&engine, &t, name).await;
    }
    assert_eq!(usage_now(&engine, &t).await.0, 5);

    // Records → concurrent with a seat per tab: 6 tabs are live, so nobody new gets in,
    // not even another tab of a user already logged in.
    clock.set(at_secs(7));
    engine
        .put_tenant(&t, Licence::concurrent(6).seat_per(SeatPer::Session))
        .await
        .unwrap();
    assert_eq!(usage_now(&engine, &t).await, (6, 6));
    clock.set(at_secs(8));
    assert_eq!(
        refusal(&engine, &t, "ann").await.code(),
        "licence_limit_reached"
    );

    // ...and with a seat per user, ann's new tab shares her seat.
    clock.set(at_secs(9));
    engine.put_tenant(&t, Licence::concurrent(5)).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await.0, 5);
    admit(&engine, &t, "ann").await;
    assert_eq!(
        refusal(&engine, &t, "frank").await.code(),
        "licence_limit_reached"
    );
}

#[tokio::test]
async fn a_licence_change_recounts_the_seats_in_use() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(5)).await;
    for _ in 0..3 {
        admit(&engine, &t, "ann").await;
    }
    assert_eq!(usage_now(&engine, &t).await.0, 1);
    let mut watch = Watch::start(&engine).await;

    let per_tab = Licence::concurrent(5).seat_per(SeatPer::Session);
    clock.set(at_secs(1));
    let (view, _) = engine.put_tenant(&t, per_tab.clone()).await.unwrap();
    assert_eq!(view.seats_in_use, 3);
    assert_eq!(usage_now(&engine, &t).await.0, 3);
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            at_secs(1),
            EventKind::LicenceChanged {
                licence: Box::new(per_tab),
                seats_in_use: 3
            }
        )]
    );
}

#[tokio::test]
async fn an_idle_timeout_change_applies_from_the_next_heartbeat() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(5)).await;
    let ann = admit(&engine, &t, "ann").await;
    let short = Licence::concurrent(5).idle_timeout(Duration::from_secs(60));
    clock.set(at_secs(10));
    engine.put_tenant(&t, short).await.unwrap();
    assert_eq!(engine.tenant(&t).await.unwrap().idle_timeout_secs, 60);

    // The running deadline stands until the next heartbeat.
    assert_eq!(
        engine.sessions(&t).await.unwrap()[0].expires_at,
        at_secs(600)
    );
    clock.set(at_secs(100));
    engine.expire_due().await.unwrap();
    assert!(is_live(&engine, &t, &ann).await);
    assert_eq!(beat(&engine, &ann).await, Ok(at_secs(160)));

    // New sessions get the new timeout and a matching heartbeat interval.
    let bob = engine.login(&t, &user("bob"), None).await.unwrap();
    assert_eq!(bob.expires_at, at_secs(160));
    assert_eq!(bob.idle_timeout, Duration::from_secs(60));
    assert_eq!(bob.heartbeat_interval, Duration::from_secs(15));

    clock.set(at_millis(160_001));
    engine.expire_due().await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (0, 0));
}

// ---------------------------------------------------------------------------------
// Dry runs (SPEC §9): what a licence change would do, with nothing changed
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_dry_run_says_what_the_change_would_do_and_changes_nothing() {
    let (engine, _clock, acme) = start_tenant(Licence::concurrent(3)).await;
    for name in ["ann", "ann", "bob", "carol"] {
        admit(&engine, &acme, name).await;
    }
    let before = engine.tenant(&acme).await.unwrap();
    let mut watch = Watch::start(&engine).await;

    // One seat and two accounts: two seats held past the limit, one account past its.
    let fewer = Licence::concurrent(1).max_users(2);
    let preview = engine.preview_licence(&acme, fewer).await.unwrap();
    assert!(!preview.creates);
    assert_eq!(preview.tenant.seats, Some(1));
    assert_eq!(preview.tenant.max_users, 2);
    assert_eq!(
        (
            preview.tenant.seats_in_use,
            preview.tenant.sessions,
            preview.tenant.users
        ),
        (3, 4, 3)
    );
    assert_eq!(
        (
            preview.effects.seats_over_limit,
            preview.effects.users_over_limit
        ),
        (2, 1)
    );
    assert!(preview.effects.named_seats_lost.is_empty());

    // A seat per tab counts ann's two tabs; the overage is part of the limit.
    let per_tab = Licence::concurrent(2)
        .seat_per(SeatPer::Session)
        .overage(0.5);
    let preview = engine.preview_licence(&acme, per_tab).await.unwrap();
    assert_eq!(preview.tenant.seats_in_use, 4);
    assert_eq!(preview.effects.seats_over_limit, 1);

    // More seats would admit dave; not having been made, the change admits nobody.
    let more = engine
        .preview_licence(&acme, Licence::concurrent(5))
        .await
        .unwrap();
    assert_eq!(more.effects.seats_over_limit, 0);
    assert_eq!(
        refusal(&engine, &acme, "dave").await.code(),
        "licence_limit_reached"
    );
    assert_eq!(engine.tenant(&acme).await.unwrap(), before);
    let kinds = watch.kinds(&engine, &acme).await;
    assert!(
        matches!(&kinds[..], [EventKind::Refused { .. }]),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_dry_run_counts_kept_seats_and_the_line_as_the_change_would_keep_them() {
    let grace = Duration::from_secs(60);
    let keeping = |seats| Licence::concurrent(seats).reload_grace(grace);
    let (engine, _clock, acme) = start_tenant(keeping(2)).await;
    let ann = admit(&engine, &acme, "ann").await;
    engine.release(&ann).await.unwrap(); // ann's seat is kept for her reload
    admit(&engine, &acme, "bob").await;
    // The same seat rule and a grace keep ann's seat: two held, one past a limit of one.
    let preview = engine.preview_licence(&acme, keeping(1)).await.unwrap();
    assert_eq!(
        (
            preview.tenant.seats_in_use,
            preview.effects.seats_over_limit
        ),
        (2, 1)
    );
    // Without a grace her seat goes: only bob's is held.
    let preview = engine
        .preview_licence(&acme, Licence::concurrent(1))
        .await
        .unwrap();
    assert_eq!(
        (
            preview.tenant.seats_in_use,
            preview.effects.seats_over_limit
        ),
        (1, 0)
    );

    let queueing = |seats| Licence::concurrent(seats).on_limit(OnLimit::Queue);
    let (engine, _clock, line) = start_tenant(queueing(1)).await;
    admit(&engine, &line, "ann").await;
    for name in ["bob", "cy", "dee"] {
        engine.enter(&line, &user(name), None).await.unwrap();
    }
    // Two more seats would be held at once for the first two in line.
    let raised = engine.preview_licence(&line, queueing(3)).await.unwrap();
    assert_eq!(
        (
            raised.tenant.queued,
            raised.tenant.held_for_queue,
            raised.effects.seats_over_limit,
            raised.effects.tickets_ended
        ),
        (3, 2, 0, 0)
    );
    // Another model has no line: every ticket would end.
    let named = engine
        .preview_licence(&line, Licence::named(5))
        .await
        .unwrap();
    assert_eq!((named.tenant.queued, named.effects.tickets_ended), (0, 3));
    let view = engine.tenant(&line).await.unwrap();
    assert_eq!(
        (view.queued, view.held_for_queue),
        (3, 0),
        "nothing changed"
    );
}

#[tokio::test]
async fn a_dry_run_leaving_the_named_model_lists_who_loses_a_named_seat() {
    let (engine, _clock, charity) = start_tenant(Licence::named(3)).await;
    for name in ["carol", "ann", "bob"] {
        engine.put_user(&charity, &user(name)).await.unwrap();
    }
    admit(&engine, &charity, "ann").await;

    let preview = engine
        .preview_licence(&charity, Licence::concurrent(5))
        .await
        .unwrap();
    assert_eq!(
        preview.effects.named_seats_lost,
        [user("ann"), user("bob"), user("carol")]
    );
    // Under the new model the seat in use is ann's session's.
    assert_eq!(preview.tenant.seats_in_use, 1);

    // Staying named with fewer seats takes no seat away: one is held past the limit.
    let preview = engine
        .preview_licence(&charity, Licence::named(2))
        .await
        .unwrap();
    assert!(preview.effects.named_seats_lost.is_empty());
    assert_eq!(
        (
            preview.tenant.seats_in_use,
            preview.effects.seats_over_limit
        ),
        (3, 1)
    );
    let assigned = engine.users(&charity).await.unwrap();
    assert!(assigned.iter().all(|u| u.assigned), "{assigned:?}");
}

#[tokio::test]
async fn a_dry_run_for_a_tenant_not_there_creates_nothing() {
    let (engine, _clock) = start().await;
    let new = tenant("new");
    let preview = engine
        .preview_licence(&new, Licence::records().max_users(10))
        .await
        .unwrap();
    assert!(preview.creates);
    assert_eq!(
        (
            preview.tenant.model,
            preview.tenant.seats,
            preview.tenant.max_users
        ),
        ("records", None, 10)
    );
    assert_eq!(
        (
            preview.tenant.seats_in_use,
            preview.tenant.sessions,
            preview.tenant.users
        ),
        (0, 0, 0)
    );
    assert_eq!(
        engine.tenant(&new).await.unwrap_err(),
        Error::TenantNotFound
    );
    let (_, created) = engine.put_tenant(&new, Licence::records()).await.unwrap();
    assert!(created);
}

// ---------------------------------------------------------------------------------
// A licence read, then changed only if it is still the one read (PATCH)
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_licence_is_read_back_as_it_was_put() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    let licence = Licence::concurrent(4)
        .seat_per(SeatPer::Session)
        .idle_timeout(millis(90_500))
        .max_users(7)
        .overage(0.25)
        .max_sessions_per_user(3);
    engine.put_tenant(&acme, licence.clone()).await.unwrap();
    assert_eq!(engine.licence(&acme).await.unwrap(), licence);
    assert_eq!(
        engine.licence(&tenant("nobody")).await.unwrap_err(),
        Error::TenantNotFound
    );
}

#[tokio::test]
async fn a_licence_changes_only_while_it_is_still_the_one_read() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    let first = Licence::concurrent(2);
    engine.put_tenant(&acme, first.clone()).await.unwrap();
    let read = engine.licence(&acme).await.unwrap();
    engine
        .put_tenant(&acme, Licence::concurrent(3))
        .await
        .unwrap();
    let mut watch = Watch::start(&engine).await;

    // Another change came between: the stale one is refused and changes nothing.
    assert_eq!(
        engine
            .change_licence(&acme, read, Licence::concurrent(9))
            .await
            .unwrap_err(),
        Error::LicenceChanged
    );
    assert_eq!(engine.tenant(&acme).await.unwrap().seats, Some(3));
    assert!(watch.take(&engine, &acme).await.is_empty());

    let read = engine.licence(&acme).await.unwrap();
    let view = engine
        .change_licence(&acme, read, Licence::concurrent(9))
        .await
        .unwrap();
    assert_eq!(view.seats, Some(9));
    let kinds = watch.kinds(&engine, &acme).await;
    assert!(
        matches!(&kinds[..], [EventKind::LicenceChanged { .. }]),
        "{kinds:?}"
    );

    // It never creates a tenant.
    let nobody = tenant("nobody");
    assert_eq!(
        engine
            .change_licence(&nobody, first.clone(), first)
            .await
            .unwrap_err(),
        Error::TenantNotFound
    );
    assert_eq!(
        engine.tenant(&nobody).await.unwrap_err(),
        Error::TenantNotFound
    );
}

/// An engine with `acme` on no seats, and `racers` tasks let go at once on it, each
/// running `race`; answers once every task is done.
async fn race_on_acme<F, R>(racers: usize, race: F) -> (Arc<Engine>, TenantId)
where
    F: Fn(Arc<Engine>, TenantId) -> R,
    R: std::future::Future<Output = ()> + Send + 'static,
{
    let (engine, _clock) = start().await;
    let engine = Arc::new(engine);
    let acme = tenant("acme");
    engine
        .put_tenant(&acme, Licence::concurrent(0))
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(racers));
    let mut tasks = JoinSet::new();
    for _ in 0..racers {
        let (barrier, run) = (barrier.clone(), race(engine.clone(), acme.clone()));
        tasks.spawn(async move {
            barrier.wait().await;
            run.await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    (engine, acme)
}

/// Forty changes at once, each reading the seats and adding one, retrying when another
/// came between: none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_read_modify_writes_of_a_licence_lose_no_change() {
    let (engine, acme) = race_on_acme(40, |engine, acme| async move {
        loop {
            let read = engine.licence(&acme).await.unwrap();
            let seats = read.model.seats().unwrap();
            match engine
                .change_licence(&acme, read, Licence::concurrent(seats + 1))
                .await
            {
                Ok(_) => break,
                Err(Error::LicenceChanged) => continue,
                Err(other) => panic!("{other}"),
            }
        }
    })
    .await;
    assert_eq!(engine.tenant(&acme).await.unwrap().seats, Some(40));
}

/// Sixty updates at once through one engine, each adding a seat: every call lands
/// (none is answered `licence_changed`, more than the attempts a change from elsewhere
/// gets) and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_updates_of_a_licence_each_land_and_lose_no_change() {
    const UPDATES: usize = 60;
    const { assert!(UPDATES > usher::UPDATE_ATTEMPTS) };
    let (engine, acme) = race_on_acme(UPDATES, |engine, acme| async move {
        engine
            .update_licence(&acme, |current| {
                Ok(Licence::concurrent(current.model.seats().unwrap() + 1))
            })
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        engine.tenant(&acme).await.unwrap().seats,
        Some(UPDATES as u32)
    );

    // What the change refuses is answered as it is, with nothing changed.
    let refused = engine
        .update_licence(&acme, |_| Err(Error::InvalidRequest("no".into())))
        .await;
    assert_eq!(refused.unwrap_err(), Error::InvalidRequest("no".into()));
    assert_eq!(
        engine.tenant(&acme).await.unwrap().seats,
        Some(UPDATES as u32)
    );
    // It never creates a tenant.
    let nobody = tenant("nobody");
    let missing = engine
        .update_licence(&nobody, |current| Ok(current.clone()))
        .await;
    assert_eq!(missing.unwrap_err(), Error::TenantNotFound);
}
