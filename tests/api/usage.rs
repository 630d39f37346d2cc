//! Records, the usage report and the audit log.

use std::collections::BTreeSet;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use awc::http::Method;
use serde_json::json;
use usher::store::{Batch, Done, EventPage, EventQuery, Loaded, MemoryStore, Store};
use usher::{TenantId, Timestamp};

use crate::helpers::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn records_keep_the_count_and_its_daily_and_monthly_peaks() {
    let app = spawn_app();
    let key = app.create_tenant("acme", json!({"model": "records"})).await;
    let get = || app.get("/v1/tenants/acme/records").auth(&key).send();
    let put = |count: u64| {
        app.put("/v1/tenants/acme/records")
            .auth(&key)
            .json(json!({"count": count}))
    };
    assert_eq!(
        get().await.expect(200),
        &json!({"count": 0, "peak_today": 0, "peak_month": 0})
    );
    put(100).await.expect(200);
    put(250).await.expect(200);
    let answer = put(180).await;
    let expected = json!({"count": 180, "peak_today": 250, "peak_month": 250});
    assert_eq!(answer.expect(200), &expected);
    assert_eq!(get().await.expect(200), &expected);
    assert_eq!(app.tenant(&key, "acme").await["records"], 180);

    // The next day starts from the current count; the month keeps its peak.
    app.advance(24 * 3600);
    assert_eq!(
        get().await.expect(200),
        &json!({"count": 180, "peak_today": 180, "peak_month": 250})
    );
    put(200).await.expect(200);

    // A new month (the billing period) starts from the current count.
    app.clock
        .set(Timestamp::parse_rfc3339("2025-04-01T09:00:00Z").unwrap());
    assert_eq!(
        get().await.expect(200),
        &json!({"count": 200, "peak_today": 200, "peak_month": 200})
    );
}

#[actix_web::test]
async fn the_usage_report_counts_each_day() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 60).await;
    app.session(&key, "acme", "ann").await;
    app.session(&key, "acme", "ann").await;
    let bob = app.session(&key, "acme", "bob").await;
    for user in ["cat", "dan", "cat"] {
        app.login(&key, "acme", user)
            .await
            .expect_error(409, "licence_limit_reached");
    }
    app.browser(&bob, "heartbeat").await.expect(200);
    app.advance(40);
    app.browser(&bob, "heartbeat").await.expect(200);
    app.advance(30); // ann's two tabs are idle past the timeout
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 1);
    app.put("/v1/tenants/acme/records")
        .auth(&key)
        .json(json!({"count": 1234}))
        .await
        .expect(200);

    let answer = app
        .get("/v1/tenants/acme/usage?days=1")
        .auth(&key)
        .send()
        .await;
    let body = answer.expect(200);
    assert_eq!(body["tenant"], "acme");
    let days = body["days"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    let fields: BTreeSet<&str> = days[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "day",
            "peak_seats_in_use",
            "logins",
            "refusals",
            "expiries",
            "peak_records",
            "peak_overage_seats",
            "overage_seat_secs",
            "queued",
            "served_from_queue",
            "gave_up_in_queue",
            "queue_wait_p50_secs",
            "queue_wait_p90_secs",
        ])
    );
    assert_eq!(
        days[0],
        json!({
            "day": "2025-03-10",
            "peak_seats_in_use": 2,
            "logins": 3,
            "refusals": {"licence_limit_reached": 3, "user_not_licensed": 0, "user_limit_reached": 0,
                "session_limit_reached": 0, "group_limit_reached": 0},
            "expiries": 2,
            "peak_records": 1234,
            "peak_overage_seats": 0,
            "overage_seat_secs": 0,
            "queued": 0,
            "served_from_queue": 0,
            "gave_up_in_queue": 0,
            "queue_wait_p50_secs": null,
            "queue_wait_p90_secs": null,
        })
    );

    // A quiet day carries the level of the day before; the default covers 30 days.
    app.clock.advance(Duration::from_secs(24 * 3600));
    let answer = app.get("/v1/tenants/acme/usage").auth(&key).send().await;
    let days = answer.expect(200)["days"].as_array().unwrap().clone();
    assert_eq!(days.len(), 2, "no days before the tenant existed: {days:?}");
    assert_eq!(days[1]["day"], "2025-03-11");
    assert_eq!(days[1]["logins"], 0);
    assert_eq!(days[1]["peak_records"], 1234);
}

#[actix_web::test]
async fn refusals_are_counted_by_reason() {
    let app = spawn_app();
    let named = app
        .create_tenant(
            "named",
            json!({"model": "named", "seats": 1, "max_users": 1}),
        )
        .await;
    app.login(&named, "named", "ann")
        .await
        .expect_error(403, "user_not_licensed");
    let records = app
        .create_tenant("records", json!({"model": "records", "max_users": 1}))
        .await;
    app.session(&records, "records", "ann").await;
    app.login(&records, "records", "bob")
        .await
        .expect_error(403, "user_limit_reached");

    for (tenant, key, reason) in [
        ("named", &named, "user_not_licensed"),
        ("records", &records, "user_limit_reached"),
    ] {
        let answer = app
            .admin(Method::GET, &format!("/v1/tenants/{tenant}/usage?days=7"))
            .send()
            .await;
        let day = &answer.expect(200)["days"][0];
        assert_eq!(day["refusals"][reason], 1, "{tenant}: {day}");
        let own = app
            .get(&format!("/v1/tenants/{tenant}/usage?days=7"))
            .auth(key)
            .send()
            .await;
        assert_eq!(own.expect(200), answer.expect(200));
    }
}

/// A store whose audit-log reads stall until the test lets them go on, like a slow
/// disk; it says when a read has begun.
struct StallingReads {
    inner: MemoryStore,
    reading: tokio::sync::mpsc::UnboundedSender<()>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Store for StallingReads {
    fn submit(&self, batch: Batch, done: Done) {
        self.inner.submit(batch, done);
    }

    fn load(&self) -> usher::Result<Loaded> {
        self.inner.load()
    }

    fn events(&self, tenant: &TenantId, query: &EventQuery) -> usher::Result<EventPage> {
        let _ = self.reading.send(());
        let _ = self.go.lock().unwrap().recv();
        self.inner.events(tenant, query)
    }
}

#[actix_web::test]
async fn a_slow_audit_log_read_does_not_hold_up_other_requests() {
    let (reading, mut read_begun) = tokio::sync::mpsc::unbounded_channel();
    let (go, wait) = mpsc::channel();
    let store = Arc::new(StallingReads {
        inner: MemoryStore::new(),
        reading,
        go: Mutex::new(wait),
    });
    // One HTTP worker: a read on it would stop it answering anything else.
    let app = spawn_app_with(|config| {
        config.store = store;
        config.workers = 1;
    });
    // Bound after the server, so dropped before it: a failing check lets the read
    // finish instead of leaving the server waiting for it.
    let go = go;
    let key = app.concurrent_tenant("acme", 1, 600).await;

    let events = app.get("/v1/tenants/acme/events").auth(&key).send();
    let events = actix_web::rt::spawn(events);
    read_begun.recv().await.expect("the read begins");

    // The bound only turns a hang into a failure; a free worker answers at once.
    let health = tokio::time::timeout(Duration::from_secs(20), app.get("/healthz").send())
        .await
        .expect("the worker answers while the audit log is being read");
    health.expect(200);
    let usage = tokio::time::timeout(
        Duration::from_secs(20),
        app.get("/v1/tenants/acme/usage?days=1").auth(&key).send(),
    )
    .await
    .expect("the worker answers while the audit log is being read");
    usage.expect(200);

    go.send(()).unwrap();
    let page = events.await.unwrap();
    let types: Vec<&str> = page.expect(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["tenant_created"]);
}
