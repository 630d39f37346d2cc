//! Usher: a licence-seat engine for multi-tenant software.
//!
//! Each tenant buys a licence — named users, concurrent users, or records-based — and
//! Usher decides every login race-free, keeps sessions alive by heartbeat, frees idle
//! seats, and reports usage.
//!
//! # Layout
//! - [`clock`] — [`Timestamp`] and the [`Clock`] trait (system and manual).
//! - [`ids`] — validated [`TenantId`], [`UserId`] and [`SessionId`].
//! - [`token`] — [`SessionToken`]s from the OS CSPRNG; only hashes are kept.
//! - [`error`] — the one [`Error`] type, one variant per code of the HTTP API.
//! - [`licence`] — the three [`LicenceModel`]s and their parameters.
//! - [`admission`] — the admission rules, pure, in one place.
//! - [`pool`] — [`pool::PoolState`], one tenant's rules as a plain struct taking `now`.
//! - [`engine`] — the [`Engine`], the async API, and the one seam above the pools: every
//!   call goes to the deciding backend, one of
//!   - `embedded` — each tenant's [`pool::PoolState`] in an actor of this process, with
//!     memory or a [`store`] behind it, made of
//!     - `actor` — the actix actor that runs one pool, a message at a time;
//!     - `ledger` — one pool's durability barrier: no answer before what it shows is
//!       durable;
//!     - `registry` — the maps every lookup goes through: tenant, session and key →
//!       pool;
//!     - `timer` — the timer actor that asks pools with something due to expire it;
//!   - [`redis`] — the same rules as Lua scripts on a Redis or Redis Cluster shared by
//!     any number of engines, each decision on Redis time (feature `redis`).
//! - [`events`] — every decision as an [`Event`].
//! - [`live`] — the live channel's hub: which streams and tabs' sockets of this node
//!   wait on which tenant's log or session's end, told by the backend once a change is
//!   durable.
//! - `consumer` — the thread that receives every event over a crossbeam channel, so no
//!   pool waits on a reader: it keeps the usage book and feeds subscribers.
//! - [`usage`] — the per-tenant, per-day usage report built from events.
//! - [`store`] — the storage seam: what must be durable; `memory` and `redb` (feature
//!   `redb`) backends.
//! - [`http`] — `usher serve`: the HTTP API, credentials, metrics, OpenAPI, assets.
//! - [`load`] — the load generator of `usher load`: simulated clients, storms, reports.
//! - [`cli`] — the `usher` command line: `serve` (the default), `admin`, `load`,
//!   `completions` and `man`.
//!
//! # Features
//! The engine alone (`--no-default-features`) is the core: the rules, the embedded
//! backend and the memory store. `redb` adds the crash-safe store, `redis` the Redis
//! backend, and `server` the HTTP API, the command line and the load tool (with both
//! of the others, since `usher serve` offers every store); OpenAPI schemas are derived
//! only with `server`. All three are on by default.
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> usher::Result<()> {
//! use usher::{Engine, Licence, TenantId, UserId};
//!
//! let engine = Engine::start(Default::default());
//! let charity = TenantId::parse("st-mungos")?;
//! engine.put_tenant(&charity, Licence::concurrent(2)).await?;
//!
//! let ann = UserId::parse("ann")?;
//! let tab1 = engine.login(&charity, &ann, Some("tab 1")).await?;
//! let tab2 = engine.login(&charity, &ann, Some("tab 2")).await?; // shares ann's seat
//! assert_eq!(engine.tenant(&charity).await?.seats_in_use, 1);
//!
//! engine.heartbeat(&tab1.token).await?;
//! engine.release(&tab2.token).await?; // "Release licence" in tab 2
//! engine.logout(&tab1.token).await?;
//! assert_eq!(engine.tenant(&charity).await?.seats_in_use, 0);
//! # Ok(()) }
//! ```

mod actor;
pub mod admission;
#[cfg(feature = "server")]
pub mod cli;
pub mod clock;
mod consumer;
mod embedded;
pub mod engine;
pub mod error;
pub mod events;
#[cfg(feature = "server")]
pub mod http;
pub mod ids;
mod ledger;
pub mod licence;
pub mod live;
#[cfg(feature = "server")]
pub mod load;
pub mod pool;
#[cfg(feature = "redis")]
pub mod redis;
mod registry;
pub mod store;
mod timer;
pub mod token;
pub mod usage;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use engine::{
    Engine, EngineConfig, EngineStats, Entry, Health, Heartbeat, Login, Ticket, UPDATE_ATTEMPTS,
};
pub use error::{EndReason, Error, Refusal, Result};
pub use events::{Event, EventKind};
pub use ids::{GroupId, SessionId, TenantId, UserId};
pub use licence::{Licence, LicenceModel, LicenceSpec, OnLimit, Policies, SeatPer};
pub use token::SessionToken;
