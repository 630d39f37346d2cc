//! `usher serve`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::cli::LogFormat;
use crate::clock::{Clock, SystemClock};
use crate::engine::EngineConfig;
use crate::http::auth::generate_key;
use crate::http::server::{start_on, ServerConfig, StaticTenant};
use crate::redis::RedisConfig;
use crate::store::redb::{prepare_data_dir, RedbConfig, RedbStore};
use crate::store::{MemoryStore, Store};

/// Flags of `usher serve` (each also a `USHER_*` variable).
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "USHER_ADDR")]
    pub addr: Option<String>,
    /// Directory for the server's state [default: ./usher-data].
    #[arg(long, env = "USHER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, env = "USHER_CONFIG")]
    pub config: Option<PathBuf>,
    /// An origin allowed to call the browser routes (repeatable).
    #[arg(
        long = "cors-origin",
        env = "USHER_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A host webhooks may target (repeatable): a name, `*.` and a name for its
    /// subdomains, or an address. A name must also resolve to public addresses or to
    /// listed ones [default: none, so no webhook can be registered].
    #[arg(
        long = "webhook-allow-host",
        env = "USHER_WEBHOOK_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub webhook_allow_hosts: Vec<String>,
    /// HTTP worker threads [default: one per core].
    #[arg(long, env = "USHER_WORKERS")]
    pub workers: Option<usize>,
    /// Where state is kept: `redb` (the embedded database in the data dir) or `memory`
    /// (lost on exit; for tests and benchmarks) [default: redb].
    #[arg(long, env = "USHER_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// Seconds a request waits for its write to become durable (a stalled disk) or,
    /// with `--store redis`, for Redis to answer, before it is answered 503
    /// `unavailable` [default: 10; with `--store redis`: 2].
    #[arg(long, env = "USHER_WRITE_DEADLINE_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_deadline_secs: Option<u64>,
    /// With `--store redis`: the Redis to decide on, `redis://HOST:PORT/DB`; with
    /// `--redis-cluster`, seed nodes of the cluster (repeatable)
    /// [default: redis://127.0.0.1:6379/0].
    #[arg(long = "redis-url", env = "USHER_REDIS_URL", value_delimiter = ',')]
    pub redis_urls: Vec<String>,
    /// Treat the Redis URLs as seeds of a Redis Cluster.
    #[arg(long, env = "USHER_REDIS_CLUSTER", value_parser = crate::cli::settings::parse_bool,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub redis_cluster: Option<bool>,
    /// Replicas each decision must reach (Redis `WAIT`) before it is acknowledged
    /// [default: 0].
    #[arg(long, env = "USHER_REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<u32>,
    /// Also serve the demo CRM at /demo/ with a 2-seat `demo` tenant that queues at its limit.
    #[arg(long, env = "USHER_DEMO", value_parser = crate::cli::settings::parse_bool,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub demo: Option<bool>,
    /// Log lines as text, or as one JSON object per line [default: text].
    #[arg(long, env = "USHER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// Where `usher serve` keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// The embedded crash-safe database in the data dir.
    Redb,
    /// Memory only: everything is lost when the server stops.
    Memory,
    /// Redis (or a Redis Cluster), shared by any number of nodes (SPEC §7).
    Redis,
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub addr: Option<String>,
    /// State directory.
    pub data_dir: Option<PathBuf>,
    /// The admin token (otherwise `USHER_ADMIN_TOKEN`, or generated).
    pub admin_token: Option<String>,
    /// Origins allowed on the browser routes.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Hosts webhooks may target.
    #[serde(default)]
    pub webhook_allow_hosts: Vec<String>,
    /// HTTP worker threads.
    pub workers: Option<usize>,
    /// `max_users` for licences that do not state one (999 by default).
    pub default_max_users: Option<u32>,
    /// Milliseconds between expiry ticks (1000 by default).
    pub tick_every_ms: Option<u64>,
    /// Messages a tenant's mailbox holds before requests are shed (16384 by default).
    pub mailbox_capacity: Option<usize>,
    /// `redb`, `memory` or `redis`.
    pub store: Option<StoreKind>,
    /// The Redis URL (or, for a cluster, a list of seed URLs).
    pub redis_url: Option<RedisUrls>,
    /// Treat the Redis URLs as seeds of a Redis Cluster.
    pub redis_cluster: Option<bool>,
    /// Replicas each decision must reach before it is acknowledged.
    pub redis_wait_replicas: Option<u32>,
    /// Seconds a request waits for its write to be durable, or for Redis to answer,
    /// before 503 (10 by default; 2 with Redis).
    pub write_deadline_secs: Option<u64>,
    /// Days the audit log keeps events (90 by default).
    pub audit_retention_days: Option<u64>,
    /// Serve the demo CRM (`true`, `"yes"`, `1`, …).
    #[serde(default, deserialize_with = "crate::cli::settings::deserialize_bool")]
    pub demo: Option<bool>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Tenants to create at start-up if missing.
    #[serde(default)]
    pub tenants: Vec<StaticTenant>,
}

/// One Redis URL or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RedisUrls {
    /// One URL.
    One(String),
    /// Seed URLs of a cluster.
    Many(Vec<String>),
}

impl FileConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }
}

/// The shortest admin token `usher serve` accepts.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: ServeArgs) -> Result<(), String> {
    let mut file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    crate::cli::init_logging(args.log_format.or(file.log_format).unwrap_or_default());
    let supplied = supplied_admin_token(file.admin_token.take())?;
    let addr = args
        .addr
        .or(file.addr)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    // Before the data dir is touched: a busy port must leave nothing behind.
    let listeners = crate::cli::listen::listen(&addr)?;
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./usher-data"));
    let store_kind = args.store.or(file.store).unwrap_or(StoreKind::Redb);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (store, store_note): (Arc<dyn Store>, String) = match store_kind {
        StoreKind::Redb => {
            let config = RedbConfig {
                audit_retention: Duration::from_secs(
                    file.audit_retention_days.unwrap_or(90) * 24 * 3600,
                ),
                ..RedbConfig::default()
            };
            let store = RedbStore::open(&data_dir, clock.clone(), config)?;
            (
                Arc::new(store),
                format!(
                    "stored in {}",
                    data_dir.join(crate::store::redb::DB_FILE).display()
                ),
            )
        }
        StoreKind::Memory => {
            prepare_data_dir(&data_dir)?;
            (
                Arc::new(MemoryStore::new()),
                "in memory (--store memory); it is lost when the server stops".into(),
            )
        }
        StoreKind::Redis => (Arc::new(MemoryStore::new()), String::new()),
    };
    let write_deadline_secs = args.write_deadline_secs.or(file.write_deadline_secs);
    if let Some(secs) = write_deadline_secs {
        if !(1..=3600).contains(&secs) {
            return Err(format!(
                "write_deadline_secs must be between 1 and 3600, not {secs}"
            ));
        }
    }
    let redis = match store_kind {
        StoreKind::Redis => {
            if supplied.is_none() {
                return Err("--store redis needs the admin token configured, the same on every node: set USHER_ADMIN_TOKEN (or admin_token in the config file)".into());
            }
            let mut urls = args.redis_urls;
            if urls.is_empty() {
                urls = match file.redis_url.take() {
                    Some(RedisUrls::One(url)) => vec![url],
                    Some(RedisUrls::Many(urls)) => urls,
                    None => vec!["redis://127.0.0.1:6379/0".into()],
                };
            }
            let mut redis = RedisConfig::new(urls[0].clone());
            redis.urls = urls;
            redis.cluster = args.redis_cluster.or(file.redis_cluster).unwrap_or(false);
            redis.wait_replicas = args
                .redis_wait_replicas
                .or(file.redis_wait_replicas)
                .unwrap_or(0);
            if let Some(secs) = write_deadline_secs {
                redis.deadline = Duration::from_secs(secs);
            }
            Some(redis)
        }
        _ => None,
    };
    let store_note = match &redis {
        Some(redis) => format!(
            "decided on Redis{} at {}",
            if redis.cluster { " Cluster" } else { "" },
            redis.urls.join(", ")
        ),
        None => store_note,
    };
    // A supplied or stored token is never printed, only where it comes from.
    let (admin_token, token_line) = match supplied {
        Some((token, source)) => (token, format!("admin token: from {source} (not shown)")),
        None => stored_admin_token(&data_dir)?,
    };
    let mut engine = EngineConfig::default();
    if let Some(n) = file.default_max_users {
        engine.default_max_users = n;
    }
    if let Some(ms) = file.tick_every_ms {
        engine.tick_every = std::time::Duration::from_millis(ms.max(10));
    }
    if let Some(n) = file.mailbox_capacity {
        engine.mailbox_capacity = n.max(1);
    }
    if let Some(secs) = write_deadline_secs {
        engine.write_deadline = Duration::from_secs(secs);
    }
    let mut cors_origins = args.cors_origins;
    if cors_origins.is_empty() {
        cors_origins = file.cors_origins;
    }
    let mut webhook_allow_hosts = args.webhook_allow_hosts;
    if webhook_allow_hosts.is_empty() {
        webhook_allow_hosts = file.webhook_allow_hosts;
    }
    let config = ServerConfig {
        addr,
        admin_token: admin_token.clone(),
        cors_origins,
        engine,
        tenants: file.tenants,
        demo: args.demo.or(file.demo).unwrap_or(false),
        workers: args.workers.or(file.workers).unwrap_or(0),
        clock,
        store,
        redis,
        webhook_allow_hosts,
        socket_ping_every: crate::http::server::SOCKET_PING_EVERY,
    };
    let demo = config.demo;
    actix_web::rt::System::new().block_on(async move {
        let started = start_on(listeners, config)
            .await
            .map_err(|e| format!("cannot start the server: {e}"))?;
        tracing::info!(addr = %started.addr, "listening; /readyz answers 503 until the store is restored");
        let mut server = actix_web::rt::spawn(started.server);
        tokio::select! {
            // A failed restore stops the server too, having said why first: look there
            // first.
            biased;
            restored = started.restoring.finished() => {
                restored.map_err(|e| format!("cannot start the server: {e}"))?;
            }
            // Stopped (SIGTERM, Ctrl-C) before it was ready.
            stopped = &mut server => return served(stopped),
        }
        let url = format!("http://{}", started.addr);
        println!("Usher is serving on {url}");
        println!("  dashboard:  {url}/");
        if demo {
            println!("  demo CRM:   {url}/demo/");
        }
        println!("  {token_line}");
        println!("  state: {store_note}");
        served(server.await)
    })
}

/// How the server's task ended.
fn served(ended: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), String> {
    match ended {
        Ok(result) => result.map_err(|e| format!("server error: {e}")),
        Err(e) => Err(format!("server error: {e}")),
    }
}

/// The admin token from `USHER_ADMIN_TOKEN` or else the config file, checked, with
/// the name of where it came from; `None` when neither sets one.
fn supplied_admin_token(
    from_config: Option<String>,
) -> Result<Option<(String, &'static str)>, String> {
    let (token, source) = match std::env::var("USHER_ADMIN_TOKEN") {
        Ok(token) => (token, "USHER_ADMIN_TOKEN"),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("USHER_ADMIN_TOKEN is not valid UTF-8".into())
        }
        Err(std::env::VarError::NotPresent) => match from_config {
            Some(token) => (token, "admin_token in the config file"),
            None => return Ok(None),
        },
    };
    let token =
        checked_admin_token(&token).map_err(|e| format!("the admin token from {source} {e}"))?;
    Ok(Some((token, source)))
}

/// The admin token without surrounding whitespace (a presented token is trimmed too),
/// or why it cannot be used: blank, shorter than [`MIN_ADMIN_TOKEN_LEN`], or with
/// characters an `Authorization` header cannot carry. The message never repeats it.
pub fn checked_admin_token(token: &str) -> Result<String, String> {
    let token = token.trim();
    if token.is_empty() {
        return Err(format!(
            "is blank; set one of at least {MIN_ADMIN_TOKEN_LEN} characters, or unset it to have one generated"
        ));
    }
    if let Some(bad) = token.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        let what = if bad.is_ascii_control() {
            "a control character"
        } else {
            "a character that is not ASCII"
        };
        return Err(format!(
            "contains {what}, which an Authorization header cannot carry; use printable ASCII only"
        ));
    }
    let len = token.chars().count();
    if len < MIN_ADMIN_TOKEN_LEN {
        let characters = if len == 1 { "character" } else { "characters" };
        return Err(format!(
            "is {len} {characters} long; it must be at least {MIN_ADMIN_TOKEN_LEN} (e.g. `openssl rand -base64 24`)"
        ));
    }
    Ok(token.to_string())
}

/// The admin token kept in the data directory, generated on first start and readable
/// only by its owner. Returns it with the line that tells the operator about it: a
/// generated token is shown that once, a stored one never.
fn stored_admin_token(dir: &Path) -> Result<(String, String), String> {
    let path = dir.join("admin-token");
    match fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => {
            let token = checked_admin_token(&token)
                .map_err(|e| format!("the admin token stored in {} {e}", path.display()))?;
            return Ok((
                token,
                format!("admin token: stored in {} (not shown)", path.display()),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let token = generate_key("usa_");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // The mode above applies only to a file this call creates; an empty one left
    // behind would keep its own.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {} to its owner: {e}", path.display()))?;
    writeln!(file, "{token}")
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let line = format!(
        "admin token (generated, stored in {}): {token}",
        path.display()
    );
    Ok((token, line))
}

#[cfg(test)]
mod tests {
    use super::{checked_admin_token, MIN_ADMIN_TOKEN_LEN};

    #[test]
    fn admin_tokens_must_be_long_printable_and_not_blank() {
        for (token, says) in [
            ("", "blank"),
            ("   ", "blank"),
            ("short", "5 characters"),
            ("fifteen-chars-x", "15 characters"),
            ("sixteen-chars-x\u{7}", "control character"),
            ("sixteen-chars-é-x", "not ASCII"),
        ] {
            let err = checked_admin_token(token).unwrap_err();
            assert!(err.contains(says), "{token:?}: {err}");
            if !token.trim().is_empty() {
                assert!(!err.contains(token.trim()), "the message repeats it: {err}");
            }
        }
        assert_eq!("sixteen-chars-xy".len(), MIN_ADMIN_TOKEN_LEN);
        assert_eq!(
            checked_admin_token("  sixteen-chars-xy \n").unwrap(),
            "sixteen-chars-xy"
        );
        assert!(checked_admin_token("with inner spaces ok").is_ok());
    }
}
