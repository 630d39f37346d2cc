//! The rule suite (`tests/rules`) on the Redis backend: the same tests, the same
//! expected codes and details, with the scripts reading the suite's manual clock.

use usher::{Engine, EngineConfig, ManualClock};

mod rules;
#[path = "support/redis.rs"]
mod support;

/// An engine on the shared test Redis, under a key prefix of its own, whose scripts
/// read `clock`.
pub async fn engine_on(config: EngineConfig, clock: ManualClock) -> Engine {
    Engine::with_redis(config, support::config(&clock))
        .await
        .expect("an engine on the test Redis")
}
