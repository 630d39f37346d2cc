//! The HTTP API of SPEC §4, exercised over real HTTP against `usher serve`: one test
//! binary, one module per resource, every server started by `helpers::spawn_app`.

mod bad_input;
mod browser;
mod changes;
mod helpers;
mod isolation;
mod live;
#[path = "../support/live.rs"]
mod live_support;
mod load;
mod openapi;
mod ops;
mod policies;
#[path = "../support/redis.rs"]
mod redis_support;
mod serve;
mod sessions;
mod tenants;
mod tokens;
mod usage;
mod users;
mod waitlist;
mod webhooks;
mod wire;
