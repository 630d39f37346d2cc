//! The one error type: each variant is one code of SPEC §4.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a session ended; remembered with the session so a late heartbeat learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No heartbeat within the idle timeout.
    Expired,
    /// The tab released its licence.
    Released,
    /// The user logged out (all tabs), or an administrator logged them out.
    LoggedOut,
    /// An administrator force-released this session.
    Revoked,
    /// The user was unassigned or removed, or the tenant was deleted.
    Evicted,
    /// Another user's login at the limit took the seat over (`on_limit =
    /// "displace_idlest"`).
    Displaced,
    /// A waitlist ticket: its holder left the queue.
    Cancelled,
    /// A waitlist ticket: it became a session.
    Claimed,
    /// A waitlist ticket: the seat held for it was not claimed in time and passed on.
    ClaimMissed,
}

impl EndReason {
    /// The reason as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Released => "released",
            EndReason::LoggedOut => "logged_out",
            EndReason::Revoked => "revoked",
            EndReason::Evicted => "evicted",
            EndReason::Displaced => "displaced",
            EndReason::Cancelled => "cancelled",
            EndReason::Claimed => "claimed",
            EndReason::ClaimMissed => "claim_missed",
        }
    }
}

/// Everything that can go wrong, as data. The HTTP layer only translates these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed input, a bad id, or a missing or out-of-range field.
    #[error("{0}")]
    InvalidRequest(String),
    /// A missing or wrong credential.
    #[error("a valid credential is required: send Authorization: Bearer <token>")]
    Unauthorized,
    /// A valid credential that does not grant this.
    #[error("{0}")]
    Forbidden(String),
    /// Named model: the user holds no seat.
    #[error("user {user} has no licence seat assigned; ask your administrator to assign one")]
    UserNotLicensed {
        /// The refused user.
        user: String,
    },
    /// The tenant's technical limit of user accounts.
    #[error("the tenant already has its maximum of {max_users} user accounts")]
    UserLimitReached {
        /// The limit in force.
        max_users: u32,
    },
    /// No such tenant.
    #[error("no tenant with that id")]
    TenantNotFound,
    /// No such user in the tenant.
    #[error("no user with that id in this tenant")]
    UserNotFound,
    /// No live or remembered session for that token or id.
    #[error("no session with that token or id")]
    SessionNotFound,
    /// No live or remembered waitlist ticket for that token.
    #[error("no waitlist ticket with that token")]
    TicketNotFound,
    /// The waitlist ticket is known but has ended.
    #[error("this waitlist ticket has ended ({})", reason.as_str())]
    TicketEnded {
        /// Why it ended.
        reason: EndReason,
    },
    /// A claim of a waitlist ticket for which no seat is held yet.
    #[error("no seat is held for this ticket yet; it is number {position} in line")]
    NotReady {
        /// Its place in line.
        position: u32,
    },
    /// No webhook of that name in the tenant.
    #[error("no webhook with that name in this tenant")]
    WebhookNotFound,
    /// Concurrent model at its limit.
    #[error("{}", limit_message(*seats, *reserved))]
    LicenceLimitReached {
        /// Seats in the licence.
        seats: u32,
        /// Seats held now.
        seats_in_use: u32,
        /// Free seats held back for groups the user is not in (`reserve`).
        reserved: u32,
        /// Until the nearest idle deadline: the earliest a seat could free itself.
        retry_after: Option<Duration>,
    },
    /// The user already holds the most live sessions the licence allows one user.
    #[error("this user already holds as many sessions as the licence allows one user ({max_sessions_per_user}); close one and try again")]
    SessionLimitReached {
        /// The cap in force.
        max_sessions_per_user: u32,
    },
    /// The user's group already holds as many seats as the licence allows it.
    #[error("group {group} already holds as many seats as the licence allows it ({max}); try again later")]
    GroupLimitReached {
        /// The group at its cap.
        group: String,
        /// Its cap.
        max: u32,
    },
    /// The licence changed between being read and being changed (a `PATCH` racing
    /// another change); nothing was changed.
    #[error("the licence changed while this change was being made; nothing was changed, retry")]
    LicenceChanged,
    /// Named model: every seat is already assigned.
    #[error("all {seats} named seats are assigned; unassign a user or buy more seats")]
    SeatsExhausted {
        /// Seats in the licence.
        seats: u32,
    },
    /// The token is known but its session has ended.
    #[error("this session has ended ({})", reason.as_str())]
    SessionEnded {
        /// Why it ended.
        reason: EndReason,
    },
    /// A request body over the limit.
    #[error("the request body is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The server failed on its side (the store could not write); nothing was
    /// acknowledged.
    #[error("internal error: {0}")]
    Internal(String),
    /// Shed under load; try again after the hint.
    #[error("the server is overloaded; retry shortly")]
    Overloaded {
        /// When to retry.
        retry_after: Duration,
    },
    /// The store could not confirm a write in time (a stalled disk, an unreachable
    /// shared store); nothing was acknowledged.
    #[error("the store did not confirm the write in time; nothing was changed, retry shortly")]
    Unavailable {
        /// When to retry.
        retry_after: Duration,
    },
}

impl Error {
    /// The stable code of SPEC §4.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::UserNotLicensed { .. } => "user_not_licensed",
            Error::UserLimitReached { .. } => "user_limit_reached",
            Error::TenantNotFound => "tenant_not_found",
            Error::UserNotFound => "user_not_found",
            Error::SessionNotFound => "session_not_found",
            Error::WebhookNotFound => "webhook_not_found",
            Error::TicketNotFound => "ticket_not_found",
            Error::TicketEnded { .. } => "ticket_ended",
            Error::NotReady { .. } => "not_ready",
            Error::LicenceLimitReached { .. } => "licence_limit_reached",
            Error::SeatsExhausted { .. } => "seats_exhausted",
            Error::SessionLimitReached { .. } => "session_limit_reached",
            Error::GroupLimitReached { .. } => "group_limit_reached",
            Error::LicenceChanged => "licence_changed",
            Error::SessionEnded { .. } => "session_ended",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::Overloaded { .. } => "overloaded",
            Error::Unavailable { .. } => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status SPEC §4 gives this code.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidRequest(_) => 400,
            Error::Unauthorized => 401,
            Error::Forbidden(_)
            | Error::UserNotLicensed { .. }
            | Error::UserLimitReached { .. } => 403,
            Error::TenantNotFound
            | Error::UserNotFound
            | Error::SessionNotFound
            | Error::WebhookNotFound
            | Error::TicketNotFound => 404,
            Error::LicenceLimitReached { .. }
            | Error::SeatsExhausted { .. }
            | Error::SessionLimitReached { .. }
            | Error::GroupLimitReached { .. }
            | Error::LicenceChanged
            | Error::NotReady { .. } => 409,
            Error::SessionEnded { .. } | Error::TicketEnded { .. } => 410,
            Error::PayloadTooLarge { .. } => 413,
            Error::Overloaded { .. } | Error::Unavailable { .. } => 503,
            Error::Internal(_) => 500,
        }
    }

    /// A reason a login can be refused, if this is one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::LicenceLimitReached { .. } => Some(Refusal::LicenceLimitReached),
            Error::UserNotLicensed { .. } => Some(Refusal::UserNotLicensed),
            Error::UserLimitReached { .. } => Some(Refusal::UserLimitReached),
            Error::SessionLimitReached { .. } => Some(Refusal::SessionLimitReached),
            Error::GroupLimitReached { .. } => Some(Refusal::GroupLimitReached),
            _ => None,
        }
    }
}

/// Why a login was refused: the reasons the usage report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Concurrent model at its limit.
    LicenceLimitReached,
    /// Named model, user not assigned.
    UserNotLicensed,
    /// The `max_users` technical limit.
    UserLimitReached,
    /// The `max_sessions_per_user` cap.
    SessionLimitReached,
    /// A `group_max` cap.
    GroupLimitReached,
}

impl Refusal {
    /// Every reason, in the order the usage report lists them.
    pub const ALL: [Refusal; 5] = [
        Refusal::LicenceLimitReached,
        Refusal::UserNotLicensed,
        Refusal::UserLimitReached,
        Refusal::SessionLimitReached,
        Refusal::GroupLimitReached,
    ];

    /// The refusal whose error code is `code`.
    pub fn from_code(code: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// The error code of this refusal.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::LicenceLimitReached => "licence_limit_reached",
            Refusal::UserNotLicensed => "user_not_licensed",
            Refusal::UserLimitReached => "user_limit_reached",
            Refusal::SessionLimitReached => "session_limit_reached",
            Refusal::GroupLimitReached => "group_limit_reached",
        }
    }
}

fn limit_message(seats: u32, reserved: u32) -> String {
    if reserved == 0 {
        format!("all {seats} licence seats are in use; try again later or ask your administrator for more seats")
    } else {
        format!("all {seats} licence seats are in use or reserved ({reserved} for groups this user is not in); try again later or ask your administrator for more seats")
    }
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
