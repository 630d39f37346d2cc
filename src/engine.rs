//! The [`Engine`]: the public async API over every tenant's pool.
//!
//! It holds the registry (see `registry`), the arbiters the pools run on, the timer
//! and the event consumer. It is cheap to clone and `Send + Sync`, and
//! works from any async runtime: pools live on their own actix arbiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use actix::{Actor, Arbiter, ArbiterHandle, System};
use dashmap::mapref::entry::Entry;
use tokio::sync::oneshot;
use tracing::instrument;

use crate::actor::{PoolHandle, PoolMsg, Reply, Shell};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::{Error, Result};
use crate::events::{self, Envelope, Event, EventSender};
use crate::ids::{SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::pool::{
    Page, PoolSnapshot, PoolState, RecordsView, Retention, SessionCursor, SessionView, TenantView,
    UserView,
};
use crate::redis::{RedisBackend, RedisClock, RedisConfig};
use crate::registry::Registry;
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

/// How far back of the mailbox a request may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// Traffic that is shed when the pool's mailbox is full: logins, heartbeats,
    /// releases and reads.
    Shed,
    /// Administration that must get through a storm (a licence raised during the very
    /// flood that needs it): never shed.
    Control,
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
    registry: Arc<Registry>,
    events: EventSender,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    runtime: Mutex<Runtime>,
    store: Option<Arc<dyn Store>>,
    /// The deciding backend when it is not the embedded pools.
    redis: Option<Arc<RedisBackend>>,
}

/// What the engine started and must stop.
struct Runtime {
    arbiters: Vec<Arbiter>,
    own_system: Option<System>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let runtime = self.runtime.get_mut().unwrap_or_else(|e| e.into_inner());
        for arbiter in runtime.arbiters.drain(..) {
            arbiter.stop();
        }
        if let Some(system) = runtime.own_system.take() {
            system.stop();
        }
    }
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
        Self::build(config, clock, None, None)
    }

    /// Starts an engine whose pools answer only once their changes are durable in
    /// `store`. Bring back what the store holds with [`Engine::restore`] before serving.
    pub fn with_store(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Engine {
        Self::build(config, clock, Some(store), None)
    }

    /// Starts an engine whose decisions are made by Redis (SPEC §7): any number of
    /// engines on the same Redis serve the same tenants, and any of them answers for
    /// any session. Fails if Redis cannot be reached.
    pub async fn with_redis(config: EngineConfig, redis: RedisConfig) -> Result<Engine> {
        let (events, _consumer) = events::start_consumer(config.event_capacity);
        let clock: Arc<dyn Clock> = match redis.clock.manual_clock() {
            Some(manual) => Arc::new(manual.clone()),
            None => Arc::new(SystemClock::new()),
        };
        let backend = Arc::new(RedisBackend::connect(redis, &config, events.clone()).await?);
        backend.start_sweeper(config.tick_every);
        Ok(Self::build(config, clock, None, Some((backend, events))))
    }

    /// The clock of the Redis scripts, in an engine on Redis.
    pub fn redis_clock(&self) -> Option<&RedisClock> {
        self.inner.redis.as_deref().map(RedisBackend::clock)
    }

    fn redis(&self) -> Option<&RedisBackend> {
        self.inner.redis.as_deref()
    }

    fn build(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Option<Arc<dyn Store>>,
        redis: Option<(Arc<RedisBackend>, EventSender)>,
    ) -> Engine {
        let workers = if config.workers == 0 {
            thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.workers
        };
        let (arbiters, own_system) = match System::try_current() {
            Some(_) => ((0..workers).map(|_| Arbiter::new()).collect(), None),
            None => start_system(workers),
        };
        let (redis, events) = match redis {
            Some((backend, events)) => (Some(backend), events),
            None => (None, events::start_consumer(config.event_capacity).0),
        };
        let inner = Arc::new(Inner {
            arbiters: arbiters.iter().map(Arbiter::handle).collect(),
            config,
            clock,
            registry: Arc::default(),
            events,
            next_arbiter: AtomicUsize::new(0),
            runtime: Mutex::new(Runtime {
                arbiters,
                own_system,
            }),
            store,
            redis,
        });
        let timer = crate::timer::Timer {
            registry: Arc::downgrade(&inner.registry),
            clock: inner.clock.clone(),
            every: inner.config.tick_every,
            keep_orphans_for: inner.config.retention.ended_for,
            retry_after: inner.config.overload_retry_after,
        };
        Actor::start_in_arbiter(&inner.arbiters[0], move |_| timer);
        Engine { inner }
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The store, if changes are made durable.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.inner.store.as_ref()
    }

    /// Brings back everything a store loaded: every pool with its sessions (each with a
    /// full idle window from now), API key and fence high-water mark, the sessions and
    /// fence marks of deleted tenants, and the usage report.
    pub fn restore(&self, loaded: Loaded) -> Result<()> {
        for pool in loaded.pools {
            self.restore_tenant(pool)?;
        }
        for (id, tombstone) in loaded.orphans {
            self.inner.registry.orphans.insert(id, tombstone);
        }
        // Deleted tenants' marks, for a tenant created again under the same id.
        for (tenant, high) in loaded.fences {
            if !self.inner.registry.tenants.contains_key(&tenant) {
                self.inner.registry.remember_fence(tenant, high);
            }
        }
        self.inner.events.request(Envelope::Import(loaded.usage));
        Ok(())
    }

    /// Replaces a tenant's API key by its hash and waits until that is durable. The
    /// tenant's earlier key stops working at once; exactly one key is valid after any
    /// number of concurrent replacements, and none outlives its tenant.
    #[instrument(level = "debug", skip_all, fields(tenant = %tenant))]
    pub async fn set_api_key(&self, tenant: &TenantId, hash: [u8; 32]) -> Result<()> {
        if let Some(redis) = self.redis() {
            return redis.set_api_key(tenant, hash).await;
        }
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::SetApiKey {
            hash,
            reply,
        })
        .await
    }

    /// The tenant whose current API key hashes to `hash`.
    pub async fn tenant_of_key(&self, hash: &[u8; 32]) -> Result<Option<TenantId>> {
        if let Some(redis) = self.redis() {
            return redis.tenant_of_key(hash).await;
        }
        let registry = &self.inner.registry;
        let Some(owner) = registry.api_keys.get(hash).map(|e| e.value().clone()) else {
            return Ok(None);
        };
        // A key answers only for the incarnation that set it.
        Ok(registry
            .live(&owner.tenant)
            .filter(|current| Arc::ptr_eq(&owner, current))
            .map(|_| owner.tenant.clone()))
    }

    /// A page of a tenant's audit log (empty without a store).
    pub async fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage> {
        if let Some(redis) = self.redis() {
            return redis.events(tenant, query).await;
        }
        self.pool(tenant)?;
        let Some(store) = self.inner.store.clone() else {
            return Ok(EventPage::default());
        };
        // The audit log is read from the store: blocking I/O, off the caller's thread.
        let (tenant, query) = (tenant.clone(), query.clone());
        tokio::task::spawn_blocking(move || store.events(&tenant, &query))
            .await
            .map_err(|e| Error::Internal(format!("reading the audit log failed: {e}")))?
    }

    /// False once the store has failed to write, or while writes are overdue.
    pub fn is_healthy(&self) -> bool {
        self.health() == Health::Ok
    }

    /// Whether the engine can acknowledge writes, and if not why.
    pub fn health(&self) -> Health {
        if let Some(redis) = self.redis() {
            return match redis.failure() {
                Some(why) => Health::Degraded(format!("Redis: {why}")),
                None => Health::Ok,
            };
        }
        let registry = &self.inner.registry;
        if let Some(why) = self.inner.store.as_ref().and_then(|s| s.failure()) {
            registry.fail(&why);
        }
        if registry.store_failed.load(Ordering::Acquire) {
            let why = registry
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_else(|| "the store failed to write".into());
            return Health::Failed(why);
        }
        let now = self.inner.clock.now();
        let overdue = registry
            .tenants
            .iter()
            .filter(|e| e.value().ledger.is_overdue(now))
            .count();
        if overdue > 0 {
            return Health::Degraded(format!(
                "writes of {overdue} tenant(s) have not become durable within {} s; is the disk stalled?",
                self.inner.config.write_deadline.as_secs_f64()
            ));
        }
        Health::Ok
    }

    /// The settings it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Creates a tenant with `licence`, or replaces the licence of an existing one.
    /// Returns the tenant view and whether the tenant was created.
    #[instrument(level = "debug", skip(self))]
    ///
    /// A tenant being deleted is created anew only once its deletion is durable, so
    /// the new incarnation's rows can never be wiped by the old one's delete.
    pub async fn put_tenant(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<(TenantView, bool)> {
        if let Some(redis) = self.redis() {
            return redis.put_tenant(tenant, licence).await;
        }
        let (handle, created) = loop {
            match self.inner.registry.tenants.entry(tenant.clone()) {
                Entry::Occupied(entry) if !entry.get().is_live() => {
                    let dying = entry.get().clone();
                    drop(entry);
                    if self.inner.registry.store_failed.load(Ordering::Acquire) {
                        return Err(crate::actor::store_failed());
                    }
                    // The deletion becomes durable, or this caller hears 503 in time.
                    if tokio::time::timeout(self.inner.config.write_deadline, dying.deleted())
                        .await
                        .is_err()
                    {
                        return Err(Error::Unavailable {
                            retry_after: self.inner.config.overload_retry_after,
                        });
                    }
                }
                Entry::Occupied(entry) => break (entry.get().clone(), false),
                Entry::Vacant(entry) => {
                    let mut state = PoolState::new(
                        tenant.clone(),
                        licence,
                        self.inner.config.retention,
                        self.inner.clock.now(),
                    );
                    if let Some((_, high)) = self.inner.registry.fences.remove(tenant) {
                        state.continue_fences_above(high);
                    }
                    let handle = self.inner.spawn_pool(state);
                    entry.insert(handle.clone());
                    break (handle, true);
                }
            }
        };
        let view = if created {
            self.call(&handle, Priority::Control, |reply| PoolMsg::View { reply })
                .await?
        } else {
            self.call(&handle, Priority::Control, |reply| PoolMsg::SetLicence {
                licence,
                reply,
            })
            .await?
        };
        Ok((view, created))
    }

    /// Brings back a pool from a store's snapshot, sessions included.
    pub fn restore_tenant(&self, snapshot: PoolSnapshot) -> Result<()> {
        let tenant = snapshot.tenant.clone();
        let ids: Vec<SessionId> = snapshot
            .sessions
            .iter()
            .map(|s| s.id)
            .chain(snapshot.ended.iter().map(|(id, _)| *id))
            .collect();
        let state = PoolState::restore(
            snapshot,
            self.inner.config.retention,
            self.inner.clock.now(),
        );
        match self.inner.registry.tenants.entry(tenant) {
            Entry::Occupied(_) => Err(Error::InvalidRequest("tenant already exists".into())),
            Entry::Vacant(entry) => {
                let api_key = state.api_key();
                let handle = self.inner.spawn_pool(state);
                for id in ids {
                    self.inner.registry.sessions.insert(id, handle.clone());
                }
                if let Some(hash) = api_key {
                    self.inner.registry.api_keys.insert(hash, handle.clone());
                }
                entry.insert(handle);
                Ok(())
            }
        }
    }

    /// Deletes a tenant, ending its sessions (reason `evicted`).
    #[instrument(level = "debug", skip(self))]
    ///
    /// The delete is never shed. From the moment it is asked the tenant answers
    /// `tenant_not_found`; its name is free for a new tenant once the deletion is
    /// durable.
    pub async fn delete_tenant(&self, tenant: &TenantId) -> Result<()> {
        if let Some(redis) = self.redis() {
            return redis.delete_tenant(tenant).await;
        }
        let handle = self.pool(tenant)?;
        if self.inner.registry.store_failed.load(Ordering::Acquire) {
            // Nothing would be written: the tenant stays as it is.
            return Err(crate::actor::store_failed());
        }
        if handle.deleting.swap(true, Ordering::AcqRel) {
            return Err(Error::TenantNotFound); // another delete got there first
        }
        self.send(&handle, Priority::Control, |reply| PoolMsg::Delete {
            reply,
        })
        .await
    }

    /// Every tenant id, sorted.
    pub async fn tenant_ids(&self) -> Result<Vec<TenantId>> {
        if let Some(redis) = self.redis() {
            return redis.tenant_ids().await;
        }
        let mut ids: Vec<TenantId> = self
            .inner
            .registry
            .tenants
            .iter()
            .filter(|e| e.value().is_live())
            .map(|e| e.key().clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A tenant's view.
    #[instrument(level = "debug", skip(self))]
    pub async fn tenant(&self, tenant: &TenantId) -> Result<TenantView> {
        if let Some(redis) = self.redis() {
            return redis.tenant(tenant).await;
        }
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::View { reply })
            .await
    }

    /// Logs `user` in to `tenant`, from a client labelled `client` (a tab, a device).
    #[instrument(level = "debug", skip(self))]
    pub async fn login(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
    ) -> Result<Login> {
        if let Some(redis) = self.redis() {
            return redis.login(tenant, user, client).await;
        }
        let handle = self.pool(tenant)?;
        let mut token = SessionToken::generate();
        while self.inner.registry.sessions.contains_key(&token.id())
            || self.inner.registry.orphans.contains_key(&token.id())
        {
            token = SessionToken::generate();
        }
        let admission = self
            .call(&handle, Priority::Shed, |reply| PoolMsg::Login {
                user: user.clone(),
                client: client.map(String::from),
                id: token.id(),
                secret: token.secret_hash(),
                reply,
            })
            .await?;
        Ok(Login {
            token,
            tenant: tenant.clone(),
            user: user.clone(),
            expires_at: admission.expires_at,
            idle_timeout: admission.idle_timeout,
            heartbeat_interval: admission.heartbeat_interval,
            fence: admission.fence,
        })
    }

    /// Keeps a session alive for another idle timeout.
    #[instrument(level = "debug", skip_all, fields(session = %token.id()))]
    pub async fn heartbeat(&self, token: &SessionToken) -> Result<Heartbeat> {
        if let Some(redis) = self.redis() {
            return redis.heartbeat(token).await;
        }
        let handle = self.session_pool(token)?;
        let (expires_at, licence, fence) = self
            .call(&handle, Priority::Shed, |reply| PoolMsg::Heartbeat {
                id: token.id(),
                secret: token.secret_hash(),
                reply,
            })
            .await?;
        Ok(Heartbeat {
            expires_at,
            idle_timeout: licence.idle_timeout,
            fence,
        })
    }

    /// Ends this tab's session; the user's other tabs keep their seat.
    #[instrument(level = "debug", skip_all, fields(session = %token.id()))]
    pub async fn release(&self, token: &SessionToken) -> Result<()> {
        if let Some(redis) = self.redis() {
            return redis.release(token).await;
        }
        let handle = self.session_pool(token)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Release {
            id: token.id(),
            secret: token.secret_hash(),
            reply,
        })
        .await
    }

    /// Ends every session of this token's user. Returns how many ended.
    #[instrument(level = "debug", skip_all, fields(session = %token.id()))]
    pub async fn logout(&self, token: &SessionToken) -> Result<u32> {
        if let Some(redis) = self.redis() {
            return redis.logout(token).await;
        }
        let handle = self.session_pool(token)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Logout {
            id: token.id(),
            secret: token.secret_hash(),
            reply,
        })
        .await
    }

    /// An administrator's forced release of one session of `tenant`.
    #[instrument(level = "debug", skip(self))]
    pub async fn revoke(&self, tenant: &TenantId, session: SessionId) -> Result<()> {
        if let Some(redis) = self.redis() {
            return redis.revoke(tenant, session).await;
        }
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::Revoke {
            id: session,
            reply,
        })
        .await
    }

    /// Logs a user out of every tab. Returns how many sessions ended.
    #[instrument(level = "debug", skip(self))]
    pub async fn logout_user(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        if let Some(redis) = self.redis() {
            return redis.logout_user(tenant, user).await;
        }
        let handle = self.pool(tenant)?;
        let user = user.clone();
        self.call(&handle, Priority::Control, |reply| PoolMsg::LogoutUser {
            user,
            reply,
        })
        .await
    }

    /// Registers a user, or under the named model assigns them a seat.
    #[instrument(level = "debug", skip(self))]
    pub async fn put_user(&self, tenant: &TenantId, user: &UserId) -> Result<UserView> {
        if let Some(redis) = self.redis() {
            return redis.put_user(tenant, user).await;
        }
        let handle = self.pool(tenant)?;
        let user = user.clone();
        self.call(&handle, Priority::Control, |reply| PoolMsg::PutUser {
            user,
            reply,
        })
        .await
    }

    /// Removes a user's account and named seat, ending their sessions.
    #[instrument(level = "debug", skip(self))]
    pub async fn remove_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        if let Some(redis) = self.redis() {
            return redis.remove_user(tenant, user).await;
        }
        let handle = self.pool(tenant)?;
        let user = user.clone();
        self.call(&handle, Priority::Control, |reply| PoolMsg::RemoveUser {
            user,
            reply,
        })
        .await
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
        if let Some(redis) = self.redis() {
            return redis.users_page(tenant, after, limit).await;
        }
        let handle = self.pool(tenant)?;
        crate::pool::check_page_limit(limit)?;
        let after = after.cloned();
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Users {
            after,
            limit,
            reply,
        })
        .await
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
        if let Some(redis) = self.redis() {
            return redis.sessions_page(tenant, after, limit).await;
        }
        let handle = self.pool(tenant)?;
        crate::pool::check_page_limit(limit)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Sessions {
            after,
            limit,
            reply,
        })
        .await
    }

    /// Reports the tenant's record count.
    #[instrument(level = "debug", skip(self))]
    pub async fn report_records(&self, tenant: &TenantId, count: u64) -> Result<RecordsView> {
        if let Some(redis) = self.redis() {
            return redis.report_records(tenant, count).await;
        }
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::ReportRecords {
            count,
            reply,
        })
        .await
    }

    /// The record count and its billing peaks.
    #[instrument(level = "debug", skip(self))]
    pub async fn records(&self, tenant: &TenantId) -> Result<RecordsView> {
        if let Some(redis) = self.redis() {
            return redis.records(tenant).await;
        }
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Records { reply })
            .await
    }

    /// The usage report of the last `days` days, oldest first. It reflects every
    /// operation answered before the call.
    #[instrument(level = "debug", skip(self))]
    pub async fn usage(&self, tenant: &TenantId, days: u32) -> Result<Vec<DayUsage>> {
        if let Some(redis) = self.redis() {
            return redis.usage(tenant, days).await;
        }
        self.pool(tenant)?;
        let (reply, answer) = oneshot::channel();
        self.inner.events.request(Envelope::Usage {
            tenant: tenant.clone(),
            days,
            today: self.inner.clock.now(),
            reply,
        });
        answer.await.map_err(|_| self.overloaded())
    }

    /// A pool as plain data, for a store.
    pub async fn snapshot(&self, tenant: &TenantId) -> Result<PoolSnapshot> {
        if self.redis().is_some() {
            return Err(Error::Internal(
                "a pool snapshot exists only in the embedded backend".into(),
            ));
        }
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Snapshot { reply })
            .await
    }

    /// Receives every event from now on (up to `capacity` waiting; past that a slow
    /// receiver loses events rather than slowing the engine).
    pub fn subscribe(&self, capacity: usize) -> crossbeam_channel::Receiver<Event> {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        self.inner.events.request(Envelope::Subscribe(tx));
        rx
    }

    /// Expires what is due in every pool and waits until done: the timer's work, on
    /// demand (tests drive it with a manual clock).
    pub async fn expire_due(&self) -> Result<()> {
        if let Some(redis) = self.redis() {
            return redis.sweep().await.map(|_| ());
        }
        let now = self.inner.clock.now();
        let registry = &self.inner.registry;
        registry.forget_orphans(now, self.inner.config.retention.ended_for);
        registry.time_out_deleted(now, self.inner.config.overload_retry_after);
        let due = registry.due_pools(now);
        for handle in due {
            self.send(&handle, Priority::Control, |reply| PoolMsg::Tick {
                reply: Some(reply),
            })
            .await?;
        }
        Ok(())
    }

    /// One timer tick: asks each pool with something due to expire it, without
    /// waiting. Returns how many pools were asked.
    pub fn tick(&self) -> usize {
        self.inner.registry.tick(
            self.inner.clock.now(),
            self.inner.config.retention.ended_for,
            self.inner.config.overload_retry_after,
        )
    }

    /// Counters about the engine.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            tenants: self.inner.registry.tenants.len(),
            sessions_routed: self.inner.registry.sessions.len(),
            live_sessions: self
                .inner
                .registry
                .live_sessions
                .load(Ordering::Relaxed)
                .max(0) as u64,
            seats_in_use: self
                .inner
                .registry
                .seats_in_use
                .load(Ordering::Relaxed)
                .max(0) as u64,
            events_dropped: self.inner.events.dropped(),
        }
    }

    fn pool(&self, tenant: &TenantId) -> Result<Arc<PoolHandle>> {
        self.inner
            .registry
            .live(tenant)
            .ok_or(Error::TenantNotFound)
    }

    /// The pool of a session; for a session of a deleted tenant, why it ended (to its
    /// holder only).
    fn session_pool(&self, token: &SessionToken) -> Result<Arc<PoolHandle>> {
        let registry = &self.inner.registry;
        if let Some(entry) = registry.sessions.get(&token.id()) {
            return Ok(entry.value().clone());
        }
        match registry.orphans.get(&token.id()) {
            Some(t) if t.secret.matches(&token.secret_hash()) => {
                Err(Error::SessionEnded { reason: t.reason })
            }
            _ => Err(Error::SessionNotFound),
        }
    }

    fn overloaded(&self) -> Error {
        Error::Overloaded {
            retry_after: self.inner.config.overload_retry_after,
        }
    }

    /// Sends one request to a live pool and waits for its answer.
    async fn call<T>(
        &self,
        handle: &PoolHandle,
        priority: Priority,
        request: impl FnOnce(Reply<T>) -> PoolMsg,
    ) -> Result<T> {
        if !handle.is_live() {
            return Err(Error::TenantNotFound);
        }
        self.send(handle, priority, request).await
    }

    /// Sends one request to a pool and waits for its answer. Shed traffic meets a full
    /// mailbox with `Overloaded` at once instead of queueing without bound; control
    /// requests always get in.
    async fn send<T>(
        &self,
        handle: &PoolHandle,
        priority: Priority,
        request: impl FnOnce(Reply<T>) -> PoolMsg,
    ) -> Result<T> {
        if self.inner.registry.store_failed.load(Ordering::Acquire) {
            return Err(crate::actor::store_failed());
        }
        let (reply, answer) = oneshot::channel();
        match priority {
            Priority::Control => handle.addr.do_send(request(reply)),
            Priority::Shed => match handle.addr.try_send(request(reply)) {
                Ok(()) => {}
                Err(actix::prelude::SendError::Full(_)) => {
                    tracing::debug!(tenant = %handle.tenant, "pool mailbox full");
                    return Err(self.overloaded());
                }
                Err(actix::prelude::SendError::Closed(_)) => return Err(Error::TenantNotFound),
            },
        }
        // A pool that stops before answering was deleted under the request.
        answer.await.unwrap_or(Err(Error::TenantNotFound))
    }
}

impl Inner {
    fn spawn_pool(&self, mut state: PoolState) -> Arc<PoolHandle> {
        if self.store.is_some() {
            state.record_changes();
        }
        let index = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let shell = Shell {
            clock: self.clock.clone(),
            events: self.events.clone(),
            registry: self.registry.clone(),
            store: self.store.clone(),
            write_deadline: self.config.write_deadline,
            retry_after: self.config.overload_retry_after,
        };
        PoolHandle::start(
            &self.arbiters[index],
            state,
            shell,
            self.config.mailbox_capacity,
        )
    }
}

/// Starts an actix system on a thread of its own, with `workers` arbiters.
fn start_system(workers: usize) -> (Vec<Arbiter>, Option<System>) {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::Builder::new()
        .name("usher-system".into())
        .spawn(move || {
            let runner = actix_rt::System::new();
            let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
            let _ = tx.send((arbiters, System::current()));
            let _ = runner.run();
        })
        .expect("spawning the actix system thread");
    let (arbiters, system) = rx.recv().expect("the actix system thread started");
    (arbiters, Some(system))
}
