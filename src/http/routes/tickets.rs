//! The waitlist of SPEC §10: a login at the limit of a licence that queues is answered
//! 202 with a ticket; the ticket in the path is the credential of the browser routes
//! here, as a session token is of the session routes. The tenant's line is read with
//! its key.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::sessions::LoginResponse;
use super::{authorize, State};
use crate::engine::{Entry, Ticket};
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::openapi::{EngineFailures, SessionTokenSchema, TenantIdSchema};
use crate::pool::QueueEntry;
use crate::token::SessionToken;
use crate::Timestamp;

/// A login put in line: the 202 answer of `POST …/sessions`.
#[derive(Serialize, ToSchema)]
pub struct QueuedResponse {
    /// The ticket: heartbeat it to keep the place, claim it once a seat is held for it.
    ticket: String,
    /// Its place in line: 1 is next.
    position: u32,
    tenant: String,
    user: String,
    /// When the ticket ends without a heartbeat.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    idle_timeout_secs: u64,
    /// How often to heartbeat the ticket.
    heartbeat_interval_secs: u64,
}

impl From<Ticket> for QueuedResponse {
    fn from(ticket: Ticket) -> Self {
        QueuedResponse {
            ticket: ticket.token.expose(),
            position: ticket.position,
            tenant: ticket.tenant.to_string(),
            user: ticket.user.to_string(),
            expires_at: ticket.expires_at,
            idle_timeout_secs: ticket.idle_timeout.as_secs(),
            heartbeat_interval_secs: ticket.heartbeat_interval.as_secs(),
        }
    }
}

/// The answer to a login that may queue: 201 with a session, or 202 with a ticket.
pub fn entry_response(entry: Entry) -> HttpResponse {
    match entry {
        Entry::Admitted(login) => HttpResponse::Created().json(LoginResponse::from(login)),
        Entry::Queued(ticket) => HttpResponse::Accepted().json(QueuedResponse::from(ticket)),
    }
}

/// A ticket heartbeat's answer.
#[derive(Serialize, ToSchema)]
pub struct TicketBeatResponse {
    /// Its place in line (1 is next); 0 once a seat is held for it.
    position: u32,
    /// Present, and true, once a seat is held for the ticket: claim it before
    /// `claim_by`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ready: bool,
    /// Until when the seat is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    claim_by: Option<Timestamp>,
    /// When the ticket ends without a heartbeat.
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
}

/// `{"queue": [...]}`: the line, head first.
#[derive(Serialize, ToSchema)]
pub struct QueueList {
    queue: Vec<QueueEntry>,
}

/// Keep the ticket's place in line, and learn when a seat is held for it.
#[utoipa::path(post, path = "/v1/tickets/{ticket}/heartbeat", tag = "browser",
    operation_id = "ticket_heartbeat",
    params(("ticket" = inline(SessionTokenSchema), Path, description = "Ticket")),
    security(()),
    responses((status = 200, body = TicketBeatResponse), (status = 404, description = "ticket_not_found", body = ErrorBody),
        (status = 410, description = "ticket_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn ticket_heartbeat(state: State, ticket: web::Path<String>) -> ApiResult<HttpResponse> {
    let ticket = parse(&ticket)?;
    let status = state.engine.ticket_heartbeat(&ticket).await?;
    Ok(HttpResponse::Ok().json(TicketBeatResponse {
        position: status.position,
        ready: status.claim_by.is_some(),
        claim_by: status.claim_by,
        expires_at: status.expires_at,
    }))
}

/// Turn a ticket a seat is held for into a session: the login answer.
#[utoipa::path(post, path = "/v1/tickets/{ticket}/claim", tag = "browser",
    params(("ticket" = inline(SessionTokenSchema), Path, description = "Ticket")),
    security(()),
    responses((status = 201, body = LoginResponse), (status = 404, description = "ticket_not_found", body = ErrorBody),
        (status = 409, description = "not_ready, with position; session_limit_reached", body = ErrorBody),
        (status = 410, description = "ticket_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn claim_ticket(state: State, ticket: web::Path<String>) -> ApiResult<HttpResponse> {
    let ticket = parse(&ticket)?;
    let login = state.engine.claim(&ticket).await?;
    Ok(HttpResponse::Created().json(LoginResponse::from(login)))
}

/// Leave the line. A ticket already claimed releases the session its claim started,
/// while that session lives: the page went away with the claim's answer on its way,
/// and that answer is the only holder of the session's token.
#[utoipa::path(delete, path = "/v1/tickets/{ticket}", tag = "browser",
    params(("ticket" = inline(SessionTokenSchema), Path, description = "Ticket")),
    security(()),
    responses((status = 204, description = "Left the line, or released the session a claim of it started"),
        (status = 404, description = "ticket_not_found", body = ErrorBody),
        (status = 410, description = "ticket_ended, with reason", body = ErrorBody), EngineFailures))]
pub async fn cancel_ticket(state: State, ticket: web::Path<String>) -> ApiResult<HttpResponse> {
    let ticket = parse(&ticket)?;
    state.engine.cancel_ticket(&ticket).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's waitlist, head first: tickets a seat is held for (position 0), then
/// those waiting, in order. Never the tickets themselves.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/queue", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    responses((status = 200, body = QueueList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn list_queue(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    if !req.query_string().is_empty() {
        // The whole line, in one answer: a `?limit=` meant for the other lists would
        // otherwise be ignored without a word.
        return Err(crate::error::Error::InvalidRequest(
            "the queue takes no query parameters: it is listed whole".into(),
        )
        .into());
    }
    let queue = state.engine.waitlist(&tenant).await?;
    Ok(HttpResponse::Ok().json(QueueList { queue }))
}

/// A ticket in a path: a malformed one is unknown, as a session token is.
fn parse(text: &str) -> Result<SessionToken, crate::error::Error> {
    SessionToken::parse(text).map_err(|_| crate::error::Error::TicketNotFound)
}
