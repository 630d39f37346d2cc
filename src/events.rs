//! Every decision a pool makes, as an [`Event`]. The pools hand them to the event
//! consumer (`consumer`), which feeds the usage report and the subscribers.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{EndReason, Refusal};
use crate::ids::{GroupId, SessionId, TenantId, UserId};
use crate::licence::Licence;

/// One decision of one tenant's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Whose pool decided.
    pub tenant: TenantId,
    /// When.
    pub at: Timestamp,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

// An event is emitted, queued and copied to each subscriber for every decision: a
// licence travels boxed, so the event stays small.
const _: () = assert!(std::mem::size_of::<Event>() <= 80);

/// What was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The tenant was created with this licence.
    TenantCreated {
        /// The licence.
        licence: Box<Licence>,
    },
    /// The licence was replaced.
    LicenceChanged {
        /// The new licence.
        licence: Box<Licence>,
        /// Seats held under the new licence: another model or seat rule counts the
        /// same sessions differently.
        seats_in_use: u32,
    },
    /// The tenant was deleted; its sessions ended before this.
    TenantDeleted,
    /// A login was admitted.
    Admitted {
        /// Who.
        user: UserId,
        /// The new session.
        session: SessionId,
        /// Seats held after the login.
        seats_in_use: u32,
        /// Whether the login took a seat past the licensed seats, under the licence's
        /// overage allowance.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        overage: bool,
    },
    /// A login was refused.
    Refused {
        /// Who.
        user: UserId,
        /// Why.
        reason: Refusal,
    },
    /// A login was admitted but its write was not confirmed durable in time, so the
    /// answer was 503 and the seat was given back: nobody holds its token.
    Withdrawn {
        /// Who.
        user: UserId,
        /// The session that never reached its client.
        session: SessionId,
        /// Seats held after it was withdrawn.
        seats_in_use: u32,
    },
    /// A session ended.
    Ended {
        /// Whose.
        user: UserId,
        /// Which.
        session: SessionId,
        /// Why.
        reason: EndReason,
        /// Seats held after it ended.
        seats_in_use: u32,
    },
    /// A user account was created or given a named seat.
    UserAssigned {
        /// Who.
        user: UserId,
        /// Whether the user now holds a named seat.
        assigned: bool,
        /// The user's groups now.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<GroupId>,
        /// Seats held after the change.
        seats_in_use: u32,
    },
    /// A user account was removed (and its named seat freed).
    UserRemoved {
        /// Who.
        user: UserId,
        /// Seats held after the change.
        seats_in_use: u32,
    },
    /// The backend reported its record count.
    RecordsReported {
        /// The count.
        count: u64,
    },
    /// A seat kept for its user under the reload grace was not taken back in time,
    /// and is free.
    GraceLapsed {
        /// Whose it was.
        user: UserId,
        /// Seats held after it went.
        seats_in_use: u32,
    },
    /// A login at the limit was put in line (`on_limit = "queue"`).
    Queued {
        /// Who.
        user: UserId,
        /// The ticket's public id.
        ticket: SessionId,
        /// Its place in line.
        position: u32,
    },
    /// A seat is held for a ticket at the head of the line until `claim_by`.
    TicketReady {
        /// Whose.
        user: UserId,
        /// The ticket's public id.
        ticket: SessionId,
        /// Until when the seat is held.
        claim_by: Timestamp,
    },
    /// A ticket left the line: claimed (it became a session), cancelled, expired,
    /// its claim missed, or evicted.
    TicketEnded {
        /// Whose.
        user: UserId,
        /// The ticket's public id.
        ticket: SessionId,
        /// Why.
        reason: EndReason,
        /// How long it was in line, in milliseconds.
        waited_ms: u64,
    },
}
