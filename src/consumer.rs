//! The event consumer: one thread that receives every [`Event`] over a bounded
//! crossbeam channel, so that no pool ever waits on their readers. It keeps the usage
//! book and passes events on to subscribers; requests that must see every event sent
//! before them (a usage report, a new subscriber) travel on the same channel.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Several events in their order: what one pool's commit caused.
    Events(Vec<Event>),
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

/// The most events in one envelope.
const MAX_EVENTS: usize = 64;

/// The sending side handed to every pool.
#[derive(Clone)]
pub(crate) struct EventSender {
    tx: Sender<Envelope>,
    /// Events sent and not yet passed on: the bound is on events, however they are
    /// packed into envelopes.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Sends without blocking: a pool never waits on a reader. If the consumer has
    /// fallen a whole channel behind, the event is counted as dropped.
    pub(crate) fn send(&self, event: Event) {
        self.post(1, Envelope::Event(event));
    }

    /// Sends `events`, in order, as [`EventSender::send`] does: in envelopes of at most
    /// [`MAX_EVENTS`] each, so a commit's events cost one hand-over, not one each.
    pub(crate) fn send_all(&self, mut events: Vec<Event>) {
        if events.len() <= 1 {
            if let Some(event) = events.pop() {
                self.send(event);
            }
            return;
        }
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(MAX_EVENTS));
            self.post(events.len(), Envelope::Events(events));
            events = rest;
        }
    }

    /// Hands over an envelope of `n` events, or counts them dropped when the channel
    /// already holds its capacity of events.
    fn post(&self, n: usize, envelope: Envelope) {
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(envelope) {
            Ok(()) => {}
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn request(&self, envelope: Envelope) {
        // Requests may wait for room: they come from callers, not pools.
        let _ = self.tx.send(envelope);
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Starts the consumer thread; it ends when every sender is gone.
pub(crate) fn start(capacity: usize) -> (EventSender, thread::JoinHandle<()>) {
    // An envelope holds at least one event, so the channel never holds more
    // envelopes than `capacity`; requests wait for room there.
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let queued = Arc::new(AtomicUsize::new(0));
    let handle = thread::Builder::new()
        .name("usher-events".into())
        .spawn({
            let queued = queued.clone();
            move || consume(rx, &queued)
        })
        .expect("spawning the event consumer thread");
    let sender = EventSender {
        tx,
        queued,
        capacity,
        dropped: Default::default(),
    };
    (sender, handle)
}

/// Counts one event in the usage book and hands it to every subscriber.
fn pass_on(usage: &mut UsageBook, subscribers: &mut Vec<Sender<Event>>, event: Event) {
    usage.record(&event);
    // A subscriber that does not keep up loses events rather than stalling the others;
    // one that has gone away is forgotten.
    subscribers.retain(|s| {
        !matches!(
            s.try_send(event.clone()),
            Err(TrySendError::Disconnected(_))
        )
    });
}

fn consume(rx: Receiver<Envelope>, queued: &AtomicUsize) {
    let mut usage = UsageBook::default();
    let mut subscribers: Vec<Sender<Event>> = Vec::new();
    for envelope in rx {
        match envelope {
            Envelope::Event(event) => {
                pass_on(&mut usage, &mut subscribers, event);
                queued.fetch_sub(1, Ordering::Relaxed);
            }
            Envelope::Events(events) => {
                let n = events.len();
                for event in events {
                    pass_on(&mut usage, &mut subscribers, event);
                }
                queued.fetch_sub(n, Ordering::Relaxed);
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
