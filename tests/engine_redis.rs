//! The rule suite (`tests/rules`) on the Redis backend: the same tests, the same
//! expected codes and details, with the scripts reading the suite's manual clock.

use usher::{Engine, EngineConfig, ManualClock};

mod rules;
#[path = "support/redis.rs"]
mod support;

/// An engine on the shared test Redis, under a key prefix of its own, whose scripts
/// read `clock`.
pub async fn engine_on(config: EngineConfig, clock: ManualClock) -> Engine {
    Engine::with_redis(config, support::config(&clock))
        .await
        .expect("an engine on the test Redis")
}

/// Two nodes on one Redis: whichever sweeps, every idle session ends exactly once, with
/// one event, and both nodes see the same tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sweeping_together_end_each_idle_session_exactly_once() {
    use std::collections::BTreeSet;
    use std::time::Duration;
    use usher::store::EventQuery;
    use usher::{EndReason, EventKind, Licence};

    let clock = ManualClock::starting_at(rules::T0);
    let shared = support::config(&clock);
    let a = Engine::with_redis(EngineConfig::default(), shared.clone())
        .await
        .unwrap();
    let b = Engine::with_redis(EngineConfig::default(), shared)
        .await
        .unwrap();
    let (seen_a, seen_b) = (a.subscribe(1000), b.subscribe(1000));
    let t = rules::tenant("swept");
    a.put_tenant(
        &t,
        Licence::concurrent(100).idle_timeout(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..60 {
        let node = if i % 2 == 0 { &a } else { &b };
        ids.insert(rules::admit(node, &t, &format!("user-{i}")).await.id());
    }
    assert_eq!(b.tenant(&t).await.unwrap().seats_in_use, 60);

    clock.advance(Duration::from_secs(61));
    let (swept_a, swept_b) = tokio::join!(a.expire_due(), b.expire_due());
    swept_a.unwrap();
    swept_b.unwrap();
    // The sweeps alone ended them (nothing else has touched the tenant since): their
    // events reach the two nodes' subscribers.
    let expired = |events: &crossbeam_channel::Receiver<usher::Event>, into: &mut Vec<_>| {
        into.extend(events.try_iter().filter_map(|e| match e.kind {
            EventKind::Ended {
                session,
                reason: EndReason::Expired,
                ..
            } => Some(session),
            _ => None,
        }))
    };
    let mut ended = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ended.len() < 60 && std::time::Instant::now() < deadline {
        expired(&seen_a, &mut ended);
        expired(&seen_b, &mut ended);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ended.len(), 60, "the sweeps ended every idle session");
    // Sweeping again ends nothing twice.
    let (again_a, again_b) = tokio::join!(a.expire_due(), b.expire_due());
    again_a.unwrap();
    again_b.unwrap();
    assert_eq!(a.tenant(&t).await.unwrap().seats_in_use, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    expired(&seen_a, &mut ended);
    expired(&seen_b, &mut ended);
    assert_eq!(
        ended.len(),
        60,
        "one event per session across the two nodes"
    );
    assert_eq!(ended.into_iter().collect::<BTreeSet<_>>(), ids);

    let log = b
        .events(
            &t,
            &EventQuery {
                limit: 1000,
                ..EventQuery::default()
            },
        )
        .await
        .unwrap();
    let logged = log
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.event.kind,
                EventKind::Ended {
                    reason: EndReason::Expired,
                    ..
                }
            )
        })
        .count();
    assert_eq!(logged, 60, "the tenant's log holds each expiry once");
    let usage = a.usage(&t, 1).await.unwrap();
    assert_eq!((usage[0].logins, usage[0].expiries), (60, 60));
}

/// Ticket deadlines count in a tenant's due moment: with nothing else touching the
/// tenant, the sweeps of two nodes end a missed claim once and hold the seat for the
/// next in line, once, and later expire that ticket's idle wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeps_end_each_missed_claim_once_and_pass_the_seat_on() {
    use std::time::Duration;
    use usher::{EndReason, Entry, EventKind, Licence, OnLimit};

    let clock = ManualClock::starting_at(rules::T0);
    let shared = support::config(&clock);
    let a = Engine::with_redis(EngineConfig::default(), shared.clone())
        .await
        .unwrap();
    let b = Engine::with_redis(EngineConfig::default(), shared)
        .await
        .unwrap();
    let t = rules::tenant("lined-up");
    let licence = Licence::concurrent(1)
        .on_limit(OnLimit::Queue)
        .queue_claim(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(600));
    a.put_tenant(&t, licence).await.unwrap();
    let ann = rules::admit(&a, &t, "ann").await;
    let mut line = Vec::new();
    for name in ["bob", "cat"] {
        match b.enter(&t, &rules::user(name), None).await.unwrap() {
            Entry::Queued(ticket) => line.push(ticket),
            Entry::Admitted(_) => panic!("{name} should wait in line"),
        }
    }
    a.release(&ann).await.unwrap();
    let (seen_a, seen_b) = (a.subscribe(1000), b.subscribe(1000));

    // bob's claim window runs out: only the sweeps touch the tenant.
    clock.advance(Duration::from_secs(61));
    let (swept_a, swept_b) = tokio::join!(a.expire_due(), b.expire_due());
    swept_a.unwrap();
    swept_b.unwrap();
    let mut heard = Vec::new();
    let hear = |heard: &mut Vec<EventKind>| {
        heard.extend(seen_a.try_iter().chain(seen_b.try_iter()).map(|e| e.kind));
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heard.len() < 2 && std::time::Instant::now() < deadline {
        hear(&mut heard);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let claim_by = rules::clock_now(&clock) + Duration::from_secs(60);
    assert_eq!(
        heard,
        [
            EventKind::TicketEnded {
                user: rules::user("bob"),
                ticket: line[0].token.id(),
                reason: EndReason::ClaimMissed,
                waited_ms: 61_000,
            },
            EventKind::TicketReady {
                user: rules::user("cat"),
                ticket: line[1].token.id(),
                claim_by,
            },
        ]
    );
    let (again_a, again_b) = tokio::join!(a.expire_due(), b.expire_due());
    again_a.unwrap();
    again_b.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    hear(&mut heard);
    assert_eq!(heard.len(), 2, "one event per change across the two nodes");

    // cat's window runs out too, and the line is empty.
    clock.advance(Duration::from_secs(61));
    a.expire_due().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while heard.len() < 3 && std::time::Instant::now() < deadline {
        hear(&mut heard);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        &heard[2],
        EventKind::TicketEnded { reason: EndReason::ClaimMissed, ticket, .. } if *ticket == line[1].token.id()
    ));
    let view = b.tenant(&t).await.unwrap();
    assert_eq!(
        (view.seats_in_use, view.queued, view.held_for_queue),
        (0, 0, 0)
    );
}

/// The tenant's log in Redis is its audit log: every decision, in order, a page at a
/// time, and gone with the tenant.
#[tokio::test]
async fn the_audit_log_comes_a_page_at_a_time_and_goes_with_its_tenant() {
    use usher::store::EventQuery;
    use usher::Licence;

    let clock = ManualClock::starting_at(rules::T0);
    let engine = engine_on(EngineConfig::default(), clock.clone()).await;
    let t = rules::tenant("audited");
    engine.put_tenant(&t, Licence::concurrent(1)).await.unwrap();
    let ann = rules::admit(&engine, &t, "ann").await;
    rules::refusal(&engine, &t, "bob").await;
    engine.release(&ann).await.unwrap();
    let page = |cursor: Option<String>| EventQuery {
        limit: 2,
        cursor,
        ..EventQuery::default()
    };
    let first = engine.events(&t, &page(None)).await.unwrap();
    let rest = engine
        .events(&t, &page(first.next_cursor.clone()))
        .await
        .unwrap();
    let types: Vec<String> = first
        .events
        .iter()
        .chain(&rest.events)
        .map(|e| {
            serde_json::to_value(&e.event).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["tenant_created", "admitted", "refused", "ended"]);
    assert!(first.next_cursor.is_some() && rest.next_cursor.is_none());
    let seqs: Vec<u64> = first
        .events
        .iter()
        .chain(&rest.events)
        .map(|e| e.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        engine
            .events(&t, &page(Some("nonsense".into())))
            .await
            .unwrap_err()
            .code(),
        "invalid_request"
    );

    engine.delete_tenant(&t).await.unwrap();
    engine.put_tenant(&t, Licence::concurrent(1)).await.unwrap();
    let fresh = engine.events(&t, &page(None)).await.unwrap();
    assert_eq!(fresh.events.len(), 1, "the new tenant's log starts afresh");
}

#[tokio::test]
async fn the_audit_log_keeps_each_licences_policies_and_each_overage_flag() {
    use usher::store::EventQuery;
    use usher::{EventKind, Licence, OnLimit};

    let clock = ManualClock::starting_at(rules::T0);
    let engine = engine_on(EngineConfig::default(), clock.clone()).await;
    let t = rules::tenant("policed");
    let licence = Licence::concurrent(1)
        .overage(1.0)
        .on_limit(OnLimit::DisplaceIdlest)
        .max_sessions_per_user(2);
    engine.put_tenant(&t, licence.clone()).await.unwrap();
    rules::admit(&engine, &t, "ann").await;
    rules::admit(&engine, &t, "bob").await;
    engine.put_tenant(&t, Licence::concurrent(1)).await.unwrap();
    let query = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };
    let log = engine.events(&t, &query).await.unwrap();
    let kinds: Vec<EventKind> = log.events.into_iter().map(|e| e.event.kind).collect();
    assert!(
        matches!(
            &kinds[..],
            [
                EventKind::TenantCreated { licence: first },
                EventKind::Admitted { overage: false, .. },
                EventKind::Admitted { overage: true, .. },
                EventKind::LicenceChanged { licence: second, .. },
            ] if **first == licence && **second == Licence::concurrent(1)
        ),
        "{kinds:?}"
    );
}

/// With a decision required on one replica, decisions are acknowledged while the
/// replica follows and answered 503 `unavailable` once it stops, within the deadline.
#[tokio::test]
async fn waiting_for_a_replica_acknowledges_only_what_it_holds() {
    use std::time::{Duration, Instant};
    use usher::{Error, Health, Licence};

    let dir = tempfile::tempdir().unwrap();
    let (master_dir, replica_dir) = (dir.path().join("master"), dir.path().join("replica"));
    std::fs::create_dir_all(&master_dir).unwrap();
    std::fs::create_dir_all(&replica_dir).unwrap();
    let master = support::start_redis(&master_dir, &["--appendonly", "no"]);
    let replica = support::start_redis(
        &replica_dir,
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    support::wait_for_replica(master.port, 1);

    let clock = ManualClock::starting_at(rules::T0);
    let mut config = support::config(&clock);
    config.urls = vec![master.url.clone()];
    config.wait_replicas = 1;
    config.deadline = Duration::from_secs(3);
    let engine = Engine::with_redis(EngineConfig::default(), config)
        .await
        .unwrap();
    let t = rules::tenant("replicated");
    engine.put_tenant(&t, Licence::concurrent(5)).await.unwrap();
    rules::admit(&engine, &t, "ann").await;

    replica.pause();
    let asked = Instant::now();
    let refused = engine.login(&t, &rules::user("bob"), None).await;
    assert!(
        matches!(refused, Err(Error::Unavailable { .. })),
        "{refused:?}"
    );
    assert!(asked.elapsed() < Duration::from_secs(30), "no answer hangs");
    assert!(matches!(engine.health(), Health::Degraded(_)));
    replica.resume();
    support::wait_for_replica(master.port, 1);
    // The login that was not acknowledged was taken back with the next call.
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (1, 1));
    rules::admit(&engine, &t, "bob").await;
    assert_eq!(
        engine.health(),
        Health::Ok,
        "restored by a pool call answered"
    );

    // Restored by the sweeper's call too, with no pool call meanwhile.
    replica.pause();
    let refused = engine.login(&t, &rules::user("cat"), None).await;
    assert!(
        matches!(refused, Err(Error::Unavailable { .. })),
        "{refused:?}"
    );
    assert!(matches!(engine.health(), Health::Degraded(_)));
    replica.resume();
    support::wait_for_replica(master.port, 1);
    engine.expire_due().await.unwrap();
    assert_eq!(engine.health(), Health::Ok, "restored by the sweeper");
}

/// A queued login and a claim not acknowledged (the replica stopped) are taken back
/// with the next call, as unacknowledged logins are: the ticket leaves no place in
/// line and the claim's session holds no seat; the claimed ticket stays spent.
#[tokio::test]
async fn an_unacknowledged_place_in_line_or_claim_is_taken_back() {
    use std::time::Duration;
    use usher::{EndReason, Entry, Error, Licence, OnLimit};

    let dir = tempfile::tempdir().unwrap();
    let (master_dir, replica_dir) = (dir.path().join("master"), dir.path().join("replica"));
    std::fs::create_dir_all(&master_dir).unwrap();
    std::fs::create_dir_all(&replica_dir).unwrap();
    let master = support::start_redis(&master_dir, &["--appendonly", "no"]);
    let replica = support::start_redis(
        &replica_dir,
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    support::wait_for_replica(master.port, 1);

    let clock = ManualClock::starting_at(rules::T0);
    let mut config = support::config(&clock);
    config.urls = vec![master.url.clone()];
    config.wait_replicas = 1;
    config.deadline = Duration::from_secs(3);
    let engine = Engine::with_redis(EngineConfig::default(), config)
        .await
        .unwrap();
    let t = rules::tenant("replicated-line");
    let licence = Licence::concurrent(1).on_limit(OnLimit::Queue);
    engine.put_tenant(&t, licence).await.unwrap();
    let ann = rules::admit(&engine, &t, "ann").await;
    let bob = match engine.enter(&t, &rules::user("bob"), None).await.unwrap() {
        Entry::Queued(ticket) => ticket,
        Entry::Admitted(_) => panic!("bob should wait in line"),
    };
    engine.release(&ann).await.unwrap();

    replica.pause();
    let cat = rules::user("cat");
    let (claimed, entered) = tokio::join!(engine.claim(&bob.token), engine.enter(&t, &cat, None));
    assert!(
        matches!(claimed, Err(Error::Unavailable { .. })),
        "{claimed:?}"
    );
    assert!(
        matches!(entered, Err(Error::Unavailable { .. })),
        "{entered:?}"
    );
    replica.resume();
    support::wait_for_replica(master.port, 1);
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(
        (
            view.seats_in_use,
            view.sessions,
            view.queued,
            view.held_for_queue
        ),
        (0, 0, 0, 0)
    );
    assert!(engine.waitlist(&t).await.unwrap().is_empty());
    assert_eq!(
        engine.ticket_heartbeat(&bob.token).await.unwrap_err(),
        Error::TicketEnded {
            reason: EndReason::Claimed
        }
    );
    rules::admit(&engine, &t, "cat").await;
}

/// The pool's library of Redis Functions and the other scripts are loaded when Redis
/// lacks them; a Redis that lost them (a restart without persistence, `FUNCTION
/// FLUSH`, `SCRIPT FLUSH`) is given them again and the call goes through.
#[tokio::test]
async fn a_redis_that_forgot_the_scripts_is_given_them_again() {
    use usher::Licence;

    let dir = tempfile::tempdir().unwrap();
    let redis = support::start_redis(dir.path(), &["--appendonly", "no"]);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let clock = ManualClock::starting_at(rules::T0);
    let mut config = support::config(&clock);
    config.urls = vec![redis.url.clone()];
    let engine = Engine::with_redis(EngineConfig::default(), config)
        .await
        .unwrap();
    let t = rules::tenant("flushed");
    engine.put_tenant(&t, Licence::concurrent(2)).await.unwrap();
    assert!(cli(&["function", "list"]).contains("usher_pool_"));
    assert!(cli(&["function", "flush"]).contains("OK"));
    assert!(cli(&["script", "flush"]).contains("OK"));
    assert!(!cli(&["function", "list"]).contains("usher_"));
    rules::admit(&engine, &t, "ann").await;
    assert_eq!(engine.tenant(&t).await.unwrap().seats_in_use, 1);
    assert!(cli(&["function", "list"]).contains("usher_pool_"));
}

/// A Redis without Redis Functions (before 7.0; here one with `FCALL` renamed away) is
/// refused with 503 and the engine's health says what it needs.
#[tokio::test]
async fn a_redis_without_functions_is_named_in_the_health() {
    use usher::{Error, Health, Licence};

    let dir = tempfile::tempdir().unwrap();
    let redis = support::start_redis(
        dir.path(),
        &["--appendonly", "no", "--rename-command", "FCALL", ""],
    );
    let clock = ManualClock::starting_at(rules::T0);
    let mut config = support::config(&clock);
    config.urls = vec![redis.url.clone()];
    let engine = Engine::with_redis(EngineConfig::default(), config)
        .await
        .unwrap();
    let t = rules::tenant("old-redis");
    let refused = engine.put_tenant(&t, Licence::concurrent(2)).await;
    assert!(
        matches!(refused, Err(Error::Unavailable { .. })),
        "{refused:?}"
    );
    // The sweeper's scripts still go through; the health says what the pool lacks.
    engine.expire_due().await.unwrap();
    match engine.health() {
        // Only the fact: Redis's own answer echoes the call's keys, the tenant's among them.
        Health::Degraded(why) => assert!(
            why.contains("Redis 7.0 or later") && !why.contains(t.as_str()),
            "{why}"
        ),
        other => panic!("healthy without FCALL: {other:?}"),
    }
}
