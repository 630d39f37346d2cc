//! Scale-out over real HTTP (SPEC §7, §8): several `usher serve --store redis`
//! processes on one Redis.
//!
//! - A storm of logins spread over three nodes admits exactly the licence's seats,
//!   round after round, with heartbeats and releases sent to other nodes.
//! - A licence change, a key rotation and a tenant deletion made on one node hold on
//!   the others.
//! - Faults: a node killed with `kill -9` mid-storm, Redis killed with `kill -9` (with
//!   `appendfsync always`) and restarted, Redis paused with `SIGSTOP`: nothing
//!   acknowledged is lost, every request is answered (503 `unavailable` within the
//!   request deadline while Redis cannot answer), and the nodes recover by themselves.
//! - Fences grow strictly per tenant across nodes, node restarts and Redis restarts.
//! - A tab's socket and an event stream on one node hear at once what another did.
//!
//! Every process listens on a free loopback port and dies with its test: a guard kills
//! it when the test ends, panics included, and `PR_SET_PDEATHSIG` kills it if the
//! test process itself dies. The tests of this file run one at a time, so that a
//! storm does not share the machine's cores with a test that counts deadlines.

#[path = "support/live.rs"]
mod live;
#[path = "support/redis.rs"]
mod support;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use awc::http::Method;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

/// The admin token of every node (Redis mode needs it configured, the same on all).
const ADMIN: &str = "scale-out-admin-token-7d1e4b90";

/// The request deadline of the nodes in the fault tests (`--write-deadline-secs`).
const DEADLINE: Duration = Duration::from_secs(2);

/// What a request may take beyond the node's deadline to be answered: the HTTP round
/// trip and scheduling on a busy machine. Below one deadline, so that a request
/// waiting out two deadlines of a Redis that does not answer is caught.
const MARGIN: Duration = Duration::from_secs(1);

/// The request deadline of the nodes in the tests that are not about Redis faults:
/// long, so that a machine busy with a storm never turns an answer into a 503.
const LONG_DEADLINE_SECS: &str = "10";

/// How long a node may trust an API key it has checked (SPEC §7: a rotated or deleted
/// key stops working everywhere within 1 s at most).
const KEY_TRUST: Duration = Duration::from_secs(1);

/// The bound on every wait for something that should happen by itself (a node
/// starting, recovering, a poll coming true): far above what it takes, never slept.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------

/// The tests of this file run one at a time (see the top of the file).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs an async test on this thread, alone. Processes are started from this thread,
/// which lives as long as the test: `PR_SET_PDEATHSIG` fires when it ends.
fn run<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _alone = one_at_a_time();
    actix_web::rt::System::new().block_on(test());
}

/// The child is killed when the thread that started it ends, however it ends.
fn dies_with_the_test(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A `redis-server` of one test, on a port and in a directory of its own, which can be
/// killed, restarted on the same port and directory, paused and resumed.
struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// Starts Redis with these extra arguments (e.g. AOF settings).
    fn start(args: &[&str]) -> Redis {
        let mut redis = Redis {
            port: support::free_port(),
            dir: tempfile::tempdir().expect("a directory for Redis"),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        redis.spawn();
        redis
    }

    /// Redis with every write fsynced to its append-only file before it is answered.
    fn durable() -> Redis {
        Redis::start(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        self.launch();
        support::wait_for(self.port);
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "Redis is already running");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        dies_with_the_test(&mut command);
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}); install it, e.g. `apt-get install redis-server`"
            )
        });
        self.child = Some(child);
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (and so the same AOF), without
    /// waiting for it: the nodes find out by themselves, and the test's requests
    /// meanwhile are not held up.
    fn restart(&mut self) {
        self.launch();
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("Redis is running");
        // SAFETY: a plain kill(2) on a child this test started and has not reaped.
        let done = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(done, 0, "cannot signal redis-server");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `usher serve --store redis` process.
struct Node {
    url: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts a node on a free port, deciding on `redis`, with these extra flags, and
    /// waits until it says where it serves.
    fn start(redis: &Redis, extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("a data directory");
        let log = dir.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_usher"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--store", "redis"])
            .args(["--redis-url", &redis.url(), "--workers", "2"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"));
        for (name, _) in std::env::vars() {
            if name.starts_with("USHER_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .env("USHER_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn");
        dies_with_the_test(&mut command);
        let mut child = command.spawn().expect("the usher binary runs");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        // Reads stdout to its end, so that the node never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("Usher is serving on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut node = Node {
            url: String::new(),
            child: Some(child),
            log,
            _dir: dir,
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(url) => node.url = url,
            Err(_) => panic!("the node did not start:\n{}", node.output()),
        }
        node
    }

    /// What the node logged (warnings and errors).
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` nodes on `redis`.
fn start_nodes(redis: &Redis, n: usize, extra: &[&str]) -> Vec<Node> {
    (0..n).map(|_| Node::start(redis, extra)).collect()
}

/// The flags that give a node the request deadline of the fault tests.
fn fault_deadline() -> [String; 2] {
    [
        "--write-deadline-secs".into(),
        DEADLINE.as_secs().to_string(),
    ]
}

/// The flags that give a node [`LONG_DEADLINE_SECS`].
const PATIENT: [&str; 2] = ["--write-deadline-secs", LONG_DEADLINE_SECS];

// ---------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------

/// A client that keeps up to `connections` connections open and reuses them.
fn client(connections: usize) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(connections))
        .timeout(Duration::from_secs(30))
        .disable_redirects()
        .finish()
}

/// An answer, read whole.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected answer: {self:?}");
        &self.body
    }

    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected answer: {self:?}"
        );
        &self.body
    }

    /// The 503 of SPEC §7 while Redis cannot answer: `unavailable` with `Retry-After`.
    fn is_unavailable(&self) -> bool {
        self.status == 503 && self.code() == "unavailable" && self.retry_after.is_some()
    }
}

/// Sends a request; `Err` when no answer came (connection refused or reset).
async fn send(
    client: &awc::Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Result<Answer, String> {
    let request = client.request(method, url).bearer_auth(token);
    let response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    let mut response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = response
        .body()
        .limit(16 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry_after,
    })
}

/// Sends a request that must be answered.
async fn answer(
    client: &awc::Client,
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Answer {
    let what = format!("{method} {url}");
    send(client, method, url, token, body)
        .await
        .unwrap_or_else(|e| panic!("{what} was not answered: {e}"))
}

/// Creates a tenant through the node at `node`; returns its API key.
async fn create_tenant(client: &awc::Client, node: &str, tenant: &str, licence: Value) -> String {
    let url = format!("{node}/v1/tenants/{tenant}");
    let created = answer(client, Method::PUT, url, ADMIN, Some(licence)).await;
    created.expect(201)["api_key"]
        .as_str()
        .expect("an API key")
        .to_string()
}

/// Changes a tenant's licence through the node at `node`.
async fn change_licence(client: &awc::Client, node: &str, tenant: &str, licence: Value) -> Value {
    let url = format!("{node}/v1/tenants/{tenant}");
    answer(client, Method::PUT, url, ADMIN, Some(licence))
        .await
        .expect(200)
        .clone()
}

async fn login(
    client: &awc::Client,
    node: &str,
    tenant: &str,
    user: &str,
) -> Result<Answer, String> {
    let url = format!("{node}/v1/tenants/{tenant}/sessions");
    send(
        client,
        Method::POST,
        url,
        ADMIN,
        Some(json!({"user": user})),
    )
    .await
}

/// A browser route (`heartbeat`, `release`, `logout`) of a session.
async fn browser(
    client: &awc::Client,
    node: &str,
    token: &str,
    action: &str,
) -> Result<Answer, String> {
    let url = format!("{node}/v1/sessions/{token}/{action}");
    send(client, Method::POST, url, ADMIN, None).await
}

/// The tenant view through the node at `node`.
async fn view(client: &awc::Client, node: &str, tenant: &str) -> Value {
    let url = format!("{node}/v1/tenants/{tenant}");
    answer(client, Method::GET, url, ADMIN, None)
        .await
        .expect(200)
        .clone()
}

/// Every live session of the tenant, page by page, through the node at `node`.
async fn sessions(client: &awc::Client, node: &str, tenant: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{node}/v1/tenants/{tenant}/sessions?limit=1000");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = answer(client, Method::GET, url, ADMIN, None).await;
        let page = page.expect(200);
        all.extend(page["sessions"].as_array().expect("a list").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return all,
        }
    }
}

/// The live sessions of the tenant as (user, fence).
async fn holders(client: &awc::Client, node: &str, tenant: &str) -> BTreeSet<(String, u64)> {
    sessions(client, node, tenant)
        .await
        .iter()
        .map(|s| {
            (
                s["user"].as_str().expect("a user").to_string(),
                s["fence"].as_u64().expect("a fence"),
            )
        })
        .collect()
}

async fn readyz(client: &awc::Client, node: &str) -> Option<u16> {
    let url = format!("{node}/readyz");
    send(client, Method::GET, url, ADMIN, None)
        .await
        .ok()
        .map(|a| a.status)
}

async fn pause(duration: Duration) {
    actix_web::rt::time::sleep(duration).await;
}

/// Polls `check` every 50 ms until it holds; panics with `what` after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        pause(Duration::from_millis(50)).await;
    }
}

/// One acknowledged login: where it was admitted, its token, user and fence.
#[derive(Debug, Clone)]
struct Admitted {
    node: usize,
    user: String,
    token: String,
    fence: u64,
}

impl Admitted {
    fn of(node: usize, answer: &Answer) -> Admitted {
        let body = answer.expect(201);
        Admitted {
            node,
            user: body["user"].as_str().expect("a user").to_string(),
            token: body["session"].as_str().expect("a token").to_string(),
            fence: body["fence"].as_u64().expect("a fence"),
        }
    }
}

/// Heartbeats every session through a node other than the one that admitted it,
/// among `live` (indexes into `urls`); each must answer 200 with its fence.
async fn all_heartbeat(client: &awc::Client, urls: &[String], live: &[usize], all: &[Admitted]) {
    stream::iter(all.iter().enumerate())
        .for_each_concurrent(64, |(i, session)| async move {
            let others: Vec<usize> = live
                .iter()
                .copied()
                .filter(|n| *n != session.node)
                .collect();
            let node = others[i % others.len()];
            let beat = browser(client, &urls[node], &session.token, "heartbeat")
                .await
                .unwrap_or_else(|e| panic!("heartbeat on node {node}: {e}"));
            assert_eq!(
                (beat.status, beat.body["fence"].as_u64()),
                (200, Some(session.fence)),
                "{session:?} on node {node}: {beat:?}"
            );
        })
        .await;
}

// ---------------------------------------------------------------------------------
// Many nodes, one tenant
// ---------------------------------------------------------------------------------

/// Nodes in the storm.
const STORM_NODES: usize = 3;
/// Logins of one round, all at once, spread over the nodes, each by a user of its own.
const STORM_LOGINS: usize = 6_000;
/// The tenant's concurrent seats.
const STORM_SEATS: usize = 600;
/// Rounds: admit, heartbeat elsewhere, release elsewhere, all seats free again.
const STORM_ROUNDS: usize = 20;
/// Requests in flight at once over all nodes: enough that every node's queue for the
/// tenant always has a crowd waiting, few enough for two cores.
const STORM_IN_FLIGHT: usize = 192;

#[test]
fn a_storm_over_three_nodes_admits_exactly_the_seats_every_round() {
    run(|| async {
        let redis = Redis::start(&[]);
        let nodes = start_nodes(&redis, STORM_NODES, &PATIENT);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(STORM_IN_FLIGHT);
        let (client, urls) = (&client, &urls);
        create_tenant(
            client,
            &urls[0],
            "storm",
            json!({"model": "concurrent", "seats": STORM_SEATS, "max_users": STORM_LOGINS}),
        )
        .await;
        let started = Instant::now();
        let mut last_fence = 0;
        for round in 0..STORM_ROUNDS {
            let round_started = Instant::now();
            let answers: Vec<(usize, usize, Result<Answer, String>)> =
                stream::iter(0..STORM_LOGINS)
                    .map(|i| async move {
                        let node = (i + round) % STORM_NODES;
                        let user = format!("user-{i}");
                        (i, node, login(client, &urls[node], "storm", &user).await)
                    })
                    .buffer_unordered(STORM_IN_FLIGHT)
                    .collect()
                    .await;
            let mut admitted = Vec::new();
            for (i, node, answer) in answers {
                let answer = answer
                    .unwrap_or_else(|e| panic!("round {round}: login {i} on node {node}: {e}"));
                match (answer.status, answer.code()) {
                    (201, _) => admitted.push(Admitted::of(node, &answer)),
                    (409, "licence_limit_reached") => {
                        assert_eq!(answer.body["seats"], STORM_SEATS, "{answer:?}");
                        assert_eq!(answer.body["seats_in_use"], STORM_SEATS, "{answer:?}");
                    }
                    _ => panic!("round {round}: login {i} on node {node}: {answer:?}"),
                }
            }
            assert_eq!(admitted.len(), STORM_SEATS, "round {round}: admitted");
            let fences: BTreeSet<u64> = admitted.iter().map(|a| a.fence).collect();
            assert_eq!(fences.len(), STORM_SEATS, "round {round}: fences repeat");
            assert!(
                fences.first().copied() > Some(last_fence),
                "round {round}: a fence at or below the last round's {last_fence}"
            );
            last_fence = fences.last().copied().unwrap_or(last_fence);
            for url in urls {
                let seen = view(client, url, "storm").await;
                assert_eq!(seen["seats_in_use"], STORM_SEATS, "round {round} on {url}");
                assert_eq!(seen["sessions"], STORM_SEATS, "round {round} on {url}");
            }
            // Heartbeats on the next node, releases on the one after: never the node
            // that admitted the session.
            stream::iter(&admitted)
                .for_each_concurrent(STORM_IN_FLIGHT, |session| async move {
                    let node = (session.node + 1) % STORM_NODES;
                    let beat = browser(client, &urls[node], &session.token, "heartbeat").await;
                    let beat = beat.unwrap_or_else(|e| panic!("heartbeat on node {node}: {e}"));
                    assert_eq!(beat.expect(200)["fence"], session.fence, "{session:?}");
                    let node = (session.node + 2) % STORM_NODES;
                    let release = browser(client, &urls[node], &session.token, "release").await;
                    let release = release.unwrap_or_else(|e| panic!("release on {node}: {e}"));
                    release.expect(204);
                })
                .await;
            for url in urls {
                let seen = view(client, url, "storm").await;
                assert_eq!(seen["seats_in_use"], 0, "round {round} on {url}");
                assert_eq!(seen["sessions"], 0, "round {round} on {url}");
            }
            eprintln!(
                "storm round {round}: {STORM_LOGINS} logins, {STORM_SEATS} admitted, \
                 heartbeated and released in {:?}",
                round_started.elapsed()
            );
        }
        eprintln!(
            "storm: {STORM_ROUNDS} rounds over {STORM_NODES} nodes in {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn a_licence_change_key_rotation_and_deletion_on_one_node_hold_on_the_others() {
    run(|| async {
        let redis = Redis::start(&[]);
        let nodes = start_nodes(&redis, 3, &PATIENT);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(16);
        let client = &client;
        let key = create_tenant(
            client,
            &urls[0],
            "acme",
            json!({"model": "concurrent", "seats": 2}),
        )
        .await;
        let tenant_url = |node: usize| format!("{}/v1/tenants/acme", urls[node]);
        let with_key = |node: usize, key: String| {
            let url = tenant_url(node);
            async move { answer(client, Method::GET, url, &key, None).await }
        };
        for node in 0..3 {
            with_key(node, key.clone()).await.expect(200);
        }
        let alice = login(client, &urls[1], "acme", "alice").await.unwrap();
        let alice = Admitted::of(1, &alice);
        login(client, &urls[2], "acme", "bob")
            .await
            .unwrap()
            .expect(201);
        let refused = login(client, &urls[0], "acme", "carol").await.unwrap();
        refused.expect_error(409, "licence_limit_reached");

        // More seats on node 0: node 1 shows them and node 2 admits at once.
        change_licence(
            client,
            &urls[0],
            "acme",
            json!({"model": "concurrent", "seats": 3}),
        )
        .await;
        assert_eq!(view(client, &urls[1], "acme").await["seats"], 3);
        login(client, &urls[2], "acme", "carol")
            .await
            .unwrap()
            .expect(201);

        // Fewer seats on node 1: node 2 shows them, node 0 refuses a newcomer at once,
        // and no live session ends.
        change_licence(
            client,
            &urls[1],
            "acme",
            json!({"model": "concurrent", "seats": 1}),
        )
        .await;
        let seen = view(client, &urls[2], "acme").await;
        assert_eq!(
            (&seen["seats"], &seen["seats_in_use"]),
            (&json!(1), &json!(3))
        );
        let refused = login(client, &urls[0], "acme", "dave").await.unwrap();
        let details = refused.expect_error(409, "licence_limit_reached");
        assert_eq!(
            (&details["seats"], &details["seats_in_use"]),
            (&json!(1), &json!(3))
        );
        let beat = browser(client, &urls[2], &alice.token, "heartbeat").await;
        assert_eq!(beat.unwrap().expect(200)["fence"], alice.fence);

        // Key rotation on node 0. Nodes 1 and 2 have just used the old key, so each
        // holds it in its short-lived trust.
        for node in 1..3 {
            with_key(node, key.clone()).await.expect(200);
        }
        let rotate = format!("{}/api-key", tenant_url(0));
        let rotated = answer(client, Method::POST, rotate, ADMIN, None).await;
        let rotated_at = Instant::now();
        let new_key = rotated.expect(200)["api_key"]
            .as_str()
            .expect("a new key")
            .to_string();
        assert_ne!(new_key, key);
        for node in 0..3 {
            with_key(node, new_key.clone()).await.expect(200);
        }
        with_key(0, key.clone())
            .await
            .expect_error(401, "unauthorized");
        refused_everywhere_within(client, &urls, &tenant_url, &key, rotated_at).await;

        // Deletion on node 2: the tenant, its sessions and its key are gone on the
        // others.
        for node in 0..2 {
            with_key(node, new_key.clone()).await.expect(200);
        }
        let deleted = answer(client, Method::DELETE, tenant_url(2), ADMIN, None).await;
        let deleted_at = Instant::now();
        deleted.expect(204);
        for (node, url) in urls.iter().enumerate().take(2) {
            let gone = answer(client, Method::GET, tenant_url(node), ADMIN, None).await;
            gone.expect_error(404, "tenant_not_found");
            let refused = login(client, url, "acme", "erin").await.unwrap();
            refused.expect_error(404, "tenant_not_found");
            let beat = browser(client, url, &alice.token, "heartbeat").await;
            let beat = beat.unwrap();
            assert_eq!(beat.expect_error(410, "session_ended")["reason"], "evicted");
            let list = format!("{url}/v1/tenants");
            let list = answer(client, Method::GET, list, ADMIN, None).await;
            assert_eq!(list.expect(200)["tenants"], json!([]), "{list:?}");
        }
        refused_everywhere_within(client, &urls, &tenant_url, &new_key, deleted_at).await;
    });
}

#[test]
fn a_socket_and_an_event_stream_on_one_node_hear_what_another_node_did() {
    run(|| async {
        let redis = Redis::start(&[]);
        let nodes = start_nodes(&redis, 2, &PATIENT);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(8);
        let client = &client;
        create_tenant(
            client,
            &urls[0],
            "acme",
            json!({"model": "concurrent", "seats": 5}),
        )
        .await;
        let events_url = format!("{}/v1/tenants/acme/events/stream", urls[1]);
        let mut events = live::stream(&events_url, ADMIN, None).await;
        let mut tabs = Vec::new();
        for user in ["ann", "bob"] {
            let tab = Admitted::of(0, &login(client, &urls[0], "acme", user).await.unwrap());
            // The tab's socket is on the other node.
            let mut socket = live::connect(&urls[1], &tab.token, &urls[1])
                .await
                .expect("the socket opens");
            assert_eq!(live::next_frame(&mut socket).await["type"], "heartbeat");
            tabs.push((tab, socket));
        }
        for user in ["ann", "bob"] {
            let event = events.next().await;
            assert_eq!(
                (event.data["type"].as_str(), event.data["user"].as_str()),
                (Some("admitted"), Some(user))
            );
        }
        // A revoke on node 0 reaches ann's socket on node 1, and node 1's stream.
        let ann = sessions(client, &urls[0], "acme")
            .await
            .into_iter()
            .find(|s| s["user"] == "ann")
            .expect("ann's session");
        let url = format!(
            "{}/v1/tenants/acme/sessions/{}",
            urls[0],
            ann["id"].as_str().unwrap()
        );
        answer(client, Method::DELETE, url, ADMIN, None)
            .await
            .expect(204);
        live::assert_ended(&mut tabs[0].1, "revoked").await;
        let event = events.next().await;
        assert_eq!(
            (event.data["type"].as_str(), event.data["reason"].as_str()),
            (Some("ended"), Some("revoked"))
        );
        // Heartbeat frames on node 1 keep bob's seat as HTTP heartbeats would.
        let beat = live::heartbeat(&mut tabs[1].1).await;
        assert_eq!(beat["fence"], tabs[1].0.fence);
        // Deleting the tenant on node 0 ends bob's socket and the stream on node 1.
        let url = format!("{}/v1/tenants/acme", urls[0]);
        answer(client, Method::DELETE, url, ADMIN, None)
            .await
            .expect(204);
        live::assert_ended(&mut tabs[1].1, "evicted").await;
        loop {
            let event = events.next().await;
            if event.event.as_deref() == Some("end") {
                break;
            }
        }
    });
}

/// Polls `key` on every node until [`KEY_TRUST`] has passed since `since`: once a node
/// stops taking it, it never takes it again; and a request sent after that bound is
/// refused as `unauthorized` by every node.
async fn refused_everywhere_within(
    client: &awc::Client,
    urls: &[String],
    tenant_url: &dyn Fn(usize) -> String,
    key: &str,
    since: Instant,
) {
    let mut refused = vec![false; urls.len()];
    while since.elapsed() < KEY_TRUST {
        for (node, refused) in refused.iter_mut().enumerate() {
            let seen = answer(client, Method::GET, tenant_url(node), key, None).await;
            match seen.status {
                200 => assert!(!*refused, "node {node} accepted the key again"),
                // A deleted tenant's key may find the tenant gone before it is
                // forgotten.
                401 | 404 => *refused = true,
                _ => panic!("node {node}: {seen:?}"),
            }
        }
        pause(Duration::from_millis(50)).await;
    }
    for node in 0..urls.len() {
        let seen = answer(client, Method::GET, tenant_url(node), key, None).await;
        seen.expect_error(401, "unauthorized");
    }
}

// ---------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------

/// Logins of the storm in which a node is killed.
const KILL_LOGINS: usize = 3_000;
/// Logins acknowledged before the node is killed.
const KILL_AFTER: usize = 1_000;

#[test]
fn a_node_killed_mid_storm_loses_nothing_it_acknowledged() {
    run(|| async {
        let redis = Redis::start(&[]);
        let mut nodes = start_nodes(&redis, 3, &PATIENT);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(96);
        let (client, urls_ref) = (&client, &urls);
        create_tenant(
            client,
            &urls[0],
            "kill",
            json!({"model": "concurrent", "seats": KILL_LOGINS, "max_users": KILL_LOGINS}),
        )
        .await;
        let victim = 2;
        let mut answers = stream::iter(0..KILL_LOGINS)
            .map(|i| async move {
                let node = i % 3;
                let user = format!("user-{i}");
                (i, node, login(client, &urls_ref[node], "kill", &user).await)
            })
            .buffer_unordered(96);
        let mut admitted: Vec<Admitted> = Vec::new();
        let mut lost = 0;
        let mut killed = false;
        while let Some((i, node, answer)) = answers.next().await {
            match answer {
                Ok(answer) if answer.status == 201 => admitted.push(Admitted::of(node, &answer)),
                Ok(answer) => panic!("login {i} on node {node}: {answer:?}"),
                Err(_) if node == victim && killed => lost += 1,
                Err(e) => panic!("login {i} on node {node}: {e}"),
            }
            if !killed && admitted.len() >= KILL_AFTER {
                nodes[victim].kill();
                killed = true;
            }
        }
        drop(answers);
        let by_node = |n: usize| admitted.iter().filter(|a| a.node == n).count();
        let sent_to = |n: usize| (0..KILL_LOGINS).filter(|i| i % 3 == n).count();
        assert!(
            by_node(victim) > 0,
            "the node was killed before it admitted"
        );
        assert!(lost > 0, "the node was killed after the storm");
        for node in (0..3).filter(|n| *n != victim) {
            assert_eq!(
                by_node(node),
                sent_to(node),
                "node {node} stopped admitting"
            );
        }

        // Every acknowledged login holds its session, whichever node admitted it.
        let live = [0, 1];
        let held = holders(client, &urls[0], "kill").await;
        for session in &admitted {
            assert!(
                held.contains(&(session.user.clone(), session.fence)),
                "{session:?} is not in the list"
            );
        }
        let seen = view(client, &urls[1], "kill").await;
        let in_use = seen["seats_in_use"].as_u64().expect("a count");
        assert!(in_use <= KILL_LOGINS as u64, "{seen}");
        assert_eq!(in_use, held.len() as u64, "{seen}");
        all_heartbeat(client, &urls, &live, &admitted).await;
    });
}

/// What one request of the fault traffic got.
#[derive(Debug)]
struct Sent {
    node: usize,
    what: &'static str,
    at: Instant,
    took: Duration,
    answer: Result<Answer, String>,
}

/// Traffic while Redis is killed and restarted, or paused: logins of new users and
/// heartbeats of admitted sessions, over every node, `in_flight` at a time, until
/// `stop` is set. Every answer is recorded in `sent`, every admission in `admitted`.
async fn traffic(
    client: &awc::Client,
    urls: &[String],
    tenant: &str,
    in_flight: usize,
    stop: &Cell<bool>,
    sent: &RefCell<Vec<Sent>>,
    admitted: &RefCell<Vec<Admitted>>,
) {
    stream::iter((0usize..).take_while(|_| !stop.get()))
        .for_each_concurrent(in_flight, |i| async move {
            let beat = admitted
                .borrow()
                .get((i / 2) % admitted.borrow().len().max(1))
                .cloned();
            let at = Instant::now();
            let (node, what, answer) = match beat.filter(|_| i % 2 == 1) {
                Some(session) => {
                    let node = (session.node + 1) % urls.len();
                    let answer = browser(client, &urls[node], &session.token, "heartbeat").await;
                    (node, "heartbeat", answer)
                }
                None => {
                    let node = (i / 2) % urls.len();
                    let user = format!("user-{i}");
                    (
                        node,
                        "login",
                        login(client, &urls[node], tenant, &user).await,
                    )
                }
            };
            if let Ok(answer) = &answer {
                if answer.status == 201 {
                    admitted.borrow_mut().push(Admitted::of(node, answer));
                }
            }
            sent.borrow_mut().push(Sent {
                node,
                what,
                at,
                took: at.elapsed(),
                answer,
            });
            // Keeps the traffic from spinning while every answer is a quick refusal.
            pause(Duration::from_millis(5)).await;
        })
        .await;
}

/// Whether an answer is one a healthy node gives this traffic.
fn healthy(answer: &Result<Answer, String>) -> bool {
    matches!(answer, Ok(a) if a.status == 200 || a.status == 201
        || (a.status == 409 && a.code() == "licence_limit_reached"))
}

/// Every request got an answer within the deadline plus the margin.
fn all_answered_in_time(sent: &[Sent]) {
    for s in sent {
        assert!(s.answer.is_ok(), "not answered: {s:?}");
        assert!(
            s.took <= DEADLINE + MARGIN,
            "a {} answered after {:?}, past the deadline {DEADLINE:?} and {MARGIN:?}: {s:?}",
            s.what,
            s.took
        );
    }
}

/// After the fault: every node ready, every acknowledged session heartbeats through
/// another node with its fence, and the tenant holds exactly the acknowledged
/// sessions (what was decided but not acknowledged has been withdrawn), within its
/// seats.
async fn nothing_acknowledged_lost(
    client: &awc::Client,
    urls: &[String],
    tenant: &str,
    seats: u64,
    admitted: &[Admitted],
) {
    for url in urls {
        eventually(&format!("{url}/readyz answers 200"), || async {
            readyz(client, url).await == Some(200)
        })
        .await;
    }
    let live: Vec<usize> = (0..urls.len()).collect();
    all_heartbeat(client, urls, &live, admitted).await;
    // Each node's next call to the tenant carries what it withdraws.
    for url in urls {
        view(client, url, tenant).await;
    }
    let acknowledged: BTreeSet<(String, u64)> =
        admitted.iter().map(|a| (a.user.clone(), a.fence)).collect();
    let held = holders(client, &urls[0], tenant).await;
    let missing: Vec<_> = acknowledged.difference(&held).collect();
    assert!(missing.is_empty(), "acknowledged, then lost: {missing:?}");
    let extra: Vec<_> = held.difference(&acknowledged).collect();
    assert!(extra.is_empty(), "held, never acknowledged: {extra:?}");
    for url in urls {
        let seen = view(client, url, tenant).await;
        let in_use = seen["seats_in_use"].as_u64().expect("a count");
        assert!(in_use <= seats, "{seen}");
        assert_eq!(in_use, held.len() as u64, "{seen}");
    }
}

#[test]
fn redis_killed_and_restarted_with_aof_loses_nothing_acknowledged() {
    run(|| async {
        const SEATS: u64 = 60;
        let mut redis = Redis::durable();
        let flags = fault_deadline();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let nodes = start_nodes(&redis, 2, &flags);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(32);
        let client = &client;
        create_tenant(
            client,
            &urls[0],
            "aof",
            json!({"model": "concurrent", "seats": SEATS, "max_users": 1_000_000}),
        )
        .await;
        let stop = Cell::new(false);
        let sent: RefCell<Vec<Sent>> = RefCell::new(Vec::new());
        let admitted: RefCell<Vec<Admitted>> = RefCell::new(Vec::new());
        let killed_at = Cell::new(None);
        let restarting_at = Cell::new(None);
        let control = async {
            eventually("logins admitted before the kill", || async {
                admitted.borrow().len() >= 40
            })
            .await;
            redis.kill();
            let killed = Instant::now();
            killed_at.set(Some(killed));
            // Down long enough that every node answers the outage many times.
            eventually("every node answers 503 while Redis is down", || async {
                let sent = sent.borrow();
                killed.elapsed() >= 2 * DEADLINE
                    && (0..urls.len()).all(|node| {
                        sent.iter()
                            .filter(|s| s.node == node && s.at > killed)
                            .filter(|s| matches!(&s.answer, Ok(a) if a.is_unavailable()))
                            .count()
                            >= 5
                    })
            })
            .await;
            restarting_at.set(Some(Instant::now()));
            redis.restart();
            let restarted = Instant::now();
            eventually("every node recovers by itself", || async {
                let sent = sent.borrow();
                (0..urls.len()).all(|node| {
                    sent.iter()
                        .filter(|s| s.node == node && s.at > restarted)
                        .filter(|s| healthy(&s.answer))
                        .count()
                        >= 5
                })
            })
            .await;
            stop.set(true);
        };
        futures::join!(
            traffic(client, &urls, "aof", 16, &stop, &sent, &admitted),
            control
        );
        let sent = sent.into_inner();
        let (killed, restarting) = (killed_at.get().unwrap(), restarting_at.get().unwrap());
        all_answered_in_time(&sent);
        for s in &sent {
            let answered = s.at + s.took;
            if s.at > killed && answered < restarting {
                assert!(
                    matches!(&s.answer, Ok(a) if a.is_unavailable()),
                    "while Redis was down: {s:?}"
                );
            }
            if answered < killed {
                assert!(healthy(&s.answer), "before the kill: {s:?}");
            }
        }
        let admitted = admitted.into_inner();
        nothing_acknowledged_lost(client, &urls, "aof", SEATS, &admitted).await;
        eprintln!(
            "Redis kill: {} requests, {} logins acknowledged, {} answered 503 unavailable",
            sent.len(),
            admitted.len(),
            sent.iter()
                .filter(|s| matches!(&s.answer, Ok(a) if a.is_unavailable()))
                .count()
        );
    });
}

#[test]
fn a_paused_redis_answers_503_within_the_deadline_and_recovers() {
    run(|| async {
        const SEATS: u64 = 50;
        let redis = Redis::start(&[]);
        let flags = fault_deadline();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let nodes = start_nodes(&redis, 2, &flags);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(32);
        let client = &client;
        create_tenant(
            client,
            &urls[0],
            "paused",
            json!({"model": "concurrent", "seats": SEATS}),
        )
        .await;
        let mut admitted = Vec::new();
        for i in 0..6 {
            let node = i % 2;
            let answer = login(client, &urls[node], "paused", &format!("before-{i}")).await;
            admitted.push(Admitted::of(node, &answer.unwrap()));
        }
        for url in &urls {
            assert_eq!(readyz(client, url).await, Some(200));
        }

        redis.signal(libc::SIGSTOP);
        // Waves a little apart, so that some requests arrive while a call to the
        // stalled Redis is already waiting: each must still be answered in time.
        let admitted_ref = &admitted;
        let urls_ref = &urls;
        let wave = |n: usize| async move {
            pause(DEADLINE / 3 * n as u32).await;
            let requests = (0..8).map(|i| async move {
                let node = (n + i) % 2;
                let url = &urls_ref[node];
                let at = Instant::now();
                let (what, answer) = match i % 4 {
                    0 | 1 => (
                        "login",
                        login(client, url, "paused", &format!("during-{n}-{i}")).await,
                    ),
                    2 => {
                        let session = &admitted_ref[(n + i) % admitted_ref.len()];
                        (
                            "heartbeat",
                            browser(client, url, &session.token, "heartbeat").await,
                        )
                    }
                    _ => {
                        let tenant = format!("{url}/v1/tenants/paused");
                        ("view", send(client, Method::GET, tenant, ADMIN, None).await)
                    }
                };
                Sent {
                    node,
                    what,
                    at,
                    took: at.elapsed(),
                    answer,
                }
            });
            futures::future::join_all(requests).await
        };
        let readiness = async {
            for url in urls_ref {
                eventually(
                    &format!("{url}/readyz answers 503 while Redis is paused"),
                    || async { readyz(client, url).await == Some(503) },
                )
                .await;
            }
        };
        let (a, b, c, ()) = futures::join!(wave(0), wave(1), wave(2), readiness);
        let during: Vec<Sent> = a.into_iter().chain(b).chain(c).collect();
        all_answered_in_time(&during);
        for s in &during {
            assert!(
                matches!(&s.answer, Ok(a) if a.is_unavailable()),
                "while Redis was paused: {s:?}"
            );
        }

        redis.signal(libc::SIGCONT);
        for (node, url) in urls.iter().enumerate() {
            let started = Instant::now();
            for n in 0.. {
                let answer = login(client, url, "paused", &format!("after-{node}-{n}")).await;
                match answer {
                    Ok(answer) if answer.status == 201 => {
                        admitted.push(Admitted::of(node, &answer));
                        break;
                    }
                    Ok(answer) if answer.is_unavailable() => {}
                    other => panic!("node {node} after the pause: {other:?}"),
                }
                assert!(started.elapsed() < PATIENCE, "node {node} does not recover");
                pause(Duration::from_millis(50)).await;
            }
        }
        nothing_acknowledged_lost(client, &urls, "paused", SEATS, &admitted).await;
    });
}

// ---------------------------------------------------------------------------------
// Fencing
// ---------------------------------------------------------------------------------

/// `count` logins one after another, over every node in turn: each fence is above the
/// one before, the first above `last`. Returns them.
async fn logins_in_turn(
    client: &awc::Client,
    urls: &[String],
    tenant: &str,
    prefix: &str,
    count: usize,
    last: &mut u64,
) -> Vec<Admitted> {
    let mut admitted = Vec::new();
    for i in 0..count {
        let node = i % urls.len();
        let user = format!("{prefix}-{i}");
        let answer = login(client, &urls[node], tenant, &user).await;
        let session = Admitted::of(node, &answer.unwrap());
        assert!(
            session.fence > *last,
            "{session:?} is not above the fence before it, {last}"
        );
        *last = session.fence;
        admitted.push(session);
    }
    admitted
}

#[test]
fn fences_grow_across_nodes_node_restarts_and_redis_restarts() {
    run(|| async {
        let mut redis = Redis::durable();
        let mut nodes = start_nodes(&redis, 3, &[]);
        let mut urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(64);
        let client = &client;
        create_tenant(
            client,
            &urls[0],
            "fence",
            json!({"model": "concurrent", "seats": 1000, "max_users": 10_000}),
        )
        .await;
        let mut last = 0;
        let mut kept = logins_in_turn(client, &urls, "fence", "first", 30, &mut last).await;

        // At once over every node: all different, all above what came before.
        let urls_ref = &urls;
        let together: Vec<Admitted> = stream::iter(0..300)
            .map(|i| async move {
                let node = i % 3;
                let user = format!("together-{i}");
                let answer = login(client, &urls_ref[node], "fence", &user).await;
                Admitted::of(node, &answer.unwrap())
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let fences: BTreeSet<u64> = together.iter().map(|a| a.fence).collect();
        assert_eq!(fences.len(), together.len(), "fences repeat");
        assert!(
            fences.first().copied() > Some(last),
            "a fence at or below {last}"
        );
        last = fences.last().copied().unwrap_or(last);
        kept.extend(together);

        // Every node killed and replaced; Redis stays up.
        for node in &mut nodes {
            node.kill();
        }
        nodes = start_nodes(&redis, 3, &[]);
        urls = nodes.iter().map(|n| n.url.clone()).collect();
        kept.extend(logins_in_turn(client, &urls, "fence", "restarted", 30, &mut last).await);
        all_heartbeat(client, &urls, &[0, 1, 2], &kept).await;

        // Redis killed and restarted from its append-only file; the nodes reconnect.
        redis.kill();
        redis.restart();
        for (node, url) in urls.iter().enumerate() {
            let started = Instant::now();
            for n in 0.. {
                let user = format!("reconnect-{node}-{n}");
                match login(client, url, "fence", &user).await {
                    Ok(answer) if answer.status == 201 => {
                        let session = Admitted::of(node, &answer);
                        assert!(session.fence > last, "{session:?} is not above {last}");
                        last = session.fence;
                        kept.push(session);
                        break;
                    }
                    Ok(answer) if answer.is_unavailable() => {}
                    other => panic!("node {node} after the Redis restart: {other:?}"),
                }
                assert!(
                    started.elapsed() < PATIENCE,
                    "node {node} does not reconnect"
                );
                pause(Duration::from_millis(50)).await;
            }
        }
        let after = logins_in_turn(client, &urls, "fence", "after-redis", 30, &mut last).await;
        kept.extend(after);
        all_heartbeat(client, &urls, &[0, 1, 2], &kept).await;
        let held: BTreeMap<String, u64> = sessions(client, &urls[2], "fence")
            .await
            .iter()
            .map(|s| {
                (
                    s["user"].as_str().expect("a user").to_string(),
                    s["fence"].as_u64().expect("a fence"),
                )
            })
            .collect();
        for session in &kept {
            assert_eq!(held.get(&session.user), Some(&session.fence), "{session:?}");
        }
    });
}

/// A webhook target on loopback: the event ids it got, in the order they came.
fn webhook_receiver() -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let got: std::sync::Arc<Mutex<Vec<String>>> = Default::default();
    let data = web::Data::new(got.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |body: web::Bytes, got: web::Data<std::sync::Arc<Mutex<Vec<String>>>>| async move {
                // Slow, so that two nodes delivering at once would overlap.
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = event["id"].as_str().unwrap_or_default().to_owned();
                got.lock().unwrap().push(id);
                HttpResponse::NoContent().finish()
            },
        ))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), got)
}

#[test]
fn one_node_delivers_each_webhook_event_once_and_another_takes_over_when_it_dies() {
    run(|| async {
        let redis = Redis::start(&[]);
        let flags = [
            "--write-deadline-secs",
            LONG_DEADLINE_SECS,
            "--webhook-allow-host",
            "127.0.0.1",
        ];
        let mut nodes = start_nodes(&redis, 2, &flags);
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        let client = client(8);
        let client = &client;
        let (target, got) = webhook_receiver();
        let key = create_tenant(
            client,
            &urls[0],
            "acme",
            json!({"model": "concurrent", "seats": 100}),
        )
        .await;
        let hook = format!("{}/v1/tenants/acme/webhooks/crm", urls[1]);
        let body =
            json!({"url": target, "events": ["admitted"], "secret": "whsec_0123456789abcdef"});
        answer(client, Method::PUT, hook, &key, Some(body))
            .await
            .expect(201);
        let delivered = |n: usize| {
            let got = got.clone();
            move || {
                let got = got.clone();
                async move { got.lock().unwrap().len() >= n }
            }
        };
        for i in 0..10 {
            login(client, &urls[i % 2], "acme", &format!("u{i}"))
                .await
                .unwrap()
                .expect(201);
        }
        eventually("ten deliveries", delivered(10)).await;
        pause(Duration::from_millis(500)).await;
        let first: Vec<String> = got.lock().unwrap().clone();
        let unique: BTreeSet<&String> = first.iter().collect();
        assert_eq!(
            (first.len(), unique.len()),
            (10, 10),
            "two nodes, each event once: {first:?}"
        );
        // Whichever node delivered, one is left; it takes the lease over and goes on
        // where the first left off.
        nodes[0].kill();
        for i in 10..20 {
            login(client, &urls[1], "acme", &format!("u{i}"))
                .await
                .unwrap()
                .expect(201);
        }
        eventually("twenty deliveries", delivered(20)).await;
        pause(Duration::from_millis(500)).await;
        let all: Vec<String> = got.lock().unwrap().clone();
        let unique: BTreeSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), 20, "{all:?}");
        assert!(
            all.len() <= 21,
            "at most the delivery under way comes again: {all:?}"
        );
        let log = answer(
            client,
            Method::GET,
            format!("{}/v1/tenants/acme/events?limit=100", urls[1]),
            &key,
            None,
        )
        .await;
        let ids: Vec<String> = log.expect(200)["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "admitted")
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        let mut firsts: Vec<String> = Vec::new();
        for id in &all {
            if !firsts.contains(id) {
                firsts.push(id.clone());
            }
        }
        assert_eq!(firsts, ids, "in the log's order, across the takeover");
    });
}
