//! Webhooks across SIGKILL: the real `usher serve` on the embedded store delivers to a
//! slow receiver on loopback and is killed while a delivery is under way, twice, then
//! restarted on the same data directory. Every event of the log reaches the receiver,
//! first deliveries come in the log's order, and only the delivery under way at each
//! kill may come twice.

#[path = "support/binary.rs"]
mod binary;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use binary::Server;
use serde_json::{json, Value};

const ADMIN: &str = "webhook-crash-admin-token";
const LOGINS: usize = 40;
const KILLS: usize = 2;

/// The event ids the receiver got, in the order they came.
type Got = Arc<Mutex<Vec<String>>>;

async fn receive(body: web::Bytes, got: web::Data<Got>) -> HttpResponse {
    // Slow, so that a kill finds a delivery under way.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    got.lock()
        .unwrap()
        .push(event["id"].as_str().unwrap_or_default().to_owned());
    HttpResponse::NoContent().finish()
}

async fn call(method: &str, url: String, token: &str, body: Option<Value>) -> (u16, Value) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let request = client
        .request(
            awc::http::Method::from_bytes(method.as_bytes()).unwrap(),
            url,
        )
        .bearer_auth(token);
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("the server answers");
    let status = response.status().as_u16();
    let bytes = response.body().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every event id of the tenant's log, oldest first.
async fn log(url: &str, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => format!("{url}/v1/tenants/acme/events?limit=500&cursor={c}"),
            None => format!("{url}/v1/tenants/acme/events?limit=500"),
        };
        let (status, body) = call("GET", page, key, None).await;
        assert_eq!(status, 200, "{body}");
        for event in body["events"].as_array().unwrap() {
            ids.push(event["id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// The slow receiver on a free loopback port: its port, what it got, its handle.
fn receiver() -> (u16, Got, actix_web::dev::ServerHandle) {
    let got: Got = Arc::default();
    let data = web::Data::new(got.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(receive))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = receiver.handle();
    actix_web::rt::spawn(receiver);
    (port, got, handle)
}

/// Creates tenant `acme` with `licence` and its webhook `crm` for `admitted` to the
/// receiver on `port`; returns the tenant's key.
async fn acme_with_webhook(url: &str, licence: Value, port: u16) -> String {
    let (status, created) = call(
        "PUT",
        format!("{url}/v1/tenants/acme"),
        ADMIN,
        Some(licence),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    let (status, body) = call(
        "PUT",
        format!("{url}/v1/tenants/acme/webhooks/crm"),
        &key,
        Some(json!({"url": format!("http://127.0.0.1:{port}/hook"),
            "events": ["admitted"], "secret": "whsec_0123456789abcdef"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    key
}

#[actix_web::test]
async fn a_kill_mid_delivery_loses_no_event_and_resends_only_what_was_under_way() {
    let (port, got, receiver_handle) = receiver();

    let dir = tempfile::tempdir().unwrap();
    let flags = ["--webhook-allow-host", "127.0.0.1"];
    let mut server = Server::start_with(dir.path(), ADMIN, &flags);
    let key = acme_with_webhook(
        &server.url,
        json!({"model": "concurrent", "seats": 1000, "max_users": 10000}),
        port,
    )
    .await;
    for i in 0..LOGINS {
        let (status, body) = call(
            "POST",
            format!("{}/v1/tenants/acme/sessions", server.url),
            &key,
            Some(json!({"user": format!("u{i}")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // Killed while deliveries flow: a few have come, the rest not yet.
    for kill in 1..=KILLS {
        let before = got.lock().unwrap().len();
        for _ in 0..2000 {
            if got.lock().unwrap().len() >= before + 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        let seen = got.lock().unwrap().len();
        assert!(
            seen < LOGINS,
            "kill {kill} came after every delivery ({seen})"
        );
        server = Server::start_with(dir.path(), ADMIN, &flags);
    }
    let ids = log(&server.url, &key).await;
    assert_eq!(
        ids.len(),
        LOGINS + 1,
        "the log: tenant_created and every login"
    );
    let admitted = &ids[1..];
    for _ in 0..3000 {
        let delivered: std::collections::BTreeSet<String> =
            got.lock().unwrap().iter().cloned().collect();
        if admitted.iter().all(|id| delivered.contains(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &got {
        *times.entry(id.as_str()).or_default() += 1;
    }
    for id in admitted {
        assert!(times.contains_key(id.as_str()), "{id} never came: {got:?}");
    }
    assert!(
        times.keys().all(|id| admitted.iter().any(|a| a == id)),
        "only the log's events came: {got:?}"
    );
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= KILLS && twice.iter().all(|(_, n)| **n == 2),
        "only a delivery under way at a kill comes again: {twice:?}"
    );
    let mut first = Vec::new();
    for id in &got {
        if !first.contains(id) {
            first.push(id.clone());
        }
    }
    assert_eq!(first, admitted, "first deliveries in the log's order");
    drop(receiver_handle.stop(false));
}

#[actix_web::test]
async fn a_host_taken_off_the_allowed_list_gets_nothing_until_it_is_back() {
    let (port, got, receiver_handle) = receiver();

    let dir = tempfile::tempdir().unwrap();
    let allowed = ["--webhook-allow-host", "127.0.0.1"];
    let server = Server::start_with(dir.path(), ADMIN, &allowed);
    let key = acme_with_webhook(
        &server.url,
        json!({"model": "concurrent", "seats": 10}),
        port,
    )
    .await;
    server.kill();

    // The operator narrows the list: the registered target is no longer allowed.
    let server = Server::start_with(
        dir.path(),
        ADMIN,
        &["--webhook-allow-host", "hooks.example.org"],
    );
    let (status, body) = call(
        "POST",
        format!("{}/v1/tenants/acme/sessions", server.url),
        &key,
        Some(json!({"user": "ann"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let deliveries = format!("{}/v1/tenants/acme/webhooks/crm/deliveries", server.url);
    let mut refused = Value::Null;
    for _ in 0..500 {
        let (_, body) = call("GET", deliveries.clone(), &key, None).await;
        if body["deliveries"].as_array().is_some_and(|d| !d.is_empty()) {
            refused = body["deliveries"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused["outcome"], "failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer"),
        "{refused}"
    );
    assert!(got.lock().unwrap().is_empty(), "nothing reached the target");
    server.kill();

    // Allowed again: the event it missed comes, once.
    let server = Server::start_with(dir.path(), ADMIN, &allowed);
    for _ in 0..500 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "{:?}", got.lock().unwrap());
    drop(server);
    drop(receiver_handle.stop(false));
}
