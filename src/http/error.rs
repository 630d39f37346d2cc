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
    /// `session_ended`: why.
    pub reason: Option<String>,
    /// `user_limit_reached`: the account limit.
    pub max_users: Option<u32>,
    /// `payload_too_large`: the limit in bytes.
    pub limit_bytes: Option<u64>,
}

/// The JSON body for an error.
pub fn body(error: &Error) -> Value {
    let mut body = Map::new();
    body.insert("error".into(), json!(error.code()));
    body.insert("message".into(), json!(error.to_string()));
    match error {
        Error::LicenceLimitReached {
            seats,
            seats_in_use,
            retry_after,
        } => {
            body.insert("seats".into(), json!(seats));
            body.insert("seats_in_use".into(), json!(seats_in_use));
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
        Error::SessionEnded { reason } => {
            body.insert("reason".into(), json!(reason.as_str()));
        }
        Error::PayloadTooLarge { limit } => {
            body.insert("limit_bytes".into(), json!(limit));
        }
        Error::Overloaded { retry_after } => {
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
        let mut response = HttpResponse::build(self.status_code());
        if let Error::Overloaded { retry_after } = &self.0 {
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
