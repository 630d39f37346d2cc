//! The actor shell around a [`PoolState`]: one per tenant, handling one message at a
//! time so that admission under contention needs no locks.
//!
//! The actor reads the clock, calls the core, then — before answering — sends the
//! core's events to the consumer thread, keeps the session registry in step, and
//! publishes the pool's next due moment for the timer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::dev::channel;
use actix::{Actor, ActorContext, Addr, ArbiterHandle, Context, Handler, Message};
use tokio::sync::oneshot;

use crate::clock::{Clock, Timestamp};
use crate::engine::Registry;
use crate::error::Result;
use crate::events::{Event, EventSender};
use crate::ids::{SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::pool::{
    Admission, Page, PoolState, RecordsView, SessionCursor, SessionView, TenantView, UserView,
};
use crate::store::{Batch, Store};
use crate::token::SecretHash;

/// Where a pool's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// The engine's way to a pool: one shared address, so the mailbox bound holds for
/// every caller together.
pub(crate) struct PoolHandle {
    pub(crate) tenant: TenantId,
    pub(crate) addr: Addr<PoolActor>,
    /// Milliseconds since the epoch when the pool next has something due
    /// (`u64::MAX`: nothing).
    pub(crate) next_due: Arc<AtomicU64>,
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
        // The mailbox is sized before any caller can reach it: a burst of logins right
        // after creation must not meet the default capacity.
        let (tx, rx) = channel::channel(capacity);
        let actor = PoolActor {
            state,
            shell,
            next_due: next_due.clone(),
            published: (0, 0),
        };
        arbiter.spawn_fn(move || {
            Context::with_receiver(rx).run(actor);
        });
        Arc::new(PoolHandle {
            tenant,
            addr: Addr::new(tx),
            next_due,
        })
    }

    /// Whether the pool has something due at `now`.
    pub(crate) fn is_due(&self, now: Timestamp) -> bool {
        self.next_due.load(Ordering::Relaxed) <= now.as_millis()
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
    pub(crate) registry: Arc<Registry>,
    /// Where changes are made durable; none for an in-memory engine.
    pub(crate) store: Option<Arc<dyn Store>>,
}

/// One tenant's pool actor.
pub(crate) struct PoolActor {
    state: PoolState,
    shell: Shell,
    next_due: Arc<AtomicU64>,
    /// `(live sessions, seats in use)` as last added to the registry's totals.
    published: (i64, i64),
}

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // A restored pool starts with sessions: count them in the totals; a new one
        // has its creation to store.
        self.commit(|_| {});
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.publish_totals(0, 0);
    }
}

/// Everything a pool can be asked. Each request carries its reply channel, so the
/// engine can use the capacity-checked `try_send` and still get an answer.
pub(crate) enum PoolMsg {
    Login {
        user: UserId,
        client: Option<String>,
        id: SessionId,
        secret: SecretHash,
        handle: Arc<PoolHandle>,
        reply: Reply<Admission>,
    },
    Heartbeat {
        id: SessionId,
        secret: SecretHash,
        reply: Reply<(Timestamp, Licence)>,
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
        reply: Reply<UserView>,
    },
    RemoveUser {
        user: UserId,
        reply: Reply<()>,
    },
    SetLicence {
        licence: Licence,
        reply: Reply<TenantView>,
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
    /// Expire what is due; `reply` lets a caller wait for it.
    Tick {
        reply: Option<Reply<()>>,
    },
    /// End every session and stop: the tenant is deleted.
    Delete {
        reply: Reply<()>,
    },
}

impl Message for PoolMsg {
    type Result = ();
}

impl Handler<PoolMsg> for PoolActor {
    type Result = ();

    fn handle(&mut self, msg: PoolMsg, ctx: &mut Context<Self>) {
        let now = self.shell.clock.now();
        let state = &mut self.state;
        // Each arm computes its answer; `respond` publishes the consequences and has
        // them stored before the answer goes out: whoever reads an answer sees its
        // effects, and nothing is acknowledged before it is durable.
        match msg {
            PoolMsg::Login {
                user,
                client,
                id,
                secret,
                handle,
                reply,
            } => {
                let result = state.login(&user, client.as_deref(), id, secret, now);
                if result.is_ok() {
                    self.shell.registry.sessions.insert(id, handle);
                }
                self.respond(reply, result);
            }
            PoolMsg::Heartbeat { id, secret, reply } => {
                let result = state
                    .heartbeat(id, &secret, now)
                    .map(|at| (at, *state.licence()));
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
            PoolMsg::PutUser { user, reply } => {
                let result = state.put_user(&user, now);
                self.respond(reply, result);
            }
            PoolMsg::RemoveUser { user, reply } => {
                let result = state.remove_user(&user, now);
                self.respond(reply, result);
            }
            PoolMsg::SetLicence { licence, reply } => {
                state.set_licence(licence, now);
                let view = state.view();
                self.respond(reply, Ok(view));
            }
            PoolMsg::ReportRecords { count, reply } => {
                let view = state.report_records(count, now);
                self.respond(reply, Ok(view));
            }
            PoolMsg::Records { reply } => {
                let view = state.records(now);
                self.respond(reply, Ok(view));
            }
            PoolMsg::View { reply } => {
                state.expire_due(now);
                let view = state.view();
                self.respond(reply, Ok(view));
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
                state.expire_due(now);
                match reply {
                    Some(reply) => self.respond(reply, Ok(())),
                    None => self.commit(|_| {}),
                }
            }
            PoolMsg::Delete { reply } => {
                // The tenant's sessions are remembered outside the pool, which stops.
                for (id, tombstone) in state.evict_all(now) {
                    self.shell.registry.sessions.remove(&id);
                    self.shell.registry.orphans.insert(id, tombstone);
                }
                self.respond(reply, Ok(()));
                self.next_due.store(u64::MAX, Ordering::Relaxed);
                ctx.stop();
            }
        }
    }
}

impl PoolActor {
    /// Answers once the operation's changes are durable (at once without a store).
    fn respond<T: Send + 'static>(&mut self, reply: Reply<T>, result: Result<T>) {
        self.commit(move |stored| {
            let _ = reply.send(stored.and(result));
        });
    }

    /// Publishes the last operation's consequences and hands its changes to the store;
    /// `then` runs once they are durable. Events alone (refusals) are written to the
    /// audit log without holding anyone up.
    fn commit(&mut self, then: impl FnOnce(Result<()>) + Send + 'static) {
        let changes = self.state.take_changes();
        let events = self.settle();
        let Some(store) = &self.shell.store else {
            return then(Ok(()));
        };
        let batch = Batch {
            tenant: self.state.tenant().clone(),
            changes,
            events,
        };
        if self.shell.registry.store_failed.load(Ordering::Acquire) {
            // The memory may hold what the store lost: acknowledge nothing more.
            return then(Err(store_failed()));
        }
        if batch.changes.is_empty() {
            if !batch.events.is_empty() {
                store.submit(batch, Box::new(|_| {}));
            }
            then(Ok(()));
        } else {
            let registry = self.shell.registry.clone();
            store.submit(
                batch,
                Box::new(move |stored| {
                    if stored.is_err() {
                        registry.store_failed.store(true, Ordering::Release);
                    }
                    then(stored)
                }),
            );
        }
    }

    /// Publishes what the last operation caused: events to the consumer, forgotten
    /// sessions out of the registry, and the next due moment to the timer. Returns the
    /// events again when a store wants them for the audit log.
    fn settle(&mut self) -> Vec<Event> {
        let keep = self.shell.store.is_some();
        let mut kept = Vec::new();
        for event in self.state.take_events() {
            if keep {
                kept.push(event.clone());
            }
            self.shell.events.send(event);
        }
        for id in self.state.take_forgotten() {
            self.shell.registry.sessions.remove(&id);
        }
        self.next_due
            .store(encode_due(self.state.next_due()), Ordering::Relaxed);
        self.publish_totals(
            self.state.live_sessions() as i64,
            i64::from(self.state.seats_in_use()),
        );
        kept
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
