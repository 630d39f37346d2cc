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
    /// Events in their order: what one commit caused.
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
    /// Sends `events`, in order, without blocking: a pool never waits on a reader. They
    /// go in envelopes of at most [`MAX_EVENTS`] each, so a commit's events cost one
    /// hand-over, not one each. Events past the channel's capacity (the consumer has
    /// fallen a whole channel behind) are counted as dropped.
    pub(crate) fn send_all(&self, mut events: Vec<Event>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::events::EventKind;

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|_| Event {
                tenant: TenantId::parse("crm").unwrap(),
                at: Timestamp::from_millis(0),
                kind: EventKind::TenantDeleted,
            })
            .collect()
    }

    /// A sender of `capacity` events whose consumer reads nothing.
    fn stalled(capacity: usize) -> (EventSender, Receiver<Envelope>) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let sender = EventSender {
            tx,
            queued: Default::default(),
            capacity,
            dropped: Default::default(),
        };
        (sender, rx)
    }

    #[test]
    fn the_bound_counts_events_however_they_are_packed() {
        let (sender, rx) = stalled(100);
        sender.send_all(events(90));
        assert_eq!((rx.len(), sender.dropped()), (2, 0), "64 + 26 events");
        // Two envelopes are queued, but 90 events: 11 more do not fit, 10 do.
        sender.send_all(events(11));
        assert_eq!(sender.dropped(), 11);
        sender.send_all(events(9));
        sender.send_all(events(1));
        assert_eq!((rx.len(), sender.dropped()), (4, 11));
        sender.send_all(events(1));
        assert_eq!(sender.dropped(), 12);
    }

    #[test]
    fn events_passed_on_make_room_again() {
        let (sender, handle) = start(10);
        let seen = {
            let (tx, rx) = crossbeam_channel::unbounded();
            sender.request(Envelope::Subscribe(tx));
            rx
        };
        for _ in 0..50 {
            sender.send_all(events(10));
            for _ in 0..10 {
                seen.recv().unwrap();
            }
            // The consumer counts an envelope's events out after passing them on.
            for _ in 0..10_000_000 {
                if sender.queued.load(Ordering::Relaxed) == 0 {
                    break;
                }
                std::thread::yield_now();
            }
            assert_eq!(sender.queued.load(Ordering::Relaxed), 0);
        }
        assert_eq!(sender.dropped(), 0);
        drop(sender);
        handle.join().unwrap();
    }
}
