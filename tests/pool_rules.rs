//! The licence rules of SPEC §1, one test per rule, on the pure pool core.
//!
//! Every test drives `PoolState` with explicit timestamps: time moves only when a test
//! says so, and no test sleeps.

use std::time::Duration;

use usher::pool::{
    PoolSnapshot, PoolState, Retention, SessionCursor, SessionView, Tombstone, UserView,
};
use usher::{
    EndReason, Error, Event, EventKind, Licence, Refusal, SeatPer, SessionId, SessionToken,
    TenantId, Timestamp, UserId,
};

/// 2026-01-15T00:00:00Z: a Thursday in the middle of a month.
const T0: Timestamp = Timestamp::from_millis(1_768_435_200_000);

fn secs(s: u64) -> Timestamp {
    T0 + Duration::from_secs(s)
}

fn millis(ms: u64) -> Timestamp {
    T0 + Duration::from_millis(ms)
}

fn tenant() -> TenantId {
    TenantId::parse("st-mungos").unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

/// A pool created at `T0`, its `TenantCreated` event already taken.
fn pool(licence: Licence) -> PoolState {
    let mut pool = PoolState::new(tenant(), licence, Retention::default(), T0);
    pool.take_events();
    pool
}

fn login(pool: &mut PoolState, name: &str, now: Timestamp) -> Result<SessionToken, Error> {
    let token = SessionToken::generate();
    pool.login(
        &user(name),
        Some("tab"),
        token.id(),
        token.secret_hash(),
        now,
    )
    .map(|_| token)
}

/// A login that must be admitted.
fn admit(pool: &mut PoolState, name: &str, now: Timestamp) -> SessionToken {
    login(pool, name, now).unwrap_or_else(|e| panic!("{name} should be admitted: {e:?}"))
}

fn heartbeat(
    pool: &mut PoolState,
    token: &SessionToken,
    now: Timestamp,
) -> Result<Timestamp, Error> {
    pool.heartbeat(token.id(), &token.secret_hash(), now)
}

fn release(pool: &mut PoolState, token: &SessionToken, now: Timestamp) -> Result<(), Error> {
    pool.release(token.id(), &token.secret_hash(), now)
}

fn logout(pool: &mut PoolState, token: &SessionToken, now: Timestamp) -> Result<u32, Error> {
    pool.logout(token.id(), &token.secret_hash(), now)
}

fn limit_reached(seats: u32, seats_in_use: u32, retry_after: Option<Duration>) -> Error {
    Error::LicenceLimitReached {
        seats,
        seats_in_use,
        retry_after,
    }
}

fn not_licensed(name: &str) -> Error {
    Error::UserNotLicensed { user: name.into() }
}

fn ended(reason: EndReason) -> Error {
    Error::SessionEnded { reason }
}

fn event(at: Timestamp, kind: EventKind) -> Event {
    Event {
        tenant: tenant(),
        at,
        kind,
    }
}

fn events(pool: &mut PoolState) -> Vec<Event> {
    pool.take_events().collect()
}

fn ended_event(
    at: Timestamp,
    name: &str,
    token: &SessionToken,
    reason: EndReason,
    seats_in_use: u32,
) -> Event {
    event(
        at,
        EventKind::Ended {
            user: user(name),
            session: token.id(),
            reason,
            seats_in_use,
        },
    )
}

fn is_live(pool: &PoolState, token: &SessionToken) -> bool {
    pool.session_views().iter().any(|s| s.id == token.id())
}

// ---------------------------------------------------------------------------------
// Named users
// ---------------------------------------------------------------------------------

#[test]
fn assigning_a_user_takes_a_named_seat() {
    let mut pool = pool(Licence::named(3));
    let view = pool.put_user(&user("ann"), T0).unwrap();
    assert!(view.assigned);
    assert_eq!(view.sessions, 0);
    assert_eq!(pool.seats_in_use(), 1);
    assert_eq!(pool.view().users, 1);
    assert_eq!(
        events(&mut pool),
        vec![event(
            T0,
            EventKind::UserAssigned {
                user: user("ann"),
                assigned: true,
                seats_in_use: 1
            }
        )]
    );

    // Assigning again changes nothing and says nothing.
    assert!(pool.put_user(&user("ann"), secs(1)).unwrap().assigned);
    assert_eq!(pool.seats_in_use(), 1);
    assert!(events(&mut pool).is_empty());
}

#[test]
fn assigning_past_the_seats_is_refused_with_seats_exhausted() {
    let mut pool = pool(Licence::named(2));
    pool.put_user(&user("ann"), T0).unwrap();
    pool.put_user(&user("bob"), T0).unwrap();
    events(&mut pool);

    let err = pool.put_user(&user("carol"), T0).unwrap_err();
    assert_eq!(err, Error::SeatsExhausted { seats: 2 });
    assert_eq!(err.code(), "seats_exhausted");
    assert_eq!(err.http_status(), 409);
    assert_eq!(pool.seats_in_use(), 2);
    assert_eq!(pool.view().users, 2);
    assert!(pool.user_views().iter().all(|u| u.user != user("carol")));
    // A refused assignment is not a licence refusal of a login.
    assert!(events(&mut pool).is_empty());
}

#[test]
fn an_unassigned_user_is_refused_with_user_not_licensed() {
    let mut pool = pool(Licence::named(2));
    pool.put_user(&user("ann"), T0).unwrap();
    events(&mut pool);

    let err = login(&mut pool, "bob", secs(1)).unwrap_err();
    assert_eq!(err, not_licensed("bob"));
    assert_eq!(err.code(), "user_not_licensed");
    assert_eq!(err.http_status(), 403);
    assert!(
        err.to_string().contains("ask your administrator"),
        "the message must tell the user what to do: {err}"
    );
    assert_eq!(
        events(&mut pool),
        vec![event(
            secs(1),
            EventKind::Refused {
                user: user("bob"),
                reason: Refusal::UserNotLicensed
            }
        )]
    );
    // A refused login neither registers the user nor opens a session.
    assert_eq!(pool.view().users, 1);
    assert_eq!(pool.live_sessions(), 0);
}

#[test]
fn all_named_users_log_in_at_once_in_many_tabs() {
    let names: Vec<String> = (0..5).map(|i| format!("user{i}")).collect();
    let mut pool = pool(Licence::named(5));
    for name in &names {
        pool.put_user(&user(name), T0).unwrap();
    }
    for tab in 0..10 {
        for name in &names {
            admit(&mut pool, name, secs(tab));
        }
    }
    assert_eq!(pool.live_sessions(), 50);
    assert_eq!(pool.seats_in_use(), 5);
    let users = pool.user_views();
    assert_eq!(users.len(), 5);
    assert!(users.iter().all(|u| u.assigned && u.sessions == 10));
}

#[test]
fn unassigning_ends_that_users_sessions() {
    let mut pool = pool(Licence::named(2));
    pool.put_user(&user("ann"), T0).unwrap();
    pool.put_user(&user("bob"), T0).unwrap();
    let ann_tabs: Vec<SessionToken> = (0..3).map(|_| admit(&mut pool, "ann", T0)).collect();
    let bob = admit(&mut pool, "bob", T0);
    assert_eq!(
        pool.put_user(&user("carol"), T0).unwrap_err().code(),
        "seats_exhausted"
    );
    events(&mut pool);

    pool.remove_user(&user("ann"), secs(5)).unwrap();

    let evs = events(&mut pool);
    assert_eq!(evs.len(), 4, "{evs:?}");
    for ev in &evs[..3] {
        match &ev.kind {
            EventKind::Ended {
                user: who,
                reason: EndReason::Evicted,
                ..
            } => assert_eq!(who, &user("ann")),
            other => panic!("expected ann's sessions to end, got {other:?}"),
        }
    }
    assert_eq!(
        evs[3],
        event(
            secs(5),
            EventKind::UserRemoved {
                user: user("ann"),
                seats_in_use: 1
            }
        )
    );
    for tab in &ann_tabs {
        assert_eq!(
            heartbeat(&mut pool, tab, secs(6)),
            Err(ended(EndReason::Evicted))
        );
    }
    assert_eq!(heartbeat(&mut pool, &bob, secs(6)), Ok(secs(606)));
    assert_eq!(pool.live_sessions(), 1);
    assert_eq!(pool.seats_in_use(), 1);
    assert_eq!(
        login(&mut pool, "ann", secs(7)).unwrap_err(),
        not_licensed("ann")
    );

    // The freed seat goes to someone else.
    assert!(pool.put_user(&user("carol"), secs(8)).unwrap().assigned);
    assert_eq!(pool.seats_in_use(), 2);
    admit(&mut pool, "carol", secs(8));
}

#[test]
fn removing_an_unknown_user_is_user_not_found() {
    let mut pool = pool(Licence::named(2));
    assert_eq!(
        pool.remove_user(&user("ghost"), T0),
        Err(Error::UserNotFound)
    );
    assert_eq!(
        pool.logout_user(&user("ghost"), T0),
        Err(Error::UserNotFound)
    );
    assert!(events(&mut pool).is_empty());
}

#[test]
fn a_lower_named_limit_keeps_every_assigned_user() {
    let mut pool = pool(Licence::named(3));
    for name in ["ann", "bob", "carol"] {
        pool.put_user(&user(name), T0).unwrap();
    }
    let ann = admit(&mut pool, "ann", T0);
    pool.set_licence(Licence::named(1), secs(1));

    assert_eq!(pool.seats_in_use(), 3);
    assert!(is_live(&pool, &ann));
    for name in ["ann", "bob", "carol"] {
        admit(&mut pool, name, secs(2));
    }
    assert_eq!(
        pool.put_user(&user("dave"), secs(3)),
        Err(Error::SeatsExhausted { seats: 1 })
    );
    // Only when usage falls below the new limit is a seat assignable again.
    pool.remove_user(&user("ann"), secs(4)).unwrap();
    pool.remove_user(&user("bob"), secs(4)).unwrap();
    assert_eq!(
        pool.put_user(&user("dave"), secs(5)),
        Err(Error::SeatsExhausted { seats: 1 })
    );
    pool.remove_user(&user("carol"), secs(6)).unwrap();
    assert!(pool.put_user(&user("dave"), secs(7)).unwrap().assigned);
}

// ---------------------------------------------------------------------------------
// Concurrent users
// ---------------------------------------------------------------------------------

#[test]
fn a_second_tab_shares_the_users_seat() {
    let mut pool = pool(Licence::concurrent(1));
    let tab1 = admit(&mut pool, "ann", T0);
    let tab2 = admit(&mut pool, "ann", secs(1));
    assert_ne!(tab1.id(), tab2.id());
    assert_eq!(pool.seats_in_use(), 1);
    assert_eq!(pool.live_sessions(), 2);
    assert_eq!(pool.view().sessions, 2);
    assert_eq!(
        login(&mut pool, "bob", secs(2)).unwrap_err().code(),
        "licence_limit_reached"
    );
}

#[test]
fn at_the_limit_a_new_user_is_refused_with_licence_limit_reached() {
    let mut pool = pool(Licence::concurrent(2));
    admit(&mut pool, "ann", T0);
    admit(&mut pool, "bob", T0);
    events(&mut pool);

    let err = login(&mut pool, "carol", T0).unwrap_err();
    assert_eq!(err.code(), "licence_limit_reached");
    assert_eq!(err.http_status(), 409);
    assert_eq!(
        events(&mut pool),
        vec![event(
            T0,
            EventKind::Refused {
                user: user("carol"),
                reason: Refusal::LicenceLimitReached
            }
        )]
    );
    assert_eq!(pool.seats_in_use(), 2);
    assert_eq!(pool.live_sessions(), 2);
    // Refused logins register no account.
    assert_eq!(pool.view().users, 2);
}

#[test]
fn refusal_carries_seats_in_use_and_retry_after() {
    let idle = Duration::from_secs(600);
    let mut pool = pool(Licence::concurrent(2).idle_timeout(idle));
    let ann = admit(&mut pool, "ann", T0); // deadline T0 + 600 s
    admit(&mut pool, "bob", secs(100)); // deadline T0 + 700 s

    // The earliest a seat could free itself is just past ann's deadline.
    assert_eq!(
        login(&mut pool, "carol", secs(250)),
        Err(limit_reached(2, 2, Some(Duration::from_millis(350_001))))
    );

    // Ann heartbeats: now bob's deadline is the nearest.
    assert_eq!(heartbeat(&mut pool, &ann, secs(300)), Ok(secs(900)));
    assert_eq!(
        login(&mut pool, "carol", secs(400)),
        Err(limit_reached(2, 2, Some(Duration::from_millis(300_001))))
    );

    // The hint is exact: one millisecond earlier is still too early.
    let retry_at = secs(400) + Duration::from_millis(300_001);
    assert_eq!(
        login(&mut pool, "carol", retry_at - Duration::from_millis(1))
            .unwrap_err()
            .code(),
        "licence_limit_reached"
    );
    admit(&mut pool, "carol", retry_at);
}

#[test]
fn a_licence_of_no_seats_refuses_without_a_retry_hint() {
    let mut pool = pool(Licence::concurrent(0));
    assert_eq!(login(&mut pool, "ann", T0), Err(limit_reached(0, 0, None)));
}

#[test]
fn seat_per_session_counts_every_tab() {
    let mut pool = pool(Licence::concurrent(2).seat_per(SeatPer::Session));
    let tab1 = admit(&mut pool, "ann", T0);
    admit(&mut pool, "ann", T0);
    assert_eq!(pool.seats_in_use(), 2);
    assert_eq!(pool.view().seat_per, Some(SeatPer::Session));

    // A third tab of the same user needs a seat of its own.
    assert_eq!(
        login(&mut pool, "ann", secs(1)),
        Err(limit_reached(2, 2, Some(Duration::from_millis(599_001))))
    );
    assert_eq!(
        login(&mut pool, "bob", secs(1)).unwrap_err().code(),
        "licence_limit_reached"
    );

    release(&mut pool, &tab1, secs(2)).unwrap();
    assert_eq!(pool.seats_in_use(), 1);
    admit(&mut pool, "bob", secs(3));
    assert_eq!(pool.seats_in_use(), 2);
}

#[test]
fn the_users_seat_frees_when_their_last_tab_ends() {
    let mut pool = pool(Licence::concurrent(1));
    let tab1 = admit(&mut pool, "ann", T0);
    let tab2 = admit(&mut pool, "ann", T0);

    release(&mut pool, &tab1, secs(1)).unwrap();
    assert_eq!(pool.seats_in_use(), 1);
    assert_eq!(
        login(&mut pool, "bob", secs(1)).unwrap_err().code(),
        "licence_limit_reached"
    );

    release(&mut pool, &tab2, secs(2)).unwrap();
    assert_eq!(pool.seats_in_use(), 0);
    admit(&mut pool, "bob", secs(2));
}

#[test]
fn releasing_a_tab_ends_only_that_session() {
    let mut pool = pool(Licence::concurrent(2));
    let tab1 = admit(&mut pool, "ann", T0);
    let tab2 = admit(&mut pool, "ann", T0);
    let bob = admit(&mut pool, "bob", T0);
    events(&mut pool);

    release(&mut pool, &tab1, secs(10)).unwrap();

    assert_eq!(
        events(&mut pool),
        vec![ended_event(secs(10), "ann", &tab1, EndReason::Released, 2)]
    );
    assert_eq!(
        heartbeat(&mut pool, &tab1, secs(11)),
        Err(ended(EndReason::Released))
    );
    assert_eq!(
        release(&mut pool, &tab1, secs(11)),
        Err(ended(EndReason::Released))
    );
    assert_eq!(heartbeat(&mut pool, &tab2, secs(11)), Ok(secs(611)));
    assert_eq!(heartbeat(&mut pool, &bob, secs(11)), Ok(secs(611)));
    assert_eq!(pool.live_sessions(), 2);
    assert_eq!(pool.seats_in_use(), 2);
}

#[test]
fn logout_ends_all_of_the_users_tabs() {
    let mut pool = pool(Licence::concurrent(2));
    let tabs: Vec<SessionToken> = (0..3).map(|_| admit(&mut pool, "ann", T0)).collect();
    let bob = admit(&mut pool, "bob", T0);
    events(&mut pool);

    assert_eq!(logout(&mut pool, &tabs[1], secs(5)), Ok(3));

    let evs = events(&mut pool);
    assert_eq!(evs.len(), 3);
    let mut ended_ids: Vec<_> = evs
        .iter()
        .map(|e| match &e.kind {
            EventKind::Ended {
                user: who,
                session,
                reason: EndReason::LoggedOut,
                ..
            } if who == &user("ann") && e.at == secs(5) => *session,
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

    for tab in &tabs {
        assert_eq!(
            heartbeat(&mut pool, tab, secs(6)),
            Err(ended(EndReason::LoggedOut))
        );
    }
    assert_eq!(
        logout(&mut pool, &tabs[0], secs(6)),
        Err(ended(EndReason::LoggedOut))
    );
    assert!(is_live(&pool, &bob));
    assert_eq!(pool.seats_in_use(), 1);
    // Logging out does not remove the account.
    assert_eq!(pool.view().users, 2);
}

#[test]
fn an_administrator_can_log_a_user_out_of_every_tab() {
    let mut pool = pool(Licence::concurrent(2));
    let tabs: Vec<SessionToken> = (0..2).map(|_| admit(&mut pool, "ann", T0)).collect();
    let bob = admit(&mut pool, "bob", T0);

    assert_eq!(pool.logout_user(&user("ann"), secs(1)), Ok(2));
    for tab in &tabs {
        assert_eq!(
            heartbeat(&mut pool, tab, secs(2)),
            Err(ended(EndReason::LoggedOut))
        );
    }
    assert!(is_live(&pool, &bob));
    assert_eq!(pool.logout_user(&user("ann"), secs(3)), Ok(0));
}

#[test]
fn ending_one_users_sessions_leaves_every_other_session_alone() {
    // Thousands of other users' tabs, logged in between ann's, bob's and carol's.
    let mut pool = pool(Licence::records());
    let mut others = Vec::new();
    let mut tabs: Vec<(&str, Vec<SessionToken>)> = vec![
        ("ann", Vec::new()),
        ("bob", Vec::new()),
        ("carol", Vec::new()),
    ];
    for i in 0..3_000u64 {
        let name = format!("user-{:03}", i % 900);
        others.push(admit(&mut pool, &name, millis(i)));
        if i % 1_000 == 500 {
            for (name, tabs) in &mut tabs {
                tabs.push(admit(&mut pool, name, millis(i)));
            }
        }
    }
    pool.check_invariants().unwrap();
    events(&mut pool);
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

    assert_eq!(logout(&mut pool, &ann[1], secs(10)), Ok(3));
    let evs = events(&mut pool);
    assert_eq!(evs.len(), 3);
    assert_eq!(ended_ids(&evs, "ann", EndReason::LoggedOut), ids(ann));

    assert_eq!(pool.logout_user(&user("bob"), secs(11)), Ok(3));
    let evs = events(&mut pool);
    assert_eq!(evs.len(), 3);
    assert_eq!(ended_ids(&evs, "bob", EndReason::LoggedOut), ids(bob));

    pool.remove_user(&user("carol"), secs(12)).unwrap();
    let evs = events(&mut pool);
    assert_eq!(evs.len(), 4, "three ends and the removal");
    assert_eq!(ended_ids(&evs, "carol", EndReason::Evicted), ids(carol));

    pool.check_invariants().unwrap();
    assert_eq!(pool.live_sessions(), others.len());
    for tab in &others {
        assert_eq!(heartbeat(&mut pool, tab, secs(13)), Ok(secs(613)));
    }
    // Ann's next login is her only session.
    let again = admit(&mut pool, "ann", secs(14));
    assert_eq!(logout(&mut pool, &again, secs(15)), Ok(1));
    pool.check_invariants().unwrap();
}

#[test]
fn a_users_sessions_are_known_to_their_account_after_a_restore() {
    let mut before = pool(Licence::concurrent(5));
    let ann: Vec<SessionToken> = (0..3).map(|i| admit(&mut before, "ann", secs(i))).collect();
    let bob = admit(&mut before, "bob", secs(1));
    release(&mut before, &ann[1], secs(4)).unwrap();
    let mut pool = PoolState::restore(before.snapshot(), Retention::default(), secs(100));
    pool.check_invariants().unwrap();

    assert_eq!(pool.logout_user(&user("ann"), secs(101)), Ok(2));
    let ended: Vec<_> = events(&mut pool)
        .iter()
        .map(|e| match &e.kind {
            EventKind::Ended { session, .. } => *session,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ended, vec![ann[0].id(), ann[2].id()]);
    assert!(is_live(&pool, &bob));
    pool.check_invariants().unwrap();
}

#[test]
fn forced_release_revokes_one_session() {
    let mut pool = pool(Licence::concurrent(1));
    let tab1 = admit(&mut pool, "ann", T0);
    let tab2 = admit(&mut pool, "ann", T0);
    events(&mut pool);

    pool.revoke(tab1.id(), secs(1)).unwrap();
    assert_eq!(
        events(&mut pool),
        vec![ended_event(secs(1), "ann", &tab1, EndReason::Revoked, 1)]
    );
    assert_eq!(
        heartbeat(&mut pool, &tab1, secs(2)),
        Err(ended(EndReason::Revoked))
    );
    assert_eq!(
        pool.revoke(tab1.id(), secs(2)),
        Err(ended(EndReason::Revoked))
    );
    assert!(is_live(&pool, &tab2));

    pool.revoke(tab2.id(), secs(3)).unwrap();
    assert_eq!(pool.seats_in_use(), 0);
    admit(&mut pool, "bob", secs(3));

    let unknown = SessionToken::generate();
    assert_eq!(
        pool.revoke(unknown.id(), secs(4)),
        Err(Error::SessionNotFound)
    );
}

#[test]
fn idle_session_frees_its_seat_after_timeout() {
    let mut pool = pool(Licence::concurrent(1).idle_timeout(Duration::from_secs(60)));
    let ann = admit(&mut pool, "ann", T0);
    assert_eq!(pool.next_due(), Some(millis(60_001)));
    events(&mut pool);

    // At its deadline the session is still alive...
    pool.expire_due(secs(60));
    assert_eq!(pool.live_sessions(), 1);
    assert!(events(&mut pool).is_empty());

    // ...one millisecond later it has expired.
    pool.expire_due(millis(60_001));
    assert_eq!(pool.live_sessions(), 0);
    assert_eq!(pool.seats_in_use(), 0);
    assert_eq!(
        events(&mut pool),
        vec![ended_event(
            millis(60_001),
            "ann",
            &ann,
            EndReason::Expired,
            0
        )]
    );
    assert_eq!(
        heartbeat(&mut pool, &ann, millis(60_002)),
        Err(ended(EndReason::Expired))
    );
    admit(&mut pool, "bob", millis(60_002));
}

#[test]
fn heartbeats_extend_the_idle_deadline() {
    let mut pool = pool(Licence::concurrent(1).idle_timeout(Duration::from_secs(60)));
    let ann = admit(&mut pool, "ann", T0);

    assert_eq!(heartbeat(&mut pool, &ann, secs(50)), Ok(secs(110)));
    assert_eq!(pool.next_due(), Some(millis(110_001)));
    let view = &pool.session_views()[0];
    assert_eq!(view.started_at, T0);
    assert_eq!(view.last_heartbeat_at, secs(50));
    assert_eq!(view.expires_at, secs(110));

    pool.expire_due(secs(100));
    assert_eq!(pool.live_sessions(), 1);
    // A heartbeat right at the deadline still counts.
    assert_eq!(heartbeat(&mut pool, &ann, secs(110)), Ok(secs(170)));
    pool.expire_due(secs(170));
    assert_eq!(pool.live_sessions(), 1);
    pool.expire_due(millis(170_001));
    assert_eq!(pool.live_sessions(), 0);
    assert_eq!(
        heartbeat(&mut pool, &ann, secs(171)),
        Err(ended(EndReason::Expired))
    );
}

#[test]
fn due_sessions_are_expired_before_the_limit_is_checked() {
    let mut pool = pool(Licence::concurrent(1).idle_timeout(Duration::from_secs(60)));
    let ann = admit(&mut pool, "ann", T0);
    assert_eq!(
        login(&mut pool, "bob", secs(60)),
        Err(limit_reached(1, 1, Some(Duration::from_millis(1))))
    );
    events(&mut pool);

    // Nobody ran an expiry pass: the login itself must see that ann is past due.
    let bob = admit(&mut pool, "bob", millis(60_001));
    assert_eq!(
        events(&mut pool),
        vec![
            ended_event(millis(60_001), "ann", &ann, EndReason::Expired, 0),
            event(
                millis(60_001),
                EventKind::Admitted {
                    user: user("bob"),
                    session: bob.id(),
                    seats_in_use: 1,
                    overage: false,
                }
            ),
        ]
    );
}

#[test]
fn a_lower_limit_never_ends_live_sessions() {
    let mut pool = pool(Licence::concurrent(3));
    let ann = admit(&mut pool, "ann", T0);
    let bob = admit(&mut pool, "bob", T0);
    let carol = admit(&mut pool, "carol", T0);
    events(&mut pool);

    pool.set_licence(Licence::concurrent(1), secs(1));
    assert_eq!(
        events(&mut pool),
        vec![event(
            secs(1),
            EventKind::LicenceChanged {
                licence: Licence::concurrent(1),
                seats_in_use: 3
            }
        )]
    );
    assert_eq!(pool.live_sessions(), 3);
    assert_eq!(pool.seats_in_use(), 3);
    for tab in [&ann, &bob, &carol] {
        assert_eq!(heartbeat(&mut pool, tab, secs(2)), Ok(secs(602)));
    }

    // New users are refused until usage falls below the new limit...
    assert_eq!(
        login(&mut pool, "dave", secs(3)),
        Err(limit_reached(1, 3, Some(Duration::from_millis(599_001))))
    );
    // ...but a user who holds a seat may open another tab in it.
    admit(&mut pool, "ann", secs(3));
    assert_eq!(pool.seats_in_use(), 3);

    logout(&mut pool, &ann, secs(4)).unwrap();
    release(&mut pool, &bob, secs(4)).unwrap();
    assert_eq!(pool.seats_in_use(), 1);
    assert_eq!(
        login(&mut pool, "dave", secs(5)).unwrap_err().code(),
        "licence_limit_reached"
    );
    release(&mut pool, &carol, secs(6)).unwrap();
    admit(&mut pool, "dave", secs(6));
    assert_eq!(pool.seats_in_use(), 1);
}

#[test]
fn more_seats_admit_at_once() {
    let mut pool = pool(Licence::concurrent(1));
    admit(&mut pool, "ann", T0);
    assert_eq!(
        login(&mut pool, "bob", T0).unwrap_err().code(),
        "licence_limit_reached"
    );
    pool.set_licence(Licence::concurrent(2), T0);
    admit(&mut pool, "bob", T0);
    assert_eq!(pool.seats_in_use(), 2);
    assert_eq!(pool.view().seats, Some(2));
}

#[test]
fn a_model_change_applies_from_the_next_login() {
    let mut pool = pool(Licence::concurrent(1));
    let ann = admit(&mut pool, "ann", T0);

    // Concurrent → named: ann's session lives on, but she now needs a named seat.
    pool.set_licence(Licence::named(2), secs(1));
    assert!(is_live(&pool, &ann));
    assert_eq!(pool.view().model, "named");
    assert_eq!(pool.seats_in_use(), 0);
    assert_eq!(login(&mut pool, "ann", secs(2)), Err(not_licensed("ann")));
    assert!(pool.put_user(&user("ann"), secs(3)).unwrap().assigned);
    assert!(pool.put_user(&user("bob"), secs(3)).unwrap().assigned);
    admit(&mut pool, "ann", secs(4));
    admit(&mut pool, "bob", secs(4));
    assert_eq!(pool.seats_in_use(), 2);

    // Named → records: no seat limit at all.
    pool.set_licence(Licence::records(), secs(5));
    assert_eq!(pool.view().seats, None);
    for name in ["carol", "dave", "erin"] {
        admit(&mut pool, name, secs(6));
    }
    assert_eq!(pool.seats_in_use(), 5);

    // Records → concurrent with a seat per tab: 6 tabs are live, so nobody new gets in,
    // not even another tab of a user already logged in.
    pool.set_licence(Licence::concurrent(6).seat_per(SeatPer::Session), secs(7));
    assert_eq!(pool.live_sessions(), 6);
    assert_eq!(pool.seats_in_use(), 6);
    assert_eq!(
        login(&mut pool, "ann", secs(8)).unwrap_err().code(),
        "licence_limit_reached"
    );

    // ...and with a seat per user, ann's new tab shares her seat.
    pool.set_licence(Licence::concurrent(5), secs(9));
    assert_eq!(pool.seats_in_use(), 5);
    admit(&mut pool, "ann", secs(9));
    assert_eq!(
        login(&mut pool, "frank", secs(9)).unwrap_err().code(),
        "licence_limit_reached"
    );
}

#[test]
fn a_licence_change_recounts_the_seats_in_use() {
    let mut pool = pool(Licence::concurrent(5));
    for _ in 0..3 {
        admit(&mut pool, "ann", T0);
    }
    assert_eq!(pool.seats_in_use(), 1);
    events(&mut pool);

    let per_tab = Licence::concurrent(5).seat_per(SeatPer::Session);
    pool.set_licence(per_tab, secs(1));
    assert_eq!(pool.seats_in_use(), 3);
    assert_eq!(
        events(&mut pool),
        vec![event(
            secs(1),
            EventKind::LicenceChanged {
                licence: per_tab,
                seats_in_use: 3
            }
        )]
    );
}

#[test]
fn an_idle_timeout_change_applies_from_the_next_heartbeat() {
    let mut pool = pool(Licence::concurrent(5));
    let ann = admit(&mut pool, "ann", T0);
    let short = Licence::concurrent(5).idle_timeout(Duration::from_secs(60));
    pool.set_licence(short, secs(10));
    assert_eq!(pool.view().idle_timeout_secs, 60);

    // The running deadline stands until the next heartbeat.
    assert_eq!(pool.session_views()[0].expires_at, secs(600));
    pool.expire_due(secs(100));
    assert!(is_live(&pool, &ann));
    assert_eq!(heartbeat(&mut pool, &ann, secs(100)), Ok(secs(160)));

    // New sessions get the new timeout and a matching heartbeat interval.
    let token = SessionToken::generate();
    let admission = pool
        .login(
            &user("bob"),
            None,
            token.id(),
            token.secret_hash(),
            secs(100),
        )
        .unwrap();
    assert_eq!(admission.expires_at, secs(160));
    assert_eq!(admission.idle_timeout, Duration::from_secs(60));
    assert_eq!(admission.heartbeat_interval, Duration::from_secs(15));

    pool.expire_due(millis(160_001));
    assert_eq!(pool.live_sessions(), 0);
}

// ---------------------------------------------------------------------------------
// Records-based
// ---------------------------------------------------------------------------------

#[test]
fn records_model_has_no_seat_limit() {
    let mut pool = pool(Licence::records());
    for i in 0..500 {
        admit(&mut pool, &format!("user{i}"), T0);
    }
    admit(&mut pool, "user0", T0);
    assert_eq!(pool.live_sessions(), 501);
    assert_eq!(pool.seats_in_use(), 500);
    let view = pool.view();
    assert_eq!(view.model, "records");
    assert_eq!(view.seats, None);
    assert_eq!(view.users, 500);
}

#[test]
fn records_peak_per_day_and_month() {
    let jan_15 = T0;
    let hour = Duration::from_secs(3600);
    let day = Duration::from_secs(24 * 3600);
    let mut pool = pool(Licence::records());

    let view = pool.records(jan_15);
    assert_eq!((view.count, view.peak_today, view.peak_month), (0, 0, 0));

    pool.report_records(100, jan_15 + 10 * hour);
    pool.report_records(300, jan_15 + 11 * hour);
    let view = pool.report_records(200, jan_15 + 12 * hour);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (200, 300, 300)
    );
    assert_eq!(
        events(&mut pool),
        [100, 300, 200]
            .iter()
            .zip(10..)
            .map(|(&count, h)| event(jan_15 + h * hour, EventKind::RecordsReported { count }))
            .collect::<Vec<_>>()
    );
    assert_eq!(pool.view().records, 200);

    // Just before midnight it is still the same day.
    let last_ms = jan_15 + day - Duration::from_millis(1);
    assert_eq!(pool.records(last_ms).peak_today, 300);

    // A new day starts from the current count; the month keeps its peak.
    let jan_16 = jan_15 + day;
    let view = pool.records(jan_16);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (200, 200, 300)
    );
    let view = pool.report_records(250, jan_16 + hour);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (250, 250, 300)
    );
    let view = pool.report_records(400, jan_16 + 2 * hour);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (400, 400, 400)
    );
    // On 31 January the count stood at 400 until this report.
    let view = pool.report_records(150, jan_15 + 16 * day);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (150, 400, 400)
    );

    // A new month (the billing period) starts from the current count too.
    let feb_1 = jan_15 + 17 * day;
    assert_eq!(feb_1.to_rfc3339(), "2026-02-01T00:00:00.000Z");
    let view = pool.records(feb_1);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (150, 150, 150)
    );
    let view = pool.report_records(120, feb_1 + hour);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (120, 150, 150)
    );

    // The same month of the next year is another billing period.
    let view = pool.report_records(900, feb_1 + 2 * hour);
    assert_eq!(view.peak_month, 900);
    let next_feb = feb_1 + 365 * day;
    assert_eq!(next_feb.to_rfc3339(), "2027-02-01T00:00:00.000Z");
    let view = pool.records(next_feb);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (900, 900, 900)
    );
    let view = pool.report_records(10, next_feb + hour);
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (10, 900, 900)
    );
}

// ---------------------------------------------------------------------------------
// Common to all models
// ---------------------------------------------------------------------------------

#[test]
fn max_users_limits_accounts() {
    assert_eq!(Licence::records().max_users, 999);
    assert_eq!(Licence::named(1).max_users, 999);
    assert_eq!(Licence::concurrent(1).max_users, 999);

    // Records and concurrent: users are registered on their first login.
    let mut pool = pool(Licence::records());
    for i in 0..999 {
        admit(&mut pool, &format!("user{i}"), T0);
    }
    assert_eq!(pool.view().users, 999);
    events(&mut pool);
    let err = login(&mut pool, "user999", T0).unwrap_err();
    assert_eq!(err, Error::UserLimitReached { max_users: 999 });
    assert_eq!(err.code(), "user_limit_reached");
    assert_eq!(err.http_status(), 403);
    assert_eq!(
        events(&mut pool),
        vec![event(
            T0,
            EventKind::Refused {
                user: user("user999"),
                reason: Refusal::UserLimitReached
            }
        )]
    );
    assert_eq!(
        pool.put_user(&user("user999"), T0),
        Err(Error::UserLimitReached { max_users: 999 })
    );
    // Known users still log in, in more tabs.
    admit(&mut pool, "user0", T0);
    // Removing an account makes room for another.
    pool.remove_user(&user("user1"), T0).unwrap();
    admit(&mut pool, "user999", T0);
    assert_eq!(pool.view().users, 999);
}

#[test]
fn max_users_counts_accounts_registered_by_assignment_too() {
    let mut pool = pool(Licence::concurrent(10).max_users(2));
    pool.put_user(&user("ann"), T0).unwrap();
    admit(&mut pool, "bob", T0);
    assert_eq!(
        login(&mut pool, "carol", T0),
        Err(Error::UserLimitReached { max_users: 2 })
    );
    // The account limit is checked before the seat limit: carol is not counted as
    // a seat refusal.
    assert_eq!(pool.seats_in_use(), 1);

    let mut pool = self::pool(Licence::named(10).max_users(2));
    pool.put_user(&user("ann"), T0).unwrap();
    pool.put_user(&user("bob"), T0).unwrap();
    assert_eq!(
        pool.put_user(&user("carol"), T0),
        Err(Error::UserLimitReached { max_users: 2 })
    );
    assert_eq!(pool.seats_in_use(), 2);
}

#[test]
fn a_lower_account_limit_keeps_existing_accounts() {
    let mut pool = pool(Licence::concurrent(10));
    for name in ["ann", "bob", "carol"] {
        admit(&mut pool, name, T0);
    }
    pool.set_licence(Licence::concurrent(10).max_users(2), secs(1));
    assert_eq!(pool.view().users, 3);
    assert_eq!(pool.live_sessions(), 3);
    admit(&mut pool, "ann", secs(2));
    assert_eq!(
        login(&mut pool, "dave", secs(2)),
        Err(Error::UserLimitReached { max_users: 2 })
    );
}

#[test]
fn ended_sessions_are_remembered_with_their_reason() {
    let idle = Duration::from_secs(60);
    let mut pool = pool(Licence::concurrent(10).idle_timeout(idle));
    let names = ["expired", "released", "logged-out", "revoked", "evicted"];
    let tabs: Vec<SessionToken> = names.iter().map(|n| admit(&mut pool, n, T0)).collect();
    for tab in &tabs[1..] {
        heartbeat(&mut pool, tab, secs(30)).unwrap();
    }

    release(&mut pool, &tabs[1], secs(40)).unwrap();
    logout(&mut pool, &tabs[2], secs(40)).unwrap();
    pool.revoke(tabs[3].id(), secs(40)).unwrap();
    pool.remove_user(&user("evicted"), secs(40)).unwrap();
    pool.expire_due(secs(61)); // the first session's deadline was T0 + 60 s
    let reasons = [
        EndReason::Expired,
        EndReason::Released,
        EndReason::LoggedOut,
        EndReason::Revoked,
        EndReason::Evicted,
    ];
    assert_eq!(pool.live_sessions(), 0);

    let hour = Duration::from_secs(3600);
    for (tab, reason) in tabs.iter().zip(reasons) {
        let err = heartbeat(&mut pool, tab, secs(62)).unwrap_err();
        assert_eq!(err, ended(reason));
        assert_eq!(err.code(), "session_ended");
        assert_eq!(err.http_status(), 410);
        assert!(err.to_string().contains(reason.as_str()), "{err}");
        assert_eq!(release(&mut pool, tab, secs(62)), Err(ended(reason)));
        assert_eq!(logout(&mut pool, tab, secs(62)), Err(ended(reason)));
    }
    assert!(pool.take_forgotten().next().is_none());
    assert_eq!(pool.next_due(), Some(secs(40) + hour));

    // Remembered for an hour...
    let almost = secs(40) + hour - Duration::from_millis(1);
    for (tab, reason) in tabs.iter().zip(reasons) {
        assert_eq!(heartbeat(&mut pool, tab, almost), Err(ended(reason)));
    }
    // ...then forgotten.
    pool.expire_due(secs(40) + hour);
    let mut forgotten: Vec<_> = pool.take_forgotten().collect();
    forgotten.sort();
    let mut expected: Vec<_> = tabs[1..].iter().map(SessionToken::id).collect();
    expected.sort();
    assert_eq!(forgotten, expected);
    for tab in &tabs[1..] {
        assert_eq!(
            heartbeat(&mut pool, tab, secs(40) + hour),
            Err(Error::SessionNotFound)
        );
        assert_eq!(
            pool.revoke(tab.id(), secs(40) + hour),
            Err(Error::SessionNotFound)
        );
    }
    assert_eq!(pool.next_due(), Some(secs(61) + hour));
    assert_eq!(
        heartbeat(
            &mut pool,
            &tabs[0],
            secs(61) + hour - Duration::from_millis(1)
        ),
        Err(ended(EndReason::Expired))
    );
    assert_eq!(
        heartbeat(&mut pool, &tabs[0], secs(61) + hour),
        Err(Error::SessionNotFound)
    );
    assert_eq!(
        pool.take_forgotten().collect::<Vec<_>>(),
        vec![tabs[0].id()]
    );
    assert_eq!(pool.next_due(), None);
}

#[test]
fn remembered_sessions_are_bounded_by_the_retention_capacity() {
    let retention = Retention {
        ended_for: Duration::from_secs(3600),
        capacity: 3,
    };
    let mut pool = PoolState::new(tenant(), Licence::concurrent(10), retention, T0);
    let tabs: Vec<SessionToken> = (0..5)
        .map(|i| admit(&mut pool, &format!("u{i}"), T0))
        .collect();
    for (i, tab) in tabs.iter().enumerate() {
        release(&mut pool, tab, secs(i as u64)).unwrap();
    }
    assert_eq!(
        pool.take_forgotten().collect::<Vec<_>>(),
        vec![tabs[0].id(), tabs[1].id()]
    );
    for tab in &tabs[..2] {
        assert_eq!(
            heartbeat(&mut pool, tab, secs(10)),
            Err(Error::SessionNotFound)
        );
    }
    for tab in &tabs[2..] {
        assert_eq!(
            heartbeat(&mut pool, tab, secs(10)),
            Err(ended(EndReason::Released))
        );
    }
    assert_eq!(pool.snapshot().ended.len(), 3);

    // With no room at all, an ended session is forgotten at once.
    let none = Retention {
        ended_for: Duration::from_secs(3600),
        capacity: 0,
    };
    let mut pool = PoolState::new(tenant(), Licence::concurrent(10), none, T0);
    let tab = admit(&mut pool, "ann", T0);
    release(&mut pool, &tab, T0).unwrap();
    assert_eq!(pool.take_forgotten().collect::<Vec<_>>(), vec![tab.id()]);
    assert_eq!(heartbeat(&mut pool, &tab, T0), Err(Error::SessionNotFound));
}

#[test]
fn a_wrong_secret_is_not_found() {
    let mut pool = pool(Licence::concurrent(1));
    let ann = admit(&mut pool, "ann", T0);
    // Someone who knows only the public session id (it is listed to administrators).
    let thief = SessionToken::with_id(ann.id());
    events(&mut pool);

    assert_eq!(
        heartbeat(&mut pool, &thief, secs(1)),
        Err(Error::SessionNotFound)
    );
    assert_eq!(
        release(&mut pool, &thief, secs(1)),
        Err(Error::SessionNotFound)
    );
    assert_eq!(
        logout(&mut pool, &thief, secs(1)),
        Err(Error::SessionNotFound)
    );
    assert!(events(&mut pool).is_empty());
    assert!(is_live(&pool, &ann));
    assert_eq!(pool.session_views()[0].last_heartbeat_at, T0);
    assert_eq!(heartbeat(&mut pool, &ann, secs(2)), Ok(secs(602)));

    // Once it has ended, only the holder learns why.
    release(&mut pool, &ann, secs(3)).unwrap();
    assert_eq!(
        heartbeat(&mut pool, &thief, secs(4)),
        Err(Error::SessionNotFound)
    );
    assert_eq!(
        heartbeat(&mut pool, &ann, secs(4)),
        Err(ended(EndReason::Released))
    );
}

#[test]
fn restored_sessions_get_a_full_idle_window_and_count_against_seats() {
    let idle = Duration::from_secs(60);
    let mut before = pool(Licence::concurrent(2).idle_timeout(idle));
    let ann1 = admit(&mut before, "ann", T0);
    let ann2 = admit(&mut before, "ann", secs(5));
    let bob = admit(&mut before, "bob", secs(10));
    heartbeat(&mut before, &ann1, secs(20)).unwrap();
    let gone = admit(&mut before, "ann", secs(21));
    release(&mut before, &gone, secs(22)).unwrap();
    before.report_records(42, secs(23));
    let snapshot = before.snapshot();

    // Through the store's serialisation, and back long after every deadline.
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: PoolSnapshot = serde_json::from_str(&json).unwrap();
    let restart = secs(1000);
    let mut pool = PoolState::restore(snapshot, Retention::default(), restart);

    assert_eq!(pool.live_sessions(), 3);
    assert_eq!(pool.seats_in_use(), 2);
    let views = pool.session_views();
    assert!(views.iter().all(|s| s.expires_at == restart + idle));
    let ann1_view = views.iter().find(|s| s.id == ann1.id()).unwrap();
    assert_eq!(ann1_view.started_at, T0);
    assert_eq!(ann1_view.last_heartbeat_at, secs(20));
    assert_eq!(
        pool.next_due(),
        Some(restart + idle + Duration::from_millis(1))
    );

    assert_eq!(
        login(&mut pool, "carol", restart),
        Err(limit_reached(2, 2, Some(Duration::from_millis(60_001))))
    );
    assert_eq!(
        heartbeat(&mut pool, &ann1, restart + idle),
        Ok(restart + 2 * idle)
    );
    assert_eq!(
        heartbeat(&mut pool, &gone, restart),
        Err(ended(EndReason::Released))
    );
    assert_eq!(pool.records(restart).count, 42);
    assert_eq!(pool.view().users, 2);

    pool.expire_due(restart + idle + Duration::from_millis(1));
    assert!(is_live(&pool, &ann1));
    assert!(!is_live(&pool, &ann2));
    assert!(!is_live(&pool, &bob));
    assert_eq!(pool.seats_in_use(), 1);
}

#[test]
fn restored_named_seats_stay_assigned() {
    let mut before = pool(Licence::named(2));
    before.put_user(&user("ann"), T0).unwrap();
    before.put_user(&user("bob"), T0).unwrap();
    let ann = admit(&mut before, "ann", T0);

    let mut pool = PoolState::restore(before.snapshot(), Retention::default(), secs(5));
    assert_eq!(pool.seats_in_use(), 2);
    assert_eq!(
        pool.put_user(&user("carol"), secs(5)),
        Err(Error::SeatsExhausted { seats: 2 })
    );
    assert_eq!(
        login(&mut pool, "carol", secs(5)),
        Err(not_licensed("carol"))
    );
    assert!(is_live(&pool, &ann));
    admit(&mut pool, "bob", secs(5));
}

#[test]
fn a_snapshot_holds_hashes_of_secrets_only() {
    let mut pool = pool(Licence::concurrent(2));
    let ann = admit(&mut pool, "ann", T0);
    let gone = admit(&mut pool, "bob", T0);
    release(&mut pool, &gone, T0).unwrap();
    let snapshot = pool.snapshot();
    let json = serde_json::to_string(&snapshot).unwrap();
    for token in [&ann, &gone] {
        let text = token.expose();
        assert!(!json.contains(&text[11..]), "a secret leaked into {json}");
    }
    assert_eq!(snapshot.sessions.len(), 1);
    assert_eq!(snapshot.sessions[0].secret, ann.secret_hash());
    assert_eq!(
        snapshot.ended,
        vec![(
            gone.id(),
            Tombstone {
                secret: gone.secret_hash(),
                reason: EndReason::Released,
                ended_at: T0
            }
        )]
    );
}

#[test]
fn every_decision_is_an_event() {
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    let mut pool = PoolState::new(tenant(), licence, Retention::default(), T0);
    assert_eq!(
        events(&mut pool),
        vec![event(T0, EventKind::TenantCreated { licence })]
    );

    let ann = admit(&mut pool, "ann", secs(1));
    login(&mut pool, "bob", secs(2)).unwrap_err();
    heartbeat(&mut pool, &ann, secs(3)).unwrap(); // keeping alive decides nothing
    pool.put_user(&user("carol"), secs(4)).unwrap();
    let two = Licence::concurrent(2)
        .idle_timeout(Duration::from_secs(60))
        .max_users(3);
    pool.set_licence(two, secs(5));
    let bob = admit(&mut pool, "bob", secs(6));
    release(&mut pool, &bob, secs(7)).unwrap();
    let carol = admit(&mut pool, "carol", secs(8));
    pool.revoke(carol.id(), secs(9)).unwrap();
    login(&mut pool, "dave", secs(10)).unwrap_err(); // the fourth account
    pool.remove_user(&user("carol"), secs(11)).unwrap();
    pool.report_records(7, secs(12));
    pool.expire_due(secs(70)); // ann heartbeated at 3 s: due at 63 s
    logout(&mut pool, &bob, secs(71)).unwrap_err(); // ended sessions decide nothing

    assert_eq!(
        events(&mut pool),
        vec![
            event(
                secs(1),
                EventKind::Admitted {
                    user: user("ann"),
                    session: ann.id(),
                    seats_in_use: 1,
                    overage: false,
                }
            ),
            event(
                secs(2),
                EventKind::Refused {
                    user: user("bob"),
                    reason: Refusal::LicenceLimitReached
                }
            ),
            event(
                secs(4),
                EventKind::UserAssigned {
                    user: user("carol"),
                    assigned: false,
                    seats_in_use: 1
                }
            ),
            event(
                secs(5),
                EventKind::LicenceChanged {
                    licence: two,
                    seats_in_use: 1
                }
            ),
            event(
                secs(6),
                EventKind::Admitted {
                    user: user("bob"),
                    session: bob.id(),
                    seats_in_use: 2,
                    overage: false,
                }
            ),
            ended_event(secs(7), "bob", &bob, EndReason::Released, 1),
            event(
                secs(8),
                EventKind::Admitted {
                    user: user("carol"),
                    session: carol.id(),
                    seats_in_use: 2,
                    overage: false,
                }
            ),
            ended_event(secs(9), "carol", &carol, EndReason::Revoked, 1),
            event(
                secs(10),
                EventKind::Refused {
                    user: user("dave"),
                    reason: Refusal::UserLimitReached
                }
            ),
            event(
                secs(11),
                EventKind::UserRemoved {
                    user: user("carol"),
                    seats_in_use: 1
                }
            ),
            event(secs(12), EventKind::RecordsReported { count: 7 }),
            ended_event(secs(70), "ann", &ann, EndReason::Expired, 0),
        ]
    );

    // Named: refusals and assignments; then the tenant is deleted.
    pool.set_licence(Licence::named(1), secs(80));
    login(&mut pool, "erin", secs(81)).unwrap_err();
    pool.put_user(&user("erin"), secs(82)).unwrap();
    let erin = admit(&mut pool, "erin", secs(83));
    let ended = pool.evict_all(secs(84));
    let reason_of = |id| ended.iter().find(|(e, _)| *e == id).map(|(_, t)| t.reason);
    assert_eq!(reason_of(erin.id()), Some(EndReason::Evicted));
    assert_eq!(reason_of(ann.id()), Some(EndReason::Expired));
    assert_eq!(pool.live_sessions(), 0);
    assert_eq!(
        events(&mut pool),
        vec![
            event(
                secs(80),
                EventKind::LicenceChanged {
                    licence: Licence::named(1),
                    seats_in_use: 0
                }
            ),
            event(
                secs(81),
                EventKind::Refused {
                    user: user("erin"),
                    reason: Refusal::UserNotLicensed
                }
            ),
            event(
                secs(82),
                EventKind::UserAssigned {
                    user: user("erin"),
                    assigned: true,
                    seats_in_use: 1
                }
            ),
            event(
                secs(83),
                EventKind::Admitted {
                    user: user("erin"),
                    session: erin.id(),
                    seats_in_use: 1,
                    overage: false,
                }
            ),
            ended_event(secs(84), "erin", &erin, EndReason::Evicted, 1),
            event(secs(84), EventKind::TenantDeleted),
        ]
    );
}

#[test]
fn the_tenant_view_reports_the_licence_and_usage() {
    let licence = Licence::concurrent(4)
        .seat_per(SeatPer::Session)
        .idle_timeout(Duration::from_secs(90))
        .max_users(50);
    let mut pool = pool(licence);
    admit(&mut pool, "ann", T0);
    admit(&mut pool, "ann", T0);
    admit(&mut pool, "bob", T0);
    pool.put_user(&user("carol"), T0).unwrap();
    pool.report_records(12, T0);
    let view = pool.view();
    assert_eq!(view.tenant, tenant());
    assert_eq!(view.model, "concurrent");
    assert_eq!(view.seats, Some(4));
    assert_eq!(view.seat_per, Some(SeatPer::Session));
    assert_eq!(view.idle_timeout_secs, 90);
    assert_eq!(view.max_users, 50);
    assert_eq!(view.seats_in_use, 3);
    assert_eq!(view.sessions, 3);
    assert_eq!(view.users, 3);
    assert_eq!(view.records, 12);

    let users = pool.user_views();
    let summary: Vec<(&str, bool, u32)> = users
        .iter()
        .map(|u| (u.user.as_str(), u.assigned, u.sessions))
        .collect();
    assert_eq!(
        summary,
        vec![("ann", false, 2), ("bob", false, 1), ("carol", false, 0)]
    );
}

// ---------------------------------------------------------------------------------
// Lists, a page at a time
// ---------------------------------------------------------------------------------

/// Every page from the start, `limit` at a time, with `between` run after each page.
fn session_pages(
    pool: &mut PoolState,
    limit: usize,
    mut between: impl FnMut(&mut PoolState, usize),
) -> Vec<Vec<SessionView>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = pool.session_page(after, limit);
        assert!(!page.items.is_empty() || pages.is_empty(), "an empty page");
        assert!(page.items.len() <= limit);
        pages.push(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
        between(pool, pages.len());
    }
}

fn keys(views: &[SessionView]) -> Vec<(Timestamp, SessionId)> {
    views.iter().map(|s| (s.started_at, s.id)).collect()
}

#[test]
fn sessions_are_listed_by_login_time_then_id_a_page_at_a_time() {
    let mut pool = pool(Licence::records());
    // Several logins in the same millisecond: the id breaks the tie.
    let tokens: Vec<SessionToken> = (0..7)
        .map(|i| admit(&mut pool, &format!("u{}", i % 3), millis(i / 3)))
        .collect();
    let all = pool.session_views();
    assert_eq!(all.len(), 7);
    let mut expected: Vec<(Timestamp, SessionId)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (millis(i as u64 / 3), t.id()))
        .collect();
    expected.sort();
    assert_eq!(keys(&all), expected);

    let pages = session_pages(&mut pool, 3, |_, _| {});
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(pages.concat(), all);

    // A last page that is exactly full says there is no next one.
    let last = pool.session_page(Some(SessionCursor::after(&all[3])), 3);
    assert_eq!(last.items, all[4..]);
    assert_eq!(last.next, None);
    let first = pool.session_page(None, 6);
    assert_eq!(first.next, Some(SessionCursor::after(&all[5])));
    assert_eq!(pool.session_page(None, 7).next, None);
    // A page holds at least one session.
    assert_eq!(pool.session_page(None, 0).items, all[..1]);
}

#[test]
fn paging_through_sessions_sees_each_lasting_one_once_while_others_come_and_go() {
    let mut pool = pool(Licence::records());
    let lasting: Vec<SessionToken> = (0..40)
        .map(|i| admit(&mut pool, &format!("u{}", i % 9), millis(i / 4)))
        .collect();
    let doomed: Vec<SessionToken> = (0..20)
        .map(|i| admit(&mut pool, &format!("d{}", i % 5), millis(i)))
        .collect();
    let mut doomed = doomed.into_iter();
    let mut ended = Vec::new();
    let mut joined = Vec::new();
    let mut now = secs(1);

    let pages = session_pages(&mut pool, 7, |pool, n| {
        // Between pages: two sessions end, wherever they are in the list, and
        // two users log in (one of them a user already listed).
        for token in doomed.by_ref().take(2) {
            release(pool, &token, now).unwrap();
            ended.push((token.id(), now));
        }
        joined.push(admit(pool, "u0", now).id());
        joined.push(admit(pool, &format!("new{n}"), now).id());
        now = now + Duration::from_millis(1);
    });
    pool.check_invariants().unwrap();

    let seen: Vec<SessionView> = pages.concat();
    let seen_keys = keys(&seen);
    assert!(
        seen_keys.windows(2).all(|w| w[0] < w[1]),
        "in order, each once"
    );
    let seen_ids: Vec<SessionId> = seen.iter().map(|s| s.id).collect();
    for token in &lasting {
        assert_eq!(
            seen_ids.iter().filter(|&&id| id == token.id()).count(),
            1,
            "a lasting session is listed once"
        );
    }
    // Sessions that log in later sort after every page already read: none is missed.
    for id in &joined {
        assert!(
            seen_ids.contains(id),
            "a session logged in meanwhile is listed"
        );
    }
    assert_eq!(
        seen.len(),
        lasting.len() + joined.len() + 20 - ended.len() + {
            // Ended sessions that had been listed before they ended.
            ended.iter().filter(|(id, _)| seen_ids.contains(id)).count()
        }
    );
}

#[test]
fn users_are_listed_by_user_id_a_page_at_a_time() {
    let mut pool = pool(Licence::records());
    for name in ["erin", "ann", "dave", "bob", "carol"] {
        pool.put_user(&user(name), T0).unwrap();
    }
    admit(&mut pool, "bob", T0);
    let first = pool.user_page(None, 2);
    let names = |page: &[UserView]| page.iter().map(|u| u.user.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&first.items), ["ann", "bob"]);
    assert_eq!(first.items[1].sessions, 1);
    assert_eq!(first.next, Some(user("bob")));

    // Between pages: a user before the cursor joins (not listed: it sorts before),
    // one after joins (listed), one not yet listed leaves.
    pool.put_user(&user("aaron"), T0).unwrap();
    pool.put_user(&user("dan"), T0).unwrap();
    pool.remove_user(&user("dave"), T0).unwrap();
    let second = pool.user_page(first.next.as_ref(), 2);
    assert_eq!(names(&second.items), ["carol", "dan"]);
    let third = pool.user_page(second.next.as_ref(), 2);
    assert_eq!(names(&third.items), ["erin"]);
    assert_eq!(third.next, None);

    // A cursor whose user has since gone still marks the place.
    pool.remove_user(&user("carol"), T0).unwrap();
    let after_carol = pool.user_page(Some(&user("carol")), 10);
    assert_eq!(names(&after_carol.items), ["dan", "erin"]);
    assert_eq!(
        names(&pool.user_views()),
        ["aaron", "ann", "bob", "dan", "erin"]
    );
    pool.check_invariants().unwrap();
}

#[test]
fn a_session_cursor_reads_back_only_what_it_wrote() {
    let mut pool = pool(Licence::records());
    admit(&mut pool, "ann", millis(1234));
    let view = &pool.session_views()[0];
    let cursor = SessionCursor::after(view);
    assert_eq!(SessionCursor::parse(&cursor.to_string()), Ok(cursor));
    assert_eq!(
        cursor.to_string(),
        format!("{}-{}", millis(1234).as_millis(), view.id)
    );
    for bad in [
        "",
        "-",
        "123",
        "123-",
        "-00abcdef01234567",
        "abc-00abcdef01234567",
        "+12-00abcdef01234567",
        "12-00abcdef0123456",
        "12-00abcdef01234567-1",
        "99999999999999999999999-00abcdef01234567",
    ] {
        let err = SessionCursor::parse(bad).unwrap_err();
        assert_eq!(err.code(), "invalid_request", "{bad:?}");
        assert!(err.to_string().contains("next_cursor"), "{bad:?}: {err}");
    }
}

// Fencing tokens (SPEC §8).

/// Logs `name` in and returns the admission's fence, checking that the session list
/// shows the same one.
fn admit_fence(pool: &mut PoolState, name: &str, now: Timestamp) -> (SessionToken, u64) {
    let token = SessionToken::generate();
    let admission = pool
        .login(&user(name), None, token.id(), token.secret_hash(), now)
        .unwrap_or_else(|e| panic!("{name} should be admitted: {e:?}"));
    let listed = pool
        .session_views()
        .into_iter()
        .find(|s| s.id == token.id())
        .map(|s| s.fence);
    assert_eq!(
        listed,
        Some(admission.fence),
        "the list shows the login's fence"
    );
    assert_eq!(pool.fence_of(token.id()), Some(admission.fence));
    (token, admission.fence)
}

#[test]
fn every_admission_takes_a_larger_fence_than_all_before_it() {
    let mut pool = pool(Licence::records());
    let mut fences = Vec::new();
    for (i, name) in ["ann", "bob", "ann", "cat", "bob"].into_iter().enumerate() {
        fences.push(admit_fence(&mut pool, name, secs(i as u64)).1);
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    assert_eq!(pool.fence(), *fences.last().unwrap());
    pool.check_invariants().unwrap();
}

#[test]
fn tabs_of_the_same_user_share_a_seat_but_not_a_fence() {
    let mut pool = pool(Licence::concurrent(1));
    let (_, first) = admit_fence(&mut pool, "ann", T0);
    let (_, second) = admit_fence(&mut pool, "ann", secs(1));
    assert_eq!(pool.seats_in_use(), 1);
    assert!(first < second, "{first} then {second}");
}

#[test]
fn a_refused_login_takes_no_fence() {
    let mut pool = pool(Licence::concurrent(1));
    let (ann, first) = admit_fence(&mut pool, "ann", T0);
    assert_eq!(first, 1);
    for _ in 0..3 {
        assert_eq!(
            login(&mut pool, "bob", secs(1)).unwrap_err().code(),
            "licence_limit_reached"
        );
    }
    assert_eq!(pool.fence(), 1, "refusals leave the high-water mark alone");
    release(&mut pool, &ann, secs(2)).unwrap();
    assert_eq!(admit_fence(&mut pool, "bob", secs(3)).1, 2);
}

#[test]
fn a_heartbeat_keeps_the_sessions_fence() {
    let mut pool = pool(Licence::concurrent(2));
    let (ann, fence) = admit_fence(&mut pool, "ann", T0);
    admit_fence(&mut pool, "bob", secs(1));
    heartbeat(&mut pool, &ann, secs(2)).unwrap();
    assert_eq!(pool.fence_of(ann.id()), Some(fence));
}

#[test]
fn a_holder_that_expired_and_was_replaced_holds_the_older_fence() {
    let mut pool = pool(Licence::concurrent(1).idle_timeout(Duration::from_secs(60)));
    let (ann, paused) = admit_fence(&mut pool, "ann", T0);
    // Ann's tab is paused past its idle deadline; Bob takes the seat.
    let (_, replacing) = admit_fence(&mut pool, "bob", secs(61));
    assert!(replacing > paused, "{replacing} must fence out {paused}");
    assert_eq!(
        heartbeat(&mut pool, &ann, secs(62)),
        Err(ended(EndReason::Expired))
    );
    assert_eq!(pool.fence_of(ann.id()), None);
}

#[test]
fn a_withdrawn_logins_fence_is_skipped() {
    let mut pool = pool(Licence::concurrent(1));
    let (withdrawn, first) = admit_fence(&mut pool, "ann", T0);
    pool.withdraw(withdrawn.id(), secs(1));
    let (_, next) = admit_fence(&mut pool, "bob", secs(2));
    assert_eq!(
        (first, next),
        (1, 2),
        "fences need not be dense, never reused"
    );
}

#[test]
fn a_restored_pool_continues_above_every_fence_it_handed_out() {
    let mut before = pool(Licence::concurrent(3));
    let (kept, kept_fence) = admit_fence(&mut before, "ann", T0);
    let (gone, _) = admit_fence(&mut before, "bob", secs(1));
    let (_, last) = admit_fence(&mut before, "cat", secs(2));
    release(&mut before, &gone, secs(3)).unwrap();
    // The newest session ends too: the mark, not the live sessions, carries on.
    before.logout_user(&user("cat"), secs(4)).unwrap();
    let snapshot = before.snapshot();
    assert_eq!(snapshot.fence, last);
    let json = serde_json::to_string(&snapshot).unwrap();
    let snapshot: PoolSnapshot = serde_json::from_str(&json).unwrap();

    let mut pool = PoolState::restore(snapshot, Retention::default(), secs(100));
    assert_eq!(pool.fence_of(kept.id()), Some(kept_fence));
    assert_eq!(pool.session_views()[0].fence, kept_fence);
    let (_, next) = admit_fence(&mut pool, "dan", secs(101));
    assert!(next > last, "{next} after a restart must pass {last}");
    pool.check_invariants().unwrap();
}

#[test]
fn a_snapshot_without_a_mark_continues_above_its_sessions_fences() {
    let mut before = pool(Licence::records());
    admit_fence(&mut before, "ann", T0);
    let (_, newest) = admit_fence(&mut before, "bob", secs(1));
    let mut json: serde_json::Value = serde_json::to_value(before.snapshot()).unwrap();
    // As a store that kept the sessions' fences but no mark would give it back.
    json.as_object_mut().unwrap().remove("fence");
    let snapshot: PoolSnapshot = serde_json::from_value(json).unwrap();
    assert_eq!(snapshot.fence, 0);
    let mut pool = PoolState::restore(snapshot, Retention::default(), secs(2));
    assert_eq!(pool.fence(), newest);
    assert!(admit_fence(&mut pool, "cat", secs(3)).1 > newest);
}

#[test]
fn a_pool_told_to_continue_above_a_mark_never_goes_below_it() {
    let mut pool = pool(Licence::records());
    pool.continue_fences_above(41);
    assert_eq!(admit_fence(&mut pool, "ann", T0).1, 42);
    pool.continue_fences_above(7);
    assert_eq!(admit_fence(&mut pool, "bob", T0).1, 43);
}
