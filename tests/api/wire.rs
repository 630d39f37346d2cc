//! Numbers as any JSON writer may send them: `3.0` is the whole number 3.

use awc::http::Method;
use serde_json::json;

use crate::helpers::spawn_app;

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
