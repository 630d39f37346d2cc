//! Users: named seats assigned and unassigned, registration, the account limit.

use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn named_users_are_assigned_and_log_in_freely() {
    let app = spawn_app();
    let key = app
        .create_tenant("acme", json!({"model": "named", "seats": 2}))
        .await;
    for user in ["ann", "bob"] {
        let answer = app
            .put(&format!("/v1/tenants/acme/users/{user}"))
            .auth(&key)
            .send()
            .await;
        assert_eq!(
            answer.expect(200),
            &json!({"user": user, "assigned": true, "sessions": 0})
        );
    }
    // Assigning again changes nothing.
    app.put("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await
        .expect(200);
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 2);

    // Every assigned user may be logged in at once, in any number of tabs.
    for user in ["ann", "bob"] {
        for _ in 0..3 {
            app.session(&key, "acme", user).await;
        }
    }
    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (view["seats_in_use"].as_u64(), view["sessions"].as_u64()),
        (Some(2), Some(6))
    );

    let list = app.get("/v1/tenants/acme/users").auth(&key).send().await;
    assert_eq!(
        list.expect(200),
        &json!({"users": [
            {"user": "ann", "assigned": true, "sessions": 3},
            {"user": "bob", "assigned": true, "sessions": 3},
        ]})
    );
}

#[actix_web::test]
async fn an_unassigned_user_is_not_licensed_and_seats_run_out() {
    let app = spawn_app();
    let key = app
        .create_tenant("acme", json!({"model": "named", "seats": 1}))
        .await;
    let refused = app.login(&key, "acme", "ann").await;
    refused.expect_error(403, "user_not_licensed");
    assert!(refused.message().contains("administrator"), "{refused:?}");

    app.put("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await
        .expect(200);
    let exhausted = app
        .put("/v1/tenants/acme/users/bob")
        .auth(&key)
        .send()
        .await;
    assert_eq!(exhausted.expect_error(409, "seats_exhausted")["seats"], 1);
    app.login(&key, "acme", "bob")
        .await
        .expect_error(403, "user_not_licensed");
    app.session(&key, "acme", "ann").await;
}

#[actix_web::test]
async fn unassigning_frees_the_seat_and_ends_the_users_sessions() {
    let app = spawn_app();
    let key = app
        .create_tenant("acme", json!({"model": "named", "seats": 1}))
        .await;
    app.put("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await
        .expect(200);
    let tab1 = app.session(&key, "acme", "ann").await;
    let tab2 = app.session(&key, "acme", "ann").await;

    let removed = app
        .delete("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await;
    assert_eq!(removed.status, 204);
    for tab in [&tab1, &tab2] {
        let answer = app.browser(tab, "heartbeat").await;
        assert_eq!(
            answer.expect_error(410, "session_ended")["reason"],
            "evicted"
        );
    }
    app.login(&key, "acme", "ann")
        .await
        .expect_error(403, "user_not_licensed");
    let bob = app
        .put("/v1/tenants/acme/users/bob")
        .auth(&key)
        .send()
        .await;
    assert_eq!(bob.expect(200)["assigned"], true);
    app.session(&key, "acme", "bob").await;

    app.delete("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await
        .expect_error(404, "user_not_found");
}

#[actix_web::test]
async fn concurrent_users_are_registered_on_first_login_or_by_put() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let put = app
        .put("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await;
    assert_eq!(
        put.expect(200),
        &json!({"user": "ann", "assigned": false, "sessions": 0})
    );
    app.session(&key, "acme", "bob").await;
    let list = app.get("/v1/tenants/acme/users").auth(&key).send().await;
    assert_eq!(
        list.expect(200),
        &json!({"users": [
            {"user": "ann", "assigned": false, "sessions": 0},
            {"user": "bob", "assigned": false, "sessions": 1},
        ]})
    );
}

#[actix_web::test]
async fn the_account_limit_refuses_new_users_only() {
    let app = spawn_app();
    let key = app
        .create_tenant("acme", json!({"model": "records", "max_users": 2}))
        .await;
    app.session(&key, "acme", "ann").await;
    app.session(&key, "acme", "bob").await;

    let refused = app.login(&key, "acme", "cat").await;
    assert_eq!(
        refused.expect_error(403, "user_limit_reached")["max_users"],
        2
    );
    let put = app
        .put("/v1/tenants/acme/users/cat")
        .auth(&key)
        .send()
        .await;
    put.expect_error(403, "user_limit_reached");

    // Known users still log in, in more tabs, with no seat limit.
    app.session(&key, "acme", "ann").await;
    app.session(&key, "acme", "bob").await;
    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (view["users"].as_u64(), view["sessions"].as_u64()),
        (Some(2), Some(4))
    );

    // Removing an account makes room.
    app.delete("/v1/tenants/acme/users/bob")
        .auth(&key)
        .send()
        .await
        .expect(204);
    app.session(&key, "acme", "cat").await;
}
