//! The registry: the maps every lookup goes through — tenant → pool, session → pool,
//! API key → pool, the ended sessions of deleted tenants — and the engine-wide state the
//! pools publish (totals, a store failure). Pools, the engine and the timer all reach
//! each other through it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;

use crate::actor::{PoolHandle, PoolMsg};
use crate::clock::Timestamp;
use crate::error::Error;
use crate::ids::{SessionId, SessionIdHash, TenantId};
use crate::pool::Tombstone;

/// The maps every lookup goes through.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) tenants: DashMap<TenantId, Arc<PoolHandle>>,
    /// Live and remembered sessions → their pool.
    pub(crate) sessions: DashMap<SessionId, Arc<PoolHandle>, SessionIdHash>,
    /// Ended sessions of deleted tenants, remembered for the retention like any other.
    pub(crate) orphans: DashMap<SessionId, Tombstone, SessionIdHash>,
    /// Tenant API key hashes → the pool incarnation they belong to.
    pub(crate) api_keys: DashMap<[u8; 32], Arc<PoolHandle>>,
    /// Set when the store failed to write a change: from then on nothing is
    /// acknowledged, since the pools' memory may hold what the store lost.
    pub(crate) store_failed: AtomicBool,
    /// Why, for health checks.
    pub(crate) failure: Mutex<Option<String>>,
    /// Live sessions in all pools, as last published by each pool.
    pub(crate) live_sessions: AtomicI64,
    /// Seats held in all pools, as last published by each pool.
    pub(crate) seats_in_use: AtomicI64,
    /// The fence high-water marks of deleted tenants: a tenant created again under
    /// the same id continues above them, since downstream resources may still hold
    /// the old incarnation's fences.
    pub(crate) fences: DashMap<TenantId, u64>,
}

impl Registry {
    /// Stops all acknowledgements: the store could not make a change durable.
    pub(crate) fn fail(&self, why: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            *failure = Some(why.to_string());
        }
        self.store_failed.store(true, Ordering::Release);
    }

    /// Remembers the fence high-water mark of a deleted tenant (never lowering it).
    pub(crate) fn remember_fence(&self, tenant: TenantId, high: u64) {
        let mut mark = self.fences.entry(tenant).or_default();
        *mark = (*mark).max(high);
    }

    /// The live incarnation of `tenant`, if any.
    pub(crate) fn live(&self, tenant: &TenantId) -> Option<Arc<PoolHandle>> {
        self.tenants
            .get(tenant)
            .map(|e| e.value().clone())
            .filter(|h| h.is_live())
    }
}

impl Registry {
    /// Drops ended sessions of deleted tenants once `keep_for` has passed.
    pub(crate) fn forget_orphans(&self, now: Timestamp, keep_for: Duration) {
        if !self.orphans.is_empty() {
            self.orphans.retain(|_, t| t.ended_at + keep_for > now);
        }
    }

    /// Answers 503 to whoever has waited the whole write deadline on a pool that was
    /// deleted (and so takes no more ticks of its own); its deletion may still land.
    pub(crate) fn time_out_deleted(&self, now: Timestamp, retry_after: Duration) {
        for entry in self.tenants.iter() {
            let handle = entry.value();
            if handle.is_live() || !handle.ledger.is_overdue(now) {
                continue;
            }
            for waiter in handle.ledger.time_out(now) {
                waiter.answer(Err(Error::Unavailable { retry_after }));
            }
        }
    }

    /// Live pools with something due at `now`.
    pub(crate) fn due_pools(&self, now: Timestamp) -> Vec<Arc<PoolHandle>> {
        self.tenants
            .iter()
            .filter(|e| e.value().is_live() && e.value().is_due(now))
            .map(|e| e.value().clone())
            .collect()
    }

    /// One timer tick: asks each pool with something due to expire it, without
    /// waiting. Returns how many pools were asked.
    pub(crate) fn tick(&self, now: Timestamp, keep_for: Duration, retry_after: Duration) -> usize {
        self.forget_orphans(now, keep_for);
        self.time_out_deleted(now, retry_after);
        let mut asked = 0;
        for entry in self.tenants.iter() {
            let handle = entry.value();
            // One tick in a pool's mailbox at a time; it gets in even when the mailbox
            // is full, since answers past their write deadline wait on it.
            if handle.is_due(now) && !handle.tick_queued.swap(true, Ordering::Relaxed) {
                handle.addr.do_send(PoolMsg::Tick { reply: None });
                asked += 1;
            }
        }
        asked
    }
}
