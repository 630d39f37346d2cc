//! Errors as HTTP answers: `{"error": code, "message": sentence, ...details}`.

use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::Error;

/// An [`Error`] on its way out as an HTTP answer.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The shape of every error body (for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The stable code, e.g. `licence_limit_reached`.
    pub error: String,
    /// A sentence a person can act on.
    pub message: String,
    /// Concurrent refusals: seats in the licence.
    pub seats: Option<u32>,
    /// Concurrent refusals: seats held.
    pub seats_in_use: Option<u32>,
    /// Concurrent refusals and overload: when to try again.
    pub retry_after_secs: Option<u64>,
    /// `session_ended`, `ticket_ended`: why.
    pub reason: Option<String>,
    /// `not_ready`: the ticket's place in line.
    pub position: Option<u32>,
    /// `user_limit_reached`: the account limit.
    pub max_users: Option<u32>,
    /// `payload_too_large`: the limit in bytes.
    pub limit_bytes: Option<u64>,
    /// `session_limit_reached`: the cap on one user's live sessions.
    pub max_sessions_per_user: Option<u32>,
}

/// The message of every `internal_error` answer. What went wrong inside (a storage
/// path, a library's message) goes to the log only.
pub const INTERNAL_MESSAGE: &str =
    "the server failed on its side and acknowledged nothing; the detail is in the server log";

/// The JSON body for an error.
pub fn body(error: &Error) -> Value {
    let mut body = Map::new();
    body.insert("error".into(), json!(error.code()));
    let message = match error {
        Error::Internal(_) => INTERNAL_MESSAGE.to_string(),
        other => other.to_string(),
    };
    body.insert("message".into(), json!(message));
    match error {
        Error::LicenceLimitReached {
            seats,
            seats_in_use,
            reserved,
            retry_after,
        } => {
            body.insert("seats".into(), json!(seats));
            body.insert("seats_in_use".into(), json!(seats_in_use));
            if *reserved > 0 {
                body.insert("seats_reserved".into(), json!(reserved));
            }
            body.insert(
                "retry_after_secs".into(),
                json!(retry_after.map(|d| d.as_millis().div_ceil(1000) as u64)),
            );
        }
        Error::SeatsExhausted { seats } => {
            body.insert("seats".into(), json!(seats));
        }
        Error::UserLimitReached { max_users } => {
            body.insert("max_users".into(), json!(max_users));
        }
        Error::SessionLimitReached {
            max_sessions_per_user,
        } => {
            body.insert("max_sessions_per_user".into(), json!(max_sessions_per_user));
        }
        Error::GroupLimitReached { group, max } => {
            body.insert("group".into(), json!(group));
            body.insert("max".into(), json!(max));
        }
        Error::SessionEnded { reason } | Error::TicketEnded { reason } => {
            body.insert("reason".into(), json!(reason.as_str()));
        }
        Error::NotReady { position } => {
            body.insert("position".into(), json!(position));
        }
        Error::PayloadTooLarge { limit } => {
            body.insert("limit_bytes".into(), json!(limit));
        }
        Error::Overloaded { retry_after } | Error::Unavailable { retry_after } => {
            body.insert(
                "retry_after_secs".into(),
                json!(retry_after.as_secs().max(1)),
            );
        }
        _ => {}
    }
    Value::Object(body)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let Error::Internal(detail) = &self.0 {
            tracing::error!(%detail, "answered internal_error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Error::Overloaded { retry_after } | Error::Unavailable { retry_after } = &self.0 {
            let secs = retry_after.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.insert_header((RETRY_AFTER, value));
            }
        }
        response.json(body(&self.0))
    }
}

/// Results of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use actix_web::body::MessageBody;
    use actix_web::ResponseError;

    use super::{ApiError, INTERNAL_MESSAGE};
    use crate::error::Error;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_internal_error_answers_a_fixed_sentence_and_logs_the_detail() {
        let detail = "storage: I/O error writing /var/lib/usher/usher.redb: No space left";
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let response = tracing::subscriber::with_default(subscriber, || {
            ApiError(Error::Internal(detail.into())).error_response()
        });

        assert_eq!(response.status().as_u16(), 500);
        let bytes = response.into_body().try_into_bytes().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"], "internal_error");
        assert_eq!(body["message"], INTERNAL_MESSAGE);
        let text = String::from_utf8_lossy(&bytes);
        for leak in ["storage", "/var/lib", "usher.redb", "No space"] {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }

        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("ERROR"), "{logged}");
        assert!(logged.contains(detail), "{logged}");
    }

    #[test]
    fn other_errors_keep_their_own_message() {
        let response =
            ApiError(Error::InvalidRequest("seats must be at least 1".into())).error_response();
        let bytes = response.into_body().try_into_bytes().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["message"], "seats must be at least 1");
    }
}
