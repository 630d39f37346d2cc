//! The event consumer: one thread that receives every [`Event`] over a bounded
//! crossbeam channel, so that no pool ever waits on their readers. It keeps the usage
//! book and passes events on to subscribers; requests that must see every event sent
//! before them (a usage report, a new subscriber) travel on the same channel.

use std::thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::clock::Timestamp;
use crate::events::Event;
use crate::ids::TenantId;
use crate::usage::{DayUsage, StoredDay, UsageBook};

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
    /// Answered once every event sent before it has been passed on.
    Flush(oneshot::Sender<()>),
    /// Stored usage, given back at start-up.
    Import(Vec<(TenantId, StoredDay)>),
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
pub(crate) fn start(capacity: usize) -> (EventSender, thread::JoinHandle<()>) {
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
            Envelope::Flush(reply) => {
                let _ = reply.send(());
            }
            Envelope::Import(days) => {
                for (tenant, day) in days {
                    usage.import(tenant, day);
                }
            }
        }
    }
}
