//! What a licence change would do, worked out without making it (SPEC §9's dry run).
//!
//! A licence change ends no session and takes no seat from anyone holding one: fewer
//! seats only refuse the logins that would take a seat until enough are freed. What it
//! can do is hold more seats than the new limit allows, keep more accounts than the new
//! account limit, and — leaving the named model — take every named seat away. Each
//! backend gives the facts ([`Holdings`]); [`preview`] works out the rest, once, for
//! both.

use serde::Serialize;

use crate::ids::{GroupId, TenantId, UserId};
use crate::licence::{Licence, LicenceModel, SeatPer};

use super::{seats_of, TenantView};

/// What a pool holds, as a licence change reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdings {
    /// The licence in force.
    pub licence: Licence,
    /// The tenant as it is, due sessions expired.
    pub view: TenantView,
    /// Users holding a named seat.
    pub assigned: u32,
    /// Users with at least one live session.
    pub active_users: u32,
    /// Concurrent: seats kept for their users under the reload grace.
    pub kept: u32,
    /// The users holding a named seat, when the change takes them away
    /// ([`takes_named_seats`]); empty otherwise.
    pub named: Vec<UserId>,
    /// The users in groups who hold or are kept a seat, when the new licence counts
    /// seats per group ([`Licence::has_group_rules`]); empty otherwise.
    pub members: Vec<Member>,
}

/// A user in groups holding seats, as a licence change counts them per group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user's groups.
    pub groups: Vec<GroupId>,
    /// Their live sessions.
    pub sessions: u32,
    /// Seats kept for them under the reload grace.
    pub kept: u32,
}

/// Whether a change from `from` to `to` takes every named seat away.
pub fn takes_named_seats(from: &Licence, to: &Licence) -> bool {
    matches!(from.model, LicenceModel::Named { .. })
        && !matches!(to.model, LicenceModel::Named { .. })
}

/// What a licence change would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LicenceEffects {
    /// Seats held past the new limit (seats and overage). Nobody loses one; logins that
    /// would take a seat are refused until this many have been freed.
    pub seats_over_limit: u32,
    /// Accounts past the new `max_users`. None is removed; no new user gets an account
    /// until this many have been.
    pub users_over_limit: u32,
    /// Users who would lose their named seat (the licence leaves the named model), in
    /// byte order. Their sessions stay until they end.
    #[cfg_attr(feature = "server", schema(value_type = Vec<String>))]
    pub named_seats_lost: Vec<UserId>,
    /// Waitlist tickets the change would end (`evicted`): a licence that is not
    /// concurrent has no line.
    pub tickets_ended: u32,
}

/// A licence change not made: the tenant as it would be, and what the change would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct LicencePreview {
    /// The tenant as it would be.
    #[serde(flatten)]
    pub tenant: TenantView,
    /// Whether the change would create the tenant.
    pub creates: bool,
    /// What the change would do.
    pub effects: LicenceEffects,
}

/// The effects of putting `licence` on `tenant`, which holds `now` (none: the tenant
/// does not exist, and the change would create it).
pub fn preview(tenant: &TenantId, now: Option<Holdings>, licence: Licence) -> LicencePreview {
    let creates = now.is_none();
    let now = now.unwrap_or_else(|| Holdings {
        licence: licence.clone(),
        view: TenantView::of(tenant.clone(), &licence),
        assigned: 0,
        active_users: 0,
        kept: 0,
        named: Vec::new(),
        members: Vec::new(),
    });
    // Seats kept under the reload grace stay kept under the same seat rule and a grace
    // (as `PoolState::set_licence` keeps them).
    let keeps = licence.keeps_seats_per();
    let kept_stay = keeps.is_some() && keeps == now.licence.keeps_seats_per();
    let kept = if kept_stay { now.kept } else { 0 };
    let seats_in_use = match licence.model {
        LicenceModel::Named { .. } => match now.licence.model {
            LicenceModel::Named { .. } => now.assigned,
            // Users of another model hold no named seat yet.
            _ => 0,
        },
        LicenceModel::Concurrent {
            seat_per: SeatPer::Session,
            ..
        } => now.view.sessions + kept,
        LicenceModel::Concurrent { .. } => now.active_users + kept,
        LicenceModel::Records => now.active_users,
    };
    // The line stays under a concurrent licence, and a raised one holds a seat at once
    // for each ticket at its head that a free seat can serve (those waiting are about
    // the tickets in line less those a seat is held for).
    let concurrent = matches!(licence.model, LicenceModel::Concurrent { .. });
    let (queued, mut held) = if concurrent {
        (now.view.queued, now.view.held_for_queue)
    } else {
        (0, 0)
    };
    if let Some(limit) = licence.limit() {
        let free = limit.saturating_sub(seats_in_use + held);
        held += free.min(queued.saturating_sub(held));
    }
    let mut named_seats_lost = if takes_named_seats(&now.licence, &licence) {
        now.named
    } else {
        Vec::new()
    };
    named_seats_lost.sort();
    let effects = LicenceEffects {
        seats_over_limit: licence
            .limit()
            .map_or(0, |limit| (seats_in_use + held).saturating_sub(limit)),
        users_over_limit: now.view.users.saturating_sub(licence.max_users),
        named_seats_lost,
        tickets_ended: now.view.queued - queued,
    };
    let mut view = TenantView {
        seats_in_use,
        sessions: now.view.sessions,
        users: now.view.users,
        records: now.view.records,
        queued,
        held_for_queue: held,
        ..TenantView::of(tenant.clone(), &licence)
    };
    if let Some(held) = &mut view.held_for_reload {
        *held = kept;
    }
    if let LicenceModel::Concurrent { seat_per, .. } = licence.model {
        for member in &now.members {
            let kept = if kept_stay { member.kept } else { 0 };
            let seats = seats_of(seat_per, member.sessions) + kept;
            for group in &member.groups {
                view.add_group_seats(group, seats);
            }
        }
    }
    LicencePreview {
        creates,
        tenant: view,
        effects,
    }
}
