//! What a tenant bought: the licence model and its parameters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ids::GroupId;

/// The default technical limit of user accounts per tenant.
pub const DEFAULT_MAX_USERS: u32 = 999;
/// The default idle timeout: long enough for a throttled background tab (see README).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest seat count accepted.
pub const MAX_SEATS: u32 = 1_000_000;
/// The longest idle timeout accepted (one week).
pub const MAX_IDLE_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// What one seat covers under the concurrent model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeatPer {
    /// All of a user's tabs share one seat.
    #[default]
    User,
    /// Every tab holds its own seat.
    Session,
}

/// What a concurrent licence does with a login at its limit (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// Refuse it with `licence_limit_reached`.
    #[default]
    Refuse,
    /// Take over the seat closest to expiring — the one whose latest heartbeat is
    /// oldest — unless it has been held for less than the minimum hold.
    DisplaceIdlest,
    /// Give it a ticket and a place in the waitlist (SPEC §10): freed seats are held
    /// for the head of the line, first come, first served.
    Queue,
}

impl OnLimit {
    /// The policy's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            OnLimit::Refuse => "refuse",
            OnLimit::DisplaceIdlest => "displace_idlest",
            OnLimit::Queue => "queue",
        }
    }
}

/// The default time a seat freed for the head of the waitlist is held for it.
pub const DEFAULT_QUEUE_CLAIM: Duration = Duration::from_secs(60);
/// The longest claim window accepted (an hour).
pub const MAX_QUEUE_CLAIM_SECS: u64 = 3600;

/// The default minimum hold before a seat may be displaced.
pub const DEFAULT_MIN_HOLD: Duration = Duration::from_secs(300);
/// One whole allowance, in the millionths [`Policies::overage_ppm`] counts.
pub const WHOLE_PPM: u32 = 1_000_000;

/// The seat policies of SPEC §9 a licence may carry; all default to off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "PolicyFields", try_from = "PolicyFields")]
pub struct Policies {
    /// Concurrent: seats only members of a group may take, by group. Their total is at
    /// most the seats; a seat held by a member of several groups counts for each.
    pub reserve: BTreeMap<GroupId, u32>,
    /// Concurrent: the most seats a group's members may hold at once, by group.
    pub group_max: BTreeMap<GroupId, u32>,
    /// Concurrent: admissions allowed past the seats, in millionths of the seats.
    pub overage_ppm: u32,
    /// Concurrent: what a login at the limit does.
    pub on_limit: OnLimit,
    /// Concurrent: a seat held for less than this is never displaced.
    pub min_hold: Duration,
    /// Concurrent, queueing: how long a seat freed for the head of the waitlist is
    /// held for it before it passes to the next.
    pub queue_claim: Duration,
    /// Live sessions one user may hold at once (tabs, devices).
    pub max_sessions_per_user: Option<u32>,
    /// Concurrent: how long a seat given back by a release stays its user's, so that a
    /// page reload at the limit finds it (zero: not at all).
    pub reload_grace: Duration,
    /// Named, concurrent: the share of the seats, in millionths, whose crossing raises
    /// the `near_limit` alert of webhooks.
    pub alert_at_ppm: u32,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            overage_ppm: 0,
            on_limit: OnLimit::Refuse,
            min_hold: DEFAULT_MIN_HOLD,
            queue_claim: DEFAULT_QUEUE_CLAIM,
            max_sessions_per_user: None,
            reload_grace: Duration::ZERO,
            reserve: BTreeMap::new(),
            group_max: BTreeMap::new(),
            alert_at_ppm: DEFAULT_ALERT_AT_PPM,
        }
    }
}

impl Policies {
    /// Whether these are the defaults.
    pub fn is_default(&self) -> bool {
        *self == Policies::default()
    }

    /// Whether any group is reserved seats or capped.
    pub fn has_group_rules(&self) -> bool {
        !self.reserve.is_empty() || !self.group_max.is_empty()
    }

    /// The groups whose seats are counted (reserved or capped), in order.
    pub fn counted_groups(&self) -> impl Iterator<Item = &GroupId> {
        let mut groups: Vec<&GroupId> = self.reserve.keys().chain(self.group_max.keys()).collect();
        groups.sort();
        groups.dedup();
        groups.into_iter()
    }

    /// Whether seats held by members of `group` are counted (it is reserved or capped).
    pub fn counts_group(&self, group: &GroupId) -> bool {
        self.reserve.contains_key(group) || self.group_max.contains_key(group)
    }
}

/// The longest reload grace accepted (an hour): a reload takes seconds.
pub const MAX_RELOAD_GRACE_SECS: u64 = 3600;

/// The most groups a licence may reserve or cap, and the most a user may belong to.
pub const MAX_GROUPS: usize = 32;

/// The default share of the seats whose crossing raises `near_limit`: 90 %.
pub const DEFAULT_ALERT_AT_PPM: u32 = 900_000;

/// The policies on the wire: each field only where it differs from its default, so
/// that a licence without policies reads as it always has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PolicyFields {
    /// Concurrent: the share of the seats admitted past them (0–1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage: Option<f64>,
    /// Concurrent: `refuse`, `queue` or `displace_idlest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_limit: Option<OnLimit>,
    /// Concurrent: seconds a seat is held before it may be displaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hold_secs: Option<u64>,
    /// Concurrent: seconds a seat freed for the head of the waitlist is held for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_claim_secs: Option<u64>,
    /// Live sessions one user may hold at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions_per_user: Option<u32>,
    /// Concurrent: seconds a released seat stays its user's, for a page reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_grace_secs: Option<u64>,
    /// Concurrent: seats only members of a group may take, by group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "server", schema(value_type = BTreeMap<String, u32>))]
    pub reserve: BTreeMap<GroupId, u32>,
    /// Concurrent: the most seats a group's members may hold at once, by group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "server", schema(value_type = BTreeMap<String, u32>))]
    pub group_max: BTreeMap<GroupId, u32>,
    /// Named, concurrent: the share of the seats (above 0, at most 1) whose crossing
    /// raises `near_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_at: Option<f64>,
}

impl From<Policies> for PolicyFields {
    fn from(p: Policies) -> Self {
        let d = Policies::default();
        PolicyFields {
            overage: (p.overage_ppm != 0).then(|| f64::from(p.overage_ppm) / f64::from(WHOLE_PPM)),
            on_limit: (p.on_limit != d.on_limit).then_some(p.on_limit),
            min_hold_secs: (p.min_hold != d.min_hold).then_some(p.min_hold.as_secs()),
            queue_claim_secs: (p.queue_claim != d.queue_claim).then_some(p.queue_claim.as_secs()),
            max_sessions_per_user: p.max_sessions_per_user,
            reload_grace_secs: (!p.reload_grace.is_zero()).then_some(p.reload_grace.as_secs()),
            reserve: p.reserve,
            group_max: p.group_max,
            alert_at: (p.alert_at_ppm != d.alert_at_ppm)
                .then(|| f64::from(p.alert_at_ppm) / f64::from(WHOLE_PPM)),
        }
    }
}

impl TryFrom<PolicyFields> for Policies {
    type Error = Error;

    fn try_from(f: PolicyFields) -> Result<Self, Error> {
        let d = Policies::default();
        Ok(Policies {
            overage_ppm: match f.overage {
                None => 0,
                Some(share) => overage_ppm(share)?,
            },
            on_limit: f.on_limit.unwrap_or(d.on_limit),
            min_hold: f.min_hold_secs.map_or(d.min_hold, Duration::from_secs),
            queue_claim: f
                .queue_claim_secs
                .map_or(d.queue_claim, Duration::from_secs),
            max_sessions_per_user: f.max_sessions_per_user,
            reload_grace: Duration::from_secs(f.reload_grace_secs.unwrap_or(0)),
            reserve: f.reserve,
            group_max: f.group_max,
            alert_at_ppm: match f.alert_at {
                None => d.alert_at_ppm,
                Some(share) => alert_at_ppm(share)?,
            },
        })
    }
}

/// An alert share (above 0, at most 1) in millionths of the seats.
fn alert_at_ppm(share: f64) -> Result<u32, Error> {
    if share > 0.0 && share <= 1.0 {
        Ok(((share * f64::from(WHOLE_PPM)).round() as u32).max(1))
    } else {
        invalid(format!(
            "\"alert_at\" must be above 0 and at most 1, got {share}"
        ))
    }
}

/// An overage share (0–1) in millionths of the seats.
fn overage_ppm(share: f64) -> Result<u32, Error> {
    if (0.0..=1.0).contains(&share) {
        Ok((share * f64::from(WHOLE_PPM)).round() as u32)
    } else {
        invalid(format!("\"overage\" must be between 0 and 1, got {share}"))
    }
}

/// The three licence models of SPEC §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum LicenceModel {
    /// Seats assigned to specific users; every assigned user may log in at any time.
    Named {
        /// How many users may be assigned.
        seats: u32,
    },
    /// At most `seats` seats held at once.
    Concurrent {
        /// The limit.
        seats: u32,
        /// Whether a seat is per user or per tab.
        seat_per: SeatPer,
    },
    /// No seat limit; billed by the tenant's record count.
    Records,
}

impl LicenceModel {
    /// The model's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            LicenceModel::Named { .. } => "named",
            LicenceModel::Concurrent { .. } => "concurrent",
            LicenceModel::Records => "records",
        }
    }

    /// The seat count, where the model has one.
    pub fn seats(&self) -> Option<u32> {
        match *self {
            LicenceModel::Named { seats } | LicenceModel::Concurrent { seats, .. } => Some(seats),
            LicenceModel::Records => None,
        }
    }
}

/// A validated licence. Serialized flat, in the shape of the HTTP API:
/// `{"model", "seats", "seat_per", "idle_timeout_secs", "max_users"}` and the
/// policies that differ from their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "LicenceFields", try_from = "LicenceFields")]
pub struct Licence {
    /// The model and its seats.
    pub model: LicenceModel,
    /// How long a session lives without a heartbeat.
    pub idle_timeout: Duration,
    /// The technical limit of user accounts.
    pub max_users: u32,
    /// The seat policies.
    pub policies: Policies,
}

impl Licence {
    /// A named-users licence with defaults.
    pub fn named(seats: u32) -> Self {
        Self::with_model(LicenceModel::Named { seats })
    }

    /// A concurrent-users licence (one seat per user) with defaults.
    pub fn concurrent(seats: u32) -> Self {
        Self::with_model(LicenceModel::Concurrent {
            seats,
            seat_per: SeatPer::User,
        })
    }

    /// A records-based licence with defaults.
    pub fn records() -> Self {
        Self::with_model(LicenceModel::Records)
    }

    /// The seat rule released seats are kept under, when the licence keeps them (a
    /// concurrent licence with a reload grace). A change keeps kept seats only when
    /// both licences keep them under the same rule.
    pub fn keeps_seats_per(&self) -> Option<SeatPer> {
        match self.model {
            LicenceModel::Concurrent { seat_per, .. } if !self.policies.reload_grace.is_zero() => {
                Some(seat_per)
            }
            _ => None,
        }
    }

    /// Whether released seats are kept under a reload grace.
    pub fn keeps_seats(&self) -> bool {
        self.keeps_seats_per().is_some()
    }

    /// Whether seats are counted per group (a concurrent licence that reserves seats
    /// for groups or caps them).
    pub fn has_group_rules(&self) -> bool {
        matches!(self.model, LicenceModel::Concurrent { .. }) && self.policies.has_group_rules()
    }

    fn with_model(model: LicenceModel) -> Self {
        Licence {
            model,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_users: DEFAULT_MAX_USERS,
            policies: Policies::default(),
        }
    }

    /// The most seats the licence lets be held at once: the seats and the overage
    /// past them (`floor(seats × (1 + overage))`). None for records.
    pub fn limit(&self) -> Option<u32> {
        match self.model {
            LicenceModel::Concurrent { seats, .. } => {
                let past =
                    u64::from(seats) * u64::from(self.policies.overage_ppm) / u64::from(WHOLE_PPM);
                Some(seats + past as u32)
            }
            LicenceModel::Named { seats } => Some(seats),
            LicenceModel::Records => None,
        }
    }

    /// The same licence with an overage allowance: a share of the seats (0–1)
    /// admitted past them (concurrent only; otherwise unchanged). Panics outside 0–1.
    pub fn overage(mut self, share: f64) -> Self {
        let ppm = overage_ppm(share).expect("an overage between 0 and 1");
        if self.is_concurrent() {
            self.policies.overage_ppm = ppm;
        }
        self
    }

    /// The same licence with another policy at the limit (concurrent only; otherwise
    /// unchanged).
    pub fn on_limit(mut self, on_limit: OnLimit) -> Self {
        if self.is_concurrent() {
            self.policies.on_limit = on_limit;
        }
        self
    }

    /// The same licence with another claim window for the head of the waitlist
    /// (concurrent only; otherwise unchanged).
    pub fn queue_claim(mut self, window: Duration) -> Self {
        if self.is_concurrent() {
            self.policies.queue_claim = window;
        }
        self
    }

    /// The same licence with another minimum hold before displacement (concurrent
    /// only; otherwise unchanged).
    pub fn min_hold(mut self, min_hold: Duration) -> Self {
        if self.is_concurrent() {
            self.policies.min_hold = min_hold;
        }
        self
    }

    /// The same licence with `seats` held back for members of `group` (concurrent
    /// only; otherwise unchanged). Panics on an invalid group id.
    pub fn reserve(mut self, group: &str, seats: u32) -> Self {
        if self.is_concurrent() {
            let group = GroupId::parse(group).expect("a valid group id");
            self.policies.reserve.insert(group, seats);
        }
        self
    }

    /// The same licence with at most `seats` held by members of `group` (concurrent
    /// only; otherwise unchanged). Panics on an invalid group id.
    pub fn group_max(mut self, group: &str, seats: u32) -> Self {
        if self.is_concurrent() {
            let group = GroupId::parse(group).expect("a valid group id");
            self.policies.group_max.insert(group, seats);
        }
        self
    }

    /// The same licence with a reload grace (concurrent only; otherwise unchanged).
    pub fn reload_grace(mut self, grace: Duration) -> Self {
        if self.is_concurrent() {
            self.policies.reload_grace = grace;
        }
        self
    }

    fn is_concurrent(&self) -> bool {
        matches!(self.model, LicenceModel::Concurrent { .. })
    }

    /// The same licence with a cap on one user's live sessions; a cap of 0 is no cap
    /// (as the HTTP API, which refuses it, and every backend read it alike).
    pub fn max_sessions_per_user(mut self, cap: u32) -> Self {
        self.policies.max_sessions_per_user = (cap > 0).then_some(cap);
        self
    }

    /// The same licence with another idle timeout.
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// The same licence with another account limit.
    pub fn max_users(mut self, max_users: u32) -> Self {
        self.max_users = max_users;
        self
    }

    /// The same licence with another seat rule (concurrent only; otherwise unchanged).
    pub fn seat_per(mut self, per: SeatPer) -> Self {
        if let LicenceModel::Concurrent { seat_per, .. } = &mut self.model {
            *seat_per = per;
        }
        self
    }

    /// How often a client should heartbeat: a quarter of the idle timeout, so that a
    /// background tab whose timers the browser throttles to once a minute still
    /// heartbeats in time under the default ten-minute timeout.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs((self.idle_timeout.as_secs() / 4).max(1))
    }

    /// How often a waitlist ticket should heartbeat: as a session, but at least four
    /// times per claim window, so that a tab learns a seat is held for it in time to
    /// claim it.
    pub fn ticket_heartbeat_interval(&self) -> Duration {
        let claim = (self.policies.queue_claim.as_secs() / 4).max(1);
        self.heartbeat_interval().min(Duration::from_secs(claim))
    }
}

/// The flat form of a [`Licence`] in events and stores.
#[derive(Serialize, Deserialize)]
struct LicenceFields {
    model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seat_per: Option<SeatPer>,
    idle_timeout_secs: u64,
    max_users: u32,
    #[serde(flatten)]
    policies: PolicyFields,
}

impl From<Licence> for LicenceFields {
    fn from(licence: Licence) -> Self {
        let seat_per = match licence.model {
            LicenceModel::Concurrent { seat_per, .. } => Some(seat_per),
            _ => None,
        };
        LicenceFields {
            model: licence.model.name().into(),
            seats: licence.model.seats(),
            seat_per,
            idle_timeout_secs: licence.idle_timeout.as_secs(),
            max_users: licence.max_users,
            policies: licence.policies.into(),
        }
    }
}

impl TryFrom<LicenceFields> for Licence {
    type Error = Error;

    fn try_from(fields: LicenceFields) -> Result<Self, Error> {
        LicenceSpec {
            model: fields.model,
            seats: fields.seats.map(i64::from),
            seat_per: fields.seat_per.map(|p| match p {
                SeatPer::User => "user".into(),
                SeatPer::Session => "session".into(),
            }),
            idle_timeout_secs: Some(fields.idle_timeout_secs as i64),
            max_users: Some(i64::from(fields.max_users)),
            overage: fields.policies.overage,
            on_limit: fields.policies.on_limit.map(|p| p.as_str().into()),
            min_hold_secs: fields.policies.min_hold_secs.map(|s| s as i64),
            queue_claim_secs: fields.policies.queue_claim_secs.map(|s| s as i64),
            max_sessions_per_user: fields.policies.max_sessions_per_user.map(i64::from),
            reload_grace_secs: fields.policies.reload_grace_secs.map(|s| s as i64),
            reserve: groups_spec(&fields.policies.reserve),
            group_max: groups_spec(&fields.policies.group_max),
            alert_at: fields.policies.alert_at,
        }
        .validate(fields.max_users)
    }
}

fn groups_spec(groups: &BTreeMap<GroupId, u32>) -> Option<BTreeMap<String, i64>> {
    (!groups.is_empty()).then(|| {
        groups
            .iter()
            .map(|(g, n)| (g.to_string(), i64::from(*n)))
            .collect()
    })
}

/// A licence as a request states it: every field but the model optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenceSpec {
    /// `named`, `concurrent` or `records`.
    pub model: String,
    /// Seats (named, concurrent).
    #[serde(default, deserialize_with = "whole::optional")]
    pub seats: Option<i64>,
    /// `user` or `session` (concurrent).
    pub seat_per: Option<String>,
    /// Idle timeout in seconds (default 600, at least 1).
    #[serde(default, deserialize_with = "whole::optional")]
    pub idle_timeout_secs: Option<i64>,
    /// Account limit (default: the server's).
    #[serde(default, deserialize_with = "whole::optional")]
    pub max_users: Option<i64>,
    /// Concurrent: the share of the seats admitted past them, 0–1 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage: Option<f64>,
    /// Concurrent: `refuse` (default), `queue` or `displace_idlest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_limit: Option<String>,
    /// Concurrent: seconds a seat freed for the head of the waitlist is held for it
    /// (default 60, 1–3600).
    #[serde(
        default,
        deserialize_with = "whole::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_claim_secs: Option<i64>,
    /// Concurrent: seconds a seat is held before it may be displaced (default 300).
    #[serde(
        default,
        deserialize_with = "whole::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_hold_secs: Option<i64>,
    /// Live sessions one user may hold at once (default: no cap).
    #[serde(
        default,
        deserialize_with = "whole::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_sessions_per_user: Option<i64>,
    /// Concurrent: seconds a seat given back by a release stays its user's, so that a
    /// page reload at the limit finds it (default 0: not at all).
    #[serde(
        default,
        deserialize_with = "whole::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub reload_grace_secs: Option<i64>,
    /// Concurrent: seats only members of a group may take, by group (e.g.
    /// `{"finance": 2}`); at most the seats in all.
    #[serde(
        default,
        deserialize_with = "whole::optional_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub reserve: Option<BTreeMap<String, i64>>,
    /// Concurrent: the most seats a group's members may hold at once, by group.
    #[serde(
        default,
        deserialize_with = "whole::optional_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_max: Option<BTreeMap<String, i64>>,
    /// Named, concurrent: the share of the seats (above 0, at most 1) whose crossing
    /// raises the `near_limit` alert of webhooks (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_at: Option<f64>,
}

impl LicenceSpec {
    /// Checks the request and fills in defaults.
    pub fn validate(&self, default_max_users: u32) -> Result<Licence, Error> {
        let seats = || -> Result<u32, Error> {
            match self.seats {
                None => invalid(format!("model {} needs \"seats\"", self.model)),
                Some(n) if (0..=i64::from(MAX_SEATS)).contains(&n) => Ok(n as u32),
                Some(n) => invalid(format!(
                    "\"seats\" must be between 0 and {MAX_SEATS}, got {n}"
                )),
            }
        };
        let model = match self.model.as_str() {
            "named" => LicenceModel::Named { seats: seats()? },
            "concurrent" => LicenceModel::Concurrent {
                seats: seats()?,
                seat_per: match self.seat_per.as_deref() {
                    None | Some("user") => SeatPer::User,
                    Some("session") => SeatPer::Session,
                    Some(other) => {
                        return invalid(format!(
                            "\"seat_per\" must be \"user\" or \"session\", got {other:?}"
                        ))
                    }
                },
            },
            "records" => {
                if self.seats.is_some() {
                    return invalid("the records model has no seats; omit \"seats\"".into());
                }
                LicenceModel::Records
            }
            other => {
                return invalid(format!(
                    "\"model\" must be \"named\", \"concurrent\" or \"records\", got {other:?}"
                ))
            }
        };
        if self.seat_per.is_some() && !matches!(model, LicenceModel::Concurrent { .. }) {
            return invalid("\"seat_per\" applies to the concurrent model only".into());
        }
        let idle_secs = match self.idle_timeout_secs {
            None => DEFAULT_IDLE_TIMEOUT.as_secs(),
            Some(n) if (1..=MAX_IDLE_TIMEOUT_SECS as i64).contains(&n) => n as u64,
            Some(n) => {
                return invalid(format!(
                    "\"idle_timeout_secs\" must be between 1 and {MAX_IDLE_TIMEOUT_SECS}, got {n}"
                ))
            }
        };
        let max_users = match self.max_users {
            None => default_max_users,
            Some(n) if (1..=1_000_000).contains(&n) => n as u32,
            Some(n) => {
                return invalid(format!(
                    "\"max_users\" must be between 1 and 1000000, got {n}"
                ))
            }
        };
        Ok(Licence {
            model,
            idle_timeout: Duration::from_secs(idle_secs),
            max_users,
            policies: self.policies(&model)?,
        })
    }

    fn policies(&self, model: &LicenceModel) -> Result<Policies, Error> {
        let concurrent = matches!(model, LicenceModel::Concurrent { .. });
        for (field, given) in [
            ("overage", self.overage.is_some()),
            ("on_limit", self.on_limit.is_some()),
            ("min_hold_secs", self.min_hold_secs.is_some()),
            ("queue_claim_secs", self.queue_claim_secs.is_some()),
            ("reload_grace_secs", self.reload_grace_secs.is_some()),
            ("reserve", self.reserve.is_some()),
            ("group_max", self.group_max.is_some()),
        ] {
            if given && !concurrent {
                return invalid(format!("\"{field}\" applies to the concurrent model only"));
            }
        }
        if self.alert_at.is_some() && matches!(model, LicenceModel::Records) {
            return invalid("\"alert_at\" applies to the named and concurrent models only".into());
        }
        let d = Policies::default();
        let on_limit = match self.on_limit.as_deref() {
            None | Some("refuse") => OnLimit::Refuse,
            Some("displace_idlest") => OnLimit::DisplaceIdlest,
            Some("queue") => OnLimit::Queue,
            Some(other) => {
                return invalid(format!(
                "\"on_limit\" must be \"refuse\", \"queue\" or \"displace_idlest\", got {other:?}"
            ))
            }
        };
        let queue_claim = match self.queue_claim_secs {
            None => d.queue_claim,
            Some(n) if (1..=MAX_QUEUE_CLAIM_SECS as i64).contains(&n) => {
                Duration::from_secs(n as u64)
            }
            Some(n) => {
                return invalid(format!(
                    "\"queue_claim_secs\" must be between 1 and {MAX_QUEUE_CLAIM_SECS}, got {n}"
                ))
            }
        };
        let min_hold = match self.min_hold_secs {
            None => d.min_hold,
            Some(n) if (0..=MAX_IDLE_TIMEOUT_SECS as i64).contains(&n) => {
                Duration::from_secs(n as u64)
            }
            Some(n) => {
                return invalid(format!(
                    "\"min_hold_secs\" must be between 0 and {MAX_IDLE_TIMEOUT_SECS}, got {n}"
                ))
            }
        };
        let max_sessions_per_user = match self.max_sessions_per_user {
            None => None,
            Some(n) if (1..=i64::from(MAX_SEATS)).contains(&n) => Some(n as u32),
            Some(n) => {
                return invalid(format!(
                    "\"max_sessions_per_user\" must be between 1 and {MAX_SEATS}, got {n}"
                ))
            }
        };
        let reload_grace = match self.reload_grace_secs {
            None => Duration::ZERO,
            Some(n) if (0..=MAX_RELOAD_GRACE_SECS as i64).contains(&n) => {
                Duration::from_secs(n as u64)
            }
            Some(n) => {
                return invalid(format!(
                    "\"reload_grace_secs\" must be between 0 and {MAX_RELOAD_GRACE_SECS}, got {n}"
                ))
            }
        };
        let seats = model.seats().unwrap_or(0);
        let reserve = groups("reserve", self.reserve.as_ref(), seats)?;
        let group_max = groups("group_max", self.group_max.as_ref(), seats)?;
        let reserved: u64 = reserve.values().map(|&n| u64::from(n)).sum();
        if reserved > u64::from(seats) {
            return invalid(format!(
                "\"reserve\" holds back {reserved} seats in all, more than the licence's {seats}"
            ));
        }
        for (group, &held_back) in &reserve {
            if let Some(&max) = group_max.get(group) {
                if held_back > max {
                    return invalid(format!(
                        "\"reserve\" holds back {held_back} seats for {group}, more than its \"group_max\" of {max}"
                    ));
                }
            }
        }
        if on_limit != OnLimit::Refuse && !(reserve.is_empty() && group_max.is_empty()) {
            return invalid(format!(
                "\"reserve\" and \"group_max\" do not combine with \"on_limit\": \"{}\"",
                on_limit.as_str()
            ));
        }
        Ok(Policies {
            overage_ppm: match self.overage {
                None => 0,
                Some(share) => overage_ppm(share)?,
            },
            on_limit,
            min_hold,
            queue_claim,
            max_sessions_per_user,
            reload_grace,
            reserve,
            group_max,
            alert_at_ppm: match self.alert_at {
                None => d.alert_at_ppm,
                Some(share) => alert_at_ppm(share)?,
            },
        })
    }
}

/// A map of groups to seat counts (`reserve`, `group_max`), each from 0 to `seats`.
fn groups(
    field: &str,
    given: Option<&BTreeMap<String, i64>>,
    seats: u32,
) -> Result<BTreeMap<GroupId, u32>, Error> {
    let Some(given) = given else {
        return Ok(BTreeMap::new());
    };
    if given.len() > MAX_GROUPS {
        return invalid(format!(
            "\"{field}\" names {} groups; at most {MAX_GROUPS} are allowed",
            given.len()
        ));
    }
    let mut out = BTreeMap::new();
    for (name, &n) in given {
        let group =
            GroupId::parse(name).map_err(|e| Error::InvalidRequest(format!("\"{field}\": {e}")))?;
        if !(0..=i64::from(seats)).contains(&n) {
            return invalid(format!(
                "\"{field}\" of {group} must be between 0 and the licence's {seats} seats, got {n}"
            ));
        }
        out.insert(group, n as u32);
    }
    Ok(out)
}

fn invalid<T>(message: String) -> Result<T, Error> {
    Err(Error::InvalidRequest(message))
}

/// Whole numbers as JSON may write them, `3` or `3.0`: JSON Schema's `integer` admits
/// both, and so does the API. A fraction, or a number outside `i64`, is refused.
pub mod whole {
    use std::fmt;

    use serde::de::{self, Deserializer, Unexpected, Visitor};
    use serde::Deserialize;

    /// 2^63: the first float past `i64::MAX`.
    const PAST_I64: f64 = 9_223_372_036_854_775_808.0;

    struct Whole(i64);

    impl<'de> Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_i64(WholeVisitor).map(Whole)
        }
    }

    struct WholeVisitor;

    impl Visitor<'_> for WholeVisitor {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number from -2^63 to 2^63-1")
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
            Ok(n)
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<i64, E> {
            i64::try_from(n).map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<i64, E> {
            if n.fract() != 0.0 {
                Err(E::invalid_type(Unexpected::Float(n), &self))
            } else if (-PAST_I64..PAST_I64).contains(&n) {
                Ok(n as i64)
            } else {
                Err(E::invalid_value(Unexpected::Float(n), &self))
            }
        }
    }

    /// For `#[serde(default, deserialize_with = "whole::optional")]`: a whole number or
    /// null.
    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Ok(Option::<Whole>::deserialize(deserializer)?.map(|w| w.0))
    }

    /// Whole numbers by group, each group given once: a group twice is refused rather
    /// than the last one silently winning.
    struct Groups(std::collections::BTreeMap<String, i64>);

    impl<'de> Deserialize<'de> for Groups {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(GroupsVisitor)
        }
    }

    struct GroupsVisitor;

    impl<'de> serde::de::Visitor<'de> for GroupsVisitor {
        type Value = Groups;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of whole numbers by group")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Groups, A::Error> {
            let mut groups = std::collections::BTreeMap::new();
            while let Some((group, Whole(n))) = map.next_entry::<String, Whole>()? {
                if groups.contains_key(&group) {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate group `{group}`"
                    )));
                }
                groups.insert(group, n);
            }
            Ok(Groups(groups))
        }
    }

    /// For `#[serde(default, deserialize_with = "whole::optional_map")]`: a map of names
    /// to whole numbers, or null.
    pub fn optional_map<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<std::collections::BTreeMap<String, i64>>, D::Error> {
        let map: Option<Groups> = Option::deserialize(deserializer)?;
        Ok(map.map(|groups| groups.0))
    }

    /// For `#[serde(deserialize_with = "whole::count")]`: a whole number from 0 to
    /// 2^63-1.
    pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let Whole(n) = Whole::deserialize(deserializer)?;
        u64::try_from(n).map_err(|_| {
            de::Error::invalid_value(Unexpected::Signed(n), &"a whole number at least 0")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: &str) -> LicenceSpec {
        LicenceSpec {
            model: model.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_concurrent_spec_defaults_to_a_seat_per_user_and_ten_minutes() {
        let licence = LicenceSpec {
            seats: Some(5),
            ..spec("concurrent")
        }
        .validate(999)
        .unwrap();
        assert_eq!(licence, Licence::concurrent(5));
    }

    #[test]
    fn specs_out_of_range_are_refused_with_a_reason() {
        let cases = [
            LicenceSpec {
                seats: Some(-1),
                ..spec("concurrent")
            },
            LicenceSpec { ..spec("named") },
            LicenceSpec {
                seats: Some(1),
                ..spec("floating")
            },
            LicenceSpec {
                seats: Some(1),
                idle_timeout_secs: Some(0),
                ..spec("named")
            },
            LicenceSpec {
                seats: Some(1),
                seat_per: Some("tab".into()),
                ..spec("concurrent")
            },
            LicenceSpec {
                seat_per: Some("user".into()),
                ..spec("records")
            },
            LicenceSpec {
                max_users: Some(0),
                ..spec("records")
            },
        ];
        for case in cases {
            let err = case.validate(999).unwrap_err();
            assert_eq!(err.code(), "invalid_request", "{case:?}");
        }
    }

    #[test]
    fn licences_serialize_flat_and_back() {
        let licence = Licence::concurrent(3).seat_per(SeatPer::Session);
        let json = serde_json::to_value(&licence).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "concurrent", "seats": 3, "seat_per": "session",
                "idle_timeout_secs": 600, "max_users": 999})
        );
        assert_eq!(serde_json::from_value::<Licence>(json).unwrap(), licence);
    }

    #[test]
    fn policies_are_read_validated_and_written_back_only_where_set() {
        let read = |json: &str| {
            serde_json::from_str::<LicenceSpec>(json)
                .map_err(|e| e.to_string())
                .and_then(|spec| spec.validate(999).map_err(|e| e.to_string()))
        };
        let licence = read(
            r#"{"model": "concurrent", "seats": 10, "overage": 0.2, "on_limit": "displace_idlest",
                "min_hold_secs": 60, "max_sessions_per_user": 3}"#,
        )
        .unwrap();
        assert_eq!(licence.limit(), Some(12));
        assert_eq!(
            licence.policies,
            Policies {
                overage_ppm: 200_000,
                on_limit: OnLimit::DisplaceIdlest,
                min_hold: Duration::from_secs(60),
                max_sessions_per_user: Some(3),
                ..Policies::default()
            }
        );
        let json = serde_json::to_value(&licence).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "concurrent", "seats": 10, "seat_per": "user",
                "idle_timeout_secs": 600, "max_users": 999, "overage": 0.2,
                "on_limit": "displace_idlest", "min_hold_secs": 60, "max_sessions_per_user": 3})
        );
        assert_eq!(serde_json::from_value::<Licence>(json).unwrap(), licence);
        // A licence may queue at its limit (the waitlist).
        assert_eq!(
            read(r#"{"model": "concurrent", "seats": 1, "on_limit": "queue"}"#)
                .unwrap()
                .policies
                .on_limit,
            OnLimit::Queue
        );
        // A cap applies to every model.
        assert_eq!(
            read(r#"{"model": "named", "seats": 2, "max_sessions_per_user": 1}"#)
                .unwrap()
                .policies
                .max_sessions_per_user,
            Some(1)
        );

        for (bad, says) in [
            (
                r#"{"model": "concurrent", "seats": 1, "overage": 1.5}"#,
                "between 0 and 1",
            ),
            (
                r#"{"model": "concurrent", "seats": 1, "overage": -0.1}"#,
                "between 0 and 1",
            ),
            (
                r#"{"model": "concurrent", "seats": 1, "on_limit": "evict"}"#,
                "\"refuse\", \"queue\" or",
            ),
            (
                r#"{"model": "concurrent", "seats": 1, "on_limit": "queue", "queue_claim_secs": 3601}"#,
                "\"queue_claim_secs\" must be between 1 and 3600",
            ),
            (
                r#"{"model": "named", "seats": 1, "queue_claim_secs": 30}"#,
                "concurrent model only",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "group_max": {"finance": 1},
                    "on_limit": "queue"}"#,
                "do not combine",
            ),
            (
                r#"{"model": "concurrent", "seats": 1, "min_hold_secs": -1}"#,
                "min_hold_secs",
            ),
            (
                r#"{"model": "concurrent", "seats": 1, "max_sessions_per_user": 0}"#,
                "between 1",
            ),
            (
                r#"{"model": "named", "seats": 1, "overage": 0.5}"#,
                "concurrent model only",
            ),
            (
                r#"{"model": "named", "seats": 4, "reserve": {"finance": 1}}"#,
                "concurrent model only",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "reserve": {"finance": 3, "hr": 2}}"#,
                "\"reserve\" holds back 5 seats in all, more than the licence's 4",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "reserve": {"finance": 3},
                    "group_max": {"finance": 2}}"#,
                "more than its \"group_max\" of 2",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "group_max": {"finance": 5}}"#,
                "\"group_max\" of finance must be between 0 and the licence's 4 seats, got 5",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "group_max": {"fin ance": 1}}"#,
                "\"group_max\": group id may only contain",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "reserve": {"finance": 1.5}}"#,
                "whole number",
            ),
            (
                r#"{"model": "concurrent", "seats": 4, "reserve": {"finance": 1},
                    "on_limit": "displace_idlest"}"#,
                "do not combine",
            ),
            (
                r#"{"model": "records", "on_limit": "refuse"}"#,
                "concurrent model only",
            ),
            (
                r#"{"model": "named", "seats": 1, "min_hold_secs": 5}"#,
                "concurrent model only",
            ),
            (
                r#"{"model": "concurrent", "seats": 1, "overage": "0.5"}"#,
                "invalid type",
            ),
        ] {
            let error = read(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn group_rules_are_read_as_whole_numbers_and_written_back_by_group() {
        let spec: LicenceSpec = serde_json::from_str(
            r#"{"model": "concurrent", "seats": 10, "reserve": {"finance": 2.0, "hr": 1},
                "group_max": {"volunteers": 5}}"#,
        )
        .unwrap();
        let licence = spec.validate(999).unwrap();
        assert_eq!(
            licence,
            Licence::concurrent(10)
                .reserve("finance", 2)
                .reserve("hr", 1)
                .group_max("volunteers", 5)
        );
        let json = serde_json::to_value(&licence).unwrap();
        assert_eq!(json["reserve"], serde_json::json!({"finance": 2, "hr": 1}));
        assert_eq!(json["group_max"], serde_json::json!({"volunteers": 5}));
        assert_eq!(serde_json::from_value::<Licence>(json).unwrap(), licence);
    }

    #[test]
    fn the_limit_is_the_seats_and_the_floor_of_their_overage() {
        assert_eq!(Licence::concurrent(3).overage(0.5).limit(), Some(4));
        assert_eq!(Licence::concurrent(7).overage(1.0).limit(), Some(14));
        assert_eq!(Licence::concurrent(9).overage(0.1).limit(), Some(9));
        assert_eq!(Licence::concurrent(10).overage(0.1).limit(), Some(11));
        let most = Licence::concurrent(MAX_SEATS).overage(1.0);
        assert_eq!(most.limit(), Some(2 * MAX_SEATS));
        // The concurrent policies leave other models as they are.
        assert_eq!(Licence::named(3).overage(0.5), Licence::named(3));
        assert_eq!(
            Licence::records().on_limit(OnLimit::DisplaceIdlest),
            Licence::records()
        );
    }

    #[test]
    fn a_ticket_heartbeats_often_enough_to_claim_its_seat_in_time() {
        let licence = Licence::concurrent(1).on_limit(OnLimit::Queue);
        assert_eq!(licence.ticket_heartbeat_interval(), Duration::from_secs(15));
        let short = licence.clone().queue_claim(Duration::from_secs(2));
        assert_eq!(short.ticket_heartbeat_interval(), Duration::from_secs(1));
        let quick = Licence::concurrent(1)
            .idle_timeout(Duration::from_secs(20))
            .on_limit(OnLimit::Queue);
        assert_eq!(quick.ticket_heartbeat_interval(), Duration::from_secs(5));
    }

    #[test]
    fn the_heartbeat_interval_leaves_room_for_throttled_tabs() {
        assert_eq!(
            Licence::concurrent(1).heartbeat_interval(),
            Duration::from_secs(150)
        );
        let short = Licence::concurrent(1).idle_timeout(Duration::from_secs(2));
        assert_eq!(short.heartbeat_interval(), Duration::from_secs(1));
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats_but_fractions_are_refused() {
        let read = |json: &str| serde_json::from_str::<LicenceSpec>(json);
        let spec =
            read(r#"{"model": "named", "seats": 3.0, "idle_timeout_secs": 60, "max_users": null}"#)
                .unwrap();
        assert_eq!(
            (spec.seats, spec.idle_timeout_secs, spec.max_users),
            (Some(3), Some(60), None)
        );
        assert_eq!(read(r#"{"model": "records"}"#).unwrap().seats, None);
        for bad in [
            r#"{"model": "named", "seats": 3.5}"#,
            r#"{"model": "named", "seats": 1e19}"#,
            r#"{"model": "named", "seats": 9223372036854775808}"#,
            r#"{"model": "named", "seats": "3"}"#,
        ] {
            let error = read(bad).unwrap_err().to_string();
            assert!(error.contains("whole number"), "{bad}: {error}");
        }
        #[derive(Debug, serde::Deserialize)]
        struct Count(#[serde(deserialize_with = "whole::count")] u64);
        let count = |json: &str| serde_json::from_str::<Count>(json).map(|c| c.0);
        assert_eq!(count("7.0").unwrap(), 7);
        assert_eq!(count("9223372036854775807").unwrap(), i64::MAX as u64);
        assert!(count("9223372036854775808").is_err());
        assert!(count("-1").is_err());
    }

    #[test]
    fn a_licence_in_the_config_file_reads_its_numbers_too() {
        let spec: LicenceSpec =
            toml::from_str("model = \"concurrent\"\nseats = 4\nidle_timeout_secs = 90\n").unwrap();
        assert_eq!(
            (spec.seats, spec.idle_timeout_secs, spec.max_users),
            (Some(4), Some(90), None)
        );
        assert!(toml::from_str::<LicenceSpec>("model = \"named\"\nseats = 1.5\n").is_err());
    }
}
