//! Operations: health, readiness, metrics, the OpenAPI document, static assets, and
//! the JSON answers for unknown routes and wrong methods.

use std::sync::atomic::Ordering;

use actix_web::http::header::{ALLOW, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::State;
use crate::engine::Health;
use crate::http::{assets, metrics, openapi};

/// The body of `/healthz` and `/readyz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct HealthBody {
    /// `ok`, `store_degraded` or `store_failed` (`/healthz`); `ready`, `starting`,
    /// `store_degraded` or `store_failed` (`/readyz`).
    status: String,
    /// Why, when the store is degraded or failed.
    reason: Option<String>,
}

/// Liveness: 503 once the store has failed, so that a supervisor restarts the server
/// from its last durable state, and while writes are overdue (a stalled disk).
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = HealthBody),
        (status = 503, description = "The store failed (restart) or is degraded (writes overdue)", body = HealthBody)))]
pub async fn healthz(state: State) -> HttpResponse {
    health_answer(&state).unwrap_or_else(|| HttpResponse::Ok().json(json!({"status": "ok"})))
}

/// The 503 answer when the engine cannot acknowledge writes.
fn health_answer(state: &State) -> Option<HttpResponse> {
    let (status, reason) = match state.engine.health() {
        Health::Ok => return None,
        Health::Degraded(reason) => ("store_degraded", reason),
        Health::Failed(reason) => ("store_failed", reason),
    };
    Some(HttpResponse::ServiceUnavailable().json(json!({"status": status, "reason": reason})))
}

/// Readiness: state restored, logins admitted.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "Starting, or the store failed", body = HealthBody)))]
pub async fn readyz(state: State) -> HttpResponse {
    if let Some(unhealthy) = health_answer(&state) {
        unhealthy
    } else if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        starting()
    }
}

/// The answer of `/readyz` and of every route that needs the engine while start-up is
/// still restoring the store.
pub fn starting() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((RETRY_AFTER, "1"))
        .json(json!({
            "error": "starting",
            "status": "starting",
            "message": "the server is starting and restoring its state; retry in a moment",
            "retry_after_secs": 1,
        }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics_text(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render(&state.engine))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(openapi::document())
}

/// Embedded assets for GET and HEAD; a JSON 404 for anything else unknown.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    if matches!(req.method().as_str(), "GET" | "HEAD") {
        if let Some(response) = assets::response(req.path()) {
            return response;
        }
    }
    HttpResponse::NotFound().json(json!({
        "error": "not_found",
        "message": format!("no route {} {}; see /openapi.json", req.method(), crate::http::middleware::redact(req.path())),
    }))
}

/// A known path with a method it does not take; `allow` lists those it does.
pub fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((ALLOW, allow.to_owned()))
        .json(json!({
            "error": "method_not_allowed",
            "message": format!(
                "{} is not allowed on this route, which takes {allow}; see /openapi.json",
                req.method()
            ),
        }))
}
