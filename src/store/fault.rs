//! A store that misbehaves on command, so that every fault path is a deterministic
//! test: writes that fail (a full or broken disk), writes that stall (a frozen
//! filesystem), a queue with no room, and a submit that blocks its pool's thread.
//!
//! Batches it accepts go to a [`MemoryStore`], so the audit log works as usual.
//!
//! ```
//! use usher::store::FaultStore;
//!
//! let store = FaultStore::new();
//! store.stall(); // writes are held, not lost: `resume` makes them durable in order
//! assert_eq!(store.held(), 0);
//! store.resume();
//! ```

use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Batch, Done, EventPage, EventQuery, Loaded, MemoryStore, Store};
use crate::error::Error;
use crate::ids::TenantId;

/// How the store behaves for the next batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Healthy,
    Failing,
    Stalled,
    Blocking,
}

#[derive(Default)]
struct State {
    mode: Mode,
    full: bool,
    held: Vec<(Batch, Done)>,
    /// Batches submitted, in every mode.
    submitted: usize,
    /// Threads blocked in `submit`.
    blocked: usize,
    failure: Option<String>,
}

/// A store whose faults are switched on and off by the test that holds it.
#[derive(Default)]
pub struct FaultStore {
    inner: MemoryStore,
    state: Mutex<State>,
    unblocked: Condvar,
}

impl FaultStore {
    /// A healthy store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every later write fails, as on a disk that is full or gone.
    pub fn fail(&self) {
        self.lock().mode = Mode::Failing;
    }

    /// Later writes are held without an answer, as on a frozen filesystem.
    pub fn stall(&self) {
        self.lock().mode = Mode::Stalled;
    }

    /// Later submits block the submitting thread (a pool's) until [`FaultStore::resume`].
    pub fn block(&self) {
        self.lock().mode = Mode::Blocking;
    }

    /// Whether the queue has room; `false` makes pools refuse writes as overloaded.
    pub fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    /// Reports a failure that health checks see, as a deleted database would.
    pub fn set_failure(&self, failure: Option<&str>) {
        self.lock().failure = failure.map(String::from);
    }

    /// Healthy again: held batches become durable in the order they came, blocked
    /// submits go on.
    pub fn resume(&self) {
        // Held batches are written before any later one can be: submits wait on the
        // lock meanwhile, so each tenant's batches still complete in order.
        let mut state = self.lock();
        for (batch, done) in std::mem::take(&mut state.held) {
            self.inner.submit(batch, done);
        }
        state.mode = Mode::Healthy;
        drop(state);
        self.unblocked.notify_all();
    }

    /// Held batches fail, in the order they came, as when a frozen disk comes back
    /// broken. The store stays stalled.
    pub fn fail_held(&self) {
        let held = std::mem::take(&mut self.lock().held);
        for (_, done) in held {
            done(Err(Error::Internal("injected write failure".into())));
        }
    }

    /// Batches held by a stall.
    pub fn held(&self) -> usize {
        self.lock().held.len()
    }

    /// Batches submitted so far, whatever became of them.
    pub fn submitted(&self) -> usize {
        self.lock().submitted
    }

    /// Threads blocked in `submit` now.
    pub fn blocked(&self) -> usize {
        self.lock().blocked
    }
}

impl Store for FaultStore {
    fn submit(&self, batch: Batch, done: Done) {
        let mut state = self.lock();
        state.submitted += 1;
        if state.mode == Mode::Blocking {
            state.blocked += 1;
            while state.mode == Mode::Blocking {
                state = self
                    .unblocked
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            state.blocked -= 1;
        }
        match state.mode {
            Mode::Healthy | Mode::Blocking => {
                drop(state);
                self.inner.submit(batch, done);
            }
            Mode::Failing => {
                drop(state);
                done(Err(Error::Internal("injected write failure".into())));
            }
            Mode::Stalled => state.held.push((batch, done)),
        }
    }

    fn has_room(&self) -> bool {
        !self.lock().full
    }

    fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    fn load(&self) -> Result<Loaded, Error> {
        self.inner.load()
    }

    fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage, Error> {
        self.inner.events(tenant, query)
    }

    fn put_webhook_entry(&self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        if let Some(failure) = self.failure() {
            return Err(Error::Internal(format!("storage: {failure}")));
        }
        self.inner.put_webhook_entry(key, value)
    }

    fn webhook_entry(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.inner.webhook_entry(key)
    }

    fn webhook_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        self.inner.webhook_entries(prefix)
    }
}
