//! Licence changes previewed (`?dry_run=true`) and made field by field (`PATCH`).

use awc::http::Method;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_dry_run_answers_the_tenant_as_it_would_be_with_its_effects_and_changes_nothing() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 3, 600).await;
    for user in ["ann", "bob", "carol"] {
        app.login(&key, "acme", user).await.expect(201);
    }
    let before = app.admin(Method::GET, "/v1/tenants/acme").send().await;
    let before = before.expect(200).clone();

    let preview = app
        .admin(Method::PUT, "/v1/tenants/acme?dry_run=true")
        .json(json!({"model": "concurrent", "seats": 1, "max_users": 2}))
        .await;
    let body = preview.expect(200);
    assert_eq!(body["seats"], 1);
    assert_eq!(body["seats_in_use"], 3);
    assert_eq!(body["creates"], false);
    assert_eq!(
        body["effects"],
        json!({"seats_over_limit": 2, "users_over_limit": 1, "named_seats_lost": [],
               "tickets_ended": 0})
    );
    let after = app.admin(Method::GET, "/v1/tenants/acme").send().await;
    assert_eq!(after.expect(200), &before);
    let events = app
        .admin(Method::GET, "/v1/tenants/acme/events")
        .send()
        .await;
    let kinds: Vec<_> = events.expect(200)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(!kinds.contains(&"licence_changed".to_owned()), "{kinds:?}");

    // A tenant not there: what it would be, and it is still not there.
    let new = app
        .admin(Method::PUT, "/v1/tenants/new?dry_run=true")
        .json(json!({"model": "named", "seats": 4}))
        .await;
    assert_eq!(new.expect(200)["creates"], true);
    assert!(new.expect(200).get("api_key").is_none());
    app.admin(Method::GET, "/v1/tenants/new")
        .send()
        .await
        .expect_error(404, "tenant_not_found");

    // A bad licence or a bad query is refused before anything is previewed.
    app.admin(Method::PUT, "/v1/tenants/acme?dry_run=true")
        .json(json!({"model": "concurrent", "seats": -1}))
        .await
        .expect_error(400, "invalid_request");
    let bad = app
        .admin(Method::PUT, "/v1/tenants/acme?dry_run=maybe")
        .json(json!({"model": "concurrent", "seats": 1}))
        .await;
    assert!(bad
        .expect_error(400, "invalid_request")
        .to_string()
        .contains("dry_run"));
    app.admin(Method::PUT, "/v1/tenants/acme?dryrun=true")
        .json(json!({"model": "concurrent", "seats": 1}))
        .await
        .expect_error(400, "invalid_request");
    let after = app.admin(Method::GET, "/v1/tenants/acme").send().await;
    assert_eq!(after.expect(200), &before);
}

#[actix_web::test]
async fn patch_changes_only_the_fields_given() {
    let app = spawn_app();
    app.admin(Method::PUT, "/v1/tenants/acme")
        .json(
            json!({"model": "concurrent", "seats": 5, "seat_per": "session",
                     "idle_timeout_secs": 120, "overage": 0.2, "max_sessions_per_user": 3}),
        )
        .await
        .expect(201);

    let patched = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!({"seats": 8}))
        .await;
    let body = patched.expect(200);
    assert_eq!(
        (
            &body["seats"],
            &body["seat_per"],
            &body["idle_timeout_secs"],
            &body["overage"],
            &body["max_sessions_per_user"]
        ),
        (
            &json!(8),
            &json!("session"),
            &json!(120),
            &json!(0.2),
            &json!(3)
        )
    );

    // `null` puts a field back to its default.
    let body = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!({"overage": null, "seat_per": null}))
        .await;
    let body = body.expect(200);
    assert!(body.get("overage").is_none(), "{body}");
    assert_eq!(body["seat_per"], "user");

    // Another model leaves behind what does not apply to it, and keeps the rest.
    let body = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!({"model": "named"}))
        .await;
    let body = body.expect(200);
    assert_eq!(
        (&body["model"], &body["seats"], &body["idle_timeout_secs"]),
        (&json!("named"), &json!(8), &json!(120))
    );
    assert!(body["seat_per"].is_null(), "{body}");

    // With a dry run, what it would do, and nothing done.
    let preview = app
        .admin(Method::PATCH, "/v1/tenants/acme?dry_run=true")
        .json(json!({"seats": 2}))
        .await;
    assert_eq!(preview.expect(200)["seats"], 2);
    let view = app.admin(Method::GET, "/v1/tenants/acme").send().await;
    assert_eq!(view.expect(200)["seats"], 8);
}

#[actix_web::test]
async fn a_bad_patch_is_a_clear_error_and_changes_nothing() {
    let app = spawn_app();
    app.concurrent_tenant("acme", 5, 600).await;
    for (patch, field) in [
        (json!({"seats": "many"}), "seats"),
        (json!({"on_limit": "first_come"}), "on_limit"),
        (json!({"overage": 2}), "overage"),
        (json!({"colour": "red"}), "colour"),
        (json!({"colour": null}), "unknown field \"colour\""),
        (json!({"": null}), "unknown field \"\""),
        (
            json!({"reserve": {"a": 9}}),
            "\"reserve\" of a must be between 0",
        ),
        (json!({"model": "records", "seats": 3}), "seats"),
    ] {
        let answer = app
            .admin(Method::PATCH, "/v1/tenants/acme")
            .json(patch.clone())
            .await;
        let body = answer.expect_error(400, "invalid_request");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(field), "{patch}: {body}");
    }
    app.admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!([1, 2]))
        .await
        .expect_error(400, "invalid_request");
    app.admin(Method::PATCH, "/v1/tenants/nobody")
        .json(json!({"seats": 3}))
        .await
        .expect_error(404, "tenant_not_found");
    let key = app
        .create_tenant("other", json!({"model": "concurrent", "seats": 1}))
        .await;
    // A tenant's key is not an admin token.
    app.call(Method::PATCH, "/v1/tenants/acme")
        .auth(&key)
        .json(json!({"seats": 9}))
        .await
        .expect_error(403, "forbidden");
    let view = app.admin(Method::GET, "/v1/tenants/acme").send().await;
    assert_eq!(view.expect(200)["seats"], 5);
}

#[actix_web::test]
async fn a_patch_merges_the_group_maps_group_by_group() {
    let app = spawn_app();
    app.create_tenant(
        "acme",
        json!({"model": "concurrent", "seats": 10, "reserve": {"finance": 2, "hr": 1},
            "group_max": {"volunteers": 3}}),
    )
    .await;
    let patch = |body: Value| app.admin(Method::PATCH, "/v1/tenants/acme").json(body);
    let view = patch(json!({"reserve": {"hr": null, "sales": 4}})).await;
    let view = view.expect(200);
    assert_eq!(view["reserve"], json!({"finance": 2, "sales": 4}));
    assert_eq!(view["group_max"], json!({"volunteers": 3}));
    // The last group out takes the map with it; null clears a whole map.
    let view = patch(json!({"group_max": {"volunteers": null}, "reserve": null})).await;
    let view = view.expect(200);
    assert!(
        view.get("group_max").is_none() && view.get("reserve").is_none(),
        "{view}"
    );
    // A merged map is checked as a whole: 6 + 5 is more than the seats.
    patch(json!({"reserve": {"finance": 6}})).await.expect(200);
    let answer = patch(json!({"reserve": {"hr": 5}})).await;
    let body = answer.expect_error(400, "invalid_request");
    assert!(body.to_string().contains("holds back 11 seats"), "{body}");
}

/// Sixty PATCHes at once, each of another field or the same: every one lands.
#[actix_web::test]
async fn racing_patches_each_land() {
    let app = spawn_app();
    app.concurrent_tenant("acme", 1, 600).await;
    let patches = (0..60).map(|i| {
        let body = if i % 2 == 0 {
            json!({"max_users": 100 + i})
        } else {
            json!({"idle_timeout_secs": 100 + i})
        };
        let call = app.admin(Method::PATCH, "/v1/tenants/acme").json(body);
        async move { call.await.expect(200).clone() }
    });
    futures::future::join_all(patches).await;
    let view = app.admin(Method::GET, "/v1/tenants/acme").send().await;
    let view = view.expect(200);
    // Both fields hold one of their patched values: neither was lost to the other.
    let max = view["max_users"].as_u64().unwrap();
    let idle = view["idle_timeout_secs"].as_u64().unwrap();
    assert!((100..160).contains(&max) && max % 2 == 0, "{view}");
    assert!((100..160).contains(&idle) && idle % 2 == 1, "{view}");
}
