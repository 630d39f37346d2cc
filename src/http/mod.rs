//! `usher serve`: the HTTP API of SPEC §4 over an [`Engine`](crate::Engine).
//!
//! - `server` — configuration, start-up and shutdown.
//! - `routes` — one file per resource: tenants, users, sessions (and the browser
//!   routes), operations.
//! - `auth` — the admin token and tenant API keys.
//! - `error` — [`Error`](crate::Error) as an HTTP answer.
//! - `middleware` — body limit, access log with tokens redacted, request metrics, and
//!   the gate that answers `503 starting` until the store is restored.
//! - `metrics` — the Prometheus exporter, fed by engine events.
//! - `openapi` — the OpenAPI document, generated from the handlers.
//! - `assets` — the dashboard and `usher.js`, embedded in the binary, with their
//!   Content-Security-Policy.

mod assets;
pub mod auth;
pub mod error;
mod metrics;
mod middleware;
pub mod openapi;
mod routes;
pub mod server;
pub mod webhooks;

pub use server::{RunningServer, ServerConfig, StaticTenant};
