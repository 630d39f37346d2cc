//! Operations: health, readiness, metrics, the OpenAPI document, static assets, and
//! the JSON answers for unknown routes and wrong methods.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::State;
use crate::http::{assets, metrics, openapi};

/// The body of `/healthz` and `/readyz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct Health {
    /// `ok` or `store_failed` (`/healthz`); `ready`, `starting` or `store_failed`
    /// (`/readyz`).
    status: String,
}

/// Liveness: 503 once the store has failed, so that a supervisor restarts the server
/// from its last durable state.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = Health),
        (status = 503, description = "The store failed; restart", body = Health)))]
pub async fn healthz(state: State) -> HttpResponse {
    if state.engine.is_healthy() {
        HttpResponse::Ok().json(json!({"status": "ok"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "store_failed"}))
    }
}

/// Readiness: state restored, logins admitted.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "Starting, or the store failed", body = Health)))]
pub async fn readyz(state: State) -> HttpResponse {
    if !state.engine.is_healthy() {
        HttpResponse::ServiceUnavailable().json(json!({"status": "store_failed"}))
    } else if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "starting"}))
    }
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

/// A known path with a method it does not take.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::MethodNotAllowed();
    if let Some(allowed) = req
        .match_pattern()
        .and_then(|p| openapi::allowed_methods(&p))
    {
        response.insert_header((actix_web::http::header::ALLOW, allowed));
    }
    response.json(json!({
        "error": "method_not_allowed",
        "message": format!("{} is not allowed on this route; see /openapi.json", req.method()),
    }))
}
