//! The admission rules of SPEC §1, in one place.
//!
//! These functions decide; they do not change anything. The pool core gathers the
//! facts, asks, and applies the answer. A shared backend (for instance a Redis Lua
//! script) must reproduce exactly these decisions from the same facts.

use std::time::Duration;

use crate::error::Error;
use crate::ids::UserId;
use crate::licence::{Licence, LicenceModel, SeatPer};

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
#[derive(Debug, Clone, Copy)]
pub struct LoginFacts {
    /// The user's standing.
    pub standing: Standing,
    /// Whether the user already has a live session (another tab).
    pub has_live_session: bool,
    /// User accounts in the tenant.
    pub accounts: u32,
    /// Seats held now (concurrent model).
    pub seats_in_use: u32,
    /// Time until the nearest idle deadline, if any session is live.
    pub nearest_deadline_in: Option<Duration>,
}

/// The answer to a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    /// Admit; `register` says whether the user's account is created by this login.
    Admit {
        /// Create the account on admission.
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
///     has_live_session: false,
///     accounts: 10,
///     seats_in_use: 3,
///     nearest_deadline_in: None,
/// };
/// let user = UserId::parse("ann").unwrap();
/// let answer = decide_login(&Licence::concurrent(3), &user, &full);
/// assert!(matches!(answer, LoginDecision::Refuse(e) if e.code() == "licence_limit_reached"));
/// ```
pub fn decide_login(licence: &Licence, user: &UserId, facts: &LoginFacts) -> LoginDecision {
    if let LicenceModel::Named { .. } = licence.model {
        // Every assigned user may log in, in any number of tabs, at any time.
        return if facts.standing == Standing::Assigned {
            LoginDecision::Admit { register: false }
        } else {
            LoginDecision::Refuse(Error::UserNotLicensed {
                user: user.to_string(),
            })
        };
    }
    let register = facts.standing == Standing::Unknown;
    if register && facts.accounts >= licence.max_users {
        return LoginDecision::Refuse(Error::UserLimitReached {
            max_users: licence.max_users,
        });
    }
    if let LicenceModel::Concurrent { seats, seat_per } = licence.model {
        let shares_a_seat = seat_per == SeatPer::User && facts.has_live_session;
        if !shares_a_seat && facts.seats_in_use >= seats {
            return LoginDecision::Refuse(Error::LicenceLimitReached {
                seats,
                seats_in_use: facts.seats_in_use,
                retry_after: facts.nearest_deadline_in,
            });
        }
    }
    LoginDecision::Admit { register }
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
