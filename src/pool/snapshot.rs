//! A pool as plain data: the [`PoolSnapshot`] a store persists and a restart restores,
//! and the [`Change`]s a running pool leaves for the store between snapshots.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use thin_vec::ThinVec;

use super::{
    Account, EndedSessions, PoolState, Records, Retention, Session, TicketRecord, Tombstone,
};
use crate::clock::Timestamp;
use crate::ids::{GroupId, SessionId, TenantId, UserId};
use crate::licence::Licence;
use crate::token::SecretHash;

/// A pool as plain data, for a store to persist and restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// The tenant.
    pub tenant: TenantId,
    /// Its licence.
    pub licence: Licence,
    /// Accounts: `(user, assigned)`.
    pub users: Vec<(UserId, bool)>,
    /// Live sessions.
    pub sessions: Vec<SessionRecord>,
    /// Remembered ended sessions.
    pub ended: Vec<(SessionId, Tombstone)>,
    /// The groups of the accounts that belong to any.
    #[serde(default)]
    pub groups: Vec<(UserId, Vec<GroupId>)>,
    /// The record count and peaks.
    pub records: Records,
    /// The hash of the tenant's API key, if it has one.
    #[serde(default)]
    pub api_key: Option<[u8; 32]>,
    /// The fence high-water mark: the largest fence the tenant has handed out (or at
    /// least that), so the next admission after a restore takes a larger one.
    #[serde(default)]
    pub fence: u64,
    /// Waitlist tickets, in line order.
    #[serde(default)]
    pub tickets: Vec<TicketRecord>,
    /// Remembered ended tickets.
    #[serde(default)]
    pub ended_tickets: Vec<(SessionId, Tombstone)>,
    /// Seats kept under the reload grace: how many for each user.
    #[serde(default)]
    pub kept: Vec<(UserId, u32)>,
}

/// A live session as a store keeps it: the secret's hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Handle.
    pub id: SessionId,
    /// Hash of the token's secret.
    pub secret: SecretHash,
    /// Whose.
    pub user: UserId,
    /// Client label.
    pub client: Option<String>,
    /// Login time.
    pub started_at: Timestamp,
    /// Last heartbeat.
    pub last_heartbeat_at: Timestamp,
    /// Its fencing token.
    #[serde(default)]
    pub fence: u64,
}

/// A change to a pool's durable state: what a store must write so that a restart
/// finds the pool as it was. Heartbeats are not changes (a restart gives every session
/// a full idle window instead).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The tenant was created with, or changed to, this licence.
    Licence(Licence),
    /// A user account was created or assigned a named seat.
    User {
        /// Who.
        user: UserId,
        /// Holds a named seat.
        assigned: bool,
    },
    /// A user's groups were replaced.
    Groups {
        /// Who.
        user: UserId,
        /// The groups now, sorted (none: no group).
        groups: Vec<GroupId>,
    },
    /// A user account was removed.
    UserRemoved(UserId),
    /// The number of seats kept for a user under the reload grace changed.
    Kept {
        /// Whose.
        user: UserId,
        /// How many are kept now (none: the row goes).
        seats: u32,
    },
    /// A session was admitted.
    SessionStarted(SessionRecord),
    /// A session ended and is remembered.
    SessionEnded {
        /// Which.
        id: SessionId,
        /// Why and when, with the secret's hash.
        tombstone: Tombstone,
    },
    /// An ended session is no longer remembered.
    SessionForgotten {
        /// Which.
        id: SessionId,
        /// Its secret's hash (the store's key).
        secret: SecretHash,
    },
    /// The record count and its peaks.
    Records(Records),
    /// The tenant's API key hash: it replaces any earlier key.
    ApiKey([u8; 32]),
    /// A login that was never acknowledged is taken back: its session is gone without
    /// a trace, since nobody holds its token.
    SessionWithdrawn {
        /// Which.
        id: SessionId,
        /// Its secret's hash (the store's key).
        secret: SecretHash,
    },
    /// A login joined the waitlist.
    TicketQueued(TicketRecord),
    /// A ticket left the line and is remembered.
    TicketEnded {
        /// Which.
        id: SessionId,
        /// Why and when, with the secret's hash.
        tombstone: Tombstone,
    },
    /// An ended ticket is no longer remembered.
    TicketForgotten {
        /// Which.
        id: SessionId,
        /// Its secret's hash (the store's key).
        secret: SecretHash,
    },
    /// The tenant was deleted with everything in it. Its sessions, live or ended, are
    /// remembered apart for the retention, so their holders learn why they ended.
    Deleted {
        /// Every session of the tenant, ended.
        orphans: Vec<(SessionId, Tombstone)>,
    },
}

impl PoolState {
    /// Starts keeping [`Change`]s for a store, beginning with the whole licence (so a
    /// new tenant is written with the first batch).
    pub fn record_changes(&mut self) {
        self.changes = Some(vec![Change::Licence(self.licence.clone())]);
    }

    /// Changes since the last call, oldest first (none unless recording).
    pub fn take_changes(&mut self) -> Vec<Change> {
        match &mut self.changes {
            Some(changes) => std::mem::take(changes),
            None => Vec::new(),
        }
    }

    pub(super) fn record(&mut self, change: impl FnOnce() -> Change) {
        if let Some(changes) = &mut self.changes {
            changes.push(change());
        }
    }

    /// The pool as plain data.
    pub fn snapshot(&self) -> PoolSnapshot {
        let (tickets, ended_tickets) = self.ticket_records();
        PoolSnapshot {
            tenant: self.tenant.clone(),
            licence: self.licence.clone(),
            users: self
                .user_order
                .iter()
                .map(|u| (u.clone(), self.users[u].assigned))
                .collect(),
            sessions: self
                .by_start
                .iter()
                .map(|&(_, id)| (id, &self.sessions[&id]))
                .map(|(id, s)| SessionRecord {
                    id,
                    secret: s.secret,
                    user: s.user.clone(),
                    client: s.client.as_deref().map(String::from),
                    started_at: s.started_at,
                    last_heartbeat_at: s.last_heartbeat_at,
                    fence: s.fence,
                })
                .collect(),
            ended: self
                .ended
                .order
                .iter()
                .filter_map(|(_, id)| self.ended.by_id.get(id).map(|t| (*id, *t)))
                .collect(),
            groups: self
                .user_order
                .iter()
                .filter(|u| !self.users[*u].groups.is_empty())
                .map(|u| (u.clone(), self.users[u].groups.to_vec()))
                .collect(),
            records: self.records,
            api_key: self.api_key,
            fence: self.fence,
            tickets,
            ended_tickets,
            kept: self
                .graces
                .by_user()
                .map(|(user, seats)| (user.clone(), seats))
                .collect(),
        }
    }

    /// Rebuilds a pool from a snapshot after a restart. Every restored session gets a
    /// full idle window from `now` to resume its heartbeats, and counts against seats;
    /// every seat kept under the reload grace a full grace, for the reload the restart
    /// held up.
    pub fn restore(snapshot: PoolSnapshot, retention: Retention, now: Timestamp) -> Self {
        let mut pool = PoolState {
            tenant: snapshot.tenant,
            licence: snapshot.licence,
            retention,
            users: HashMap::new(),
            user_order: BTreeSet::new(),
            sessions: HashMap::default(),
            deadlines: BTreeSet::new(),
            by_start: BTreeSet::new(),
            active_users: 0,
            assigned: 0,
            group_seats: HashMap::new(),
            graces: Default::default(),
            waitlist: Default::default(),
            ended: EndedSessions::default(),
            records: snapshot.records,
            api_key: snapshot.api_key,
            fence: snapshot.fence,
            events: Vec::new(),
            forgotten: Vec::new(),
            changes: None,
        };
        for (user, assigned) in snapshot.users {
            pool.assigned += u32::from(assigned);
            pool.users.insert(
                user,
                Account {
                    assigned,
                    sessions: SmallVec::new(),
                    groups: ThinVec::new(),
                },
            );
        }
        let expires_at = now + pool.licence.idle_timeout;
        // In login order, as a running pool keeps each user's sessions.
        let mut sessions = snapshot.sessions;
        sessions.sort_by_key(|s| (s.started_at, s.id));
        for record in sessions {
            pool.fence = pool.fence.max(record.fence);
            let account = pool.users.entry(record.user.clone()).or_default();
            account.sessions.push(record.id);
            if account.sessions.len() == 1 {
                pool.active_users += 1;
            }
            pool.deadlines.insert((expires_at, record.id));
            pool.by_start.insert((record.started_at, record.id));
            pool.sessions.insert(
                record.id,
                Session {
                    user: record.user,
                    client: record.client.map(Box::from),
                    secret: record.secret,
                    started_at: record.started_at,
                    last_heartbeat_at: record.last_heartbeat_at,
                    expires_at,
                    fence: record.fence,
                },
            );
        }
        for (user, groups) in snapshot.groups {
            if let Some(account) = pool.users.get_mut(&user) {
                account.groups = groups.into_iter().collect();
            }
        }
        if pool.licence.keeps_seats() {
            let until = now + pool.licence.policies.reload_grace;
            for (user, seats) in snapshot.kept {
                if pool.users.contains_key(&user) {
                    for _ in 0..seats {
                        pool.graces.keep(&user, until);
                    }
                }
            }
        }
        pool.recount_group_seats();
        pool.user_order = pool.users.keys().cloned().collect();
        for (id, tombstone) in snapshot.ended {
            pool.ended.order.push_back((tombstone.ended_at, id));
            pool.ended.by_id.insert(id, tombstone);
        }
        pool.restore_tickets(snapshot.tickets, snapshot.ended_tickets, now);
        pool
    }
}
