//! The browser routes from another site: CORS, and `navigator.sendBeacon` releases.

use crate::helpers::{spawn_app, APP_ORIGIN};

#[actix_web::test]
async fn a_beacon_release_from_a_configured_origin_frees_the_seat() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;

    // What navigator.sendBeacon sends: a text/plain body, no Authorization header.
    let answer = app
        .post(&format!("/v1/sessions/{tab}/release"))
        .header("origin", APP_ORIGIN)
        .raw("text/plain;charset=UTF-8", "bye")
        .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(APP_ORIGIN)
    );

    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 0);
    let ended = app.browser(&tab, "heartbeat").await;
    assert_eq!(
        ended.expect_error(410, "session_ended")["reason"],
        "released"
    );
    app.session(&key, "acme", "bob").await;
}

#[actix_web::test]
async fn cross_origin_heartbeats_and_logouts_carry_cors_headers() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    for action in ["heartbeat", "logout"] {
        let answer = app
            .post(&format!("/v1/sessions/{tab}/{action}"))
            .header("origin", APP_ORIGIN)
            .send()
            .await;
        assert!(answer.status == 200 || answer.status == 204, "{answer:?}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some(APP_ORIGIN)
        );
    }
    assert_eq!(app.tenant(&key, "acme").await["sessions"], 0);
}

#[actix_web::test]
async fn a_preflight_from_a_configured_origin_is_allowed() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    for action in ["heartbeat", "release", "logout"] {
        let answer = app
            .call(
                awc::http::Method::OPTIONS,
                &format!("/v1/sessions/{tab}/{action}"),
            )
            .header("origin", APP_ORIGIN)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some(APP_ORIGIN)
        );
        let methods = answer.header("access-control-allow-methods").unwrap_or("");
        assert!(methods.contains("POST"), "{answer:?}");
    }
    // A preflight ends nothing.
    app.browser(&tab, "heartbeat").await.expect(200);
}

#[actix_web::test]
async fn another_origin_is_not_allowed() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    for origin in [
        "https://evil.example",
        "https://crm.example.org.evil.example",
        "null",
    ] {
        let preflight = app
            .call(
                awc::http::Method::OPTIONS,
                &format!("/v1/sessions/{tab}/release"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await;
        preflight.expect_error(403, "forbidden");
        assert!(preflight.message().contains("origin"), "{preflight:?}");
        assert_eq!(preflight.header("access-control-allow-origin"), None);

        // A request sent without a preflight (a beacon, a form) is refused the same
        // way, before it reaches the session, and without the header that would let
        // a page of that origin read the answer.
        for action in ["heartbeat", "release", "logout"] {
            let refused = app
                .post(&format!("/v1/sessions/{tab}/{action}"))
                .header("origin", origin)
                .send()
                .await;
            refused.expect_error(403, "forbidden");
            assert_eq!(
                refused.header("access-control-allow-origin"),
                None,
                "{refused:?}"
            );
        }
    }
    // Preflights end nothing.
    app.browser(&tab, "heartbeat").await.expect(200);
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 1);
}

#[actix_web::test]
async fn a_preflight_for_a_method_or_header_not_allowed_is_forbidden_as_json() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    for (method, headers, says) in [
        ("DELETE", "content-type", "POST"),
        ("POST", "authorization", "Content-Type"),
    ] {
        let answer = app
            .call(
                awc::http::Method::OPTIONS,
                &format!("/v1/sessions/{tab}/heartbeat"),
            )
            .header("origin", APP_ORIGIN)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await;
        answer.expect_error(403, "forbidden");
        assert!(answer.message().contains(says), "{answer:?}");
    }
    app.browser(&tab, "heartbeat").await.expect(200);
}

#[actix_web::test]
async fn a_waitlist_ticket_is_heartbeated_and_left_from_a_configured_origin() {
    let app = spawn_app();
    let key = app
        .create_tenant(
            "acme",
            serde_json::json!({"model": "concurrent", "seats": 1, "on_limit": "queue"}),
        )
        .await;
    app.session(&key, "acme", "ann").await;
    let queued = app.login(&key, "acme", "bob").await;
    let ticket = queued.expect(202)["ticket"].as_str().unwrap().to_owned();
    // Told to heartbeat often enough to claim within the default 60 s window.
    assert_eq!(queued.expect(202)["heartbeat_interval_secs"], 15);

    let preflight = app
        .call(awc::http::Method::OPTIONS, &format!("/v1/tickets/{ticket}"))
        .header("origin", APP_ORIGIN)
        .header("access-control-request-method", "DELETE")
        .send()
        .await;
    assert_eq!(preflight.status, 200, "{preflight:?}");
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or("");
    assert!(methods.contains("DELETE"), "{preflight:?}");

    let beat = app
        .post(&format!("/v1/tickets/{ticket}/heartbeat"))
        .header("origin", APP_ORIGIN)
        .send()
        .await;
    assert_eq!(beat.expect(200)["position"], 1);
    assert_eq!(beat.header("access-control-allow-origin"), Some(APP_ORIGIN));

    let left = app
        .delete(&format!("/v1/tickets/{ticket}"))
        .header("origin", APP_ORIGIN)
        .send()
        .await;
    assert_eq!(left.status, 204, "{left:?}");
    assert_eq!(left.header("access-control-allow-origin"), Some(APP_ORIGIN));
    let ended = app
        .post(&format!("/v1/tickets/{ticket}/heartbeat"))
        .send()
        .await;
    assert_eq!(
        ended.expect_error(410, "ticket_ended")["reason"],
        "cancelled"
    );
}
