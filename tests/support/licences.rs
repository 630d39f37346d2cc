//! Random licences of every model, for the property tests.

use std::time::Duration;

use proptest::prelude::*;
use usher::{Licence, LicenceModel, OnLimit, Policies, SeatPer};

/// A licence of any model, with few seats and a low account limit now and then, so
/// that the limits are met often.
pub fn licence() -> impl Strategy<Value = Licence> {
    let model = prop_oneof![
        (0u32..5).prop_map(|seats| LicenceModel::Named { seats }),
        (0u32..5, any::<bool>()).prop_map(|(seats, per_session)| LicenceModel::Concurrent {
            seats,
            seat_per: if per_session {
                SeatPer::Session
            } else {
                SeatPer::User
            },
        }),
        Just(LicenceModel::Records),
    ];
    let max_users = prop_oneof![Just(999u32), 1u32..6];
    (model, 1u64..120, max_users).prop_map(|(model, idle, max_users)| Licence {
        model,
        idle_timeout: Duration::from_secs(idle),
        max_users,
        policies: Policies::default(),
    })
}

/// The groups a random licence reserves seats for or caps, and users may be put in.
#[allow(dead_code)] // not every test crate that includes this module draws policies
pub const GROUPS: [&str; 2] = ["finance", "volunteers"];

/// A licence as [`licence`] gives, with the seat policies of SPEC §9 on now and then:
/// an overage allowance, displacement with a short minimum hold, a cap on each user's
/// sessions, a reload grace, and (on a licence that refuses at the limit) seats
/// reserved for a group and a group's cap, within the bounds a licence is validated
/// against.
#[allow(dead_code)] // not every test crate that includes this module draws policies
pub fn licence_with_policies() -> impl Strategy<Value = Licence> {
    let overage = prop_oneof![Just(0.0), Just(0.5), Just(1.0)];
    let on_limit = prop_oneof![Just(OnLimit::Refuse), Just(OnLimit::DisplaceIdlest)];
    let min_hold = prop_oneof![Just(0u64), 1u64..60];
    let grace = prop_oneof![Just(0u64), 1u64..60];
    let timing = (min_hold, grace);
    let cap = prop_oneof![Just(None), (1u32..3).prop_map(Some)];
    let groups = (
        0u32..3,
        0u32..3,
        prop_oneof![Just(None), (0u32..3).prop_map(Some)],
    );
    (licence(), overage, on_limit, timing, cap, groups).prop_map(
        |(
            licence,
            overage,
            on_limit,
            (min_hold, grace),
            cap,
            (finance, volunteers, volunteers_max),
        )| {
            let mut licence = licence
                .overage(overage)
                .on_limit(on_limit)
                .min_hold(Duration::from_secs(min_hold))
                .reload_grace(Duration::from_secs(grace));
            if let Some(cap) = cap {
                licence = licence.max_sessions_per_user(cap);
            }
            let seats = licence.model.seats().unwrap_or(0);
            if on_limit == OnLimit::Refuse
                && matches!(licence.model, LicenceModel::Concurrent { .. })
            {
                // Reservations up to the seats in all, each within its group's cap.
                let finance = finance.min(seats);
                let volunteers = volunteers.min(seats - finance);
                let volunteers_max = volunteers_max.map(|m| m.max(volunteers).min(seats));
                if finance > 0 {
                    licence = licence.reserve(GROUPS[0], finance);
                }
                if volunteers > 0 {
                    licence = licence.reserve(GROUPS[1], volunteers);
                }
                if let Some(max) = volunteers_max {
                    licence = licence.group_max(GROUPS[1], max);
                }
            }
            licence
        },
    )
}

/// A concurrent licence of 1–4 seats, a seat per user or per tab, with seats reserved
/// for finance and a cap on volunteers (both may also be 0), so that the group rules
/// meet every other rule often.
#[allow(dead_code)] // not every test crate that includes this module draws policies
pub fn grouped_licence() -> impl Strategy<Value = Licence> {
    (1u32..5, any::<bool>(), 0u32..3, 0u32..3).prop_map(|(seats, per_tab, reserve, max)| {
        let per = if per_tab {
            SeatPer::Session
        } else {
            SeatPer::User
        };
        Licence::concurrent(seats)
            .seat_per(per)
            .idle_timeout(Duration::from_secs(60))
            .reserve(GROUPS[0], reserve.min(seats))
            .group_max(GROUPS[1], max)
    })
}

/// A concurrent licence of 0–3 seats that queues at its limit (SPEC §10), a seat per
/// user or per tab, with a claim window of seconds to a minute and, now and then, an
/// overage allowance, a cap on each user's sessions or a reload grace, so that the
/// waitlist meets the other seat rules.
#[allow(dead_code)] // not every test crate that includes this module draws policies
pub fn queueing_licence() -> impl Strategy<Value = Licence> {
    let policies = (
        prop_oneof![Just(0.0), Just(0.5)],
        prop_oneof![Just(None), (1u32..3).prop_map(Some)],
        prop_oneof![Just(0u64), 1u64..30],
    );
    (0u32..4, any::<bool>(), 10u64..300, 1u64..60, policies).prop_map(
        |(seats, per_tab, idle, claim, (overage, cap, grace))| {
            let per = if per_tab {
                SeatPer::Session
            } else {
                SeatPer::User
            };
            let mut licence = Licence::concurrent(seats)
                .seat_per(per)
                .idle_timeout(Duration::from_secs(idle))
                .overage(overage)
                .on_limit(OnLimit::Queue)
                .queue_claim(Duration::from_secs(claim))
                .reload_grace(Duration::from_secs(grace));
            if let Some(cap) = cap {
                licence = licence.max_sessions_per_user(cap);
            }
            licence
        },
    )
}
