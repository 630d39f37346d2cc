//! The actor shell around a [`PoolState`]: one per tenant, handling one message at a
//! time so that admission under contention needs no locks.
//!
//! The actor reads the clock, calls the core, then — before answering — sends the
//! core's events to the consumer thread, keeps the session registry in step, and
//! publishes the pool's next due moment for the timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::dev::channel;
use actix::{Actor, ActorContext, Addr, ArbiterHandle, AsyncContext, Context, Handler, Message};
use tokio::sync::{oneshot, watch};

use crate::clock::{Clock, Timestamp};
use crate::consumer::EventSender;
use crate::error::{Error, Result};
use crate::events::{Event, EventKind};
use crate::ids::{GroupId, SessionId, TenantId, UserId};
use crate::ledger::{Answer, Ledger};
use crate::licence::Licence;
use crate::live::{Live, News};
use crate::pool::{
    Admission, Entry, Holdings, Page, PoolState, QueueEntry, RecordsView, SessionCursor,
    SessionView, TenantView, TicketStatus, UserView,
};
use crate::registry::Registry;
use crate::store::{Batch, Store};
use crate::token::SecretHash;

/// Where a pool's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// The engine's way to a pool: one shared address, so the mailbox bound holds for
/// every caller together. Each handle is one incarnation of its tenant: a tenant
/// deleted and created again gets a new handle, and nothing of the old one (a row, a
/// key, a session) answers for the new.
pub(crate) struct PoolHandle {
    pub(crate) tenant: TenantId,
    pub(crate) addr: Addr<PoolActor>,
    /// Milliseconds since the epoch when the pool next has something due
    /// (`u64::MAX`: nothing).
    pub(crate) next_due: Arc<AtomicU64>,
    /// What the pool has submitted to the store and what is durable.
    pub(crate) ledger: Arc<Ledger>,
    /// Set once a delete is under way: from then on the handle answers for nothing.
    pub(crate) deleting: AtomicBool,
    /// Becomes true once the delete is durable and the tenant's name is free again.
    gone: watch::Sender<bool>,
    /// A tick is in the mailbox, so the timer need not send another.
    pub(crate) tick_queued: AtomicBool,
}

impl PoolHandle {
    /// Starts a pool actor on `arbiter` with a mailbox of `capacity` messages.
    pub(crate) fn start(
        arbiter: &ArbiterHandle,
        state: PoolState,
        shell: Shell,
        capacity: usize,
    ) -> Arc<PoolHandle> {
        let tenant = state.tenant().clone();
        let next_due = Arc::new(AtomicU64::new(encode_due(state.next_due())));
        let ledger = Arc::new(Ledger::new(shell.write_deadline));
        // The mailbox is sized before any caller can reach it: a burst of logins right
        // after creation must not meet the default capacity.
        let (tx, rx) = channel::channel(capacity);
        Arc::new_cyclic(|me: &Weak<PoolHandle>| {
            let actor = PoolActor {
                state,
                shell,
                me: me.clone(),
                ledger: ledger.clone(),
                next_due: next_due.clone(),
                published: (0, 0),
                pending: Vec::new(),
                flush_queued: false,
            };
            arbiter.spawn_fn(move || {
                Context::with_receiver(rx).run(actor);
            });
            PoolHandle {
                tenant,
                addr: Addr::new(tx),
                next_due,
                ledger,
                deleting: AtomicBool::new(false),
                gone: watch::channel(false).0,
                tick_queued: AtomicBool::new(false),
            }
        })
    }

    /// Whether the pool has something due at `now`: a session to expire, an ended one
    /// to forget, or an answer that has waited the whole write deadline.
    pub(crate) fn is_due(&self, now: Timestamp) -> bool {
        self.next_due.load(Ordering::Relaxed) <= now.as_millis() || self.ledger.is_overdue(now)
    }

    /// Whether this handle still answers for its tenant.
    pub(crate) fn is_live(&self) -> bool {
        !self.deleting.load(Ordering::Acquire)
    }

    /// Waits until a delete of this incarnation is durable.
    pub(crate) async fn deleted(&self) {
        let mut gone = self.gone.subscribe();
        let _ = gone.wait_for(|gone| *gone).await;
    }
}

/// The answer once the store has failed: the engine stops until restarted, when the
/// store gives back its last durable state.
pub(crate) fn store_failed() -> crate::error::Error {
    crate::error::Error::Internal(
        "the store failed to write; nothing more is acknowledged until the server restarts".into(),
    )
}

fn encode_due(due: Option<Timestamp>) -> u64 {
    due.map_or(u64::MAX, Timestamp::as_millis)
}

/// What a pool actor needs from its surroundings.
#[derive(Clone)]
pub(crate) struct Shell {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: EventSender,
    /// Told of each change once it is durable: the live channel's streams and sockets.
    pub(crate) live: Arc<Live>,
    pub(crate) registry: Arc<Registry>,
    /// Where changes are made durable; none for an in-memory engine.
    pub(crate) store: Option<Arc<dyn Store>>,
    /// How long an answer may wait for its write before the caller is told 503.
    pub(crate) write_deadline: Duration,
    /// The `Retry-After` hint of a refusal for want of room or time.
    pub(crate) retry_after: Duration,
}

/// One tenant's pool actor.
pub(crate) struct PoolActor {
    state: PoolState,
    shell: Shell,
    /// This pool's own handle (for the registry entries it makes).
    me: Weak<PoolHandle>,
    ledger: Arc<Ledger>,
    next_due: Arc<AtomicU64>,
    /// `(live sessions, seats in use)` as last added to the registry's totals.
    published: (i64, i64),
    /// Answers waiting for the end of the mailbox's current run of messages, in order.
    pending: Vec<Pending>,
    /// A [`Flush`] is queued behind the messages waiting in the mailbox.
    flush_queued: bool,
}

/// An answer computed and not yet sent: the run of messages it belongs to is committed
/// once, after its last message, and then each answer goes out in order.
struct Pending {
    answer: Answer,
    withdraw: Option<SessionId>,
}

/// The most answers held back for one commit: under a mailbox that never runs dry,
/// answers still go out after at most this many messages.
const MAX_RUN: usize = 128;

/// Sent by a pool to itself when it holds answers back: handled once the messages
/// waiting in the mailbox have been, so it commits their run at once.
struct Flush;

impl Message for Flush {
    type Result = ();
}

impl Handler<Flush> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {
        self.flush_queued = false;
        self.flush();
    }
}

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // A restored pool starts with sessions: count them in the totals; a new one
        // has its creation to store, and every answer after waits for it.
        self.commit();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.flush();
        self.publish_totals(0, 0);
    }
}

/// Everything a pool can be asked. Each request carries its reply channel, so the
/// engine can use the capacity-checked `try_send` and still get an answer.
pub(crate) enum PoolMsg {
    /// A login; with `may_queue`, one that a licence that queues puts in line at its
    /// limit, under the ticket `id` / `secret`.
    Login {
        user: UserId,
        client: Option<String>,
        id: SessionId,
        secret: SecretHash,
        may_queue: bool,
        reply: Reply<Entry>,
    },
    TicketHeartbeat {
        id: SessionId,
        secret: SecretHash,
        reply: Reply<TicketStatus>,
    },
    /// Turns a ready ticket into the session `id` / `secret`.
    Claim {
        ticket: SessionId,
        ticket_secret: SecretHash,
        id: SessionId,
        secret: SecretHash,
        reply: Reply<(Admission, UserId)>,
    },
    CancelTicket {
        id: SessionId,
        secret: SecretHash,
        reply: Reply<()>,
    },
    /// The waitlist, head first.
    Queue {
        reply: Reply<Vec<QueueEntry>>,
    },
    Heartbeat {
        id: SessionId,
        secret: SecretHash,
        reply: Reply<(Timestamp, Duration, u64)>,
    },
    Release {
        id: SessionId,
        secret: SecretHash,
        reply: Reply<()>,
    },
    Logout {
        id: SessionId,
        secret: SecretHash,
        reply: Reply<u32>,
    },
    Revoke {
        id: SessionId,
        reply: Reply<()>,
    },
    LogoutUser {
        user: UserId,
        reply: Reply<u32>,
    },
    PutUser {
        user: UserId,
        groups: Option<Box<[GroupId]>>,
        reply: Reply<UserView>,
    },
    RemoveUser {
        user: UserId,
        reply: Reply<()>,
    },
    /// Puts `licence` in force; with `expected`, only if that is the licence in force.
    SetLicence {
        licence: Box<Licence>,
        expected: Option<Box<Licence>>,
        reply: Reply<TenantView>,
    },
    Licence {
        reply: Reply<Licence>,
    },
    /// Replaces the tenant's API key by its hash; the old key stops working at once.
    SetApiKey {
        hash: [u8; 32],
        reply: Reply<()>,
    },
    ReportRecords {
        count: u64,
        reply: Reply<RecordsView>,
    },
    Records {
        reply: Reply<RecordsView>,
    },
    View {
        reply: Reply<TenantView>,
    },
    /// What the pool holds, for a licence change to `licence` not made.
    Holdings {
        licence: Box<Licence>,
        reply: Reply<Holdings>,
    },
    /// A page of the live sessions, by login time.
    Sessions {
        after: Option<SessionCursor>,
        limit: usize,
        reply: Reply<Page<SessionView, SessionCursor>>,
    },
    /// A page of the accounts, by user id.
    Users {
        after: Option<UserId>,
        limit: usize,
        reply: Reply<Page<UserView, UserId>>,
    },
    Snapshot {
        reply: Reply<crate::pool::PoolSnapshot>,
    },
    /// Expire what is due and time out answers past the write deadline; `reply` lets
    /// a caller wait until that is done (not until it is durable).
    Tick {
        reply: Option<Reply<()>>,
    },
    /// End every session and stop: the tenant is deleted.
    Delete {
        reply: Reply<()>,
    },
}

// Each message is moved into and out of the mailbox's envelope: large payloads (a
// licence) travel boxed, so the messages of the hot path stay small.
const _: () = assert!(std::mem::size_of::<PoolMsg>() <= 96);

impl PoolMsg {
    /// Whether the request writes and comes from the traffic that may be shed: such a
    /// request is refused as overloaded, before it changes anything, when the store's
    /// queue is full.
    fn needs_room(&self) -> bool {
        matches!(
            self,
            PoolMsg::Login { .. }
                | PoolMsg::Release { .. }
                | PoolMsg::Logout { .. }
                | PoolMsg::Claim { .. }
                | PoolMsg::CancelTicket { .. }
        )
    }

    /// Answers the request with `error`, without running it.
    fn refuse(self, error: Error) {
        fn no<T>(reply: Reply<T>, error: Error) {
            let _ = reply.send(Err(error));
        }
        match self {
            PoolMsg::Login { reply, .. } => no(reply, error),
            PoolMsg::TicketHeartbeat { reply, .. } => no(reply, error),
            PoolMsg::Claim { reply, .. } => no(reply, error),
            PoolMsg::CancelTicket { reply, .. } => no(reply, error),
            PoolMsg::Queue { reply } => no(reply, error),
            PoolMsg::Heartbeat { reply, .. } => no(reply, error),
            PoolMsg::Release { reply, .. }
            | PoolMsg::Revoke { reply, .. }
            | PoolMsg::RemoveUser { reply, .. }
            | PoolMsg::SetApiKey { reply, .. }
            | PoolMsg::Delete { reply } => no(reply, error),
            PoolMsg::Logout { reply, .. } | PoolMsg::LogoutUser { reply, .. } => no(reply, error),
            PoolMsg::PutUser { reply, .. } => no(reply, error),
            PoolMsg::SetLicence { reply, .. } | PoolMsg::View { reply } => no(reply, error),
            PoolMsg::ReportRecords { reply, .. } | PoolMsg::Records { reply } => no(reply, error),
            PoolMsg::Sessions { reply, .. } => no(reply, error),
            PoolMsg::Holdings { reply, .. } => no(reply, error),
            PoolMsg::Licence { reply } => no(reply, error),
            PoolMsg::Users { reply, .. } => no(reply, error),
            PoolMsg::Snapshot { reply } => no(reply, error),
            PoolMsg::Tick { reply } => {
                if let Some(reply) = reply {
                    no(reply, error)
                }
            }
        }
    }
}

impl Message for PoolMsg {
    type Result = ();
}

impl Handler<PoolMsg> for PoolActor {
    type Result = ();

    fn handle(&mut self, msg: PoolMsg, ctx: &mut Context<Self>) {
        let now = self.shell.clock.now();
        if msg.needs_room() && self.shell.store.as_ref().is_some_and(|s| !s.has_room()) {
            // Refused before anything changed: no seat is taken by a login nobody
            // will hear about.
            return msg.refuse(Error::Overloaded {
                retry_after: self.shell.retry_after,
            });
        }
        let state = &mut self.state;
        // Each arm computes its answer; `respond` holds it until the run of messages is
        // committed (its consequences published and stored), then answers once
        // everything the pool submitted so far is durable: whoever reads an answer sees
        // its effects, and nothing is acknowledged before it is durable.
        match msg {
            PoolMsg::Login {
                user,
                client,
                id,
                secret,
                may_queue,
                reply,
            } => {
                let result = if may_queue {
                    state.enter(&user, client.as_deref(), id, secret, now)
                } else {
                    state
                        .login(&user, client.as_deref(), id, secret, now)
                        .map(Entry::Admitted)
                };
                if result.is_ok() {
                    // A session or a ticket: either way the token routes here.
                    if let Some(me) = self.me.upgrade() {
                        self.shell.registry.sessions.insert(id, me);
                    }
                }
                // Taken back, session or ticket, if its write is not durable in time.
                let entered = result.is_ok().then_some(id);
                self.answer(reply, result, entered);
            }
            PoolMsg::TicketHeartbeat { id, secret, reply } => {
                let result = state.ticket_heartbeat(id, &secret, now);
                self.respond(reply, result);
            }
            PoolMsg::Claim {
                ticket,
                ticket_secret,
                id,
                secret,
                reply,
            } => {
                let result = state.claim(ticket, &ticket_secret, id, secret, now);
                let admitted = result.is_ok().then_some(id);
                if admitted.is_some() {
                    if let Some(me) = self.me.upgrade() {
                        self.shell.registry.sessions.insert(id, me);
                    }
                }
                self.answer(reply, result, admitted);
            }
            PoolMsg::CancelTicket { id, secret, reply } => {
                let result = state.cancel_ticket(id, &secret, now);
                self.respond(reply, result);
            }
            PoolMsg::Queue { reply } => {
                state.expire_due(now);
                let entries = state.queue_entries();
                self.respond(reply, Ok(entries));
            }
            PoolMsg::Heartbeat { id, secret, reply } => {
                let result = state
                    .beat(id, &secret, now)
                    .map(|(at, fence)| (at, state.licence().idle_timeout, fence));
                self.respond(reply, result);
            }
            PoolMsg::Release { id, secret, reply } => {
                let result = state.release(id, &secret, now);
                self.respond(reply, result);
            }
            PoolMsg::Logout { id, secret, reply } => {
                let result = state.logout(id, &secret, now);
                self.respond(reply, result);
            }
            PoolMsg::Revoke { id, reply } => {
                let result = state.revoke(id, now);
                self.respond(reply, result);
            }
            PoolMsg::LogoutUser { user, reply } => {
                let result = state.logout_user(&user, now);
                self.respond(reply, result);
            }
            PoolMsg::PutUser {
                user,
                groups,
                reply,
            } => {
                let result = state.put_user(&user, groups.as_deref(), now);
                self.respond(reply, result);
            }
            PoolMsg::RemoveUser { user, reply } => {
                let result = state.remove_user(&user, now);
                self.respond(reply, result);
            }
            PoolMsg::SetLicence {
                licence,
                expected,
                reply,
            } => {
                if expected.is_some_and(|expected| *expected != *state.licence()) {
                    self.respond(reply, Err(Error::LicenceChanged));
                } else {
                    state.set_licence(*licence, now);
                    let view = state.view();
                    self.respond(reply, Ok(view));
                }
            }
            PoolMsg::Licence { reply } => {
                state.expire_due(now);
                let licence = state.licence().clone();
                self.respond(reply, Ok(licence));
            }
            PoolMsg::SetApiKey { hash, reply } => {
                state.expire_due(now);
                let old = state.set_api_key(hash);
                self.commit();
                // The old key works until the new one is durable, then only the new
                // one does; rotations take effect in the order they were made.
                let (me, registry) = (self.me.clone(), self.shell.registry.clone());
                let swap = move |durable: Result<()>| {
                    let Some(me) = me.upgrade().filter(|me| me.is_live()) else {
                        return;
                    };
                    if durable.is_ok() {
                        if let Some(old) = old {
                            registry
                                .api_keys
                                .remove_if(&old, |_, owner| Arc::ptr_eq(owner, &me));
                        }
                        registry.api_keys.insert(hash, me);
                    }
                };
                match &self.shell.store {
                    Some(_) => self.ledger.on_durable(Box::new(swap)),
                    None => swap(Ok(())),
                }
                self.respond(reply, Ok(()));
            }
            PoolMsg::ReportRecords { count, reply } => {
                state.expire_due(now);
                let view = state.report_records(count, now);
                self.respond(reply, Ok(view));
            }
            PoolMsg::Records { reply } => {
                state.expire_due(now);
                let view = state.records(now);
                self.respond(reply, Ok(view));
            }
            PoolMsg::View { reply } => {
                state.expire_due(now);
                let view = state.view();
                self.respond(reply, Ok(view));
            }
            PoolMsg::Holdings { licence, reply } => {
                state.expire_due(now);
                let holdings = state.holdings(&licence);
                self.respond(reply, Ok(holdings));
            }
            PoolMsg::Sessions {
                after,
                limit,
                reply,
            } => {
                state.expire_due(now);
                let page = state.session_page(after, limit);
                self.respond(reply, Ok(page));
            }
            PoolMsg::Users {
                after,
                limit,
                reply,
            } => {
                state.expire_due(now);
                let page = state.user_page(after.as_ref(), limit);
                self.respond(reply, Ok(page));
            }
            PoolMsg::Snapshot { reply } => {
                let snapshot = state.snapshot();
                self.respond(reply, Ok(snapshot));
            }
            PoolMsg::Tick { reply } => {
                if let Some(me) = self.me.upgrade() {
                    me.tick_queued.store(false, Ordering::Relaxed);
                }
                state.expire_due(now);
                self.time_out_writes(now);
                self.commit();
                self.flush();
                // Nothing to acknowledge: the caller only waits for the tick to be done.
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            PoolMsg::Delete { reply } => {
                self.delete(now, reply);
                self.flush();
                ctx.stop();
                return;
            }
        }
        if !self.pending.is_empty() && !self.flush_queued {
            self.flush_queued = true;
            ctx.notify(Flush);
        }
    }
}

impl PoolActor {
    /// Answers once everything the pool has submitted is durable (at once without a
    /// store).
    fn respond<T: Send + 'static>(&mut self, reply: Reply<T>, result: Result<T>) {
        self.answer(reply, result, None);
    }

    /// As [`PoolActor::respond`]; `withdraw` names the session of an admitted login,
    /// taken back if its write is not durable within the deadline.
    ///
    /// The answer is held until the end of the run of messages waiting in the mailbox
    /// (or [`MAX_RUN`] of them): the run is committed once, and every answer in it
    /// goes out after that commit, in order.
    fn answer<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        result: Result<T>,
        withdraw: Option<SessionId>,
    ) {
        self.pending.push(Pending {
            answer: Box::new(move |stored| {
                let _ = reply.send(stored.and(result));
            }),
            withdraw,
        });
        if self.pending.len() >= MAX_RUN {
            self.flush();
        }
    }

    /// Commits what the held answers' messages did, then sends each answer once
    /// everything the pool has submitted is durable (at once without a store).
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.commit();
        let pending = std::mem::take(&mut self.pending);
        if self.shell.store.is_none() {
            for waiter in pending {
                (waiter.answer)(Ok(()));
            }
            return;
        }
        if self.shell.registry.store_failed.load(Ordering::Acquire) {
            // The memory may hold what the store lost: acknowledge nothing more.
            for waiter in pending {
                (waiter.answer)(Err(store_failed()));
            }
            return;
        }
        let now = self.shell.clock.now();
        for waiter in pending {
            self.ledger.after(now, waiter.answer, waiter.withdraw);
        }
    }

    /// Publishes the last operation's consequences and hands its changes to the
    /// store, numbered in the pool's ledger. Events alone (refusals) are written to the
    /// audit log without holding anyone up, when the store has room for them.
    fn commit(&mut self) {
        let changes = self.state.take_changes();
        let (events, news) = self.settle();
        let live = self.shell.live.clone();
        let Some(store) = &self.shell.store else {
            live.publish(&news);
            return;
        };
        if self.shell.registry.store_failed.load(Ordering::Acquire) {
            return;
        }
        let batch = Batch {
            tenant: self.state.tenant().clone(),
            changes,
            events,
        };
        if batch.changes.is_empty() {
            if !batch.events.is_empty() && store.has_room() {
                store.submit(
                    batch,
                    Box::new(move |stored| {
                        if stored.is_ok() {
                            live.publish(&news);
                        }
                    }),
                );
            }
            return;
        }
        let seq = self.ledger.submit(self.shell.clock.now());
        let ledger = self.ledger.clone();
        let registry = self.shell.registry.clone();
        store.submit(
            batch,
            Box::new(move |stored| {
                if let Err(error) = &stored {
                    registry.fail(&error.to_string());
                }
                let durable = stored.is_ok();
                ledger.complete(seq, stored.map_err(|_| store_failed()));
                if durable {
                    live.publish(&news);
                }
            }),
        );
    }

    /// Answers 503 to every caller that has waited the whole write deadline, and gives
    /// back the seats of their logins: nobody holds those tokens. Should the stalled
    /// write land later, the withdrawal written after it removes the session again.
    fn time_out_writes(&mut self, now: Timestamp) {
        let late = self.ledger.time_out(now);
        if late.is_empty() {
            return;
        }
        tracing::warn!(tenant = %self.state.tenant(), answers = late.len(), "writes not durable within the deadline; answering 503");
        for waiter in late {
            if let Some(id) = waiter.withdraw {
                self.state.withdraw(id, now);
            }
            waiter.answer(Err(Error::Unavailable {
                retry_after: self.shell.retry_after,
            }));
        }
    }

    /// Deletes the tenant: every session ends (remembered apart, so its holder learns
    /// why), the API key stops working, and once the deletion is durable the name is
    /// free for a new incarnation.
    fn delete(&mut self, now: Timestamp, reply: Reply<()>) {
        let registry = self.shell.registry.clone();
        // Every key of this incarnation, also one whose rotation is not yet durable.
        let me = self.me.as_ptr();
        registry
            .api_keys
            .retain(|_, owner| !std::ptr::eq(owner.as_ref(), me));

        // What was due ends as it would have (expired) before the rest is evicted.
        self.state.expire_due(now);
        for (id, tombstone) in self.state.evict_all(now) {
            registry.sessions.remove(&id);
            registry.orphans.insert(id, tombstone);
        }
        registry.remember_fence(self.state.tenant().clone(), self.state.fence());
        self.commit();
        self.next_due.store(u64::MAX, Ordering::Relaxed);
        let me = self.me.clone();
        let tenant = self.state.tenant().clone();
        let free_the_name = move |_: Result<()>| {
            if let Some(me) = me.upgrade() {
                registry
                    .tenants
                    .remove_if(&tenant, |_, current| Arc::ptr_eq(current, &me));
                me.gone.send_replace(true);
            }
        };
        match &self.shell.store {
            Some(_) => self.ledger.on_durable(Box::new(free_the_name)),
            None => free_the_name(Ok(())),
        }
        // Answered once the name is free: whoever hears of the delete can create the
        // tenant anew at once.
        self.respond(reply, Ok(()));
    }

    /// Publishes what the last operation caused: events to the consumer, forgotten
    /// sessions out of the registry, and the next due moment to the timer. Returns the
    /// events again when a store wants them for the audit log, and what the live
    /// channel is to hear once they are durable.
    fn settle(&mut self) -> (Vec<Event>, News) {
        let keep = self.shell.store.is_some();
        let mut kept = Vec::new();
        let mut news = News {
            tenant: Some(self.state.tenant().clone()),
            ..News::default()
        };
        let mut sent = Vec::new();
        for event in self.state.take_events() {
            news.logged = true;
            match &event.kind {
                EventKind::Ended {
                    session, reason, ..
                }
                | EventKind::TicketEnded {
                    ticket: session,
                    reason,
                    ..
                } => news.ended.push((*session, *reason)),
                EventKind::TenantDeleted => news.deleted = true,
                _ => {}
            }
            if keep {
                kept.push(event.clone());
            }
            sent.push(event);
        }
        self.shell.events.send_all(sent);
        for id in self.state.take_forgotten() {
            self.shell.registry.sessions.remove(&id);
        }
        self.next_due
            .store(encode_due(self.state.next_due()), Ordering::Relaxed);
        self.publish_totals(
            self.state.live_sessions() as i64,
            i64::from(self.state.seats_in_use()),
        );
        (kept, news)
    }

    fn publish_totals(&mut self, sessions: i64, seats: i64) {
        let (old_sessions, old_seats) = self.published;
        if sessions != old_sessions {
            self.shell
                .registry
                .live_sessions
                .fetch_add(sessions - old_sessions, Ordering::Relaxed);
        }
        if seats != old_seats {
            self.shell
                .registry
                .seats_in_use
                .fetch_add(seats - old_seats, Ordering::Relaxed);
        }
        self.published = (sessions, seats);
    }
}
