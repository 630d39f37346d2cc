//! Users: named seats assigned and unassigned, registration, the account limit.

use std::collections::BTreeSet;

use awc::http::Method;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

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
            &json!({"user": user, "assigned": true, "sessions": 0, "groups": []})
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
            {"user": "ann", "assigned": true, "sessions": 3, "groups": []},
            {"user": "bob", "assigned": true, "sessions": 3, "groups": []},
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
        &json!({"user": "ann", "assigned": false, "sessions": 0, "groups": []})
    );
    app.session(&key, "acme", "bob").await;
    let list = app.get("/v1/tenants/acme/users").auth(&key).send().await;
    assert_eq!(
        list.expect(200),
        &json!({"users": [
            {"user": "ann", "assigned": false, "sessions": 0, "groups": []},
            {"user": "bob", "assigned": false, "sessions": 1, "groups": []},
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

/// `GET …/users` with this query, answered 200.
async fn user_page(app: &TestApp, key: &str, query: &str) -> Value {
    app.get(&format!("/v1/tenants/acme/users{query}"))
        .auth(key)
        .send()
        .await
        .expect(200)
        .clone()
}

fn names(page: &Value) -> Vec<&str> {
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect()
}

#[actix_web::test]
async fn users_are_listed_a_page_at_a_time_by_user_id() {
    let app = spawn_app();
    let key = app
        .create_tenant("acme", json!({"model": "records", "max_users": 5000}))
        .await;
    let url = app.at("/v1/tenants/acme/users");
    let puts = (0..1_002).map(|i| {
        let request = app
            .client
            .put(format!("{url}/user-{:04}", (i * 7919) % 1_002))
            .bearer_auth(&key)
            .send();
        async move { request.await.expect("the server answers").status().as_u16() }
    });
    for status in join_all(puts).await {
        assert_eq!(status, 200);
    }

    // The default page is a thousand users; the cursor is the last one's id.
    let first = user_page(&app, &key, "").await;
    assert_eq!(names(&first).len(), 1_000);
    assert_eq!(first["next_cursor"], "user-0999");
    let last = user_page(&app, &key, "?cursor=user-0999").await;
    assert_eq!(names(&last), ["user-1000", "user-1001"]);
    assert!(last.get("next_cursor").is_none(), "{last}");

    // Small pages, with users added and removed between them.
    let mut seen = Vec::new();
    let mut removed = BTreeSet::new();
    let mut added_after = BTreeSet::new();
    let mut query = "?limit=150".to_string();
    loop {
        let page = user_page(&app, &key, &query).await;
        seen.extend(names(&page).iter().map(|n| n.to_string()));
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        query = format!("?limit=150&cursor={cursor}");
        // One user that sorts before the cursor (not listed), one far after it
        // (listed), and one not yet listed removed.
        let n = seen.len();
        let gone = format!("user-{:04}", 1_001 - n / 150);
        added_after.insert(format!("zzz-{n}"));
        for (method, user) in [
            (Method::PUT, format!("aaa-{n}")),
            (Method::PUT, format!("zzz-{n}")),
            (Method::DELETE, gone.clone()),
        ] {
            let answer = app
                .call(method, &format!("/v1/tenants/acme/users/{user}"))
                .auth(&key)
                .send()
                .await;
            assert!(answer.status < 300, "{answer:?}");
        }
        removed.insert(gone);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    let seen: BTreeSet<String> = seen.into_iter().collect();
    let lasting: BTreeSet<String> = (0..1_002)
        .map(|i| format!("user-{i:04}"))
        .filter(|u| !removed.contains(u))
        .collect();
    assert!(removed.len() >= 6, "{removed:?}");
    assert!(lasting.is_subset(&seen), "every lasting user is listed");
    assert!(
        seen.is_disjoint(&removed),
        "a user removed before its page is not listed"
    );
    assert!(
        added_after.is_subset(&seen),
        "users after the cursor are listed"
    );
    assert!(seen.iter().all(|u| !u.starts_with("aaa-")));
}

#[actix_web::test]
async fn a_bad_user_page_limit_or_cursor_is_invalid_request() {
    let app = spawn_app();
    let key = app.create_tenant("acme", json!({"model": "records"})).await;
    for user in ["ann", "bob"] {
        app.put(&format!("/v1/tenants/acme/users/{user}"))
            .auth(&key)
            .send()
            .await
            .expect(200);
    }
    for (query, hint) in [
        ("?limit=0", "between 1 and 1000, got 0"),
        ("?limit=100000", "between 1 and 1000, got 100000"),
        ("?limit=many", "limit"),
        ("?cursor=", "next_cursor"),
        ("?cursor=ann%20smith", "next_cursor"),
        ("?cursor=%C3%A9", "next_cursor"),
        ("?after=ann", "after"),
    ] {
        let answer = app
            .get(&format!("/v1/tenants/acme/users{query}"))
            .auth(&key)
            .send()
            .await;
        answer.expect_error(400, "invalid_request");
        assert!(answer.message().contains(hint), "{query}: {answer:?}");
    }
    let first = user_page(&app, &key, "?limit=1").await;
    assert_eq!(
        first,
        json!({"users": [{"user": "ann", "assigned": false, "sessions": 0, "groups": []}], "next_cursor": "ann"})
    );
    // A cursor whose user has gone still marks the place.
    app.delete("/v1/tenants/acme/users/ann")
        .auth(&key)
        .send()
        .await
        .expect(204);
    assert_eq!(names(&user_page(&app, &key, "?cursor=ann").await), ["bob"]);
}
