//! Operations: health, readiness, metrics, the OpenAPI document, unknown routes and
//! wrong methods.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::{fill, spawn_app, ENDPOINTS};

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
async fn a_405_names_the_methods_the_route_takes_in_allow() {
    let app = spawn_app();
    let mut checked = 0;
    for (_, template, _) in ENDPOINTS {
        let taken: BTreeSet<&str> = ENDPOINTS
            .iter()
            .filter(|(_, p, _)| p == template)
            .map(|(m, _, _)| *m)
            .collect();
        let path = fill(template, "acme", "ann", "0123456789abcdef", TOKEN);
        for method in ["TRACE", "PATCH", "HEAD"] {
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
                .unwrap_or_else(|| panic!("{method} {template} answers Allow: {answer:?}"))
                .split(',')
                .map(str::trim)
                .collect();
            assert_eq!(allow, taken, "{method} {template}");
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * ENDPOINTS.len());
    let answer = app.get("/demo/api/login").send().await;
    assert_eq!(answer.header("allow"), Some("POST"), "{answer:?}");
}
