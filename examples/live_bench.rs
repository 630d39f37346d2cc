//! The live channel's figures (SPEC §11), measured against a real `usher serve`:
//!
//! 1. heartbeats over a tab's WebSocket (`GET /v1/sessions/{token}/live`, one
//!    `{"type": "heartbeat"}` frame at a time) against HTTP heartbeats
//!    (`POST /v1/sessions/{token}/heartbeat`, one request at a time), the same number
//!    of clients, in alternating rounds; throughput and heartbeats per CPU-second of
//!    the server process (utime + stime from `/proc/<pid>/stat`), medians and their
//!    ratio;
//! 2. the server's resident memory (`VmRSS`) before 10,000 sessions log in, once they
//!    have, and once each holds an idle socket;
//! 3. with every socket open, the time from sending `DELETE
//!    /v1/tenants/{tenant}/sessions/{id}` to that session's socket receiving
//!    `{"type": "ended", "reason": "revoked"}`.
//!
//! It starts the server itself (a release build, on a free loopback port, with a
//! temporary data dir) and raises its own limit of open files first, which the server
//! inherits:
//!
//! ```text
//! cargo build --release --bin usher --example live_bench
//! target/release/examples/live_bench                 # all three parts
//! target/release/examples/live_bench --json          # the figures as JSON
//! target/release/examples/live_bench --help
//! ```
//!
//! The client runs on the same machine as the server, so both share its cores; the
//! WebSocket and HTTP clients are the same library (awc) on the same threads. See
//! BENCHMARKS.md, "Live channel".

use std::cell::RefCell;
use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::{BoxedSocket, Client, Connector};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// The administrator's token the bench gives its server.
const ADMIN: &str = "live-bench-admin-token";

/// How long any single answer or pushed frame may take before it counts as an error.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Parser, Debug, Clone)]
#[command(
    about = "WebSocket vs HTTP heartbeats, idle sockets and revoke-to-tab latency of usher serve"
)]
struct Args {
    /// The `usher` binary to start.
    #[arg(long, default_value = "target/release/usher")]
    usher: PathBuf,
    /// Where the server keeps state: `redb` (as `usher serve` by default) or `memory`.
    #[arg(long, default_value = "redb")]
    store: String,
    /// The server's HTTP workers (`USHER_WORKERS`) [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Heartbeat clients at once, each one request or frame at a time.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Client threads the heartbeat clients are spread over.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Tenants the heartbeat clients' sessions are spread over.
    #[arg(long, default_value_t = 8)]
    heartbeat_tenants: usize,
    /// Rounds of each kind; WebSocket and HTTP alternate, in turn first.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per round.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Seconds of each kind before the rounds, not counted.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Sessions, each with an idle socket, held at once.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Tenants those sessions are spread over.
    #[arg(long, default_value_t = 10)]
    tenants: usize,
    /// Logins in flight at once while the sessions are made.
    #[arg(long, default_value_t = 64)]
    login_concurrency: usize,
    /// Sockets opened at a time.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Seconds everything stays idle before the server's memory is read.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Sessions revoked while every socket is open.
    #[arg(long, default_value_t = 1000)]
    revokes: usize,
    /// Revocations in flight at once.
    #[arg(long, default_value_t = 1)]
    revoke_concurrency: usize,
    /// Leave out part 1 (heartbeat throughput).
    #[arg(long)]
    skip_heartbeats: bool,
    /// Leave out parts 2 and 3 (idle sockets, revocations).
    #[arg(long)]
    skip_sockets: bool,
    /// Print the figures as one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

type Socket = Framed<BoxedSocket, Codec>;

fn main() -> Result<(), String> {
    let args = Args::parse();
    let want = (args.sockets + args.clients) as libc::rlim_t * 2 + 1024;
    let nofile = raise_nofile(want.max(65_536));
    if nofile < (args.sockets + args.clients) as libc::rlim_t + 512 {
        return Err(format!(
            "the limit of open files is {nofile}, too low for {} sockets: raise it (ulimit -n 65536)",
            args.sockets
        ));
    }
    let server = Server::start(&args)?;
    let report =
        actix_rt::System::new().block_on(run(args.clone(), server.pid, server.base.clone()));
    drop(server);
    let report = report?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    Ok(())
}

async fn run(args: Args, pid: u32, base: String) -> Result<Value, String> {
    let client = Client::builder()
        .connector(Connector::new().limit(0))
        .timeout(PATIENCE)
        .finish();
    wait_ready(&client, &base).await?;
    let mut report = json!({
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get())},
        "store": args.store,
    });
    if !args.skip_heartbeats {
        report["heartbeats"] = heartbeats(&args, &client, &base, pid).await?;
    }
    if !args.skip_sockets {
        let (memory, revocations) = sockets(&args, &client, &base, pid).await?;
        report["idle_sockets"] = memory;
        report["revoke_to_tab"] = revocations;
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    pid: u32,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &Args) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let log = dir.path().join("usher.log");
        let stderr = fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut command = Command::new(&args.usher);
        command
            .arg("serve")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--store")
            .arg(&args.store)
            .env("USHER_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(workers) = args.workers {
            command.env("USHER_WORKERS", workers.to_string());
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.usher.display()))?;
        Ok(Server {
            pid: child.id(),
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM drains; past a while, SIGKILL.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(text) = fs::read_to_string(&self.log) {
            eprintln!("the server did not stop in 15 s; its log:\n{text}");
        }
    }
}

/// Raises this process's soft limit of open files to `want` (and the hard limit if
/// allowed), or as far as the hard limit goes. Children inherit it. Returns the limit.
fn raise_nofile(want: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur >= want {
            return limit.rlim_cur;
        }
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: limit.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        let to_hard = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &to_hard) == 0 {
            return limit.rlim_max;
        }
        limit.rlim_cur
    }
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which sits in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// A process's resident memory, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

// ---------------------------------------------------------------------------------
// The HTTP API, as an administrator and as a tenant

async fn wait_ready(client: &Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the server was not ready within 30 s".into());
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a tenant with a concurrent licence of `seats` seats (and as many users),
/// and returns its API key.
async fn put_tenant(
    client: &Client,
    base: &str,
    tenant: &str,
    seats: usize,
) -> Result<String, String> {
    let licence = json!({"model": "concurrent", "seats": seats, "max_users": seats,
        "idle_timeout_secs": 3600});
    let mut response = client
        .put(format!("{base}/v1/tenants/{tenant}"))
        .bearer_auth(ADMIN)
        .send_json(&licence)
        .await
        .map_err(|e| format!("PUT tenant {tenant}: {e}"))?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if let Some(key) = body["api_key"].as_str() {
        return Ok(key.to_owned());
    }
    let mut response = client
        .post(format!("{base}/v1/tenants/{tenant}/api-key"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .map_err(|e| format!("POST api-key of {tenant}: {e}"))?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    body["api_key"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no API key for {tenant}: {body}"))
}

/// A live session: its tenant, token and handle.
#[derive(Clone)]
struct Session {
    tenant: String,
    token: String,
    id: String,
}

async fn login(
    client: &Client,
    base: &str,
    tenant: &str,
    key: &str,
    user: &str,
) -> Result<Session, String> {
    let mut response = client
        .post(format!("{base}/v1/tenants/{tenant}/sessions"))
        .bearer_auth(key)
        .send_json(&json!({"user": user}))
        .await
        .map_err(|e| format!("login: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("login: {e}"))?;
    if status.as_u16() != 201 {
        return Err(format!("login answered {status}: {body}"));
    }
    let token = body["session"]
        .as_str()
        .ok_or_else(|| format!("no session in {body}"))?
        .to_owned();
    let id = usher::SessionToken::parse(&token)
        .map_err(|e| format!("a token that does not parse: {e}"))?
        .id()
        .to_string();
    Ok(Session {
        tenant: tenant.to_owned(),
        token,
        id,
    })
}

/// `count` sessions of distinct users spread over the tenants, `concurrency` logins
/// at a time, in order.
async fn login_many(
    client: &Client,
    base: &str,
    tenants: &[(String, String)],
    count: usize,
    concurrency: usize,
) -> Result<Vec<Session>, String> {
    let mut sessions: Vec<(usize, Session)> = futures::stream::iter(0..count)
        .map(|i| {
            let (tenant, key) = &tenants[i % tenants.len()];
            async move {
                let user = format!("user-{i}");
                login(client, base, tenant, key, &user)
                    .await
                    .map(|s| (i, s))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    sessions.sort_by_key(|(i, _)| *i);
    Ok(sessions.into_iter().map(|(_, s)| s).collect())
}

/// Opens a tab's socket and reads the upgrade's heartbeat, its first frame.
async fn open_socket(client: &Client, base: &str, token: &str) -> Result<Socket, String> {
    let url = format!("{base}/v1/sessions/{token}/live").replacen("http", "ws", 1);
    let (_, mut socket) = client
        .ws(url)
        .max_frame_size(64 * 1024)
        .connect()
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let first = next_json(&mut socket).await?;
    if first["type"] != "heartbeat" {
        return Err(format!("the first frame is not a heartbeat: {first}"));
    }
    Ok(socket)
}

/// The next text frame as JSON; pings are answered on the way.
async fn next_json(socket: &mut Socket) -> Result<Value, String> {
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .map_err(|_| "no frame within 10 s".to_string())?
            .ok_or("the socket closed")?
            .map_err(|e| format!("a bad frame: {e}"))?;
        match frame {
            Frame::Text(text) => return serde_json::from_slice(&text).map_err(|e| e.to_string()),
            Frame::Ping(bytes) => socket
                .send(Message::Pong(bytes))
                .await
                .map_err(|e| format!("pong: {e}"))?,
            Frame::Pong(_) => {}
            other => return Err(format!("an unexpected frame: {other:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------
// Part 1: heartbeats over the socket vs over HTTP

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Socket,
    Http,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Socket => "websocket",
            Mode::Http => "http",
        }
    }
}

/// What one client thread did in a round.
#[derive(Debug, Default)]
struct Tally {
    beats: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, what: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what.to_string());
        }
    }

    fn add(&mut self, other: Tally) {
        self.beats += other.beats;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A round for a client thread: heartbeat in this mode until then.
struct Round {
    mode: Mode,
    until: Instant,
    done: oneshot::Sender<Tally>,
}

/// A client thread: its own actix system, with a socket and an HTTP client (with its
/// own connection) for each of its sessions, kept from round to round.
fn client_thread(
    base: String,
    tokens: Vec<String>,
    ready: oneshot::Sender<Result<(), String>>,
) -> mpsc::UnboundedSender<Round> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Round>();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let client = Client::builder()
                .connector(Connector::new().limit(0))
                .timeout(PATIENCE)
                .finish();
            let mut sockets = Vec::new();
            for token in &tokens {
                match open_socket(&client, &base, token).await {
                    Ok(socket) => sockets.push(socket),
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                }
            }
            let http: Vec<(Client, String)> = tokens
                .iter()
                .map(|token| {
                    let client = Client::builder().timeout(PATIENCE).finish();
                    (client, format!("{base}/v1/sessions/{token}/heartbeat"))
                })
                .collect();
            let _ = ready.send(Ok(()));
            while let Some(round) = rx.recv().await {
                let tallies = match round.mode {
                    Mode::Socket => {
                        futures::future::join_all(
                            sockets.iter_mut().map(|s| socket_loop(s, round.until)),
                        )
                        .await
                    }
                    Mode::Http => {
                        futures::future::join_all(
                            http.iter().map(|(c, url)| http_loop(c, url, round.until)),
                        )
                        .await
                    }
                };
                let mut sum = Tally::default();
                for tally in tallies {
                    sum.add(tally);
                }
                let _ = round.done.send(sum);
            }
            for mut socket in sockets {
                let _ = socket.send(Message::Close(None)).await;
            }
        });
    });
    tx
}

async fn socket_loop(socket: &mut Socket, until: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < until {
        if let Err(e) = socket
            .send(Message::Text(r#"{"type":"heartbeat"}"#.into()))
            .await
        {
            tally.error(format!("send: {e}"));
            break;
        }
        match next_json(socket).await {
            Ok(answer) if answer["type"] == "heartbeat" && answer["expires_at"].is_string() => {
                tally.beats += 1
            }
            Ok(answer) => tally.error(answer),
            Err(e) => {
                tally.error(e);
                break;
            }
        }
    }
    tally
}

async fn http_loop(client: &Client, url: &str, until: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < until {
        match client.post(url).send().await {
            Ok(mut response) => {
                let status = response.status();
                match response.body().await {
                    Ok(body) => match serde_json::from_slice::<Value>(&body) {
                        Ok(answer)
                            if status.as_u16() == 200 && answer["expires_at"].is_string() =>
                        {
                            tally.beats += 1
                        }
                        Ok(answer) => tally.error(format!("{status}: {answer}")),
                        Err(e) => tally.error(format!("{status}: {e}")),
                    },
                    Err(e) => tally.error(format!("body: {e}")),
                }
            }
            Err(e) => {
                tally.error(format!("request: {e}"));
                actix_rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

/// One measured round.
struct Measured {
    mode: Mode,
    beats: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn per_sec(&self) -> f64 {
        self.beats as f64 / self.secs
    }
    fn per_cpu_sec(&self) -> f64 {
        self.beats as f64 / self.server_cpu.max(1e-9)
    }
    fn server_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.beats.max(1) as f64
    }
    fn client_us(&self) -> f64 {
        self.client_cpu * 1e6 / self.beats.max(1) as f64
    }
}

async fn round(
    threads: &[mpsc::UnboundedSender<Round>],
    mode: Mode,
    secs: u64,
    pid: u32,
) -> Result<Measured, String> {
    let me = std::process::id();
    let (server0, client0) = (cpu_secs(pid), cpu_secs(me));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut answers = Vec::new();
    for thread in threads {
        let (done, answer) = oneshot::channel();
        thread
            .send(Round { mode, until, done })
            .map_err(|_| "a client thread has gone")?;
        answers.push(answer);
    }
    let mut sum = Tally::default();
    for answer in answers {
        sum.add(answer.await.map_err(|_| "a client thread has gone")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Measured {
        mode,
        beats: sum.beats,
        errors: sum.errors,
        first_error: sum.first_error,
        secs: elapsed,
        server_cpu: cpu_secs(pid) - server0,
        client_cpu: cpu_secs(me) - client0,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn heartbeats(args: &Args, client: &Client, base: &str, pid: u32) -> Result<Value, String> {
    let mut tenants = Vec::new();
    for t in 0..args.heartbeat_tenants.max(1) {
        let tenant = format!("hb-{t}");
        let key = put_tenant(client, base, &tenant, args.clients.max(1)).await?;
        tenants.push((tenant, key));
    }
    let sessions = login_many(client, base, &tenants, args.clients, args.login_concurrency).await?;
    let threads_n = args.client_threads.clamp(1, args.clients.max(1));
    let mut threads = Vec::new();
    for t in 0..threads_n {
        let tokens: Vec<String> = sessions
            .iter()
            .skip(t)
            .step_by(threads_n)
            .map(|s| s.token.clone())
            .collect();
        let (ready, is_ready) = oneshot::channel();
        threads.push(client_thread(base.to_owned(), tokens, ready));
        is_ready.await.map_err(|_| "a client thread failed")??;
    }
    if !args.json {
        println!(
            "Heartbeats: {} clients ({} sessions in {} tenants), {} client threads, {} rounds of {} s each way",
            args.clients,
            sessions.len(),
            tenants.len(),
            threads_n,
            args.rounds,
            args.secs
        );
    }
    if args.warmup_secs > 0 {
        round(&threads, Mode::Socket, args.warmup_secs, pid).await?;
        round(&threads, Mode::Http, args.warmup_secs, pid).await?;
    }
    let mut rounds = Vec::new();
    for r in 0..args.rounds {
        // In turn first, so neither kind always follows the other.
        let order = if r % 2 == 0 {
            [Mode::Socket, Mode::Http]
        } else {
            [Mode::Http, Mode::Socket]
        };
        for mode in order {
            let m = round(&threads, mode, args.secs, pid).await?;
            if !args.json {
                println!(
                    "  round {} {:<9} {:>8.0} beats/s  {:>8.0} per server CPU-s  server {:>5.1} µs/beat  client {:>5.1} µs/beat  errors {}{}",
                    r + 1,
                    m.mode.name(),
                    m.per_sec(),
                    m.per_cpu_sec(),
                    m.server_us(),
                    m.client_us(),
                    m.errors,
                    m.first_error
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
            }
            rounds.push(m);
        }
    }
    drop(threads);
    let of = |mode: Mode, f: fn(&Measured) -> f64| {
        median(rounds.iter().filter(|m| m.mode == mode).map(f).collect())
    };
    let ws_rate = of(Mode::Socket, Measured::per_sec);
    let http_rate = of(Mode::Http, Measured::per_sec);
    let ws_cpu = of(Mode::Socket, Measured::per_cpu_sec);
    let http_cpu = of(Mode::Http, Measured::per_cpu_sec);
    let ws_client = of(Mode::Socket, Measured::client_us);
    let http_client = of(Mode::Http, Measured::client_us);
    let errors: u64 = rounds.iter().map(|m| m.errors).sum();
    if !args.json {
        println!();
        println!(
            "| medians of {} rounds | websocket | http | websocket / http |",
            args.rounds
        );
        println!("|---|---:|---:|---:|");
        println!(
            "| heartbeats per second | {ws_rate:.0} | {http_rate:.0} | {:.2} |",
            ws_rate / http_rate
        );
        println!(
            "| heartbeats per server CPU-second | {ws_cpu:.0} | {http_cpu:.0} | {:.2} |",
            ws_cpu / http_cpu
        );
        println!(
            "| server CPU per heartbeat | {:.1} µs | {:.1} µs | |",
            1e6 / ws_cpu,
            1e6 / http_cpu
        );
        println!("| client CPU per heartbeat | {ws_client:.1} µs | {http_client:.1} µs | |");
        println!(
            "| errors (all rounds) | {} | {} | |",
            rounds
                .iter()
                .filter(|m| m.mode == Mode::Socket)
                .map(|m| m.errors)
                .sum::<u64>(),
            rounds
                .iter()
                .filter(|m| m.mode == Mode::Http)
                .map(|m| m.errors)
                .sum::<u64>()
        );
        println!();
    }
    Ok(json!({
        "clients": args.clients,
        "rounds": rounds.iter().map(|m| json!({
            "mode": m.mode.name(), "beats": m.beats, "errors": m.errors, "secs": m.secs,
            "server_cpu_secs": m.server_cpu, "client_cpu_secs": m.client_cpu,
            "per_sec": m.per_sec(), "per_server_cpu_sec": m.per_cpu_sec(),
        })).collect::<Vec<_>>(),
        "median": {
            "websocket": {"per_sec": ws_rate, "per_server_cpu_sec": ws_cpu, "client_us": ws_client},
            "http": {"per_sec": http_rate, "per_server_cpu_sec": http_cpu, "client_us": http_client},
        },
        "ratio": {"per_sec": ws_rate / http_rate, "per_server_cpu_sec": ws_cpu / http_cpu},
        "errors": errors,
    }))
}

// ---------------------------------------------------------------------------------
// Parts 2 and 3: idle sockets, and revocations pushed to them

/// How a socket's session ended, as its tab saw it.
enum Outcome {
    /// `{"type": "ended", "reason"}`, and whether a close frame followed.
    Ended { reason: String, closed: bool },
    /// Any other frame or end of the socket.
    Other(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ended { reason, closed } => {
                write!(f, "ended, reason {reason:?}, close frame: {closed}")
            }
            Outcome::Other(what) => write!(f, "{what}"),
        }
    }
}

/// Holds a socket open, answering pings, until the server says the session ended (or
/// anything else happens), and reports when.
async fn watch_socket(mut socket: Socket, done: oneshot::Sender<(Instant, Outcome)>) {
    let outcome = loop {
        match socket.next().await {
            Some(Ok(Frame::Text(text))) => {
                let at = Instant::now();
                let frame: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
                if frame["type"] != "ended" {
                    break (at, Outcome::Other(format!("frame {frame}")));
                }
                let reason = frame["reason"].as_str().unwrap_or("").to_owned();
                let closed = matches!(
                    tokio::time::timeout(PATIENCE, socket.next()).await,
                    Ok(Some(Ok(Frame::Close(_))))
                );
                let _ = socket.send(Message::Close(None)).await;
                break (at, Outcome::Ended { reason, closed });
            }
            Some(Ok(Frame::Ping(bytes))) => {
                let _ = socket.send(Message::Pong(bytes)).await;
            }
            Some(Ok(Frame::Pong(_))) => {}
            Some(Ok(other)) => break (Instant::now(), Outcome::Other(format!("{other:?}"))),
            Some(Err(e)) => break (Instant::now(), Outcome::Other(format!("error {e}"))),
            None => break (Instant::now(), Outcome::Other("closed".into())),
        }
    };
    let _ = done.send(outcome);
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn per(delta: i64, n: usize) -> f64 {
    delta as f64 / n.max(1) as f64
}

async fn sockets(
    args: &Args,
    client: &Client,
    base: &str,
    pid: u32,
) -> Result<(Value, Value), String> {
    let n = args.sockets;
    let tenant_count = args.tenants.max(1);
    let per_tenant = n.div_ceil(tenant_count);
    let mut tenants = Vec::new();
    for t in 0..tenant_count {
        let tenant = format!("tabs-{t}");
        let key = put_tenant(client, base, &tenant, per_tenant).await?;
        tenants.push((tenant, key));
    }
    let settle = Duration::from_secs(args.settle_secs);
    actix_rt::time::sleep(settle).await;
    let rss_before = rss_bytes(pid);

    let started = Instant::now();
    let sessions = login_many(client, base, &tenants, n, args.login_concurrency).await?;
    let login_secs = started.elapsed().as_secs_f64();
    actix_rt::time::sleep(settle).await;
    let rss_sessions = rss_bytes(pid);
    if !args.json {
        println!(
            "Idle sockets: {n} sessions in {tenant_count} tenants logged in in {login_secs:.2} s"
        );
    }

    let started = Instant::now();
    let mut ends: Vec<Option<oneshot::Receiver<(Instant, Outcome)>>> = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut first_failure = None;
    for batch in sessions.chunks(args.batch.max(1)) {
        let opened =
            futures::future::join_all(batch.iter().map(|s| open_socket(client, base, &s.token)))
                .await;
        for socket in opened {
            match socket {
                Ok(socket) => {
                    let (done, end) = oneshot::channel();
                    actix_rt::spawn(watch_socket(socket, done));
                    ends.push(Some(end));
                }
                Err(e) => {
                    failed += 1;
                    first_failure.get_or_insert(e);
                    ends.push(None);
                }
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    actix_rt::time::sleep(settle).await;
    let rss_sockets = rss_bytes(pid);
    let open = n - failed;

    let session_bytes = per(rss_sessions as i64 - rss_before as i64, n);
    let socket_bytes = per(rss_sockets as i64 - rss_sessions as i64, open);
    let both_bytes = per(rss_sockets as i64 - rss_before as i64, open);
    if !args.json {
        println!(
            "  {open} sockets opened in {open_secs:.2} s, {} at a time; {failed} failed{}",
            args.batch,
            first_failure
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        println!();
        println!("| server VmRSS | MiB | per session or socket |");
        println!("|---|---:|---:|");
        println!("| before the logins | {:.1} | |", mib(rss_before));
        println!(
            "| {n} sessions, no sockets | {:.1} | {session_bytes:.0} B per session |",
            mib(rss_sessions)
        );
        println!(
            "| {open} sessions, each with an idle socket | {:.1} | {socket_bytes:.0} B per socket (+ session: {both_bytes:.0} B) |",
            mib(rss_sockets)
        );
        println!();
    }
    let memory = json!({
        "sessions": n, "sockets": open, "failed": failed, "first_failure": first_failure,
        "login_secs": login_secs, "open_secs": open_secs,
        "rss_before": rss_before, "rss_sessions": rss_sessions, "rss_sockets": rss_sockets,
        "bytes_per_session": session_bytes, "bytes_per_socket": socket_bytes,
        "bytes_per_session_with_socket": both_bytes,
    });

    // Part 3: revoke some of them, spread over all, and time each until its tab hears.
    let count = args.revokes.min(n);
    let targets: Vec<usize> = (0..count).map(|k| k * n / count.max(1)).collect();
    let ends = Rc::new(RefCell::new(ends));
    let results: Vec<Result<(Duration, Duration), String>> = futures::stream::iter(targets.clone())
        .map(|i| {
            let session = sessions[i].clone();
            let end = ends.borrow_mut()[i].take();
            revoke(client, base, session, end)
        })
        .buffer_unordered(args.revoke_concurrency.max(1))
        .collect()
        .await;
    // No other tab may have heard of an end.
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    let mut spurious = 0usize;
    let mut first_spurious = None;
    for end in ends.borrow_mut().iter_mut().flatten() {
        if let Ok((_, outcome)) = end.try_recv() {
            spurious += 1;
            first_spurious.get_or_insert(outcome.to_string());
        }
    }
    let mut to_tab =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut answered = to_tab.clone();
    let mut errors = 0usize;
    let mut first_error = None;
    for result in &results {
        match result {
            Ok((answer, pushed)) => {
                answered.saturating_record(answer.as_micros() as u64);
                to_tab.saturating_record(pushed.as_micros() as u64);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.clone());
            }
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let figures = |h: &Histogram<u64>| {
        json!({"count": h.len(), "p50_ms": ms(h, 0.5), "p90_ms": ms(h, 0.9), "p99_ms": ms(h, 0.99),
            "max_ms": h.max() as f64 / 1000.0, "mean_ms": h.mean() / 1000.0})
    };
    if !args.json {
        println!(
            "Revoke-to-tab: {count} of the {open} sessions revoked over HTTP, {} at a time, as admin",
            args.revoke_concurrency.max(1)
        );
        println!();
        println!("| | count | p50 | p90 | p99 | max |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, h) in [
            ("DELETE sent → its socket's `ended` frame", &to_tab),
            ("DELETE sent → its 204 answer", &answered),
        ] {
            println!(
                "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                h.len(),
                ms(h, 0.5),
                ms(h, 0.9),
                ms(h, 0.99),
                h.max() as f64 / 1000.0
            );
        }
        println!(
            "| errors | {errors}{} | | | | |",
            first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        println!(
            "| other tabs told of an end | {spurious}{} | | | | |",
            first_spurious
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        println!();
    }
    let revocations = json!({
        "revoked": count, "concurrency": args.revoke_concurrency.max(1), "with_sockets_open": open,
        "to_tab": figures(&to_tab), "answered": figures(&answered),
        "errors": errors, "first_error": first_error,
        "other_tabs_told": spurious, "first_other": first_spurious,
    });
    Ok((memory, revocations))
}

/// Revokes one session and waits for its tab to hear: the times from sending the
/// DELETE to its answer and to the socket's `ended` frame.
async fn revoke(
    client: &Client,
    base: &str,
    session: Session,
    end: Option<oneshot::Receiver<(Instant, Outcome)>>,
) -> Result<(Duration, Duration), String> {
    let end = end.ok_or("its socket never opened")?;
    let sent = Instant::now();
    let response = client
        .delete(format!(
            "{base}/v1/tenants/{}/sessions/{}",
            session.tenant, session.id
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .map_err(|e| format!("DELETE: {e}"))?;
    let answered = sent.elapsed();
    if response.status().as_u16() != 204 {
        return Err(format!("DELETE answered {}", response.status()));
    }
    let (at, outcome) = tokio::time::timeout(PATIENCE, end)
        .await
        .map_err(|_| "no ended frame within 10 s".to_string())?
        .map_err(|_| "the socket's watcher has gone".to_string())?;
    match outcome {
        Outcome::Ended { reason, closed } if reason == "revoked" => {
            if !closed {
                return Err("ended, revoked, but no close frame followed".into());
            }
            Ok((answered, at.saturating_duration_since(sent)))
        }
        other => Err(other.to_string()),
    }
}
