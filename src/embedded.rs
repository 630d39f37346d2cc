//! The embedded backend: every tenant's [`PoolState`] in an actix actor of its own
//! (`actor`), with its durability barrier (`ledger`), found through the `registry`,
//! woken by the `timer` when something is due, and made durable in a [`Store`] when
//! the engine has one (memory or redb).
//!
//! It answers the same calls as the Redis backend; [`crate::Engine`] chooses one and
//! forwards to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use actix::{Actor, Arbiter, ArbiterHandle, System};
use dashmap::mapref::entry::Entry as Slot;
use tokio::sync::oneshot;

use crate::actor::{PoolHandle, PoolMsg, Reply, Shell};
use crate::clock::Clock;
use crate::consumer::{Envelope, EventSender};
use crate::engine::{EngineConfig, EngineStats, Entry, Health, Heartbeat, Login, Priority, Ticket};
use crate::error::{Error, Result};
use crate::ids::{GroupId, SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::live::Live;
use crate::pool::{
    self, preview, Admission, LicencePreview, Page, PoolSnapshot, PoolState, QueueEntry,
    RecordsView, SessionCursor, SessionView, TenantView, TicketStatus, UserView,
};
use crate::registry::Registry;
use crate::store::{EventPage, EventQuery, Loaded, Store};
use crate::token::SessionToken;
use crate::usage::DayUsage;

/// The pools of every tenant, on arbiters of their own.
pub(crate) struct Embedded {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    registry: Arc<Registry>,
    events: EventSender,
    live: Arc<Live>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    runtime: Mutex<Runtime>,
    store: Option<Arc<dyn Store>>,
    /// Webhook entries of an engine without a store.
    unstored_webhooks: Arc<dyn Store>,
}

/// What the backend started and must stop.
struct Runtime {
    arbiters: Vec<Arbiter>,
    own_system: Option<System>,
}

impl Drop for Embedded {
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

impl Embedded {
    /// Starts the arbiters and the timer. Inside an actix system (such as
    /// `actix_web::main`) the pools run on new arbiters of that system; elsewhere it
    /// starts a system of its own on a thread.
    pub(crate) fn start(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        events: EventSender,
        live: Arc<Live>,
        store: Option<Arc<dyn Store>>,
    ) -> Embedded {
        let workers = if config.workers == 0 {
            thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.workers
        };
        let (arbiters, own_system) = match System::try_current() {
            Some(_) => ((0..workers).map(|_| Arbiter::new()).collect(), None),
            None => start_system(workers),
        };
        let embedded = Embedded {
            arbiters: arbiters.iter().map(Arbiter::handle).collect(),
            config,
            clock,
            registry: Arc::default(),
            events,
            live,
            next_arbiter: AtomicUsize::new(0),
            runtime: Mutex::new(Runtime {
                arbiters,
                own_system,
            }),
            store,
            unstored_webhooks: Arc::new(crate::store::MemoryStore::new()),
        };
        let timer = crate::timer::Timer {
            registry: Arc::downgrade(&embedded.registry),
            clock: embedded.clock.clone(),
            every: embedded.config.tick_every,
            keep_orphans_for: embedded.config.retention.ended_for,
            retry_after: embedded.config.overload_retry_after,
        };
        Actor::start_in_arbiter(&embedded.arbiters[0], move |_| timer);
        embedded
    }

    pub(crate) fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Where webhook entries go: the store, or memory without one.
    pub(crate) fn webhook_store(&self) -> Arc<dyn Store> {
        self.store
            .clone()
            .unwrap_or_else(|| self.unstored_webhooks.clone())
    }

    /// Brings back everything a store loaded (see [`crate::Engine::restore`]).
    pub(crate) fn restore(&self, loaded: Loaded) -> Result<()> {
        for pool in loaded.pools {
            self.restore_tenant(pool)?;
        }
        for (id, tombstone) in loaded.orphans {
            self.registry.orphans.insert(id, tombstone);
        }
        // Deleted tenants' marks, for a tenant created again under the same id.
        for (tenant, high) in loaded.fences {
            if !self.registry.tenants.contains_key(&tenant) {
                self.registry.remember_fence(tenant, high);
            }
        }
        self.events.request(Envelope::Import(loaded.usage));
        Ok(())
    }

    pub(crate) async fn set_api_key(&self, tenant: &TenantId, hash: [u8; 32]) -> Result<()> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::SetApiKey {
            hash,
            reply,
        })
        .await
    }

    pub(crate) async fn tenant_of_key(&self, hash: &[u8; 32]) -> Result<Option<TenantId>> {
        let registry = &self.registry;
        let Some(owner) = registry.api_keys.get(hash).map(|e| e.value().clone()) else {
            return Ok(None);
        };
        // A key answers only for the incarnation that set it.
        Ok(registry
            .live(&owner.tenant)
            .filter(|current| Arc::ptr_eq(&owner, current))
            .map(|_| owner.tenant.clone()))
    }

    pub(crate) async fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage> {
        self.pool(tenant)?;
        let Some(store) = self.store.clone() else {
            return Ok(EventPage::default());
        };
        // The audit log is read from the store: blocking I/O, off the caller's thread.
        let (tenant, query) = (tenant.clone(), query.clone());
        tokio::task::spawn_blocking(move || store.events(&tenant, &query))
            .await
            .map_err(|e| Error::Internal(format!("reading the audit log failed: {e}")))?
    }

    pub(crate) fn health(&self) -> Health {
        let registry = &self.registry;
        if let Some(why) = self.store.as_ref().and_then(|s| s.failure()) {
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
        let now = self.clock.now();
        let overdue = registry
            .tenants
            .iter()
            .filter(|e| e.value().ledger.is_overdue(now))
            .count();
        if overdue > 0 {
            return Health::Degraded(format!(
                "writes of {overdue} tenant(s) have not become durable within {} s; is the disk stalled?",
                self.config.write_deadline.as_secs_f64()
            ));
        }
        Health::Ok
    }

    /// A tenant being deleted is created anew only once its deletion is durable, so
    /// the new incarnation's rows can never be wiped by the old one's delete.
    pub(crate) async fn put_tenant(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<(TenantView, bool)> {
        let (handle, created) = loop {
            match self.registry.tenants.entry(tenant.clone()) {
                Slot::Occupied(entry) if !entry.get().is_live() => {
                    let dying = entry.get().clone();
                    drop(entry);
                    if self.registry.store_failed.load(Ordering::Acquire) {
                        return Err(crate::actor::store_failed());
                    }
                    // The deletion becomes durable, or this caller hears 503 in time.
                    if tokio::time::timeout(self.config.write_deadline, dying.deleted())
                        .await
                        .is_err()
                    {
                        return Err(Error::Unavailable {
                            retry_after: self.config.overload_retry_after,
                        });
                    }
                }
                Slot::Occupied(entry) => break (entry.get().clone(), false),
                Slot::Vacant(entry) => {
                    let mut state = PoolState::new(
                        tenant.clone(),
                        licence.clone(),
                        self.config.retention,
                        self.clock.now(),
                    );
                    if let Some((_, high)) = self.registry.fences.remove(tenant) {
                        state.continue_fences_above(high);
                    }
                    let handle = self.spawn_pool(state);
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
                licence: Box::new(licence.clone()),
                expected: None,
                reply,
            })
            .await?
        };
        Ok((view, created))
    }

    pub(crate) fn restore_tenant(&self, snapshot: PoolSnapshot) -> Result<()> {
        let tenant = snapshot.tenant.clone();
        let ids: Vec<SessionId> = snapshot
            .sessions
            .iter()
            .map(|s| s.id)
            .chain(snapshot.ended.iter().map(|(id, _)| *id))
            .chain(snapshot.tickets.iter().map(|t| t.id))
            .chain(snapshot.ended_tickets.iter().map(|(id, _)| *id))
            .collect();
        let state = PoolState::restore(snapshot, self.config.retention, self.clock.now());
        match self.registry.tenants.entry(tenant) {
            Slot::Occupied(_) => Err(Error::InvalidRequest("tenant already exists".into())),
            Slot::Vacant(entry) => {
                let api_key = state.api_key();
                let handle = self.spawn_pool(state);
                for id in ids {
                    self.registry.sessions.insert(id, handle.clone());
                }
                if let Some(hash) = api_key {
                    self.registry.api_keys.insert(hash, handle.clone());
                }
                entry.insert(handle);
                Ok(())
            }
        }
    }

    /// The delete is never shed. From the moment it is asked the tenant answers
    /// `tenant_not_found`; its name is free for a new tenant once the deletion is
    /// durable.
    pub(crate) async fn delete_tenant(&self, tenant: &TenantId) -> Result<()> {
        let handle = self.pool(tenant)?;
        if self.registry.store_failed.load(Ordering::Acquire) {
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

    pub(crate) async fn tenant_ids(&self) -> Result<Vec<TenantId>> {
        let mut ids: Vec<TenantId> = self
            .registry
            .tenants
            .iter()
            .filter(|e| e.value().is_live())
            .map(|e| e.key().clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub(crate) async fn tenant(&self, tenant: &TenantId) -> Result<TenantView> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::View { reply })
            .await
    }

    pub(crate) async fn licence(&self, tenant: &TenantId) -> Result<Licence> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Licence { reply })
            .await
    }

    pub(crate) async fn change_licence(
        &self,
        tenant: &TenantId,
        expected: Licence,
        licence: Licence,
    ) -> Result<TenantView> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::SetLicence {
            licence: Box::new(licence),
            expected: Some(Box::new(expected)),
            reply,
        })
        .await
    }

    pub(crate) async fn preview_licence(
        &self,
        tenant: &TenantId,
        licence: Licence,
    ) -> Result<LicencePreview> {
        let holdings = match self.pool(tenant) {
            Ok(handle) => Some(
                self.call(&handle, Priority::Shed, |reply| PoolMsg::Holdings {
                    licence: Box::new(licence.clone()),
                    reply,
                })
                .await?,
            ),
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

    pub(crate) async fn enter(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
    ) -> Result<Entry> {
        self.arrive(tenant, user, client, true).await
    }

    async fn arrive(
        &self,
        tenant: &TenantId,
        user: &UserId,
        client: Option<&str>,
        may_queue: bool,
    ) -> Result<Entry> {
        let handle = self.pool(tenant)?;
        let token = self.fresh_token();
        let entry = self
            .call(&handle, Priority::Shed, |reply| PoolMsg::Login {
                user: user.clone(),
                client: client.map(String::from),
                id: token.id(),
                secret: token.secret_hash(),
                may_queue,
                reply,
            })
            .await?;
        Ok(match entry {
            pool::Entry::Admitted(admission) => {
                Entry::Admitted(login_of(token, tenant, user, &admission))
            }
            pool::Entry::Queued(queued) => Entry::Queued(Ticket {
                token,
                tenant: tenant.clone(),
                user: user.clone(),
                position: queued.position,
                expires_at: queued.expires_at,
                idle_timeout: queued.idle_timeout,
                heartbeat_interval: queued.heartbeat_interval,
            }),
        })
    }

    /// A token whose id no session or ticket, live or remembered, has.
    fn fresh_token(&self) -> SessionToken {
        let mut token = SessionToken::generate();
        while self.registry.sessions.contains_key(&token.id())
            || self.registry.orphans.contains_key(&token.id())
        {
            token = SessionToken::generate();
        }
        token
    }

    pub(crate) async fn ticket_heartbeat(&self, ticket: &SessionToken) -> Result<TicketStatus> {
        let handle = self.ticket_pool(ticket)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::TicketHeartbeat {
            id: ticket.id(),
            secret: ticket.secret_hash(),
            reply,
        })
        .await
    }

    pub(crate) fn ticket_tenant(&self, ticket: &SessionToken) -> Result<TenantId> {
        self.ticket_pool(ticket).map(|handle| handle.tenant.clone())
    }

    pub(crate) async fn claim(&self, ticket: &SessionToken) -> Result<Login> {
        let handle = self.ticket_pool(ticket)?;
        let token = self.fresh_token();
        let tenant = handle.tenant.clone();
        let (admission, user) = self
            .call(&handle, Priority::Shed, |reply| PoolMsg::Claim {
                ticket: ticket.id(),
                ticket_secret: ticket.secret_hash(),
                id: token.id(),
                secret: token.secret_hash(),
                reply,
            })
            .await?;
        Ok(login_of(token, &tenant, &user, &admission))
    }

    pub(crate) async fn cancel_ticket(&self, ticket: &SessionToken) -> Result<()> {
        let handle = self.ticket_pool(ticket)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::CancelTicket {
            id: ticket.id(),
            secret: ticket.secret_hash(),
            reply,
        })
        .await
    }

    pub(crate) async fn waitlist(&self, tenant: &TenantId) -> Result<Vec<QueueEntry>> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::Queue { reply })
            .await
    }

    pub(crate) async fn heartbeat(&self, token: &SessionToken) -> Result<Heartbeat> {
        let handle = self.session_pool(token)?;
        let (expires_at, idle_timeout, fence) = self
            .call(&handle, Priority::Shed, |reply| PoolMsg::Heartbeat {
                id: token.id(),
                secret: token.secret_hash(),
                reply,
            })
            .await?;
        Ok(Heartbeat {
            expires_at,
            idle_timeout,
            fence,
        })
    }

    pub(crate) async fn release(&self, token: &SessionToken) -> Result<()> {
        let handle = self.session_pool(token)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Release {
            id: token.id(),
            secret: token.secret_hash(),
            reply,
        })
        .await
    }

    pub(crate) async fn logout(&self, token: &SessionToken) -> Result<u32> {
        let handle = self.session_pool(token)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Logout {
            id: token.id(),
            secret: token.secret_hash(),
            reply,
        })
        .await
    }

    pub(crate) async fn revoke(&self, tenant: &TenantId, session: SessionId) -> Result<()> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::Revoke {
            id: session,
            reply,
        })
        .await
    }

    pub(crate) async fn logout_user(&self, tenant: &TenantId, user: &UserId) -> Result<u32> {
        let handle = self.pool(tenant)?;
        let user = user.clone();
        self.call(&handle, Priority::Control, |reply| PoolMsg::LogoutUser {
            user,
            reply,
        })
        .await
    }

    pub(crate) async fn put_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        groups: Option<&[GroupId]>,
    ) -> Result<UserView> {
        let handle = self.pool(tenant)?;
        let user = user.clone();
        let groups = groups.map(crate::pool::user_groups).transpose()?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::PutUser {
            user,
            groups,
            reply,
        })
        .await
    }

    pub(crate) async fn remove_user(&self, tenant: &TenantId, user: &UserId) -> Result<()> {
        let handle = self.pool(tenant)?;
        let user = user.clone();
        self.call(&handle, Priority::Control, |reply| PoolMsg::RemoveUser {
            user,
            reply,
        })
        .await
    }

    pub(crate) async fn users_page(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Page<UserView, UserId>> {
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

    pub(crate) async fn sessions_page(
        &self,
        tenant: &TenantId,
        after: Option<SessionCursor>,
        limit: usize,
    ) -> Result<Page<SessionView, SessionCursor>> {
        let handle = self.pool(tenant)?;
        crate::pool::check_page_limit(limit)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Sessions {
            after,
            limit,
            reply,
        })
        .await
    }

    pub(crate) async fn report_records(
        &self,
        tenant: &TenantId,
        count: u64,
    ) -> Result<RecordsView> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Control, |reply| PoolMsg::ReportRecords {
            count,
            reply,
        })
        .await
    }

    pub(crate) async fn records(&self, tenant: &TenantId) -> Result<RecordsView> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Records { reply })
            .await
    }

    pub(crate) async fn usage(&self, tenant: &TenantId, days: u32) -> Result<Vec<DayUsage>> {
        self.pool(tenant)?;
        let (reply, answer) = oneshot::channel();
        self.events.request(Envelope::Usage {
            tenant: tenant.clone(),
            days,
            today: self.clock.now(),
            reply,
        });
        answer.await.map_err(|_| self.overloaded())
    }

    pub(crate) async fn snapshot(&self, tenant: &TenantId) -> Result<PoolSnapshot> {
        let handle = self.pool(tenant)?;
        self.call(&handle, Priority::Shed, |reply| PoolMsg::Snapshot { reply })
            .await
    }

    /// The timer's work, on demand, waiting until every pool asked has answered.
    pub(crate) async fn expire_due(&self) -> Result<()> {
        let now = self.clock.now();
        let registry = &self.registry;
        registry.forget_orphans(now, self.config.retention.ended_for);
        registry.time_out_deleted(now, self.config.overload_retry_after);
        let due = registry.due_pools(now);
        for handle in due {
            self.send(&handle, Priority::Control, |reply| PoolMsg::Tick {
                reply: Some(reply),
            })
            .await?;
        }
        Ok(())
    }

    /// One timer tick, without waiting. Returns how many pools were asked.
    pub(crate) fn tick(&self) -> usize {
        self.registry.tick(
            self.clock.now(),
            self.config.retention.ended_for,
            self.config.overload_retry_after,
        )
    }

    pub(crate) fn stats(&self) -> EngineStats {
        EngineStats {
            tenants: self.registry.tenants.len(),
            sessions_routed: self.registry.sessions.len(),
            live_sessions: self.registry.live_sessions.load(Ordering::Relaxed).max(0) as u64,
            seats_in_use: self.registry.seats_in_use.load(Ordering::Relaxed).max(0) as u64,
            events_dropped: self.events.dropped(),
        }
    }

    fn pool(&self, tenant: &TenantId) -> Result<Arc<PoolHandle>> {
        self.registry.live(tenant).ok_or(Error::TenantNotFound)
    }

    /// The pool of a session; for a session of a deleted tenant, why it ended (to its
    /// holder only).
    /// The pool of a ticket, or why there is none.
    fn ticket_pool(&self, ticket: &SessionToken) -> Result<Arc<PoolHandle>> {
        self.session_pool(ticket).map_err(|e| match e {
            Error::SessionEnded { reason } => Error::TicketEnded { reason },
            Error::SessionNotFound => Error::TicketNotFound,
            other => other,
        })
    }

    fn session_pool(&self, token: &SessionToken) -> Result<Arc<PoolHandle>> {
        let registry = &self.registry;
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
            retry_after: self.config.overload_retry_after,
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
        if self.registry.store_failed.load(Ordering::Acquire) {
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

    fn spawn_pool(&self, mut state: PoolState) -> Arc<PoolHandle> {
        if self.store.is_some() {
            state.record_changes();
        }
        let index = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let shell = Shell {
            clock: self.clock.clone(),
            events: self.events.clone(),
            live: self.live.clone(),
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

/// The client's view of an admitted login.
fn login_of(token: SessionToken, tenant: &TenantId, user: &UserId, admission: &Admission) -> Login {
    Login {
        token,
        tenant: tenant.clone(),
        user: user.clone(),
        expires_at: admission.expires_at,
        idle_timeout: admission.idle_timeout,
        heartbeat_interval: admission.heartbeat_interval,
        fence: admission.fence,
        overage: admission.overage,
    }
}
