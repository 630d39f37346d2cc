//! The admission rules of SPEC §1, in one place.
//!
//! These functions decide; they do not change anything. The pool core gathers the
//! facts, asks, and applies the answer. A shared backend (for instance a Redis Lua
//! script) must reproduce exactly these decisions from the same facts.

use std::time::Duration;

use crate::error::Error;
use crate::ids::{GroupId, UserId};
use crate::licence::{Licence, LicenceModel, OnLimit, SeatPer};

/// Where a user stands in a tenant before a login or an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No account yet.
    Unknown,
    /// An account without a named seat.
    Registered,
    /// An account holding a named seat.
    Assigned,
}

/// What a login decision depends on; all counted *after* due sessions were expired.
#[derive(Debug, Clone)]
pub struct LoginFacts {
    /// The user's standing.
    pub standing: Standing,
    /// The user's live sessions (other tabs, devices).
    pub user_sessions: u32,
    /// User accounts in the tenant.
    pub accounts: u32,
    /// Seats held now (concurrent model), counting those held for the head of the
    /// waitlist.
    pub seats_in_use: u32,
    /// Tickets waiting in line for a seat (`on_limit = "queue"`): while any does,
    /// nobody outside the line takes one.
    pub queue_waiting: u32,
    /// Time until the nearest idle deadline, if any session is live.
    pub nearest_deadline_in: Option<Duration>,
    /// Time until the longest-held seat has been held for the licence's minimum hold
    /// (zero if it already has), if any session is live: from then on a seat may be
    /// displaced.
    pub hold_ends_in: Option<Duration>,
    /// The first of the user's groups (by id) that holds as many seats as its
    /// `group_max`, with that cap.
    pub group_at_max: Option<(GroupId, u32)>,
    /// Free seats that would still be held back for groups (`reserve`) once this user
    /// took a seat: what no one but their members may take.
    pub reserved_for_others: u32,
}

/// The answer to a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    /// Admit; `register` says whether the user's account is created by this login.
    Admit {
        /// Create the account on admission.
        register: bool,
    },
    /// Take over the idlest seat that has been held for the minimum hold (there is
    /// one), then admit as [`LoginDecision::Admit`].
    Displace {
        /// Create the account on admission.
        register: bool,
    },
    /// Put the login in line for a seat (`on_limit = "queue"`).
    Queue {
        /// Create the account when it joins the line.
        register: bool,
    },
    /// Refuse with this error.
    Refuse(Error),
}

/// Decides a login.
///
/// ```
/// use usher::admission::{decide_login, LoginDecision, LoginFacts, Standing};
/// use usher::{Licence, UserId};
///
/// let full = LoginFacts {
///     standing: Standing::Registered,
///     user_sessions: 0,
///     accounts: 10,
///     seats_in_use: 3,
///     queue_waiting: 0,
///     nearest_deadline_in: None,
///     hold_ends_in: None,
///     group_at_max: None,
///     reserved_for_others: 0,
/// };
/// let user = UserId::parse("ann").unwrap();
/// let answer = decide_login(&Licence::concurrent(3), &user, &full);
/// assert!(matches!(answer, LoginDecision::Refuse(e) if e.code() == "licence_limit_reached"));
/// ```
pub fn decide_login(licence: &Licence, user: &UserId, facts: &LoginFacts) -> LoginDecision {
    let register = if let LicenceModel::Named { .. } = licence.model {
        // Every assigned user may log in, in any number of tabs (up to the cap), at
        // any time.
        if facts.standing != Standing::Assigned {
            return LoginDecision::Refuse(Error::UserNotLicensed {
                user: user.to_string(),
            });
        }
        false
    } else {
        let register = facts.standing == Standing::Unknown;
        if register && facts.accounts >= licence.max_users {
            return LoginDecision::Refuse(Error::UserLimitReached {
                max_users: licence.max_users,
            });
        }
        register
    };
    if let Some(cap) = licence.policies.max_sessions_per_user {
        if facts.user_sessions >= cap {
            return LoginDecision::Refuse(Error::SessionLimitReached {
                max_sessions_per_user: cap,
            });
        }
    }
    if let (LicenceModel::Concurrent { seats, seat_per }, Some(limit)) =
        (licence.model, licence.limit())
    {
        let shares_a_seat = seat_per == SeatPer::User && facts.user_sessions > 0;
        if !shares_a_seat {
            if let Some((group, max)) = &facts.group_at_max {
                return LoginDecision::Refuse(Error::GroupLimitReached {
                    group: group.to_string(),
                    max: *max,
                });
            }
            let line_waits = licence.policies.on_limit == OnLimit::Queue && facts.queue_waiting > 0;
            if facts.seats_in_use + facts.reserved_for_others >= limit || line_waits {
                return at_the_limit(licence, seats, limit, register, facts);
            }
        }
    }
    LoginDecision::Admit { register }
}

/// A login that needs a seat when none is free: put in line, displaced into one, or
/// refused with the earliest moment one could free itself.
fn at_the_limit(
    licence: &Licence,
    seats: u32,
    limit: u32,
    register: bool,
    facts: &LoginFacts,
) -> LoginDecision {
    if licence.policies.on_limit == OnLimit::Queue {
        return LoginDecision::Queue { register };
    }
    let mut retry_after = facts.nearest_deadline_in;
    // Taking over one seat makes room only when exactly the limit is held (after a
    // lower licence, more may be).
    if licence.policies.on_limit == OnLimit::DisplaceIdlest && facts.seats_in_use == limit {
        match facts.hold_ends_in {
            Some(Duration::ZERO) => return LoginDecision::Displace { register },
            Some(hold) => retry_after = Some(retry_after.map_or(hold, |r| r.min(hold))),
            None => {}
        }
    }
    LoginDecision::Refuse(Error::LicenceLimitReached {
        seats,
        seats_in_use: facts.seats_in_use,
        reserved: facts.reserved_for_others,
        retry_after,
    })
}

/// What assigning (named) or registering (other models) a user depends on.
#[derive(Debug, Clone, Copy)]
pub struct AssignFacts {
    /// The user's standing.
    pub standing: Standing,
    /// User accounts in the tenant.
    pub accounts: u32,
    /// Users holding a named seat.
    pub assigned: u32,
}

/// Decides `PUT …/users/{user}`: `Ok(true)` if it changes anything.
pub fn decide_assign(licence: &Licence, facts: &AssignFacts) -> Result<bool, Error> {
    let wants_seat = matches!(licence.model, LicenceModel::Named { .. });
    match facts.standing {
        Standing::Assigned => return Ok(false),
        Standing::Registered if !wants_seat => return Ok(false),
        Standing::Unknown if facts.accounts >= licence.max_users => {
            return Err(Error::UserLimitReached {
                max_users: licence.max_users,
            })
        }
        _ => {}
    }
    if let LicenceModel::Named { seats } = licence.model {
        if facts.assigned >= seats {
            return Err(Error::SeatsExhausted { seats });
        }
    }
    Ok(true)
}
