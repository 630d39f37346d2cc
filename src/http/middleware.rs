//! Cross-cutting request handling: the body limit, the access log (with session
//! tokens redacted and no headers at all), request-latency metrics, and the gate that
//! holds the engine's routes shut until start-up has finished.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use metrics::Histogram;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use tracing::Level;

use super::error::ApiError;
use super::routes::{ops, State};
use crate::error::Error;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How long a request's body may go without a byte arriving: a body that stops (a
/// client gone quiet, or holding connections open on purpose) is given up then, and
/// the request refused, instead of holding its connection for ever.
pub const BODY_GAP: Duration = Duration::from_secs(10);

/// Whether the request says a body follows (a WebSocket's frames are no body).
fn declares_a_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The request's body, failing with a timed-out error once [`BODY_GAP`] passes with
/// nothing arriving.
fn with_gap_bound(payload: Payload) -> Payload {
    use futures::StreamExt;
    let bounded = futures::stream::unfold(Some(payload), |payload| async move {
        let mut payload = payload?;
        match tokio::time::timeout(BODY_GAP, payload.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(payload))),
            Ok(None) => None,
            Err(_) => {
                let stalled = std::io::Error::new(std::io::ErrorKind::TimedOut, "body stalled");
                Some((Err(PayloadError::Io(stalled)), None))
            }
        }
    });
    Payload::Stream {
        payload: Box::pin(bounded),
    }
}

/// Whether the request declares a body over [`BODY_LIMIT`]; chunked bodies are cut off
/// at the same limit by the JSON extractor.
fn declares_too_large(req: &ServiceRequest) -> bool {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > BODY_LIMIT as u64)
}

/// Characters of a decoded path written back percent-encoded when it is logged, so a
/// log line stays one line of plain text.
const LOGGED_AS_ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(b'"');

/// The path as it may be logged: a session token in the path becomes `<token>`.
///
/// The router matches the percent-decoded path, so `/v1/%73essions/<token>/heartbeat`
/// reaches the heartbeat route: the decision is made on the decoded path (decoded
/// until nothing changes), with empty segments and the case of the route's own words
/// ignored, so no spelling of a browser path carries a token into the log.
pub fn redact(path: &str) -> String {
    let decoded = fully_decoded(path);
    let mut segments = decoded.split('/').filter(|s| !s.is_empty());
    let v1 = segments
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case("v1"));
    let kind = segments.next();
    let logged = match kind {
        Some(s) if v1 && s.eq_ignore_ascii_case("sessions") => "/v1/sessions/<token>",
        Some(s) if v1 && s.eq_ignore_ascii_case("tickets") => "/v1/tickets/<ticket>",
        _ => return without_tokens(path, &decoded),
    };
    if segments.next().is_none() {
        return without_tokens(path, &decoded);
    }
    let mut logged = String::from(logged);
    for segment in segments {
        logged.push('/');
        push_segment(&mut logged, segment);
    }
    logged
}

/// Appends one decoded path segment as it may be logged: `<token>` if it holds one.
fn push_segment(logged: &mut String, segment: &str) {
    if holds_a_token(segment) {
        logged.push_str("<token>");
    } else {
        logged.extend(utf8_percent_encode(segment, LOGGED_AS_ENCODED));
    }
}

/// Whether a path segment holds a run of exactly a token's length of the token's
/// alphabet (URL-safe base64).
fn holds_a_token(segment: &str) -> bool {
    segment
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|run| run.len() == crate::token::TOKEN_LEN)
}

/// Any other path with a token in it (a client's base URL set wrong, a token pasted
/// where a session's id belongs): each segment holding a run of exactly a token's
/// length of the token's alphabet becomes `<token>`. A path without one is logged as
/// it came; ids of other lengths (a UUID has 36 such characters) are kept.
fn without_tokens(path: &str, decoded: &str) -> String {
    if !decoded.split('/').any(holds_a_token) {
        return path.into();
    }
    let mut logged = String::with_capacity(decoded.len());
    for (i, segment) in decoded.split('/').enumerate() {
        if i > 0 {
            logged.push('/');
        }
        push_segment(&mut logged, segment);
    }
    logged
}

/// `path` percent-decoded until no escape is left (a few rounds at most: each one
/// shortens the text), so that `%2573` hides nothing either.
fn fully_decoded(path: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(path);
    for _ in 0..8 {
        if !text.contains('%') {
            break;
        }
        let next = percent_decode_str(&text).decode_utf8_lossy().into_owned();
        if next == text {
            break;
        }
        text = Cow::Owned(next);
    }
    text
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
        tracing::enabled!(target: "usher::access", Level::INFO).then(|| redact(req.path()));
    let response = if declares_too_large(&req) {
        let refusal = ApiError(Error::PayloadTooLarge { limit: BODY_LIMIT }).error_response();
        req.into_response(refusal).map_into_right_body()
    } else {
        let mut req = req;
        if declares_a_body(&req) {
            let payload = req.take_payload();
            req.set_payload(with_gap_bound(payload));
        }
        next.call(req).await?.map_into_left_body()
    };
    let elapsed = started.elapsed();
    let route = response.request().match_pattern();
    record_latency(method, route.as_deref().unwrap_or("unmatched"), elapsed);
    if let Some(path) = logged_path {
        let status = response.status().as_u16();
        tracing::info!(target: "usher::access", method, %path, status, micros = elapsed.as_micros() as u64, "request");
    }
    Ok(response)
}

/// Until start-up has finished restoring the store, answers `503 starting` instead of
/// passing the request on: the routes it wraps need the engine.
pub async fn until_ready(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let ready = req
        .app_data::<State>()
        .is_some_and(|state| state.ready.load(Ordering::Acquire));
    if ready {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    Ok(req.into_response(ops::starting()).map_into_right_body())
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
        assert_eq!(
            redact("/v1/sessions/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/live"),
            "/v1/sessions/<token>/live"
        );
        assert_eq!(
            redact("/v1/tickets/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/claim"),
            "/v1/tickets/<ticket>/claim"
        );
        assert_eq!(redact("/v1/%74ickets/secret"), "/v1/tickets/<ticket>");
        assert_eq!(redact("/v1/tenants/acme"), "/v1/tenants/acme");
        assert_eq!(
            redact("/v1/tenants/acme/sessions/0123456789abcdef"),
            "/v1/tenants/acme/sessions/0123456789abcdef"
        );
    }

    #[test]
    fn tokens_are_redacted_from_paths_of_no_route_and_from_misplaced_ids() {
        let token = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        for (path, logged) in [
            (
                format!("/v1/./sessions/{token}/heartbeat"),
                "/v1/./sessions/<token>/heartbeat".to_string(),
            ),
            (
                format!("/v1/x/../sessions/{token}/heartbeat"),
                "/v1/x/../sessions/<token>/heartbeat".into(),
            ),
            (
                format!("/sessions/{token}/heartbeat"),
                "/sessions/<token>/heartbeat".into(),
            ),
            (
                format!("/v1/session/{token}/heartbeat"),
                "/v1/session/<token>/heartbeat".into(),
            ),
            (
                format!("/api/v1/sessions/{token}"),
                "/api/v1/sessions/<token>".into(),
            ),
            (
                format!("/v1/tenants/ta/sessions/{token}"),
                "/v1/tenants/ta/sessions/<token>".into(),
            ),
            (
                format!("/v1/tenants/ta/sessions/ta~{token}"),
                "/v1/tenants/ta/sessions/<token>".into(),
            ),
            (
                format!("/v1/tenants/ta/sessions/%41{}", &token[1..]),
                "/v1/tenants/ta/sessions/<token>".into(),
            ),
            (
                format!("/v1/tenants/ta/users/{token}.x"),
                "/v1/tenants/ta/users/<token>".into(),
            ),
        ] {
            assert_eq!(redact(&path), logged, "{path}");
            assert!(!redact(&path).contains(&token[1..]), "{path}");
        }
        // The nested spelling of a browser route is redacted as the route.
        assert_eq!(
            redact(&format!("/v1/sessions/x%2F{token}/heartbeat")),
            "/v1/sessions/<token>/<token>/heartbeat"
        );
        // Ids that are no token's length are kept.
        for path in [
            "/v1/tenants/acme/users/123e4567-e89b-12d3-a456-426614174000",
            "/v1/tenants/acme/users/ann@example.com",
            "/v1/tenants/acme/sessions/0123456789abcdef",
        ] {
            assert_eq!(redact(path), path);
        }
    }

    #[test]
    fn session_tokens_are_redacted_however_the_path_is_spelt() {
        let token = "AbCdEfGhIjKlMnOpQrStUvWxYz012345";
        for path in [
            format!("/v1/%73essions/{token}/heartbeat"),
            format!("/v1/s%65ss%69%6fn%73/{token}/heartbeat"),
            format!("/v1/s%65ss%69%6Fn%73/{token}/heartbeat"),
            format!("/v1/sessions/%41bCd%45f{}/heartbeat", &token[6..]),
            format!("/v1/sessions/%41b%43d%45f{}/heartbeat", &token[6..]),
            format!("/v1/%2573essions/{token}/heartbeat"),
            format!("//v1//sessions/{token}/heartbeat"),
            format!("/V1/Sessions/{token}/heartbeat"),
            format!("%2Fv1%2Fsessions%2F{token}%2Fheartbeat"),
        ] {
            let logged = redact(&path);
            assert_eq!(logged, "/v1/sessions/<token>/heartbeat", "{path}");
        }
    }

    #[test]
    fn a_logged_path_stays_one_line_of_text() {
        assert_eq!(
            redact("/v1/sessions/x/heart%0Abeat%20now"),
            "/v1/sessions/<token>/heart%0Abeat%20now"
        );
    }
}
