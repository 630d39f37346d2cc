//! Every decision a pool makes, as an [`Event`], and the consumer thread that receives
//! them over a crossbeam channel so that no pool ever waits on their readers.

use std::thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::clock::Timestamp;
use crate::error::{EndReason, Refusal};
use crate::ids::{SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::usage::{DayUsage, UsageBook};

/// One decision of one tenant's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Whose pool decided.
    pub tenant: TenantId,
    /// When.
    pub at: Timestamp,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The tenant was created with this licence.
    TenantCreated {
        /// The licence.
        licence: Licence,
    },
    /// The licence was replaced.
    LicenceChanged {
        /// The new licence.
        licence: Licence,
        /// Seats held under the new licence: another model or seat rule counts the
        /// same sessions differently.
        seats_in_use: u32,
    },
    /// The tenant was deleted; its sessions ended before this.
    TenantDeleted,
    /// A login was admitted.
    Admitted {
        /// Who.
        user: UserId,
        /// The new session.
        session: SessionId,
        /// Seats held after the login.
        seats_in_use: u32,
    },
    /// A login was refused.
    Refused {
        /// Who.
        user: UserId,
        /// Why.
        reason: Refusal,
    },
    /// A login was admitted but its write was not confirmed durable in time, so the
    /// answer was 503 and the seat was given back: nobody holds its token.
    Withdrawn {
        /// Who.
        user: UserId,
        /// The session that never reached its client.
        session: SessionId,
        /// Seats held after it was withdrawn.
        seats_in_use: u32,
    },
    /// A session ended.
    Ended {
        /// Whose.
        user: UserId,
        /// Which.
        session: SessionId,
        /// Why.
        reason: EndReason,
        /// Seats held after it ended.
        seats_in_use: u32,
    },
    /// A user account was created or given a named seat.
    UserAssigned {
        /// Who.
        user: UserId,
        /// Whether the user now holds a named seat.
        assigned: bool,
        /// Seats held after the change.
        seats_in_use: u32,
    },
    /// A user account was removed (and its named seat freed).
    UserRemoved {
        /// Who.
        user: UserId,
        /// Seats held after the change.
        seats_in_use: u32,
    },
    /// The backend reported its record count.
    RecordsReported {
        /// The count.
        count: u64,
    },
}

/// What travels on the event channel: events, and requests that must see every event
/// sent before them.
pub(crate) enum Envelope {
    Event(Event),
    Usage {
        tenant: TenantId,
        days: u32,
        today: Timestamp,
        reply: oneshot::Sender<Vec<DayUsage>>,
    },
    Subscribe(Sender<Event>),
    /// Stored usage, given back at start-up.
    Import(Vec<(TenantId, crate::usage::StoredDay)>),
}

/// The sending side handed to every pool.
#[derive(Clone)]
pub(crate) struct EventSender {
    tx: Sender<Envelope>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EventSender {
    /// Sends without blocking: a pool never waits on a reader. If the consumer has
    /// fallen a whole channel behind, the event is counted as dropped.
    pub(crate) fn send(&self, event: Event) {
        match self.tx.try_send(Envelope::Event(event)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn request(&self, envelope: Envelope) {
        // Requests may wait for room: they come from callers, not pools.
        let _ = self.tx.send(envelope);
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Starts the consumer thread; it ends when every sender is gone.
pub(crate) fn start_consumer(capacity: usize) -> (EventSender, thread::JoinHandle<()>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let handle = thread::Builder::new()
        .name("usher-events".into())
        .spawn(move || consume(rx))
        .expect("spawning the event consumer thread");
    let sender = EventSender {
        tx,
        dropped: Default::default(),
    };
    (sender, handle)
}

fn consume(rx: Receiver<Envelope>) {
    let mut usage = UsageBook::default();
    let mut subscribers: Vec<Sender<Event>> = Vec::new();
    for envelope in rx {
        match envelope {
            Envelope::Event(event) => {
                usage.record(&event);
                // A subscriber that does not keep up loses events rather than stalling
                // the others; one that has gone away is forgotten.
                subscribers.retain(|s| {
                    !matches!(
                        s.try_send(event.clone()),
                        Err(TrySendError::Disconnected(_))
                    )
                });
            }
            Envelope::Usage {
                tenant,
                days,
                today,
                reply,
            } => {
                let _ = reply.send(usage.report(&tenant, days, today));
            }
            Envelope::Subscribe(tx) => subscribers.push(tx),
            Envelope::Import(days) => {
                for (tenant, day) in days {
                    usage.import(tenant, day);
                }
            }
        }
    }
}
