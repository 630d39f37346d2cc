//! Recovery rules of the embedded store, driven with a manual clock: what was
//! acknowledged comes back after a restart, restored sessions get a full idle window,
//! ended sessions stay ended, a deleted tenant leaves nothing behind but its sessions'
//! reasons and its fence mark, fences keep growing across restarts and deletions, and
//! unusable or deleted data directories stop start-up or writes.
//!
//! A restart is simulated by copying the database file as it is on disk (all writes
//! acknowledged, none in flight) and opening the copy, as a crashed server would.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use usher::store::redb::{RedbConfig, RedbStore, DB_FILE};
use usher::store::{EventPage, EventQuery, Store};
use usher::{
    EndReason, Engine, EngineConfig, Error, EventKind, Health, Licence, ManualClock, TenantId,
    Timestamp, UserId,
};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn id(text: &str) -> TenantId {
    TenantId::parse(text).unwrap()
}

fn user(text: &str) -> UserId {
    UserId::parse(text).unwrap()
}

struct Server {
    engine: Engine,
    store: Arc<RedbStore>,
}

fn start(dir: &Path, clock: &ManualClock) -> Server {
    let store =
        Arc::new(RedbStore::open(dir, Arc::new(clock.clone()), RedbConfig::default()).unwrap());
    let engine = Engine::with_store(
        EngineConfig::default(),
        Arc::new(clock.clone()),
        store.clone(),
    );
    engine.restore(store.load().unwrap()).unwrap();
    Server { engine, store }
}

/// The data directory as a crash would leave it, in a new directory.
fn crash_copy(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join(DB_FILE), copy.path().join(DB_FILE)).unwrap();
    copy
}

#[tokio::test]
async fn acknowledged_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    let e = &before.engine;
    e.put_tenant(&id("crm"), Licence::concurrent(3))
        .await
        .unwrap();
    e.put_tenant(&id("named"), Licence::named(2)).await.unwrap();
    e.put_tenant(&id("rec"), Licence::records().max_users(5))
        .await
        .unwrap();
    e.put_user(&id("named"), &user("ann")).await.unwrap();
    e.set_api_key(&id("crm"), [7; 32]).await.unwrap();
    let kept = e
        .login(&id("crm"), &user("bob"), Some("tab 1"))
        .await
        .unwrap();
    let released = e.login(&id("crm"), &user("cy"), None).await.unwrap();
    e.release(&released.token).await.unwrap();
    let named = e.login(&id("named"), &user("ann"), None).await.unwrap();
    e.report_records(&id("rec"), 40).await.unwrap();
    e.report_records(&id("rec"), 25).await.unwrap();
    e.put_tenant(&id("crm"), Licence::concurrent(4))
        .await
        .unwrap();

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let e = &after.engine;
    assert_eq!(
        e.tenant_ids().await.unwrap(),
        vec![id("crm"), id("named"), id("rec")]
    );
    let crm = e.tenant(&id("crm")).await.unwrap();
    assert_eq!(
        (crm.seats, crm.seats_in_use, crm.sessions, crm.users),
        (Some(4), 1, 1, 2)
    );
    let users = e.users(&id("named")).await.unwrap();
    assert_eq!((users[0].user.as_str(), users[0].assigned), ("ann", true));
    let records = e.records(&id("rec")).await.unwrap();
    assert_eq!(
        (records.count, records.peak_today, records.peak_month),
        (25, 40, 40)
    );
    assert_eq!(
        after.engine.tenant_of_key(&[7; 32]).await.unwrap(),
        Some(id("crm"))
    );
    let sessions = e.sessions(&id("crm")).await.unwrap();
    assert_eq!(sessions[0].client.as_deref(), Some("tab 1"));
    e.heartbeat(&kept.token).await.unwrap();
    e.heartbeat(&named.token).await.unwrap();
    let gone = e.heartbeat(&released.token).await.unwrap_err();
    assert_eq!(
        gone,
        usher::Error::SessionEnded {
            reason: usher::EndReason::Released
        }
    );
}

#[tokio::test]
async fn the_waitlist_survives_a_restart_in_its_order_with_a_full_idle_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    let licence = Licence::concurrent(1)
        .on_limit(usher::OnLimit::Queue)
        .idle_timeout(Duration::from_secs(60));
    before.engine.put_tenant(&id("crm"), licence).await.unwrap();
    let held = before
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();
    let mut line = Vec::new();
    for name in ["bob", "cy", "dee"] {
        match before
            .engine
            .enter(&id("crm"), &user(name), Some("tab"))
            .await
            .unwrap()
        {
            usher::Entry::Queued(ticket) => line.push(ticket),
            usher::Entry::Admitted(_) => panic!("{name} should wait"),
        }
    }
    before.engine.cancel_ticket(&line[1].token).await.unwrap();
    clock.advance(Duration::from_secs(50));

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let e = &after.engine;
    let queue = e.waitlist(&id("crm")).await.unwrap();
    let order: Vec<(u32, &str)> = queue
        .iter()
        .map(|q| (q.position, q.user.as_str()))
        .collect();
    assert_eq!(order, [(1, "bob"), (2, "dee")]);
    assert_eq!(queue[0].client.as_deref(), Some("tab"));
    assert_eq!(
        e.ticket_heartbeat(&line[1].token).await.unwrap_err(),
        Error::TicketEnded {
            reason: EndReason::Cancelled
        }
    );
    // Past the deadline the tickets had before the restart, within the new window.
    clock.advance(Duration::from_secs(30));
    e.expire_due().await.unwrap();
    assert_eq!(
        e.ticket_heartbeat(&line[2].token).await.unwrap().position,
        2
    );
    e.heartbeat(&held.token).await.unwrap();
    e.release(&held.token).await.unwrap();
    let ready = e.ticket_heartbeat(&line[0].token).await.unwrap();
    assert_eq!(ready.position, 0);
    let claimed = e.claim(&line[0].token).await.unwrap();
    assert_eq!(claimed.user, user("bob"));

    // What happened after the restart is as durable as what came before.
    let copy = crash_copy(copy.path());
    let again = start(copy.path(), &clock);
    let queue = again.engine.waitlist(&id("crm")).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].user, user("dee"));
    assert_eq!(
        again.engine.claim(&line[0].token).await.unwrap_err(),
        Error::TicketEnded {
            reason: EndReason::Claimed
        }
    );
    again.engine.heartbeat(&claimed.token).await.unwrap();
    // The ticket remembers the session its claim started: leaving it after all
    // releases that session, across the restart too.
    again.engine.cancel_ticket(&line[0].token).await.unwrap();
    assert_eq!(
        again.engine.heartbeat(&claimed.token).await.unwrap_err(),
        Error::SessionEnded {
            reason: EndReason::Released
        }
    );
}

#[tokio::test]
async fn restored_sessions_get_a_full_idle_window_from_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    let licence = Licence::concurrent(5).idle_timeout(Duration::from_secs(60));
    before.engine.put_tenant(&id("crm"), licence).await.unwrap();
    let login = before
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();

    clock.advance(Duration::from_secs(50));
    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    // Past the deadline the session had before the restart, within the new window.
    clock.advance(Duration::from_secs(30));
    after.engine.expire_due().await.unwrap();
    let beat = after.engine.heartbeat(&login.token).await.unwrap();
    assert_eq!(beat.expires_at, T0 + Duration::from_secs(80 + 60));

    clock.advance(Duration::from_secs(61));
    after.engine.expire_due().await.unwrap();
    let err = after.engine.heartbeat(&login.token).await.unwrap_err();
    assert_eq!(err.code(), "session_ended");
}

#[tokio::test]
async fn a_session_restored_without_heartbeats_expires_one_window_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    before.engine.put_tenant(&id("crm"), licence).await.unwrap();
    before
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();

    clock.advance(Duration::from_secs(3600)); // down for an hour
    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    assert_eq!(
        after.engine.tenant(&id("crm")).await.unwrap().seats_in_use,
        1
    );
    clock.advance(Duration::from_secs(60));
    after.engine.expire_due().await.unwrap();
    assert_eq!(
        after.engine.tenant(&id("crm")).await.unwrap().seats_in_use,
        1
    );
    clock.advance(Duration::from_millis(1));
    after.engine.expire_due().await.unwrap();
    assert_eq!(
        after.engine.tenant(&id("crm")).await.unwrap().seats_in_use,
        0
    );
}

#[tokio::test]
async fn restored_sessions_count_against_seats() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    before
        .engine
        .put_tenant(&id("crm"), Licence::concurrent(2))
        .await
        .unwrap();
    before
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();
    before
        .engine
        .login(&id("crm"), &user("bob"), None)
        .await
        .unwrap();

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let refused = after
        .engine
        .login(&id("crm"), &user("cy"), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "licence_limit_reached");
    // ann's second tab still shares her restored seat.
    after
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn ended_sessions_are_remembered_across_a_restart_then_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    before
        .engine
        .put_tenant(&id("crm"), Licence::concurrent(2))
        .await
        .unwrap();
    let revoked = before
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();
    before
        .engine
        .revoke(&id("crm"), revoked.token.id())
        .await
        .unwrap();

    clock.advance(Duration::from_secs(1800));
    let first_copy = crash_copy(dir.path());
    let after = start(first_copy.path(), &clock);
    let err = after.engine.heartbeat(&revoked.token).await.unwrap_err();
    assert_eq!(
        err,
        usher::Error::SessionEnded {
            reason: usher::EndReason::Revoked
        }
    );

    // The hour of remembrance counts from the end, not from the restart.
    clock.advance(Duration::from_secs(1800));
    after.engine.expire_due().await.unwrap();
    let err = after.engine.heartbeat(&revoked.token).await.unwrap_err();
    assert_eq!(err.code(), "session_not_found");

    let second_copy = crash_copy(after.store.path());
    let again = start(second_copy.path(), &clock);
    let err = again.engine.heartbeat(&revoked.token).await.unwrap_err();
    assert_eq!(err.code(), "session_not_found");
}

#[tokio::test]
async fn a_deleted_tenant_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    before
        .engine
        .put_tenant(&id("gone"), Licence::concurrent(2))
        .await
        .unwrap();
    before
        .engine
        .put_tenant(&id("kept"), Licence::records())
        .await
        .unwrap();
    before
        .engine
        .set_api_key(&id("gone"), [1; 32])
        .await
        .unwrap();
    before
        .engine
        .login(&id("gone"), &user("ann"), None)
        .await
        .unwrap();
    before.engine.delete_tenant(&id("gone")).await.unwrap();

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    assert_eq!(after.engine.tenant_ids().await.unwrap(), vec![id("kept")]);
    assert_eq!(after.engine.tenant_of_key(&[1; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn overage_held_across_midnight_is_reported_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // 23:00 UTC.
    const DAY_MS: u64 = 24 * 3600 * 1000;
    let midnight = Timestamp::from_millis(T0.as_millis() / DAY_MS * DAY_MS);
    let clock = ManualClock::starting_at(midnight + Duration::from_secs(23 * 3600));
    let before = start(dir.path(), &clock);
    let crm = id("crm");
    let week = Duration::from_secs(7 * 24 * 3600);
    let licence = Licence::concurrent(1).overage(1.0).idle_timeout(week);
    before.engine.put_tenant(&crm, licence).await.unwrap();
    before.engine.login(&crm, &user("ann"), None).await.unwrap();
    let bob = before.engine.login(&crm, &user("bob"), None).await.unwrap();
    assert!(bob.overage);
    // Bob's seat past the licence is given back at 01:00 the next day, when its hour of
    // the first day is known; Cara takes one at once.
    clock.advance(Duration::from_secs(2 * 3600));
    before.engine.release(&bob.token).await.unwrap();
    before
        .engine
        .login(&crm, &user("cara"), None)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1800));
    let figures = |days: Vec<usher::usage::DayUsage>| -> Vec<(u32, u64)> {
        days.iter()
            .map(|d| (d.peak_overage_seats, d.overage_seat_secs))
            .collect()
    };
    let expected = [(1, 3_600), (1, 3_600 + 1_800)];
    assert_eq!(
        figures(before.engine.usage(&crm, 2).await.unwrap()),
        expected
    );

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    assert_eq!(
        figures(after.engine.usage(&crm, 2).await.unwrap()),
        expected
    );
}

#[tokio::test]
async fn groups_and_the_seats_they_hold_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    let crm = id("crm");
    let groups = |names: &[&str]| -> Vec<usher::GroupId> {
        names
            .iter()
            .map(|g| usher::GroupId::parse(g).unwrap())
            .collect()
    };
    let licence = Licence::concurrent(3).group_max("sales", 1);
    before.engine.put_tenant(&crm, licence).await.unwrap();
    for (name, of) in [
        ("sam", &["sales"][..]),
        ("sue", &["sales", "hr"][..]),
        ("ann", &[][..]),
    ] {
        before
            .engine
            .put_user_in_groups(&crm, &user(name), &groups(of))
            .await
            .unwrap();
    }
    // Ann's groups were set and then cleared: no row of hers is left behind.
    before
        .engine
        .put_user_in_groups(&crm, &user("ann"), &groups(&["hr"]))
        .await
        .unwrap();
    before
        .engine
        .put_user_in_groups(&crm, &user("ann"), &[])
        .await
        .unwrap();
    before.engine.login(&crm, &user("sam"), None).await.unwrap();

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let listed: Vec<(String, Vec<usher::GroupId>)> = after
        .engine
        .users(&crm)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.user.to_string(), u.groups))
        .collect();
    assert_eq!(
        listed,
        [
            ("ann".to_string(), groups(&[])),
            ("sam".to_string(), groups(&["sales"])),
            ("sue".to_string(), groups(&["hr", "sales"])),
        ]
    );
    // Sam's restored seat still counts for sales.
    let refused = after
        .engine
        .login(&crm, &user("sue"), None)
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        Error::GroupLimitReached {
            group: "sales".into(),
            max: 1
        }
    );
}

#[tokio::test]
async fn seats_kept_under_the_reload_grace_survive_a_restart_with_a_full_grace() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    let crm = id("crm");
    let sales = vec![usher::GroupId::parse("sales").unwrap()];
    let licence = Licence::concurrent(3)
        .group_max("sales", 1)
        .reload_grace(Duration::from_secs(30));
    before.engine.put_tenant(&crm, licence).await.unwrap();
    for name in ["sam", "sue"] {
        before
            .engine
            .put_user_in_groups(&crm, &user(name), &sales)
            .await
            .unwrap();
    }
    // Two seats are kept: ann's and sam's (a seat of sales). Eve's went with her
    // account, cara's lapsed and bob's was taken back: none leaves a row behind.
    let eve = before.engine.login(&crm, &user("eve"), None).await.unwrap();
    before.engine.release(&eve.token).await.unwrap();
    before.engine.remove_user(&crm, &user("eve")).await.unwrap();
    for name in ["cara", "ann", "sam", "bob"] {
        let admitted = before.engine.login(&crm, &user(name), None).await.unwrap();
        before.engine.release(&admitted.token).await.unwrap();
        if name == "cara" {
            clock.advance(Duration::from_secs(30));
            before.engine.expire_due().await.unwrap();
        }
    }
    before.engine.login(&crm, &user("bob"), None).await.unwrap();
    clock.advance(Duration::from_secs(20));

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let loaded = after.store.load().unwrap();
    let kept = &loaded.pools.iter().find(|p| p.tenant == crm).unwrap().kept;
    assert_eq!(kept, &[(user("ann"), 1), (user("sam"), 1)]);
    assert_eq!(after.engine.tenant(&crm).await.unwrap().seats_in_use, 3);
    let refused = after.engine.login(&crm, &user("dan"), None).await;
    assert!(
        matches!(refused, Err(Error::LicenceLimitReached { .. })),
        "{refused:?}"
    );
    // Sam's kept seat still counts for sales.
    let refused = after.engine.login(&crm, &user("sue"), None).await;
    assert_eq!(
        refused.unwrap_err(),
        Error::GroupLimitReached {
            group: "sales".into(),
            max: 1
        }
    );
    // A full grace from the restart: still kept 20 s on, when it would have lapsed.
    clock.advance(Duration::from_secs(20));
    after.engine.login(&crm, &user("ann"), None).await.unwrap();
    clock.advance(Duration::from_secs(10));
    // Sam's seat has lapsed now, and is anyone's.
    after.engine.login(&crm, &user("dan"), None).await.unwrap();
}

#[tokio::test]
async fn usage_and_the_audit_log_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let before = start(dir.path(), &clock);
    before
        .engine
        .put_tenant(&id("crm"), Licence::concurrent(1))
        .await
        .unwrap();
    before
        .engine
        .login(&id("crm"), &user("ann"), None)
        .await
        .unwrap();
    let _ = before.engine.login(&id("crm"), &user("bob"), None).await;
    before.engine.report_records(&id("crm"), 9).await.unwrap();
    // Refusals are written to the audit log without holding up the answer: wait for it.
    let query = EventQuery {
        limit: 100,
        ..Default::default()
    };
    for _ in 0..1000 {
        if before
            .store
            .events(&id("crm"), &query)
            .unwrap()
            .events
            .len()
            == 4
        {
            break;
        }
        tokio::task::yield_now().await;
    }

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let days = after.engine.usage(&id("crm"), 1).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].logins, 1);
    assert_eq!(days[0].refusals.licence_limit_reached, 1);
    assert_eq!(days[0].peak_seats_in_use, 1);
    assert_eq!(days[0].peak_records, 9);

    let page = after
        .engine
        .events(
            &id("crm"),
            &EventQuery {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(types(&page), ["tenant_created", "admitted"]);
    let rest = after
        .engine
        .events(
            &id("crm"),
            &EventQuery {
                limit: 10,
                cursor: page.next_cursor,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(types(&rest), ["refused", "records_reported"]);
    assert_eq!(rest.next_cursor, None);
}

/// The `type` of each event of a page.
fn types(page: &usher::store::EventPage) -> Vec<String> {
    page.events
        .iter()
        .map(|e| {
            serde_json::to_value(&e.event).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn open_error(dir: &Path) -> String {
    let clock = ManualClock::starting_at(T0);
    match RedbStore::open(dir, Arc::new(clock), RedbConfig::default()) {
        Ok(_) => panic!("{} was accepted", dir.display()),
        Err(message) => message,
    }
}

#[test]
fn a_data_dir_that_is_a_file_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(open_error(file.path()).contains("not a directory"));
}

#[test]
fn a_data_dir_that_cannot_be_created_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let below_a_file = file.path().join("data");
    assert!(open_error(&below_a_file).contains("cannot create data dir"));
}

#[test]
fn a_data_dir_that_is_not_writable_is_refused() {
    // Not even root may create files in /proc/self.
    assert!(open_error(Path::new("/proc/self")).contains("not writable"));
}

#[test]
fn a_corrupt_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();
    assert!(open_error(dir.path()).contains("cannot open the database"));
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("schema_version", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let message = open_error(dir.path());
    assert!(message.contains("schema version 99"), "{message}");
}

#[test]
fn usher_serve_stops_with_a_clear_message_on_an_unusable_data_dir() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(file.path())
        .env("USHER_ADMIN_TOKEN", "durability-admin-token")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a directory"), "{stderr}");
}

/// A store that writes to memory until told to fail, like a disk that fills up.
struct FailingStore {
    inner: usher::store::MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

impl Store for FailingStore {
    fn submit(&self, batch: usher::store::Batch, done: usher::store::Done) {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            done(Err(usher::Error::Internal("disk full".into())));
        } else {
            self.inner.submit(batch, done);
        }
    }

    fn load(&self) -> usher::Result<usher::store::Loaded> {
        self.inner.load()
    }

    fn events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> usher::Result<usher::store::EventPage> {
        self.inner.events(tenant, query)
    }
}

#[tokio::test]
async fn after_a_failed_write_nothing_more_is_acknowledged() {
    let store = Arc::new(FailingStore {
        inner: usher::store::MemoryStore::new(),
        failing: false.into(),
    });
    let clock = ManualClock::starting_at(T0);
    let engine = Engine::with_store(
        EngineConfig::default(),
        Arc::new(clock.clone()),
        store.clone(),
    );
    engine
        .put_tenant(&id("crm"), Licence::concurrent(5))
        .await
        .unwrap();
    let ann = engine.login(&id("crm"), &user("ann"), None).await.unwrap();
    assert!(engine.is_healthy());

    store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = engine
        .login(&id("crm"), &user("bob"), None)
        .await
        .unwrap_err();
    assert_eq!(failed.code(), "internal_error");
    assert!(!engine.is_healthy());

    // Even operations that would write nothing are refused now, and so is every write,
    // though the store would take it again.
    store
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        engine.heartbeat(&ann.token).await.unwrap_err().code(),
        "internal_error"
    );
    assert_eq!(
        engine
            .login(&id("crm"), &user("cy"), None)
            .await
            .unwrap_err()
            .code(),
        "internal_error"
    );
    assert_eq!(
        engine
            .put_tenant(&id("crm"), Licence::concurrent(1))
            .await
            .unwrap_err()
            .code(),
        "internal_error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_a_create_leaves_memory_and_disk_agreeing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let crm = id("crm");
    for round in 0..20u8 {
        let e = &node.engine;
        if e.tenant(&crm).await.is_err() {
            e.put_tenant(&crm, Licence::concurrent(3)).await.unwrap();
        }
        e.login(&crm, &user("ann"), None).await.unwrap();
        let key = [round; 32];
        // Both start at once on their own tasks, so either may get there first.
        let go = Arc::new(tokio::sync::Barrier::new(2));
        let deleting = tokio::spawn({
            let (e, crm, go) = (e.clone(), crm.clone(), go.clone());
            async move {
                go.wait().await;
                e.delete_tenant(&crm).await
            }
        });
        let creating = tokio::spawn({
            let (e, crm, go) = (e.clone(), crm.clone(), go.clone());
            async move {
                go.wait().await;
                e.put_tenant(&crm, Licence::concurrent(7)).await?;
                e.set_api_key(&crm, key).await
            }
        });
        let deleted = deleting.await.unwrap();
        let created = creating.await.unwrap();
        // A create that came first makes the delete remove the new tenant; a delete
        // that came first leaves the create a fresh tenant. Either way both answer.
        deleted.unwrap();
        let exists = e.tenant(&crm).await.ok();
        let key_works = e.tenant_of_key(&key).await.unwrap().is_some();
        assert_eq!(created.is_ok(), key_works, "round {round}");

        let copy = crash_copy(dir.path());
        let after = start(copy.path(), &clock);
        let restored = after.engine.tenant(&crm).await.ok();
        assert_eq!(
            exists.as_ref().map(|v| (v.seats, v.sessions)),
            restored.as_ref().map(|v| (v.seats, v.sessions)),
            "round {round}: memory and disk disagree"
        );
        assert_eq!(
            after.engine.tenant_of_key(&key).await.unwrap().is_some(),
            key_works
        );
        drop(after);
    }
    drop(node.store);
}

#[tokio::test]
async fn a_recreated_tenant_sees_nothing_of_its_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let e = &node.engine;
    let crm = id("crm");
    e.put_tenant(&crm, Licence::concurrent(1)).await.unwrap();
    e.login(&crm, &user("ann"), None).await.unwrap();
    let _ = e.login(&crm, &user("bob"), None).await;
    e.delete_tenant(&crm).await.unwrap();
    e.put_tenant(&crm, Licence::concurrent(1)).await.unwrap();

    let query = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };
    let check = |page: EventPage, when: &str| {
        let kinds: Vec<&EventKind> = page.events.iter().map(|e| &e.event.kind).collect();
        assert!(
            matches!(kinds.as_slice(), [EventKind::TenantCreated { .. }]),
            "{when}: {kinds:?}"
        );
    };
    check(e.events(&crm, &query).await.unwrap(), "before a restart");
    let usage = e.usage(&crm, 1).await.unwrap();
    assert_eq!(usage[0].logins, 0);
    assert_eq!(usage[0].refusals.total(), 0);

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    check(
        after.engine.events(&crm, &query).await.unwrap(),
        "after a restart",
    );
    let usage = after.engine.usage(&crm, 1).await.unwrap();
    assert_eq!((usage[0].logins, usage[0].refusals.total()), (0, 0));
}

#[tokio::test]
async fn sessions_of_a_deleted_tenant_answer_evicted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let crm = id("crm");
    node.engine
        .put_tenant(&crm, Licence::concurrent(2))
        .await
        .unwrap();
    let live = node.engine.login(&crm, &user("ann"), None).await.unwrap();
    let released = node.engine.login(&crm, &user("bob"), None).await.unwrap();
    node.engine.release(&released.token).await.unwrap();
    node.engine.delete_tenant(&crm).await.unwrap();

    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    for (token, reason) in [
        (&live.token, EndReason::Evicted),
        (&released.token, EndReason::Released),
    ] {
        assert_eq!(
            after.engine.heartbeat(token).await.unwrap_err(),
            Error::SessionEnded { reason }
        );
    }
    // For the retention only, as any ended session.
    clock.advance(Duration::from_secs(3601));
    let copy = crash_copy(copy.path());
    let later = start(copy.path(), &clock);
    later.engine.expire_due().await.unwrap();
    assert_eq!(
        later
            .engine
            .heartbeat(&live.token)
            .await
            .unwrap_err()
            .code(),
        "session_not_found"
    );
}

#[tokio::test]
async fn named_seats_do_not_come_back_after_a_spell_as_concurrent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let e = &node.engine;
    let t = id("charity");
    e.put_tenant(&t, Licence::named(2)).await.unwrap();
    e.put_user(&t, &user("ann")).await.unwrap();
    e.put_tenant(&t, Licence::concurrent(2)).await.unwrap();
    e.put_tenant(&t, Licence::named(2)).await.unwrap();
    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    for engine in [e, &after.engine] {
        let users = engine.users(&t).await.unwrap();
        assert_eq!(users.len(), 1);
        assert!(!users[0].assigned, "{users:?}");
        assert_eq!(engine.tenant(&t).await.unwrap().seats_in_use, 0);
        assert_eq!(
            engine
                .login(&t, &user("ann"), None)
                .await
                .unwrap_err()
                .code(),
            "user_not_licensed"
        );
    }
}

#[tokio::test]
async fn a_deleted_data_dir_stops_acknowledgements_and_health_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let crm = id("crm");
    node.engine
        .put_tenant(&crm, Licence::concurrent(2))
        .await
        .unwrap();
    node.engine.login(&crm, &user("ann"), None).await.unwrap();

    std::fs::remove_dir_all(dir.path()).unwrap();
    let refused = node.engine.login(&crm, &user("bob"), None).await;
    assert_eq!(refused.unwrap_err().code(), "internal_error");
    match node.engine.health() {
        Health::Failed(why) => assert!(why.contains("deleted"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(node.store.failure().is_some());
}

/// `next` passes every fence answered before it.
fn assert_above(answered: &[u64], next: u64) {
    for fence in answered {
        assert!(*fence < next, "fence {next} does not pass {fence}");
    }
}

#[tokio::test]
async fn fences_keep_growing_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let crm = id("crm");
    node.engine
        .put_tenant(&crm, Licence::concurrent(5))
        .await
        .unwrap();
    let kept = node.engine.login(&crm, &user("ann"), None).await.unwrap();
    let mut answered = vec![kept.fence];
    for name in ["bob", "cy"] {
        let login = node.engine.login(&crm, &user(name), None).await.unwrap();
        answered.push(login.fence);
        // The newest sessions end: only the mark remembers their fences.
        node.engine.release(&login.token).await.unwrap();
    }

    let mut dir = crash_copy(dir.path());
    for restart in 0..3 {
        let after = start(dir.path(), &clock);
        let e = &after.engine;
        // The restored session keeps its fence, in the list and the heartbeat answer.
        let sessions = e.sessions(&crm).await.unwrap();
        assert_eq!(sessions[0].fence, kept.fence, "restart {restart}");
        assert_eq!(e.heartbeat(&kept.token).await.unwrap().fence, kept.fence);
        let next = e.login(&crm, &user("dee"), None).await.unwrap();
        assert_above(&answered, next.fence);
        answered.push(next.fence);
        e.release(&next.token).await.unwrap();
        dir = crash_copy(dir.path());
    }
}

#[tokio::test]
async fn a_tenant_created_again_continues_above_its_old_fences_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let crm = id("crm");
    let e = &node.engine;
    e.put_tenant(&crm, Licence::records()).await.unwrap();
    let mut answered = Vec::new();
    for name in ["ann", "bob", "cy"] {
        answered.push(e.login(&crm, &user(name), None).await.unwrap().fence);
    }
    e.delete_tenant(&crm).await.unwrap();

    // Deleted, then restarted: the new incarnation starts above the old fences.
    let copy = crash_copy(dir.path());
    let after = start(copy.path(), &clock);
    let e = &after.engine;
    assert_eq!(e.tenant_ids().await.unwrap(), Vec::<TenantId>::new());
    e.put_tenant(&crm, Licence::records()).await.unwrap();
    let first = e.login(&crm, &user("ann"), None).await.unwrap().fence;
    assert_above(&answered, first);
    answered.push(first);

    // Deleted and created again in one run, then restarted.
    e.delete_tenant(&crm).await.unwrap();
    e.put_tenant(&crm, Licence::records()).await.unwrap();
    let again = e.login(&crm, &user("ann"), None).await.unwrap().fence;
    assert_above(&answered, again);
    answered.push(again);
    let copy = crash_copy(copy.path());
    let later = start(copy.path(), &clock);
    let next = later
        .engine
        .login(&crm, &user("bob"), None)
        .await
        .unwrap()
        .fence;
    assert_above(&answered, next);
}

#[tokio::test]
async fn a_database_without_fence_marks_continues_above_its_sessions_fences() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_at(T0);
    let node = start(dir.path(), &clock);
    let crm = id("crm");
    node.engine
        .put_tenant(&crm, Licence::records())
        .await
        .unwrap();
    let mut answered = Vec::new();
    for name in ["ann", "bob"] {
        let login = node.engine.login(&crm, &user(name), None).await.unwrap();
        answered.push(login.fence);
    }
    let copy = crash_copy(dir.path());
    drop(node);
    {
        // As a database written before the marks were kept.
        let db = redb::Database::create(copy.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(redb::TableDefinition::<&str, u64>::new("fences"))
            .unwrap();
        txn.commit().unwrap();
    }
    let after = start(copy.path(), &clock);
    let next = after.engine.login(&crm, &user("cy"), None).await.unwrap();
    assert_above(&answered, next.fence);
}
