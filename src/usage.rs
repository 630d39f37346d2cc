//! The usage report: per tenant and day, the figures a customer needs to decide whether
//! to buy more licences. Built from events by the consumer thread.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{EndReason, Refusal};
use crate::events::{Event, EventKind};
use crate::ids::TenantId;
use crate::licence::{Licence, LicenceModel};

/// How many days of usage are kept per tenant.
pub const USAGE_DAYS_KEPT: usize = 400;

const MILLIS_PER_DAY: u64 = 24 * 3600 * 1000;

/// The most served tickets' waits one day keeps for its percentiles.
pub const WAITS_KEPT: usize = 100_000;

/// Refused logins of one day, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Refusals {
    /// Concurrent model at its limit.
    pub licence_limit_reached: u64,
    /// Named model, user not assigned.
    pub user_not_licensed: u64,
    /// Account limit.
    pub user_limit_reached: u64,
    /// A user's cap on live sessions.
    #[serde(default)]
    pub session_limit_reached: u64,
    /// A group's cap on seats.
    #[serde(default)]
    pub group_limit_reached: u64,
}

impl Refusals {
    fn count(&mut self, reason: Refusal) {
        *match reason {
            Refusal::LicenceLimitReached => &mut self.licence_limit_reached,
            Refusal::UserNotLicensed => &mut self.user_not_licensed,
            Refusal::UserLimitReached => &mut self.user_limit_reached,
            Refusal::SessionLimitReached => &mut self.session_limit_reached,
            Refusal::GroupLimitReached => &mut self.group_limit_reached,
        } += 1;
    }

    /// All refusals of the day.
    pub fn total(&self) -> u64 {
        self.licence_limit_reached
            + self.user_not_licensed
            + self.user_limit_reached
            + self.session_limit_reached
            + self.group_limit_reached
    }
}

/// One tenant's usage on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DayUsage {
    /// The day.
    pub day: NaiveDate,
    /// The most seats held at once.
    pub peak_seats_in_use: u32,
    /// Admitted logins.
    pub logins: u64,
    /// Refused logins, by reason.
    pub refusals: Refusals,
    /// Sessions ended by the idle timeout.
    pub expiries: u64,
    /// The highest record count reported (or carried over from the day before).
    pub peak_records: u64,
    /// Concurrent: the most seats held at once past the licensed seats, whether taken
    /// under the overage allowance or left held by a lowered licence.
    #[serde(default)]
    pub peak_overage_seats: u32,
    /// Concurrent: seats held past the licensed seats, times the seconds they were held
    /// that day (what a vendor bills overage by).
    #[serde(default)]
    pub overage_seat_secs: u64,
    /// Waitlist: logins put in line.
    #[serde(default)]
    pub queued: u64,
    /// Waitlist: tickets that became sessions.
    #[serde(default)]
    pub served_from_queue: u64,
    /// Waitlist: tickets that left the line without a seat (cancelled, expired, or
    /// their claim missed).
    #[serde(default)]
    pub gave_up_in_queue: u64,
    /// Waitlist: the median wait of the tickets served that day, in seconds.
    #[serde(default)]
    pub queue_wait_p50_secs: Option<u64>,
    /// Waitlist: the 90th percentile of those waits, in seconds.
    #[serde(default)]
    pub queue_wait_p90_secs: Option<u64>,
    /// The waits of the day's served tickets in milliseconds, at most
    /// [`WAITS_KEPT`] of them: what the percentiles are read from.
    #[serde(skip)]
    #[cfg_attr(feature = "server", schema(ignore))]
    pub(crate) queue_waits_ms: Vec<u64>,
    /// `overage_seat_secs` to the millisecond, so that short stretches add up exactly.
    #[serde(skip)]
    #[cfg_attr(feature = "server", schema(ignore))]
    pub(crate) overage_seat_ms: u64,
    /// Where the day ended (or stands): carried into the quiet days after it.
    #[serde(skip)]
    #[cfg_attr(feature = "server", schema(ignore))]
    pub(crate) closing: Level,
}

impl DayUsage {
    /// A day without events so far, standing where the day before ended.
    fn quiet(day: NaiveDate, level: Level) -> Self {
        DayUsage {
            day,
            peak_seats_in_use: level.seats_in_use,
            logins: 0,
            refusals: Refusals::default(),
            expiries: 0,
            peak_records: level.records,
            peak_overage_seats: level.overage_seats(),
            overage_seat_secs: 0,
            overage_seat_ms: 0,
            queued: 0,
            served_from_queue: 0,
            gave_up_in_queue: 0,
            queue_wait_p50_secs: None,
            queue_wait_p90_secs: None,
            queue_waits_ms: Vec::new(),
            closing: level,
        }
    }

    /// Counts a served ticket's wait and reads the day's percentiles again.
    fn served(&mut self, waited_ms: u64) {
        self.served_from_queue += 1;
        if self.queue_waits_ms.len() < WAITS_KEPT {
            self.queue_waits_ms.push(waited_ms);
        }
        self.read_waits();
    }

    fn read_waits(&mut self) {
        let mut waits = self.queue_waits_ms.clone();
        waits.sort_unstable();
        let at = |share: usize| -> Option<u64> {
            // Nearest rank: the smallest wait at least `share` % of the waits reach.
            let rank = (waits.len() * share).div_ceil(100).max(1);
            waits.get(rank - 1).map(|ms| ms / 1000)
        };
        self.queue_wait_p50_secs = at(50);
        self.queue_wait_p90_secs = at(90);
    }

    /// A whole day without events, standing where the day before ended.
    fn quiet_throughout(day: NaiveDate, level: Level) -> Self {
        let mut usage = Self::quiet(day, level);
        usage.add_overage(u64::from(level.overage_seats()) * MILLIS_PER_DAY);
        usage
    }

    fn add_overage(&mut self, seat_ms: u64) {
        self.overage_seat_ms += seat_ms;
        self.overage_seat_secs = self.overage_seat_ms / 1000;
    }
}

/// Where a tenant stands at a moment: carried into days without events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Level {
    seats_in_use: u32,
    records: u64,
    /// Concurrent: the licensed seats, past which a held seat is overage.
    #[serde(default)]
    licensed: Option<u32>,
    /// When it last changed: overage accrues from then.
    #[serde(default)]
    since: Option<Timestamp>,
}

impl Level {
    fn overage_seats(&self) -> u32 {
        self.licensed
            .map_or(0, |seats| self.seats_in_use.saturating_sub(seats))
    }
}

/// A day of usage as a store keeps it: the report's figures and where the day ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDay {
    /// The figures.
    pub usage: DayUsage,
    closing: Level,
    #[serde(default)]
    overage_seat_ms: u64,
    #[serde(default)]
    queue_waits_ms: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
struct TenantUsage {
    days: BTreeMap<NaiveDate, DayUsage>,
    level: Level,
}

impl TenantUsage {
    fn day(&mut self, day: NaiveDate) -> &mut DayUsage {
        if !self.days.contains_key(&day) && self.days.len() >= USAGE_DAYS_KEPT {
            self.days.pop_first();
        }
        let level = self.level;
        self.days
            .entry(day)
            .or_insert_with(|| DayUsage::quiet(day, level))
    }

    fn seats(&mut self, day: NaiveDate, seats_in_use: u32) {
        self.level.seats_in_use = seats_in_use;
        let over = self.level.overage_seats();
        let today = self.day(day);
        today.peak_seats_in_use = today.peak_seats_in_use.max(seats_in_use);
        today.peak_overage_seats = today.peak_overage_seats.max(over);
    }

    fn licence(&mut self, licence: &Licence) {
        self.level.licensed = match licence.model {
            LicenceModel::Concurrent { seats, .. } => Some(seats),
            LicenceModel::Named { .. } | LicenceModel::Records => None,
        };
    }

    /// Adds the overage held since the level last changed, up to `to`, to the days it
    /// fell on, and answers the day it started on when that is an earlier day (so a
    /// store writes that day again). The whole days between are quiet days, which the
    /// report fills from the level.
    fn accrue(&mut self, to: Timestamp) -> Option<NaiveDate> {
        let from = self.level.since.replace(to)?;
        let over = u64::from(self.level.overage_seats());
        if over == 0 || to <= from {
            return None;
        }
        let (from, to) = (from.as_millis(), to.as_millis());
        let end_of_first = (from / MILLIS_PER_DAY + 1) * MILLIS_PER_DAY;
        if to <= end_of_first {
            self.day(Timestamp::from_millis(from).day())
                .add_overage(over * (to - from));
            return None;
        }
        let first = Timestamp::from_millis(from).day();
        self.day(first).add_overage(over * (end_of_first - from));
        self.day(Timestamp::from_millis(to).day())
            .add_overage(over * (to % MILLIS_PER_DAY));
        Some(first)
    }
}

/// Usage of every tenant, day by day.
#[derive(Debug, Default)]
pub struct UsageBook {
    tenants: HashMap<TenantId, TenantUsage>,
    /// The calendar day of the last event, by its number of days since the epoch:
    /// events come in time order, so most need no calendar arithmetic.
    last_day: Option<(u64, NaiveDate)>,
}

impl UsageBook {
    /// Takes one event into account. Besides the event's own day, it may change an
    /// earlier one (the overage held since the tenant's last event): that day is
    /// answered, for a store to write again.
    pub fn record(&mut self, event: &Event) -> Option<NaiveDate> {
        if let EventKind::TenantDeleted = event.kind {
            self.tenants.remove(&event.tenant);
            return None;
        }
        let day = self.day_of(event.at);
        let tenant = match self.tenants.get_mut(&event.tenant) {
            Some(tenant) => tenant,
            None => self.tenants.entry(event.tenant.clone()).or_default(),
        };
        let earlier = tenant.accrue(event.at).filter(|d| *d != day);
        match &event.kind {
            EventKind::Admitted { seats_in_use, .. } => {
                tenant.seats(day, *seats_in_use);
                tenant.day(day).logins += 1;
            }
            EventKind::Refused { reason, .. } => tenant.day(day).refusals.count(*reason),
            EventKind::Withdrawn { seats_in_use, .. } => {
                tenant.seats(day, *seats_in_use);
                let today = tenant.day(day);
                today.logins = today.logins.saturating_sub(1);
            }
            EventKind::Ended {
                reason,
                seats_in_use,
                ..
            } => {
                tenant.seats(day, *seats_in_use);
                if *reason == EndReason::Expired {
                    tenant.day(day).expiries += 1;
                }
            }
            EventKind::LicenceChanged {
                licence,
                seats_in_use,
            } => {
                tenant.licence(licence);
                tenant.seats(day, *seats_in_use);
            }
            EventKind::UserAssigned { seats_in_use, .. }
            | EventKind::UserRemoved { seats_in_use, .. }
            | EventKind::GraceLapsed { seats_in_use, .. } => tenant.seats(day, *seats_in_use),
            EventKind::RecordsReported { count } => {
                tenant.level.records = *count;
                let today = tenant.day(day);
                today.peak_records = today.peak_records.max(*count);
            }
            EventKind::TenantCreated { licence } => {
                tenant.licence(licence);
                tenant.day(day);
            }
            EventKind::Queued { .. } => tenant.day(day).queued += 1,
            EventKind::TicketEnded {
                reason, waited_ms, ..
            } => match reason {
                EndReason::Claimed => tenant.day(day).served(*waited_ms),
                EndReason::Evicted => {}
                _ => tenant.day(day).gave_up_in_queue += 1,
            },
            EventKind::TenantDeleted | EventKind::TicketReady { .. } => {}
        }
        let level = tenant.level;
        tenant.day(day).closing = level;
        earlier
    }

    /// One stored day of a tenant, for a store to write.
    pub fn export(&self, tenant: &TenantId, day: NaiveDate) -> Option<StoredDay> {
        let usage = self.tenants.get(tenant)?.days.get(&day)?;
        Some(StoredDay {
            usage: usage.clone(),
            closing: usage.closing,
            overage_seat_ms: usage.overage_seat_ms,
            queue_waits_ms: usage.queue_waits_ms.clone(),
        })
    }

    /// Takes back a stored day (at start-up, oldest first per tenant).
    pub fn import(&mut self, tenant: TenantId, stored: StoredDay) {
        let usage = self.tenants.entry(tenant).or_default();
        usage.level = stored.closing;
        let mut day = stored.usage;
        day.closing = stored.closing;
        day.overage_seat_ms = stored.overage_seat_ms;
        day.queue_waits_ms = stored.queue_waits_ms;
        usage.days.insert(day.day, day);
    }

    fn day_of(&mut self, at: Timestamp) -> NaiveDate {
        let number = at.as_millis() / MILLIS_PER_DAY;
        match self.last_day {
            Some((last, day)) if last == number => day,
            _ => {
                let day = at.day();
                self.last_day = Some((number, day));
                day
            }
        }
    }

    /// The last `days` days up to `today`, oldest first; quiet days carry the level of
    /// the day before, and the overage held now counts up to `today`.
    pub fn report(&self, tenant: &TenantId, days: u32, today: Timestamp) -> Vec<DayUsage> {
        let Some(usage) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut usage = usage.clone();
        if usage.level.since.is_some() {
            usage.accrue(today);
            usage.day(today.day());
        }
        let last = today.day();
        let first = last
            .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
            .unwrap_or(NaiveDate::MIN);
        let mut carry = usage
            .days
            .range(..first)
            .next_back()
            .map(|(_, d)| d.closing);
        let mut out = Vec::new();
        for day in first.iter_days().take_while(|d| *d <= last) {
            match (usage.days.get(&day), carry) {
                (Some(recorded), _) => {
                    out.push(recorded.clone());
                    carry = Some(recorded.closing);
                }
                (None, Some(level)) => out.push(DayUsage::quiet_throughout(day, level)),
                (None, None) => {} // before the tenant existed
            }
        }
        out
    }
}
