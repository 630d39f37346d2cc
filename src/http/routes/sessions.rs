//! Sessions: log in, list holders, forced release; and the browser routes, where the
//! session token in the path is the credential.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{authorize, Json, PageQuery, State};
use crate::engine::Login;
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::openapi::{
    EngineFailures, SessionIdSchema, SessionTokenSchema, TenantIdSchema, UserIdSchema,
};
use crate::ids::{SessionId, UserId};
use crate::pool::{SessionCursor, SessionView};
use crate::token::SessionToken;
use crate::Timestamp;

/// The longest client label accepted.
const MAX_CLIENT_LEN: usize = 256;

/// `POST …/sessions`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Who logs in.
    #[schema(value_type = UserIdSchema)]
    pub user: String,
    /// A label for the client, e.g. the browser tab (at most 256 characters, no control
    /// characters).
    #[schema(max_length = 256)]
    pub client: Option<String>,
}

/// An admitted login.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session token: the tab's credential for the browser routes.
    session: String,
    user: String,
    tenant: String,
    /// When the session expires without a heartbeat.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    idle_timeout_secs: u64,
    /// How often to heartbeat.
    heartbeat_interval_secs: u64,
    /// The session's fencing token: larger than that of every session admitted before
    /// it in the tenant. Pass it to downstream resources, which refuse writes carrying
    /// a fence older than the newest they have seen from the seat.
    fence: u64,
    /// Present, and true, when the login took a seat past the licensed seats under
    /// the licence's overage allowance.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overage: bool,
}

impl From<Login> for LoginResponse {
    fn from(login: Login) -> Self {
        LoginResponse {
            session: login.token.expose(),
            user: login.user.to_string(),
            tenant: login.tenant.to_string(),
            expires_at: login.expires_at,
            idle_timeout_secs: login.idle_timeout.as_secs(),
            heartbeat_interval_secs: login.heartbeat_interval.as_secs(),
            fence: login.fence,
            overage: login.overage,
        }
    }
}

/// `{"sessions": [...], "next_cursor": "..."}`: a page of the live sessions, by login
/// time, then id.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A heartbeat's answer.
#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    /// The new deadline.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    idle_timeout_secs: u64,
    /// The session's fencing token, as its login answered.
    fence: u64,
}

/// Validates a login request's fields.
pub fn login_fields(body: &LoginRequest) -> Result<(UserId, Option<&str>), Error> {
    let user = UserId::parse(&body.user)?;
    if let Some(client) = &body.client {
        if client.chars().count() > MAX_CLIENT_LEN {
            return Err(Error::InvalidRequest(format!(
                "\"client\" must be at most {MAX_CLIENT_LEN} characters"
            )));
        }
        // Shown in session lists, the dashboard and `usher admin` tables: no control
        // character (a line break, a terminal escape) gets that far.
        if client.chars().any(char::is_control) {
            return Err(Error::InvalidRequest(
                "\"client\" must not contain control characters".into(),
            ));
        }
    }
    Ok((user, body.client.as_deref()))
}

/// Log in.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sessions", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    request_body = LoginRequest,
    responses((status = 201, body = LoginResponse),
        (status = 202, description = "put in line (on_limit = queue): a ticket and its position", body = super::tickets::QueuedResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden, user_not_licensed or user_limit_reached", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "licence_limit_reached, with seats, seats_in_use, retry_after_secs and (when seats are held back for groups the user is not in) seats_reserved; session_limit_reached, with max_sessions_per_user; group_limit_reached, with group and max", body = ErrorBody),
        EngineFailures))]
pub async fn login(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
    body: Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    let (user, client) = login_fields(&body)?;
    let entry = state.engine.enter(&tenant, &user, client).await?;
    Ok(super::tickets::entry_response(entry))
}

/// Who holds what, a page at a time: by login time, then id. A session that lives
/// while a client pages through is listed exactly once.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/sessions", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Sessions per page (1–1000, default 1000)"),
        ("cursor" = Option<String>, Query, pattern = r"^[0-9]{1,15}-[0-9a-f]{16}$",
            description = "The `next_cursor` of the previous page; none for the first page")),
    responses((status = 200, body = SessionList),
        (status = 400, description = "a limit out of range or a cursor no page gave", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        EngineFailures))]
pub async fn list_sessions(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    let query = PageQuery::from_request(&req)?;
    let after = query.cursor().map(SessionCursor::parse).transpose()?;
    let page = state
        .engine
        .sessions_page(&tenant, after, query.limit())
        .await?;
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: page.items,
        next_cursor: page.next.map(|cursor| cursor.to_string()),
    }))
}

/// Forced release of one session.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/sessions/{id}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), ("id" = inline(SessionIdSchema), Path, description = "The session's handle, as listed")),
    responses((status = 204, description = "Released"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, description = "session_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn revoke(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &path.0).await?;
    let id = SessionId::parse(&path.1)?;
    state.engine.revoke(&tenant, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Keep the session alive.
#[utoipa::path(post, path = "/v1/sessions/{token}/heartbeat", tag = "browser",
    params(("token" = inline(SessionTokenSchema), Path, description = "Session token")),
    security(()),
    responses((status = 200, body = HeartbeatResponse), (status = 404, body = ErrorBody),
        (status = 410, description = "session_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn heartbeat(state: State, token: web::Path<String>) -> ApiResult<HttpResponse> {
    let token = SessionToken::parse(&token)?;
    let beat = state.engine.heartbeat(&token).await?;
    Ok(HttpResponse::Ok().json(HeartbeatResponse {
        expires_at: beat.expires_at,
        idle_timeout_secs: beat.idle_timeout.as_secs(),
        fence: beat.fence,
    }))
}

/// End this tab's session. Accepts `navigator.sendBeacon` (any body, no credentials).
#[utoipa::path(post, path = "/v1/sessions/{token}/release", tag = "browser",
    params(("token" = inline(SessionTokenSchema), Path, description = "Session token")),
    security(()),
    responses((status = 204, description = "Released"), (status = 404, body = ErrorBody),
        (status = 410, description = "session_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn release(state: State, token: web::Path<String>) -> ApiResult<HttpResponse> {
    let token = SessionToken::parse(&token)?;
    state.engine.release(&token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// End every session of this token's user.
#[utoipa::path(post, path = "/v1/sessions/{token}/logout", tag = "browser",
    params(("token" = inline(SessionTokenSchema), Path, description = "Session token")),
    security(()),
    responses((status = 204, description = "Logged out"), (status = 404, body = ErrorBody),
        (status = 410, description = "session_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn logout(state: State, token: web::Path<String>) -> ApiResult<HttpResponse> {
    let token = SessionToken::parse(&token)?;
    state.engine.logout(&token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The demo's backend: logs a user in to the demo tenant, as a real backend would with
/// its tenant key.
pub async fn demo_login(
    state: State,
    body: Json<LoginRequest>,
    _req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let tenant = state.demo.clone().ok_or(Error::TenantNotFound)?;
    let (user, client) = login_fields(&body)?;
    let entry = state
        .engine
        .enter(&tenant, &user, client.or(Some("demo")))
        .await?;
    Ok(super::tickets::entry_response(entry))
}
