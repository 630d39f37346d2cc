//! The waitlist of SPEC §10 (`on_limit = "queue"`): a login at the limit gets a ticket
//! and a place in line; a freed seat is held for the head of the line for the
//! licence's claim window; while anyone waits, nobody outside the line takes a seat.
//!
//! [`Waitlist`] keeps the tickets and their order; the rules that move seats between
//! sessions and tickets are the `impl PoolState` below. A ticket is a credential like a
//! session token: the pool keeps its secret's hash only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Buried, EndedSessions, PoolState, Tombstone};
use crate::clock::Timestamp;
use crate::error::{EndReason, Error, Result};
use crate::events::EventKind;
use crate::ids::{SessionId, SessionIdHash, UserId};
use crate::licence::{LicenceModel, OnLimit, SeatPer};
use crate::token::SecretHash;

use super::{Admission, Change};

/// A login put in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The ticket's handle (its token is the caller's).
    pub ticket: SessionId,
    /// Its place in line: 1 is next.
    pub position: u32,
    /// When the ticket ends without a heartbeat.
    pub expires_at: Timestamp,
    /// The idle timeout in force.
    pub idle_timeout: Duration,
    /// How often to heartbeat the ticket.
    pub heartbeat_interval: Duration,
}

/// What a login came to: a session, or a place in the waitlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Admitted at once.
    Admitted(Admission),
    /// Put in line (`on_limit = "queue"` at the limit).
    Queued(Queued),
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketStatus {
    /// Its place in line (1 is next); 0 once a seat is held for it.
    pub position: u32,
    /// Until when a seat is held for it, once one is.
    pub claim_by: Option<Timestamp>,
    /// When the ticket ends without a heartbeat.
    pub expires_at: Timestamp,
}

/// A ticket as the queue list shows it: never the ticket itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct QueueEntry {
    /// Its place in line (1 is next); 0 once a seat is held for it.
    pub position: u32,
    /// The ticket's public id.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub ticket: SessionId,
    /// Whose.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub user: UserId,
    /// The client label given at login.
    pub client: Option<String>,
    /// When it joined the line.
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub queued_at: Timestamp,
    /// Until when a seat is held for it, once one is.
    #[cfg_attr(feature = "server", schema(value_type = Option<String>, format = DateTime))]
    pub claim_by: Option<Timestamp>,
}

/// A ticket as a store keeps it: the secret's hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// Handle.
    pub id: SessionId,
    /// Hash of the ticket's secret.
    pub secret: SecretHash,
    /// Whose.
    pub user: UserId,
    /// Client label.
    pub client: Option<String>,
    /// When it joined the line.
    pub queued_at: Timestamp,
    /// Its order in line: earlier tickets have smaller numbers.
    pub seq: u64,
}

/// A seat held for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ready {
    claim_by: Timestamp,
    /// Whether a seat is held for it; under a seat per user, a ticket whose user
    /// already holds a seat is ready without one (it will share the user's).
    holds: bool,
}

#[derive(Debug, Clone)]
struct Ticket {
    user: UserId,
    client: Option<Box<str>>,
    secret: SecretHash,
    queued_at: Timestamp,
    expires_at: Timestamp,
    seq: u64,
    ready: Option<Ready>,
}

impl Ticket {
    /// The moment it ends unless something happens: its idle deadline while it
    /// waits, the end of its claim window once a seat is held for it.
    fn deadline(&self) -> Timestamp {
        self.ready.map_or(self.expires_at, |r| r.claim_by)
    }
}

/// Counts of waiting tickets by their order number, so that a ticket's place in line
/// costs a logarithm of the line rather than a walk along it (a Fenwick tree over a
/// window of order numbers, rebuilt when the numbers outgrow it).
#[derive(Debug, Default)]
struct Ranks {
    base: u64,
    tree: Vec<u32>,
}

impl Ranks {
    fn add(&mut self, seq: u64, delta: i32) {
        let mut i = (seq - self.base) as usize + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] = self.tree[i - 1].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Waiting tickets with an order number below `seq`.
    fn below(&self, seq: u64) -> u32 {
        let mut i = ((seq - self.base) as usize).min(self.tree.len());
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i - 1];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    fn covers(&self, seq: u64) -> bool {
        seq >= self.base && seq - self.base < self.tree.len() as u64
    }

    /// Starts again from the waiting tickets' order numbers, with room for `next`.
    fn rebuild(&mut self, waiting: &BTreeMap<u64, SessionId>, next: u64) {
        self.base = waiting.keys().next().copied().unwrap_or(next);
        let span = (next - self.base + 1) as usize;
        let len = (span.max(waiting.len()) * 2).max(64).next_power_of_two();
        self.tree = vec![0; len];
        for &seq in waiting.keys() {
            self.add(seq, 1);
        }
    }
}

/// The tickets of one pool.
#[derive(Debug, Default)]
pub(super) struct Waitlist {
    tickets: HashMap<SessionId, Ticket, SessionIdHash>,
    /// Tickets not yet ready, by order number: the head is first.
    waiting: BTreeMap<u64, SessionId>,
    ranks: Ranks,
    /// Every ticket by its deadline ([`Ticket::deadline`]).
    deadlines: BTreeSet<(Timestamp, SessionId)>,
    /// Seats held for ready tickets.
    held: u32,
    next_seq: u64,
    /// Ended tickets, remembered so that their holders learn why.
    pub(super) ended: EndedSessions,
}

impl Waitlist {
    /// Seats held for tickets.
    pub(super) fn held(&self) -> u32 {
        self.held
    }

    /// Tickets waiting for a seat.
    pub(super) fn waiting(&self) -> u32 {
        self.waiting.len() as u32
    }

    /// Tickets, waiting or ready.
    pub(super) fn len(&self) -> u32 {
        self.tickets.len() as u32
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// The nearest ticket deadline.
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    fn position(&self, ticket: &Ticket) -> u32 {
        match ticket.ready {
            Some(_) => 0,
            None => self.ranks.below(ticket.seq) + 1,
        }
    }

    fn insert(&mut self, id: SessionId, ticket: Ticket) {
        self.next_seq = self.next_seq.max(ticket.seq + 1);
        self.deadlines.insert((ticket.deadline(), id));
        if ticket.ready.is_none() {
            self.wait(id, ticket.seq);
        }
        self.tickets.insert(id, ticket);
    }

    fn wait(&mut self, id: SessionId, seq: u64) {
        self.waiting.insert(seq, id);
        if !self.ranks.covers(seq) {
            let next = self.next_seq;
            self.ranks.rebuild(&self.waiting, next);
        } else {
            self.ranks.add(seq, 1);
        }
    }

    fn unwait(&mut self, seq: u64) {
        if self.waiting.remove(&seq).is_some() && self.ranks.covers(seq) {
            self.ranks.add(seq, -1);
        }
    }

    fn remove(&mut self, id: SessionId) -> Option<Ticket> {
        let ticket = self.tickets.remove(&id)?;
        self.deadlines.remove(&(ticket.deadline(), id));
        match ticket.ready {
            None => self.unwait(ticket.seq),
            Some(Ready { holds: true, .. }) => self.held -= 1,
            Some(_) => {}
        }
        Some(ticket)
    }

    /// Makes a waiting ticket ready.
    fn make_ready(&mut self, id: SessionId, claim_by: Timestamp, holds: bool) {
        let Some(ticket) = self.tickets.get_mut(&id) else {
            return;
        };
        self.deadlines.remove(&(ticket.deadline(), id));
        ticket.ready = Some(Ready { claim_by, holds });
        self.deadlines.insert((claim_by, id));
        let seq = ticket.seq;
        self.held += u32::from(holds);
        self.unwait(seq);
    }

    /// Puts a ready ticket back in line at its old place.
    fn unready(&mut self, id: SessionId) {
        let Some(ticket) = self.tickets.get_mut(&id) else {
            return;
        };
        let Some(ready) = ticket.ready.take() else {
            return;
        };
        self.deadlines.remove(&(ready.claim_by, id));
        self.deadlines.insert((ticket.expires_at, id));
        self.held -= u32::from(ready.holds);
        let seq = ticket.seq;
        self.wait(id, seq);
    }

    /// The session a claim made of the ended ticket `id`, to the holder of its secret.
    fn claimed(&self, id: SessionId, secret: &SecretHash) -> Option<SessionId> {
        let tombstone = self.ended.by_id.get(&id)?;
        let theirs = tombstone.reason == EndReason::Claimed && tombstone.secret.matches(secret);
        theirs.then_some(tombstone.session).flatten()
    }

    fn check(&self, id: SessionId, secret: &SecretHash) -> Result<&Ticket> {
        match self.tickets.get(&id) {
            Some(ticket) if ticket.secret.matches(secret) => Ok(ticket),
            _ => Err(match self.ended.by_id.get(&id) {
                Some(t) if t.secret.matches(secret) => Error::TicketEnded { reason: t.reason },
                _ => Error::TicketNotFound,
            }),
        }
    }
}

impl PoolState {
    /// Tickets in line, waiting or with a seat held for them.
    pub fn queued(&self) -> u32 {
        self.waitlist.len()
    }

    /// Seats held for tickets at the head of the line.
    pub fn held_for_queue(&self) -> u32 {
        self.waitlist.held()
    }

    /// Puts a login in line: `id` and `secret` become its ticket's.
    pub(super) fn enqueue(
        &mut self,
        user: &UserId,
        client: Option<&str>,
        id: SessionId,
        secret: SecretHash,
        now: Timestamp,
    ) -> Queued {
        let seq = self.waitlist.next_seq;
        let expires_at = now + self.licence.idle_timeout;
        let ticket = Ticket {
            user: user.clone(),
            client: client.map(Box::from),
            secret,
            queued_at: now,
            expires_at,
            seq,
            ready: None,
        };
        let position = self.waitlist.waiting() + 1;
        self.waitlist.insert(id, ticket);
        self.record(|| {
            Change::TicketQueued(TicketRecord {
                id,
                secret,
                user: user.clone(),
                client: client.map(String::from),
                queued_at: now,
                seq,
            })
        });
        self.emit(
            now,
            EventKind::Queued {
                user: user.clone(),
                ticket: id,
                position,
            },
        );
        // A line that is not blocked moves at once (a seat freed under a licence that
        // did not queue before, say).
        self.serve_queue(now);
        Queued {
            ticket: id,
            position: self
                .waitlist
                .tickets
                .get(&id)
                .map_or(0, |t| self.waitlist.position(t)),
            expires_at,
            idle_timeout: self.licence.idle_timeout,
            heartbeat_interval: self.licence.ticket_heartbeat_interval(),
        }
    }

    /// A ticket's heartbeat: it keeps its place for another idle timeout from `now`.
    pub fn ticket_heartbeat(
        &mut self,
        id: SessionId,
        secret: &SecretHash,
        now: Timestamp,
    ) -> Result<TicketStatus> {
        self.expire_due(now);
        self.waitlist.check(id, secret)?;
        let expires_at = now + self.licence.idle_timeout;
        let list = &mut self.waitlist;
        let ticket = list.tickets.get_mut(&id).expect("checked");
        if ticket.ready.is_none() {
            list.deadlines.remove(&(ticket.expires_at, id));
            list.deadlines.insert((expires_at, id));
        }
        ticket.expires_at = expires_at;
        let ticket = &list.tickets[&id];
        Ok(TicketStatus {
            position: list.position(ticket),
            claim_by: ticket.ready.map(|r| r.claim_by),
            expires_at,
        })
    }

    /// Turns a ready ticket into a session with the token `session` / `secret`, for
    /// the ticket's user (answered beside the admission).
    pub fn claim(
        &mut self,
        ticket: SessionId,
        ticket_secret: &SecretHash,
        session: SessionId,
        secret: SecretHash,
        now: Timestamp,
    ) -> Result<(Admission, UserId)> {
        self.expire_due(now);
        let found = self.waitlist.check(ticket, ticket_secret)?;
        let Some(ready) = found.ready else {
            return Err(Error::NotReady {
                position: self.waitlist.position(found),
            });
        };
        let user = found.user.clone();
        let client = found.client.clone();
        let live = self.users.get(&user).map_or(0, |a| a.live());
        if let Some(cap) = self.licence.policies.max_sessions_per_user {
            if live >= cap {
                return Err(Error::SessionLimitReached {
                    max_sessions_per_user: cap,
                });
            }
        }
        if !ready.holds && !self.shares_a_seat(&user) {
            // Ready to share its user's seat, which has gone meanwhile: back in line
            // at its place, unless a seat is free for it right now.
            let free = self
                .licence
                .limit()
                .is_some_and(|limit| self.seats_in_use() + self.waitlist.held() < limit);
            if !free {
                self.waitlist.unready(ticket);
                self.serve_queue(now);
                // Back in line past its idle deadline, the line ended it: it says why.
                let found = self.waitlist.check(ticket, ticket_secret)?;
                let position = self.waitlist.position(found);
                if position > 0 {
                    return Err(Error::NotReady { position });
                }
                // The line moved it straight back to the head with a seat.
            }
        }
        // Its seat becomes the session's: not passed on in between.
        self.close_ticket(ticket, EndReason::Claimed, Some(session), now);
        let admission = self.admit(&user, client.as_deref(), session, secret, live, now);
        self.serve_queue(now);
        Ok((admission, user))
    }

    /// The ticket's holder leaves the line. Left once claimed, the session the claim
    /// started is released while it lives: the page went away with the claim's
    /// answer on its way, and nobody else holds that session's token.
    pub fn cancel_ticket(
        &mut self,
        id: SessionId,
        secret: &SecretHash,
        now: Timestamp,
    ) -> Result<()> {
        self.expire_due(now);
        if let Err(error) = self.waitlist.check(id, secret) {
            let claimed = self.waitlist.claimed(id, secret);
            let Some(session) = claimed.filter(|s| self.sessions.contains_key(s)) else {
                return Err(error);
            };
            self.end_session(session, EndReason::Released, now);
            return Ok(());
        }
        self.end_ticket(id, EndReason::Cancelled, now);
        Ok(())
    }

    /// The line, head first: ready tickets, then the waiting ones in order.
    pub fn queue_entries(&self) -> Vec<QueueEntry> {
        let list = &self.waitlist;
        let mut entries: Vec<(u32, u64, SessionId)> = list
            .tickets
            .iter()
            .map(|(&id, t)| (list.position(t), t.seq, id))
            .collect();
        entries.sort_unstable();
        entries
            .into_iter()
            .map(|(position, _, id)| {
                let t = &list.tickets[&id];
                QueueEntry {
                    position,
                    ticket: id,
                    user: t.user.clone(),
                    client: t.client.as_deref().map(String::from),
                    queued_at: t.queued_at,
                    claim_by: t.ready.map(|r| r.claim_by),
                }
            })
            .collect()
    }

    /// Whether `user` holds a seat that one more tab of theirs would share.
    fn shares_a_seat(&self, user: &UserId) -> bool {
        matches!(
            self.licence.model,
            LicenceModel::Concurrent {
                seat_per: SeatPer::User,
                ..
            }
        ) && self.users.get(user).is_some_and(|a| a.live() > 0)
    }

    /// Holds free seats for the head of the line, in order, for the claim window.
    /// While the head cannot have a seat, nobody behind it gets one.
    pub(super) fn serve_queue(&mut self, now: Timestamp) {
        if self.waitlist.waiting.is_empty() {
            return;
        }
        let Some(limit) = self.licence.limit() else {
            return;
        };
        let claim_by = now + self.licence.policies.queue_claim;
        while let Some((_, &id)) = self.waitlist.waiting.first_key_value() {
            let ticket = &self.waitlist.tickets[&id];
            if ticket.expires_at < now {
                // Idle past its deadline, though not yet expired by the sweep that is
                // serving the line: it gets no seat.
                self.close_ticket(id, EndReason::Expired, None, now);
                continue;
            }
            let user = ticket.user.clone();
            let holds = if self.shares_a_seat(&user) {
                false
            } else if self.seats_in_use() + self.waitlist.held() < limit {
                true
            } else {
                break;
            };
            self.waitlist.make_ready(id, claim_by, holds);
            self.emit(
                now,
                EventKind::TicketReady {
                    user,
                    ticket: id,
                    claim_by,
                },
            );
        }
    }

    /// Ends one ticket: it leaves the line, and a seat held for it passes on.
    pub(super) fn end_ticket(&mut self, id: SessionId, reason: EndReason, now: Timestamp) {
        if self.close_ticket(id, reason, None, now) {
            self.serve_queue(now);
        }
    }

    /// Ends one ticket, leaving a seat held for it unserved; whether it held one.
    /// `session` is the session a claim made of it.
    fn close_ticket(
        &mut self,
        id: SessionId,
        reason: EndReason,
        session: Option<SessionId>,
        now: Timestamp,
    ) -> bool {
        let Some(ticket) = self.waitlist.remove(id) else {
            return false;
        };
        let held = ticket.ready.is_some_and(|r| r.holds);
        let tombstone = Tombstone {
            secret: ticket.secret,
            reason,
            ended_at: now,
            session,
        };
        self.bury(Buried::Tickets, id, tombstone);
        self.emit(
            now,
            EventKind::TicketEnded {
                user: ticket.user,
                ticket: id,
                reason,
                waited_ms: now.saturating_since(ticket.queued_at).as_millis() as u64,
            },
        );
        held
    }

    /// Takes back a ticket whose queued login was never acknowledged: it goes without
    /// a tombstone, and a seat held for it passes on. Whether `id` was a ticket.
    pub(super) fn withdraw_ticket(&mut self, id: SessionId, now: Timestamp) -> bool {
        let Some(ticket) = self.waitlist.remove(id) else {
            return false;
        };
        self.forgotten.push(id);
        self.record(|| Change::TicketForgotten {
            id,
            secret: ticket.secret,
        });
        if ticket.ready.is_some_and(|r| r.holds) {
            self.serve_queue(now);
        }
        true
    }

    /// Ends the tickets due by `now` (idle: `expired`; a claim window run out:
    /// `claim_missed`).
    pub(super) fn expire_tickets(&mut self, now: Timestamp) {
        while let Some(&(deadline, id)) = self.waitlist.deadlines.first() {
            if deadline >= now {
                break;
            }
            let ready = self.waitlist.tickets.get(&id).and_then(|t| t.ready);
            let reason = match ready {
                Some(r) if r.claim_by == deadline => EndReason::ClaimMissed,
                _ => EndReason::Expired,
            };
            self.end_ticket(id, reason, now);
        }
    }

    /// The next moment a ticket or an ended ticket is due.
    pub(super) fn next_ticket_due(&self) -> Option<Timestamp> {
        let ticket = self
            .waitlist
            .next_deadline()
            .map(|at| at + Duration::from_millis(1));
        let tombstone = self
            .waitlist
            .ended
            .order
            .front()
            .map(|&(ended_at, _)| ended_at + self.retention.ended_for);
        ticket.into_iter().chain(tombstone).min()
    }

    /// Ends every ticket of `user` (every ticket, without one), in line order.
    pub(super) fn end_tickets(&mut self, user: Option<&UserId>, reason: EndReason, now: Timestamp) {
        let mut ids: Vec<(u64, SessionId)> = self
            .waitlist
            .tickets
            .iter()
            .filter(|(_, t)| user.is_none_or(|user| &t.user == user))
            .map(|(&id, t)| (t.seq, id))
            .collect();
        ids.sort_unstable();
        for (_, id) in ids {
            self.end_ticket(id, reason, now);
        }
    }

    /// Whether a licence keeps a line: a concurrent one that queues, or one whose
    /// line is still being served after it stopped queueing.
    pub(super) fn keeps_a_line(&self) -> bool {
        matches!(self.licence.model, LicenceModel::Concurrent { .. })
            && (self.licence.policies.on_limit == OnLimit::Queue || !self.waitlist.is_empty())
    }

    /// The tickets as plain data, in line order, and the ended ones, oldest first.
    pub(super) fn ticket_records(&self) -> (Vec<TicketRecord>, Vec<(SessionId, Tombstone)>) {
        let mut live: Vec<TicketRecord> = self
            .waitlist
            .tickets
            .iter()
            .map(|(&id, t)| TicketRecord {
                id,
                secret: t.secret,
                user: t.user.clone(),
                client: t.client.as_deref().map(String::from),
                queued_at: t.queued_at,
                seq: t.seq,
            })
            .collect();
        live.sort_by_key(|t| t.seq);
        let ended = self
            .waitlist
            .ended
            .order
            .iter()
            .filter_map(|(_, id)| self.waitlist.ended.by_id.get(id).map(|t| (*id, *t)))
            .collect();
        (live, ended)
    }

    /// Brings back tickets after a restart: each waits at its place with a full idle
    /// window, and the seats free now are held for the head of the line again.
    pub(super) fn restore_tickets(
        &mut self,
        tickets: Vec<TicketRecord>,
        ended: Vec<(SessionId, Tombstone)>,
        now: Timestamp,
    ) {
        let expires_at = now + self.licence.idle_timeout;
        for record in tickets {
            self.waitlist.insert(
                record.id,
                Ticket {
                    user: record.user,
                    client: record.client.map(Box::from),
                    secret: record.secret,
                    queued_at: record.queued_at,
                    expires_at,
                    seq: record.seq,
                    ready: None,
                },
            );
        }
        let mut ended = ended;
        ended.sort_by_key(|(_, t)| t.ended_at);
        for (id, tombstone) in ended {
            self.waitlist
                .ended
                .order
                .push_back((tombstone.ended_at, id));
            self.waitlist.ended.by_id.insert(id, tombstone);
        }
        self.serve_queue(now);
    }

    /// Checks the waitlist's indexes and counts against its tickets.
    pub(super) fn check_waitlist(&self) -> std::result::Result<(), String> {
        let list = &self.waitlist;
        let held = list
            .tickets
            .values()
            .filter(|t| t.ready.is_some_and(|r| r.holds))
            .count() as u32;
        if held != list.held {
            return Err(format!("{held} tickets hold seats, counted {}", list.held));
        }
        let waiting: BTreeMap<u64, SessionId> = list
            .tickets
            .iter()
            .filter(|(_, t)| t.ready.is_none())
            .map(|(&id, t)| (t.seq, id))
            .collect();
        if waiting != list.waiting {
            return Err("the line does not match the waiting tickets".into());
        }
        for (n, &seq) in list.waiting.keys().enumerate() {
            if list.ranks.below(seq) != n as u32 {
                return Err(format!(
                    "the ticket {n} in line counts {} ahead",
                    list.ranks.below(seq)
                ));
            }
        }
        let deadlines: BTreeSet<(Timestamp, SessionId)> = list
            .tickets
            .iter()
            .map(|(&id, t)| (t.deadline(), id))
            .collect();
        if deadlines != list.deadlines {
            return Err("the ticket deadlines do not match the tickets".into());
        }
        if let Some(limit) = self.licence.limit() {
            if !list.waiting.is_empty()
                && self.seats_in_use() + list.held < limit
                && !list.tickets.is_empty()
            {
                return Err(format!(
                    "{} tickets wait while {} of {limit} seats are taken or held",
                    list.waiting.len(),
                    self.seats_in_use() + list.held
                ));
            }
        }
        for t in list.tickets.values() {
            if !self.users.contains_key(&t.user) {
                return Err(format!("a ticket of {} has no account", t.user));
            }
        }
        Ok(())
    }
}
