//! The rules of one tenant's licence pool: a plain struct whose methods take `now`.
//!
//! [`PoolState`] knows nothing of actors, threads or clocks. Each operation first
//! expires what is due, then applies the admission rules of [`crate::admission`], and
//! leaves behind the events it caused ([`PoolState::take_events`]) and the session ids
//! it has stopped remembering ([`PoolState::take_forgotten`]).
//!
//! Every admitted login takes the tenant's next fencing token (SPEC §8): one more than
//! the pool's high-water mark, which snapshots carry across restarts.
//!
//! The rules live here; the rest is split by concern: `waitlist` (the line of SPEC §10:
//! tickets, seats held for the head, claims), `graces` (seats kept under the reload
//! grace), `preview` (what a licence change would do), `records` (the record count and
//! its billing peaks), `views` (what the pool shows: views, pages, cursors) and
//! `snapshot` (the pool as plain data, and the changes a store writes between
//! snapshots). Their types are all re-exported here.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use thin_vec::ThinVec;

use crate::admission::{
    decide_assign, decide_login, AssignFacts, LoginDecision, LoginFacts, Standing,
};
use crate::clock::Timestamp;
use crate::error::{EndReason, Error, Result};
use crate::events::{Event, EventKind};
use crate::ids::{GroupId, SessionId, SessionIdHash, TenantId, UserId};
use crate::licence::{Licence, LicenceModel, SeatPer, MAX_GROUPS};
use crate::token::SecretHash;

mod graces;
mod preview;
mod records;
mod snapshot;
mod views;
mod waitlist;

pub use preview::{preview, takes_named_seats, Holdings, LicenceEffects, LicencePreview, Member};
pub use records::Records;
pub use snapshot::{Change, PoolSnapshot, SessionRecord};
pub(crate) use views::check_page_limit;
use views::user_view;
pub use views::{Page, RecordsView, SessionCursor, SessionView, TenantView, UserView};
pub use waitlist::{Entry, QueueEntry, Queued, TicketRecord, TicketStatus};

/// How long, and how many, ended sessions a pool remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Ended sessions are remembered at least this long (unless `capacity` is reached).
    pub ended_for: Duration,
    /// At most this many ended sessions per pool; past it the oldest are forgotten.
    pub capacity: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ended_for: Duration::from_secs(3600),
            capacity: 100_000,
        }
    }
}

/// A user account.
#[derive(Debug, Clone, Default)]
struct Account {
    assigned: bool,
    /// The user's live sessions, so that ending them (logout, removal) touches only
    /// theirs. Most users have a tab or two: those are kept inline.
    sessions: SmallVec<[SessionId; 2]>,
    /// The groups the user belongs to, sorted, without repeats: one pointer, and no
    /// allocation for a user of no group.
    groups: ThinVec<GroupId>,
}

// An account is kept per user of every tenant: its size is the memory per user.
const _: () = assert!(std::mem::size_of::<Account>() <= 40);

impl Account {
    fn live(&self) -> u32 {
        self.sessions.len() as u32
    }

    /// The seats the user holds under a seat rule: one for any number of tabs, or one
    /// per tab.
    fn seats(&self, seat_per: SeatPer) -> u32 {
        seats_of(seat_per, self.live())
    }
}

/// The seats a user with `sessions` live sessions holds under a seat rule.
pub(crate) fn seats_of(seat_per: SeatPer, sessions: u32) -> u32 {
    match seat_per {
        SeatPer::User => u32::from(sessions > 0),
        SeatPer::Session => sessions,
    }
}

/// A live session as the pool keeps it.
#[derive(Debug, Clone)]
struct Session {
    user: UserId,
    client: Option<Box<str>>,
    secret: SecretHash,
    started_at: Timestamp,
    last_heartbeat_at: Timestamp,
    expires_at: Timestamp,
    fence: u64,
}

/// An ended session, remembered so that its holder learns why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Hash of the session's secret: only its holder is told.
    pub secret: SecretHash,
    /// Why it ended.
    pub reason: EndReason,
    /// When.
    pub ended_at: Timestamp,
    /// The session a claimed ticket became: released if the ticket's holder leaves
    /// after all, since the claim's answer, the only holder of its token, went with
    /// the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
}

/// Whose tombstones: the sessions' or the waitlist tickets'.
#[derive(Debug, Clone, Copy)]
enum Buried {
    Sessions,
    Tickets,
}

impl Buried {
    fn ended(self, id: SessionId, tombstone: Tombstone) -> Change {
        match self {
            Buried::Sessions => Change::SessionEnded { id, tombstone },
            Buried::Tickets => Change::TicketEnded { id, tombstone },
        }
    }

    fn forgotten(self, id: SessionId, secret: SecretHash) -> Change {
        match self {
            Buried::Sessions => Change::SessionForgotten { id, secret },
            Buried::Tickets => Change::TicketForgotten { id, secret },
        }
    }
}

#[derive(Debug, Default)]
struct EndedSessions {
    by_id: HashMap<SessionId, Tombstone, SessionIdHash>,
    /// Oldest first, with the end time beside the id so that finding what is due to be
    /// forgotten reads the front of this queue and nothing else.
    order: VecDeque<(Timestamp, SessionId)>,
}

/// An admitted login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The session's handle.
    pub session: SessionId,
    /// When it expires without a heartbeat.
    pub expires_at: Timestamp,
    /// The idle timeout in force.
    pub idle_timeout: Duration,
    /// How often the client should heartbeat.
    pub heartbeat_interval: Duration,
    /// The session's fencing token: larger than that of every session admitted before
    /// it in the tenant. A backend passes it to downstream resources, which refuse
    /// writes carrying a fence older than the newest they have seen from the seat.
    pub fence: u64,
    /// Whether it took a seat past the licensed seats (the overage allowance).
    pub overage: bool,
}

/// One tenant's licence pool.
///
/// ```
/// use usher::pool::{PoolState, Retention};
/// use usher::{Licence, SessionToken, TenantId, Timestamp, UserId};
///
/// let now = Timestamp::from_millis(0);
/// let mut pool = PoolState::new(TenantId::parse("acme").unwrap(), Licence::concurrent(1), Retention::default(), now);
/// let ann = SessionToken::generate();
/// let bob = SessionToken::generate();
/// pool.login(&UserId::parse("ann").unwrap(), None, ann.id(), ann.secret_hash(), now).unwrap();
/// let refused = pool.login(&UserId::parse("bob").unwrap(), None, bob.id(), bob.secret_hash(), now);
/// assert_eq!(refused.unwrap_err().code(), "licence_limit_reached");
/// ```
#[derive(Debug)]
pub struct PoolState {
    tenant: TenantId,
    licence: Licence,
    retention: Retention,
    users: HashMap<UserId, Account>,
    /// Every account's user id, in order: the user list is read a page at a time from
    /// here, while logins keep the cheaper hash lookup. It changes only when an account
    /// is opened or removed.
    user_order: BTreeSet<UserId>,
    sessions: HashMap<SessionId, Session, SessionIdHash>,
    /// Live sessions by idle deadline: expiry touches only what is due.
    deadlines: BTreeSet<(Timestamp, SessionId)>,
    /// Live sessions by login time: the order of the session list, so a page is read
    /// in place rather than sorted out of every session.
    by_start: BTreeSet<(Timestamp, SessionId)>,
    /// Accounts with at least one live session.
    active_users: u32,
    /// Accounts holding a named seat.
    assigned: u32,
    /// Concurrent: seats held by members of each group the licence reserves seats for
    /// or caps (a member of several counts in each).
    group_seats: HashMap<GroupId, u32>,
    /// Concurrent: seats released under a reload grace, kept for their users.
    graces: graces::Graces,
    /// Concurrent, queueing: logins waiting in line for a seat.
    waitlist: waitlist::Waitlist,
    ended: EndedSessions,
    records: Records,
    api_key: Option<[u8; 32]>,
    /// The largest fence handed out: each admission takes the next one. Refusals
    /// take none; a withdrawn login's fence is never handed out again.
    fence: u64,
    events: Vec<Event>,
    forgotten: Vec<SessionId>,
    /// Changes for a store; kept only when one is attached.
    changes: Option<Vec<Change>>,
}

impl PoolState {
    /// A new, empty pool. Records a `TenantCreated` event.
    pub fn new(tenant: TenantId, licence: Licence, retention: Retention, now: Timestamp) -> Self {
        let mut pool = PoolState {
            tenant,
            licence,
            retention,
            users: HashMap::new(),
            user_order: BTreeSet::new(),
            sessions: HashMap::default(),
            deadlines: BTreeSet::new(),
            by_start: BTreeSet::new(),
            active_users: 0,
            assigned: 0,
            group_seats: HashMap::new(),
            graces: graces::Graces::default(),
            waitlist: waitlist::Waitlist::default(),
            ended: EndedSessions::default(),
            records: Records::default(),
            api_key: None,
            fence: 0,
            events: Vec::new(),
            forgotten: Vec::new(),
            changes: None,
        };
        let licence = Box::new(pool.licence.clone());
        pool.emit(now, EventKind::TenantCreated { licence });
        pool
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The licence in force.
    pub fn licence(&self) -> &Licence {
        &self.licence
    }

    /// Seats held now; see [`TenantView::seats_in_use`].
    pub fn seats_in_use(&self) -> u32 {
        match self.licence.model {
            LicenceModel::Named { .. } => self.assigned,
            LicenceModel::Concurrent {
                seat_per: SeatPer::Session,
                ..
            } => self.sessions.len() as u32 + self.graces.held(),
            LicenceModel::Concurrent { .. } => self.active_users + self.graces.held(),
            LicenceModel::Records => self.active_users,
        }
    }

    /// Live sessions.
    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The fence high-water mark: the largest fence handed out so far (0 before the
    /// first admission). The next admission takes one more.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Makes every later admission take a fence above `high`: a tenant created again
    /// under the id of a deleted one continues above the old incarnation's fences,
    /// which a downstream resource may still hold. Never lowers the mark.
    pub fn continue_fences_above(&mut self, high: u64) {
        self.fence = self.fence.max(high);
    }

    /// The fence of a live session.
    pub fn fence_of(&self, id: SessionId) -> Option<u64> {
        self.sessions.get(&id).map(|s| s.fence)
    }

    /// The next moment at which something becomes due: a session passes its idle
    /// deadline, or an ended session is to be forgotten.
    pub fn next_due(&self) -> Option<Timestamp> {
        let session = self
            .deadlines
            .first()
            .map(|(deadline, _)| *deadline + Duration::from_millis(1));
        let tombstone = self
            .ended
            .order
            .front()
            .map(|&(ended_at, _)| ended_at + self.retention.ended_for);
        [
            session,
            tombstone,
            self.graces.next_lapse(),
            self.next_ticket_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Ends every session idle past its deadline (reason `expired`) and forgets ended
    /// sessions older than the retention. Costs nothing for sessions not due.
    pub fn expire_due(&mut self, now: Timestamp) {
        while let Some(user) = self.graces.lapse_one(now) {
            self.count_kept_seat(&user, 0, 1);
            self.record_kept(&user);
            let seats_in_use = self.seats_in_use();
            self.emit(now, EventKind::GraceLapsed { user, seats_in_use });
        }
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline >= now {
                break;
            }
            self.end_session(id, EndReason::Expired, now);
        }
        self.forget_due(Buried::Sessions, now);
        self.forget_due(Buried::Tickets, now);
        if self.keeps_a_line() {
            self.expire_tickets(now);
            // Kept seats that lapsed and sessions that expired free seats for the line.
            self.serve_queue(now);
        }
    }

    /// A login: admits or refuses the user under the licence in force. Under a
    /// licence that queues, a login at the limit is refused here as under one that
    /// refuses; [`PoolState::enter`] puts it in line instead.
    pub fn login(
        &mut self,
        user: &UserId,
        client: Option<&str>,
        id: SessionId,
        secret: SecretHash,
        now: Timestamp,
    ) -> Result<Admission> {
        match self.decide_entry(user, client, id, secret, false, now)? {
            Entry::Admitted(admission) => Ok(admission),
            Entry::Queued(_) => unreachable!("a login that may not queue is never queued"),
        }
    }

    /// A login that, under `on_limit = "queue"`, may be put in line: admitted, or
    /// given a ticket whose token is `id` / `secret` (SPEC §10).
    pub fn enter(
        &mut self,
        user: &UserId,
        client: Option<&str>,
        id: SessionId,
        secret: SecretHash,
        now: Timestamp,
    ) -> Result<Entry> {
        self.decide_entry(user, client, id, secret, true, now)
    }

    fn decide_entry(
        &mut self,
        user: &UserId,
        client: Option<&str>,
        id: SessionId,
        secret: SecretHash,
        may_queue: bool,
        now: Timestamp,
    ) -> Result<Entry> {
        self.expire_due(now);
        let account = self.users.get(user);
        let live = account.map_or(0, Account::live);
        // A seat kept for this user under the reload grace is theirs to take back: it
        // does not count against them.
        let reclaims = self.graces.keeps(user) && takes_a_seat(&self.licence, live + 1);
        let facts = LoginFacts {
            standing: standing(account),
            user_sessions: live,
            accounts: self.users.len() as u32,
            // Seats held for the head of the line are taken, for everyone else.
            seats_in_use: self.seats_in_use() + self.waitlist.held() - u32::from(reclaims),
            queue_waiting: if reclaims { 0 } else { self.waitlist.waiting() },
            nearest_deadline_in: self
                .deadlines
                .first()
                .map(|(deadline, _)| deadline.saturating_since(now) + Duration::from_millis(1)),
            hold_ends_in: self.by_start.first().map(|&(started_at, _)| {
                (started_at + self.licence.policies.min_hold).saturating_since(now)
            }),
            group_at_max: None,
            reserved_for_others: 0,
        };
        let facts = match account {
            // A kept seat taken back already counts for the user's groups.
            _ if reclaims => facts,
            Some(account) if self.licence.policies.has_group_rules() => LoginFacts {
                group_at_max: self.group_at_max(&account.groups),
                reserved_for_others: self.reserved_for_others(&account.groups),
                ..facts
            },
            None if self.licence.policies.has_group_rules() => LoginFacts {
                reserved_for_others: self.reserved_for_others(&[]),
                ..facts
            },
            _ => facts,
        };
        let decision = match decide_login(&self.licence, user, &facts) {
            LoginDecision::Queue { .. } if !may_queue => {
                LoginDecision::Refuse(self.limit_reached(&facts))
            }
            decision => decision,
        };
        if let LoginDecision::Displace { .. } = decision {
            self.displace_idlest(now);
        }
        match decision {
            LoginDecision::Refuse(error) => {
                if let Some(reason) = error.refusal() {
                    self.emit(
                        now,
                        EventKind::Refused {
                            user: user.clone(),
                            reason,
                        },
                    );
                }
                Err(error)
            }
            LoginDecision::Queue { .. } => {
                self.open_account(user);
                Ok(Entry::Queued(self.enqueue(user, client, id, secret, now)))
            }
            LoginDecision::Admit { .. } | LoginDecision::Displace { .. } => {
                if reclaims {
                    self.graces.take(user);
                    self.count_kept_seat(user, 0, 1);
                    self.record_kept(user);
                }
                Ok(Entry::Admitted(self.admit(
                    user,
                    client,
                    id,
                    secret,
                    facts.user_sessions,
                    now,
                )))
            }
        }
    }

    /// The refusal at the limit of a login that may not queue.
    fn limit_reached(&self, facts: &LoginFacts) -> Error {
        Error::LicenceLimitReached {
            seats: self.licence.model.seats().unwrap_or(0),
            seats_in_use: facts.seats_in_use,
            reserved: facts.reserved_for_others,
            retry_after: facts.nearest_deadline_in,
        }
    }

    /// Opens `user`'s account if they have none.
    fn open_account(&mut self, user: &UserId) {
        if !self.users.contains_key(user) {
            self.user_order.insert(user.clone());
            self.users.insert(user.clone(), Account::default());
            self.record(|| Change::User {
                user: user.clone(),
                assigned: false,
            });
        }
    }

    /// Starts a session for `user`, who held `user_sessions` before it: the rules
    /// have admitted it.
    fn admit(
        &mut self,
        user: &UserId,
        client: Option<&str>,
        id: SessionId,
        secret: SecretHash,
        user_sessions: u32,
        now: Timestamp,
    ) -> Admission {
        {
            {
                debug_assert!(
                    !self.sessions.contains_key(&id) && !self.ended.by_id.contains_key(&id)
                );
                let expires_at = now + self.licence.idle_timeout;
                self.fence += 1;
                let fence = self.fence;
                self.open_account(user);
                let account = self.users.entry(user.clone()).or_default();
                account.sessions.push(id);
                if account.sessions.len() == 1 {
                    self.active_users += 1;
                }
                if self.licence.policies.has_group_rules()
                    && takes_a_seat(&self.licence, account.live())
                {
                    let policies = &self.licence.policies;
                    count_group_seats(policies, &mut self.group_seats, &account.groups, 1, 0);
                }
                self.sessions.insert(
                    id,
                    Session {
                        user: user.clone(),
                        client: client.map(Box::from),
                        secret,
                        started_at: now,
                        last_heartbeat_at: now,
                        expires_at,
                        fence,
                    },
                );
                self.deadlines.insert((expires_at, id));
                self.by_start.insert((now, id));
                self.record(|| {
                    Change::SessionStarted(SessionRecord {
                        id,
                        secret,
                        user: user.clone(),
                        client: client.map(String::from),
                        started_at: now,
                        last_heartbeat_at: now,
                        fence,
                    })
                });
                let seats_in_use = self.seats_in_use();
                // Past the seats, and on a seat of its own rather than a tab sharing
                // its user's.
                let overage = match self.licence.model {
                    LicenceModel::Concurrent { seats, seat_per } => {
                        seats_in_use > seats && (seat_per == SeatPer::Session || user_sessions == 0)
                    }
                    _ => false,
                };
                self.emit(
                    now,
                    EventKind::Admitted {
                        user: user.clone(),
                        session: id,
                        seats_in_use,
                        overage,
                    },
                );
                Admission {
                    session: id,
                    expires_at,
                    idle_timeout: self.licence.idle_timeout,
                    heartbeat_interval: self.licence.heartbeat_interval(),
                    fence,
                    overage,
                }
            }
        }
    }

    /// A heartbeat: the session lives for another idle timeout from `now`.
    pub fn heartbeat(
        &mut self,
        id: SessionId,
        secret: &SecretHash,
        now: Timestamp,
    ) -> Result<Timestamp> {
        self.beat(id, secret, now).map(|(expires_at, _)| expires_at)
    }

    /// [`PoolState::heartbeat`], answering the session's fence too from the same
    /// lookup: the actor's hot path.
    pub fn beat(
        &mut self,
        id: SessionId,
        secret: &SecretHash,
        now: Timestamp,
    ) -> Result<(Timestamp, u64)> {
        self.expire_due(now);
        let expires_at = now + self.licence.idle_timeout;
        // One lookup on the hot path; the error is worked out only when there is one.
        let session = match self.sessions.get_mut(&id) {
            Some(session) if session.secret.matches(secret) => session,
            _ => return Err(self.why_not_live(id, secret)),
        };
        self.deadlines.remove(&(session.expires_at, id));
        self.deadlines.insert((expires_at, id));
        session.last_heartbeat_at = now;
        session.expires_at = expires_at;
        Ok((expires_at, session.fence))
    }

    /// Ends one tab's session, keeping the user's other tabs (reason `released`).
    pub fn release(&mut self, id: SessionId, secret: &SecretHash, now: Timestamp) -> Result<()> {
        self.expire_due(now);
        self.check(id, secret)?;
        self.end_session(id, EndReason::Released, now);
        Ok(())
    }

    /// Ends every session of this session's user (reason `logged_out`).
    pub fn logout(&mut self, id: SessionId, secret: &SecretHash, now: Timestamp) -> Result<u32> {
        self.expire_due(now);
        self.check(id, secret)?;
        let user = self.sessions[&id].user.clone();
        Ok(self.end_user_sessions(&user, EndReason::LoggedOut, now))
    }

    /// An administrator's forced release of one session (reason `revoked`).
    pub fn revoke(&mut self, id: SessionId, now: Timestamp) -> Result<()> {
        self.expire_due(now);
        if !self.sessions.contains_key(&id) {
            return Err(match self.ended.by_id.get(&id) {
                Some(t) => Error::SessionEnded { reason: t.reason },
                None => Error::SessionNotFound,
            });
        }
        self.end_session(id, EndReason::Revoked, now);
        Ok(())
    }

    /// An administrator logs a user out of every tab (reason `logged_out`).
    pub fn logout_user(&mut self, user: &UserId, now: Timestamp) -> Result<u32> {
        self.expire_due(now);
        if !self.users.contains_key(user) {
            return Err(Error::UserNotFound);
        }
        Ok(self.end_user_sessions(user, EndReason::LoggedOut, now))
    }

    /// Registers a user (concurrent, records) or assigns them a named seat (named),
    /// and, when `groups` are given, makes them the user's groups (sorted, without
    /// repeats; see [`user_groups`]). A change of groups ends no session: a group over
    /// its cap only takes no new seat until it is under it.
    pub fn put_user(
        &mut self,
        user: &UserId,
        groups: Option<&[GroupId]>,
        now: Timestamp,
    ) -> Result<UserView> {
        self.expire_due(now);
        let groups = groups.map(user_groups).transpose()?;
        let account = self.users.get(user);
        let facts = AssignFacts {
            standing: standing(account),
            accounts: self.users.len() as u32,
            assigned: self.assigned,
        };
        let regroup = match (&groups, account) {
            (Some(groups), Some(account)) => *account.groups != **groups,
            (Some(groups), None) => !groups.is_empty(),
            (None, _) => false,
        };
        if decide_assign(&self.licence, &facts)? || regroup {
            let named = matches!(self.licence.model, LicenceModel::Named { .. });
            if !self.users.contains_key(user) {
                self.user_order.insert(user.clone());
            }
            let account = self.users.entry(user.clone()).or_default();
            if named && !account.assigned {
                account.assigned = true;
                self.assigned += 1;
            }
            let assigned = account.assigned;
            if let Some(groups) = groups.filter(|_| regroup) {
                let before =
                    std::mem::replace(&mut account.groups, groups.iter().cloned().collect());
                if let LicenceModel::Concurrent { seat_per, .. } = self.licence.model {
                    let seats = account.seats(seat_per) + self.graces.kept(user);
                    let (policies, held) = (&self.licence.policies, &mut self.group_seats);
                    count_group_seats(policies, held, &before, 0, seats);
                    count_group_seats(policies, held, &account.groups, seats, 0);
                }
                self.record(|| Change::Groups {
                    user: user.clone(),
                    groups: groups.to_vec(),
                });
            }
            self.record(|| Change::User {
                user: user.clone(),
                assigned,
            });
            let seats_in_use = self.seats_in_use();
            let groups = self.users[user].groups.to_vec();
            self.emit(
                now,
                EventKind::UserAssigned {
                    user: user.clone(),
                    assigned,
                    groups,
                    seats_in_use,
                },
            );
        }
        Ok(user_view(user, &self.users[user]))
    }

    /// Removes a user's account, freeing any named seat and ending their sessions
    /// (reason `evicted`).
    pub fn remove_user(&mut self, user: &UserId, now: Timestamp) -> Result<()> {
        self.expire_due(now);
        if !self.users.contains_key(user) {
            return Err(Error::UserNotFound);
        }
        self.end_tickets(Some(user), EndReason::Evicted, now);
        self.end_user_sessions(user, EndReason::Evicted, now);
        // The store lets the user's kept seats go with the account (`UserRemoved`).
        let kept = self.graces.kept(user);
        self.count_kept_seat(user, 0, kept);
        self.graces.drop_user(user);
        self.user_order.remove(user);
        if let Some(account) = self.users.remove(user) {
            if account.assigned {
                self.assigned -= 1;
            }
        }
        self.record(|| Change::UserRemoved(user.clone()));
        let seats_in_use = self.seats_in_use();
        self.emit(
            now,
            EventKind::UserRemoved {
                user: user.clone(),
                seats_in_use,
            },
        );
        Ok(())
    }

    /// Replaces the licence. Live sessions are never ended: a lower limit only refuses
    /// new users until usage falls below it. A new idle timeout applies from each
    /// session's next heartbeat.
    ///
    /// Named seats belong to the named model: a change to another model drops every
    /// assignment, so a later return to named starts with none assigned rather than
    /// bringing back who held a seat long ago.
    pub fn set_licence(&mut self, licence: Licence, now: Timestamp) {
        self.expire_due(now);
        if takes_named_seats(&self.licence, &licence) && self.assigned > 0 {
            let mut dropped: Vec<UserId> = Vec::new();
            for (user, account) in self.users.iter_mut() {
                if account.assigned {
                    account.assigned = false;
                    dropped.push(user.clone());
                }
            }
            self.assigned = 0;
            for user in dropped {
                self.record(|| Change::User {
                    user,
                    assigned: false,
                });
            }
        }
        // Kept seats belong to the seat rule and the grace they were kept under.
        let keeps = licence.keeps_seats_per();
        if keeps.is_none() || keeps != self.licence.keeps_seats_per() {
            let users: Vec<UserId> = self.graces.by_user().map(|(u, _)| u.clone()).collect();
            self.graces.clear();
            for user in users {
                self.record_kept(&user);
            }
        }
        self.licence = licence.clone();
        if !matches!(licence.model, LicenceModel::Concurrent { .. }) {
            // Only a concurrent licence has a line.
            self.end_tickets(None, EndReason::Evicted, now);
        }
        self.recount_group_seats();
        self.record(|| Change::Licence(licence.clone()));
        let seats_in_use = self.seats_in_use();
        self.emit(
            now,
            EventKind::LicenceChanged {
                licence: Box::new(licence),
                seats_in_use,
            },
        );
        // Seats a raised licence adds go to the head of the line, one per ticket.
        self.serve_queue(now);
    }

    /// What the pool holds, for a change to `licence` to be previewed ([`preview`]).
    pub fn holdings(&self, licence: &Licence) -> Holdings {
        let named = if takes_named_seats(&self.licence, licence) {
            let assigned = self.users.iter().filter(|(_, account)| account.assigned);
            assigned.map(|(user, _)| user.clone()).collect()
        } else {
            Vec::new()
        };
        let members = if licence.has_group_rules() {
            let members = self.users.iter().filter(|(user, account)| {
                !account.groups.is_empty() && (account.live() > 0 || self.graces.keeps(user))
            });
            members
                .map(|(user, account)| Member {
                    groups: account.groups.to_vec(),
                    sessions: account.live(),
                    kept: self.graces.kept(user),
                })
                .collect()
        } else {
            Vec::new()
        };
        Holdings {
            licence: self.licence.clone(),
            view: self.view(),
            assigned: self.assigned,
            active_users: self.active_users,
            kept: self.graces.held(),
            named,
            members,
        }
    }

    /// Records the backend's record count.
    pub fn report_records(&mut self, count: u64, now: Timestamp) -> RecordsView {
        self.records.report(count, now);
        let records = self.records;
        self.record(|| Change::Records(records));
        self.emit(now, EventKind::RecordsReported { count });
        self.records.view(now)
    }

    /// The record count and its peaks.
    pub fn records(&self, now: Timestamp) -> RecordsView {
        self.records.view(now)
    }

    /// Ends every session (reason `evicted`): the tenant is being deleted. Returns
    /// every remembered ended session, so their holders can still learn why.
    pub fn evict_all(&mut self, now: Timestamp) -> Vec<(SessionId, Tombstone)> {
        self.end_tickets(None, EndReason::Evicted, now);
        let ids: Vec<SessionId> = self.by_start.iter().map(|&(_, id)| id).collect();
        for id in ids {
            self.end_session(id, EndReason::Evicted, now);
        }
        self.emit(now, EventKind::TenantDeleted);
        self.ended.order.clear();
        self.waitlist.ended.order.clear();
        let orphans: Vec<(SessionId, Tombstone)> = self
            .ended
            .by_id
            .drain()
            .chain(self.waitlist.ended.by_id.drain())
            .collect();
        // The tenant's own rows go with it, so the changes before this one are moot.
        if let Some(changes) = &mut self.changes {
            changes.clear();
        }
        self.record(|| Change::Deleted {
            orphans: orphans.clone(),
        });
        orphans
    }

    /// Takes back a login that was never acknowledged (its write did not become
    /// durable in time): the session goes without a tombstone, since nobody holds
    /// its token, and its seat is free at once. A ticket put in line by such a login goes the same way, its place with it.
    pub fn withdraw(&mut self, id: SessionId, now: Timestamp) {
        if self.withdraw_ticket(id, now) {
            return;
        }
        let Some(session) = self.detach(id) else {
            return;
        };
        self.forgotten.push(id);
        self.record(|| Change::SessionWithdrawn {
            id,
            secret: session.secret,
        });
        let seats_in_use = self.seats_in_use();
        self.emit(
            now,
            EventKind::Withdrawn {
                user: session.user,
                session: id,
                seats_in_use,
            },
        );
        self.serve_queue(now);
    }

    /// The hash of the tenant's API key, if it has one.
    pub fn api_key(&self) -> Option<[u8; 32]> {
        self.api_key
    }

    /// Replaces the tenant's API key (by its hash). Returns the one it replaces.
    pub fn set_api_key(&mut self, hash: [u8; 32]) -> Option<[u8; 32]> {
        self.record(|| Change::ApiKey(hash));
        self.api_key.replace(hash)
    }

    /// Events caused since the last call, oldest first.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Session ids no longer remembered at all since the last call.
    pub fn take_forgotten(&mut self) -> std::vec::Drain<'_, SessionId> {
        self.forgotten.drain(..)
    }

    /// Checks that the pool's indexes and counts agree with its sessions and accounts:
    /// each account lists exactly its user's live sessions, the deadline and login-time
    /// orders hold exactly the live sessions, and the counters match. It reads the
    /// whole pool; tests call it after every step.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut listed = 0;
        for (user, account) in &self.users {
            for id in &account.sessions {
                match self.sessions.get(id) {
                    Some(s) if &s.user == user => listed += 1,
                    Some(s) => {
                        return Err(format!("{user} lists session {id}, which is {}'s", s.user))
                    }
                    None => return Err(format!("{user} lists session {id}, which is not live")),
                }
            }
            let distinct: BTreeSet<&SessionId> = account.sessions.iter().collect();
            if distinct.len() != account.sessions.len() {
                return Err(format!("{user} lists a session twice"));
            }
        }
        if listed != self.sessions.len() {
            return Err(format!(
                "accounts list {listed} sessions, {} are live",
                self.sessions.len()
            ));
        }
        for (id, s) in &self.sessions {
            if !self.users.contains_key(&s.user) {
                return Err(format!(
                    "session {id} belongs to {}, who has no account",
                    s.user
                ));
            }
        }
        let deadlines: BTreeSet<(Timestamp, SessionId)> = self
            .sessions
            .iter()
            .map(|(&id, s)| (s.expires_at, id))
            .collect();
        if deadlines != self.deadlines {
            return Err("the deadline index does not match the live sessions".into());
        }
        let by_start: BTreeSet<(Timestamp, SessionId)> = self
            .sessions
            .iter()
            .map(|(&id, s)| (s.started_at, id))
            .collect();
        if by_start != self.by_start {
            return Err("the login-time index does not match the live sessions".into());
        }
        if self.user_order.len() != self.users.len()
            || self.user_order.iter().any(|u| !self.users.contains_key(u))
        {
            return Err("the user order does not match the accounts".into());
        }
        let active = self
            .users
            .values()
            .filter(|a| !a.sessions.is_empty())
            .count() as u32;
        if active != self.active_users {
            return Err(format!(
                "{active} users have live sessions, counted {}",
                self.active_users
            ));
        }
        let assigned = self.users.values().filter(|a| a.assigned).count() as u32;
        if assigned != self.assigned {
            return Err(format!(
                "{assigned} users are assigned, counted {}",
                self.assigned
            ));
        }
        if self.ended.order.len() != self.ended.by_id.len() {
            return Err(format!(
                "{} ended sessions in order, {} remembered",
                self.ended.order.len(),
                self.ended.by_id.len()
            ));
        }
        let nonzero = |counts: &HashMap<GroupId, u32>| -> BTreeMap<GroupId, u32> {
            counts
                .iter()
                .filter(|&(_, &n)| n > 0)
                .map(|(g, &n)| (g.clone(), n))
                .collect()
        };
        let held = self.counted_group_seats();
        if nonzero(&held) != nonzero(&self.group_seats) {
            return Err(format!(
                "group seats counted {:?}, held {:?}",
                nonzero(&self.group_seats),
                nonzero(&held)
            ));
        }
        self.check_waitlist()
    }

    /// Verifies that `id` is a live session whose secret hashes to `secret`; otherwise
    /// says whether it ended (to its holder only) or is unknown.
    fn check(&self, id: SessionId, secret: &SecretHash) -> Result<()> {
        match self.sessions.get(&id) {
            Some(session) if session.secret.matches(secret) => Ok(()),
            _ => Err(self.why_not_live(id, secret)),
        }
    }

    /// For a token that is not a live session: whether it ended (told to its holder
    /// only) or is unknown.
    fn why_not_live(&self, id: SessionId, secret: &SecretHash) -> Error {
        match self.ended.by_id.get(&id) {
            Some(tombstone) if tombstone.secret.matches(secret) => Error::SessionEnded {
                reason: tombstone.reason,
            },
            _ => Error::SessionNotFound,
        }
    }

    /// Ends every session of `user` in login order, reading only that user's sessions.
    fn end_user_sessions(&mut self, user: &UserId, reason: EndReason, now: Timestamp) -> u32 {
        let Some(account) = self.users.get(user) else {
            return 0;
        };
        // A copy: each end takes its session off the account, so that every event
        // reports the seats in use as they are at that moment.
        let ids = account.sessions.clone();
        for &id in &ids {
            self.end_session(id, reason, now);
        }
        ids.len() as u32
    }

    /// Ends the sessions of the idlest seat held for at least the minimum hold (reason
    /// `displaced`): under a seat per tab, the session nearest its idle deadline;
    /// under a seat per user, the user whose latest deadline is the nearest. Of seats
    /// equally idle, the one taken first (the smallest fence) goes. The caller has
    /// made sure there is one (see [`crate::admission`]).
    fn displace_idlest(&mut self, now: Timestamp) {
        let hold = self.licence.policies.min_hold;
        let held_long_enough = |started_at: Timestamp| started_at + hold <= now;
        let LicenceModel::Concurrent { seat_per, .. } = self.licence.model else {
            return;
        };
        // The best candidate so far: (its deadline, its fence, whose seat).
        let mut best: Option<(Timestamp, u64, SessionId)> = None;
        // Under a seat per user, a seat goes idle with its user's last tab: a user is
        // a candidate once every one of their sessions has been passed.
        let mut passed: HashMap<&UserId, u32> = HashMap::new();
        for &(deadline, id) in &self.deadlines {
            if best.is_some_and(|(at, _, _)| at < deadline) {
                break;
            }
            let session = &self.sessions[&id];
            let candidate = match seat_per {
                SeatPer::Session => {
                    held_long_enough(session.started_at).then_some((session.fence, id))
                }
                SeatPer::User => {
                    let seen = passed.entry(&session.user).or_default();
                    *seen += 1;
                    let account = &self.users[&session.user];
                    if *seen < account.live() {
                        None
                    } else {
                        let tabs = account.sessions.iter().map(|s| &self.sessions[s]);
                        let held_since = tabs.clone().map(|s| s.started_at).min();
                        let first_fence = tabs.map(|s| s.fence).min().unwrap_or(0);
                        held_since
                            .is_some_and(held_long_enough)
                            .then_some((first_fence, id))
                    }
                }
            };
            if let Some((fence, id)) = candidate {
                if best.is_none_or(|(_, f, _)| fence < f) {
                    best = Some((deadline, fence, id));
                }
            }
        }
        let Some((_, _, id)) = best else {
            return;
        };
        match seat_per {
            SeatPer::Session => self.end_session(id, EndReason::Displaced, now),
            SeatPer::User => {
                let user = self.sessions[&id].user.clone();
                self.end_user_sessions(&user, EndReason::Displaced, now);
            }
        }
    }

    /// Takes a live session out of every index: it no longer holds a seat.
    fn detach(&mut self, id: SessionId) -> Option<Session> {
        let session = self.sessions.remove(&id)?;
        self.deadlines.remove(&(session.expires_at, id));
        self.by_start.remove(&(session.started_at, id));
        if let Some(account) = self.users.get_mut(&session.user) {
            if let Some(at) = account.sessions.iter().position(|&s| s == id) {
                account.sessions.remove(at);
                if account.sessions.is_empty() {
                    self.active_users -= 1;
                }
                let left = account.live();
                if self.licence.policies.has_group_rules() && takes_a_seat(&self.licence, left + 1)
                {
                    let policies = &self.licence.policies;
                    count_group_seats(policies, &mut self.group_seats, &account.groups, 0, 1);
                }
            }
        }
        Some(session)
    }

    fn end_session(&mut self, id: SessionId, reason: EndReason, now: Timestamp) {
        let Some(session) = self.detach(id) else {
            return;
        };
        let grace = self.licence.policies.reload_grace;
        if reason == EndReason::Released && !grace.is_zero() {
            let left = self.users.get(&session.user).map_or(0, Account::live);
            if takes_a_seat(&self.licence, left + 1) {
                self.graces.keep(&session.user, now + grace);
                self.count_kept_seat(&session.user, 1, 0);
                self.record_kept(&session.user);
            }
        }
        let tombstone = Tombstone {
            secret: session.secret,
            reason,
            ended_at: now,
            session: None,
        };
        self.bury(Buried::Sessions, id, tombstone);
        let seats_in_use = self.seats_in_use();
        self.emit(
            now,
            EventKind::Ended {
                user: session.user,
                session: id,
                reason,
                seats_in_use,
            },
        );
        self.serve_queue(now);
    }

    fn tombstones(&mut self, which: Buried) -> &mut EndedSessions {
        match which {
            Buried::Sessions => &mut self.ended,
            Buried::Tickets => &mut self.waitlist.ended,
        }
    }

    /// Remembers an ended session or ticket for its holder, forgetting the oldest
    /// when the pool remembers as many as it may (or at once, when it may none).
    fn bury(&mut self, which: Buried, id: SessionId, tombstone: Tombstone) {
        if self.tombstones(which).by_id.len() >= self.retention.capacity {
            self.forget_oldest(which);
        }
        if self.retention.capacity == 0 {
            self.forgotten.push(id);
            let secret = tombstone.secret;
            self.record(|| which.forgotten(id, secret));
            return;
        }
        let ended = self.tombstones(which);
        ended.order.push_back((tombstone.ended_at, id));
        ended.by_id.insert(id, tombstone);
        self.record(|| which.ended(id, tombstone));
    }

    /// Forgets what ended at least the retention before `now`.
    fn forget_due(&mut self, which: Buried, now: Timestamp) {
        let ended_for = self.retention.ended_for;
        while let Some(&(ended_at, _)) = self.tombstones(which).order.front() {
            if ended_at + ended_for > now {
                break;
            }
            self.forget_oldest(which);
        }
    }

    fn forget_oldest(&mut self, which: Buried) {
        let ended = self.tombstones(which);
        if let Some((_, id)) = ended.order.pop_front() {
            if let Some(tombstone) = ended.by_id.remove(&id) {
                let secret = tombstone.secret;
                self.record(|| which.forgotten(id, secret));
            }
            self.forgotten.push(id);
        }
    }

    /// Adds and takes away seats kept for `user` under the reload grace, in their
    /// groups: a kept seat counts for the groups of the user it is kept for.
    fn count_kept_seat(&mut self, user: &UserId, add: u32, take: u32) {
        if !self.licence.policies.has_group_rules() {
            return;
        }
        if let Some(account) = self.users.get(user) {
            let policies = &self.licence.policies;
            count_group_seats(policies, &mut self.group_seats, &account.groups, add, take);
        }
    }

    /// Records how many seats are kept for `user` now, for the store.
    fn record_kept(&mut self, user: &UserId) {
        let seats = self.graces.kept(user);
        self.record(|| Change::Kept {
            user: user.clone(),
            seats,
        });
    }

    /// Counts the seats of every group the licence reserves seats for or caps afresh.
    fn recount_group_seats(&mut self) {
        self.group_seats = self.counted_group_seats();
    }

    /// The seats held by members of each group the licence reserves seats for or caps,
    /// counted from the accounts and the seats kept for them.
    fn counted_group_seats(&self) -> HashMap<GroupId, u32> {
        let mut counts = HashMap::new();
        let LicenceModel::Concurrent { seat_per, .. } = self.licence.model else {
            return counts;
        };
        let policies = &self.licence.policies;
        if !policies.has_group_rules() {
            return counts;
        }
        for (user, account) in &self.users {
            let seats = account.seats(seat_per) + self.graces.kept(user);
            if seats == 0 {
                continue;
            }
            for group in account.groups.iter() {
                if policies.counts_group(group) {
                    *counts.entry(group.clone()).or_default() += seats;
                }
            }
        }
        counts
    }

    /// Seats held by members of `group`.
    fn group_held(&self, group: &GroupId) -> u32 {
        self.group_seats.get(group).copied().unwrap_or(0)
    }

    /// The first of `groups` (in order) holding as many seats as its cap allows.
    fn group_at_max(&self, groups: &[GroupId]) -> Option<(GroupId, u32)> {
        groups.iter().find_map(|group| {
            let max = *self.licence.policies.group_max.get(group)?;
            (self.group_held(group) >= max).then(|| (group.clone(), max))
        })
    }

    /// Free seats still held back for groups once a member of `groups` took a seat:
    /// each reservation not yet filled, less the one seat this user would fill in each
    /// of their own groups.
    fn reserved_for_others(&self, groups: &[GroupId]) -> u32 {
        self.licence
            .policies
            .reserve
            .iter()
            .map(|(group, &reserved)| {
                let unfilled = reserved.saturating_sub(self.group_held(group));
                if groups.binary_search(group).is_ok() {
                    unfilled.saturating_sub(1)
                } else {
                    unfilled
                }
            })
            .sum()
    }

    fn emit(&mut self, at: Timestamp, kind: EventKind) {
        self.events.push(Event {
            tenant: self.tenant.clone(),
            at,
            kind,
        });
    }
}

/// Whether a user's `live`-th session holds a concurrent seat of its own (rather than
/// sharing its user's).
fn takes_a_seat(licence: &Licence, live: u32) -> bool {
    match licence.model {
        LicenceModel::Concurrent { seat_per, .. } => seat_per == SeatPer::Session || live == 1,
        _ => false,
    }
}

/// Adds and takes away seats held by members of `groups` in `held`, for the groups
/// `policies` count; a free function so that a pool can count an account's groups
/// while it holds the account.
fn count_group_seats(
    policies: &crate::licence::Policies,
    held: &mut HashMap<GroupId, u32>,
    groups: &[GroupId],
    add: u32,
    take: u32,
) {
    for group in groups {
        if policies.counts_group(group) {
            let seats = held.entry(group.clone()).or_default();
            *seats = (*seats + add).saturating_sub(take);
        }
    }
}

/// A user's groups as given, sorted and without repeats; at most [`MAX_GROUPS`].
pub fn user_groups(groups: &[GroupId]) -> Result<Box<[GroupId]>> {
    let set: BTreeSet<&GroupId> = groups.iter().collect();
    if set.len() > MAX_GROUPS {
        return Err(Error::InvalidRequest(format!(
            "a user may belong to at most {MAX_GROUPS} groups, got {}",
            set.len()
        )));
    }
    Ok(set.into_iter().cloned().collect())
}

fn standing(account: Option<&Account>) -> Standing {
    match account {
        None => Standing::Unknown,
        Some(a) if a.assigned => Standing::Assigned,
        Some(_) => Standing::Registered,
    }
}
