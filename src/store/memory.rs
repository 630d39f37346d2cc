//! The throwaway store: nothing survives the process. It keeps a bounded audit log in
//! memory so that the events route works the same in tests and benchmarks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use super::{
    cursor_of, parse_cursor, with_ids, AuditEvent, Batch, Done, EventPage, EventQuery, Loaded,
    Store,
};
use crate::error::Error;
use crate::ids::TenantId;

/// Events kept per tenant.
const AUDIT_PER_TENANT: usize = 10_000;

/// A store in memory only.
#[derive(Default)]
pub struct MemoryStore {
    audit: Mutex<(u64, HashMap<TenantId, VecDeque<AuditEvent>>)>,
    webhooks: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn submit(&self, batch: Batch, done: Done) {
        let deleted = batch
            .changes
            .iter()
            .any(|c| matches!(c, crate::pool::Change::Deleted { .. }));
        if deleted {
            // Deleting a tenant removes its data, its audit log too.
            let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
            audit.1.remove(&batch.tenant);
        } else if !batch.events.is_empty() {
            let mut audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
            let (seq, tenants) = &mut *audit;
            let log = tenants.entry(batch.tenant).or_default();
            for event in batch.events {
                *seq += 1;
                if log.len() == AUDIT_PER_TENANT {
                    log.pop_front();
                }
                log.push_back(AuditEvent {
                    id: String::new(),
                    seq: *seq,
                    event,
                });
            }
        }
        done(Ok(()));
    }

    fn load(&self) -> Result<Loaded, Error> {
        Ok(Loaded::default())
    }

    fn put_webhook_entry(&self, key: &str, value: Option<&[u8]>) -> Result<(), Error> {
        let mut webhooks = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        match value {
            Some(value) => webhooks.insert(key.to_owned(), value.to_vec()),
            None => webhooks.remove(key),
        };
        Ok(())
    }

    fn webhook_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let webhooks = self.webhooks.lock().unwrap_or_else(|e| e.into_inner());
        Ok(webhooks
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn events(&self, tenant: &TenantId, query: &EventQuery) -> Result<EventPage, Error> {
        let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let audit = self.audit.lock().unwrap_or_else(|e| e.into_inner());
        let mut events: Vec<AuditEvent> = audit
            .1
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|e| e.event.at >= query.since)
            .filter(|e| after.is_none_or(|(ms, seq)| (e.event.at.as_millis(), e.seq) > (ms, seq)))
            .take(query.limit + 1)
            .cloned()
            .collect();
        let more = events.len() > query.limit;
        events.truncate(query.limit);
        let next_cursor = if more {
            events.last().map(cursor_of)
        } else {
            None
        };
        Ok(EventPage {
            events: with_ids(events),
            next_cursor,
        })
    }
}
