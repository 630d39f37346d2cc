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

/// A licence as [`licence`] gives, with the seat policies of SPEC §9 on now and then:
/// an overage allowance, displacement with a short minimum hold, a cap on each user's
/// sessions.
#[allow(dead_code)] // not every test crate that includes this module draws policies
pub fn licence_with_policies() -> impl Strategy<Value = Licence> {
    let overage = prop_oneof![Just(0.0), Just(0.5), Just(1.0)];
    let on_limit = prop_oneof![Just(OnLimit::Refuse), Just(OnLimit::DisplaceIdlest)];
    let min_hold = prop_oneof![Just(0u64), 1u64..60];
    let cap = prop_oneof![Just(None), (1u32..3).prop_map(Some)];
    (licence(), overage, on_limit, min_hold, cap).prop_map(
        |(licence, overage, on_limit, min_hold, cap)| {
            let licence = licence
                .overage(overage)
                .on_limit(on_limit)
                .min_hold(Duration::from_secs(min_hold));
            match cap {
                Some(cap) => licence.max_sessions_per_user(cap),
                None => licence,
            }
        },
    )
}
