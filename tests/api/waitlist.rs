//! The waitlist of SPEC §10 over HTTP: the 202 answer, the ticket routes and their
//! errors, the queue list, and 2,000 simultaneous logins onto 100 seats. Each rule is
//! a test on the embedded backend and one on Redis.

use awc::http::Method;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{client, TestApp};

fn queueing(seats: u32) -> Value {
    json!({"model": "concurrent", "seats": seats, "on_limit": "queue",
           "queue_claim_secs": 60, "idle_timeout_secs": 600, "max_users": 5000})
}

async fn a_login_at_the_limit_is_answered_202_with_a_ticket_that_claims_a_freed_seat(app: TestApp) {
    let key = app.create_tenant("acme", queueing(1)).await;
    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (view["on_limit"].as_str(), view["queue_claim_secs"].as_u64()),
        (Some("queue"), None)
    );
    let held = app.session(&key, "acme", "ann").await;

    let answer = app.login(&key, "acme", "bob").await;
    let body = answer.expect(202).clone();
    assert_eq!(body["position"], 1);
    assert_eq!(
        (body["tenant"].as_str(), body["user"].as_str()),
        (Some("acme"), Some("bob"))
    );
    assert_eq!(body["idle_timeout_secs"], 600);
    assert_eq!(
        body["heartbeat_interval_secs"], 15,
        "four times per claim window"
    );
    assert!(body.get("session").is_none(), "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_owned();

    let beat = app
        .post(&format!("/v1/tickets/{ticket}/heartbeat"))
        .send()
        .await;
    assert_eq!(beat.expect(200)["position"], 1);
    assert!(beat.expect(200).get("ready").is_none());
    let early = app
        .post(&format!("/v1/tickets/{ticket}/claim"))
        .send()
        .await;
    assert_eq!(early.expect_error(409, "not_ready")["position"], 1);

    let line = app.get("/v1/tenants/acme/queue").auth(&key).send().await;
    let entries = line.expect(200)["queue"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0]["user"].as_str(), entries[0]["position"].as_u64()),
        (Some("bob"), Some(1))
    );
    assert!(
        !line.text.contains(&ticket),
        "the list never shows a ticket"
    );
    app.get("/v1/tenants/acme/queue?limit=0")
        .auth(&key)
        .send()
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(app.tenant(&key, "acme").await["queued"], 1);

    app.browser(&held, "release").await.expect(204);
    let ready = app
        .post(&format!("/v1/tickets/{ticket}/heartbeat"))
        .send()
        .await;
    let ready = ready.expect(200);
    assert_eq!(
        (ready["position"].as_u64(), ready["ready"].as_bool()),
        (Some(0), Some(true))
    );
    assert!(ready["claim_by"].is_string(), "{ready}");

    let claimed = app
        .post(&format!("/v1/tickets/{ticket}/claim"))
        .send()
        .await;
    let login = claimed.expect(201);
    let session = login["session"].as_str().unwrap().to_owned();
    assert_ne!(session, ticket);
    assert_eq!(login["user"], "bob");
    app.browser(&session, "heartbeat").await.expect(200);
    let again = app
        .post(&format!("/v1/tickets/{ticket}/claim"))
        .send()
        .await;
    assert_eq!(again.expect_error(410, "ticket_ended")["reason"], "claimed");
}

async fn tickets_that_leave_or_are_unknown_answer_with_stable_codes(app: TestApp) {
    let key = app.create_tenant("acme", queueing(1)).await;
    let held = app.session(&key, "acme", "ann").await;
    let ticket = app.login(&key, "acme", "bob").await.expect(202)["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/tickets/{ticket}"))
        .send()
        .await
        .expect(204);
    let gone = app
        .post(&format!("/v1/tickets/{ticket}/heartbeat"))
        .send()
        .await;
    assert_eq!(
        gone.expect_error(410, "ticket_ended")["reason"],
        "cancelled"
    );
    for bad in ["nonsense", &"A".repeat(32), &held] {
        for (method, path) in [
            (Method::POST, format!("/v1/tickets/{bad}/heartbeat")),
            (Method::POST, format!("/v1/tickets/{bad}/claim")),
            (Method::DELETE, format!("/v1/tickets/{bad}")),
        ] {
            app.call(method, &path)
                .send()
                .await
                .expect_error(404, "ticket_not_found");
        }
    }
    // A ticket is no session token either.
    app.browser(&ticket, "heartbeat")
        .await
        .expect_error(404, "session_not_found");
}

async fn a_page_that_leaves_while_its_claim_is_on_its_way_holds_no_seat(app: TestApp) {
    // The claim and the page's DELETE race each other: whichever the pool takes first,
    // the DELETE is answered 204 and no seat stays held by a session nobody can reach.
    let key = app.create_tenant("acme", queueing(1)).await;
    for round in 0..20 {
        let held = app.session(&key, "acme", &format!("held{round}")).await;
        let ticket = app
            .login(&key, "acme", &format!("bob{round}"))
            .await
            .expect(202)["ticket"]
            .as_str()
            .unwrap()
            .to_owned();
        app.browser(&held, "release").await.expect(204);
        let (claimed, left) = futures::join!(
            app.post(&format!("/v1/tickets/{ticket}/claim")).send(),
            app.delete(&format!("/v1/tickets/{ticket}")).send()
        );
        left.expect(204);
        if claimed.status == 201 {
            let session = claimed.expect(201)["session"].as_str().unwrap().to_owned();
            let beat = app.browser(&session, "heartbeat").await;
            assert_eq!(
                beat.expect_error(410, "session_ended")["reason"],
                "released"
            );
        } else {
            assert_eq!(
                claimed.expect_error(410, "ticket_ended")["reason"],
                "cancelled"
            );
        }
        assert_eq!(
            app.tenant(&key, "acme").await["seats_in_use"],
            0,
            "round {round}"
        );
    }
}

async fn another_tenants_key_cannot_read_the_line(app: TestApp) {
    let key = app.create_tenant("acme", queueing(1)).await;
    let other = app.create_tenant("globex", queueing(1)).await;
    app.get("/v1/tenants/acme/queue")
        .auth(&other)
        .send()
        .await
        .expect_error(403, "forbidden");
    app.get("/v1/tenants/acme/queue")
        .auth(&key)
        .send()
        .await
        .expect(200);
    app.admin(Method::GET, "/v1/tenants/nobody/queue")
        .send()
        .await
        .expect_error(404, "tenant_not_found");
}

async fn two_thousand_at_once_onto_a_hundred_seats_queue_exactly_once_each_and_are_served_in_order(
    app: TestApp,
) {
    let key = app.create_tenant("acme", queueing(100)).await;
    let client = client();
    let requests = (0..2000).map(|i| {
        let request = client
            .post(app.at("/v1/tenants/acme/sessions"))
            .bearer_auth(&key)
            .send_json(&json!({"user": format!("u{i}")}));
        async move {
            let mut response = request.await.expect("the server answers");
            let status = response.status().as_u16();
            let body: Value = response.json().limit(1 << 16).await.expect("a JSON body");
            (status, body)
        }
    });
    let answers = join_all(requests).await;
    let admitted: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    let mut queued: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        (admitted.len(), queued.len()),
        (100, 1900),
        "every login admitted or queued"
    );
    queued.sort_by_key(|b| b["position"].as_u64());
    let positions: Vec<u64> = queued
        .iter()
        .map(|b| b["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=1900).collect::<Vec<u64>>());

    // Seats released one by one go to the line strictly in order.
    for (n, session) in admitted.iter().take(10).enumerate() {
        let session = session["session"].as_str().unwrap();
        app.browser(session, "release").await.expect(204);
        let head = queued[n]["ticket"].as_str().unwrap();
        let next = queued[n + 1]["ticket"].as_str().unwrap();
        let beat = app
            .post(&format!("/v1/tickets/{next}/heartbeat"))
            .send()
            .await;
        assert_eq!(beat.expect(200)["position"], 1);
        let login = app.post(&format!("/v1/tickets/{head}/claim")).send().await;
        assert_eq!(login.expect(201)["user"], queued[n]["user"]);
    }
    let view = app.tenant(&key, "acme").await;
    assert_eq!(
        (view["seats_in_use"].as_u64(), view["queued"].as_u64()),
        (Some(100), Some(1890))
    );
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
    a_login_at_the_limit_is_answered_202_with_a_ticket_that_claims_a_freed_seat,
    tickets_that_leave_or_are_unknown_answer_with_stable_codes,
    a_page_that_leaves_while_its_claim_is_on_its_way_holds_no_seat,
    another_tenants_key_cannot_read_the_line,
    two_thousand_at_once_onto_a_hundred_seats_queue_exactly_once_each_and_are_served_in_order,
);
