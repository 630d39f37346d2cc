//! Start-up and shutdown of `usher serve`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::ServerHandle;
use actix_web::http::header::{HeaderValue, HOST};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use serde::Deserialize;

use super::auth::{hash_key, Credentials};
use super::metrics;
use super::middleware::observe;
use super::routes::{self, ops, sessions, tenants, users, AppState};
use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, EngineConfig};
use crate::ids::TenantId;
use crate::licence::{Licence, LicenceSpec};
use crate::store::{MemoryStore, Store};

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
    /// The server future: await it to serve until shutdown.
    pub server: actix_web::dev::Server,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Builds the engine and binds the server. Must run inside an actix system, whose
/// arbiters then also run the pools. Handles SIGTERM and Ctrl-C by draining.
pub async fn start(config: ServerConfig) -> io::Result<Started> {
    let engine = Engine::with_store(
        config.engine.clone(),
        config.clock.clone(),
        config.store.clone(),
    );
    let credentials = Credentials::new(&config.admin_token);
    // Everything stored comes back before the server listens: no login is admitted
    // and /readyz is not ready until then.
    let loaded = config
        .store
        .load()
        .map_err(|e| io::Error::other(format!("cannot read the store: {e}")))?;
    let restored = loaded.pools.len();
    engine
        .restore(loaded)
        .map_err(|e| io::Error::other(format!("cannot restore the store: {e}")))?;
    if restored > 0 {
        tracing::info!(tenants = restored, "restored from the store");
    }
    let demo = config
        .demo
        .then(|| TenantId::parse(DEMO_TENANT).expect("a valid id"));
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
    if let Some(tenant) = &demo {
        if engine.tenant(tenant).await.is_err() {
            engine
                .put_tenant(tenant, Licence::concurrent(2))
                .await
                .map_err(|e| invalid_config(e.to_string()))?;
        }
    }
    metrics::handle();
    metrics::follow(&engine);
    let state = web::Data::new(AppState {
        engine,
        credentials,
        demo,
        ready: Default::default(),
    });
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
    .backlog(4096)
    .shutdown_timeout(10)
    .bind(&config.addr)?;
    let addr = *server
        .addrs()
        .first()
        .ok_or_else(|| io::Error::other("bound to no address"))?;
    let server = server.run();
    spawn_metrics_upkeep();
    state.ready.store(true, Ordering::Release);
    Ok(Started { server, addr })
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

/// Every route of SPEC §4. A known path with another method answers 405.
///
/// Routes are tried in order and every one with a `{parameter}` costs a regular
/// expression, so the browser routes (most of the traffic: heartbeats) come first, and
/// a tenant's routes sit in one scope that matches the tenant once.
fn api(cfg: &mut web::ServiceConfig, cors_origins: &[String]) {
    use web::{delete, get, post, put, resource, scope};
    let not_allowed = || web::to(ops::method_not_allowed);
    cfg.service(
        scope("/v1/sessions/{token}")
            .wrap(cors(cors_origins))
            .service(
                resource("/heartbeat")
                    .route(post().to(sessions::heartbeat))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/release")
                    .route(post().to(sessions::release))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/logout")
                    .route(post().to(sessions::logout))
                    .default_service(not_allowed()),
            ),
    )
    .service(
        resource("/v1/tenants")
            .route(get().to(tenants::list_tenants))
            .default_service(not_allowed()),
    )
    .service(
        scope("/v1/tenants/{tenant}")
            .service(
                resource("")
                    .route(put().to(tenants::put_tenant))
                    .route(get().to(tenants::get_tenant))
                    .route(delete().to(tenants::delete_tenant))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/sessions")
                    .route(post().to(sessions::login))
                    .route(get().to(sessions::list_sessions))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/sessions/{id}")
                    .route(delete().to(sessions::revoke))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/users")
                    .route(get().to(users::list_users))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/users/{user}")
                    .route(put().to(users::put_user))
                    .route(delete().to(users::delete_user))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/users/{user}/logout")
                    .route(post().to(users::logout_user))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/api-key")
                    .route(post().to(tenants::rotate_key))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/records")
                    .route(put().to(tenants::put_records))
                    .route(get().to(tenants::get_records))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/usage")
                    .route(get().to(tenants::usage))
                    .default_service(not_allowed()),
            )
            .service(
                resource("/events")
                    .route(get().to(tenants::events))
                    .default_service(not_allowed()),
            ),
    )
    .service(
        resource("/demo/api/login")
            .route(post().to(sessions::demo_login))
            .default_service(not_allowed()),
    )
    .service(
        resource("/healthz")
            .route(get().to(ops::healthz))
            .default_service(not_allowed()),
    )
    .service(
        resource("/readyz")
            .route(get().to(ops::readyz))
            .default_service(not_allowed()),
    )
    .service(
        resource("/metrics")
            .route(get().to(ops::metrics_text))
            .default_service(not_allowed()),
    )
    .service(
        resource("/openapi.json")
            .route(get().to(ops::openapi_json))
            .default_service(not_allowed()),
    );
}

/// CORS for the browser routes: the configured origins, and the server's own origin
/// (a page served by this server sends `Origin` on its POSTs too).
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
    thread: Option<thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Starts a server on a new thread with its own actix system.
    pub fn spawn(config: ServerConfig) -> io::Result<RunningServer> {
        let admin_token = config.admin_token.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("usher-server".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    match start(config).await {
                        Ok(started) => {
                            let _ = tx.send(Ok((started.addr, started.server.handle())));
                            let _ = started.server.await;
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
            thread: Some(thread),
        })
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
