//! Admin routes: create or change a licence, list, view, delete, rotate the API key.

use std::collections::BTreeSet;

use awc::http::Method;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

const VIEW_FIELDS: [&str; 12] = [
    "tenant",
    "model",
    "seats",
    "seat_per",
    "idle_timeout_secs",
    "max_users",
    "seats_in_use",
    "sessions",
    "users",
    "records",
    "queued",
    "held_for_queue",
];

#[actix_web::test]
async fn creating_a_tenant_answers_201_with_its_view_and_api_key_once() {
    let app = spawn_app();
    let created = app
        .admin(Method::PUT, "/v1/tenants/st-mungos")
        .json(json!({"model": "concurrent", "seats": 5}))
        .await;
    let body = created.expect(201);
    let mut fields: BTreeSet<&str> = VIEW_FIELDS.into_iter().collect();
    fields.insert("api_key");
    assert_eq!(keys(body), fields);
    assert_eq!(body["tenant"], "st-mungos");
    assert_eq!(body["model"], "concurrent");
    assert_eq!(body["seats"], 5);
    assert_eq!(body["seat_per"], "user");
    assert_eq!(body["idle_timeout_secs"], 600);
    assert_eq!(body["max_users"], 999);
    assert_eq!(body["seats_in_use"], 0);
    assert_eq!(body["sessions"], 0);
    assert_eq!(body["users"], 0);
    assert_eq!(body["records"], 0);
    let key = body["api_key"].as_str().unwrap().to_owned();
    assert!(key.len() >= 24, "{key}");

    // Changing it answers 200 with the view, and no new key: the old one still works.
    let changed = app
        .admin(Method::PUT, "/v1/tenants/st-mungos")
        .json(
            json!({"model": "concurrent", "seats": 8, "seat_per": "session",
                     "idle_timeout_secs": 120, "max_users": 50}),
        )
        .await;
    let body = changed.expect(200);
    assert_eq!(keys(body), VIEW_FIELDS.into_iter().collect());
    assert_eq!(body["seats"], 8);
    assert_eq!(body["seat_per"], "session");
    assert_eq!(body["idle_timeout_secs"], 120);
    assert_eq!(body["max_users"], 50);
    assert_eq!(app.tenant(&key, "st-mungos").await, *body);
}

#[actix_web::test]
async fn each_model_shows_its_own_fields() {
    let app = spawn_app();
    let key = app
        .create_tenant("named-co", json!({"model": "named", "seats": 3}))
        .await;
    let named = app.tenant(&key, "named-co").await;
    assert_eq!(named["model"], "named");
    assert_eq!(named["seats"], 3);
    assert_eq!(named["seat_per"], Value::Null);

    let key = app
        .create_tenant("records-co", json!({"model": "records", "max_users": 10}))
        .await;
    let records = app.tenant(&key, "records-co").await;
    assert_eq!(records["model"], "records");
    assert_eq!(records["seats"], Value::Null);
    assert_eq!(records["seat_per"], Value::Null);
    assert_eq!(records["max_users"], 10);

    // Another model at runtime, no restart.
    let switched = app
        .admin(Method::PUT, "/v1/tenants/records-co")
        .json(json!({"model": "named", "seats": 2}))
        .await;
    assert_eq!(switched.expect(200)["model"], "named");
}

#[actix_web::test]
async fn listing_tenants_wraps_them_with_a_usage_summary() {
    let app = spawn_app();
    let key = app.concurrent_tenant("beta", 2, 600).await;
    app.concurrent_tenant("alpha", 1, 600).await;
    app.session(&key, "beta", "ann").await;

    let answer = app.admin(Method::GET, "/v1/tenants").send().await;
    let body = answer.expect(200);
    assert_eq!(keys(body), BTreeSet::from(["tenants"]));
    let tenants = body["tenants"].as_array().unwrap();
    let ids: Vec<&str> = tenants
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha", "beta"]);
    let beta = &tenants[1];
    for field in VIEW_FIELDS {
        assert!(beta.get(field).is_some(), "{field} missing: {beta}");
    }
    assert_eq!(beta["seats_in_use"], 1);
    assert_eq!(beta["today"]["logins"], 1);
    assert_eq!(beta["today"]["day"], "2025-03-10");
}

#[actix_web::test]
async fn deleting_a_tenant_ends_its_sessions_and_retires_its_key() {
    let app = spawn_app();
    let key = app.concurrent_tenant("leaving", 2, 600).await;
    let other_key = app.concurrent_tenant("staying", 2, 600).await;
    let tab = app.session(&key, "leaving", "ann").await;
    let other_tab = app.session(&other_key, "staying", "bob").await;

    app.admin(Method::DELETE, "/v1/tenants/leaving")
        .send()
        .await
        .expect(204);

    app.admin(Method::GET, "/v1/tenants/leaving")
        .send()
        .await
        .expect_error(404, "tenant_not_found");
    app.get("/v1/tenants/leaving")
        .auth(&key)
        .send()
        .await
        .expect_error(401, "unauthorized");
    let beat = app.browser(&tab, "heartbeat").await;
    assert_eq!(
        (beat.status, &beat.body["reason"]),
        (410, &serde_json::json!("evicted")),
        "an ended tab learns it: {beat:?}"
    );
    app.admin(Method::DELETE, "/v1/tenants/leaving")
        .send()
        .await
        .expect_error(404, "tenant_not_found");

    // The other tenant did not notice.
    app.browser(&other_tab, "heartbeat").await.expect(200);
    assert_eq!(app.tenant(&other_key, "staying").await["seats_in_use"], 1);
}

#[actix_web::test]
async fn rotating_the_api_key_retires_the_old_one() {
    let app = spawn_app();
    let old = app.concurrent_tenant("acme", 2, 600).await;
    let answer = app
        .admin(Method::POST, "/v1/tenants/acme/api-key")
        .send()
        .await;
    let body = answer.expect(200);
    assert_eq!(keys(body), BTreeSet::from(["tenant", "api_key"]));
    assert_eq!(body["tenant"], "acme");
    let new = body["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    app.get("/v1/tenants/acme")
        .auth(&old)
        .send()
        .await
        .expect_error(401, "unauthorized");
    app.login(&old, "acme", "ann")
        .await
        .expect_error(401, "unauthorized");
    app.get("/v1/tenants/acme")
        .auth(&new)
        .send()
        .await
        .expect(200);
    app.session(&new, "acme", "ann").await;

    app.admin(Method::POST, "/v1/tenants/nobody/api-key")
        .send()
        .await
        .expect_error(404, "tenant_not_found");
}

#[actix_web::test]
async fn every_tenant_route_of_an_unknown_tenant_is_tenant_not_found() {
    let app = spawn_app();
    for (method, template, access) in crate::helpers::ENDPOINTS {
        if *access != crate::helpers::Access::Tenant {
            continue;
        }
        let path = crate::helpers::fill(template, "ghost", "ann", "0123456789abcdef", "");
        let answer = app
            .endpoint(method, template, &path, Some(&app.admin_token))
            .await;
        answer.expect_error(404, "tenant_not_found");
    }
}
