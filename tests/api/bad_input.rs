//! Bad input gets a clear 4xx with a stable code, and the server keeps working.

use awc::http::Method;
use serde_json::json;

use crate::helpers::{spawn_app, Answer, TestApp};

/// Asserts a 400 `invalid_request` whose message mentions each of `hints`, then that
/// the server still works and the tenant is as it was.
async fn rejected(app: &TestApp, key: &str, answer: Answer, hints: &[&str]) {
    answer.expect_error(400, "invalid_request");
    for hint in hints {
        assert!(
            answer.message().contains(hint),
            "the message should mention {hint:?}: {answer:?}"
        );
    }
    still_works(app, key).await;
}

async fn still_works(app: &TestApp, key: &str) {
    app.assert_healthy().await;
    let view = app.tenant(key, "acme").await;
    assert_eq!(view["seats"], 2);
    assert_eq!(view["users"], 1);
    assert_eq!(view["sessions"], 1);
}

async fn setup() -> (TestApp, String) {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    app.session(&key, "acme", "ann").await;
    (app, key)
}

#[actix_web::test]
async fn malformed_json_says_what_is_wrong_and_where() {
    let (app, key) = setup().await;
    let login = || app.post("/v1/tenants/acme/sessions").auth(&key);
    for (body, hints) in [
        (r#"{"user": "bob","#, &["invalid JSON", "line 1 column"][..]),
        (
            r#"{"user": "bob",}"#,
            &["trailing comma", "line 1 column 16"],
        ),
        ("{\"user\":\n \"bob\" \"x\"}", &["line 2 column"]),
        (
            r#"{"user": "bob"} extra"#,
            &["trailing characters", "line 1 column"],
        ),
        (r#"["bob"]"#, &["line 1 column"]),
        ("not json", &["line 1 column"]),
        ("", &["JSON body is required"]),
    ] {
        let answer = login().raw("application/json", body).await;
        rejected(&app, &key, answer, hints).await;
    }
}

#[actix_web::test]
async fn missing_unknown_and_mistyped_fields_are_named() {
    let (app, key) = setup().await;
    let login = |body| app.post("/v1/tenants/acme/sessions").auth(&key).json(body);
    rejected(
        &app,
        &key,
        login(json!({})).await,
        &["missing field `user`"],
    )
    .await;
    rejected(&app, &key, login(json!({"client": "tab"})).await, &["user"]).await;
    rejected(
        &app,
        &key,
        login(json!({"user": "bob", "colour": "red"})).await,
        &["unknown field `colour`"],
    )
    .await;
    rejected(
        &app,
        &key,
        login(json!({"user": 42})).await,
        &["invalid type"],
    )
    .await;
    rejected(
        &app,
        &key,
        login(json!({"user": null})).await,
        &["invalid type"],
    )
    .await;
    rejected(
        &app,
        &key,
        login(json!({"user": "bob", "client": 3})).await,
        &["invalid type"],
    )
    .await;
    rejected(
        &app,
        &key,
        login(json!({"user": "bob", "client": "x".repeat(257)})).await,
        &["client", "256"],
    )
    .await;
    for label in ["a\u{0}b", "tab\nforged row", "\u{1b}[31mred"] {
        rejected(
            &app,
            &key,
            login(json!({"user": "bob", "client": label})).await,
            &["client", "control"],
        )
        .await;
    }

    let records = |body| app.put("/v1/tenants/acme/records").auth(&key).json(body);
    rejected(
        &app,
        &key,
        records(json!({})).await,
        &["missing field `count`"],
    )
    .await;
    rejected(&app, &key, records(json!({"count": -1})).await, &["-1"]).await;
    rejected(
        &app,
        &key,
        records(json!({"count": "many"})).await,
        &["invalid type"],
    )
    .await;
    rejected(
        &app,
        &key,
        records(json!({"count": 1, "x": 1})).await,
        &["unknown field `x`"],
    )
    .await;
}

#[actix_web::test]
async fn wrong_content_types_are_refused_with_a_hint() {
    let (app, key) = setup().await;
    let body = r#"{"user": "bob"}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let answer = app
            .post("/v1/tenants/acme/sessions")
            .auth(&key)
            .raw(content_type, body)
            .await;
        rejected(&app, &key, answer, &["Content-Type: application/json"]).await;
    }
    // No content type at all.
    let answer = app
        .post("/v1/tenants/acme/sessions")
        .auth(&key)
        .bare(body)
        .await;
    rejected(&app, &key, answer, &["Content-Type: application/json"]).await;
    // A body that is not in the encoding it names is said so, plainly.
    let answer = app
        .post("/v1/tenants/acme/sessions")
        .auth(&key)
        .header("content-encoding", "gzip")
        .raw("application/json", body)
        .await;
    assert!(!answer.message().contains("Custom"), "{answer:?}");
    rejected(&app, &key, answer, &["Content-Encoding"]).await;
    // A charset is fine.
    let answer = app
        .post("/v1/tenants/acme/sessions")
        .auth(&key)
        .raw("application/json; charset=utf-8", body)
        .await;
    assert_eq!(answer.expect(201)["user"], "bob");
}

#[actix_web::test]
async fn a_body_that_stops_arriving_is_given_up_and_its_request_refused() {
    use std::io::{Read, Write};
    let (app, key) = setup().await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let request = format!(
        "POST /v1/tenants/acme/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user\": "
    );
    let answer = actix_web::rt::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(&address).unwrap();
        // Far longer than the server waits; the answer comes first.
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        let mut answer = vec![0; 4096];
        let n = socket.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("nothing of it came"), "{answer}");
    still_works(&app, &key).await;
}

#[actix_web::test]
async fn a_key_given_twice_is_refused_not_silently_the_last() {
    let (app, key) = setup().await;
    for (method, body, hint) in [
        (
            Method::PATCH,
            r#"{"seats": 1, "seats": 5}"#,
            "duplicate field `seats`",
        ),
        (
            Method::PATCH,
            r#"{"group_max": {"sales": 1, "sales": 2}}"#,
            "duplicate field `sales`",
        ),
        (
            Method::PUT,
            r#"{"model": "concurrent", "seats": 2, "seats": 5}"#,
            "duplicate field `seats`",
        ),
        (
            Method::PUT,
            r#"{"model": "concurrent", "seats": 2, "reserve": {"sales": 1, "sales": 2}}"#,
            "duplicate group `sales`",
        ),
    ] {
        let answer = app
            .admin(method.clone(), "/v1/tenants/acme")
            .raw("application/json", body)
            .await;
        rejected(&app, &key, answer, &[hint]).await;
    }
    // A PATCH body must be an object.
    let answer = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .raw("application/json", "[1, 2]")
        .await;
    rejected(&app, &key, answer, &["object"]).await;
}

#[actix_web::test]
async fn bad_ids_are_refused_and_128_characters_are_fine() {
    let (app, key) = setup().await;
    let long = "x".repeat(129);
    for tenant in ["bad%20id", "b%C3%A9", "semi;colon", "a%2Fb", long.as_str()] {
        let answer = app
            .admin(Method::PUT, &format!("/v1/tenants/{tenant}"))
            .json(json!({"model": "concurrent", "seats": 1}))
            .await;
        rejected(&app, &key, answer, &["tenant id"]).await;
        let answer = app
            .admin(Method::GET, &format!("/v1/tenants/{tenant}/users"))
            .send()
            .await;
        rejected(&app, &key, answer, &["tenant id"]).await;
    }
    let answer = app
        .admin(Method::PUT, &format!("/v1/tenants/{long}"))
        .json(json!({"model": "concurrent", "seats": 1}))
        .await;
    rejected(&app, &key, answer, &["128", "129"]).await;
    let ok = "x".repeat(128);
    app.admin(Method::PUT, &format!("/v1/tenants/{ok}"))
        .json(json!({"model": "concurrent", "seats": 1}))
        .await
        .expect(201);

    for user in ["bad%20id", "b%C3%A9", "a%2Fb", "%00", long.as_str()] {
        for method in [Method::PUT, Method::DELETE] {
            let answer = app
                .call(method, &format!("/v1/tenants/acme/users/{user}"))
                .auth(&key)
                .send()
                .await;
            rejected(&app, &key, answer, &["user id"]).await;
        }
    }
    for user in ["ann smith", "", "tab\t", "é", "<script>", long.as_str()] {
        let answer = app
            .post("/v1/tenants/acme/sessions")
            .auth(&key)
            .json(json!({"user": user}))
            .await;
        rejected(&app, &key, answer, &["user id"]).await;
    }
    for id in ["nothex", "0123", "0123456789abcdefg", "-123456789abcdef"] {
        let answer = app
            .delete(&format!("/v1/tenants/acme/sessions/{id}"))
            .auth(&key)
            .send()
            .await;
        rejected(&app, &key, answer, &["session id", "16 hexadecimal"]).await;
    }
}

#[actix_web::test]
async fn ids_of_dots_only_are_refused() {
    let (app, key) = setup().await;
    for id in ["...", "%2E%2E", "%2e", "%2e%2E%2e"] {
        let answer = app
            .admin(Method::PUT, &format!("/v1/tenants/{id}"))
            .json(json!({"model": "concurrent", "seats": 1}))
            .await;
        rejected(&app, &key, answer, &["tenant id", "dots"]).await;
        for method in [Method::PUT, Method::DELETE] {
            let answer = app
                .call(method, &format!("/v1/tenants/acme/users/{id}"))
                .auth(&key)
                .send()
                .await;
            rejected(&app, &key, answer, &["user id", "dots"]).await;
        }
    }
    for user in [".", "..", "..."] {
        let answer = app
            .post("/v1/tenants/acme/sessions")
            .auth(&key)
            .json(json!({"user": user}))
            .await;
        rejected(&app, &key, answer, &["user id", "dots"]).await;
    }
}

#[actix_web::test]
async fn bad_licences_are_refused_with_the_field_named() {
    let (app, key) = setup().await;
    for (licence, hints) in [
        (
            json!({"model": "concurrent", "seats": -1}),
            &["\"seats\"", "-1"][..],
        ),
        (
            json!({"model": "concurrent", "seats": 1_000_001}),
            &["\"seats\""],
        ),
        (json!({"model": "named", "seats": -5}), &["\"seats\""]),
        (json!({"model": "concurrent"}), &["\"seats\""]),
        (
            json!({"model": "floating", "seats": 3}),
            &["\"model\"", "floating"],
        ),
        (json!({"seats": 3}), &["missing field `model`"]),
        (
            json!({"model": "concurrent", "seats": "3"}),
            &["seats: invalid type"],
        ),
        (
            json!({"model": "concurrent", "seats": 2.5}),
            &["seats: invalid type"],
        ),
        (
            json!({"model": "concurrent", "seats": 2, "group_max": {"sales": 1.5}}),
            &["group_max.sales: invalid type"],
        ),
        (
            json!({"model": "concurrent", "seats": 2, "seat_per": "tab"}),
            &["\"seat_per\""],
        ),
        (
            json!({"model": "named", "seats": 2, "seat_per": "user"}),
            &["\"seat_per\""],
        ),
        (json!({"model": "records", "seats": 2}), &["seats"]),
        (
            json!({"model": "concurrent", "seats": 2, "idle_timeout_secs": 0}),
            &["\"idle_timeout_secs\""],
        ),
        (
            json!({"model": "concurrent", "seats": 2, "idle_timeout_secs": -60}),
            &["\"idle_timeout_secs\""],
        ),
        (
            json!({"model": "concurrent", "seats": 2, "max_users": 0}),
            &["\"max_users\""],
        ),
        (
            json!({"model": "concurrent", "seats": 2, "colour": "red"}),
            &["unknown field `colour`"],
        ),
    ] {
        // On an existing tenant (its licence must not change) and a new one.
        for tenant in ["acme", "newco"] {
            let answer = app
                .admin(Method::PUT, &format!("/v1/tenants/{tenant}"))
                .json(licence.clone())
                .await;
            rejected(&app, &key, answer, hints).await;
        }
    }
    app.admin(Method::GET, "/v1/tenants/newco")
        .send()
        .await
        .expect_error(404, "tenant_not_found");
}

#[actix_web::test]
async fn a_bad_usage_query_is_refused() {
    let (app, key) = setup().await;
    for query in [
        "days=0", "days=401", "days=-1", "days=abc", "days=", "weeks=2",
    ] {
        let answer = app
            .get(&format!("/v1/tenants/acme/usage?{query}"))
            .auth(&key)
            .send()
            .await;
        rejected(&app, &key, answer, &["days"]).await;
    }
    let answer = app
        .get("/v1/tenants/acme/usage?days=400")
        .auth(&key)
        .send()
        .await;
    assert_eq!(answer.expect(200)["days"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_body_over_64_kib_is_payload_too_large() {
    let (app, key) = setup().await;
    let big = format!(
        r#"{{"user": "bob", "client": "{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let checks = [
        app.post("/v1/tenants/acme/sessions")
            .auth(&key)
            .raw("application/json", big.clone())
            .await,
        app.put("/v1/tenants/acme/records")
            .auth(&key)
            .raw("application/json", big.clone())
            .await,
        app.admin(Method::PUT, "/v1/tenants/acme")
            .raw("application/json", big.clone())
            .await,
        // Without a Content-Length, the body is cut off at the limit.
        app.post("/v1/tenants/acme/sessions")
            .auth(&key)
            .chunked("application/json", big.clone().into_bytes())
            .await,
        // No credential: refused all the same, before anything is read.
        app.post("/v1/tenants/acme/sessions")
            .raw("application/json", big.clone())
            .await,
        app.post("/v1/sessions/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/release")
            .raw("text/plain", big.clone())
            .await,
        app.put("/v1/tenants/acme/users/ann")
            .auth(&key)
            .raw("application/json", big.clone())
            .await,
        app.put("/v1/tenants/acme/users/ann")
            .auth(&key)
            .chunked("application/json", big.clone().into_bytes())
            .await,
    ];
    for answer in checks {
        let body = answer.expect_error(413, "payload_too_large");
        assert_eq!(body["limit_bytes"], 64 * 1024);
        still_works(&app, &key).await;
    }
    // Just under the limit is read (and refused for what it says, not its size).
    let under = format!(
        r#"{{"user": "bob", "client": "{}"}}"#,
        "x".repeat(60 * 1024)
    );
    let answer = app
        .post("/v1/tenants/acme/sessions")
        .auth(&key)
        .raw("application/json", under)
        .await;
    rejected(&app, &key, answer, &["client"]).await;
}

#[actix_web::test]
async fn a_huge_or_odd_token_in_a_browser_path_is_session_not_found() {
    let (app, key) = setup().await;
    let huge = "A".repeat(5 * 1024);
    let odd = [
        huge.as_str(),
        "short",
        "********************************",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "%00AAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ];
    for token in odd {
        for action in ["heartbeat", "release", "logout"] {
            let answer = app.browser(token, action).await;
            answer.expect_error(404, "session_not_found");
            assert!(!answer.text.contains(token), "the token is not echoed");
            still_works(&app, &key).await;
        }
    }
}

#[actix_web::test]
async fn a_users_groups_are_checked_and_nothing_changes_on_a_bad_body() {
    let (app, key) = setup().await;
    let put = |body: &'static str| {
        app.put("/v1/tenants/acme/users/ann")
            .auth(&key)
            .raw("application/json", body)
    };
    let too_many = Box::leak(
        json!({"groups": (0..33).map(|i| format!("g{i}")).collect::<Vec<_>>()})
            .to_string()
            .into_boxed_str(),
    );
    for (body, hints) in [
        (
            r#"{"groups": ["finance", "not ok"]}"#,
            &["group id", "' '"][..],
        ),
        (r#"{"groups": [""]}"#, &["group id must be 1 to 128"][..]),
        (
            r#"{"groups": "finance"}"#,
            &["invalid type", "sequence"][..],
        ),
        (
            r#"{"group": ["finance"]}"#,
            &["unknown field `group`", "groups"][..],
        ),
        (
            r#"{"groups": ["finance"]"#,
            &["invalid JSON body", "EOF"][..],
        ),
        (&*too_many, &["at most 32 groups, got 33"][..]),
    ] {
        rejected(&app, &key, put(body).await, hints).await;
        let users = app.get("/v1/tenants/acme/users").auth(&key).send().await;
        assert_eq!(users.expect(200)["users"][0]["groups"], json!([]), "{body}");
    }
    // No body, an empty one, `null` or `{}` register as before and keep the groups.
    let set = put(r#"{"groups": ["sales", "finance", "sales"]}"#).await;
    assert_eq!(set.expect(200)["groups"], json!(["finance", "sales"]));
    for body in ["", "  ", "null", "{}", r#"{"groups": null}"#] {
        let kept = put(body).await;
        assert_eq!(
            kept.expect(200)["groups"],
            json!(["finance", "sales"]),
            "{body:?}"
        );
    }
    let cleared = put(r#"{"groups": []}"#).await;
    assert_eq!(cleared.expect(200)["groups"], json!([]));
}
