//! What a pool shows: the tenant, session, user and records views of the API, and
//! the pages the session and user lists are read in.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use serde::Serialize;

use super::{Account, PoolState};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{GroupId, SessionId, TenantId, UserId};
#[cfg(feature = "server")]
use crate::licence::PolicyFields;
use crate::licence::{Licence, LicenceModel, Policies, SeatPer};

/// `GET …/records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct RecordsView {
    /// The last reported count.
    pub count: u64,
    /// The highest count today (UTC).
    pub peak_today: u64,
    /// The highest count this calendar month: the billing figure.
    pub peak_month: u64,
}

/// A tenant as its administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct TenantView {
    /// The tenant.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub tenant: TenantId,
    /// `named`, `concurrent` or `records`.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub model: &'static str,
    /// Seats in the licence (none for records).
    pub seats: Option<u32>,
    /// Concurrent model only.
    pub seat_per: Option<SeatPer>,
    /// Idle timeout in seconds.
    pub idle_timeout_secs: u64,
    /// The account limit.
    pub max_users: u32,
    /// The seat policies of SPEC §9, each only where it differs from its default.
    #[serde(flatten)]
    #[cfg_attr(feature = "server", schema(inline, value_type = PolicyFields))]
    pub policies: Policies,
    /// Seats held now (named: seats assigned; concurrent: seats held by live
    /// sessions; records: users logged in).
    pub seats_in_use: u32,
    /// Live sessions.
    pub sessions: u32,
    /// User accounts.
    pub users: u32,
    /// The last reported record count.
    pub records: u64,
    /// Waitlist tickets in line (`on_limit = "queue"`), counting those a seat is
    /// held for.
    pub queued: u32,
    /// Seats held for tickets at the head of the line, not yet claimed.
    pub held_for_queue: u32,
    /// Seats kept for their users under the reload grace, counted in `seats_in_use`
    /// (only under a licence with `reload_grace_secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_for_reload: Option<u32>,
    /// Seats held by members of each group the licence reserves seats for or caps,
    /// kept seats included (only under a licence with `reserve` or `group_max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "server", schema(value_type = Option<BTreeMap<String, u32>>))]
    pub group_seats: Option<BTreeMap<GroupId, u32>>,
}

impl TenantView {
    /// A tenant under `licence` holding nothing.
    pub fn of(tenant: TenantId, licence: &Licence) -> TenantView {
        let (seats, seat_per) = match licence.model {
            LicenceModel::Named { seats } => (Some(seats), None),
            LicenceModel::Concurrent { seats, seat_per } => (Some(seats), Some(seat_per)),
            LicenceModel::Records => (None, None),
        };
        TenantView {
            tenant,
            model: licence.model.name(),
            seats,
            seat_per,
            idle_timeout_secs: licence.idle_timeout.as_secs(),
            max_users: licence.max_users,
            policies: licence.policies.clone(),
            seats_in_use: 0,
            sessions: 0,
            users: 0,
            records: 0,
            queued: 0,
            held_for_queue: 0,
            held_for_reload: licence.keeps_seats().then_some(0),
            group_seats: licence.has_group_rules().then(|| {
                let groups = licence.policies.counted_groups();
                groups.map(|group| (group.clone(), 0)).collect()
            }),
        }
    }

    /// Adds seats held by members of `group`, if the view counts it.
    pub(crate) fn add_group_seats(&mut self, group: &GroupId, seats: u32) {
        if let Some(held) = self.group_seats.as_mut().and_then(|g| g.get_mut(group)) {
            *held += seats;
        }
    }
}

/// A live session as listed to administrators: the id is a handle, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SessionView {
    /// The handle for forced release.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub id: SessionId,
    /// Whose session.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub user: UserId,
    /// The client's label (a tab, a device).
    pub client: Option<String>,
    /// Login time.
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    /// Last sign of life.
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub last_heartbeat_at: Timestamp,
    /// When it expires without another heartbeat.
    #[cfg_attr(feature = "server", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    /// The session's fencing token: larger than that of every session admitted
    /// before it in the tenant (SPEC §8).
    pub fence: u64,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct UserView {
    /// The user.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub user: UserId,
    /// Holds a named seat.
    pub assigned: bool,
    /// Live sessions.
    pub sessions: u32,
    /// The groups the user belongs to, sorted.
    #[cfg_attr(
        feature = "server",
        schema(value_type = Vec<crate::http::openapi::GroupIdSchema>)
    )]
    pub groups: Vec<GroupId>,
}

/// One page of a list, in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts (pass it as `after`); none on the last page.
    pub next: Option<C>,
}

/// Refuses a page `limit` of 0: an empty page could not say where the next one starts.
pub(crate) fn check_page_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        return Err(Error::InvalidRequest(
            "limit must be at least 1: a page holds at least one item".into(),
        ));
    }
    Ok(())
}

/// A place in the session list, which is ordered by login time, then by id: the next
/// page starts after it. Sessions that log in later always come after it, so a client
/// paging through the list while sessions come and go sees each session that lives
/// throughout exactly once.
///
/// Its text form, `<started_at millis>-<id>`, is the `next_cursor` of the HTTP API.
///
/// ```
/// use usher::pool::SessionCursor;
///
/// let cursor = SessionCursor::parse("1741608000000-00abcdef01234567").unwrap();
/// assert_eq!(cursor.to_string(), "1741608000000-00abcdef01234567");
/// assert!(SessionCursor::parse("00abcdef01234567").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionCursor {
    /// The login time of the last session of a page.
    pub started_at: Timestamp,
    /// Its id.
    pub id: SessionId,
}

impl SessionCursor {
    /// The place just after `session`.
    pub fn after(session: &SessionView) -> Self {
        SessionCursor {
            started_at: session.started_at,
            id: session.id,
        }
    }

    /// Reads the text form written by [`Display`](fmt::Display).
    pub fn parse(text: &str) -> Result<Self> {
        text.split_once('-')
            .filter(|(millis, _)| !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(millis, id)| {
                Some(SessionCursor {
                    started_at: Timestamp::from_millis(millis.parse().ok()?),
                    id: SessionId::parse(id).ok()?,
                })
            })
            .ok_or_else(|| {
                Error::InvalidRequest(
                    "cursor must be the next_cursor of a previous page of sessions".into(),
                )
            })
    }
}

impl fmt::Display for SessionCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.started_at.as_millis(), self.id)
    }
}

impl PoolState {
    /// The tenant view.
    pub fn view(&self) -> TenantView {
        let mut view = TenantView {
            seats_in_use: self.seats_in_use(),
            sessions: self.sessions.len() as u32,
            users: self.users.len() as u32,
            records: self.records.count,
            queued: self.queued(),
            held_for_queue: self.held_for_queue(),
            ..TenantView::of(self.tenant.clone(), &self.licence)
        };
        if let Some(held) = &mut view.held_for_reload {
            *held = self.graces.held();
        }
        for (group, &seats) in &self.group_seats {
            view.add_group_seats(group, seats);
        }
        view
    }

    /// Live sessions, oldest first: by login time, then by id.
    pub fn session_views(&self) -> Vec<SessionView> {
        self.session_page(None, usize::MAX).items
    }

    /// A page of the live sessions, in the order of [`PoolState::session_views`]: at
    /// most `limit` (at least one) of those after `after`. Costs the page, not the
    /// tenant: the sessions are kept in this order.
    pub fn session_page(
        &self,
        after: Option<SessionCursor>,
        limit: usize,
    ) -> Page<SessionView, SessionCursor> {
        let from = match after {
            Some(cursor) => Bound::Excluded((cursor.started_at, cursor.id)),
            None => Bound::Unbounded,
        };
        let mut keys = self.by_start.range((from, Bound::Unbounded));
        let items: Vec<SessionView> = keys
            .by_ref()
            .take(limit.max(1))
            .map(|&(_, id)| {
                let s = &self.sessions[&id];
                SessionView {
                    id,
                    user: s.user.clone(),
                    client: s.client.as_deref().map(String::from),
                    started_at: s.started_at,
                    last_heartbeat_at: s.last_heartbeat_at,
                    expires_at: s.expires_at,
                    fence: s.fence,
                }
            })
            .collect();
        let next = match keys.next() {
            Some(_) => items.last().map(SessionCursor::after),
            None => None,
        };
        Page { items, next }
    }

    /// Accounts, by user id.
    pub fn user_views(&self) -> Vec<UserView> {
        self.user_page(None, usize::MAX).items
    }

    /// A page of the accounts, by user id: at most `limit` (at least one) of those
    /// after `after`.
    pub fn user_page(&self, after: Option<&UserId>, limit: usize) -> Page<UserView, UserId> {
        let from = match after {
            Some(user) => Bound::Excluded(user),
            None => Bound::Unbounded,
        };
        let mut accounts = self.user_order.range::<UserId, _>((from, Bound::Unbounded));
        let items: Vec<UserView> = accounts
            .by_ref()
            .take(limit.max(1))
            .map(|user| user_view(user, &self.users[user]))
            .collect();
        let next = match accounts.next() {
            Some(_) => items.last().map(|view| view.user.clone()),
            None => None,
        };
        Page { items, next }
    }
}

pub(super) fn user_view(user: &UserId, account: &Account) -> UserView {
    UserView {
        user: user.clone(),
        assigned: account.assigned,
        sessions: account.live(),
        groups: account.groups.to_vec(),
    }
}
