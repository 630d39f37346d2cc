//! The [`Engine`]: the public async API over every tenant's pool, and the one seam
//! above the pools — the deciding backend.
//!
//! Two backends answer the same calls with the same rules: the embedded one
//! (`embedded`: each tenant's [`PoolState`](crate::pool::PoolState) in an actor, memory
//! or a [`Store`] behind it) and the Redis one (`redis`: server-side scripts,
//! shared by any number of engines). The engine picks one at start-up and forwards
//! every call to it through `Backend`; what both need — the configuration, the clock
//! and the event consumer — stays here. It is cheap to clone, `Send + Sync`, and works
//! from any async runtime.

use std::sync::Arc;
use std::time::Duration;

use tracing::instrument;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::consumer::{self, Envelope, EventSender};
use crate::embedded::Embedded;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::{GroupId, SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::live::Live;
use crate::pool::{
    LicencePreview, Page, PoolSnapshot, QueueEntry, RecordsView, Retention, SessionCursor,
    SessionView, TenantView, TicketStatus, UserView,
};
#[cfg(feature = "redis")]
use crate::redis::{RedisBackend, RedisClock, RedisConfig};
use crate::store::{EventPage, EventQuery, Loaded, Store};
use crate::token::SessionToken;
use crate::usage::DayUsage;

/// Settings of an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `max_users` of a licence that does not state one.
    pub default_max_users: u32,
    /// How often the timer looks for due sessions.
    pub tick_every: Duration,
    /// Messages a pool's mailbox holds before callers get [`Error::Overloaded`].
    pub mailbox_capacity: usize,
    /// Events the consumer channel holds before events are dropped (and counted).
    pub event_capacity: usize,
    /// How long and how many ended sessions each pool remembers.
    pub retention: Retention,
    /// Arbiters (threads) the pools are spread over; 0 means one per core.
    pub workers: usize,
    /// The `Retry-After` hint given with [`Error::Overloaded`] and
    /// [`Error::Unavailable`].
    pub overload_retry_after: Duration,
    /// How long an answer waits for its write to become durable before the caller is
    /// told 503 `unavailable` (and a login's seat is given back).
    pub write_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            default_max_users: crate::licence::DEFAULT_MAX_USERS,
            tick_every: Duration::from_secs(1),
            mailbox_capacity: 16_384,
            event_capacity: 262_144,
            retention: Retention::default(),
            workers: 0,
            overload_retry_after: Duration::from_secs(1),
            write_deadline: Duration::from_secs(10),
        }
    }
}

/// Whether the engine can acknowledge writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Everything answered is durable and writes complete in time.
    Ok,
    /// Writes are not completing within the write deadline (a stalled disk): callers
    /// get 503 `unavailable`, nothing is acknowledged, and it may recover by itself.
    Degraded(String),
    /// The store failed; nothing more is acknowledged until a restart.
    Failed(String),
}

/// An admitted login, as handed to the client.
#[derive(Debug, Clone)]
pub struct Login {
    /// The session token: the tab's credential.
    pub token: SessionToken,
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// When the session expires without a heartbeat.
    pub expires_at: Timestamp,
    /// The idle timeout in force.
    pub idle_timeout: Duration,
    /// How often to heartbeat.
    pub heartbeat_interval: Duration,
    /// The session's fencing token (SPEC §8): larger than that of every session
    /// admitted before it in the tenant. Pass it with every write to a downstream
    /// resource, which refuses writes carrying a fence older than the newest it has
    /// seen from the seat.
    pub fence: u64,
    /// Whether the login took a seat past the licensed seats, under the licence's
    /// overage allowance: a vendor may bill or warn.
    pub overage: bool,
}

/// A login put in line (`on_limit = "queue"`), as handed to the client: its ticket
/// is a credential like a session token.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The ticket: heartbeat it to keep the place, claim it once a seat is held.
    pub token: SessionToken,
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// Its place in line: 1 is next.
    pub position: u32,
    /// When the ticket ends without a heartbeat.
    pub expires_at: Timestamp,
    /// The idle timeout in force.
    pub idle_timeout: Duration,
    /// How often to heartbeat the ticket.
    pub heartbeat_interval: Duration,
}

/// What a login that may queue came to.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A session, at once.
    Admitted(Login),
    /// A place in the waitlist.
    Queued(Ticket),
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The new deadline.
    pub expires_at: Timestamp,
    /// The idle timeout in force.
    pub idle_timeout: Duration,
    /// The session's fencing token, as its login answered.
    pub fence: u64,
}

/// Counters about the engine itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Tenants.
    pub tenants: usize,
    /// Sessions the registry routes (live and remembered).
    pub sessions_routed: usize,
    /// Live sessions in all tenants.
    pub live_sessions: u64,
    /// Seats held in all tenants.
    pub seats_in_use: u64,
    /// Events dropped because the consumer fell a whole channel behind.
    pub events_dropped: u64,
}

/// The licence-seat engine.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> usher::Result<()> {
/// use usher::{Engine, Licence, TenantId, UserId};
///
/// let engine = Engine::start(Default::default());
/// let acme = TenantId::parse("acme")?;
/// engine.put_tenant(&acme, Licence::concurrent(1)).await?;
///
/// let ann = engine.login(&acme, &UserId::parse("ann")?, Some("tab 1")).await?;
/// let refused = engine.login(&acme, &UserId::parse("bob")?, None).await;
/// assert_eq!(refused.unwrap_err().code(), "licence_limit_reached");
///
/// engine.heartbeat(&ann.token).await?;
/// engine.release(&ann.token).await?;
/// engine.login(&acme, &UserId::parse("bob")?, None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    /// The consumer every backend sends its events to.
    events: EventSender,
    /// The live channel's hub, told by the backend of each durable change.
    live: Arc<Live>,
    backend: Backend,
    /// Turns for [`Engine::update_licence`]: a tenant's updates through this engine
    /// take one of these locks, picked by the tenant's hash, so they never race each
    /// other (tenants sharing a lock only wait for each other's short turn).
    licence_turns: LicenceTurns,
}

/// How many locks the tenants' licence updates are spread over.
const LICENCE_TURNS: usize = 64;

/// How often [`Engine::update_licence`] reads again when a change from elsewhere came
/// between its read and its write, before it gives up with [`Error::LicenceChanged`].
pub const UPDATE_ATTEMPTS: usize = 16;

struct LicenceTurns {
    hasher: std::hash::RandomState,
    locks: Box<[tokio::sync::Mutex<()>]>,
}

impl LicenceTurns {
    fn new() -> Self {
        LicenceTurns {
            hasher: std::hash::RandomState::new(),
            locks: (0..LICENCE_TURNS).map(|_| Default::default()).collect(),
        }
    }

    fn of(&self, tenant: &TenantId) -> &tokio::sync::Mutex<()> {
        use std::hash::BuildHasher;
        let turn = self.hasher.hash_one(tenant.as_str()) as usize % self.locks.len();
        &self.locks[turn]
    }
}

/// The deciding backend: whoever applies the rules and keeps the state. Both answer
/// the same methods with the same arguments and answers, so every call of the engine
/// is one `decide!` over this enum.
enum Backend {
    /// Each tenant's pool in an actor of this process.
    Embedded(Box<Embedded>),
    /// Scripts on a Redis (or Redis Cluster) shared with other engines.
    #[cfg(feature = "redis")]
    Redis(Arc<RedisBackend>),
}

/// Forwards one call to whichever backend decides, and awaits it:
/// `decide!(self, |b| b.tenant(t))`. The Redis backend's calls are boxed: each holds a
/// script call's state, which would otherwise make every call of the embedded backend
/// as large (a login's future 736 bytes instead of 496, moved into every task that
/// makes one). `decide!(now self, |b| …)` forwards a call that does not wait.
macro_rules! decide {
    (now $engine:expr, |$backend:ident| $call:expr) => {
        match &$engine.inner.backend {
            Backend::Embedded($backend) => $call,
            #[cfg(feature = "redis")]
            Backend::Redis($backend) => $call,
        }
    };
    ($engine:expr, |$backend:ident| $call:expr) => {
        match &$engine.inner.backend {
            Backend::Embedded($backend) => $call.await,
            #[cfg(feature = "redis")]
            Backend::Redis($backend) => Box::pin($call).await,
        }
    };
}

impl Engine {
    /// Starts an engine on the system clock.
    pub fn start(config: EngineConfig) -> Engine {
        Self::with_clock(config, Arc::new(SystemClock::new()))
    }

    /// Starts an engine on the given clock (a [`crate::ManualClock`] in tests).
    ///
    /// Inside an actix system (such as `actix_web::main`) the pools run on new arbiters
    /// of that system; elsewhere the engine starts a system of its own on a thread.
    pub fn with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> Engine {
        Self::embedded(config, clock, None)
    }

    /// Starts an engine whose pools answer only once their changes are durable in
    /// `store`. Bring back what the store holds with [`Engine::restore`] before serving.
    pub fn with_store(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Engine {
        Self::embedded(config, clock, Some(store))
    }

    /// Starts an engine whose decisions are made by Redis (SPEC §7): any number of
    /// engines on the same Redis serve the same tenants, and any of them answers for
    /// any session. Fails if Redis cannot be reached.
    #[cfg(feature = "redis")]
    pub async fn with_redis(config: EngineConfig, redis: RedisConfig) -> Result<Engine> {
        let (events, _consumer) = consumer::start(config.event_capacity);
        let clock: Arc<dyn Clock> = match redis.clock.manual_clock() {
            Some(manual) => Arc::new(manual.clone()),
            None => Arc::new(SystemClock::new()),
        };
        let live = Arc::new(Live::default());
        let backend =
            Arc::new(RedisBackend::connect(redis, &config, events.clone(), live.clone()).await?);
        backend.start_sweeper(config.tick_every);
        Ok(Self::build(
            config,
            clock,
            events,
            live,
            Backend::Redis(backend),
        ))
    }

    /// The clock of the Redis scripts, in an engine on Redis.
    #[cfg(feature = "redis")]
    pub fn redis_clock(&self) -> Option<&RedisClock> {
        match &self.inner.backend {
            Backend::Redis(redis) => Some(redis.clock()),
            Backend::Embedded(_) => None,
        }
    }

    fn embedded(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Option<Arc<dyn Store>>,
    ) -> Engine {
        let (events, _consumer) = consumer::start(config.event_capacity);
        let live = Arc::new(Live::default());
        let embedded = Embedded::start(
            config.clone(),
            clock.clone(),
            events.clone(),
            live.clone(),
            store,
        );
        Self::build(
            config,
            clock,
            events,
            live,
            Backend::Embedded(Box::new(embedded)),
        )
    }

    fn build(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        events: EventSender,
        live: Arc<Live>,
        backend: Backend,
    ) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                config,
                clock,
                events,
                live,
                backend,
                licence_turns: LicenceTurns::new(),
            }),
        }
    }

    /// The embedded backend, for what only it has (a store, snapshots).
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    fn only_embedded(&self, what: &str) -> Result<&Embedded, Error> {
        match &self.inner.backend {
            Backend::Embedded(embedded) => Ok(embedded),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => Err(Error::Internal(format!(
                "{what} exists only in the embedded backend"
            ))),
        }
    }

    /// The live channel's hub: what event streams and tabs' sockets wait on.
    pub fn live(&self) -> &Arc<Live> {
        &self.inner.live
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store, if changes are made durable.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.only_embedded("a store").ok().and_then(Embedded::store)
    }

    /// Brings back everything a store loaded: every pool with its sessions (each with a
    /// full idle window from now), API key and fence high-water mark, the sessions and
    /// fence marks of deleted tenants, and the usage report.
    pub fn restore(&self, loaded: Loaded) -> Result<()> {
        self.only_embedded("restoring from a store")?
            .restore(loaded)
    }

    /// Replaces a tenant's API key by its hash and waits until that is durable. The
    /// tenant's earlier key stops working at once; exactly one key is valid after any
    /// number of concurrent replacements, and none outlives its tenant.
    #[instrument(level = "debug", skip_all, fields(tenant = %tenant))]
    pub async fn set_api_key(&self, tenant: &TenantId, hash: [u8; 32]) -> Result<()> {
        decide!(self, |b| b.set_api_key(tenant, hash))
    }

    /// The tenant whose current API key hashes to `hash`.
    pub async fn tenant_of_key(&self, hash: &[u8; 32]) -> Result<Option<TenantId>> {
        decide!(self, |b| b.tenant_of_key(hash))
    }

    /// A page of a tenant's audit log (empty without a store).
    pub async fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage> {
        decide!(self, |b| b.events(tenant, query))
    }

    /// Writes (or, with `None`, removes) one webhook entry where this engine keeps its
    /// state — the store, or the shared Redis — and returns once it is durable.
    pub async fn put_webhook_entry(&self, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        match &self.inner.backend {
            Backend::Embedded(embedded) => {
                let store = embedded.webhook_store();
                let key = key.to_owned();
                let write = tokio::task::spawn_blocking(move || {
                    store.put_webhook_entry(&key, value.as_deref())
                });
                match tokio::time::timeout(self.inner.config.write_deadline, write).await {
                    Ok(done) => done.map_err(|e| Error::Internal(e.to_string()))?,
                    Err(_) => Err(Error::Unavailable {
                        retry_after: self.inner.config.overload_retry_after,
                    }),
                }
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.put_webhook_entry(key, value).await,
        }
    }

    /// The webhook entry under `key`, if any.
    pub async fn webhook_entry(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match &self.inner.backend {
            Backend::Embedded(embedded) => {
                let store = embedded.webhook_store();
                let key = key.to_owned();
                tokio::task::spawn_blocking(move || store.webhook_entry(&key))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.webhook_entry(key).await,
        }
    }

    /// Every webhook entry whose key starts with `prefix`, in key order.
    pub async fn webhook_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        match &self.inner.backend {
            Backend::Embedded(embedded) => {
                let store = embedded.webhook_store();
                let prefix = prefix.to_owned();
                tokio::task::spawn_blocking(move || store.webhook_entries(&prefix))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
            }
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.webhook_entries(prefix).await,
        }
    }

    /// Whether this engine is the one to deliver webhooks now: always for an embedded
    /// engine; in Redis mode the node holding a lease, taken or kept for `ttl`.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub async fn webhook_lease(&self, holder: &str, ttl: Duration) -> Result<bool> {
        match &self.inner.backend {
            Backend::Embedded(_) => Ok(true),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.webhook_lease(holder, ttl).await,
        }
    }

    /// The id of the last event of a tenant's log at or after `since`, if any: where a
    /// reader that starts now continues from.
    pub async fn last_event_id(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Option<String>> {
        let mut last = None;
        loop {
            let query = EventQuery {
                since,
                cursor: last.clone(),
                limit: 1000,
            };
            let page = self.events(tenant, &query).await?;
            if let Some(event) = page.events.last() {
                last = Some(event.id.clone());
            }
            if page.next_cursor.is_none() {
                return Ok(last);
            }
        }
    }

    /// False once the store has failed to write, or while writes are overdue.
    pub fn is_healthy(&self) -> bool {
        self.health() == Health::Ok
    }

    /// Whether the engine can acknowledge writes, and if not why.
    pub fn health(&self) -> Health {
        match &self.inner.backend {
            Backend::Embedded(embedded) => embedded.health(),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => match redis.failure() {
                Some(why) => Health::Degraded(format!("Redis: {why}")),
                None => Health::Ok,
            },
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Creates a tenant with `licence`, or replaces the licence of an existing one.
    /// Returns the tenant view and whether the tenant was created.
    ///
    /// A tenant being deleted is created anew only once its deletion is durable, so
    /// the new incarnation's rows can never be wiped by the old one's delete.
    #[instrument(level = "debug", skip(self))]
    pub async fn put_tenant(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<(TenantView, bool)> {
        decide!(self, |b| b.put_tenant(tenant, licence))
    }

    /// Brings back a pool from a store's snapshot, sessions included.
    pub fn restore_tenant(&self, snapshot: PoolSnapshot) -> Result<()> {
        self.only_embedded("restoring from a store")?
            .restore_tenant(snapshot)
    }

    /// Deletes a tenant, ending its sessions (reason `evicted`).
    ///
    /// The delete is never shed. From the moment it is asked the tenant answers
    /// `tenant_not_found`; its name is free for a new tenant once the deletion is
    /// durable.
    #[instrument(level = "debug", skip(self))]
    pub async fn delete_tenant(&self, tenant: &TenantId) -> Result<()> {
        decide!(self, |b| b.delete_tenant(tenant))
    }

    /// Every tenant id, sorted.
    pub async fn tenant_ids(&self) -> Result<Vec<TenantId>> {
        decide!(self, |b| b.tenant_ids())
    }

    /// A tenant's view.
    #[instrument(level = "debug", skip(self))]
    pub async fn tenant(&self, tenant: &TenantId) -> Result<TenantView> {
        decide!(self, |b| b.tenant(tenant))
    }

    /// The licence in force on `tenant`.
    pub async fn licence(&self, tenant: &TenantId) -> Result<Licence> {
        decide!(self, |b| b.licence(tenant))
    }

    /// Puts `licence` on `tenant` in place of `expected`, only if `expected` is still
    /// the licence in force ([`Error::LicenceChanged`] otherwise, with nothing changed):
    /// a read-modify-write of the licence that no other change can slip into. Never
    /// creates the tenant.
    pub async fn change_licence(
        &self,
        tenant: &TenantId,
        expected: Licence,
        licence: Licence,
    ) -> Result<TenantView> {
        decide!(self, |b| b.change_licence(tenant, expected, licence))
    }

    /// Puts on `tenant` what `change` makes of the licence in force, as one
    /// read-modify-write ([`Engine::change_licence`]) that lands however many race it:
    /// the updates of a tenant through this engine take their turns, so only a change
    /// from elsewhere (another engine on the same Redis, a [`Engine::put_tenant`]) can
    /// come between a read and its write, and then the licence is read again, up to
    /// [`UPDATE_ATTEMPTS`] times before [`Error::LicenceChanged`]. An error of `change`
    /// is answered as it is, with nothing changed.
    pub async fn update_licence<F>(&self, tenant: &TenantId, change: F) -> Result<TenantView>
    where
        F: Fn(&Licence) -> Result<Licence>,
    {
        let _turn = self.inner.licence_turns.of(tenant).lock().await;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.licence(tenant).await?;
            let licence = change(&current)?;
            match self.change_licence(tenant, current, licence).await {
                Err(Error::LicenceChanged) => continue,
                changed => return changed,
            }
        }
        Err(Error::LicenceChanged)
    }

    /// What putting `licence` on `tenant` would do, without doing it: the tenant as it
    /// would be and the change's effects. Nothing is written and no event is sent.
    pub async fn preview_licence(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<LicencePreview> {
        decide!(self, |b| b.preview_licence(tenant, licence))
    }

    /// Logs `user` in to `tenant`, from a client labelled `client` (a tab, a device).
    #[instrument(level = "debug", skip(self))]
    pub async fn login(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
    ) -> Result<Login> {
        decide!(self, |b| b.login(tenant, user, client))
    }

    /// Logs `user` in as [`Engine::login`] does, except that under a licence that
    /// queues (`on_limit = "queue"`) a login at the limit is put in line and answered
    /// with a ticket (SPEC §10).
    #[instrument(level = "debug", skip(self))]
    pub async fn enter(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
    ) -> Result<Entry> {
        decide!(self, |b| b.enter(tenant, user, client))
    }

    /// A ticket's heartbeat: it keeps its place in line, and hears when a seat is
    /// held for it.
    #[instrument(level = "debug", skip_all, fields(ticket = %ticket.id()))]
    pub async fn ticket_heartbeat(&self, ticket: &SessionToken) -> Result<TicketStatus> {
        decide!(self, |b| b.ticket_heartbeat(ticket))
    }

    /// The tenant a ticket (live or remembered) belongs to, or why it is unknown.
    pub async fn ticket_tenant(&self, ticket: &SessionToken) -> Result<TenantId> {
        decide!(now self, |b| b.ticket_tenant(ticket))
    }

    /// Turns a ticket a seat is held for into a session.
    #[instrument(level = "debug", skip_all, fields(ticket = %ticket.id()))]
    pub async fn claim(&self, ticket: &SessionToken) -> Result<Login> {
        decide!(self, |b| b.claim(ticket))
    }

    /// Leaves the line.
    #[instrument(level = "debug", skip_all, fields(ticket = %ticket.id()))]
    pub async fn cancel_ticket(&self, ticket: &SessionToken) -> Result<()> {
        decide!(self, |b| b.cancel_ticket(ticket))
    }

    /// A tenant's waitlist, head first.
    #[instrument(level = "debug", skip(self))]
    pub async fn waitlist(&self, tenant: &TenantId) -> Result<Vec<QueueEntry>> {
        decide!(self, |b| b.waitlist(tenant))
    }

    /// Keeps a session alive for another idle timeout.
    #[instrument(level = "debug", skip_all, fields(session = %token.id()))]
    pub async fn heartbeat(&self, token: &SessionToken) -> Result<Heartbeat> {
        decide!(self, |b| b.heartbeat(token))
    }

    /// Ends this tab's session; the user's other tabs keep their seat.
    #[instrument(level = "debug", skip_all, fields(session = %token.id()))]
    pub async fn release(&self, token: &SessionToken) -> Result<()> {
        decide!(self, |b| b.release(token))
    }

    /// Ends every session of this token's user. Returns how many ended.
    #[instrument(level = "debug", skip_all, fields(session = %token.id()))]
    pub async fn logout(&self, token: &SessionToken) -> Result<u32> {
        decide!(self, |b| b.logout(token))
    }

    /// An administrator's forced release of one session of `tenant`.
    #[instrument(level = "debug", skip(self))]
    pub async fn revoke(&self, tenant: &TenantId, session: SessionId) -> Result<()> {
        decide!(self, |b| b.revoke(tenant, session))
    }

    /// Logs a user out of every tab. Returns how many sessions ended.
    #[instrument(level = "debug", skip(self))]
    pub async fn logout_user(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        decide!(self, |b| b.logout_user(tenant, user))
    }

    /// Registers a user, or under the named model assigns them a seat.
    #[instrument(level = "debug", skip(self))]
    pub async fn put_user(&self, tenant: &TenantId, user: &UserId) -> Result<UserView> {
        decide!(self, |b| b.put_user(tenant, user, None))
    }

    /// [`Engine::put_user`], and makes `groups` the user's groups (at most
    /// [`crate::licence::MAX_GROUPS`]; repeats are dropped). The seats the user holds
    /// move with them: a group over its cap or its reservation ends no session.
    #[instrument(level = "debug", skip(self))]
    pub async fn put_user_in_groups(
        &self,
        tenant: &TenantId,
        user: &UserId,
        groups: &[GroupId],
    ) -> Result<UserView> {
        decide!(self, |b| b.put_user(tenant, user, Some(groups)))
    }

    /// Removes a user's account and named seat, ending their sessions.
    #[instrument(level = "debug", skip(self))]
    pub async fn remove_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        decide!(self, |b| b.remove_user(tenant, user))
    }

    /// Every user account of a tenant, by user id, as one consistent list. A large
    /// tenant is better read a page at a time with [`Engine::users_page`].
    #[instrument(level = "debug", skip(self))]
    pub async fn users(&self, tenant: &TenantId) -> Result<Vec<UserView>> {
        Ok(self.users_page(tenant, None, usize::MAX).await?.items)
    }

    /// A page of a tenant's user accounts, by user id: at most `limit` of those whose id
    /// comes after `after` (the `next` of the previous page; none for the first).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> usher::Result<()> {
    /// use usher::{Engine, Licence, TenantId, UserId};
    ///
    /// let engine = Engine::start(Default::default());
    /// let acme = TenantId::parse("acme")?;
    /// engine.put_tenant(&acme, Licence::records()).await?;
    /// for name in ["cat", "ann", "bob"] {
    ///     engine.put_user(&acme, &UserId::parse(name)?).await?;
    /// }
    /// let first = engine.users_page(&acme, None, 2).await?;
    /// assert_eq!(first.items.len(), 2);
    /// let rest = engine.users_page(&acme, first.next.as_ref(), 2).await?;
    /// assert_eq!(rest.items[0].user.as_str(), "cat");
    /// assert!(rest.next.is_none());
    /// # Ok(()) }
    /// ```
    #[instrument(level = "debug", skip(self))]
    pub async fn users_page(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Page<UserView, UserId>> {
        decide!(self, |b| b.users_page(tenant, after, limit))
    }

    /// Every live session of a tenant, by login time, as one consistent list. A large
    /// tenant is better read a page at a time with [`Engine::sessions_page`].
    #[instrument(level = "debug", skip(self))]
    pub async fn sessions(&self, tenant: &TenantId) -> Result<Vec<SessionView>> {
        Ok(self.sessions_page(tenant, None, usize::MAX).await?.items)
    }

    /// A page of a tenant's live sessions, by login time, then id: at most `limit` of
    /// those after `after` (the `next` of the previous page; none for the first). A
    /// session that lives throughout the paging is seen exactly once, whatever logs in
    /// or ends meanwhile.
    #[instrument(level = "debug", skip(self))]
    pub async fn sessions_page(
        &self,
        tenant: &TenantId,
        after: Option<SessionCursor>,
        limit: usize,
    ) -> Result<Page<SessionView, SessionCursor>> {
        decide!(self, |b| b.sessions_page(tenant, after, limit))
    }

    /// Reports the tenant's record count.
    #[instrument(level = "debug", skip(self))]
    pub async fn report_records(&self, tenant: &TenantId, count: u64) -> Result<RecordsView> {
        decide!(self, |b| b.report_records(tenant, count))
    }

    /// The record count and its billing peaks.
    #[instrument(level = "debug", skip(self))]
    pub async fn records(&self, tenant: &TenantId) -> Result<RecordsView> {
        decide!(self, |b| b.records(tenant))
    }

    /// The usage report of the last `days` days, oldest first. It reflects every
    /// operation answered before the call.
    #[instrument(level = "debug", skip(self))]
    pub async fn usage(&self, tenant: &TenantId, days: u32) -> Result<Vec<DayUsage>> {
        decide!(self, |b| b.usage(tenant, days))
    }

    /// A pool as plain data, for a store.
    pub async fn snapshot(&self, tenant: &TenantId) -> Result<PoolSnapshot> {
        self.only_embedded("a pool snapshot")?
            .snapshot(tenant)
            .await
    }

    /// Receives every event from now on (up to `capacity` waiting; past that a slow
    /// receiver loses events rather than slowing the engine).
    pub fn subscribe(&self, capacity: usize) -> crossbeam_channel::Receiver<Event> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        self.inner.events.request(Envelope::Subscribe(tx));
        rx
    }

    /// Waits until every event of the operations answered before the call has been
    /// passed on to the subscribers.
    pub async fn flush_events(&self) {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.inner.events.request(Envelope::Flush(reply));
        let _ = done.await;
    }

    /// Expires what is due in every pool and waits until done: the timer's work, on
    /// demand (tests drive it with a manual clock).
    pub async fn expire_due(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Embedded(embedded) => embedded.expire_due().await,
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => redis.sweep().await.map(|_| ()),
        }
    }

    /// One timer tick: asks each pool with something due to expire it, without
    /// waiting. Returns how many pools were asked.
    pub fn tick(&self) -> usize {
        match &self.inner.backend {
            Backend::Embedded(embedded) => embedded.tick(),
            // Its sweeper runs on its own schedule.
            #[cfg(feature = "redis")]
            Backend::Redis(_) => 0,
        }
    }

    /// Counters about the engine.
    pub fn stats(&self) -> EngineStats {
        match &self.inner.backend {
            Backend::Embedded(embedded) => embedded.stats(),
            // The counts live in Redis, shared by every engine.
            #[cfg(feature = "redis")]
            Backend::Redis(_) => EngineStats {
                tenants: 0,
                sessions_routed: 0,
                live_sessions: 0,
                seats_in_use: 0,
                events_dropped: self.inner.events.dropped(),
            },
        }
    }
}

/// How far back of a tenant's mailbox (embedded) or queue (Redis) a request may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Traffic that is shed when the pool's mailbox is full: logins, heartbeats,
    /// releases and reads.
    Shed,
    /// Administration that must get through a storm (a licence raised during the very
    /// flood that needs it): never shed.
    Control,
}
