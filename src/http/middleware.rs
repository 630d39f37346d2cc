//! Cross-cutting request handling: the body limit, the access log (with session
//! tokens redacted and no headers at all), and request-latency metrics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::ResponseError;
use metrics::Histogram;
use tracing::Level;

use super::error::ApiError;
use crate::error::Error;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Whether the request declares a body over [`BODY_LIMIT`]; chunked bodies are cut off
/// at the same limit by the JSON extractor.
fn declares_too_large(req: &ServiceRequest) -> bool {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64)
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

/// The one middleware of every request: refuses a declared body over [`BODY_LIMIT`]
/// before any handler runs, then logs the request (method, redacted path, status,
/// latency) and records its latency under the matched route pattern, so metric labels
/// stay bounded.
///
/// It is on the path of every heartbeat, so it allocates little: the redacted path
/// only when the access log is on, and the latency histogram is looked up once per
/// thread and route rather than built from its labels on every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let logged_path =
        tracing::enabled!(target: "usher::access", Level::DEBUG).then(|| redact(req.path()));
    let response = if declares_too_large(&req) {
        let refusal = ApiError(Error::PayloadTooLarge { limit: BODY_LIMIT }).error_response();
        req.into_response(refusal).map_into_right_body()
    } else {
        next.call(req).await?.map_into_left_body()
    };
    let elapsed = started.elapsed();
    let route = response.request().match_pattern();
    record_latency(method, route.as_deref().unwrap_or("unmatched"), elapsed);
    if let Some(path) = logged_path {
        let status = response.status().as_u16();
        tracing::debug!(target: "usher::access", method, %path, status, micros = elapsed.as_micros() as u64, "request");
    }
    Ok(response)
}

/// The method as a metric label: the standard ones by name, anything else as `OTHER`,
/// so a client inventing methods cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

thread_local! {
    /// Latency histograms by method and route pattern, as this worker thread found
    /// them in the recorder.
    static LATENCY: RefCell<HashMap<&'static str, HashMap<String, Histogram>>> =
        RefCell::default();
}

fn record_latency(method: &'static str, route: &str, elapsed: Duration) {
    LATENCY.with(|cache| {
        let mut cache = cache.borrow_mut();
        let routes = cache.entry(method).or_default();
        if let Some(histogram) = routes.get(route) {
            histogram.record(elapsed);
            return;
        }
        let histogram = metrics::histogram!(
            "usher_http_request_duration_seconds",
            "method" => method,
            "route" => route.to_string(),
        );
        histogram.record(elapsed);
        routes.insert(route.to_string(), histogram);
    });
}

#[cfg(test)]
mod tests {
    use super::{method_label, redact};
    use actix_web::http::Method;

    #[test]
    fn metric_labels_name_standard_methods_and_lump_the_rest() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::TRACE), "TRACE");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }

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
