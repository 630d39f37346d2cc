//! Session tokens never leak: not in metrics, not in listings, not in error bodies.

use actix_web::http::Method;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn session_tokens_never_appear_in_metrics() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    let other = app.session(&key, "acme", "bob").await;
    // Every kind of request that carries a token in its path, matched or not.
    app.browser(&tab, "heartbeat").await.expect(200);
    app.browser(&other, "logout").await.expect(204);
    app.browser(&other, "heartbeat")
        .await
        .expect_error(410, "session_ended");
    app.get(&format!("/v1/sessions/{tab}/heartbeat"))
        .send()
        .await
        .expect_error(405, "method_not_allowed");
    app.post(&format!("/v1/sessions/{tab}/unknown"))
        .send()
        .await
        .expect_error(404, "not_found");
    app.post(&format!("/v1/sessions/{tab}"))
        .send()
        .await
        .expect_error(404, "not_found");
    app.browser(&tab, "release").await.expect(204);

    let metrics = app.get("/metrics").send().await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("usher_http_request_duration_seconds"));
    assert!(
        metrics.text.contains("/v1/sessions/{token}/heartbeat"),
        "{}",
        metrics.text
    );
    for token in [&tab, &other] {
        assert!(!metrics.text.contains(token.as_str()), "token in /metrics");
        // Nor its secret part alone.
        assert!(!metrics.text.contains(&token[11..]), "secret in /metrics");
    }
    // Nor in the admin listings.
    for path in [
        "/v1/tenants/acme/sessions",
        "/v1/tenants/acme/users",
        "/v1/tenants/acme",
    ] {
        let answer = app.get(path).auth(&key).send().await;
        assert_eq!(answer.status, 200);
        assert!(!answer.text.contains(&tab[11..]));
    }
}

#[actix_web::test]
async fn concurrent_key_rotations_leave_exactly_one_key_and_none_outlives_its_tenant() {
    let app = spawn_app();
    let first = app.concurrent_tenant("acme", 2, 600).await;
    let mut keys = vec![first.clone()];
    let mut valid_key = first;
    // The race is narrow: many rounds of several rotations at once.
    for round in 0..60 {
        let rotations = (0..8).map(|_| app.admin(Method::POST, "/v1/tenants/acme/api-key").send());
        let mut candidates = vec![valid_key.clone()];
        for answer in futures::future::join_all(rotations).await {
            let body = answer.expect(200);
            candidates.push(body["api_key"].as_str().unwrap().to_owned());
        }
        let mut valid = Vec::new();
        for key in &candidates {
            let answer = app.get("/v1/tenants/acme").auth(key).send().await;
            match answer.status {
                200 => valid.push(key.clone()),
                _ => {
                    answer.expect_error(401, "unauthorized");
                }
            }
        }
        assert_eq!(valid.len(), 1, "round {round}: {} keys valid", valid.len());
        valid_key = valid.remove(0);
        keys.extend(candidates);
    }
    // Delete the tenant and create it again: no old key logs anyone in to the new one.
    app.admin(Method::DELETE, "/v1/tenants/acme")
        .send()
        .await
        .expect(204);
    let fresh = app.concurrent_tenant("acme", 2, 600).await;
    for key in &keys {
        app.post("/v1/tenants/acme/sessions")
            .auth(key)
            .json(serde_json::json!({"user": "mallory"}))
            .await
            .expect_error(401, "unauthorized");
    }
    app.login(&fresh, "acme", "ann").await.expect(201);
}
