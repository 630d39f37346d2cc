//! Operations: health, readiness, metrics, the OpenAPI document, unknown routes and
//! wrong methods.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use awc::http::Method;
use serde_json::json;
use usher::store::{Batch, Done, EventPage, EventQuery, Loaded, MemoryStore, Store};
use usher::TenantId;

use crate::helpers::{fill, spawn_app, spawn_starting_app_with, ENDPOINTS};

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[actix_web::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app();
    let health = app.get("/healthz").send().await;
    assert_eq!(health.expect(200)["status"], "ok");
    let ready = app.get("/readyz").send().await;
    assert_eq!(ready.expect(200)["status"], "ready");
}

#[actix_web::test]
async fn metrics_are_prometheus_text_with_the_engine_counters() {
    let app = spawn_app();
    let key = app.concurrent_tenant("metered", 1, 600).await;
    let ann = app.session(&key, "metered", "ann").await;
    app.login(&key, "metered", "bob")
        .await
        .expect_error(409, "licence_limit_reached");
    app.browser(&ann, "release").await.expect(204);

    // Counters are fed by events on a thread of their own: wait until they show.
    let wanted = [
        "usher_logins_admitted_total",
        "usher_logins_refused_total{reason=\"licence_limit_reached\"}",
        "usher_sessions_ended_total{reason=\"released\"}",
    ];
    let mut text = String::new();
    for _ in 0..500 {
        let answer = app.get("/metrics").send().await;
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")),
            "{answer:?}"
        );
        text = answer.text;
        if wanted.iter().all(|w| text.contains(w)) {
            break;
        }
        actix_web::rt::task::yield_now().await;
        std::thread::yield_now();
    }
    for metric in wanted {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
    for gauge in ["usher_sessions ", "usher_seats_in_use ", "usher_tenants "] {
        assert!(text.contains(gauge), "{gauge} missing from:\n{text}");
    }
    assert!(text.contains("# TYPE usher_logins_admitted_total counter"));
    assert!(text.contains("usher_http_request_duration_seconds_bucket"));
    // Labels are bounded: route patterns, never tenants or users.
    assert!(text.contains("route=\"/v1/tenants/{tenant}/sessions\""));
    assert!(!text.contains("metered"));
    assert!(!text.contains("\"ann\""));
}

#[actix_web::test]
async fn openapi_lists_every_route_of_the_spec_with_its_methods() {
    let app = spawn_app();
    let answer = app.get("/openapi.json").send().await;
    let doc = answer.expect(200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    let paths = doc["paths"].as_object().expect("a paths object");

    let mut wanted: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (method, path, _) in ENDPOINTS {
        wanted
            .entry(path)
            .or_default()
            .insert(method.to_lowercase());
    }
    for (path, methods) in &wanted {
        let listed = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing from /openapi.json"));
        let listed: BTreeSet<String> = listed
            .as_object()
            .expect("a path item")
            .keys()
            .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
            .cloned()
            .collect();
        assert_eq!(&listed, methods, "methods of {path}");
    }
    assert_eq!(
        paths.len(),
        wanted.len(),
        "no undocumented extras: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app();
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/v1/tenants/acme/nope"),
        ("GET", "/v1/tenants/acme/users/ann/sessions"),
        ("POST", "/v2/tenants/acme/sessions"),
    ] {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = app
            .call(method.clone(), path)
            .auth(&app.admin_token)
            .send()
            .await;
        answer.expect_error(404, "not_found");
        assert!(answer.message().contains("openapi"), "{answer:?}");
    }
    // The token is not echoed when a browser path is unknown.
    let answer = app.post(&format!("/v1/sessions/{TOKEN}/nope")).send().await;
    answer.expect_error(404, "not_found");
    assert!(!answer.text.contains(TOKEN), "{answer:?}");
}

#[actix_web::test]
async fn a_wrong_method_is_a_json_405_on_every_route() {
    let app = spawn_app();
    let mut checked = 0;
    for (_, template, _) in ENDPOINTS {
        let path = fill(template, "acme", "ann", "0123456789abcdef", TOKEN);
        let taken: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|(_, p, _)| p == template)
            .map(|(m, _, _)| *m)
            .collect();
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            if taken.contains(&method) {
                continue;
            }
            let answer = app
                .call(
                    awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                )
                .auth(&app.admin_token)
                .send()
                .await;
            assert_eq!(answer.status, 405, "{method} {template}: {answer:?}");
            answer.expect_error(405, "method_not_allowed");
            assert!(!answer.text.contains(TOKEN), "{answer:?}");
            checked += 1;
        }
    }
    assert!(checked > 50);
}

#[actix_web::test]
async fn a_stalled_store_answers_unavailable_and_health_says_degraded_until_it_thaws() {
    let store = std::sync::Arc::new(usher::store::FaultStore::new());
    let app = crate::helpers::spawn_app_with(|config| {
        config.store = store.clone();
        config.engine.write_deadline = std::time::Duration::from_secs(5);
        config.engine.tick_every = std::time::Duration::from_millis(20);
    });
    let key = app.concurrent_tenant("acme", 1, 600).await;
    app.get("/healthz").send().await.expect(200);

    store.stall();
    let login = app.login(&key, "acme", "ann");
    let deadline = async {
        while store.held() == 0 {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        app.advance(5);
    };
    let (answer, ()) = futures::join!(login, deadline);
    answer.expect_error(503, "unavailable");
    assert!(answer.header("retry-after").is_some());
    let health = app.get("/healthz").send().await;
    assert_eq!(health.expect(503)["status"], "store_degraded");
    assert_eq!(app.get("/readyz").send().await.status, 503);

    store.resume();
    app.get("/healthz").send().await.expect(200);
    // The refused login holds no seat: someone else gets it.
    app.login(&key, "acme", "bob").await.expect(201);
}

#[actix_web::test]
async fn the_dashboard_and_its_assets_are_served_with_a_content_security_policy() {
    let app = spawn_app();
    for path in [
        "/",
        "/index.html",
        "/dashboard.js",
        "/dashboard.css",
        "/vendor/uplot/uPlot.iife.min.js",
        "/usher.js",
        "/demo/",
        "/demo",
        "/demo/demo.js",
    ] {
        let answer = app.get(path).send().await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        let policy = answer
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"));
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(
                policy.contains(directive),
                "{path}: {directive} in {policy}"
            );
        }
        let scripts = policy
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap();
        assert!(!scripts.contains("unsafe"), "{path}: {policy}");
        if !path.starts_with("/demo") {
            assert!(!policy.contains("unsafe"), "{path}: {policy}");
        }
    }
}

/// What the dashboard's policy forbids, so that a page that needs any of it would not
/// work: inline scripts and handlers, inline styles, and other sites' files.
#[actix_web::test]
async fn the_dashboard_needs_nothing_its_policy_forbids() {
    let app = spawn_app();
    let page = app.get("/").send().await;
    let html = page.text.to_lowercase();
    assert!(html.contains("<script src=\"/dashboard.js\""), "{html}");
    for (start, _) in html.match_indices("<script") {
        let tag = &html[start..start + html[start..].find('>').unwrap()];
        assert!(
            tag.contains(" src=\"/"),
            "an inline or foreign script: {tag}"
        );
    }
    for forbidden in [
        "<style",
        " style=",
        "javascript:",
        "http://",
        "https://",
        "//cdn",
    ] {
        assert!(
            !html.contains(forbidden),
            "the dashboard uses {forbidden:?}"
        );
    }
    let handlers = html
        .split(|c: char| c.is_whitespace())
        .filter(|word| word.starts_with("on") && word.contains('='))
        .collect::<Vec<_>>();
    assert!(handlers.is_empty(), "inline handlers: {handlers:?}");
    for (start, _) in html.match_indices(" href=\"") {
        let target = &html[start + 7..];
        assert!(
            ["/", "#", "data:"].iter().any(|ok| target.starts_with(ok)),
            "a link the policy may refuse: {}",
            &target[..target.find('"').unwrap()]
        );
    }
}

#[actix_web::test]
async fn every_get_route_answers_head_like_get_without_a_body() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    app.session(&key, "acme", "ann").await;
    let webhook = crate::helpers::valid_body("PUT", "/v1/tenants/{tenant}/webhooks/{name}");
    app.put("/v1/tenants/acme/webhooks/ann")
        .auth(&key)
        .json(webhook.expect("a webhook body"))
        .await
        .expect(201);
    let mut checked = 0;
    // A tab's socket is a GET only to be upgraded; a plain GET of it is a 400.
    let plain = |template: &str| !template.ends_with("/live");
    for (method, template, _) in ENDPOINTS.iter().filter(|(m, t, _)| *m == "GET" && plain(t)) {
        let path = fill(template, "acme", "ann", "0123456789abcdef", TOKEN);
        let get = app
            .endpoint(method, template, &path, Some(&app.admin_token))
            .await;
        assert_eq!(get.status, 200, "GET {path}: {get:?}");
        assert!(!get.text.is_empty(), "GET {path} has a body");
        let head = app
            .endpoint("HEAD", template, &path, Some(&app.admin_token))
            .await;
        assert_eq!(head.status, get.status, "HEAD {path}: {head:?}");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
        assert!(head.text.is_empty(), "HEAD {path} sent a body: {head:?}");
        checked += 1;
    }
    assert!(checked >= 10, "{checked} GET routes");
    // A HEAD is answered as its GET would be, credential checks included.
    let head = app
        .call(awc::http::Method::HEAD, "/v1/tenants")
        .send()
        .await;
    assert_eq!(head.status, 401, "{head:?}");
}

#[actix_web::test]
async fn a_405_lists_the_methods_of_its_route_in_allow() {
    let app = spawn_app();
    let mut templates: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (method, template, _) in ENDPOINTS {
        let methods = templates.entry(template).or_default();
        methods.insert(method);
        if *method == "GET" {
            methods.insert("HEAD");
        }
    }
    for (template, taken) in &templates {
        let path = fill(template, "acme", "ann", "0123456789abcdef", TOKEN);
        for method in ["PATCH", "OPTIONS", "PUT", "DELETE", "POST", "HEAD"] {
            if taken.contains(method) {
                continue;
            }
            let answer = app
                .call(
                    awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                )
                .auth(&app.admin_token)
                .send()
                .await;
            assert_eq!(answer.status, 405, "{method} {template}: {answer:?}");
            let allow: BTreeSet<&str> = answer
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {template}: no Allow: {answer:?}"))
                .split(',')
                .map(str::trim)
                .collect();
            assert_eq!(&allow, taken, "Allow of {template}");
        }
    }
}

/// A store whose start-up read waits until the test lets it go on, like a large
/// database being read back.
struct SlowToLoad {
    inner: MemoryStore,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Store for SlowToLoad {
    fn submit(&self, batch: Batch, done: Done) {
        self.inner.submit(batch, done);
    }

    fn load(&self) -> usher::Result<Loaded> {
        let _ = self.go.lock().unwrap().recv();
        self.inner.load()
    }

    fn events(&self, tenant: &TenantId, query: &EventQuery) -> usher::Result<EventPage> {
        self.inner.events(tenant, query)
    }
}

#[actix_web::test]
async fn readyz_answers_503_starting_until_the_store_is_restored() {
    let (go, wait) = mpsc::channel();
    let store = Arc::new(SlowToLoad {
        inner: MemoryStore::new(),
        go: Mutex::new(wait),
    });
    let mut app = spawn_starting_app_with(|config| config.store = store);
    // Bound after the server, so dropped before it: a failing check lets the read
    // finish instead of leaving the server waiting for it.
    let go = go;

    let ready = app.get("/readyz").send().await;
    ready.expect_error(503, "starting");
    assert_eq!(ready.header("retry-after"), Some("1"), "{ready:?}");
    // Alive, and what needs no engine is served.
    assert_eq!(app.get("/healthz").send().await.expect(200)["status"], "ok");
    app.get("/").send().await.expect(200);
    app.get("/openapi.json").send().await.expect(200);
    // What needs the engine waits for it.
    let token = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (method, path) in [
        (Method::PUT, "/v1/tenants/acme"),
        (Method::GET, "/v1/tenants"),
        (Method::GET, "/v1/tenants/acme/users"),
        (Method::POST, &format!("/v1/sessions/{token}/heartbeat")),
        (Method::POST, "/demo/api/login"),
    ] {
        let answer = app
            .admin(method.clone(), path)
            .json(json!({"model": "concurrent", "seats": 1}))
            .await;
        answer.expect_error(503, "starting");
        assert_eq!(answer.header("retry-after"), Some("1"), "{method} {path}");
    }

    go.send(()).unwrap();
    app.wait_ready();
    assert_eq!(
        app.get("/readyz").send().await.expect(200)["status"],
        "ready"
    );
    app.concurrent_tenant("acme", 1, 600).await;
}

/// A store that cannot be read.
struct Unreadable;

impl Store for Unreadable {
    fn submit(&self, _batch: Batch, done: Done) {
        done(Ok(()));
    }

    fn load(&self) -> usher::Result<Loaded> {
        Err(usher::Error::Internal("the disk went away".into()))
    }

    fn events(&self, _tenant: &TenantId, _query: &EventQuery) -> usher::Result<EventPage> {
        Ok(EventPage::default())
    }
}

#[test]
fn a_store_that_cannot_be_read_stops_start_up() {
    let mut config = usher::http::ServerConfig::new("127.0.0.1:0", crate::helpers::ADMIN_TOKEN);
    config.store = Arc::new(Unreadable);
    config.workers = 1;
    let error = match usher::http::RunningServer::spawn(config) {
        Ok(_) => panic!("the server started on a store it cannot read"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("cannot read the store"), "{error}");
    assert!(error.contains("the disk went away"), "{error}");
}
