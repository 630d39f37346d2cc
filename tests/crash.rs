//! The crash test: the real `usher serve` binary on the embedded store is driven by
//! several clients — logins, releases, licence changes, assignments, record counts,
//! key rotations — and killed with SIGKILL at a random moment, then restarted on the
//! same data directory. Whatever was acknowledged must be there; nothing released may
//! come back; seats never exceed the licence, also when the tenant is filled after the
//! restart; restored sessions keep their fences, and every login after the restart gets
//! a larger fence than any acknowledged before. Several rounds, killed at different
//! moments.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};

#[path = "support/binary.rs"]
mod binary;

use binary::Server;

const ADMIN: &str = "crash-test-admin-token";
const ROUNDS: usize = 5;
/// Every login creates an account, and a fast machine makes many in a round: the
/// crash tenant allows the most the server does, so however fast the machine, a
/// login is never refused for the account limit.
const MAX_USERS: u32 = 1_000_000;
const SEATS: [i64; 3] = [40, 50, 60];

/// What the clients were told, and what was still in flight at the kill.
#[derive(Default)]
struct Acked {
    /// Tokens of acknowledged logins with no release sent.
    alive: HashSet<String>,
    /// The fence each acknowledged login of `crash-c` was answered with.
    fences: HashMap<String, u64>,
    /// The largest of them.
    top_fence: u64,
    /// Tokens whose release was acknowledged.
    released: HashSet<String>,
    /// Tokens whose release was sent but not answered.
    releasing: HashSet<String>,
    /// Logins sent but not answered: they may hold a seat after the restart.
    logins_in_flight: usize,
    /// Seats held by logins committed but never answered (their tokens unknown).
    ghosts: usize,
    /// The last acknowledged seat count, and one in flight.
    seats: i64,
    seats_in_flight: Option<i64>,
    /// The last acknowledged record count, and one in flight.
    records: u64,
    records_in_flight: Option<u64>,
    /// Acknowledged named assignments.
    assigned: BTreeSet<String>,
    /// The last acknowledged API key of `crash-c`, and whether a rotation was in flight.
    key: String,
    rotating: bool,
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .connector(awc::Connector::new().limit(0))
        .finish()
}

async fn call(
    http: &awc::Client,
    method: &str,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), ()> {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let request = http.request(method, url).bearer_auth(token);
    let sent = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    let mut response = sent.map_err(|_| ())?;
    let bytes = response.body().await.map_err(|_| ())?;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|_| ())?
    };
    Ok((response.status().as_u16(), value))
}

fn coin(n: u64) -> u64 {
    usher::token::random_u64() % n
}

/// Client `me` works until the server stops answering.
async fn work(me: usize, url: String, acked: Rc<RefCell<Acked>>, round: usize) {
    let http = client();
    let mut n = 0u64;
    loop {
        n += 1;
        let result = match (me, coin(4)) {
            (0, 0) => {
                let seats = SEATS[coin(3) as usize];
                acked.borrow_mut().seats_in_flight = Some(seats);
                let r = call(
                    &http,
                    "PUT",
                    format!("{url}/v1/tenants/crash-c"),
                    ADMIN,
                    Some(json!({"model": "concurrent", "seats": seats, "max_users": MAX_USERS})),
                )
                .await;
                if let Ok((200, _)) = r {
                    let mut a = acked.borrow_mut();
                    a.seats = seats;
                    a.seats_in_flight = None;
                }
                r.map(|_| ())
            }
            (1, 0) => {
                let count = u64::from(round as u32) * 1_000_000 + n;
                acked.borrow_mut().records_in_flight = Some(count);
                let r = call(
                    &http,
                    "PUT",
                    format!("{url}/v1/tenants/crash-r/records"),
                    ADMIN,
                    Some(json!({"count": count})),
                )
                .await;
                if let Ok((200, _)) = r {
                    let mut a = acked.borrow_mut();
                    a.records = count;
                    a.records_in_flight = None;
                }
                r.map(|_| ())
            }
            (2, 0) => {
                let user = format!("r{round}-n{n}");
                let r = call(
                    &http,
                    "PUT",
                    format!("{url}/v1/tenants/crash-n/users/{user}"),
                    ADMIN,
                    None,
                )
                .await;
                if let Ok((200, _)) = r {
                    acked.borrow_mut().assigned.insert(user);
                }
                r.map(|_| ())
            }
            (3, 0) => {
                acked.borrow_mut().rotating = true;
                let r = call(
                    &http,
                    "POST",
                    format!("{url}/v1/tenants/crash-c/api-key"),
                    ADMIN,
                    None,
                )
                .await;
                if let Ok((200, body)) = &r {
                    let mut a = acked.borrow_mut();
                    a.key = body["api_key"].as_str().unwrap().to_string();
                    a.rotating = false;
                }
                r.map(|_| ())
            }
            (_, 1) if !acked.borrow().alive.is_empty() => {
                let token = acked.borrow().alive.iter().next().cloned().unwrap();
                {
                    let mut a = acked.borrow_mut();
                    a.alive.remove(&token);
                    a.fences.remove(&token);
                    a.releasing.insert(token.clone());
                }
                let r = call(
                    &http,
                    "POST",
                    format!("{url}/v1/sessions/{token}/release"),
                    "",
                    None,
                )
                .await;
                match r {
                    Ok((204, _)) => {
                        let mut a = acked.borrow_mut();
                        a.releasing.remove(&token);
                        a.released.insert(token);
                    }
                    Ok((status, body)) => panic!("release answered {status} {body}"),
                    Err(()) => {}
                }
                r.map(|_| ())
            }
            _ => {
                let user = format!("c{me}-r{round}-u{n}");
                acked.borrow_mut().logins_in_flight += 1;
                let r = call(
                    &http,
                    "POST",
                    format!("{url}/v1/tenants/crash-c/sessions"),
                    ADMIN,
                    Some(json!({"user": user})),
                )
                .await;
                if r.is_ok() {
                    acked.borrow_mut().logins_in_flight -= 1;
                }
                match &r {
                    Ok((201, body)) => {
                        let token = body["session"].as_str().unwrap().to_string();
                        let fence = body["fence"].as_u64().expect("a login answers its fence");
                        let mut a = acked.borrow_mut();
                        // Four clients: answers may arrive out of admission order.
                        a.top_fence = a.top_fence.max(fence);
                        a.fences.insert(token.clone(), fence);
                        a.alive.insert(token);
                    }
                    Ok((409, body)) => assert_eq!(body["error"], "licence_limit_reached"),
                    Ok((status, body)) => panic!("login answered {status} {body}"),
                    Err(()) => {}
                }
                r.map(|_| ())
            }
        };
        if result.is_err() {
            return; // the server is gone
        }
    }
}

/// Checks everything acknowledged against the restarted server; returns the tokens of
/// the sessions used to fill the tenant, to release them.
async fn verify(url: &str, acked: &mut Acked) -> Vec<String> {
    let http = client();
    for token in &acked.alive {
        let (status, body) = call(
            &http,
            "POST",
            format!("{url}/v1/sessions/{token}/heartbeat"),
            "",
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "an acknowledged login was lost: {body}");
        assert_eq!(
            body["fence"].as_u64(),
            acked.fences.get(token).copied(),
            "a restored session keeps its fence"
        );
    }
    for token in &acked.released {
        let (status, body) = call(
            &http,
            "POST",
            format!("{url}/v1/sessions/{token}/heartbeat"),
            "",
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (status, body["reason"].as_str()),
            (410, Some("released")),
            "a released session came back"
        );
    }
    // Releases in flight may or may not have happened; either way they are settled now.
    for token in acked.releasing.drain() {
        call(
            &http,
            "POST",
            format!("{url}/v1/sessions/{token}/release"),
            "",
            None,
        )
        .await
        .unwrap();
    }

    let (_, view) = call(
        &http,
        "GET",
        format!("{url}/v1/tenants/crash-c"),
        ADMIN,
        None,
    )
    .await
    .unwrap();
    let seats = view["seats"].as_i64().unwrap();
    assert!(
        seats == acked.seats || Some(seats) == acked.seats_in_flight,
        "seats {seats}, acknowledged {}",
        acked.seats
    );
    acked.seats = seats;
    acked.seats_in_flight = None;
    // Every acknowledged login holds its seat; a login committed but not answered
    // before the kill may hold one too. A licence lowered at runtime ends nothing, so
    // usage may stand above a lowered limit.
    let in_use = view["seats_in_use"].as_i64().unwrap() as usize;
    let known = acked.alive.len() + acked.ghosts;
    assert!(
        (known..=known + acked.logins_in_flight).contains(&in_use),
        "{in_use} seats in use; {known} known, {} in flight",
        acked.logins_in_flight
    );
    assert!(
        in_use <= *SEATS.iter().max().unwrap() as usize,
        "{in_use} seats in use"
    );
    acked.ghosts = in_use - acked.alive.len();
    acked.logins_in_flight = 0;

    let (_, records) = call(
        &http,
        "GET",
        format!("{url}/v1/tenants/crash-r/records"),
        ADMIN,
        None,
    )
    .await
    .unwrap();
    let count = records["count"].as_u64().unwrap();
    assert!(
        count == acked.records || Some(count) == acked.records_in_flight,
        "records {count}, acknowledged {}",
        acked.records
    );
    acked.records = count;
    acked.records_in_flight = None;

    let (_, users) = call(
        &http,
        "GET",
        format!("{url}/v1/tenants/crash-n/users"),
        ADMIN,
        None,
    )
    .await
    .unwrap();
    let assigned: BTreeSet<String> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["assigned"] == true)
        .map(|u| u["user"].as_str().unwrap().to_string())
        .collect();
    assert!(
        acked.assigned.is_subset(&assigned),
        "an acknowledged assignment was lost"
    );
    acked.assigned = assigned;

    let (status, _) = call(
        &http,
        "GET",
        format!("{url}/v1/tenants/crash-c"),
        &acked.key,
        None,
    )
    .await
    .unwrap();
    if !acked.rotating {
        assert_eq!(status, 200, "the acknowledged API key no longer works");
    } else if status != 200 {
        // A rotation committed but not answered replaced the key; take a known one.
        let (_, body) = call(
            &http,
            "POST",
            format!("{url}/v1/tenants/crash-c/api-key"),
            ADMIN,
            None,
        )
        .await
        .unwrap();
        acked.key = body["api_key"].as_str().unwrap().to_string();
    }
    acked.rotating = false;

    // Fill the tenant after the restart, on the largest licence: exactly its seats
    // are held, never more.
    let top = *SEATS.iter().max().unwrap();
    let (status, _) = call(
        &http,
        "PUT",
        format!("{url}/v1/tenants/crash-c"),
        ADMIN,
        Some(json!({"model": "concurrent", "seats": top, "max_users": MAX_USERS})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    acked.seats = top;
    let mut fillers = Vec::new();
    let mut refused = 0;
    for i in 0..(top as usize + 10) {
        let (status, body) = call(
            &http,
            "POST",
            format!("{url}/v1/tenants/crash-c/sessions"),
            ADMIN,
            Some(json!({"user": format!("filler-{}-{i}", usher::token::random_u64())})),
        )
        .await
        .unwrap();
        match status {
            201 => {
                let fence = body["fence"].as_u64().unwrap();
                assert!(
                    fence > acked.top_fence,
                    "fence {fence} after the restart does not pass {}",
                    acked.top_fence
                );
                acked.top_fence = fence;
                fillers.push(body["session"].as_str().unwrap().to_string());
            }
            409 => refused += 1,
            other => panic!("fill answered {other} {body}"),
        }
    }
    let (_, view) = call(
        &http,
        "GET",
        format!("{url}/v1/tenants/crash-c"),
        ADMIN,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        view["seats_in_use"].as_i64().unwrap(),
        top,
        "a full tenant holds exactly its seats"
    );
    assert_eq!(in_use + fillers.len(), top as usize);
    assert_eq!(refused, top as usize + 10 - fillers.len());
    fillers
}

#[actix_web::test]
async fn nothing_acknowledged_is_lost_when_the_server_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), ADMIN);
    let http = client();
    let (status, body) = call(
        &http,
        "PUT",
        format!("{}/v1/tenants/crash-c", server.url),
        ADMIN,
        Some(json!({"model": "concurrent", "seats": SEATS[0], "max_users": MAX_USERS})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let mut acked = Acked {
        seats: SEATS[0],
        key: body["api_key"].as_str().unwrap().to_string(),
        ..Default::default()
    };
    for (tenant, licence) in [
        ("crash-n", json!({"model": "named", "seats": 10_000})),
        ("crash-r", json!({"model": "records"})),
    ] {
        let (status, _) = call(
            &http,
            "PUT",
            format!("{}/v1/tenants/{tenant}", server.url),
            ADMIN,
            Some(licence),
        )
        .await
        .unwrap();
        assert_eq!(status, 201);
    }
    let mut server = Some(server);
    for round in 0..ROUNDS {
        let running = server.take().unwrap();
        let url = running.url.clone();
        let shared = Rc::new(RefCell::new(std::mem::take(&mut acked)));
        let clients = futures::future::join_all(
            (0..4).map(|me| work(me, url.clone(), shared.clone(), round)),
        );
        let kill_after = Duration::from_millis(100 + coin(400));
        let killer = async move {
            actix_web::rt::time::sleep(kill_after).await;
            running.kill();
        };
        futures::future::join(clients, killer).await;
        acked = Rc::try_unwrap(shared).ok().unwrap().into_inner();
        assert!(
            !acked.alive.is_empty() || !acked.released.is_empty(),
            "round {round} did some work"
        );
        eprintln!(
            "round {round}: killed after {kill_after:?}; {} live and {} released sessions acknowledged, {} assignments, records {}",
            acked.alive.len(),
            acked.released.len(),
            acked.assigned.len(),
            acked.records
        );

        let restarted = Server::start(dir.path(), ADMIN);
        let fillers = verify(&restarted.url, &mut acked).await;
        for token in fillers {
            let (status, _) = call(
                &http,
                "POST",
                format!("{}/v1/sessions/{token}/release", restarted.url),
                "",
                None,
            )
            .await
            .unwrap();
            assert_eq!(status, 204);
            acked.released.insert(token);
        }
        server = Some(restarted);
    }
    server.unwrap().kill();
}
