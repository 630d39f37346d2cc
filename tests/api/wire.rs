//! Numbers and moments as any JSON or RFC 3339 writer may send them: `3.0` is the
//! whole number 3, and a moment before 1970 comes before every event.

use awc::http::Method;
use serde_json::json;

use crate::helpers::{spawn_app, Answer, TestApp};

#[actix_web::test]
async fn a_whole_number_written_as_a_float_is_that_number() {
    let app = spawn_app();
    let answer = app
        .admin(Method::PUT, "/v1/tenants/acme")
        .json(json!({"model": "concurrent", "seats": 3.0, "idle_timeout_secs": 60.0}))
        .await;
    let view = answer.expect(201);
    assert_eq!(
        (view["seats"].clone(), view["idle_timeout_secs"].clone()),
        (json!(3), json!(60))
    );
    let key = view["api_key"].as_str().unwrap().to_owned();
    let records = app
        .put("/v1/tenants/acme/records")
        .auth(&key)
        .json(json!({"count": 7.0}))
        .await;
    assert_eq!(records.expect(200)["count"], 7);
    for count in [json!(7.5), json!(-1), json!(9_223_372_036_854_775_808_u64)] {
        let answer = app
            .put("/v1/tenants/acme/records")
            .auth(&key)
            .json(json!({"count": count}))
            .await;
        answer.expect_error(400, "invalid_request");
        assert!(answer.message().contains("whole number"), "{answer:?}");
    }
    // The largest count the document promises (int64) is taken.
    let answer = app
        .put("/v1/tenants/acme/records")
        .auth(&key)
        .json(json!({"count": i64::MAX}))
        .await;
    assert_eq!(answer.expect(200)["count"], i64::MAX);
}

async fn events(app: &TestApp, key: &str, query: &str) -> Answer {
    app.get(&format!("/v1/tenants/acme/events{query}"))
        .auth(key)
        .send()
        .await
}

#[actix_web::test]
async fn events_since_a_moment_before_1970_are_every_event() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    app.session(&key, "acme", "ann").await;
    let all = events(&app, &key, "").await.expect(200)["events"].clone();
    assert!(!all.as_array().unwrap().is_empty(), "{all}");
    for since in ["1441-02-07T02:21:49%2B02:28", "1969-12-31T23:59:59.999Z"] {
        let answer = events(&app, &key, &format!("?since={since}")).await;
        assert_eq!(answer.expect(200)["events"], all, "since {since}");
    }
    let answer = events(&app, &key, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(answer.expect(200)["events"], json!([]));
    events(&app, &key, "?since=yesterday")
        .await
        .expect_error(400, "invalid_request");
}
