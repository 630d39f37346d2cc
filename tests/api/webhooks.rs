//! Webhooks (SPEC §11) against a receiver on loopback, on both backends: signatures,
//! order, retries with backoff on the server's manual clock, the alerts, the
//! registration routes and their refusals.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use awc::http::Method;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{spawn_app_with, spawn_redis_app_with, TestApp};

const SECRET: &str = "whsec_0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    signature: String,
    event: String,
    event_id: String,
    body: Vec<u8>,
    answered: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A webhook target on loopback that records what it gets and fails on command.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Requests still to answer 500.
    fail: Arc<AtomicU32>,
    server: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

struct ReceiverState {
    hits: Arc<Mutex<Vec<Hit>>>,
    fail: Arc<AtomicU32>,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let failing = state
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let answered = if failing { 500 } else { 204 };
    state.hits.lock().unwrap().push(Hit {
        signature: header("usher-signature"),
        event: header("usher-event"),
        event_id: header("usher-event-id"),
        body: body.to_vec(),
        answered,
    });
    if failing {
        HttpResponse::InternalServerError().body("not now")
    } else {
        HttpResponse::NoContent().finish()
    }
}

fn receiver() -> Receiver {
    let hits = Arc::new(Mutex::new(Vec::new()));
    let fail = Arc::new(AtomicU32::new(0));
    let state = web::Data::new(ReceiverState {
        hits: hits.clone(),
        fail: fail.clone(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{port}/hooks/usher"),
        hits,
        fail,
        server: handle,
    }
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits (in real time: deliveries run on their own) until `n` requests came.
    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..1000 {
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} webhook requests never came; got {:?}", self.hits());
    }

    /// Asserts that no more than `n` requests come over a while.
    async fn assert_stays_at(&self, n: usize) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let hits = self.hits();
        assert_eq!(hits.len(), n, "{hits:#?}");
    }
}

/// Checks `Usher-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
fn verifies(hit: &Hit, secret: &str) -> bool {
    let Some((t, v1)) = hit
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    mac.verify_slice(&expected).is_ok()
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Redis,
}

fn app(backend: Backend, allow: &[&str]) -> TestApp {
    let allow: Vec<String> = allow.iter().map(|h| h.to_string()).collect();
    let configure = move |config: &mut usher::http::ServerConfig| {
        config.webhook_allow_hosts = allow;
    };
    match backend {
        Backend::Embedded => spawn_app_with(configure),
        Backend::Redis => spawn_redis_app_with(configure),
    }
}

/// A GET with `key`, answered 200.
async fn read(app: &TestApp, key: &str, path: &str) -> Value {
    app.get(path).auth(key).send().await.expect(200).clone()
}

async fn register(
    app: &TestApp,
    key: &str,
    tenant: &str,
    name: &str,
    body: Value,
) -> crate::helpers::Answer {
    app.put(&format!("/v1/tenants/{tenant}/webhooks/{name}"))
        .auth(key)
        .json(body)
        .await
}

async fn signed_and_in_order(backend: Backend) {
    let app = app(backend, &["127.0.0.1"]);
    let target = receiver();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    // Before the webhook: not delivered.
    app.session(&key, "acme", "early").await;
    let created = register(
        &app,
        &key,
        "acme",
        "crm",
        json!({"url": target.url, "events": ["admitted", "refused", "ended"], "secret": SECRET}),
    )
    .await;
    let view = created.expect(201);
    assert_eq!(view["url"], target.url.as_str());
    assert!(
        view.get("secret").is_none(),
        "the secret is never shown: {view}"
    );

    let ann = app.session(&key, "acme", "ann").await;
    app.login(&key, "acme", "bob").await.expect(409);
    app.browser(&ann, "release").await.expect(204);
    app.session(&key, "acme", "bob").await;
    let hits = target.wait_for(4).await;
    let seen: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            let body = h.json();
            (
                body["type"].as_str().unwrap().to_owned(),
                body["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("admitted", "ann"),
        ("refused", "bob"),
        ("ended", "ann"),
        ("admitted", "bob"),
    ]
    .iter()
    .map(|(t, u)| (t.to_string(), u.to_string()))
    .collect();
    assert_eq!(seen, expected, "in the log's order, nothing from before");
    // Each is the audit log's event, signed with the secret, and says what it is.
    let log = read(&app, &key, "/v1/tenants/acme/events").await;
    let ids: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    for hit in &hits {
        assert!(verifies(hit, SECRET), "{hit:?}");
        assert!(!verifies(hit, "whsec_another_secret"), "{hit:?}");
        let body = hit.json();
        assert_eq!(hit.event, body["type"].as_str().unwrap());
        assert_eq!(hit.event_id, body["id"].as_str().unwrap());
        assert!(
            ids.contains(&hit.event_id.as_str()),
            "{} in {ids:?}",
            hit.event_id
        );
        assert_eq!(body["tenant"], "acme");
    }
    target.assert_stays_at(4).await;
    let deliveries = read(&app, &key, "/v1/tenants/acme/webhooks/crm/deliveries").await;
    let list = deliveries["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{deliveries}");
    assert!(list
        .iter()
        .all(|d| d["outcome"] == "delivered" && d["status"] == 204 && d["attempt"] == 1));
    assert_eq!(
        list[0]["event_id"],
        hits[3].event_id.as_str(),
        "newest first"
    );
    let metrics = app.get("/metrics").send().await;
    assert!(
        metrics
            .text
            .contains("usher_webhook_deliveries_total{outcome=\"delivered\"}"),
        "{}",
        metrics.text
    );
}

#[actix_web::test]
async fn deliveries_are_signed_and_come_in_order_embedded() {
    signed_and_in_order(Backend::Embedded).await;
}

#[actix_web::test]
async fn deliveries_are_signed_and_come_in_order_on_redis() {
    signed_and_in_order(Backend::Redis).await;
}

async fn failures_back_off_then_deliver_once(backend: Backend) {
    let app = app(backend, &["127.0.0.1"]);
    let target = receiver();
    let key = app.concurrent_tenant("acme", 5, 600).await;
    register(
        &app,
        &key,
        "acme",
        "crm",
        json!({"url": target.url, "events": ["admitted"], "secret": SECRET}),
    )
    .await
    .expect(201);
    target.fail.store(3, Ordering::SeqCst);
    app.session(&key, "acme", "ann").await;
    target.wait_for(1).await;
    // Tries 2, 3 and 4 wait 1, 2 and 4 s of the server's clock; none comes early.
    for (n, wait) in [(2, 1), (3, 2), (4, 4)] {
        target.assert_stays_at(n - 1).await;
        let view = read(&app, &key, "/v1/tenants/acme/webhooks/crm").await;
        assert!(view["failing_since"].is_string(), "{view}");
        assert!(view["next_attempt"].is_string(), "{view}");
        app.advance(wait);
        target.wait_for(n).await;
    }
    target.assert_stays_at(4).await;
    let view = read(&app, &key, "/v1/tenants/acme/webhooks/crm").await;
    assert_eq!(view["cursor"], target.hits()[0].event_id.as_str(), "{view}");
    assert!(view["failing_since"].is_null(), "{view}");
    // Then nothing more, however long: the fourth answer acknowledged it.
    app.advance(3600);
    target.assert_stays_at(4).await;
    let hits = target.hits();
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 500, 500, 204]
    );
    assert!(hits.iter().all(|h| h.event_id == hits[0].event_id));
    let deliveries = read(&app, &key, "/v1/tenants/acme/webhooks/crm/deliveries").await;
    let outcomes: Vec<(String, u64, Value)> = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["outcome"].as_str().unwrap().to_owned(),
                d["attempt"].as_u64().unwrap(),
                d["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("delivered".to_owned(), 4, json!(204)),
            ("failed".to_owned(), 3, json!(500)),
            ("failed".to_owned(), 2, json!(500)),
            ("failed".to_owned(), 1, json!(500)),
        ]
    );
}

#[actix_web::test]
async fn a_receiver_that_fails_three_times_gets_the_event_exactly_once_more_embedded() {
    failures_back_off_then_deliver_once(Backend::Embedded).await;
}

#[actix_web::test]
async fn a_receiver_that_fails_three_times_gets_the_event_exactly_once_more_on_redis() {
    failures_back_off_then_deliver_once(Backend::Redis).await;
}

async fn alerts(backend: Backend) {
    let app = app(backend, &["127.0.0.1"]);
    let target = receiver();
    let key = app.concurrent_tenant("acme", 10, 7200).await;
    register(
        &app,
        &key,
        "acme",
        "ops",
        json!({"url": target.url, "events": ["limit_reached", "near_limit"], "secret": SECRET}),
    )
    .await
    .expect(201);
    // near_limit as the 9th of 10 seats is taken (90 %), once.
    for i in 0..10 {
        app.session(&key, "acme", &format!("u{i}")).await;
    }
    // limit_reached at the first refusal at the limit, and not again within the hour.
    app.login(&key, "acme", "late1").await.expect(409);
    app.login(&key, "acme", "late2").await.expect(409);
    let hits = target.wait_for(2).await;
    target.assert_stays_at(2).await;
    let first = hits[0].json();
    assert_eq!(first["type"], "near_limit", "{first}");
    assert_eq!(first["seats_in_use"], 9);
    assert_eq!(first["seats"], 10);
    let second = hits[1].json();
    assert_eq!(second["type"], "limit_reached", "{second}");
    assert_eq!(second["user"], "late1");
    assert!(hits.iter().all(|h| verifies(h, SECRET)));
    // An hour on, the next refusal raises it again.
    app.advance(3600);
    app.login(&key, "acme", "late3").await.expect(409);
    let hits = target.wait_for(3).await;
    assert_eq!(hits[2].json()["type"], "limit_reached");
    assert_eq!(hits[2].json()["user"], "late3");
    target.assert_stays_at(3).await;

    // A licence's own alert_at, and a named licence's seats taken by assignment.
    let key = app
        .create_tenant(
            "beta",
            json!({"model": "named", "seats": 4, "alert_at": 0.5}),
        )
        .await;
    register(
        &app,
        &key,
        "beta",
        "ops",
        json!({"url": target.url, "events": ["near_limit"], "secret": SECRET}),
    )
    .await
    .expect(201);
    for user in ["a", "b", "c"] {
        app.put(&format!("/v1/tenants/beta/users/{user}"))
            .auth(&key)
            .send()
            .await
            .expect(200);
    }
    let hits = target.wait_for(4).await;
    target.assert_stays_at(4).await;
    let near = hits[3].json();
    assert_eq!(near["tenant"], "beta", "{near}");
    assert_eq!(near["type"], "near_limit");
    assert_eq!(near["seats_in_use"], 2, "half of 4 seats: {near}");
    assert_eq!(near["alert_at"], 0.5);
}

#[actix_web::test]
async fn alert_at_is_a_licence_field_of_the_seat_models_with_its_bounds() {
    let app = crate::helpers::spawn_app();
    let created = app
        .admin(Method::PUT, "/v1/tenants/acme")
        .json(json!({"model": "concurrent", "seats": 10, "alert_at": 0.75}))
        .await;
    assert_eq!(created.expect(201)["alert_at"], 0.75);
    let patched = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!({"alert_at": 0.8}))
        .await;
    assert_eq!(patched.expect(200)["alert_at"], 0.8);
    // null puts back the default, which a view leaves out.
    let reset = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!({"alert_at": null}))
        .await;
    assert!(reset.expect(200).get("alert_at").is_none(), "{reset:?}");
    for (licence, says) in [
        (
            json!({"model": "concurrent", "seats": 10, "alert_at": 0}),
            "above 0",
        ),
        (
            json!({"model": "concurrent", "seats": 10, "alert_at": 1.5}),
            "at most 1",
        ),
        (
            json!({"model": "concurrent", "seats": 10, "alert_at": "0.5"}),
            "invalid type",
        ),
        (
            json!({"model": "records", "alert_at": 0.5}),
            "named and concurrent",
        ),
    ] {
        let answer = app
            .admin(Method::PUT, "/v1/tenants/bad")
            .json(licence.clone())
            .await;
        let error = answer.expect(400);
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{licence}: {error} should say {says:?}"
        );
    }
}

#[actix_web::test]
async fn limit_reached_and_near_limit_are_raised_once_each_embedded() {
    alerts(Backend::Embedded).await;
}

#[actix_web::test]
async fn limit_reached_and_near_limit_are_raised_once_each_on_redis() {
    alerts(Backend::Redis).await;
}

async fn lifecycle(backend: Backend) {
    let app = app(backend, &["127.0.0.1"]);
    let target = receiver();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let other = app.concurrent_tenant("other", 2, 600).await;
    let body = json!({"url": target.url, "events": ["admitted"], "secret": SECRET});
    let first = register(&app, &key, "acme", "crm", body.clone())
        .await
        .expect(201)
        .clone();
    // Replacing keeps when it was created.
    let again = register(
        &app,
        &key,
        "acme",
        "crm",
        json!({"url": target.url, "events": ["ended", "admitted", "ended"], "secret": SECRET}),
    )
    .await
    .expect(200)
    .clone();
    assert_eq!(again["created_at"], first["created_at"]);
    assert_eq!(again["events"], json!(["ended", "admitted"]));
    register(&app, &key, "acme", "audit", body.clone())
        .await
        .expect(201);
    let list = read(&app, &key, "/v1/tenants/acme/webhooks").await;
    let names: Vec<&str> = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "crm"], "{list}");
    assert!(list["webhooks"][0].get("secret").is_none(), "{list}");
    let others = read(&app, &other, "/v1/tenants/other/webhooks").await;
    assert_eq!(others["webhooks"], json!([]), "{others}");
    app.delete("/v1/tenants/acme/webhooks/audit")
        .auth(&key)
        .send()
        .await
        .expect(204);
    // The administrator may too; another tenant's key may not.
    app.admin(Method::GET, "/v1/tenants/acme/webhooks/crm")
        .send()
        .await
        .expect(200);
    for (method, path) in [
        (Method::GET, "/v1/tenants/acme/webhooks/crm"),
        (Method::GET, "/v1/tenants/acme/webhooks/crm/deliveries"),
        (Method::DELETE, "/v1/tenants/acme/webhooks/crm"),
    ] {
        app.call(method, path).auth(&other).send().await.expect(403);
    }
    register(&app, &other, "acme", "crm", body.clone())
        .await
        .expect(403);
    app.delete("/v1/tenants/acme/webhooks/crm")
        .auth(&key)
        .send()
        .await
        .expect(204);
    for path in [
        "/v1/tenants/acme/webhooks/crm",
        "/v1/tenants/acme/webhooks/crm/deliveries",
    ] {
        let gone = app.get(path).auth(&key).send().await;
        assert_eq!(gone.expect(404)["error"], "webhook_not_found");
    }
    let gone = app
        .delete("/v1/tenants/acme/webhooks/crm")
        .auth(&key)
        .send()
        .await;
    assert_eq!(gone.expect(404)["error"], "webhook_not_found");
    // Removed: nothing is delivered.
    app.session(&key, "acme", "ann").await;
    target.assert_stays_at(0).await;
    // A tenant deleted and created again starts without its webhooks.
    register(&app, &key, "acme", "crm", body.clone())
        .await
        .expect(201);
    app.admin(Method::DELETE, "/v1/tenants/acme")
        .send()
        .await
        .expect(204);
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let gone = app
        .get("/v1/tenants/acme/webhooks/crm")
        .auth(&key)
        .send()
        .await;
    assert_eq!(gone.expect(404)["error"], "webhook_not_found");
    // An unknown tenant is a 404 of its own.
    let ghost = app
        .admin(Method::GET, "/v1/tenants/ghost/webhooks/crm")
        .send()
        .await;
    assert_eq!(ghost.expect(404)["error"], "tenant_not_found");
}

#[actix_web::test]
async fn a_webhook_is_registered_replaced_read_and_removed_by_its_tenant_only_embedded() {
    lifecycle(Backend::Embedded).await;
}

#[actix_web::test]
async fn a_webhook_is_registered_replaced_read_and_removed_by_its_tenant_only_on_redis() {
    lifecycle(Backend::Redis).await;
}

#[actix_web::test]
async fn targets_outside_the_allowed_hosts_and_bad_registrations_are_refused() {
    let target = receiver();
    let port = target
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // No host allowed by default.
    let closed = app(Backend::Embedded, &[]);
    let key = closed.concurrent_tenant("acme", 2, 600).await;
    let refused = register(
        &closed,
        &key,
        "acme",
        "crm",
        json!({"url": target.url, "events": ["admitted"], "secret": SECRET}),
    )
    .await;
    let body = refused.expect(400);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("webhook_allow_hosts"),
        "{body}"
    );

    // `localhost` is allowed by name, but it resolves to a loopback address the list
    // does not name: refused, at registration and so never connected to.
    let app = app(Backend::Embedded, &["localhost", "127.0.0.1"]);
    let named = crate::helpers::spawn_app_with(|config| {
        config.webhook_allow_hosts = vec!["localhost".into()];
    });
    let named_key = named.concurrent_tenant("acme", 2, 600).await;
    let elsewhere = register(
        &named,
        &named_key,
        "acme",
        "crm",
        json!({"url": format!("http://localhost:{port}/hooks"), "events": ["admitted"], "secret": SECRET}),
    )
    .await;
    let body = elsewhere.expect(400);
    assert!(
        body["message"].as_str().unwrap().contains("does not allow"),
        "{body}"
    );
    named.session(&named_key, "acme", "ann").await;
    target.assert_stays_at(0).await;

    let key = app.concurrent_tenant("acme", 2, 600).await;
    let good = json!({"url": target.url, "events": ["admitted"], "secret": SECRET});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (body, says) in [
        (
            with("url", json!("http://127.0.0.2:9/x")),
            "webhook_allow_hosts",
        ),
        (with("url", json!("ftp://127.0.0.1/x")), "http"),
        (with("url", json!("not a url")), "absolute URL"),
        (
            with("url", json!("http://user:pw@127.0.0.1/x")),
            "credentials",
        ),
        (
            with(
                "url",
                json!(format!("http://127.0.0.1/{}", "x".repeat(3000))),
            ),
            "2048",
        ),
        (with("events", json!([])), "at least one"),
        (
            with("events", json!(["admitted", "teleported"])),
            "teleported",
        ),
        (with("secret", json!("short")), "16 to 256"),
        (with("secret", json!("s".repeat(300))), "16 to 256"),
        (json!({"url": target.url, "events": ["admitted"]}), "secret"),
        (
            json!({"url": target.url, "events": ["admitted"], "secret": SECRET, "extra": 1}),
            "extra",
        ),
    ] {
        let answer = register(&app, &key, "acme", "crm", body.clone()).await;
        let error = answer.expect(400);
        assert_eq!(error["error"], "invalid_request", "{body}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{body}: {error} should say {says:?}"
        );
    }
    // Every event type the document lists is one a webhook may ask for.
    let doc = app.get("/openapi.json").send().await.expect(200).clone();
    let types = doc["components"]["schemas"]["WebhookEventType"]["enum"]
        .as_array()
        .expect("the event types are listed")
        .clone();
    // The audit log's fourteen event types and the two alerts.
    assert_eq!(types.len(), 16, "{types:?}");
    for kind in &types {
        let body = with("events", json!([kind]));
        let answer = register(&app, &key, "acme", "each", body).await;
        assert!([200, 201].contains(&answer.status), "{kind}: {answer:?}");
    }
    app.delete("/v1/tenants/acme/webhooks/each")
        .auth(&key)
        .send()
        .await
        .expect(204);
    let bad_name = register(&app, &key, "acme", "no%20way", good.clone()).await;
    assert_eq!(bad_name.expect(400)["error"], "invalid_request");
    // Nothing was registered by any of them.
    let none = app
        .get("/v1/tenants/acme/webhooks/crm")
        .auth(&key)
        .send()
        .await;
    assert_eq!(none.expect(404)["error"], "webhook_not_found");
}
