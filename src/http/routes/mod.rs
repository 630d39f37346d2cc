//! The routes of SPEC §4, one file per resource.

pub mod live;
pub mod ops;
pub mod sessions;
pub mod tenants;
pub mod tickets;
pub mod users;
pub mod webhooks;

use std::sync::atomic::AtomicBool;

use actix_web::error::JsonPayloadError;
use actix_web::{web, HttpRequest};
use serde::Deserialize;

use super::auth::{Caller, Credentials};
use super::error::{ApiError, ApiResult};
use super::middleware::BODY_LIMIT;
use crate::engine::Engine;
use crate::error::Error;
use crate::ids::TenantId;

/// What every handler shares.
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Admin token and tenant keys.
    pub credentials: Credentials,
    /// The demo tenant, when `--demo` is on.
    pub demo: Option<TenantId>,
    /// Whether start-up has finished (state restored).
    pub ready: AtomicBool,
    /// Which hosts webhooks may target.
    pub webhooks: std::sync::Arc<crate::http::webhooks::WebhookSettings>,
    /// How often a tab's socket is pinged.
    pub socket_ping_every: std::time::Duration,
}

/// Shorthand for the shared state as an extractor.
pub type State = web::Data<AppState>;

/// A JSON body, read with the server's limit and turned into a clear `invalid_request`
/// (what is wrong and where) or `payload_too_large`.
pub type Json<T> = web::Json<Named<T>>;

/// A body's value whose refusal names the field it came from (`seats: invalid type:
/// floating point `1.5`, …`), where serde alone says only the line and column.
pub struct Named<T>(pub T);

impl<T> std::ops::Deref for Named<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_path_to_error::deserialize(deserializer)
            .map(Named)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                // Wrong at the top (say, no body at all): serde's own error, as it was.
                if path == "." {
                    inner
                } else {
                    serde::de::Error::custom(format_args!("{path}: {inner}"))
                }
            })
    }
}

/// The JSON extractor's settings.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|err, _req| ApiError(json_error(&err)).into())
}

/// A JSON object whose keys are each given once, at every depth: a key given twice is
/// refused (`duplicate field`), as the typed bodies refuse it, rather than the last one
/// silently winning. What a body of loose fields (a PATCH) is read as.
pub struct StrictObject(pub serde_json::Map<String, serde_json::Value>);

impl std::ops::Deref for StrictObject {
    type Target = serde_json::Map<String, serde_json::Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(Strict)? {
            serde_json::Value::Object(map) => Ok(StrictObject(map)),
            _ => Err(serde::de::Error::custom("the body must be a JSON object")),
        }
    }
}

/// Reads any JSON value, refusing an object that gives a key twice.
struct Strict;

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate field `{key}`"
                )));
            }
            let value = map.next_value_seed(StrictSeed)?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// [`Strict`] for the values inside an array or an object.
struct StrictSeed;

impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(Strict)
    }
}

/// A body that may be absent, read up to the server's limit: what a route with an
/// optional body takes instead of [`Json`].
pub async fn optional_body(mut payload: web::Payload) -> Result<Vec<u8>, Error> {
    use futures::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| payload_error(&e))?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(Error::PayloadTooLarge { limit: BODY_LIMIT });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn json_error(err: &JsonPayloadError) -> Error {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            Error::PayloadTooLarge { limit: BODY_LIMIT }
        }
        JsonPayloadError::ContentType => Error::InvalidRequest(
            "the body must be JSON: send Content-Type: application/json".into(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_eof() && e.column() == 0 => {
            Error::InvalidRequest("a JSON body is required".into())
        }
        JsonPayloadError::Deserialize(e) => {
            Error::InvalidRequest(format!("invalid JSON body: {e}"))
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            Error::PayloadTooLarge { limit: BODY_LIMIT }
        }
        JsonPayloadError::Payload(e) => payload_error(e),
        _ => Error::InvalidRequest("could not read the body".into()),
    }
}

/// A body that could not be read: said plainly, without the decoder's own debug text.
fn payload_error(error: &actix_web::error::PayloadError) -> Error {
    use actix_web::error::PayloadError;
    Error::InvalidRequest(match error {
        PayloadError::Overflow => return Error::PayloadTooLarge { limit: BODY_LIMIT },
        PayloadError::Incomplete(_) => {
            "could not read the body: it ended before its Content-Length, or it is not in its Content-Encoding".into()
        }
        PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => format!(
            "could not read the body: nothing of it came for {} s",
            super::middleware::BODY_GAP.as_secs()
        ),
        PayloadError::EncodingCorrupted => {
            "could not read the body: it is not in its Content-Encoding".into()
        }
        _ => "could not read the body".into(),
    })
}

/// The most items one page of a list holds, and how many it holds unless asked.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// `?limit=…&cursor=…` of a paged list (users, sessions).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page (1–1000, default 1000).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page; none for the first page.
    cursor: Option<String>,
}

impl PageQuery {
    /// Reads the query string of `req`, with a clear `invalid_request` for a bad one.
    pub fn from_request(req: &HttpRequest) -> Result<PageQuery, Error> {
        let query = web::Query::<PageQuery>::from_query(req.query_string())
            .map_err(|e| {
                Error::InvalidRequest(format!(
                    "invalid query: {e}; expected ?limit=<1 to {MAX_PAGE_LIMIT}>&cursor=<the next_cursor of the previous page>"
                ))
            })?
            .into_inner();
        if let Some(limit) = query.limit {
            if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
                return Err(Error::InvalidRequest(format!(
                    "limit must be between 1 and {MAX_PAGE_LIMIT}, got {limit}"
                )));
            }
        }
        Ok(query)
    }

    /// Items per page.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(MAX_PAGE_LIMIT)
    }

    /// The cursor, as the client sent it.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

/// Runs `work` on the blocking thread pool instead of the HTTP worker, which must never
/// wait: for a store read, or a send that may wait for room on the event channel.
pub async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> ApiResult<T> {
    let result = web::block(work)
        .await
        .map_err(|e| Error::Internal(format!("the blocking thread pool failed: {e}")))?;
    Ok(result?)
}

/// Identifies the caller and checks they may use `raw` tenant's routes.
pub async fn authorize(req: &HttpRequest, state: &AppState, raw: &str) -> ApiResult<TenantId> {
    let caller = state.credentials.identify(req, &state.engine).await?;
    let tenant = TenantId::parse(raw)?;
    caller.may_use(&tenant)?;
    Ok(tenant)
}

/// Identifies the caller and checks they are the administrator.
pub async fn authorize_admin(req: &HttpRequest, state: &AppState) -> ApiResult<Caller> {
    let caller = state.credentials.identify(req, &state.engine).await?;
    caller.must_be_admin()?;
    Ok(caller)
}
