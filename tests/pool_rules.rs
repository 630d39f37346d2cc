//! What only the pool core shows, on `PoolState` with explicit timestamps: snapshots
//! and their restoration, what the pool tells the actor that runs it (when it is next
//! due, which ended sessions it forgot, its fence mark), and the cursor's text form.
//!
//! The licence rules themselves are tested once, through the public `Engine`, by the
//! rule suite (`tests/rules`) on every backend; the property tests check the core's
//! internal invariants after random operations.

use std::time::Duration;

use usher::pool::{PoolSnapshot, PoolState, Retention, SessionCursor, Tombstone};
use usher::{
    EndReason, Error, Event, EventKind, Licence, SessionToken, TenantId, Timestamp, UserId,
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

fn limit_reached(seats: u32, seats_in_use: u32, retry_after: Option<Duration>) -> Error {
    Error::LicenceLimitReached {
        reserved: 0,
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

fn events(pool: &mut PoolState) -> Vec<Event> {
    pool.take_events().collect()
}

fn is_live(pool: &PoolState, token: &SessionToken) -> bool {
    pool.session_views().iter().any(|s| s.id == token.id())
}

// ---------------------------------------------------------------------------------
// Snapshots and restoration
// ---------------------------------------------------------------------------------

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
    before.put_user(&user("ann"), None, T0).unwrap();
    before.put_user(&user("bob"), None, T0).unwrap();
    let ann = admit(&mut before, "ann", T0);

    let mut pool = PoolState::restore(before.snapshot(), Retention::default(), secs(5));
    assert_eq!(pool.seats_in_use(), 2);
    assert_eq!(
        pool.put_user(&user("carol"), None, secs(5)),
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
                ended_at: T0,
                session: None,
            }
        )]
    );
}

// ---------------------------------------------------------------------------------
// What the pool tells its actor
// ---------------------------------------------------------------------------------

#[test]
fn the_pool_says_when_it_is_next_due() {
    let hour = Duration::from_secs(3600);
    let mut pool = pool(Licence::concurrent(10).idle_timeout(Duration::from_secs(60)));
    assert_eq!(pool.next_due(), None);
    let ann = admit(&mut pool, "ann", T0);
    assert_eq!(pool.next_due(), Some(millis(60_001)));
    assert_eq!(heartbeat(&mut pool, &ann, secs(50)), Ok(secs(110)));
    assert_eq!(pool.next_due(), Some(millis(110_001)));

    // An ended session is due to be forgotten when its retention is over.
    let bob = admit(&mut pool, "bob", secs(60));
    release(&mut pool, &bob, secs(70)).unwrap();
    assert_eq!(pool.next_due(), Some(millis(110_001)));
    pool.expire_due(millis(110_001));
    assert_eq!(pool.live_sessions(), 0);
    assert_eq!(pool.next_due(), Some(secs(70) + hour));
    assert!(pool.take_forgotten().next().is_none());

    pool.expire_due(secs(70) + hour - Duration::from_millis(1));
    assert!(pool.take_forgotten().next().is_none());
    pool.expire_due(secs(70) + hour);
    assert_eq!(pool.take_forgotten().collect::<Vec<_>>(), vec![bob.id()]);
    assert_eq!(pool.next_due(), Some(millis(110_001) + hour));
    pool.expire_due(millis(110_001) + hour);
    assert_eq!(pool.take_forgotten().collect::<Vec<_>>(), vec![ann.id()]);
    assert_eq!(pool.next_due(), None);
}

#[test]
fn sessions_forgotten_for_lack_of_room_are_handed_on() {
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
    assert!(pool.snapshot().ended.is_empty());
}

#[test]
fn the_fence_mark_is_the_last_fence_handed_out() {
    let mut pool = pool(Licence::concurrent(1).idle_timeout(Duration::from_secs(60)));
    let (ann, first) = admit_fence(&mut pool, "ann", T0);
    assert_eq!(pool.fence(), first);
    for _ in 0..3 {
        login(&mut pool, "bob", secs(1)).unwrap_err();
    }
    assert_eq!(pool.fence(), first, "refusals leave the mark alone");
    heartbeat(&mut pool, &ann, secs(2)).unwrap();
    assert_eq!(pool.fence_of(ann.id()), Some(first));

    // Ann expires and Bob takes the seat: only live sessions have a fence.
    let (bob, second) = admit_fence(&mut pool, "bob", secs(63));
    assert_eq!(pool.fence(), second);
    assert_eq!(pool.fence_of(ann.id()), None);
    assert_eq!(pool.fence_of(bob.id()), Some(second));
    pool.check_invariants().unwrap();
}

// Fencing tokens (SPEC §8): the mark and what carries it across a restart.

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

// ---------------------------------------------------------------------------------
// Cursors and pages
// ---------------------------------------------------------------------------------

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

#[test]
fn a_page_of_the_core_holds_at_least_one_session() {
    // The engine refuses a limit of 0; the core still never answers an empty page
    // that would have a next one.
    let mut pool = pool(Licence::records());
    admit(&mut pool, "ann", T0);
    admit(&mut pool, "bob", secs(1));
    let page = pool.session_page(None, 0);
    assert_eq!(page.items, pool.session_views()[..1]);
    assert!(page.next.is_some());
}
