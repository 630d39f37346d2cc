//! The record count of a records-based tenant and its billing peaks (the day's and the
//! month's highest count).

use serde::{Deserialize, Serialize};

use super::RecordsView;
use crate::clock::Timestamp;

/// The record count of a records-based tenant, with its billing peaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    pub(super) count: u64,
    reported_at: Option<Timestamp>,
    peak_day: u64,
    peak_month: u64,
}

impl Records {
    /// The count and its peaks as seen at `now`: a new day or month starts from the
    /// current count.
    pub fn view(&self, now: Timestamp) -> RecordsView {
        let (peak_today, peak_month) = match self.reported_at {
            None => (self.count, self.count),
            Some(at) => (
                if at.day() == now.day() {
                    self.peak_day
                } else {
                    self.count
                },
                if at.month() == now.month() {
                    self.peak_month
                } else {
                    self.count
                },
            ),
        };
        RecordsView {
            count: self.count,
            peak_today,
            peak_month,
        }
    }

    pub(super) fn report(&mut self, count: u64, now: Timestamp) {
        let before = self.view(now);
        *self = Records {
            count,
            reported_at: Some(now),
            peak_day: before.peak_today.max(count),
            peak_month: before.peak_month.max(count),
        };
    }
}
