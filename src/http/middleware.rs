//! Cross-cutting request handling: the body limit, the access log (with session
//! tokens redacted and no headers at all), and request-latency metrics.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::Next;
use actix_web::ResponseError;

use super::error::ApiError;
use crate::error::Error;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Refuses a declared body over [`BODY_LIMIT`] before any handler runs; chunked bodies
/// are cut off at the same limit by the JSON extractor.
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        let response = ApiError(Error::PayloadTooLarge { limit: BODY_LIMIT }).error_response();
        return Ok(req.into_response(response));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The path as it may be logged: a session token in the path becomes `<token>`.
pub fn redact(path: &str) -> String {
    match path.strip_prefix("/v1/sessions/") {
        Some(rest) => match rest.find('/') {
            Some(slash) => format!("/v1/sessions/<token>{}", &rest[slash..]),
            None => "/v1/sessions/<token>".into(),
        },
        None => path.into(),
    }
}

/// Logs each request (method, redacted path, status, latency) and records its latency
/// under the matched route pattern, so metric labels stay bounded.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = redact(req.path());
    let response = next.call(req).await?;
    let elapsed = started.elapsed();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = response.status().as_u16();
    metrics::histogram!(
        "usher_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route,
    )
    .record(elapsed.as_secs_f64());
    tracing::debug!(target: "usher::access", %method, %path, status, micros = elapsed.as_micros() as u64, "request");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn session_tokens_are_redacted_from_logged_paths() {
        assert_eq!(
            redact("/v1/sessions/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/heartbeat"),
            "/v1/sessions/<token>/heartbeat"
        );
        assert_eq!(redact("/v1/sessions/secret"), "/v1/sessions/<token>");
        assert_eq!(redact("/v1/tenants/acme"), "/v1/tenants/acme");
    }
}
