//! Fault paths of SPEC §2, each by construction: a store whose queue is full, that
//! stalls, fails, or blocks its pool on command ([`FaultStore`]), and a manual clock
//! for the write deadline. What must hold across a restart is in `durability.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use usher::store::{EventQuery, FaultStore};
use usher::{
    Engine, EngineConfig, Error, EventKind, Health, Licence, ManualClock, TenantId, Timestamp,
    UserId,
};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const DEADLINE: Duration = Duration::from_secs(5);

fn id(text: &str) -> TenantId {
    TenantId::parse(text).unwrap()
}

fn user(text: &str) -> UserId {
    UserId::parse(text).unwrap()
}

fn config() -> EngineConfig {
    EngineConfig {
        write_deadline: DEADLINE,
        // The tests drive expiry themselves.
        tick_every: Duration::from_secs(3600),
        ..EngineConfig::default()
    }
}

fn faulty(config: EngineConfig) -> (Engine, Arc<FaultStore>, ManualClock) {
    let store = Arc::new(FaultStore::new());
    let clock = ManualClock::starting_at(T0);
    let engine = Engine::with_store(config, Arc::new(clock.clone()), store.clone());
    (engine, store, clock)
}

/// An engine on a [`FaultStore`] with the tenant `crm` of `seats` concurrent seats.
async fn crm_with_seats(seats: u32) -> (Engine, Arc<FaultStore>, ManualClock, TenantId) {
    let (engine, store, clock) = faulty(config());
    let crm = id("crm");
    engine
        .put_tenant(&crm, Licence::concurrent(seats))
        .await
        .unwrap();
    (engine, store, clock, crm)
}

/// Waits (a bounded while) until `ready` holds: for something another thread does,
/// not for time to pass.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("gave up waiting until {what}");
}

fn spawn<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::spawn(future)
}

#[tokio::test]
async fn a_full_store_queue_sheds_a_login_without_taking_a_seat_or_stopping_the_engine() {
    let (engine, store, _clock, crm) = crm_with_seats(1).await;
    let ann = engine.login(&crm, &user("ann"), None).await.unwrap();

    store.set_full(true);
    let shed = engine.login(&crm, &user("bob"), None).await.unwrap_err();
    assert!(matches!(shed, Error::Overloaded { .. }), "{shed:?}");
    assert_eq!(shed.http_status(), 503);
    // A release is a write too: shed, and ann keeps her seat.
    assert_eq!(
        engine.release(&ann.token).await.unwrap_err().code(),
        "overloaded"
    );
    // Nothing changed, and nothing latched: the queue drains and all goes on.
    assert_eq!(engine.tenant(&crm).await.unwrap().seats_in_use, 1);
    assert_eq!(engine.health(), Health::Ok);
    store.set_full(false);
    engine.release(&ann.token).await.unwrap();
    engine.login(&crm, &user("bob"), None).await.unwrap();
    assert_eq!(engine.tenant(&crm).await.unwrap().seats_in_use, 1);
}

#[tokio::test]
async fn a_stalled_write_answers_unavailable_at_the_deadline_and_gives_the_seat_back() {
    let (engine, store, clock, crm) = crm_with_seats(1).await;

    store.stall();
    let login = spawn({
        let (engine, crm) = (engine.clone(), crm.clone());
        async move { engine.login(&crm, &user("ann"), None).await }
    });
    until("the login's write is held", || store.held() == 1).await;
    assert_eq!(engine.health(), Health::Ok, "not overdue yet");
    clock.advance(DEADLINE - Duration::from_millis(1));
    engine.expire_due().await.unwrap();
    assert!(
        !login.is_finished(),
        "answered before its write was durable"
    );

    clock.advance(Duration::from_millis(1));
    assert!(matches!(engine.health(), Health::Degraded(_)));
    engine.expire_due().await.unwrap();
    let answer = login.await.unwrap().unwrap_err();
    assert_eq!(answer.code(), "unavailable");
    assert_eq!(answer.http_status(), 503);

    // The disk thaws: the stalled write lands, then the withdrawal after it.
    store.resume();
    until("health recovers", || engine.health() == Health::Ok).await;
    let view = engine.tenant(&crm).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (0, 0));
    engine.login(&crm, &user("bob"), None).await.unwrap();
    let audit = engine
        .events(
            &crm,
            &EventQuery {
                limit: 100,
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<EventKind> = audit.events.into_iter().map(|e| e.event.kind).collect();
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::Withdrawn { user, .. } if user.as_str() == "ann")),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_queued_login_whose_write_stalls_answers_unavailable_and_leaves_no_place_in_line() {
    let (engine, store, clock) = faulty(config());
    let crm = id("crm");
    let licence = Licence::concurrent(1).on_limit(usher::OnLimit::Queue);
    engine.put_tenant(&crm, licence).await.unwrap();
    let ann = engine.login(&crm, &user("ann"), None).await.unwrap();

    store.stall();
    let queued = spawn({
        let (engine, crm) = (engine.clone(), crm.clone());
        async move { engine.enter(&crm, &user("bob"), None).await }
    });
    until("the queued login's write is held", || store.held() == 1).await;
    clock.advance(DEADLINE);
    engine.expire_due().await.unwrap();
    let answer = queued.await.unwrap().unwrap_err();
    assert_eq!(answer.code(), "unavailable");

    store.resume();
    until("health recovers", || engine.health() == Health::Ok).await;
    // Nobody holds bob's ticket: it is gone, and the seat ann frees goes to the next
    // in line rather than waiting for a claim nobody will make.
    assert_eq!(engine.tenant(&crm).await.unwrap().queued, 0);
    let cy = match engine.enter(&crm, &user("cy"), None).await.unwrap() {
        usher::Entry::Queued(ticket) => ticket,
        usher::Entry::Admitted(_) => panic!("cy should wait"),
    };
    assert_eq!(cy.position, 1);
    engine.release(&ann.token).await.unwrap();
    engine.claim(&cy.token).await.unwrap();
}

#[tokio::test]
async fn a_new_tenant_is_not_answered_before_its_creation_is_durable() {
    let (engine, store, _clock) = faulty(config());
    store.stall();
    let created = spawn({
        let engine = engine.clone();
        async move { engine.put_tenant(&id("crm"), Licence::concurrent(1)).await }
    });
    until("the creation is held", || store.held() == 1).await;
    store.fail_held();
    let answer = created.await.unwrap().unwrap_err();
    assert_eq!(answer.code(), "internal_error");
}

#[tokio::test]
async fn an_idempotent_assignment_waits_for_the_assignment_in_flight() {
    let (engine, store, _clock) = faulty(config());
    let named = id("named");
    engine.put_tenant(&named, Licence::named(2)).await.unwrap();
    store.stall();
    let assign = |engine: &Engine| {
        let (engine, named) = (engine.clone(), named.clone());
        spawn(async move { engine.put_user(&named, &user("ann")).await })
    };
    let first = assign(&engine);
    until("the assignment is held", || store.held() == 1).await;
    let second = assign(&engine);
    // A refusal after it writes an audit batch of its own: once that is held, the
    // pool has handled the second assignment.
    let refused = spawn({
        let (engine, named) = (engine.clone(), named.clone());
        async move { engine.login(&named, &user("zed"), None).await }
    });
    until("the refusal is held", || store.held() == 2).await;
    store.fail_held();
    assert_eq!(first.await.unwrap().unwrap_err().code(), "internal_error");
    assert_eq!(
        second.await.unwrap().unwrap_err().code(),
        "internal_error",
        "the second answer showed an assignment that never became durable"
    );
    assert_eq!(refused.await.unwrap().unwrap_err().code(), "internal_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn licence_changes_and_deletes_get_through_a_flood_that_is_being_shed() {
    const MAILBOX: usize = 8;
    let (engine, store, _clock) = faulty(EngineConfig {
        mailbox_capacity: MAILBOX,
        workers: 1,
        ..config()
    });
    let crm = id("crm");
    engine
        .put_tenant(&crm, Licence::concurrent(1).max_users(10_000))
        .await
        .unwrap();
    let doomed = id("doomed");
    engine
        .put_tenant(&doomed, Licence::concurrent(1))
        .await
        .unwrap();

    // The pool's thread stalls inside the store: its mailbox fills and stays full.
    store.block();
    let mut flood = JoinSet::new();
    let login = |engine: &Engine, tenant: &TenantId, n: usize| {
        let (engine, tenant) = (engine.clone(), tenant.clone());
        async move { engine.login(&tenant, &user(&format!("u{n}")), None).await }
    };
    flood.spawn(login(&engine, &crm, 0));
    until("the pool is blocked", || store.blocked() == 1).await;
    let mut shed = 0;
    for n in 1..=4 * MAILBOX {
        flood.spawn(login(&engine, &crm, n));
    }
    // The shed ones answer at once; the mailbox is full from the first of them on.
    while shed == 0 {
        if let Some(Ok(Err(Error::Overloaded { .. }))) = flood.join_next().await {
            shed += 1;
        }
    }
    let raise = spawn({
        let (engine, crm) = (engine.clone(), crm.clone());
        async move { engine.put_tenant(&crm, Licence::concurrent(100)).await }
    });
    let delete = spawn({
        let (engine, doomed) = (engine.clone(), doomed.clone());
        async move { engine.delete_tenant(&doomed).await }
    });
    store.resume();
    let (view, created) = raise.await.unwrap().unwrap();
    assert!(!created);
    assert_eq!(view.seats, Some(100));
    delete.await.unwrap().unwrap();
    assert_eq!(
        engine.tenant(&doomed).await.unwrap_err().code(),
        "tenant_not_found"
    );
    while let Some(joined) = flood.join_next().await {
        match joined.unwrap() {
            Ok(_) => {}
            Err(Error::Overloaded { .. }) => shed += 1,
            Err(e) => assert_eq!(e.code(), "licence_limit_reached", "{e:?}"),
        }
    }
    assert!(shed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_leave_exactly_one_key_and_none_survives_its_tenant() {
    let (engine, _store, _clock) = faulty(config());
    let crm = id("crm");
    for round in 0..50u8 {
        engine
            .put_tenant(&crm, Licence::concurrent(1))
            .await
            .unwrap();
        let hashes: Vec<[u8; 32]> = (0..4u8)
            .map(|k| [round, k, 1, 1].repeat(8).try_into().unwrap())
            .collect();
        let mut rotations = JoinSet::new();
        for hash in hashes.clone() {
            let (engine, crm) = (engine.clone(), crm.clone());
            rotations.spawn(async move { engine.set_api_key(&crm, hash).await });
        }
        while let Some(done) = rotations.join_next().await {
            done.unwrap().unwrap();
        }
        let mut valid = 0;
        for h in &hashes {
            if engine.tenant_of_key(h).await.unwrap() == Some(crm.clone()) {
                valid += 1;
            }
        }
        assert_eq!(valid, 1, "round {round}");

        engine.delete_tenant(&crm).await.unwrap();
        engine
            .put_tenant(&crm, Licence::concurrent(1))
            .await
            .unwrap();
        for h in &hashes {
            assert!(
                engine.tenant_of_key(h).await.unwrap().is_none(),
                "a key of the deleted tenant answers for the new one (round {round})"
            );
        }
        engine.delete_tenant(&crm).await.unwrap();
    }
}

/// Turns a hang into a failure.
async fn finishes<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .unwrap_or_else(|_| panic!("{what} never finished"))
}

#[tokio::test]
async fn after_a_failed_write_a_delete_changes_nothing_and_nothing_hangs() {
    let (engine, store, _clock, crm) = crm_with_seats(1).await;
    store.fail();
    let failed = engine.login(&crm, &user("ann"), None).await.unwrap_err();
    assert_eq!(failed.code(), "internal_error");
    let delete = finishes("the delete", engine.delete_tenant(&crm)).await;
    assert_eq!(delete.unwrap_err().code(), "internal_error");
    let put = finishes(
        "the create",
        engine.put_tenant(&crm, Licence::concurrent(2)),
    )
    .await;
    assert_eq!(put.unwrap_err().code(), "internal_error");
}

#[tokio::test]
async fn callers_waiting_on_a_deleted_pool_get_503_at_the_deadline() {
    let (engine, store, clock, crm) = crm_with_seats(1).await;
    store.stall();
    let login = spawn({
        let (engine, crm) = (engine.clone(), crm.clone());
        async move { engine.login(&crm, &user("ann"), None).await }
    });
    until("the login is held", || store.held() == 1).await;
    let delete = spawn({
        let (engine, crm) = (engine.clone(), crm.clone());
        async move { engine.delete_tenant(&crm).await }
    });
    until("the deletion is held", || store.held() == 2).await;
    clock.advance(DEADLINE);
    engine.expire_due().await.unwrap();
    let login = finishes("the login", login).await.unwrap();
    assert_eq!(login.unwrap_err().code(), "unavailable");
    let delete = finishes("the delete", delete).await.unwrap();
    assert_eq!(delete.unwrap_err().code(), "unavailable");

    // The disk thaws: the deletion lands and the name is free again.
    store.resume();
    let (view, created) = finishes(
        "the create",
        engine.put_tenant(&crm, Licence::concurrent(3)),
    )
    .await
    .unwrap();
    assert!(created);
    assert_eq!(view.seats, Some(3));
}

#[tokio::test]
async fn a_rotated_key_replaces_the_old_one_only_once_it_is_durable() {
    let (engine, store, _clock, crm) = crm_with_seats(1).await;
    let (old, new) = ([1; 32], [2; 32]);
    engine.set_api_key(&crm, old).await.unwrap();
    store.stall();
    let rotation = spawn({
        let (engine, crm) = (engine.clone(), crm.clone());
        async move { engine.set_api_key(&crm, new).await }
    });
    until("the rotation is held", || store.held() == 1).await;
    assert_eq!(engine.tenant_of_key(&old).await.unwrap(), Some(crm.clone()));
    assert_eq!(engine.tenant_of_key(&new).await.unwrap(), None);
    store.resume();
    finishes("the rotation", rotation).await.unwrap().unwrap();
    assert_eq!(engine.tenant_of_key(&old).await.unwrap(), None);
    assert_eq!(engine.tenant_of_key(&new).await.unwrap(), Some(crm.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_is_answered_only_once_its_writes_are_durable_and_in_full() {
    let (engine, store, _clock, crm) = crm_with_seats(100).await;
    let decided = engine.subscribe(10_000);

    store.stall();
    let logins: Vec<_> = (0..1_000)
        .map(|i| {
            let (engine, crm) = (engine.clone(), crm.clone());
            spawn(async move { engine.login(&crm, &user(&format!("u{i}")), None).await })
        })
        .collect();
    // Every login is decided (its event is out) while none of its writes is durable.
    let mut seen = 0;
    while seen < 1_000 {
        let event = tokio::task::spawn_blocking({
            let decided = decided.clone();
            move || decided.recv_timeout(Duration::from_secs(20))
        })
        .await
        .unwrap()
        .expect("every login is decided");
        if matches!(
            event.kind,
            EventKind::Admitted { .. } | EventKind::Refused { .. }
        ) {
            seen += 1;
        }
    }
    assert!(store.held() >= 1);
    assert!(
        logins.iter().all(|login| !login.is_finished()),
        "a login was answered before its write was durable"
    );

    store.resume();
    let (mut admitted, mut refused) = (0, 0);
    for login in logins {
        match login.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(error) => {
                assert_eq!(error.code(), "licence_limit_reached");
                refused += 1;
            }
        }
    }
    assert_eq!((admitted, refused), (100, 900));
    let view = engine.tenant(&crm).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (100, 100));
}
