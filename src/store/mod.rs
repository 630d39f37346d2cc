//! The storage seam: what a store must keep so that nothing acknowledged is lost.
//!
//! Pools describe their durable changes as [`Change`]s; the actor shell hands them,
//! with the events they caused, to a [`Store`] and answers the caller only once the
//! store says they are durable. One file per backend:
//! - [`memory`] — nothing survives the process; an in-memory audit log.
//! - `redb` — the embedded, crash-safe default of `usher serve`, with group commit
//!   (feature `redb`).
//! - [`fault`] — a store that fails, stalls, fills or blocks on command, for tests.

pub mod fault;
pub mod memory;
#[cfg(feature = "redb")]
pub mod redb;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::events::Event;
use crate::ids::SessionId;
use crate::ids::TenantId;
use crate::pool::{Change, PoolSnapshot, Tombstone};
use crate::usage::StoredDay;

pub use fault::FaultStore;
pub use memory::MemoryStore;
#[cfg(feature = "redb")]
pub use redb::RedbStore;

/// Called once a batch is durable (or could not be made so).
pub type Done = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// One pool's changes from one operation, and the events it caused.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Whose.
    pub tenant: TenantId,
    /// What to write.
    pub changes: Vec<Change>,
    /// What to add to the audit log.
    pub events: Vec<Event>,
}

/// Everything a store gives back at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every tenant's pool.
    pub pools: Vec<PoolSnapshot>,
    /// Usage per tenant and day, oldest first.
    pub usage: Vec<(TenantId, StoredDay)>,
    /// Remembered sessions of deleted tenants, so their holders still learn why.
    pub orphans: Vec<(SessionId, Tombstone)>,
    /// The fence high-water mark of every tenant id that ever admitted a session,
    /// deleted tenants included: a tenant created again continues above it.
    pub fences: Vec<(TenantId, u64)>,
}

/// A page of the audit log.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Events at or after this moment.
    pub since: Timestamp,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// An event as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// This event's place in its tenant's log: pass it as `cursor` (or an event
    /// stream's `Last-Event-ID`) to continue after it.
    #[serde(default)]
    pub id: String,
    /// Order of writing.
    pub seq: u64,
    /// The event: `tenant`, `at`, `type` and its fields.
    #[serde(flatten)]
    #[cfg_attr(feature = "server", schema(value_type = Object))]
    pub event: Event,
}

/// `{"events": [...], "next_cursor": ...}`, oldest first.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// The events, newest last.
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where pools' durable state goes.
pub trait Store: Send + Sync + 'static {
    /// Makes `batch` durable, then calls `done`. Must not block the caller on I/O:
    /// pools call it. One tenant's batches complete in the order they were submitted.
    /// A batch is always taken, whatever the queue holds: pools ask [`Store::has_room`]
    /// first, before they change anything.
    fn submit(&self, batch: Batch, done: Done);

    /// Whether the store's queue has room for another batch. A pool asks before an
    /// operation that writes, and refuses it as overloaded — changing nothing — when
    /// there is none. Pools on several threads may ask at once, so the queue may pass
    /// its bound by at most one batch per pool thread.
    fn has_room(&self) -> bool {
        true
    }

    /// Why the store can no longer make writes durable, once it knows (for example
    /// its database file was deleted); health checks report it.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Reads everything back, at start-up.
    fn load(&self) -> Result<Loaded, Error>;

    /// A page of a tenant's audit log.
    fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage, Error>;

    /// Writes (or, with `None`, removes) one webhook entry — a registration or its
    /// delivery state — and returns once that is durable. It may block on I/O: callers
    /// run it off the async threads. A store that keeps none says so.
    fn put_webhook_entry(&self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        let _ = (key, value);
        Err(Error::Internal("this store keeps no webhooks".into()))
    }

    /// The webhook entry under `key`, if any.
    fn webhook_entry(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .webhook_entries(key)?
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v)))
    }

    /// Every webhook entry whose key starts with `prefix`, in key order.
    fn webhook_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let _ = prefix;
        Ok(Vec::new())
    }
}

/// Writes `batch` and waits until it is durable.
pub async fn commit(store: &dyn Store, batch: Batch) -> Result<(), Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit(
        batch,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    rx.await
        .unwrap_or_else(|_| Err(Error::Internal("the store stopped".into())))
}

/// A cursor is `<millis>-<seq>` of the last event of a page.
pub(crate) fn parse_cursor(cursor: &str) -> Result<(u64, u64), Error> {
    cursor
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| {
            Error::InvalidRequest("cursor must be the next_cursor of a previous page".into())
        })
}

pub(crate) fn cursor_of(event: &AuditEvent) -> String {
    format!("{}-{}", event.event.at.as_millis(), event.seq)
}

/// Gives each event of a page read from a store its `id`, the cursor after it.
pub(crate) fn with_ids(mut events: Vec<AuditEvent>) -> Vec<AuditEvent> {
    for event in &mut events {
        event.id = cursor_of(event);
    }
    events
}
