//! The seat policies of SPEC §9 over HTTP: the licence fields, their errors, the
//! answers they change, and thousands of simultaneous logins under each policy on both
//! backends, where each policy's invariant holds exactly.

use awc::http::Method;
use futures::future::join_all;
use serde_json::{json, Value};
use usher::http::{RunningServer, ServerConfig};
use usher::redis::RedisConfig;

use crate::helpers::{client, spawn_app, ADMIN_TOKEN};
use crate::redis_support;

#[actix_web::test]
async fn a_licence_carries_its_policies_and_shows_them_in_the_view() {
    let app = spawn_app();
    let licence = json!({"model": "concurrent", "seats": 4, "overage": 0.5,
        "on_limit": "displace_idlest", "min_hold_secs": 30, "max_sessions_per_user": 2});
    let created = app
        .admin(Method::PUT, "/v1/tenants/acme")
        .json(licence.clone())
        .await;
    let body = created.expect(201);
    for field in [
        "overage",
        "on_limit",
        "min_hold_secs",
        "max_sessions_per_user",
    ] {
        assert_eq!(body[field], licence[field], "{field}: {body}");
    }
    let key = body["api_key"].as_str().unwrap().to_owned();
    let view = app.tenant(&key, "acme").await;
    assert_eq!(view["overage"], 0.5);
    assert_eq!(view["on_limit"], "displace_idlest");

    // PUT replaces the whole licence: what is left out takes its default, and a
    // default is not shown.
    let plain = app
        .admin(Method::PUT, "/v1/tenants/acme")
        .json(json!({"model": "concurrent", "seats": 4}))
        .await;
    let body = plain.expect(200);
    for field in [
        "overage",
        "on_limit",
        "min_hold_secs",
        "max_sessions_per_user",
    ] {
        assert!(body.get(field).is_none(), "{field}: {body}");
    }
}

#[actix_web::test]
async fn a_policy_out_of_range_or_on_the_wrong_model_is_a_clear_invalid_request() {
    let app = spawn_app();
    for (licence, says) in [
        (
            json!({"model": "concurrent", "seats": 4, "overage": 2}),
            "between 0 and 1",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "on_limit": "oldest"}),
            "\"refuse\", \"queue\" or \"displace_idlest\"",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "on_limit": "queue", "reserve": {"finance": 1}}),
            "do not combine with \"on_limit\": \"queue\"",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "on_limit": "queue", "queue_claim_secs": 0}),
            "\"queue_claim_secs\" must be between 1 and 3600",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "min_hold_secs": 1.5}),
            "whole number",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "max_sessions_per_user": 0}),
            "max_sessions_per_user",
        ),
        (
            json!({"model": "named", "seats": 4, "on_limit": "displace_idlest"}),
            "concurrent model only",
        ),
        (
            json!({"model": "records", "overage": 0.1}),
            "concurrent model only",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "reserve": {"a": 3, "b": 2}}),
            "holds back 5 seats in all, more than the licence's 4",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "reserve": {"a": 2}, "group_max": {"a": 1}}),
            "more than its \"group_max\" of 1",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "group_max": {"a": -1}}),
            "\"group_max\" of a must be between 0 and the licence's 4 seats, got -1",
        ),
        (
            json!({"model": "concurrent", "seats": 4, "reserve": ["a"]}),
            "reserve: invalid type: sequence, expected an object of whole numbers by group",
        ),
        (
            json!({"model": "named", "seats": 4, "group_max": {"a": 1}}),
            "concurrent model only",
        ),
    ] {
        let answer = app
            .admin(Method::PUT, "/v1/tenants/acme")
            .json(licence.clone())
            .await;
        answer.expect_error(400, "invalid_request");
        assert!(
            answer.message().contains(says),
            "{licence}: {}",
            answer.text
        );
    }
    // Nothing was created by any of them.
    app.admin(Method::GET, "/v1/tenants/acme")
        .send()
        .await
        .expect_error(404, "tenant_not_found");
}

#[actix_web::test]
async fn the_policies_change_the_answers_to_logins_and_to_the_displaced_tab() {
    let app = spawn_app();
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 1, "overage": 1.0,
                "on_limit": "displace_idlest", "min_hold_secs": 0, "max_sessions_per_user": 1}),
        )
        .await;
    let first = app.login(&key, "acme", "ann").await;
    assert!(first.expect(201).get("overage").is_none(), "{}", first.text);
    let second = app.login(&key, "acme", "bob").await;
    assert_eq!(second.expect(201)["overage"], true);

    let capped = app.login(&key, "acme", "ann").await;
    let body = capped.expect_error(409, "session_limit_reached");
    assert_eq!(body["max_sessions_per_user"], 1);

    // Full (one seat and one more): carol takes over ann's seat, the idlest.
    let ann = first.body["session"].as_str().unwrap().to_owned();
    app.clock.advance(std::time::Duration::from_secs(1));
    let bob = second.body["session"].as_str().unwrap().to_owned();
    app.browser(&bob, "heartbeat").await.expect(200);
    app.login(&key, "acme", "carol").await.expect(201);
    let gone = app.browser(&ann, "heartbeat").await;
    assert_eq!(
        gone.expect_error(410, "session_ended")["reason"],
        "displaced"
    );
    app.browser(&bob, "heartbeat").await.expect(200);
}

/// Where the storms run: the embedded backend on one node, or three nodes on Redis.
struct Nodes {
    urls: Vec<String>,
    _servers: Vec<RunningServer>,
}

fn embedded_node() -> Nodes {
    let server =
        RunningServer::spawn(ServerConfig::new("127.0.0.1:0", ADMIN_TOKEN)).expect("a node starts");
    Nodes {
        urls: vec![server.url()],
        _servers: vec![server],
    }
}

fn redis_nodes() -> Nodes {
    let prefix = redis_support::unique_prefix();
    let servers: Vec<RunningServer> = (0..3)
        .map(|_| {
            let mut config = ServerConfig::new("127.0.0.1:0", ADMIN_TOKEN);
            config.workers = 1;
            let mut redis = RedisConfig::new(redis_support::shared().url.clone());
            redis.prefix = prefix.clone();
            config.redis = Some(redis);
            RunningServer::spawn(config).expect("a node starts")
        })
        .collect();
    Nodes {
        urls: servers.iter().map(RunningServer::url).collect(),
        _servers: servers,
    }
}

/// Answers as (status, body).
type Answers = Vec<(u16, Value)>;

impl Nodes {
    async fn create(&self, tenant: &str, licence: Value) -> String {
        let mut response = client()
            .put(format!("{}/v1/tenants/{tenant}", self.urls[0]))
            .bearer_auth(ADMIN_TOKEN)
            .send_json(&licence)
            .await
            .expect("the node answers");
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = response.json().await.unwrap();
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// `logins` logins at once, login `i` by `user(i)`, spread over the nodes, one
    /// connection each.
    async fn storm(
        &self,
        key: &str,
        tenant: &str,
        logins: usize,
        user: fn(usize) -> String,
    ) -> Answers {
        let client = client();
        let requests = (0..logins).map(|i| {
            let url = format!(
                "{}/v1/tenants/{tenant}/sessions",
                self.urls[i % self.urls.len()]
            );
            let request = client
                .post(url)
                .bearer_auth(key)
                .send_json(&json!({"user": user(i)}));
            async move {
                let mut response = request.await.expect("the node answers");
                let status = response.status().as_u16();
                let body: Value = response.json().limit(1 << 16).await.expect("a JSON body");
                (status, body)
            }
        });
        join_all(requests).await
    }

    /// Puts each of `users` in `group`, all at once, spread over the nodes.
    async fn join_groups(
        &self,
        key: &str,
        tenant: &str,
        users: impl Iterator<Item = String>,
        group: &str,
    ) {
        let client = client();
        let puts = users.enumerate().map(|(i, user)| {
            let url = format!(
                "{}/v1/tenants/{tenant}/users/{user}",
                self.urls[i % self.urls.len()]
            );
            let request = client
                .put(url)
                .bearer_auth(key)
                .send_json(&json!({"groups": [group]}));
            async move {
                let mut response = request.await.expect("the node answers");
                let body: Value = response.json().await.unwrap();
                assert_eq!(response.status().as_u16(), 200, "{body}");
                assert_eq!(body["groups"], json!([group]));
            }
        });
        join_all(puts).await;
    }

    async fn view(&self, key: &str, tenant: &str) -> Value {
        let url = format!("{}/v1/tenants/{tenant}", self.urls[self.urls.len() - 1]);
        let mut response = client().get(url).bearer_auth(key).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Releases every admitted session at once, on another node than its login's;
    /// the statuses.
    async fn releases(&self, admitted: &Answers) -> Vec<u16> {
        let client = client();
        let releases = admitted.iter().enumerate().map(|(i, (_, body))| {
            let token = body["session"].as_str().unwrap();
            let url = format!(
                "{}/v1/sessions/{token}/release",
                self.urls[(i + 1) % self.urls.len()]
            );
            let request = client.post(url).send();
            async move { request.await.expect("the node answers").status().as_u16() }
        });
        join_all(releases).await
    }

    /// Heartbeats every admitted session; answers as the storm's.
    async fn heartbeats(&self, admitted: &Answers) -> Answers {
        let client = client();
        let beats = admitted.iter().enumerate().map(|(i, (_, body))| {
            let token = body["session"].as_str().unwrap();
            let url = format!(
                "{}/v1/sessions/{token}/heartbeat",
                self.urls[(i + 1) % self.urls.len()]
            );
            let request = client.post(url).send();
            async move {
                let mut response = request.await.expect("the node answers");
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
        });
        join_all(beats).await
    }
}

/// How many answers of each kind: the status, and the error code of a refusal.
fn outcomes(answers: &Answers) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for (status, body) in answers {
        let kind = match body["error"].as_str() {
            Some(code) => format!("{status} {code}"),
            None => status.to_string(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

const LOGINS: usize = 5000;
const SEATS: u32 = 500;

async fn every_policy_holds_its_invariant_under_a_storm(nodes: Nodes) {
    let one_each = |i: usize| format!("user-{i}");

    // Overage: floor(500 × 1.1) = 550 seats, exactly 50 of them flagged.
    let key = nodes
        .create(
            "over",
            json!({"model": "concurrent", "seats": SEATS, "overage": 0.1}),
        )
        .await;
    let answers = nodes.storm(&key, "over", LOGINS, one_each).await;
    assert_eq!(
        outcomes(&answers),
        [
            ("201".to_owned(), 550),
            ("409 licence_limit_reached".to_owned(), LOGINS - 550)
        ]
        .into()
    );
    let flagged = answers.iter().filter(|(_, b)| b["overage"] == true).count();
    assert_eq!(flagged, 50);
    for (status, body) in &answers {
        if *status == 409 {
            assert_eq!(body["error"], "licence_limit_reached");
            assert_eq!(
                (body["seats"].as_u64(), body["seats_in_use"].as_u64()),
                (Some(500), Some(550))
            );
        }
    }
    assert_eq!(nodes.view(&key, "over").await["seats_in_use"], 550);

    // Displacement with the default hold: no seat is old enough, so exactly the seats
    // are admitted and the rest told when a seat may be taken over.
    let key = nodes
        .create(
            "held",
            json!({"model": "concurrent", "seats": SEATS, "on_limit": "displace_idlest"}),
        )
        .await;
    let answers = nodes.storm(&key, "held", LOGINS, one_each).await;
    assert_eq!(
        outcomes(&answers),
        [
            ("201".to_owned(), SEATS as usize),
            (
                "409 licence_limit_reached".to_owned(),
                LOGINS - SEATS as usize
            )
        ]
        .into()
    );
    for (status, body) in &answers {
        if *status == 409 {
            let retry = body["retry_after_secs"].as_u64().unwrap();
            assert!((1..=300).contains(&retry), "{body}");
        }
    }

    // Displacement with no hold: every login is admitted by taking over a seat, and
    // never more than the seats are held: exactly 500 of those admitted still live. (Each
    // user keeps an account, so the account limit is raised.)
    let key = nodes
        .create(
            "churn",
            json!({"model": "concurrent", "seats": SEATS, "on_limit": "displace_idlest", "min_hold_secs": 0, "max_users": LOGINS}),
        )
        .await;
    let answers = nodes.storm(&key, "churn", LOGINS, one_each).await;
    assert_eq!(outcomes(&answers), [("201".to_owned(), LOGINS)].into());
    let view = nodes.view(&key, "churn").await;
    assert_eq!(
        (view["seats_in_use"].as_u64(), view["sessions"].as_u64()),
        (Some(500), Some(500))
    );
    let beats = nodes.heartbeats(&answers).await;
    assert_eq!(
        outcomes(&beats),
        [
            ("200".to_owned(), SEATS as usize),
            ("410 session_ended".to_owned(), LOGINS - SEATS as usize)
        ]
        .into()
    );
    assert!(beats
        .iter()
        .all(|(s, b)| *s == 200 || b["reason"] == "displaced"));

    // The per-user cap: 250 users log in 20 times each onto 500 seats a tab, with at
    // most 2 tabs each: exactly 2 admitted per user, every other login capped.
    let key = nodes
        .create(
            "capped",
            json!({"model": "concurrent", "seats": SEATS, "seat_per": "session", "max_sessions_per_user": 2}),
        )
        .await;
    let answers = nodes
        .storm(&key, "capped", LOGINS, |i| format!("user-{}", i % 250))
        .await;
    let mut per_user = std::collections::HashMap::<String, usize>::new();
    for (status, body) in &answers {
        match *status {
            201 => {
                *per_user
                    .entry(body["user"].as_str().unwrap().to_owned())
                    .or_default() += 1
            }
            409 => assert_eq!(body["error"], "session_limit_reached", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(per_user.len(), 250);
    assert!(per_user.values().all(|&n| n == 2), "{per_user:?}");

    // A group's cap: 1,000 volunteers among 5,000 logins onto 5,000 seats, at most 500
    // volunteers' seats: exactly 500 of them are admitted, and everyone else.
    let key = nodes
        .create(
            "capped-group",
            json!({"model": "concurrent", "seats": LOGINS, "group_max": {"volunteers": 500}, "max_users": LOGINS}),
        )
        .await;
    let volunteer = |i: usize| format!("{}-{i}", if i % 5 == 0 { "vol" } else { "user" });
    nodes
        .join_groups(
            &key,
            "capped-group",
            (0..LOGINS).filter(|i| i % 5 == 0).map(volunteer),
            "volunteers",
        )
        .await;
    let answers = nodes.storm(&key, "capped-group", LOGINS, volunteer).await;
    assert_eq!(
        outcomes(&answers),
        [
            ("201".to_owned(), LOGINS - 500),
            ("409 group_limit_reached".to_owned(), 500)
        ]
        .into()
    );
    let admitted_volunteers = answers
        .iter()
        .filter(|(s, b)| *s == 201 && b["user"].as_str().unwrap().starts_with("vol-"))
        .count();
    assert_eq!(admitted_volunteers, 500);
    assert!(answers
        .iter()
        .all(|(s, b)| *s == 201 || (b["group"] == "volunteers" && b["max"] == 500)));

    // A reservation: 100 of 500 seats kept for finance, whose 500 members log in among
    // 4,500 others. Every seat is taken, finance holds at least its 100, and nobody
    // else ever took a seat held back for it.
    let key = nodes
        .create(
            "reserved",
            json!({"model": "concurrent", "seats": SEATS, "reserve": {"finance": 100}}),
        )
        .await;
    let member = |i: usize| format!("{}-{i}", if i % 10 == 0 { "fin" } else { "user" });
    nodes
        .join_groups(
            &key,
            "reserved",
            (0..LOGINS).filter(|i| i % 10 == 0).map(member),
            "finance",
        )
        .await;
    let answers = nodes.storm(&key, "reserved", LOGINS, member).await;
    assert_eq!(
        outcomes(&answers),
        [
            ("201".to_owned(), SEATS as usize),
            (
                "409 licence_limit_reached".to_owned(),
                LOGINS - SEATS as usize
            )
        ]
        .into()
    );
    let finance = answers
        .iter()
        .filter(|(s, b)| *s == 201 && b["user"].as_str().unwrap().starts_with("fin-"))
        .count();
    assert!(finance >= 100, "finance holds {finance} seats");
    assert!(
        SEATS as usize - finance <= 400,
        "others hold {} seats",
        SEATS as usize - finance
    );
    assert_eq!(nodes.view(&key, "reserved").await["seats_in_use"], SEATS);

    // The reload grace: 500 users hold every seat and release it (their pages reload),
    // then come back among 4,500 others. Exactly the 500 get a seat; nobody else does.
    let key = nodes
        .create(
            "grace",
            json!({"model": "concurrent", "seats": SEATS, "reload_grace_secs": 600}),
        )
        .await;
    let owner = |i: usize| format!("own-{i}");
    let holders = nodes.storm(&key, "grace", SEATS as usize, owner).await;
    assert_eq!(
        outcomes(&holders),
        [("201".to_owned(), SEATS as usize)].into()
    );
    let released = nodes.releases(&holders).await;
    assert!(released.iter().all(|&status| status == 204), "{released:?}");
    let view = nodes.view(&key, "grace").await;
    assert_eq!(
        (
            view["seats_in_use"].as_u64(),
            view["held_for_reload"].as_u64()
        ),
        (Some(500), Some(500))
    );
    let back_among_others = |i: usize| {
        if i % 10 == 0 {
            format!("own-{}", i / 10)
        } else {
            format!("other-{i}")
        }
    };
    let answers = nodes.storm(&key, "grace", LOGINS, back_among_others).await;
    assert_eq!(
        outcomes(&answers),
        [
            ("201".to_owned(), SEATS as usize),
            (
                "409 licence_limit_reached".to_owned(),
                LOGINS - SEATS as usize
            )
        ]
        .into()
    );
    let strangers = answers
        .iter()
        .filter(|(s, b)| *s == 201 && !b["user"].as_str().unwrap().starts_with("own-"))
        .count();
    assert_eq!(strangers, 0, "a kept seat went to someone else");
    let view = nodes.view(&key, "grace").await;
    assert_eq!(
        (
            view["seats_in_use"].as_u64(),
            view["held_for_reload"].as_u64()
        ),
        (Some(500), Some(0))
    );
}

#[actix_web::test]
async fn five_thousand_simultaneous_logins_hold_each_policys_invariant_on_one_embedded_node() {
    every_policy_holds_its_invariant_under_a_storm(embedded_node()).await;
}

#[actix_web::test]
async fn five_thousand_simultaneous_logins_hold_each_policys_invariant_over_three_redis_nodes() {
    every_policy_holds_its_invariant_under_a_storm(redis_nodes()).await;
}

#[actix_web::test]
async fn the_reload_grace_keeps_a_released_seat_for_its_user_over_http() {
    let app = spawn_app();
    let key = app
        .create_tenant(
            "acme",
            json!({"model": "concurrent", "seats": 1, "reload_grace_secs": 60}),
        )
        .await;
    let view = app.tenant(&key, "acme").await;
    assert_eq!(view["reload_grace_secs"], 60);
    let login = |user: &'static str| {
        app.post("/v1/tenants/acme/sessions")
            .auth(&key)
            .json(json!({"user": user}))
    };
    let ann = login("ann").await;
    let token = ann.expect(201)["session"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/sessions/{token}/release"))
        .send()
        .await
        .expect(204);
    // Ann's seat is kept for her reload: bob finds none, ann gets hers back.
    let bob = login("bob").await;
    let body = bob.expect_error(409, "licence_limit_reached");
    assert_eq!(
        (body["seats"].as_u64(), body["seats_in_use"].as_u64()),
        (Some(1), Some(1))
    );
    login("ann").await.expect(201);
    for (licence, says) in [
        (
            json!({"model": "concurrent", "seats": 1, "reload_grace_secs": 3601}),
            "\"reload_grace_secs\" must be between 0 and 3600, got 3601",
        ),
        (
            json!({"model": "named", "seats": 1, "reload_grace_secs": 5}),
            "\"reload_grace_secs\" applies to the concurrent model only",
        ),
    ] {
        let answer = app
            .admin(Method::PUT, "/v1/tenants/acme")
            .json(licence.clone())
            .await;
        answer.expect_error(400, "invalid_request");
        assert!(
            answer.message().contains(says),
            "{licence}: {}",
            answer.text
        );
    }
    // PATCH takes it, and null puts the default back.
    let patched = app
        .admin(Method::PATCH, "/v1/tenants/acme")
        .json(json!({"reload_grace_secs": null}))
        .await;
    assert!(patched.expect(200).get("reload_grace_secs").is_none());
}
