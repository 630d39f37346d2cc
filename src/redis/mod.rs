//! The Redis backend: many Usher nodes deciding for the same tenants through one Redis
//! (or a Redis Cluster), SPEC §7.
//!
//! Every decision runs in `pool.lua`, one Redis Function call at a time, atomically, on
//! Redis time (Redis 7 or later).
//! All keys of a tenant carry the hash tag `{tenant}`, so each call touches one slot.
//! Each node keeps a queue per tenant (the tenant's actor on this node): whatever is
//! waiting for that tenant when the previous call returns goes to Redis as one call,
//! and each caller is answered in order — a storm costs far fewer round trips than
//! requests, with no timer added.
//!
//! Expiry: each call first expires what is due; a sweeper on every node asks the
//! tenants whose earliest deadline has passed (a sorted set of tenants by due moment,
//! waitlist tickets' deadlines included, read with one command per tick) to expire the
//! rest. The script ends a session or ticket once, so each has exactly one event,
//! whichever node swept it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{RedisResult, Script};
use dashmap::DashMap;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, ManualClock, Timestamp};
use crate::consumer::EventSender;
use crate::engine::{Entry, Login, Priority, Ticket};
use crate::error::{EndReason, Error, Refusal, Result};
use crate::events::{Event, EventKind};
use crate::ids::{GroupId, SessionId, TenantId, UserId};
use crate::licence::{Licence, LicenceModel, Policies, SeatPer};
use crate::live::{Live, News};
use crate::pool::{
    preview, Holdings, LicencePreview, Member, Page, QueueEntry, RecordsView, SessionCursor,
    SessionView, TenantView, TicketStatus, UserView,
};
use crate::store::{AuditEvent, EventPage, EventQuery};
use crate::token::SessionToken;
use crate::usage::{DayUsage, UsageBook};

const POOL_SCRIPT: &str = include_str!("pool.lua");

/// Moves the index of due tenants: the earliest due moment of a tenant after a sweep
/// (`ARGV[2]`, empty for none) replaces the entry that was due (at or before the sweep,
/// `ARGV[1]`), but never an earlier one another node wrote meanwhile.
const REINDEX_SCRIPT: &str = r#"
local cur = redis.call('ZSCORE', KEYS[1], ARGV[3])
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  if ARGV[2] ~= '' and tonumber(ARGV[2]) < tonumber(cur) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  end
  return 0
end
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[1], ARGV[3])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
end
return 1
"#;

/// The tenants due by Redis time (or the test harness's clock).
const DUE_SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
"#;

/// The most requests one script call decides.
const MAX_BATCH: usize = 512;

/// How long a node trusts what it learnt of an API key: a rotated or deleted key
/// stops working on every node within this.
const KEY_CACHE_FOR: Duration = Duration::from_millis(900);

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://HOST:PORT/DB`; for a cluster, its seed nodes.
    pub urls: Vec<String>,
    /// Treat `urls` as the seeds of a Redis Cluster.
    pub cluster: bool,
    /// The first part of every key, so that several deployments (or tests) can share
    /// one Redis.
    pub prefix: String,
    /// How long a request waits for Redis before it is answered 503 `unavailable`.
    pub deadline: Duration,
    /// Events each tenant's log keeps at most.
    pub log_capacity: usize,
    /// Replicas each decision must reach (Redis `WAIT`) before it is acknowledged.
    pub wait_replicas: u32,
    /// Where the scripts read the time: Redis `TIME` unless a test harness says
    /// otherwise (see [`RedisClock`]).
    pub clock: RedisClock,
}

impl RedisConfig {
    /// One Redis at `url`, with defaults.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            urls: vec![url.into()],
            cluster: false,
            prefix: "usher".into(),
            deadline: Duration::from_secs(2),
            log_capacity: 100_000,
            wait_replicas: 0,
            clock: RedisClock::default(),
        }
    }
}

/// Where the scripts read the time: Redis `TIME` (always, in a server), or a manual
/// clock that a test harness moves, so that time-dependent rules are tested
/// deterministically on Redis too. Only the Rust API can build the manual one:
/// `usher serve` has no flag, variable or config key that reaches it.
#[derive(Debug, Clone, Default)]
pub struct RedisClock {
    manual: Option<ManualClock>,
}

impl RedisClock {
    /// Scripts read `clock` instead of Redis time.
    pub fn manual(clock: ManualClock) -> Self {
        RedisClock {
            manual: Some(clock),
        }
    }

    /// The manual clock, if the scripts read one.
    pub fn manual_clock(&self) -> Option<&ManualClock> {
        self.manual.as_ref()
    }

    /// The scripts' first argument: empty for Redis time, else the moment to use.
    fn arg(&self) -> String {
        match &self.manual {
            Some(clock) => clock.now().as_millis().to_string(),
            None => String::new(),
        }
    }
}

/// A connection that reconnects by itself: one Redis or a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn connect(config: &RedisConfig) -> RedisResult<Conn> {
        if config.cluster {
            let client = ::redis::cluster::ClusterClient::builder(config.urls.clone())
                .connection_timeout(config.deadline)
                .response_timeout(config.deadline)
                .retries(2)
                .build()?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        } else {
            let url = config.urls.first().map(String::as_str).unwrap_or_default();
            let client = ::redis::Client::open(url)?;
            let manager = ::redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.deadline))
                .set_response_timeout(Some(config.deadline))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            // Lazily: a node starts while Redis is down, answers 503 meanwhile, and
            // connects once Redis is back.
            Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                client, manager,
            )?))
        }
    }

    async fn script<T: ::redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> RedisResult<T> {
        let mut call = script.prepare_invoke();
        for key in keys {
            call.key(key);
        }
        for arg in args {
            call.arg(arg);
        }
        match self {
            Conn::Single(c) => call.invoke_async(&mut c.clone()).await,
            Conn::Cluster(c) => call.invoke_async(&mut c.clone()).await,
        }
    }

    /// Calls the function, loading its library first where Redis does not have it (a
    /// Redis that started empty, a master added to a Cluster, a `FUNCTION FLUSH`).
    async fn fcall<T: ::redis::FromRedisValue>(
        &self,
        function: &Function,
        keys: &[String],
        args: &[String],
    ) -> RedisResult<T> {
        let mut call = ::redis::cmd("FCALL");
        call.arg(&function.name).arg(keys.len()).arg(keys).arg(args);
        match self.query(&call).await {
            Err(e) if is_function_not_found(&e) => {
                let mut load = ::redis::cmd("FUNCTION");
                load.arg("LOAD").arg("REPLACE").arg(&function.library);
                self.query::<::redis::Value>(&load).await?;
                self.query(&call).await
            }
            answer => answer,
        }
    }

    async fn query<T: ::redis::FromRedisValue>(&self, cmd: &::redis::Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }
}

/// A library of Redis Functions with one function, both named after the library's
/// text, so that nodes of different versions on one Redis each call their own.
struct Function {
    name: String,
    library: String,
}

impl Function {
    /// The library of `code`, registering its Lua function `entry`.
    fn new(entry: &str, code: &str) -> Function {
        let script = Script::new(code);
        let hash = &script.get_hash()[..16];
        let name = format!("usher_{entry}_{hash}");
        let library = format!(
            "#!lua name=usher_{hash}\n{code}\nredis.register_function('{name}', {entry})\n"
        );
        Function { name, library }
    }
}

const NEEDS_FUNCTIONS: &str =
    "Redis has no FCALL: Usher needs Redis 7.0 or later (Redis Functions)";

/// A Redis without Redis Functions (before 7.0, or with `FCALL` renamed away).
fn is_unknown_command(e: &::redis::RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.starts_with("unknown command"))
}

fn is_function_not_found(e: &::redis::RedisError) -> bool {
    e.code() == Some("ERR")
        && e.detail()
            .is_some_and(|d| d.starts_with("Function not found"))
}

/// One request to a tenant's queue and where its answer goes.
struct Job {
    request: Value,
    reply: oneshot::Sender<Result<Value>>,
}

/// What every queue and the sweeper share.
struct Shared {
    config: RedisConfig,
    conn: Conn,
    pool: Function,
    reindex: Script,
    due: Script,
    retention: crate::pool::Retention,
    events: EventSender,
    /// The channel the scripts publish the live channel's news on.
    live_channel: String,
    retry_after: Duration,
    /// The last Redis failure, while Redis is failing.
    failure: Mutex<Option<String>>,
    /// Whether `failure` holds one: what an answered call reads, without the lock.
    failing: AtomicBool,
    /// Whether the last pool call failed for want of Redis Functions: kept until the
    /// next pool call is answered, whatever the sweeper's scripts meet meanwhile.
    lacks_functions: AtomicBool,
}

/// The Redis backend of an [`crate::Engine`].
pub(crate) struct RedisBackend {
    shared: Arc<Shared>,
    queues: DashMap<TenantId, mpsc::Sender<Job>>,
    keys: DashMap<[u8; 32], (TenantId, Instant)>,
    capacity: usize,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            runtime.shutdown_background();
        }
    }
}

fn unavailable(shared: &Shared, why: impl std::fmt::Display) -> Error {
    let why = why.to_string();
    tracing::warn!(error = %why, "redis call failed");
    let mut failure = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
    *failure = Some(why);
    shared.failing.store(true, Ordering::Relaxed);
    drop(failure);
    Error::Unavailable {
        retry_after: shared.retry_after,
    }
}

/// Redis answered a call: the health it degraded is restored. Read first: a store or
/// a lock on every call would bounce their line between the cores.
fn answered(shared: &Shared) {
    if shared.failing.load(Ordering::Relaxed) {
        // Both changed under the lock, so that they agree.
        let mut failure = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
        *failure = None;
        shared.failing.store(false, Ordering::Relaxed);
    }
}

impl RedisBackend {
    /// Connects (retrying until `config.deadline` has passed) and starts the sweeper.
    pub(crate) async fn connect(
        config: RedisConfig,
        engine: &crate::EngineConfig,
        events: EventSender,
        live: Arc<Live>,
    ) -> Result<RedisBackend> {
        if config.cluster && config.wait_replicas > 0 {
            // WAIT counts the replicas of the connection's own node; a cluster spreads
            // tenants over several masters.
            return Err(Error::InvalidRequest(
                "waiting for replicas (--redis-wait-replicas) works with one Redis and its replicas, not with --redis-cluster".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("usher-redis")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the Redis runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let connecting = config.clone();
        let conn = handle
            .spawn(async move { Conn::connect(&connecting).await })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| {
                Error::Internal(format!(
                    "cannot reach Redis at {}: {e}",
                    config.urls.join(", ")
                ))
            })?;
        let live_channel = format!("{}:live", config.prefix);
        handle.spawn(listen(config.clone(), live_channel.clone(), live));
        let shared = Arc::new(Shared {
            live_channel,
            config,
            conn,
            pool: Function::new("pool", POOL_SCRIPT),
            reindex: Script::new(REINDEX_SCRIPT),
            due: Script::new(DUE_SCRIPT),
            retention: engine.retention,
            events,
            retry_after: engine.overload_retry_after,
            failure: Mutex::new(None),
            failing: AtomicBool::new(false),
            lacks_functions: AtomicBool::new(false),
        });
        let backend = RedisBackend {
            shared,
            queues: DashMap::new(),
            keys: DashMap::new(),
            capacity: engine.mailbox_capacity,
            runtime: Mutex::new(Some(runtime)),
            handle,
        };
        Ok(backend)
    }

    /// Starts the sweeper: every `every`, the tenants with something due are asked to
    /// expire it. `queue` reaches a tenant's queue (the backend itself, weakly held).
    pub(crate) fn start_sweeper(self: &Arc<Self>, every: Duration) {
        let me = Arc::downgrade(self);
        self.handle.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(backend) = me.upgrade() else { return };
                let _ = backend.sweep().await;
            }
        });
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.shared.config.prefix)
    }

    /// Asks each tenant whose earliest deadline has passed to expire what is due;
    /// returns how many were asked. The work of one sweeper tick.
    pub(crate) async fn sweep(&self) -> Result<usize> {
        let shared = &self.shared;
        let due: Vec<String> = shared
            .conn
            .script(
                &shared.due,
                &[self.key("due")],
                &[shared.config.clock.arg(), "1000".into()],
            )
            .await
            .map_err(|e| unavailable(shared, e))?;
        // Redis answers again: health is restored by the sweeper's own call.
        answered(shared);
        let due: Vec<TenantId> = due.iter().filter_map(|n| TenantId::parse(n).ok()).collect();
        // A tenant deleted meanwhile answers not found; the index then drops it.
        futures::future::join_all(
            due.iter()
                .map(|tenant| self.call(tenant, Priority::Control, json!({"op": "sweep"}))),
        )
        .await;
        Ok(due.len())
    }

    /// The tenant's queue on this node, started on first use.
    fn queue(&self, tenant: &TenantId) -> mpsc::Sender<Job> {
        if let Some(queue) = self.queues.get(tenant) {
            return queue.clone();
        }
        self.queues
            .entry(tenant.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(self.capacity.max(1));
                self.handle
                    .spawn(run_queue(self.shared.clone(), tenant.clone(), rx));
                tx
            })
            .clone()
    }

    /// Sends one request to the tenant's script and waits for its answer.
    async fn call(
        &self,
        tenant: &TenantId,
        priority: Priority,
        mut request: Value,
    ) -> Result<Value> {
        // The script's JSON reads `null` as a value of its own: absent is clearer.
        if let Value::Object(fields) = &mut request {
            fields.retain(|_, v| !v.is_null());
        }
        let (reply, answer) = oneshot::channel();
        let job = Job { request, reply };
        let queue = self.queue(tenant);
        match priority {
            Priority::Shed => queue.try_send(job).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Overloaded {
                    retry_after: self.shared.retry_after,
                },
                mpsc::error::TrySendError::Closed(_) => Error::Internal("queue closed".into()),
            })?,
            Priority::Control => queue
                .send(job)
                .await
                .map_err(|_| Error::Internal("queue closed".into()))?,
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::Internal("the tenant queue stopped".into())))
    }

    async fn query<T: ::redis::FromRedisValue + Send + 'static>(
        &self,
        cmd: ::redis::Cmd,
    ) -> Result<T> {
        let shared = self.shared.clone();
        let deadline = shared.config.deadline;
        let run = async move {
            tokio::time::timeout(deadline, shared.conn.query(&cmd))
                .await
                .map_err(|_| unavailable(&shared, "Redis did not answer in time"))?
                .map_err(|e| unavailable(&shared, e))
        };
        self.handle
            .spawn(run)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// The last Redis failure, if the last call failed, or that Redis has no Redis
    /// Functions, until a pool call goes through.
    pub(crate) fn failure(&self) -> Option<String> {
        if self.shared.lacks_functions.load(Ordering::Relaxed) {
            return Some(NEEDS_FUNCTIONS.into());
        }
        if !self.shared.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) async fn put_tenant(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<(TenantView, bool)> {
        let inc = format!("{:016x}", crate::token::random_u64());
        let answer = self
            .call(
                tenant,
                Priority::Control,
                json!({"op": "put", "tenant": tenant.as_str(), "inc": inc, "licence": licence_json(&licence)}),
            )
            .await?;
        let created = answer["created"].as_bool().unwrap_or(false);
        if created {
            let mut add = ::redis::cmd("SADD");
            add.arg(self.key("tenants")).arg(tenant.as_str());
            self.query::<i64>(add).await?;
        }
        Ok((tenant_view(&answer["ok"])?, created))
    }

    pub(crate) async fn licence(&self, tenant: &TenantId) -> Result<Licence> {
        let answer = self
            .call(tenant, Priority::Shed, json!({"op": "view"}))
            .await?;
        licence_of_view(&answer["ok"])
    }

    pub(crate) async fn change_licence(
        &self,
        tenant: &TenantId,
        expected: Licence,
        licence: Licence,
    ) -> Result<TenantView> {
        let request = json!({"op": "change", "expected": licence_json(&expected),
                             "licence": licence_json(&licence)});
        let answer = self.call(tenant, Priority::Control, request).await?;
        tenant_view(&answer["ok"])
    }

    pub(crate) async fn delete_tenant(&self, tenant: &TenantId) -> Result<()> {
        let view = self
            .call(tenant, Priority::Control, json!({"op": "view"}))
            .await?;
        let key = view["ok"]["key"].as_str().map(String::from);
        self.call(tenant, Priority::Control, json!({"op": "delete"}))
            .await?;
        let mut remove = ::redis::cmd("SREM");
        remove.arg(self.key("tenants")).arg(tenant.as_str());
        self.query::<i64>(remove).await?;
        let mut unindex = ::redis::cmd("ZREM");
        unindex.arg(self.key("due")).arg(tenant.as_str());
        self.query::<i64>(unindex).await?;
        if let Some(key) = key {
            let mut forget = ::redis::cmd("DEL");
            forget.arg(self.key(&format!("key:{key}")));
            self.query::<i64>(forget).await?;
        }
        self.keys.retain(|_, (owner, _)| owner != tenant);
        Ok(())
    }

    pub(crate) async fn tenant_ids(&self) -> Result<Vec<TenantId>> {
        let mut members = ::redis::cmd("SMEMBERS");
        members.arg(self.key("tenants"));
        let names: Vec<String> = self.query(members).await?;
        let mut ids: Vec<TenantId> = names
            .iter()
            .filter_map(|n| TenantId::parse(n).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub(crate) async fn tenant(&self, tenant: &TenantId) -> Result<TenantView> {
        let answer = self
            .call(tenant, Priority::Shed, json!({"op": "view"}))
            .await?;
        tenant_view(&answer["ok"])
    }

    pub(crate) async fn preview_licence(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<LicencePreview> {
        let request = json!({
            "op": "holdings",
            "model": licence.model.name(),
            "members": licence.has_group_rules(),
        });
        let holdings = match self.call(tenant, Priority::Shed, request).await {
            Ok(answer) => {
                let ok = &answer["ok"];
                let named = list(&ok["named"])
                    .iter()
                    .map(|user| UserId::parse(text(user)?));
                Some(Holdings {
                    licence: licence_of_view(&ok["view"])?,
                    view: tenant_view(&ok["view"])?,
                    assigned: number(&ok["assigned"])? as u32,
                    active_users: number(&ok["active"])? as u32,
                    kept: number(&ok["kept"])? as u32,
                    named: named.collect::<Result<_>>()?,
                    members: list(&ok["members"])
                        .iter()
                        .map(|member| {
                            Ok(Member {
                                groups: groups_of(&member["groups"])?,
                                sessions: number(&member["sessions"])? as u32,
                                kept: number(&member["kept"])? as u32,
                            })
                        })
                        .collect::<Result<_>>()?,
                })
            }
            Err(Error::TenantNotFound) => None,
            Err(error) => return Err(error),
        };
        Ok(preview(tenant, holdings, licence))
    }

    pub(crate) async fn login(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
    ) -> Result<Login> {
        match self.arrive(tenant, user, client, false).await? {
            Entry::Admitted(login) => Ok(login),
            Entry::Queued(_) => Err(Error::Internal("a plain login was queued".into())),
        }
    }

    /// A login that a licence that queues puts in line at its limit (SPEC §10).
    pub(crate) async fn enter(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
    ) -> Result<Entry> {
        self.arrive(tenant, user, client, true).await
    }

    /// A login; with `may_queue`, one answered with a ticket when it is put in line.
    /// A ticket's token is made and routed as a session's is.
    async fn arrive(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
        may_queue: bool,
    ) -> Result<Entry> {
        let token = SessionToken::generate().routed(tenant);
        let mut request = json!({"op": "login", "user": user.as_str(), "client": client,
                                 "id": token.id().to_string(), "secret": hex(&token.secret_hash().to_bytes())});
        if may_queue {
            request["queue"] = json!(true);
        }
        let answer = self.call(tenant, Priority::Shed, request).await?;
        let ok = &answer["ok"];
        if ok["queued"].as_bool() == Some(true) {
            let idle_timeout = Duration::from_millis(number(&ok["idle"])?);
            let claim = Duration::from_millis(number(&ok["claim"])?);
            return Ok(Entry::Queued(Ticket {
                token,
                tenant: tenant.clone(),
                user: user.clone(),
                position: number(&ok["position"])? as u32,
                expires_at: Timestamp::from_millis(number(&ok["expires_at"])?),
                idle_timeout,
                // As the licence says; only its idle timeout and claim window count.
                heartbeat_interval: Licence::concurrent(1)
                    .idle_timeout(idle_timeout)
                    .queue_claim(claim)
                    .ticket_heartbeat_interval(),
            }));
        }
        Ok(Entry::Admitted(login_of(token, tenant, user, ok)?))
    }

    pub(crate) async fn ticket_heartbeat(&self, ticket: &SessionToken) -> Result<TicketStatus> {
        let tenant = ticket.route().ok_or(Error::TicketNotFound)?;
        let answer = self
            .call(
                tenant,
                Priority::Shed,
                Self::session_request("ticket_heartbeat", ticket),
            )
            .await?;
        let ok = &answer["ok"];
        Ok(TicketStatus {
            position: number(&ok["position"])? as u32,
            claim_by: optional_time(&ok["claim_by"])?,
            expires_at: Timestamp::from_millis(number(&ok["expires_at"])?),
        })
    }

    /// The tenant a ticket routes to.
    pub(crate) fn ticket_tenant(&self, ticket: &SessionToken) -> Result<TenantId> {
        ticket.route().cloned().ok_or(Error::TicketNotFound)
    }

    /// Turns a ticket a seat is held for into a session with a token of its own.
    pub(crate) async fn claim(&self, ticket: &SessionToken) -> Result<Login> {
        let tenant = ticket.route().ok_or(Error::TicketNotFound)?;
        let token = SessionToken::generate().routed(tenant);
        let mut request = Self::session_request("claim", ticket);
        request["session"] = json!(token.id().to_string());
        request["session_secret"] = json!(hex(&token.secret_hash().to_bytes()));
        let answer = self.call(tenant, Priority::Shed, request).await?;
        let ok = &answer["ok"];
        let user = UserId::parse(text(&ok["user"])?)?;
        login_of(token, tenant, &user, ok)
    }

    pub(crate) async fn cancel_ticket(&self, ticket: &SessionToken) -> Result<()> {
        let tenant = ticket.route().ok_or(Error::TicketNotFound)?;
        self.call(
            tenant,
            Priority::Shed,
            Self::session_request("cancel_ticket", ticket),
        )
        .await?;
        Ok(())
    }

    /// The tenant's line, head first.
    pub(crate) async fn waitlist(&self, tenant: &TenantId) -> Result<Vec<QueueEntry>> {
        let answer = self
            .call(tenant, Priority::Control, json!({"op": "queue"}))
            .await?;
        list(&answer["ok"]).iter().map(queue_entry).collect()
    }

    fn session_request(op: &str, token: &SessionToken) -> Value {
        json!({"op": op, "id": token.id().to_string(), "secret": hex(&token.secret_hash().to_bytes())})
    }

    pub(crate) async fn heartbeat(&self, token: &SessionToken) -> Result<crate::engine::Heartbeat> {
        let tenant = token.route().ok_or(Error::SessionNotFound)?;
        let answer = self
            .call(
                tenant,
                Priority::Shed,
                Self::session_request("heartbeat", token),
            )
            .await?;
        let ok = &answer["ok"];
        Ok(crate::engine::Heartbeat {
            expires_at: Timestamp::from_millis(number(&ok["expires_at"])?),
            idle_timeout: Duration::from_millis(number(&ok["idle"])?),
            fence: number(&ok["fence"])?,
        })
    }

    pub(crate) async fn release(&self, token: &SessionToken) -> Result<()> {
        let tenant = token.route().ok_or(Error::SessionNotFound)?;
        self.call(
            tenant,
            Priority::Shed,
            Self::session_request("release", token),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn logout(&self, token: &SessionToken) -> Result<u32> {
        let tenant = token.route().ok_or(Error::SessionNotFound)?;
        let answer = self
            .call(
                tenant,
                Priority::Shed,
                Self::session_request("logout", token),
            )
            .await?;
        Ok(number(&answer["ok"])? as u32)
    }

    pub(crate) async fn revoke(&self, tenant: &TenantId, session: SessionId) -> Result<()> {
        self.call(
            tenant,
            Priority::Control,
            json!({"op": "revoke", "id": session.to_string()}),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn logout_user(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        let answer = self
            .call(
                tenant,
                Priority::Control,
                json!({"op": "logout_user", "user": user.as_str()}),
            )
            .await?;
        Ok(number(&answer["ok"])? as u32)
    }

    pub(crate) async fn put_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        groups: Option<&[GroupId]>,
    ) -> Result<UserView> {
        let mut request = json!({"op": "put_user", "user": user.as_str()});
        if let Some(groups) = groups {
            request["groups"] = json!(crate::pool::user_groups(groups)?);
        }
        let answer = self.call(tenant, Priority::Control, request).await?;
        user_view(&answer["ok"])
    }

    pub(crate) async fn remove_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        self.call(
            tenant,
            Priority::Control,
            json!({"op": "remove_user", "user": user.as_str()}),
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn users_page(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Page<UserView, UserId>> {
        let answer = self
            .call(
                tenant,
                Priority::Shed,
                json!({"op": "users", "after": after.map(UserId::as_str), "limit": page_limit(limit)}),
            )
            .await?;
        let items = list(&answer["ok"]["items"])
            .iter()
            .map(user_view)
            .collect::<Result<Vec<_>>>()?;
        let next = match answer["ok"]["more"].as_bool() {
            Some(true) => items.last().map(|u| u.user.clone()),
            _ => None,
        };
        Ok(Page { items, next })
    }

    pub(crate) async fn sessions_page(
        &self,
        tenant: &TenantId,
        after: Option<SessionCursor>,
        limit: usize,
    ) -> Result<Page<SessionView, SessionCursor>> {
        let mut request = json!({"op": "sessions", "limit": page_limit(limit)});
        if let Some(cursor) = after {
            request["after_at"] = json!(cursor.started_at.as_millis());
            request["after_id"] = json!(cursor.id.to_string());
        }
        let answer = self.call(tenant, Priority::Shed, request).await?;
        let items = list(&answer["ok"]["items"])
            .iter()
            .map(session_view)
            .collect::<Result<Vec<_>>>()?;
        let next = match answer["ok"]["more"].as_bool() {
            Some(true) => items.last().map(SessionCursor::after),
            _ => None,
        };
        Ok(Page { items, next })
    }

    pub(crate) async fn report_records(
        &self,
        tenant: &TenantId,
        count: u64,
    ) -> Result<RecordsView> {
        let answer = self
            .call(
                tenant,
                Priority::Control,
                json!({"op": "report_records", "count": count}),
            )
            .await?;
        records_view(&answer["ok"])
    }

    pub(crate) async fn records(&self, tenant: &TenantId) -> Result<RecordsView> {
        let answer = self
            .call(tenant, Priority::Shed, json!({"op": "records"}))
            .await?;
        records_view(&answer["ok"])
    }

    /// Makes `hash` the tenant's one API key: the index entry is written first, so a
    /// key is never current without a way to find it; the old entry goes last.
    pub(crate) async fn set_api_key(&self, tenant: &TenantId, hash: [u8; 32]) -> Result<()> {
        let text = hex(&hash);
        let mut index = ::redis::cmd("SET");
        index
            .arg(self.key(&format!("key:{text}")))
            .arg(tenant.as_str());
        self.query::<()>(index).await?;
        let answer = self
            .call(
                tenant,
                Priority::Control,
                json!({"op": "set_key", "key": text}),
            )
            .await?;
        self.keys.retain(|_, (owner, _)| owner != tenant);
        if let Some(old) = answer["ok"].as_str().filter(|old| *old != text) {
            let mut forget = ::redis::cmd("DEL");
            forget.arg(self.key(&format!("key:{old}")));
            self.query::<i64>(forget).await?;
        }
        Ok(())
    }

    /// Writes (or removes) one webhook entry in the shared hash of them.
    pub(crate) async fn put_webhook_entry(&self, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        let mut write = ::redis::cmd(if value.is_some() { "HSET" } else { "HDEL" });
        write.arg(self.key("webhooks")).arg(key);
        if let Some(value) = value {
            write.arg(value);
        }
        self.query::<i64>(write).await?;
        let shared = self.shared.clone();
        self.handle
            .spawn(async move { replicated(&shared).await })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// The webhook entry under `key`, if any.
    pub(crate) async fn webhook_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut read = ::redis::cmd("HGET");
        read.arg(self.key("webhooks")).arg(key);
        self.query(read).await
    }

    /// Every webhook entry whose key starts with `prefix`, in key order.
    pub(crate) async fn webhook_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut read = ::redis::cmd("HGETALL");
        read.arg(self.key("webhooks"));
        let all: BTreeMap<String, Vec<u8>> = self.query(read).await?;
        Ok(all
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .collect())
    }

    /// Takes or keeps the lease that makes `holder` the one node delivering webhooks,
    /// for `ttl`; false while another node holds it.
    pub(crate) async fn webhook_lease(&self, holder: &str, ttl: Duration) -> Result<bool> {
        let lease = ::redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then \
               return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
             elseif redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
               return 1 \
             else return 0 end",
        );
        let shared = self.shared.clone();
        let keys = [self.key("webhooks:lease")];
        let args = [holder.to_owned(), ttl.as_millis().to_string()];
        let deadline = shared.config.deadline;
        let held: i64 = self
            .handle
            .spawn(async move {
                tokio::time::timeout(deadline, shared.conn.script(&lease, &keys, &args))
                    .await
                    .map_err(|_| unavailable(&shared, "Redis did not answer in time"))?
                    .map_err(|e| unavailable(&shared, e))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(held == 1)
    }

    /// The tenant whose current API key hashes to `hash`, as Redis says (trusted on
    /// this node for under a second).
    pub(crate) async fn tenant_of_key(&self, hash: &[u8; 32]) -> Result<Option<TenantId>> {
        if let Some(entry) = self.keys.get(hash) {
            let (tenant, at) = entry.value();
            if at.elapsed() < KEY_CACHE_FOR {
                return Ok(Some(tenant.clone()));
            }
        }
        let text = hex(hash);
        let mut index = ::redis::cmd("GET");
        index.arg(self.key(&format!("key:{text}")));
        let owner: Option<String> = self.query(index).await?;
        let Some(tenant) = owner.and_then(|o| TenantId::parse(&o).ok()) else {
            return Ok(None);
        };
        let current = match self
            .call(&tenant, Priority::Shed, json!({"op": "key", "key": text}))
            .await
        {
            Ok(answer) => answer["ok"].is_string(),
            Err(Error::TenantNotFound) => false,
            Err(e) => return Err(e),
        };
        if !current {
            return Ok(None);
        }
        self.keys.insert(*hash, (tenant.clone(), Instant::now()));
        Ok(Some(tenant))
    }

    /// The tenant's events as its log in Redis holds them.
    async fn log(
        &self,
        tenant: &TenantId,
        from: &str,
        count: usize,
    ) -> Result<Vec<(String, Event)>> {
        let mut range = ::redis::cmd("XRANGE");
        range
            .arg(self.key(&format!("{{{tenant}}}:log")))
            .arg(from)
            .arg("+")
            .arg("COUNT")
            .arg(count);
        let entries: Vec<(String, Vec<(String, String)>)> = self.query(range).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let mut map = serde_json::Map::new();
                for (k, v) in fields {
                    map.insert(k, Value::String(v));
                }
                Some((id, event_of(tenant, &Value::Object(map)).ok()?))
            })
            .collect())
    }

    pub(crate) async fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage> {
        self.tenant(tenant).await?;
        // The cursor is the stream id of the last event of the previous page: the same
        // `millis-number` shape as the embedded store's.
        let from = match &query.cursor {
            Some(cursor) => {
                let (ms, n) = crate::store::parse_cursor(cursor)?;
                format!("({ms}-{n}")
            }
            None => format!("{}", query.since.as_millis()),
        };
        let limit = query.limit.max(1);
        let mut found = self.log(tenant, &from, limit + 1).await?;
        let more = found.len() > limit;
        found.truncate(limit);
        let next_cursor = if more {
            found.last().map(|(id, _)| id.clone())
        } else {
            None
        };
        let events: Vec<AuditEvent> = found
            .into_iter()
            .map(|(id, event)| AuditEvent {
                seq: stream_seq(&id),
                id,
                event,
            })
            .collect();
        Ok(EventPage {
            events,
            next_cursor,
        })
    }

    /// The usage report, built from the tenant's log by the same book as the embedded
    /// backend's.
    pub(crate) async fn usage(&self, tenant: &TenantId, days: u32) -> Result<Vec<DayUsage>> {
        // The view says whether the tenant exists, and what day it is on Redis time.
        let view = self
            .call(tenant, Priority::Shed, json!({"op": "view"}))
            .await?;
        let today = Timestamp::from_millis(number(&view["ok"]["now"])?);
        let mut book = UsageBook::default();
        let mut from = "-".to_string();
        loop {
            let page = self.log(tenant, &from, 10_000).await?;
            let Some((last, _)) = page.last() else { break };
            from = format!("({last}");
            let full = page.len() == 10_000;
            for (_, event) in &page {
                book.record(event);
            }
            if !full {
                break;
            }
        }
        Ok(book.report(tenant, days, today))
    }

    /// Where the scripts read the time.
    pub(crate) fn clock(&self) -> &RedisClock {
        &self.shared.config.clock
    }
}

/// One tenant's queue on this node: everything waiting goes to Redis as one call.
async fn run_queue(shared: Arc<Shared>, tenant: TenantId, mut rx: mpsc::Receiver<Job>) {
    let tag = format!("{}:{{{tenant}}}", shared.config.prefix);
    let keys: Vec<String> = [
        "", ":s", ":due", ":start", ":u", ":order", ":ended", ":endq", ":log", ":fence", ":idle",
        ":grace", ":tk", ":line", ":tdue", ":tended", ":tendq",
    ]
    .iter()
    .map(|suffix| format!("{tag}{suffix}"))
    .collect();
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    // Logins of calls that failed, to take back with the next call that gets through:
    // the script may have admitted them before the node stopped waiting.
    let mut withdraw: Vec<Value> = Vec::new();
    while let Some(job) = rx.recv().await {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let requests: Vec<&Value> = withdraw
            .iter()
            .chain(batch.iter().map(|j| &j.request))
            .collect();
        let args = [
            shared.config.clock.arg(),
            shared.retention.ended_for.as_millis().to_string(),
            shared.retention.capacity.to_string(),
            shared.config.log_capacity.to_string(),
            serde_json::to_string(&requests).unwrap_or_else(|_| "[]".into()),
            shared.live_channel.clone(),
            tenant.to_string(),
        ];
        let outcome = decide(&shared, &tenant, &keys, &args).await;
        match outcome {
            Ok(answers) => {
                let answers = answers.into_iter().skip(withdraw.len());
                withdraw.clear();
                for (job, answer) in batch.drain(..).zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                for job in batch.drain(..) {
                    // A claim's session is taken back as a login's is; its ticket stays
                    // ended, as in the embedded backend.
                    let admits = match job.request["op"].as_str() {
                        Some("login") => Some(&job.request["id"]),
                        Some("claim") => Some(&job.request["session"]),
                        _ => None,
                    };
                    if let Some(id) = admits {
                        withdraw.push(json!({"op": "withdraw", "id": id}));
                    }
                    let _ = job.reply.send(Err(error.clone()));
                }
                // What arrived while Redis failed to answer has waited for it already:
                // answered now, not after a second full deadline.
                if matches!(error, Error::Unavailable { .. }) {
                    while let Ok(job) = rx.try_recv() {
                        let _ = job.reply.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

/// Hears what every node's scripts publish for the live channel and passes it to this
/// node's hub, for as long as the runtime runs. A cut subscription is made again with
/// backoff, and every listener then reads again what it may have missed.
async fn listen(config: RedisConfig, channel: String, live: Arc<Live>) {
    use futures::StreamExt;
    // Any node of a cluster hears what is published on any other: after a cut, the
    // next one is tried.
    let mut urls = config.urls.iter().cycle();
    let mut backoff = Duration::from_millis(100);
    let mut cut = false;
    loop {
        let url = urls.next().cloned().unwrap_or_default();
        let subscribed = async {
            let client = ::redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(config.deadline, subscribed).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(100);
                if cut {
                    live.wake_all();
                }
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(payload) = message.get_payload::<String>() {
                        if let Some(news) = news_of(&payload) {
                            live.publish(&news);
                        }
                    }
                }
                tracing::warn!("the Redis subscription for the live channel was cut");
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot subscribe to the live channel"),
            Err(_) => tracing::warn!("subscribing to the live channel timed out"),
        }
        cut = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The news in one message of the scripts (see `pool.lua`, ARGV 6).
fn news_of(payload: &str) -> Option<News> {
    let raw: Value = serde_json::from_str(payload).ok()?;
    let tenant = TenantId::parse(raw["t"].as_str()?).ok()?;
    // An empty Lua table is encoded as `{}`.
    let ended = raw["e"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| {
            let (session, reason) = entry.as_str()?.split_once(' ')?;
            Some((SessionId::parse(session).ok()?, end_reason(reason)?))
        })
        .collect();
    Some(News {
        tenant: Some(tenant),
        logged: true,
        deleted: raw["d"].as_bool().unwrap_or(false),
        ended,
    })
}

/// Waits until the configured number of replicas has every write so far (Redis
/// `WAIT`), or says the write is not durable.
async fn replicated(shared: &Shared) -> Result<()> {
    let deadline = shared.config.deadline;
    if shared.config.wait_replicas > 0 {
        let mut wait = ::redis::cmd("WAIT");
        wait.arg(shared.config.wait_replicas)
            .arg(deadline.as_millis() as u64);
        let reached: i64 = tokio::time::timeout(deadline, shared.conn.query(&wait))
            .await
            .map_err(|_| unavailable(shared, "Redis replicas did not confirm in time"))?
            .map_err(|e| unavailable(shared, e))?;
        if reached < shared.config.wait_replicas as i64 {
            return Err(unavailable(
                shared,
                format!(
                    "{reached} of {} Redis replicas confirmed the write",
                    shared.config.wait_replicas
                ),
            ));
        }
    }
    Ok(())
}

/// One script call for a batch, then what follows from it: events to this node's
/// subscribers and the index of due tenants.
async fn decide(
    shared: &Shared,
    tenant: &TenantId,
    keys: &[String],
    args: &[String],
) -> Result<Vec<Result<Value>>> {
    let deadline = shared.config.deadline;
    let text: String = tokio::time::timeout(deadline, shared.conn.fcall(&shared.pool, keys, args))
        .await
        .map_err(|_| unavailable(shared, "Redis did not answer in time"))?
        .map_err(|e| {
            // Redis's answer names the call's first arguments: only the fact is told.
            let lacks = is_unknown_command(&e);
            shared.lacks_functions.store(lacks, Ordering::Relaxed);
            match lacks {
                true => unavailable(shared, NEEDS_FUNCTIONS),
                false => unavailable(shared, e),
            }
        })?;
    // Read first, as in `answered`.
    if shared.lacks_functions.load(Ordering::Relaxed) {
        shared.lacks_functions.store(false, Ordering::Relaxed);
    }
    replicated(shared).await?;
    answered(shared);
    let mut out: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("the pool script answered badly: {e}")))?;
    shared.events.send_all(
        list(&out["events"])
            .iter()
            .filter_map(|raw| event_of(tenant, raw).ok())
            .collect(),
    );
    let index = format!("{}:due", shared.config.prefix);
    let swept = out["swept"].as_bool().unwrap_or(false);
    let due = out["due"].as_u64();
    if swept {
        let now = out["now"].as_u64().unwrap_or(0).to_string();
        let next = due.map(|d| d.to_string()).unwrap_or_default();
        let _ = shared
            .conn
            .script::<i64>(&shared.reindex, &[index], &[now, next, tenant.to_string()])
            .await;
    } else if let Some(lowered) = out["lowered"].as_u64() {
        let mut add = ::redis::cmd("ZADD");
        add.arg(&index).arg("LT").arg(lowered).arg(tenant.as_str());
        let _ = shared.conn.query::<i64>(&add).await;
    }
    let answers = match out["answers"].take() {
        Value::Array(answers) => answers,
        _ => Vec::new(), // the script's JSON writes an empty list as `{}`
    };
    Ok(answers
        .into_iter()
        .map(|answer| match answer.get("err").and_then(Value::as_str) {
            Some(code) => Err(error_of(code, &answer)),
            None => Ok(answer),
        })
        .collect())
}

fn error_of(code: &str, answer: &Value) -> Error {
    let n = |field: &str| answer[field].as_u64().unwrap_or(0);
    match code {
        "tenant_not_found" => Error::TenantNotFound,
        "user_not_found" => Error::UserNotFound,
        "session_not_found" => Error::SessionNotFound,
        "session_ended" => match end_reason(answer["reason"].as_str().unwrap_or_default()) {
            Some(reason) => Error::SessionEnded { reason },
            None => Error::SessionNotFound,
        },
        "user_not_licensed" => Error::UserNotLicensed {
            user: answer["user"].as_str().unwrap_or_default().to_string(),
        },
        "user_limit_reached" => Error::UserLimitReached {
            max_users: n("max_users") as u32,
        },
        "licence_limit_reached" => Error::LicenceLimitReached {
            seats: n("seats") as u32,
            seats_in_use: n("seats_in_use") as u32,
            reserved: n("reserved") as u32,
            retry_after: answer["retry_after_ms"].as_u64().map(Duration::from_millis),
        },
        "group_limit_reached" => Error::GroupLimitReached {
            group: answer["group"].as_str().unwrap_or_default().to_string(),
            max: n("max") as u32,
        },
        "seats_exhausted" => Error::SeatsExhausted {
            seats: n("seats") as u32,
        },
        "session_limit_reached" => Error::SessionLimitReached {
            max_sessions_per_user: n("max_sessions_per_user") as u32,
        },
        "licence_changed" => Error::LicenceChanged,
        "ticket_not_found" => Error::TicketNotFound,
        "ticket_ended" => match end_reason(answer["reason"].as_str().unwrap_or_default()) {
            Some(reason) => Error::TicketEnded { reason },
            None => Error::TicketNotFound,
        },
        "not_ready" => Error::NotReady {
            position: n("position") as u32,
        },
        "invalid_limit" => match crate::pool::check_page_limit(0) {
            Err(e) => e,
            Ok(()) => Error::Internal("a page limit of 0 was taken".into()),
        },
        other => Error::Internal(format!("the pool script refused with {other}")),
    }
}

fn end_reason(text: &str) -> Option<EndReason> {
    Some(match text {
        "expired" => EndReason::Expired,
        "released" => EndReason::Released,
        "logged_out" => EndReason::LoggedOut,
        "revoked" => EndReason::Revoked,
        "evicted" => EndReason::Evicted,
        "displaced" => EndReason::Displaced,
        "cancelled" => EndReason::Cancelled,
        "claimed" => EndReason::Claimed,
        "claim_missed" => EndReason::ClaimMissed,
        _ => return None,
    })
}

fn refusal(text: &str) -> Option<Refusal> {
    Refusal::from_code(text)
}

/// A JSON list; the script's JSON writes an empty list as `{}`.
fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A number the script wrote, as JSON or as text (stream fields are text).
fn number(value: &Value) -> Result<u64> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::Internal(format!("the pool script wrote {value} for a number")))
}

fn text(value: &Value) -> Result<&str> {
    value
        .as_str()
        .ok_or_else(|| Error::Internal(format!("the pool script wrote {value} for a text")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn page_limit(limit: usize) -> u64 {
    limit.min(1 << 40) as u64
}

fn stream_seq(id: &str) -> u64 {
    let (ms, n) = id.split_once('-').unwrap_or((id, "0"));
    ms.parse::<u64>().unwrap_or(0) * 1_000_000 + n.parse::<u64>().unwrap_or(0)
}

fn licence_json(licence: &Licence) -> Value {
    let (model, seats, per) = match licence.model {
        LicenceModel::Named { seats } => ("named", seats, ""),
        LicenceModel::Concurrent { seats, seat_per } => (
            "concurrent",
            seats,
            match seat_per {
                SeatPer::User => "user",
                SeatPer::Session => "session",
            },
        ),
        LicenceModel::Records => ("records", 0, ""),
    };
    let policies = &licence.policies;
    json!({"model": model, "seats": seats, "per": per,
           "idle": licence.idle_timeout.as_millis() as u64, "max": licence.max_users,
           "lim": licence.limit().unwrap_or(0), "onl": policies.on_limit.as_str(),
           "hold": policies.min_hold.as_millis() as u64,
           "msu": policies.max_sessions_per_user.unwrap_or(0),
           "grace": policies.reload_grace.as_millis() as u64,
           "qclaim": policies.queue_claim.as_millis() as u64,
           "gres": serde_json::to_string(&policies.reserve).unwrap_or_default(),
           "gmax": serde_json::to_string(&policies.group_max).unwrap_or_default(),
           "pol": serde_json::to_string(policies).unwrap_or_default()})
}

fn licence_of(value: &Value) -> Result<Licence> {
    let seats = number(&value["seats"])? as u32;
    let model = match text(&value["model"])? {
        "named" => LicenceModel::Named { seats },
        "concurrent" => LicenceModel::Concurrent {
            seats,
            seat_per: match value["per"].as_str() {
                Some("session") => SeatPer::Session,
                _ => SeatPer::User,
            },
        },
        _ => LicenceModel::Records,
    };
    // The policies' wire form, as the pool keeps it; none before there were any.
    let policies = match value["pol"].as_str() {
        None | Some("") => Policies::default(),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Error::Internal(format!("the pool script kept the policies {text:?}: {e}"))
        })?,
    };
    Ok(Licence {
        model,
        idle_timeout: Duration::from_millis(number(&value["idle"])?),
        max_users: number(&value["max"])? as u32,
        policies,
    })
}

/// The licence of a view the script wrote.
fn licence_of_view(value: &Value) -> Result<Licence> {
    licence_of(&json!({
        "model": value["model"], "seats": value["seats"].as_u64().unwrap_or(0),
        "per": value["seat_per"], "idle": value["idle"], "max": value["max_users"],
        "pol": value["pol"],
    }))
}

fn tenant_view(value: &Value) -> Result<TenantView> {
    let licence = licence_of_view(value)?;
    let mut view = TenantView {
        seats_in_use: number(&value["seats_in_use"])? as u32,
        sessions: number(&value["sessions"])? as u32,
        users: number(&value["users"])? as u32,
        records: number(&value["records"])?,
        queued: number(&value["queued"])? as u32,
        held_for_queue: number(&value["held_for_queue"])? as u32,
        ..TenantView::of(TenantId::parse(text(&value["tenant"])?)?, &licence)
    };
    if let Some(held) = &mut view.held_for_reload {
        *held = number(&value["held_for_reload"])? as u32;
    }
    for pair in list(&value["group_seats"]) {
        let group = GroupId::parse(text(&pair[0])?)?;
        view.add_group_seats(&group, number(&pair[1])? as u32);
    }
    Ok(view)
}

/// A list of groups the script wrote (an empty list as an object, or left out).
fn groups_of(value: &Value) -> Result<Vec<GroupId>> {
    list(value)
        .iter()
        .map(|g| GroupId::parse(text(g)?))
        .collect()
}

fn user_view(value: &Value) -> Result<UserView> {
    Ok(UserView {
        user: UserId::parse(text(&value["user"])?)?,
        assigned: value["assigned"].as_bool().unwrap_or(false),
        sessions: number(&value["sessions"])? as u32,
        groups: groups_of(&value["groups"])?,
    })
}

fn session_view(value: &Value) -> Result<SessionView> {
    Ok(SessionView {
        id: SessionId::parse(text(&value["id"])?)?,
        user: UserId::parse(text(&value["user"])?)?,
        client: value["client"].as_str().map(String::from),
        started_at: Timestamp::from_millis(number(&value["started_at"])?),
        last_heartbeat_at: Timestamp::from_millis(number(&value["last_heartbeat_at"])?),
        expires_at: Timestamp::from_millis(number(&value["expires_at"])?),
        fence: number(&value["fence"])?,
    })
}

/// A time the script may leave out.
fn optional_time(value: &Value) -> Result<Option<Timestamp>> {
    match value {
        Value::Null => Ok(None),
        other => Ok(Some(Timestamp::from_millis(number(other)?))),
    }
}

/// How often a client heartbeats under `idle_timeout`, as a licence says.
fn heartbeat_interval(idle_timeout: Duration) -> Duration {
    Licence::records()
        .idle_timeout(idle_timeout)
        .heartbeat_interval()
}

/// The client's view of an admission the script answered.
fn login_of(token: SessionToken, tenant: &TenantId, user: &UserId, ok: &Value) -> Result<Login> {
    let idle_timeout = Duration::from_millis(number(&ok["idle"])?);
    Ok(Login {
        token,
        tenant: tenant.clone(),
        user: user.clone(),
        expires_at: Timestamp::from_millis(number(&ok["expires_at"])?),
        idle_timeout,
        heartbeat_interval: heartbeat_interval(idle_timeout),
        fence: number(&ok["fence"])?,
        overage: ok["overage"].as_bool().unwrap_or(false),
    })
}

fn queue_entry(value: &Value) -> Result<QueueEntry> {
    Ok(QueueEntry {
        position: number(&value["position"])? as u32,
        ticket: SessionId::parse(text(&value["ticket"])?)?,
        user: UserId::parse(text(&value["user"])?)?,
        client: value["client"].as_str().map(String::from),
        queued_at: Timestamp::from_millis(number(&value["queued_at"])?),
        claim_by: optional_time(&value["claim_by"])?,
    })
}

fn records_view(value: &Value) -> Result<RecordsView> {
    Ok(RecordsView {
        count: number(&value["count"])?,
        peak_today: number(&value["peak_today"])?,
        peak_month: number(&value["peak_month"])?,
    })
}

/// An event as the script wrote it (in its answer or in the log).
fn event_of(tenant: &TenantId, value: &Value) -> Result<Event> {
    let user = || UserId::parse(text(&value["user"])?);
    let session = || SessionId::parse(text(&value["session"])?);
    let ticket = || SessionId::parse(text(&value["ticket"])?);
    let seats = || Ok::<u32, Error>(number(&value["seats_in_use"])? as u32);
    let bad = || Error::Internal(format!("the pool script wrote the event {value}"));
    let kind = match text(&value["type"])? {
        "tenant_created" => EventKind::TenantCreated {
            licence: Box::new(licence_of(value)?),
        },
        "licence_changed" => EventKind::LicenceChanged {
            licence: Box::new(licence_of(value)?),
            seats_in_use: seats()?,
        },
        "tenant_deleted" => EventKind::TenantDeleted,
        "admitted" => EventKind::Admitted {
            user: user()?,
            session: session()?,
            seats_in_use: seats()?,
            overage: matches!(&value["overage"], Value::Bool(true))
                || value["overage"].as_str() == Some("true"),
        },
        "refused" => EventKind::Refused {
            user: user()?,
            reason: refusal(text(&value["reason"])?).ok_or_else(bad)?,
        },
        "ended" => EventKind::Ended {
            user: user()?,
            session: session()?,
            reason: end_reason(text(&value["reason"])?).ok_or_else(bad)?,
            seats_in_use: seats()?,
        },
        "user_assigned" => EventKind::UserAssigned {
            user: user()?,
            assigned: matches!(&value["assigned"], Value::Bool(true))
                || value["assigned"].as_str() == Some("true"),
            groups: match value["groups"].as_str() {
                Some(list) => list.split(',').map(GroupId::parse).collect::<Result<_>>()?,
                None => Vec::new(),
            },
            seats_in_use: seats()?,
        },
        "withdrawn" => EventKind::Withdrawn {
            user: user()?,
            session: session()?,
            seats_in_use: seats()?,
        },
        "user_removed" => EventKind::UserRemoved {
            user: user()?,
            seats_in_use: seats()?,
        },
        "grace_lapsed" => EventKind::GraceLapsed {
            user: user()?,
            seats_in_use: seats()?,
        },
        "records_reported" => EventKind::RecordsReported {
            count: number(&value["count"])?,
        },
        "queued" => EventKind::Queued {
            user: user()?,
            ticket: ticket()?,
            position: number(&value["position"])? as u32,
        },
        "ticket_ready" => EventKind::TicketReady {
            user: user()?,
            ticket: ticket()?,
            claim_by: Timestamp::from_millis(number(&value["claim_by"])?),
        },
        "ticket_ended" => EventKind::TicketEnded {
            user: user()?,
            ticket: ticket()?,
            reason: end_reason(text(&value["reason"])?).ok_or_else(bad)?,
            waited_ms: number(&value["waited_ms"])?,
        },
        _ => return Err(bad()),
    };
    Ok(Event {
        tenant: tenant.clone(),
        at: Timestamp::from_millis(number(&value["at"])?),
        kind,
    })
}
