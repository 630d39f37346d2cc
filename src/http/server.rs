//! Start-up and shutdown of `usher serve`.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use actix_cors::{Cors, CorsError};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, HOST, VARY};
use actix_web::middleware::{from_fn, Next};
use actix_web::{
    guard, web, App, FromRequest, Handler, HttpRequest, HttpResponse, HttpServer, Resource,
    Responder, Route,
};
use serde::Deserialize;
use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;

use super::auth::{hash_key, Credentials};
use super::metrics;
use super::middleware::{observe, until_ready};
use super::routes::{self, live, ops, sessions, tenants, tickets, users, webhooks, AppState};
use super::webhooks::WebhookSettings;
use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, EngineConfig};
use crate::ids::TenantId;
use crate::licence::{Licence, LicenceSpec};
use crate::redis::RedisConfig;
use crate::store::{MemoryStore, Store};

/// How often a tab's socket is pinged unless set otherwise.
pub const SOCKET_PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything `usher serve` needs to run.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen, e.g. `127.0.0.1:8080` (port 0: any free port).
    pub addr: String,
    /// The admin token.
    pub admin_token: String,
    /// Origins allowed to call the browser routes from other sites.
    pub cors_origins: Vec<String>,
    /// The engine's settings.
    pub engine: EngineConfig,
    /// Tenants declared in the config file, created at start-up if missing.
    pub tenants: Vec<StaticTenant>,
    /// Serve the demo (a `demo` tenant with 2 concurrent seats and `/demo/`).
    pub demo: bool,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// The engine's clock: the system clock, or a manual one in tests.
    pub clock: Arc<dyn Clock>,
    /// Where state is kept: the embedded database, or memory.
    pub store: Arc<dyn Store>,
    /// Decide on Redis instead (SPEC §7); `store` is then unused.
    pub redis: Option<RedisConfig>,
    /// Hosts webhooks may target (none by default).
    pub webhook_allow_hosts: Vec<String>,
    /// How often a tab's socket is pinged; one that answers nothing for two pings is
    /// closed.
    pub socket_ping_every: std::time::Duration,
}

impl ServerConfig {
    /// A server on `addr` with this admin token and defaults otherwise.
    pub fn new(addr: impl Into<String>, admin_token: impl Into<String>) -> Self {
        ServerConfig {
            addr: addr.into(),
            admin_token: admin_token.into(),
            cors_origins: Vec::new(),
            engine: EngineConfig::default(),
            tenants: Vec::new(),
            demo: false,
            workers: 0,
            clock: Arc::new(SystemClock::new()),
            store: Arc::new(MemoryStore::new()),
            redis: None,
            webhook_allow_hosts: Vec::new(),
            socket_ping_every: SOCKET_PING_EVERY,
        }
    }
}

/// A tenant declared in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTenant {
    /// Its id.
    pub tenant: TenantId,
    /// Its licence.
    pub licence: LicenceSpec,
    /// Its API key, if the operator fixes one (otherwise rotate one over the API).
    pub api_key: Option<String>,
}

/// The demo tenant's id.
pub const DEMO_TENANT: &str = "demo";

/// A server that is listening.
pub struct Started {
    /// The server future: await it (or spawn it) to serve until shutdown. It must be
    /// polled for anything to be answered, start-up included.
    pub server: actix_web::dev::Server,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The rest of start-up, under way while the server already answers.
    pub restoring: Restoring,
}

/// Start-up after the listener is bound: the store is read back and the declared
/// tenants created while `/readyz` and every route that needs the engine answer
/// `503 starting`.
pub struct Restoring(oneshot::Receiver<io::Result<()>>);

impl Restoring {
    /// Waits until the server is ready, or for why start-up failed (the server is then
    /// already stopping).
    pub async fn finished(self) -> io::Result<()> {
        self.0
            .await
            .unwrap_or_else(|_| Err(io::Error::other("start-up was abandoned")))
    }
}

/// The listen backlog: a login storm's connections wait in it rather than being reset.
const BACKLOG: i32 = 4096;

/// Builds the engine, binds the server, then restores the store while it answers
/// (see [`Restoring`]). Must run inside an actix system, whose arbiters then also run
/// the pools. Handles SIGTERM and Ctrl-C by draining.
pub async fn start(config: ServerConfig) -> io::Result<Started> {
    let listeners = listen(&config.addr)?;
    start_on(listeners, config).await
}

/// Binds every address `addr` resolves to, as [`start`] does. `usher serve` calls it
/// before it touches its data dir, so a busy port leaves nothing behind.
pub fn listen(addr: &str) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    let mut failure = None;
    for addr in addr.to_socket_addrs()? {
        match bind_one(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        Some(e) if listeners.is_empty() => Err(e),
        _ if listeners.is_empty() => Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "the address resolves to nothing",
        )),
        _ => Ok(listeners),
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// [`start`] on listeners already bound (see [`listen`]); `config.addr` is not used.
pub async fn start_on(listeners: Vec<TcpListener>, config: ServerConfig) -> io::Result<Started> {
    let engine = match &config.redis {
        Some(redis) => Engine::with_redis(config.engine.clone(), redis.clone())
            .await
            .map_err(|e| io::Error::other(e.to_string()))?,
        None => Engine::with_store(
            config.engine.clone(),
            config.clock.clone(),
            config.store.clone(),
        ),
    };
    let credentials = Credentials::new(&config.admin_token);
    let demo = config
        .demo
        .then(|| TenantId::parse(DEMO_TENANT).expect("a valid id"));
    metrics::handle();
    let state = web::Data::new(AppState {
        engine,
        credentials,
        demo,
        ready: Default::default(),
        webhooks: Arc::new(WebhookSettings {
            allow_hosts: config.webhook_allow_hosts.clone(),
        }),
        socket_ping_every: config.socket_ping_every,
    });
    super::webhooks::start(state.engine.clone(), state.webhooks.clone());
    let cors_origins = config.cors_origins.clone();
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(routes::json_config())
            .wrap(from_fn(observe))
            .configure(|cfg| api(cfg, &cors_origins))
            .default_service(web::to(ops::fallback))
    })
    .workers(if config.workers == 0 {
        thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.workers
    })
    .shutdown_timeout(10);
    let server = listeners
        .into_iter()
        .try_fold(server, |server, listener| server.listen(listener))?;
    let addr = *server
        .addrs()
        .first()
        .ok_or_else(|| io::Error::other("bound to no address"))?;
    let server = server.run();
    spawn_metrics_upkeep();
    let (finished, restoring) = oneshot::channel();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let result = restore(&state, &config).await;
        match &result {
            Ok(()) => state.ready.store(true, Ordering::Release),
            // Sent now; the server's own task carries it out.
            Err(_) => drop(handle.stop(false)),
        }
        let _ = finished.send(result);
    });
    Ok(Started {
        server,
        addr,
        restoring: Restoring(restoring),
    })
}

/// Everything stored comes back, and the declared tenants exist, before the engine's
/// routes open: no login is admitted and /readyz is not ready until then.
async fn restore(state: &AppState, config: &ServerConfig) -> io::Result<()> {
    let (engine, demo) = (&state.engine, &state.demo);
    if config.redis.is_none() {
        // Reading the store is blocking I/O: not on the thread that runs the server.
        let store = config.store.clone();
        let loaded = web::block(move || store.load())
            .await
            .map_err(|e| io::Error::other(format!("cannot read the store: {e}")))?
            .map_err(|e| io::Error::other(format!("cannot read the store: {e}")))?;
        let restored = loaded.pools.len();
        engine
            .restore(loaded)
            .map_err(|e| io::Error::other(format!("cannot restore the store: {e}")))?;
        if restored > 0 {
            tracing::info!(tenants = restored, "restored from the store");
        }
    }
    for declared in &config.tenants {
        if engine.tenant(&declared.tenant).await.is_ok() {
            continue; // declared tenants are created once; later changes are the API's
        }
        let licence = declared
            .licence
            .validate(config.engine.default_max_users)
            .map_err(|e| invalid_config(format!("tenant {}: {e}", declared.tenant)))?;
        engine
            .put_tenant(&declared.tenant, licence)
            .await
            .map_err(|e| invalid_config(format!("tenant {}: {e}", declared.tenant)))?;
    }
    for declared in &config.tenants {
        if let Some(key) = &declared.api_key {
            engine
                .set_api_key(&declared.tenant, hash_key(key))
                .await
                .map_err(|e| invalid_config(format!("tenant {}: {e}", declared.tenant)))?;
        }
    }
    if let Some(tenant) = demo {
        if engine.tenant(tenant).await.is_err() {
            engine
                .put_tenant(tenant, Licence::concurrent(2))
                .await
                .map_err(|e| invalid_config(e.to_string()))?;
        }
    }
    metrics::follow(engine);
    Ok(())
}

fn invalid_config(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn spawn_metrics_upkeep() {
    actix_web::rt::spawn(async {
        let handle = metrics::handle();
        let mut every = actix_web::rt::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Every route of SPEC §4. A known path with another method answers 405 with the
/// methods it takes in `Allow`; every GET route answers HEAD too. The routes that
/// need the engine answer `503 starting` until start-up has restored it.
///
/// Routes are tried in order and every one with a `{parameter}` costs a regular
/// expression, so the browser routes (most of the traffic: heartbeats) come first, and
/// a tenant's routes sit in one scope that matches the tenant once.
fn api(cfg: &mut web::ServiceConfig, cors_origins: &[String]) {
    use web::scope;
    cfg.service(
        scope("/v1/sessions/{token}")
            .wrap(cors(cors_origins))
            .wrap(from_fn(cors_refusal_as_json))
            .wrap(from_fn(until_ready))
            .service(Endpoint::at("/heartbeat").post(sessions::heartbeat).done())
            .service(Endpoint::at("/release").post(sessions::release).done())
            .service(Endpoint::at("/logout").post(sessions::logout).done())
            .service(Endpoint::at("/live").get(live::session_socket).done()),
    )
    .service(
        scope("/v1/tickets/{ticket}")
            .wrap(cors(cors_origins))
            .wrap(from_fn(cors_refusal_as_json))
            .wrap(from_fn(until_ready))
            .service(Endpoint::at("").delete(tickets::cancel_ticket).done())
            .service(
                Endpoint::at("/heartbeat")
                    .post(tickets::ticket_heartbeat)
                    .done(),
            )
            .service(Endpoint::at("/claim").post(tickets::claim_ticket).done())
            .service(Endpoint::at("/live").get(live::ticket_socket).done()),
    )
    .service(
        Endpoint::at("/v1/tenants")
            .get(tenants::list_tenants)
            .done()
            .wrap(from_fn(until_ready)),
    )
    .service(
        scope("/v1/tenants/{tenant}")
            .wrap(from_fn(until_ready))
            .service(
                Endpoint::at("")
                    .put(tenants::put_tenant)
                    .patch(tenants::patch_tenant)
                    .get(tenants::get_tenant)
                    .delete(tenants::delete_tenant)
                    .done(),
            )
            .service(
                Endpoint::at("/sessions")
                    .post(sessions::login)
                    .get(sessions::list_sessions)
                    .done(),
            )
            .service(
                Endpoint::at("/sessions/{id}")
                    .delete(sessions::revoke)
                    .done(),
            )
            .service(Endpoint::at("/users").get(users::list_users).done())
            .service(
                Endpoint::at("/users/{user}")
                    .put(users::put_user)
                    .delete(users::delete_user)
                    .done(),
            )
            .service(
                Endpoint::at("/users/{user}/logout")
                    .post(users::logout_user)
                    .done(),
            )
            .service(Endpoint::at("/api-key").post(tenants::rotate_key).done())
            .service(
                Endpoint::at("/records")
                    .put(tenants::put_records)
                    .get(tenants::get_records)
                    .done(),
            )
            .service(Endpoint::at("/usage").get(tenants::usage).done())
            .service(Endpoint::at("/queue").get(tickets::list_queue).done())
            .service(Endpoint::at("/events").get(tenants::events).done())
            .service(
                Endpoint::at("/events/stream")
                    .get(live::tenant_stream)
                    .done(),
            )
            .service(
                Endpoint::at("/webhooks")
                    .get(webhooks::list_webhooks)
                    .done(),
            )
            .service(
                Endpoint::at("/webhooks/{name}")
                    .put(webhooks::put_webhook)
                    .get(webhooks::get_webhook)
                    .delete(webhooks::delete_webhook)
                    .done(),
            )
            .service(
                Endpoint::at("/webhooks/{name}/deliveries")
                    .get(webhooks::deliveries)
                    .done(),
            ),
    )
    .service(
        Endpoint::at("/v1/events/stream")
            .get(live::admin_stream)
            .done()
            .wrap(from_fn(until_ready)),
    )
    .service(
        Endpoint::at("/demo/api/login")
            .post(sessions::demo_login)
            .done()
            .wrap(from_fn(until_ready)),
    )
    .service(Endpoint::at("/healthz").get(ops::healthz).done())
    .service(Endpoint::at("/readyz").get(ops::readyz).done())
    .service(Endpoint::at("/metrics").get(ops::metrics_text).done())
    .service(Endpoint::at("/openapi.json").get(ops::openapi_json).done());
}

/// One resource being declared: its routes, and the methods they take for `Allow`.
struct Endpoint {
    resource: Resource,
    allow: Vec<&'static str>,
}

impl Endpoint {
    fn at(path: &str) -> Self {
        Endpoint {
            resource: web::resource(path),
            allow: Vec::new(),
        }
    }

    /// GET, and HEAD with the same answer less its body (the server drops the body).
    fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
        self.route(&["GET", "HEAD"], route.to(handler))
    }

    fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(&["POST"], web::post().to(handler))
    }

    fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(&["PUT"], web::put().to(handler))
    }

    fn patch<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(&["PATCH"], web::patch().to(handler))
    }

    fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(&["DELETE"], web::delete().to(handler))
    }

    fn route(mut self, methods: &[&'static str], route: Route) -> Self {
        self.allow.extend_from_slice(methods);
        self.resource = self.resource.route(route);
        self
    }

    /// The resource, answering any other method with 405 and `Allow`.
    fn done(self) -> Resource {
        let allow = self.allow.join(", ");
        self.resource
            .default_service(web::to(move |req: HttpRequest| {
                let answer = ops::method_not_allowed(&req, &allow);
                async move { answer }
            }))
    }
}

/// A request the CORS policy refuses (another origin, a method or header it does not
/// allow) answers `403 forbidden` in the JSON shape of every error, not as text.
async fn cors_refusal_as_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let response = next.call(req).await?;
    let Some(refusal) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<CorsError>())
    else {
        return Ok(response.map_into_left_body());
    };
    let message = match refusal {
        CorsError::OriginNotAllowed => {
            "this origin may not call the browser routes; the server's operator can allow it with --cors-origin".to_string()
        }
        CorsError::MethodNotAllowed => {
            "a cross-origin request to the browser routes may only use POST".to_string()
        }
        CorsError::HeadersNotAllowed => {
            "a cross-origin request to the browser routes may only send the Content-Type header".to_string()
        }
        other => format!("the CORS policy refuses this request: {other}"),
    };
    let (req, refused) = response.into_parts();
    let mut answer = HttpResponse::Forbidden().json(json!({
        "error": "forbidden",
        "message": message,
    }));
    if let Some(vary) = refused.headers().get(VARY) {
        answer.headers_mut().insert(VARY, vary.clone());
    }
    Ok(ServiceResponse::new(req, answer).map_into_right_body())
}

/// CORS for the browser routes: the configured origins, and the server's own origin
/// (a page served by this server sends `Origin` on its POSTs too). A request without
/// `Origin` (not from a browser) is not a CORS request and passes.
fn cors(origins: &[String]) -> Cors {
    let origins: Vec<String> = origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    Cors::default()
        .allowed_origin_fn(move |origin: &HeaderValue, head| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let same_host = head
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|host| {
                    origin
                        .split_once("://")
                        .is_some_and(|(_, rest)| rest == host)
                });
            same_host || origins.iter().any(|o| o == origin)
        })
        // A request from another origin is refused even when it needs no preflight
        // (a beacon, a form post), not just left unreadable to that origin's page.
        .block_on_origin_mismatch(true)
        .allowed_methods(["POST"])
        .allowed_headers(["content-type"])
        .expose_headers(["retry-after"])
        .max_age(600)
}

/// A server running on a thread of its own, for tests and embedding; stopped (drained)
/// when dropped.
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The admin token it accepts.
    pub admin_token: String,
    handle: ServerHandle,
    ready: Option<std::sync::mpsc::Receiver<io::Result<()>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Starts a server on a new thread with its own actix system, and returns once it
    /// is ready (its store restored).
    pub fn spawn(config: ServerConfig) -> io::Result<RunningServer> {
        let mut server = Self::spawn_starting(config)?;
        server.wait_ready()?;
        Ok(server)
    }

    /// Starts a server on a new thread with its own actix system, and returns as soon
    /// as it listens, while its store may still be being restored (see [`Restoring`]);
    /// [`RunningServer::wait_ready`] waits for the rest.
    pub fn spawn_starting(config: ServerConfig) -> io::Result<RunningServer> {
        let admin_token = config.admin_token.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("usher-server".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    match start(config).await {
                        Ok(started) => {
                            let _ = tx.send(Ok((started.addr, started.server.handle())));
                            let server = actix_web::rt::spawn(started.server);
                            let _ = ready_tx.send(started.restoring.finished().await);
                            let _ = server.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let (addr, handle) = rx
            .recv()
            .map_err(|_| io::Error::other("the server thread ended during start-up"))??;
        Ok(RunningServer {
            addr,
            admin_token,
            handle,
            ready: Some(ready),
            thread: Some(thread),
        })
    }

    /// Waits until start-up has finished; an error says why it failed, and the server
    /// has then stopped. Returns at once when the server is already ready.
    pub fn wait_ready(&mut self) -> io::Result<()> {
        match self.ready.take() {
            Some(ready) => ready.recv().unwrap_or_else(|_| {
                Err(io::Error::other("the server thread ended during start-up"))
            }),
            None => Ok(()),
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        futures::executor::block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
