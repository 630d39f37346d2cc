//! Random licences of every model, for the property tests.

use std::time::Duration;

use proptest::prelude::*;
use usher::{Licence, LicenceModel, SeatPer};

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
    })
}
