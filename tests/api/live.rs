//! The live channel of SPEC §11 over real sockets: a tab's WebSocket hears its
//! session's end at once, whatever ended it, and keeps it alive with frames; the audit
//! log streams as Server-Sent Events that resume with `Last-Event-ID`.

use std::time::Duration;

use awc::http::{Method, StatusCode};
use awc::ws::{Frame, Message};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::{TestApp, APP_ORIGIN};
use crate::live_support::{self, assert_ended, heartbeat, next_frame, Socket, Sse, Stream, PUSH};

/// Opens a tab's socket, as a page of the allowed origin does.
async fn open(app: &TestApp, token: &str) -> Socket {
    match connect(app, token, APP_ORIGIN).await {
        Ok(socket) => socket,
        Err(status) => panic!("the socket was refused with {status}"),
    }
}

/// Opens a tab's socket from `origin`, or says what the upgrade answered instead.
async fn connect(app: &TestApp, token: &str, origin: &str) -> Result<Socket, StatusCode> {
    live_support::connect(&app.url, token, origin).await
}

async fn stream(app: &TestApp, path: &str, token: &str, last: Option<&str>) -> Stream {
    live_support::stream(&app.at(path), token, last).await
}

/// The id of the only live session of `tenant`.
async fn only_session_id(app: &TestApp, key: &str, tenant: &str) -> String {
    let list = app
        .get(&format!("/v1/tenants/{tenant}/sessions"))
        .auth(key)
        .send()
        .await;
    let sessions = list.expect(200)["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    sessions[0]["id"].as_str().unwrap().to_owned()
}

async fn a_socket_answers_heartbeat_frames_and_keeps_its_session_alive(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 60).await;
    let login = app.login(&key, "acme", "ann").await;
    let login = login.expect(201).clone();
    let token = login["session"].as_str().unwrap();
    let mut socket = open(&app, token).await;
    // The upgrade is a heartbeat, and its answer the first frame.
    let deadline = |app: &TestApp| (app.now() + Duration::from_secs(60)).to_rfc3339();
    assert_eq!(
        next_frame(&mut socket).await,
        json!({"type": "heartbeat", "expires_at": deadline(&app), "idle_timeout_secs": 60,
            "fence": login["fence"]})
    );
    for _ in 0..3 {
        app.advance(50);
        let beat = heartbeat(&mut socket).await;
        assert_eq!(beat["type"], "heartbeat");
        assert_eq!(beat["expires_at"], deadline(&app));
    }
    // 150 s after the login, kept alive by frames alone: the seat is still taken.
    app.login(&key, "acme", "bob")
        .await
        .expect_error(409, "licence_limit_reached");
    app.browser(token, "heartbeat").await.expect(200);
}

async fn a_revoke_reaches_the_tabs_socket_at_once(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let token = app.session(&key, "acme", "ann").await;
    let mut socket = open(&app, &token).await;
    next_frame(&mut socket).await;
    let id = only_session_id(&app, &key, "acme").await;
    app.delete(&format!("/v1/tenants/acme/sessions/{id}"))
        .auth(&key)
        .send()
        .await
        .expect(204);
    assert_ended(&mut socket, "revoked").await;
}

async fn a_logout_in_another_tab_reaches_every_tab_of_the_user(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let first = app.session(&key, "acme", "ann").await;
    let second = app.session(&key, "acme", "ann").await;
    let mut socket = open(&app, &first).await;
    next_frame(&mut socket).await;
    app.browser(&second, "logout").await.expect(204);
    assert_ended(&mut socket, "logged_out").await;
}

async fn a_release_of_the_tab_itself_is_heard_on_its_socket(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let token = app.session(&key, "acme", "ann").await;
    let mut socket = open(&app, &token).await;
    next_frame(&mut socket).await;
    app.browser(&token, "release").await.expect(204);
    assert_ended(&mut socket, "released").await;
}

async fn an_expiry_reaches_the_socket_of_a_tab_that_stopped_beating(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 60).await;
    let token = app.session(&key, "acme", "ann").await;
    let mut socket = open(&app, &token).await;
    next_frame(&mut socket).await;
    // No frame: the next expiry tick ends the session and the socket hears it.
    app.advance(61);
    assert_ended(&mut socket, "expired").await;
}

async fn deleting_the_tenant_reaches_every_socket(app: TestApp) {
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let mut sockets = Vec::new();
    for user in ["ann", "bob"] {
        let token = app.session(&key, "acme", user).await;
        let mut socket = open(&app, &token).await;
        next_frame(&mut socket).await;
        sockets.push(socket);
    }
    app.admin(Method::DELETE, "/v1/tenants/acme")
        .send()
        .await
        .expect(204);
    for socket in &mut sockets {
        assert_ended(socket, "evicted").await;
    }
}

async fn an_ended_or_unknown_session_is_refused_before_the_upgrade(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let token = app.session(&key, "acme", "ann").await;
    app.browser(&token, "release").await.expect(204);
    assert_eq!(
        connect(&app, &token, APP_ORIGIN).await.err(),
        Some(StatusCode::GONE)
    );
    let unknown = "A".repeat(32);
    assert_eq!(
        connect(&app, &unknown, APP_ORIGIN).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        connect(&app, "not-a-token", APP_ORIGIN).await.err(),
        Some(StatusCode::NOT_FOUND)
    );
    // A plain GET, not an upgrade, is a clear 400.
    let answer = app.get(&format!(
        "/v1/sessions/{}/live",
        app.session(&key, "acme", "bob").await
    ));
    answer.send().await.expect_error(400, "invalid_request");
}

async fn a_page_of_another_origin_may_not_open_a_tabs_socket(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let token = app.session(&key, "acme", "ann").await;
    assert_eq!(
        connect(&app, &token, "https://evil.example.com")
            .await
            .err(),
        Some(StatusCode::FORBIDDEN)
    );
    // The server's own pages (the dashboard, the demo) may.
    let own = app.url.clone();
    let mut socket = connect(&app, &token, &own).await.expect("same origin");
    assert_eq!(next_frame(&mut socket).await["type"], "heartbeat");
}

async fn bad_frames_get_error_frames_and_the_socket_stays_usable(app: TestApp) {
    let key = app.concurrent_tenant("acme", 1, 600).await;
    let token = app.session(&key, "acme", "ann").await;
    let mut socket = open(&app, &token).await;
    next_frame(&mut socket).await;
    for bad in [
        Message::Text("not json".into()),
        Message::Text(r#"{"type": "release"}"#.into()),
        Message::Binary(vec![1, 2, 3].into()),
    ] {
        socket.send(bad).await.unwrap();
        let answer = next_frame(&mut socket).await;
        assert_eq!(answer["type"], "error");
        assert_eq!(answer["error"], "invalid_request");
    }
    assert_eq!(heartbeat(&mut socket).await["type"], "heartbeat");
    // A frame over the limit closes the socket; the session itself is untouched.
    socket
        .send(Message::Text("x".repeat(64 * 1024).into()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(PUSH, async {
        loop {
            match socket.next().await {
                Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an oversized frame closes the socket");
    app.browser(&token, "heartbeat").await.expect(200);
}

/// The users of a run of `admitted` events.
fn users(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.data["type"], "admitted", "{e:?}");
            e.data["user"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn a_reconnected_stream_sees_every_event_exactly_once_in_order(app: TestApp) {
    let key = app.concurrent_tenant("acme", 50, 600).await;
    let mut first = stream(&app, "/v1/tenants/acme/events/stream", &key, None).await;
    for user in ["u0", "u1", "u2"] {
        app.session(&key, "acme", user).await;
    }
    let seen = first.take(3).await;
    assert_eq!(users(&seen), ["u0", "u1", "u2"]);
    // Each event carries its id, the same as the audit log's.
    let log = app
        .get("/v1/tenants/acme/events")
        .auth(&key)
        .send()
        .await
        .expect(200)["events"]
        .clone();
    let admitted: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "admitted")
        .collect();
    for (sse, logged) in seen.iter().zip(&admitted) {
        assert_eq!(sse.id.as_deref(), logged["id"].as_str());
        assert_eq!(&sse.data, *logged);
    }
    // The consumer dies; events go on without it.
    let last = seen[2].id.clone().unwrap();
    drop(first);
    for user in ["u3", "u4", "u5", "u6"] {
        app.session(&key, "acme", user).await;
    }
    let mut again = stream(&app, "/v1/tenants/acme/events/stream", &key, Some(&last)).await;
    app.session(&key, "acme", "u7").await;
    let resumed = again.take(5).await;
    assert_eq!(users(&resumed), ["u3", "u4", "u5", "u6", "u7"]);
    let mut ids: Vec<&str> = seen
        .iter()
        .chain(&resumed)
        .map(|e| e.id.as_deref().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 8, "every id once");
}

async fn a_stream_ends_when_its_tenant_is_deleted(app: TestApp) {
    let key = app.concurrent_tenant("acme", 5, 600).await;
    app.session(&key, "acme", "ann").await;
    let mut events = stream(
        &app,
        "/v1/tenants/acme/events/stream",
        &app.admin_token,
        None,
    )
    .await;
    app.admin(Method::DELETE, "/v1/tenants/acme")
        .send()
        .await
        .expect(204);
    // The log goes with the tenant: the stream says so, and ends.
    let last = events.next().await;
    assert_eq!(last.event.as_deref(), Some("end"), "{last:?}");
    assert_eq!(
        last.data,
        json!({"type": "tenant_deleted", "tenant": "acme"})
    );
    let after = tokio::time::timeout(PUSH, events.body.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "the stream ends after its last event"
    );
}

async fn a_stream_refuses_bad_cursors_and_other_tenants_keys(app: TestApp) {
    let key = app.concurrent_tenant("acme", 5, 600).await;
    app.concurrent_tenant("globex", 5, 600).await;
    app.get("/v1/tenants/globex/events/stream")
        .auth(&key)
        .send()
        .await
        .expect_error(403, "forbidden");
    app.get("/v1/tenants/acme/events/stream")
        .send()
        .await
        .expect_error(401, "unauthorized");
    // An id from the future names no event: resumed after it, the stream would hear
    // nothing until then.
    let future = "9999999999999-1";
    for bad in ["nonsense", "1-2-3", "99999999999999999999-0", future] {
        let answer = app
            .get("/v1/tenants/acme/events/stream")
            .auth(&key)
            .header("last-event-id", bad)
            .send()
            .await;
        let body = answer.expect_error(400, "invalid_request");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("Last-Event-ID"), "{bad}: {message}");
    }
    app.get("/v1/events/stream")
        .auth(&app.admin_token)
        .header("last-event-id", &format!("acme/{future}"))
        .send()
        .await
        .expect_error(400, "invalid_request");
    app.get("/v1/events/stream")
        .auth(&key)
        .send()
        .await
        .expect_error(403, "forbidden");
    app.get("/v1/events/stream")
        .auth(&app.admin_token)
        .header("last-event-id", "acme")
        .send()
        .await
        .expect_error(400, "invalid_request");
}

async fn the_admin_stream_carries_every_tenants_events_and_resumes(app: TestApp) {
    let acme = app.concurrent_tenant("acme", 5, 600).await;
    let globex = app.concurrent_tenant("globex", 5, 600).await;
    let mut all = stream(&app, "/v1/events/stream", &app.admin_token, None).await;
    app.session(&acme, "acme", "ann").await;
    app.session(&globex, "globex", "bob").await;
    let seen = all.take(2).await;
    let tenants: Vec<&str> = seen
        .iter()
        .map(|e| e.data["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "globex"]);
    let id = seen[1].id.clone().unwrap();
    assert!(id.starts_with("globex/"), "{id}");
    drop(all);
    app.session(&acme, "acme", "cat").await;
    app.session(&globex, "globex", "dan").await;
    let mut again = stream(&app, "/v1/events/stream", &app.admin_token, Some(&id)).await;
    // globex resumes exactly after its event; acme's events of the last minute come
    // again (at least once), with the same ids.
    let mut by_tenant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    while by_tenant
        .values()
        .flatten()
        .filter(|u| *u == "cat" || *u == "dan")
        .count()
        < 2
    {
        let event = again.next().await;
        if event.data["type"] != "admitted" {
            continue;
        }
        by_tenant
            .entry(event.data["tenant"].as_str().unwrap().to_owned())
            .or_default()
            .push(event.data["user"].as_str().unwrap().to_owned());
        if event.data["user"] == "ann" {
            assert_eq!(event.id, seen[0].id);
        }
    }
    assert_eq!(by_tenant["globex"], ["dan"]);
    assert_eq!(by_tenant["acme"], ["ann", "cat"]);
    // A deleted tenant is said once, by name: its log went with it.
    app.admin(Method::DELETE, "/v1/tenants/globex")
        .send()
        .await
        .expect(204);
    loop {
        let event = again.next().await;
        if event.event.as_deref() == Some("tenant_deleted") {
            assert_eq!(
                event.data,
                json!({"type": "tenant_deleted", "tenant": "globex"})
            );
            break;
        }
    }
    app.session(&acme, "acme", "eve").await;
    let next = again.next().await;
    assert_eq!(
        (next.data["tenant"].as_str(), next.data["user"].as_str()),
        (Some("acme"), Some("eve"))
    );
}

#[actix_web::test]
async fn a_socket_that_answers_no_pings_is_closed_and_one_that_does_stays() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.socket_ping_every = Duration::from_millis(100);
    });
    let key = app.concurrent_tenant("acme", 2, 600).await;
    let silent = app.session(&key, "acme", "ann").await;
    let polite = app.session(&key, "acme", "bob").await;
    let mut silent = open(&app, &silent).await;
    let mut polite = open(&app, &polite).await;
    assert_eq!(next_frame(&mut silent).await["type"], "heartbeat");
    assert_eq!(next_frame(&mut polite).await["type"], "heartbeat");
    // The polite tab answers every ping; the silent one reads them and says nothing.
    let answering = async {
        let mut pongs = 0;
        while pongs < 10 {
            match tokio::time::timeout(PUSH, polite.next()).await {
                Ok(Some(Ok(Frame::Ping(bytes)))) => {
                    polite.send(Message::Pong(bytes)).await.unwrap();
                    pongs += 1;
                }
                other => panic!("the answering tab's socket: {other:?}"),
            }
        }
        polite
    };
    let closed = async {
        loop {
            match tokio::time::timeout(PUSH, silent.next()).await {
                Ok(Some(Ok(Frame::Ping(_)))) => continue,
                Ok(Some(Ok(Frame::Close(reason)))) => return reason,
                other => panic!("expected pings, then a close: {other:?}"),
            }
        }
    };
    let (mut polite, reason) =
        tokio::time::timeout(PUSH, async { futures::join!(answering, closed) })
            .await
            .expect("the silent socket is closed in time");
    let reason = reason.expect("a close reason");
    assert_eq!(reason.description.as_deref(), Some("no answer to pings"));
    // Ten pings on, the answering tab is open and still heartbeats on its socket.
    assert_eq!(heartbeat(&mut polite).await["type"], "heartbeat");
    // A closed socket changes nothing of the session: it heartbeats over HTTP.
    let sessions = app
        .get("/v1/tenants/acme/sessions")
        .auth(&key)
        .send()
        .await
        .expect(200)
        .clone();
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        2,
        "{sessions}"
    );
}

/// Each rule above, as a test on the embedded backend and one on Redis.
/// Opens a waiting tab's socket, as a page of the allowed origin does.
async fn open_ticket(app: &TestApp, ticket: &str) -> Socket {
    match live_support::connect_ticket(&app.url, ticket, APP_ORIGIN).await {
        Ok(socket) => socket,
        Err(status) => panic!("the ticket's socket was refused with {status}"),
    }
}

/// A login that must be queued; its ticket.
async fn queued(app: &TestApp, key: &str, tenant: &str, user: &str) -> String {
    let answer = app.login(key, tenant, user).await;
    answer.expect(202)["ticket"].as_str().unwrap().to_owned()
}

async fn a_waiting_tab_hears_its_place_move_then_ready_then_claimed(app: TestApp) {
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 1, "on_limit": "queue"}),
        )
        .await;
    let held = app.session(&key, "acme", "ann").await;
    let first = queued(&app, &key, "acme", "bob").await;
    let second = queued(&app, &key, "acme", "cy").await;
    let mut socket = open_ticket(&app, &second).await;
    let place = next_frame(&mut socket).await;
    assert_eq!(
        (place["type"].as_str(), place["position"].as_u64()),
        (Some("position"), Some(2))
    );
    // bob leaves: cy is told she is next, without asking.
    app.delete(&format!("/v1/tickets/{first}"))
        .send()
        .await
        .expect(204);
    let moved = next_frame(&mut socket).await;
    assert_eq!(
        (moved["type"].as_str(), moved["position"].as_u64()),
        (Some("position"), Some(1))
    );
    // A heartbeat frame is answered with the place too.
    assert_eq!(heartbeat(&mut socket).await["position"], 1);
    // ann's seat frees: it is held for cy, and her socket says so at once.
    app.browser(&held, "release").await.expect(204);
    let ready = next_frame(&mut socket).await;
    assert_eq!(
        (ready["type"].as_str(), ready["position"].as_u64()),
        (Some("ready"), Some(0))
    );
    assert!(ready["claim_by"].is_string(), "{ready}");
    app.post(&format!("/v1/tickets/{second}/claim"))
        .send()
        .await
        .expect(201);
    assert_ended(&mut socket, "claimed").await;
}

async fn an_ended_or_unknown_ticket_is_refused_before_the_upgrade(app: TestApp) {
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 1, "on_limit": "queue"}),
        )
        .await;
    app.session(&key, "acme", "ann").await;
    let ticket = queued(&app, &key, "acme", "bob").await;
    app.delete(&format!("/v1/tickets/{ticket}"))
        .send()
        .await
        .expect(204);
    for (bad, status) in [
        (ticket.as_str(), 410),
        (&"A".repeat(32), 404),
        ("nonsense", 404),
    ] {
        let refused = live_support::connect_ticket(&app.url, bad, APP_ORIGIN).await;
        assert_eq!(refused.err().map(|s| s.as_u16()), Some(status), "{bad}");
    }
    let other = queued(&app, &key, "acme", "cy").await;
    let foreign = live_support::connect_ticket(&app.url, &other, "https://elsewhere.example").await;
    assert_eq!(foreign.err().map(|s| s.as_u16()), Some(403));
}

async fn a_waiting_tab_hears_its_ticket_expire(app: TestApp) {
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 1, "on_limit": "queue", "idle_timeout_secs": 60}),
        )
        .await;
    app.session(&key, "acme", "ann").await;
    let ticket = queued(&app, &key, "acme", "bob").await;
    let mut socket = open_ticket(&app, &ticket).await;
    next_frame(&mut socket).await;
    app.advance(61);
    assert_ended(&mut socket, "expired").await;
}

macro_rules! on_both_backends {
    ($($rule:ident),* $(,)?) => {
        mod embedded {
            $(
                #[actix_web::test]
                async fn $rule() {
                    super::$rule(crate::helpers::spawn_app()).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[actix_web::test]
                async fn $rule() {
                    super::$rule(crate::helpers::spawn_redis_app_with(|_| {})).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_socket_answers_heartbeat_frames_and_keeps_its_session_alive,
    a_revoke_reaches_the_tabs_socket_at_once,
    a_logout_in_another_tab_reaches_every_tab_of_the_user,
    a_release_of_the_tab_itself_is_heard_on_its_socket,
    an_expiry_reaches_the_socket_of_a_tab_that_stopped_beating,
    deleting_the_tenant_reaches_every_socket,
    an_ended_or_unknown_session_is_refused_before_the_upgrade,
    a_page_of_another_origin_may_not_open_a_tabs_socket,
    bad_frames_get_error_frames_and_the_socket_stays_usable,
    a_reconnected_stream_sees_every_event_exactly_once_in_order,
    a_stream_ends_when_its_tenant_is_deleted,
    a_stream_refuses_bad_cursors_and_other_tenants_keys,
    the_admin_stream_carries_every_tenants_events_and_resumes,
    a_waiting_tab_hears_its_place_move_then_ready_then_claimed,
    an_ended_or_unknown_ticket_is_refused_before_the_upgrade,
    a_waiting_tab_hears_its_ticket_expire,
);
