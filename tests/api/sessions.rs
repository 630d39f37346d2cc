//! Logins, tabs, heartbeats, release, logout, expiry and forced release, end to end.

use std::collections::BTreeSet;
use std::time::Duration;

use awc::http::Method;
use futures::future::join_all;
use serde_json::{json, Value};
use usher::{SessionToken, Timestamp};

use crate::helpers::{spawn_app, TestApp};

#[actix_web::test]
async fn a_login_returns_the_token_and_its_deadlines() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let answer = app.login(&key, "acme", "ann").await;
    let body = answer.expect(201);
    let fields: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "session",
            "user",
            "tenant",
            "expires_at",
            "idle_timeout_secs",
            "heartbeat_interval_secs",
            "fence"
        ])
    );
    let token = body["session"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    assert_eq!(body["user"], "ann");
    assert_eq!(body["tenant"], "acme");
    let deadline = app.now() + Duration::from_secs(600);
    assert_eq!(body["expires_at"], deadline.to_rfc3339());
    assert_eq!(body["idle_timeout_secs"], 600);
    let interval = body["heartbeat_interval_secs"].as_u64().unwrap();
    assert!((1..600).contains(&interval), "{interval}");
    let fence = body["fence"].as_u64().expect("an integer fence");

    let beat = app.browser(token, "heartbeat").await;
    let body = beat.expect(200);
    assert_eq!(
        body,
        &json!({"expires_at": deadline.to_rfc3339(), "idle_timeout_secs": 600, "fence": fence})
    );
}

#[actix_web::test]
async fn a_second_tab_shares_the_users_seat() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab1 = app.session(&key, "acme", "ann").await;
    let tab2 = app.session(&key, "acme", "ann").await;
    assert_ne!(tab1, tab2);

    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (view["seats_in_use"].as_u64(), view["sessions"].as_u64()),
        (Some(1), Some(2))
    );

    let refused = app.login(&key, "acme", "bob").await;
    let body = refused.expect_error(409, "licence_limit_reached");
    assert_eq!(body["seats"], 1);
    assert_eq!(body["seats_in_use"], 1);
    let retry = body["retry_after_secs"].as_u64().expect("retry_after_secs");
    assert!((600..=601).contains(&retry), "{retry}");
}

#[actix_web::test]
async fn seat_per_session_gives_every_tab_its_own_seat() {
    let app = spawn_app();
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 2, "seat_per": "session"}),
        )
        .await;
    app.session(&key, "acme", "ann").await;
    app.session(&key, "acme", "ann").await;
    let body = app
        .login(&key, "acme", "ann")
        .await
        .expect_error(409, "licence_limit_reached")
        .clone();
    assert_eq!(
        (body["seats"].as_u64(), body["seats_in_use"].as_u64()),
        (Some(2), Some(2))
    );
}

#[actix_web::test]
async fn releasing_one_tab_keeps_the_seat_and_releasing_the_last_frees_it() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab1 = app.session(&key, "acme", "ann").await;
    let tab2 = app.session(&key, "acme", "ann").await;

    let released = app.browser(&tab1, "release").await;
    assert_eq!(released.status, 204);
    assert!(released.text.is_empty());
    app.login(&key, "acme", "bob")
        .await
        .expect_error(409, "licence_limit_reached");
    let ended = app.browser(&tab1, "heartbeat").await;
    assert_eq!(
        ended.expect_error(410, "session_ended")["reason"],
        "released"
    );
    app.browser(&tab1, "release")
        .await
        .expect_error(410, "session_ended");
    app.browser(&tab2, "heartbeat").await.expect(200);

    app.browser(&tab2, "release").await.expect(204);
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 0);
    app.session(&key, "acme", "bob").await;
}

#[actix_web::test]
async fn logout_ends_every_tab_of_the_user() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let tabs = [
        app.session(&key, "acme", "ann").await,
        app.session(&key, "acme", "ann").await,
        app.session(&key, "acme", "ann").await,
    ];
    let bob = app.session(&key, "acme", "bob").await;

    app.browser(&tabs[1], "logout").await.expect(204);
    for tab in &tabs {
        let answer = app.browser(tab, "heartbeat").await;
        assert_eq!(
            answer.expect_error(410, "session_ended")["reason"],
            "logged_out"
        );
    }
    app.browser(&tabs[0], "logout")
        .await
        .expect_error(410, "session_ended");
    app.browser(&bob, "heartbeat").await.expect(200);
    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (view["seats_in_use"].as_u64(), view["sessions"].as_u64()),
        (Some(1), Some(1))
    );
}

#[actix_web::test]
async fn an_administrator_logs_a_user_out_of_every_tab() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let tab1 = app.session(&key, "acme", "ann").await;
    let tab2 = app.session(&key, "acme", "ann").await;

    let answer = app
        .post("/v1/tenants/acme/users/ann/logout")
        .auth(&key)
        .send()
        .await;
    assert_eq!(
        answer.expect(200),
        &json!({"user": "ann", "sessions_ended": 2})
    );
    for tab in [&tab1, &tab2] {
        let answer = app.browser(tab, "heartbeat").await;
        assert_eq!(
            answer.expect_error(410, "session_ended")["reason"],
            "logged_out"
        );
    }
    let again = app
        .post("/v1/tenants/acme/users/ann/logout")
        .auth(&key)
        .send()
        .await;
    assert_eq!(again.expect(200)["sessions_ended"], 0);
    app.post("/v1/tenants/acme/users/nobody/logout")
        .auth(&key)
        .send()
        .await
        .expect_error(404, "user_not_found");
}

#[actix_web::test]
async fn an_idle_session_expires_and_frees_its_seat() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 60).await;
    let tab = app.session(&key, "acme", "ann").await;

    app.advance(59);
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 1);
    app.advance(2);
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 0);
    let answer = app.browser(&tab, "heartbeat").await;
    assert_eq!(
        answer.expect_error(410, "session_ended")["reason"],
        "expired"
    );
    app.session(&key, "acme", "bob").await;
}

#[actix_web::test]
async fn admission_is_never_refused_for_a_session_past_its_deadline() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 60).await;
    let ann = app.session(&key, "acme", "ann").await;
    app.advance(61);
    // No tick has run: the login itself expires the idle session first.
    app.session(&key, "acme", "bob").await;
    let answer = app.browser(&ann, "heartbeat").await;
    assert_eq!(
        answer.expect_error(410, "session_ended")["reason"],
        "expired"
    );
}

#[actix_web::test]
async fn a_heartbeating_session_survives_many_idle_timeouts() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 60).await;
    let tab = app.session(&key, "acme", "ann").await;
    for _ in 0..10 {
        app.advance(45);
        let beat = app.browser(&tab, "heartbeat").await;
        let deadline = app.now() + Duration::from_secs(60);
        assert_eq!(beat.expect(200)["expires_at"], deadline.to_rfc3339());
    }
    app.login(&key, "acme", "bob")
        .await
        .expect_error(409, "licence_limit_reached");
    let list = app.get("/v1/tenants/acme/sessions").auth(&key).send().await;
    let session = &list.expect(200)["sessions"][0];
    assert_eq!(session["last_heartbeat_at"], app.now().to_rfc3339());
    assert_ne!(session["started_at"], session["last_heartbeat_at"]);
}

#[actix_web::test]
async fn the_limit_refusal_says_when_a_seat_could_free_itself() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 2, 600).await;
    app.session(&key, "acme", "ann").await;
    app.advance(100);
    app.session(&key, "acme", "bea").await;
    app.advance(50);
    let refused = app.login(&key, "acme", "bob").await;
    let body = refused.expect_error(409, "licence_limit_reached");
    assert_eq!(body["seats"], 2);
    assert_eq!(body["seats_in_use"], 2);
    // ann's deadline is the nearest: 600 - 150 seconds from now.
    let retry = body["retry_after_secs"].as_u64().unwrap();
    assert!((450..=451).contains(&retry), "{retry}");
}

#[actix_web::test]
async fn the_session_list_shows_handles_never_tokens() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 3, 600).await;
    let ann = app.session(&key, "acme", "ann").await;
    app.advance(5);
    let bob = app.session(&key, "acme", "bob").await;

    let answer = app.get("/v1/tenants/acme/sessions").auth(&key).send().await;
    let body = answer.expect(200);
    assert!(!answer.text.contains(&ann) && !answer.text.contains(&bob));
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let fields: BTreeSet<&str> = sessions[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "id",
            "user",
            "client",
            "started_at",
            "last_heartbeat_at",
            "expires_at",
            "fence"
        ])
    );
    assert_eq!(sessions[0]["user"], "ann");
    assert_eq!(sessions[0]["client"], "tab");
    assert_eq!(sessions[1]["user"], "bob");
    assert_eq!(sessions[1]["started_at"], app.now().to_rfc3339());
    let id = sessions[0]["id"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[actix_web::test]
async fn a_forced_release_tells_the_tab_it_was_revoked() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    let list = app.get("/v1/tenants/acme/sessions").auth(&key).send().await;
    let id = list.expect(200)["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!("/v1/tenants/acme/sessions/{id}");
    app.delete(&path).auth(&key).send().await.expect(204);
    let answer = app.browser(&tab, "heartbeat").await;
    assert_eq!(
        answer.expect_error(410, "session_ended")["reason"],
        "revoked"
    );
    let again = app.delete(&path).auth(&key).send().await;
    assert_eq!(
        again.expect_error(410, "session_ended")["reason"],
        "revoked"
    );
    app.session(&key, "acme", "bob").await;

    app.delete("/v1/tenants/acme/sessions/0123456789abcdef")
        .auth(&key)
        .send()
        .await
        .expect_error(404, "session_not_found");
}

#[actix_web::test]
async fn unknown_tokens_are_session_not_found() {
    let app = spawn_app();
    let unknown = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for action in ["heartbeat", "release", "logout"] {
        app.browser(unknown, action)
            .await
            .expect_error(404, "session_not_found");
    }
    // A real session id with a forged secret is no better.
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    let forged = format!("{}{}", &tab[..11], "B".repeat(21));
    assert_ne!(forged, tab);
    for action in ["heartbeat", "release", "logout"] {
        app.browser(&forged, action)
            .await
            .expect_error(404, "session_not_found");
    }
    app.browser(&tab, "heartbeat").await.expect(200);
}

#[actix_web::test]
async fn more_seats_admit_at_once_and_fewer_seats_end_nothing() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let ann = app.session(&key, "acme", "ann").await;
    app.login(&key, "acme", "bob")
        .await
        .expect_error(409, "licence_limit_reached");

    let more = app
        .admin(Method::PUT, "/v1/tenants/acme")
        .json(json!({"model": "concurrent", "seats": 2}))
        .await;
    assert_eq!(more.expect(200)["seats"], 2);
    let bob = app.session(&key, "acme", "bob").await;

    let fewer = app
        .admin(Method::PUT, "/v1/tenants/acme")
        .json(json!({"model": "concurrent", "seats": 1}))
        .await;
    let view = fewer.expect(200);
    assert_eq!(
        (view["seats"].as_u64(), view["seats_in_use"].as_u64()),
        (Some(1), Some(2))
    );
    app.browser(&ann, "heartbeat").await.expect(200);
    app.browser(&bob, "heartbeat").await.expect(200);
    let refused = app.login(&key, "acme", "cat").await;
    let body = refused.expect_error(409, "licence_limit_reached");
    assert_eq!(
        (body["seats"].as_u64(), body["seats_in_use"].as_u64()),
        (Some(1), Some(2))
    );

    // Usage falls: still refused at 1 of 1, admitted only below the limit.
    app.browser(&ann, "release").await.expect(204);
    app.login(&key, "acme", "cat")
        .await
        .expect_error(409, "licence_limit_reached");
    app.browser(&bob, "logout").await.expect(204);
    app.session(&key, "acme", "cat").await;
}

#[actix_web::test]
async fn a_shorter_idle_timeout_applies_from_the_next_heartbeat() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    app.admin(Method::PUT, "/v1/tenants/acme")
        .json(json!({"model": "concurrent", "seats": 1, "idle_timeout_secs": 30}))
        .await
        .expect(200);
    let beat = app.browser(&tab, "heartbeat").await;
    assert_eq!(beat.expect(200)["idle_timeout_secs"], 30);
    app.advance(31);
    let answer = app.browser(&tab, "heartbeat").await;
    assert_eq!(
        answer.expect_error(410, "session_ended")["reason"],
        "expired"
    );
}

#[actix_web::test]
async fn an_ended_session_is_remembered_for_an_hour() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let tab = app.session(&key, "acme", "ann").await;
    app.browser(&tab, "release").await.expect(204);
    app.advance(59 * 60);
    let answer = app.browser(&tab, "heartbeat").await;
    assert_eq!(
        answer.expect_error(410, "session_ended")["reason"],
        "released"
    );
}

#[actix_web::test]
async fn a_tenant_without_seats_refuses_with_no_retry_hint() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 0, 600).await;
    let refused = app.login(&key, "acme", "ann").await;
    let body = refused.expect_error(409, "licence_limit_reached");
    assert_eq!(body["seats"], 0);
    assert_eq!(body["seats_in_use"], 0);
    assert_eq!(body["retry_after_secs"], serde_json::Value::Null);
}

/// `GET …/sessions` with this query, answered 200.
async fn session_page(app: &TestApp, key: &str, query: &str) -> Value {
    app.get(&format!("/v1/tenants/acme/sessions{query}"))
        .auth(key)
        .send()
        .await
        .expect(200)
        .clone()
}

/// A listed session's place in the order: login time, then id.
fn place(session: &Value) -> (Timestamp, String) {
    let started = session["started_at"].as_str().unwrap();
    (
        Timestamp::parse_rfc3339(started).unwrap(),
        session["id"].as_str().unwrap().to_string(),
    )
}

#[actix_web::test]
async fn sessions_are_listed_a_thousand_to_a_page_by_default() {
    let app = spawn_app();
    let key = app.create_tenant("acme", json!({"model": "records"})).await;
    let url = app.at("/v1/tenants/acme/sessions");
    let logins = (0..1_005).map(|i| {
        let request = app
            .client
            .post(&url)
            .bearer_auth(&key)
            .send_json(&json!({"user": format!("user-{}", i % 300)}));
        async move { request.await.expect("the server answers").status().as_u16() }
    });
    for status in join_all(logins).await {
        assert_eq!(status, 201);
    }

    let first = session_page(&app, &key, "").await;
    let sessions = first["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1_000);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let last = session_page(&app, &key, &format!("?cursor={cursor}")).await;
    assert_eq!(last["sessions"].as_array().unwrap().len(), 5);
    assert!(
        last.get("next_cursor").is_none(),
        "the last page has no next_cursor: {last}"
    );
    let all: Vec<_> = sessions
        .iter()
        .chain(last["sessions"].as_array().unwrap())
        .map(place)
        .collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    let whole = session_page(&app, &key, "?limit=1000").await;
    assert_eq!(whole["sessions"].as_array().unwrap().len(), 1_000);
}

#[actix_web::test]
async fn paging_through_sessions_lists_each_once_while_others_come_and_go() {
    let app = spawn_app();
    let key = app.create_tenant("acme", json!({"model": "records"})).await;
    let mut lasting = Vec::new();
    let mut doomed = Vec::new();
    for i in 0..30 {
        // Several logins per second: the id orders those of the same moment.
        if i % 4 == 0 {
            app.advance(1);
        }
        lasting.push(app.session(&key, "acme", &format!("u{}", i % 7)).await);
        doomed.push(app.session(&key, "acme", &format!("d{i}")).await);
    }
    let id_of = |token: &str| SessionToken::parse(token).unwrap().id().to_string();
    let lasting: BTreeSet<String> = lasting.iter().map(|t| id_of(t)).collect();
    let mut doomed = doomed.into_iter();
    let mut joined = BTreeSet::new();

    let mut seen = Vec::new();
    let mut query = "?limit=7".to_string();
    loop {
        let page = session_page(&app, &key, &query).await;
        let sessions = page["sessions"].as_array().unwrap();
        assert!((1..=7).contains(&sessions.len()), "{page}");
        seen.extend(sessions.iter().map(place));
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        query = format!("?limit=7&cursor={cursor}");
        // Between pages: sessions end by release, forced release and logout, and
        // users log in, one of them already listed.
        let ended = doomed.next().unwrap();
        app.browser(&ended, "release").await.expect(204);
        let revoked = doomed.next().unwrap();
        app.delete(&format!("/v1/tenants/acme/sessions/{}", id_of(&revoked)))
            .auth(&key)
            .send()
            .await
            .expect(204);
        app.advance(1);
        joined.insert(id_of(&app.session(&key, "acme", "u0").await));
        joined.insert(id_of(&app.session(&key, "acme", "newcomer").await));
    }

    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    let ids: BTreeSet<String> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert!(lasting.is_subset(&ids), "every lasting session is listed");
    assert!(joined.is_subset(&ids), "later logins are listed too");
}

#[actix_web::test]
async fn a_bad_page_limit_or_cursor_is_invalid_request() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 5, 600).await;
    app.session(&key, "acme", "ann").await;
    for (query, hint) in [
        ("?limit=0", "between 1 and 1000, got 0"),
        ("?limit=1001", "between 1 and 1000, got 1001"),
        ("?limit=-1", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=", "limit"),
        ("?cursor=", "next_cursor"),
        ("?cursor=yesterday", "next_cursor"),
        ("?cursor=1741608000000", "next_cursor"),
        ("?cursor=1741608000000-zz", "next_cursor"),
        ("?page=2", "page"),
        ("?limit=1&limit=2", "limit"),
    ] {
        let answer = app
            .get(&format!("/v1/tenants/acme/sessions{query}"))
            .auth(&key)
            .send()
            .await;
        answer.expect_error(400, "invalid_request");
        assert!(answer.message().contains(hint), "{query}: {answer:?}");
    }
    // The credential is checked first.
    app.get("/v1/tenants/acme/sessions?limit=0")
        .send()
        .await
        .expect_error(401, "unauthorized");
    let one = session_page(&app, &key, "?limit=1").await;
    assert_eq!(one["sessions"].as_array().unwrap().len(), 1);
    assert!(one.get("next_cursor").is_none());
}

#[actix_web::test]
async fn login_heartbeat_and_session_list_show_the_same_fence() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 1, 60).await;
    let mut answered = Vec::new();
    let mut tokens = Vec::new();
    for _tab in 0..2 {
        let login = app.login(&key, "acme", "ann").await;
        let body = login.expect(201);
        answered.push(body["fence"].as_u64().expect("an integer fence"));
        tokens.push(body["session"].as_str().unwrap().to_owned());
        // The list is in login order.
        app.advance(1);
    }
    assert!(answered[0] < answered[1], "{answered:?}");
    for (token, fence) in tokens.iter().zip(&answered) {
        let beat = app.browser(token, "heartbeat").await;
        assert_eq!(beat.expect(200)["fence"].as_u64(), Some(*fence));
    }
    let list = app.get("/v1/tenants/acme/sessions").auth(&key).send().await;
    let listed: Vec<Option<u64>> = list.expect(200)["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["fence"].as_u64())
        .collect();
    assert_eq!(
        listed,
        answered.iter().map(|&f| Some(f)).collect::<Vec<_>>()
    );

    // Ann's tabs go idle and Bob takes the seat with a fence that shuts them out.
    app.advance(61);
    let bob = app.login(&key, "acme", "bob").await;
    let fence = bob.expect(201)["fence"].as_u64().unwrap();
    assert!(
        answered.iter().all(|&old| old < fence),
        "{fence} after {answered:?}"
    );
}

#[actix_web::test]
async fn a_tenant_created_again_answers_fences_above_its_old_ones() {
    let app = spawn_app();
    let key = app.concurrent_tenant("acme", 5, 600).await;
    let old = app.login(&key, "acme", "ann").await.expect(201)["fence"]
        .as_u64()
        .unwrap();
    app.admin(Method::DELETE, "/v1/tenants/acme")
        .send()
        .await
        .expect(204);
    let key = app.concurrent_tenant("acme", 5, 600).await;
    let new = app.login(&key, "acme", "ann").await.expect(201)["fence"]
        .as_u64()
        .unwrap();
    assert!(new > old, "{new} after {old}");
}

#[actix_web::test]
async fn a_claimed_seat_is_not_held_again_for_the_next_in_line() {
    let app = spawn_app();
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 2, "on_limit": "queue"}),
        )
        .await;
    let ann = app.session(&key, "acme", "ann").await;
    app.session(&key, "acme", "bob").await;
    let ticket = |answer: &crate::helpers::Answer| {
        answer.expect(202)["ticket"]
            .as_str()
            .expect("a queued login has a ticket")
            .to_owned()
    };
    let cara = ticket(&app.login(&key, "acme", "cara").await);
    let dan = ticket(&app.login(&key, "acme", "dan").await);

    app.browser(&ann, "release").await.expect(204);
    let ready = app
        .post(&format!("/v1/tickets/{cara}/heartbeat"))
        .send()
        .await;
    assert_eq!(ready.expect(200)["ready"], true);
    app.post(&format!("/v1/tickets/{cara}/claim"))
        .send()
        .await
        .expect(201);

    // Both seats are taken again: dan is still first in line, with nothing held.
    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (
            &view["seats_in_use"],
            &view["queued"],
            &view["held_for_queue"]
        ),
        (&json!(2), &json!(1), &json!(0)),
        "{view}"
    );
    let waiting = app
        .post(&format!("/v1/tickets/{dan}/heartbeat"))
        .send()
        .await;
    assert_eq!(waiting.expect(200)["position"], 1, "{waiting:?}");
    let early = app.post(&format!("/v1/tickets/{dan}/claim")).send().await;
    assert_eq!(early.expect_error(409, "not_ready")["position"], 1);
    assert_eq!(app.tenant(&key, "acme").await["seats_in_use"], 2);
}
