//! The usage report: per tenant and day, the figures a customer needs to decide whether
//! to buy more licences. Built from events by the consumer thread.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{EndReason, Refusal};
use crate::events::{Event, EventKind};
use crate::ids::TenantId;

/// How many days of usage are kept per tenant.
pub const USAGE_DAYS_KEPT: usize = 400;

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
}

impl Refusals {
    fn count(&mut self, reason: Refusal) {
        *match reason {
            Refusal::LicenceLimitReached => &mut self.licence_limit_reached,
            Refusal::UserNotLicensed => &mut self.user_not_licensed,
            Refusal::UserLimitReached => &mut self.user_limit_reached,
            Refusal::SessionLimitReached => &mut self.session_limit_reached,
        } += 1;
    }

    /// All refusals of the day.
    pub fn total(&self) -> u64 {
        self.licence_limit_reached
            + self.user_not_licensed
            + self.user_limit_reached
            + self.session_limit_reached
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
    /// Where the day ended (or stands): carried into the quiet days after it.
    #[serde(skip)]
    #[cfg_attr(feature = "server", schema(ignore))]
    pub(crate) closing: Level,
}

impl DayUsage {
    fn quiet(day: NaiveDate, level: Level) -> Self {
        DayUsage {
            day,
            peak_seats_in_use: level.seats_in_use,
            logins: 0,
            refusals: Refusals::default(),
            expiries: 0,
            peak_records: level.records,
            closing: level,
        }
    }
}

/// Where a tenant stands at a moment: carried into days without events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Level {
    seats_in_use: u32,
    records: u64,
}

/// A day of usage as a store keeps it: the report's figures and where the day ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDay {
    /// The figures.
    pub usage: DayUsage,
    closing: Level,
}

#[derive(Debug, Default)]
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
        let today = self.day(day);
        today.peak_seats_in_use = today.peak_seats_in_use.max(seats_in_use);
        today.closing.seats_in_use = seats_in_use;
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
    /// Takes one event into account.
    pub fn record(&mut self, event: &Event) {
        if let EventKind::TenantDeleted = event.kind {
            self.tenants.remove(&event.tenant);
            return;
        }
        let day = self.day_of(event.at);
        let tenant = match self.tenants.get_mut(&event.tenant) {
            Some(tenant) => tenant,
            None => self.tenants.entry(event.tenant.clone()).or_default(),
        };
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
            EventKind::UserAssigned { seats_in_use, .. }
            | EventKind::UserRemoved { seats_in_use, .. }
            | EventKind::LicenceChanged { seats_in_use, .. } => tenant.seats(day, *seats_in_use),
            EventKind::RecordsReported { count } => {
                tenant.level.records = *count;
                let today = tenant.day(day);
                today.peak_records = today.peak_records.max(*count);
                today.closing.records = *count;
            }
            EventKind::TenantCreated { .. } => {
                tenant.day(day);
            }
            EventKind::TenantDeleted => {}
        }
    }

    /// One stored day of a tenant, for a store to write.
    pub fn export(&self, tenant: &TenantId, day: NaiveDate) -> Option<StoredDay> {
        let usage = self.tenants.get(tenant)?.days.get(&day)?;
        Some(StoredDay {
            usage: usage.clone(),
            closing: usage.closing,
        })
    }

    /// Takes back a stored day (at start-up, oldest first per tenant).
    pub fn import(&mut self, tenant: TenantId, stored: StoredDay) {
        let usage = self.tenants.entry(tenant).or_default();
        usage.level = stored.closing;
        let mut day = stored.usage;
        day.closing = stored.closing;
        usage.days.insert(day.day, day);
    }

    fn day_of(&mut self, at: Timestamp) -> NaiveDate {
        const MILLIS_PER_DAY: u64 = 24 * 3600 * 1000;
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
    /// the day before.
    pub fn report(&self, tenant: &TenantId, days: u32, today: Timestamp) -> Vec<DayUsage> {
        let Some(usage) = self.tenants.get(tenant) else {
            return Vec::new();
        };
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
                (None, Some(level)) => out.push(DayUsage::quiet(day, level)),
                (None, None) => {} // before the tenant existed
            }
        }
        out
    }
}
