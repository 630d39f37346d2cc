//! The live channel (SPEC §11): a WebSocket per tab, and the audit log as Server-Sent
//! Events, per tenant and for the administrator.
//!
//! Every stream reads what it sends from the durable audit log, from where it was; the
//! engine's [`crate::live::Live`] hub only wakes it. So a stream that was woken late, or
//! a client that reconnects with `Last-Event-ID`, misses nothing the log still holds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use actix_ws::{CloseCode, CloseReason, Message};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::{authorize, authorize_admin, State};
use crate::engine::Engine;
use crate::error::Error;
use crate::http::error::{body as error_body, ApiResult, ErrorBody};
use crate::http::openapi::{SessionTokenSchema, TenantIdSchema};
use crate::ids::TenantId;
use crate::live::LogState;
use crate::store::{AuditEvent, EventQuery};
use crate::token::SessionToken;
use crate::Timestamp;

/// How often an idle stream sends a comment, so proxies keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Messages a stream may have waiting for its client; past that the client is slow.
const STREAM_BUFFER: usize = 64;

/// How long a stream or socket waits for room in its buffer before it drops a client
/// that does not read.
const SLOW_CLIENT: Duration = Duration::from_secs(10);

/// Events read from the log at a time.
const PAGE: usize = 500;

/// How far back a stream that starts now looks for the end of a log, and how far
/// before the named event a resumed admin stream reads the other tenants' logs (their
/// events are ordered per tenant only, so the admin stream resumes at least once: an
/// event of another tenant may come again, with the same `id`).
const LOOKBACK: Duration = Duration::from_secs(60);

/// The longest frame a tab may send.
const MAX_FRAME: usize = 4096;

/// Pings a socket may leave unanswered (with nothing else heard) before it is taken
/// for dead and closed: a tab that vanished without closing holds nothing for long.
const PINGS_UNANSWERED: u32 = 2;

/// `?last_event_id=…`, for a client that cannot set the `Last-Event-ID` header on its
/// first connection.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Continue after this event's `id`, as the `Last-Event-ID` header does (the
    /// header wins when both are given).
    last_event_id: Option<String>,
}

/// Where a stream starts: after the event with this id, or at this moment.
fn start_of(req: &HttpRequest) -> Result<Option<String>, Error> {
    let query = web::Query::<StreamQuery>::from_query(req.query_string())
        .map_err(|e| {
            Error::InvalidRequest(format!(
                "invalid query: {e}; expected ?last_event_id=<the id of an event>"
            ))
        })?
        .into_inner();
    let header = req
        .headers()
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Error::InvalidRequest("Last-Event-ID must be ASCII text".into()))
        })
        .transpose()?;
    Ok(header.or(query.last_event_id).filter(|id| !id.is_empty()))
}

/// One server-sent event.
fn sse(id: &str, data: &impl serde::Serialize) -> Bytes {
    let data = serde_json::to_string(data).unwrap_or_default();
    Bytes::from(format!("id: {id}\ndata: {data}\n\n"))
}

/// The last message of a stream whose tenant was deleted.
fn sse_end(tenant: &TenantId) -> Bytes {
    let data = json!({"type": "tenant_deleted", "tenant": tenant});
    Bytes::from(format!("event: end\ndata: {data}\n\n"))
}

/// On the admin stream: a tenant was deleted, and its log with it.
fn sse_deleted(tenant: &TenantId) -> Bytes {
    let data = json!({"type": "tenant_deleted", "tenant": tenant});
    Bytes::from(format!("event: tenant_deleted\ndata: {data}\n\n"))
}

/// A `text/event-stream` answer fed by `rx`.
/// The head of an event stream, answered to a HEAD without starting one.
fn stream_head() -> HttpResponse {
    stream_headers(&mut HttpResponse::Ok()).finish()
}

fn stream_headers(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("text/event-stream")))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header(("x-accel-buffering", "no"))
}

fn event_stream(rx: mpsc::Receiver<Bytes>) -> HttpResponse {
    // The first chunk goes out at once: the client knows the stream is open, and
    // after a cut its EventSource tries again in a second rather than three.
    let opening = futures::stream::once(async { Ok(Bytes::from_static(b"retry: 1000\n\n")) });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    });
    let body = opening.chain(events);
    stream_headers(&mut HttpResponse::Ok()).streaming(body)
}

/// Sends to the client, or says it has gone (or reads too slowly to keep).
async fn send(tx: &mpsc::Sender<Bytes>, bytes: Bytes) -> bool {
    tx.send_timeout(bytes, SLOW_CLIENT).await.is_ok()
}

/// [`LOOKBACK`] ago.
fn lookback(engine: &Engine) -> Timestamp {
    let now = engine.clock().now().as_millis();
    Timestamp::from_millis(now.saturating_sub(LOOKBACK.as_millis() as u64))
}

/// The moment of an event's id given as `Last-Event-ID`.
fn moment_of(cursor: &str) -> Result<u64, Error> {
    crate::store::parse_cursor(cursor)
        .map(|(ms, _)| ms)
        .map_err(|_| {
            Error::InvalidRequest("Last-Event-ID must be the id of an event of this stream".into())
        })
}

/// Refuses to resume after an id of moment `ms` when the log holds nothing from it on: the
/// id is from the future (or the log has let it and everything after it go), and a
/// stream resumed after it would pass over every event until then.
async fn held_from(engine: &Engine, tenant: &TenantId, ms: u64) -> Result<(), Error> {
    let query = EventQuery {
        since: Timestamp::from_millis(ms),
        cursor: None,
        limit: 1,
    };
    if engine.events(tenant, &query).await?.events.is_empty() {
        return Err(Error::InvalidRequest(
            "Last-Event-ID names no event the log holds: resume with the id of an event received, or without one to start now".into(),
        ));
    }
    Ok(())
}

/// A tenant's log from `cursor` on (or from `since` without one), sent as events.
/// Returns the cursor after the last one sent, or `None` once the client has gone;
/// `Err` when the tenant is gone.
async fn catch_up(
    engine: &Engine,
    tenant: &TenantId,
    since: Timestamp,
    mut cursor: Option<String>,
    tx: &mpsc::Sender<Bytes>,
    id_of: impl Fn(&AuditEvent) -> String,
) -> Result<Option<Option<String>>, Error> {
    loop {
        let query = EventQuery {
            since,
            cursor: cursor.clone(),
            limit: PAGE,
        };
        let page = engine.events(tenant, &query).await?;
        let more = page.next_cursor.is_some();
        for event in &page.events {
            if !send(tx, sse(&id_of(event), event)).await {
                return Ok(None);
            }
            cursor = Some(event.id.clone());
        }
        if !more {
            return Ok(Some(cursor));
        }
    }
}

/// The audit log of one tenant as Server-Sent Events, as it is written: each event
/// with its `id`, in the log's order. Reconnecting with `Last-Event-ID` (or
/// `?last_event_id=`) continues after that event, missing nothing the log still holds;
/// without one the stream starts now. A comment every 15 s keeps proxies from closing
/// an idle stream; when the tenant is deleted the stream sends `event: end` and ends.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/events/stream", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses((status = 200, description = "text/event-stream of the tenant's audit events", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn tenant_stream(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    let cursor = start_of(&req)?;
    let engine = state.engine.clone();
    // The cursor says where to start; without one the stream starts after the last
    // event so far, looked for a while back (the log's times are the deciding
    // backend's, which may run a little apart from this node's clock).
    let since = match cursor {
        Some(_) => Timestamp::from_millis(0),
        None => lookback(&engine),
    };
    // Listening before reading where the log ends: nothing written between is missed.
    let mut watch = engine.live().watch_log(&tenant);
    // A bad id or an unknown tenant answers now, not as a stream that ends at once;
    // without an id the stream starts after the last event written so far.
    let cursor = match cursor {
        Some(cursor) => {
            held_from(&engine, &tenant, moment_of(&cursor)?).await?;
            Some(cursor)
        }
        None => engine.last_event_id(&tenant, since).await?,
    };
    if req.method() == Method::HEAD {
        return Ok(stream_head());
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    actix_web::rt::spawn(async move {
        let mut cursor = cursor;
        let mut keep_alive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        loop {
            let state = watch.seen();
            match catch_up(&engine, &tenant, since, cursor.clone(), &tx, |e| {
                e.id.clone()
            })
            .await
            {
                Ok(Some(after)) => cursor = after,
                Ok(None) => return,
                Err(Error::TenantNotFound) => {
                    let _ = send(&tx, sse_end(&tenant)).await;
                    return;
                }
                // The log could not be read (the shared store is down): try again at
                // the next wake-up or keep-alive.
                Err(_) => {}
            }
            if state == LogState::Deleted {
                let _ = send(&tx, sse_end(&tenant)).await;
                return;
            }
            tokio::select! {
                _ = watch.changed() => {}
                _ = keep_alive.tick() => {
                    if !send(&tx, Bytes::from_static(b": keep-alive\n\n")).await {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok(event_stream(rx))
}

/// The audit log of every tenant as Server-Sent Events (administrator only). Each
/// event's `id` is `<tenant>/<event id>`. Events are in order per tenant; with
/// `Last-Event-ID` the named tenant continues after that event and every other tenant
/// from a minute before it, so nothing the logs still hold is missed and an event may
/// come again (with the same `id`).
#[utoipa::path(get, path = "/v1/events/stream", tag = "admin",
    params(StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses((status = 200, description = "text/event-stream of every tenant's audit events", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn admin_stream(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    authorize_admin(&req, &state).await?;
    let engine = state.engine.clone();
    let now = lookback(&engine);
    let mut cursors: HashMap<TenantId, Option<String>> = HashMap::new();
    let start = start_of(&req)?;
    let resumed = start.is_some();
    // Listening before reading where each log ends: nothing written between is missed.
    let mut news = engine.live().watch_all();
    let since = match start {
        // From now: every tenant after its last event so far.
        None => {
            for tenant in engine.tenant_ids().await? {
                match engine.last_event_id(&tenant, now).await {
                    Ok(end) => {
                        cursors.insert(tenant, end);
                    }
                    Err(Error::TenantNotFound) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            now
        }
        Some(id) => {
            let bad = || {
                Error::InvalidRequest(
                    "Last-Event-ID must be the id of an event of this stream".into(),
                )
            };
            let (tenant, cursor) = id.split_once('/').ok_or_else(bad)?;
            let tenant = TenantId::parse(tenant).map_err(|_| bad())?;
            let ms = moment_of(cursor)?;
            match held_from(&engine, &tenant, ms).await {
                Err(Error::TenantNotFound) => {}
                other => other?,
            }
            cursors.insert(tenant, Some(cursor.to_string()));
            Timestamp::from_millis(ms.saturating_sub(LOOKBACK.as_millis() as u64))
        }
    };
    // A resumed stream reads every tenant's log at first; one from now, only those it
    // hears of.
    let mut everyone = resumed;
    if req.method() == Method::HEAD {
        return Ok(stream_head());
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    actix_web::rt::spawn(async move {
        let mut keep_alive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        // Every tenant again after news was lost.
        loop {
            let due: Vec<TenantId> = if everyone {
                everyone = false;
                match engine.tenant_ids().await {
                    Ok(ids) => ids,
                    Err(_) => {
                        everyone = true;
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            for tenant in due {
                if !admin_catch_up(&engine, &mut cursors, tenant, since, &tx).await {
                    return;
                }
            }
            tokio::select! {
                heard = news.recv() => match heard {
                    Ok(tenant) => {
                        if !admin_catch_up(&engine, &mut cursors, tenant, since, &tx).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => everyone = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = keep_alive.tick() => {
                    if !send(&tx, Bytes::from_static(b": keep-alive\n\n")).await {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok(event_stream(rx))
}

/// One tenant's new events on the admin stream. False once the client has gone.
async fn admin_catch_up(
    engine: &Engine,
    cursors: &mut HashMap<TenantId, Option<String>>,
    tenant: TenantId,
    since: Timestamp,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    let cursor = cursors.get(&tenant).cloned().flatten();
    let id_of = |e: &AuditEvent| format!("{tenant}/{}", e.id);
    match catch_up(engine, &tenant, since, cursor, tx, id_of).await {
        Ok(Some(after)) => {
            cursors.insert(tenant, after);
            true
        }
        Ok(None) => false,
        Err(Error::TenantNotFound) => {
            // Deleted, and its log with it: said once, to a stream that knew it.
            cursors.remove(&tenant).is_none() || send(tx, sse_deleted(&tenant)).await
        }
        // Unreadable for now (the shared store is down): read at its next news.
        Err(_) => true,
    }
}

/// What a tab sends on its socket.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Frame {
    /// Keep the session alive.
    Heartbeat,
}

/// The answer to a heartbeat frame, written straight from its fields (the frame every
/// live tab gets, so it is kept cheap).
fn beat_frame(beat: &crate::engine::Heartbeat) -> String {
    #[derive(serde::Serialize)]
    struct Frame {
        #[serde(rename = "type")]
        kind: &'static str,
        expires_at: Timestamp,
        idle_timeout_secs: u64,
        fence: u64,
    }
    serde_json::to_string(&Frame {
        kind: "heartbeat",
        expires_at: beat.expires_at,
        idle_timeout_secs: beat.idle_timeout.as_secs(),
        fence: beat.fence,
    })
    .expect("a heartbeat frame serializes")
}

/// An error frame: the error body of the HTTP API with `"type": "error"`.
fn error_frame(error: &Error) -> String {
    let mut body = error_body(error);
    if let Value::Object(map) = &mut body {
        map.insert("type".into(), json!("error"));
    }
    body.to_string()
}

/// One tab's live channel: a WebSocket on which the tab sends `{"type": "heartbeat"}`
/// frames, each answered with `{"type": "heartbeat", "expires_at", "idle_timeout_secs",
/// "fence"}` (or `{"type": "error", "error", "message", …}` as the HTTP route would
/// answer), and on which the server sends `{"type": "ended", "reason"}` the moment the
/// session ends, for any reason and on any node, then closes. The upgrade is itself a
/// heartbeat: an ended or unknown session answers 410 or 404 instead of upgrading. The
/// session rules do not change: a tab whose socket drops heartbeats over HTTP.
#[utoipa::path(get, path = "/v1/sessions/{token}/live", tag = "browser",
    params(("token" = inline(SessionTokenSchema), Path, description = "Session token")),
    security(()),
    responses((status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "not a WebSocket upgrade", body = ErrorBody),
        (status = 403, description = "an Origin the tenant does not allow", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, description = "session_ended, with reason", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "overloaded or unavailable, with Retry-After", body = ErrorBody)))]
pub async fn session_socket(
    req: HttpRequest,
    state: State,
    token: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let token = SessionToken::parse(&token)?;
    let engine = state.engine.clone();
    // Listening before the check: an end just after it is heard.
    let watch = engine.live().watch_session(token.id());
    let beat = engine.heartbeat(&token).await?;
    let (response, session, stream) = upgrade(&req, body)?;
    let tab = Tab::Session(token);
    let first = beat_frame(&beat);
    actix_web::rt::spawn(serve(
        engine,
        tab,
        first,
        watch,
        None,
        session,
        stream,
        state.socket_ping_every,
    ));
    Ok(response)
}

/// A waiting tab's live channel (SPEC §10–§11): a WebSocket on which the server sends
/// the ticket's place in line, `{"type": "position", "position", "expires_at"}`, each
/// time the line moves, then `{"type": "ready", "position": 0, "claim_by",
/// "expires_at"}` once a seat is held for it, and `{"type": "ended", "reason"}` when
/// the ticket ends (claimed, cancelled, expired, its claim missed), then closes. The
/// tab may send `{"type": "heartbeat"}` frames, answered the same way. The upgrade, each
/// frame and each place sent keep the ticket's place as a heartbeat does; an ended or
/// unknown ticket answers 410 or 404 instead of upgrading.
#[utoipa::path(get, path = "/v1/tickets/{ticket}/live", tag = "browser",
    params(("ticket" = inline(SessionTokenSchema), Path, description = "Ticket")),
    security(()),
    responses((status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "not a WebSocket upgrade", body = ErrorBody),
        (status = 403, description = "an Origin the tenant does not allow", body = ErrorBody),
        (status = 404, description = "ticket_not_found", body = ErrorBody),
        (status = 410, description = "ticket_ended, with reason", body = ErrorBody),
        (status = 500, body = ErrorBody),
        (status = 503, description = "overloaded or unavailable, with Retry-After", body = ErrorBody)))]
pub async fn ticket_socket(
    req: HttpRequest,
    state: State,
    ticket: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let ticket = SessionToken::parse(&ticket).map_err(|_| Error::TicketNotFound)?;
    let engine = state.engine.clone();
    let watch = engine.live().watch_session(ticket.id());
    let tenant = engine.ticket_tenant(&ticket).await?;
    let log = engine.live().watch_log(&tenant);
    let status = engine.ticket_heartbeat(&ticket).await?;
    let (response, session, stream) = upgrade(&req, body)?;
    let first = place_frame(&status);
    let tab = Tab::Ticket(ticket, place_of(&status));
    actix_web::rt::spawn(serve(
        engine,
        tab,
        first,
        watch,
        Some(log),
        session,
        stream,
        state.socket_ping_every,
    ));
    Ok(response)
}

fn upgrade(
    req: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, actix_ws::Session, actix_ws::MessageStream), Error> {
    let (response, session, stream) = actix_ws::handle(req, body)
        .map_err(|e| Error::InvalidRequest(format!("this route takes a WebSocket upgrade: {e}")))?;
    Ok((response, session, stream.max_frame_size(MAX_FRAME)))
}

/// A ticket's place: in line at a position, or ready until a moment.
type Place = (u32, Option<Timestamp>);

fn place_of(status: &crate::pool::TicketStatus) -> Place {
    (status.position, status.claim_by)
}

/// What a socket is the live channel of: a session, or a ticket with the last place
/// it was told.
enum Tab {
    Session(SessionToken),
    Ticket(SessionToken, Place),
}

impl Tab {
    /// The answer to a heartbeat frame, or why the tab's session or ticket ended;
    /// with `only_news`, none for a ticket whose place has not changed since it was
    /// last told.
    async fn beat(
        &mut self,
        engine: &Engine,
        only_news: bool,
    ) -> Result<Option<String>, crate::error::EndReason> {
        match self {
            Tab::Session(token) => match engine.heartbeat(token).await {
                Ok(beat) => Ok(Some(beat_frame(&beat))),
                Err(Error::SessionEnded { reason }) => Err(reason),
                Err(other) => Ok(Some(error_frame(&other))),
            },
            Tab::Ticket(ticket, told) => match engine.ticket_heartbeat(ticket).await {
                Ok(status) if only_news && place_of(&status) == *told => Ok(None),
                Ok(status) => {
                    *told = place_of(&status);
                    Ok(Some(place_frame(&status)))
                }
                Err(Error::TicketEnded { reason }) => Err(reason),
                Err(other) => Ok(Some(error_frame(&other))),
            },
        }
    }
}

/// How often at most a waiting tab is told its place again while the line moves.
const PLACE_EVERY: Duration = Duration::from_millis(250);

/// One socket's life: the first answer, then heartbeat frames answered, the end
/// pushed the moment it is heard, pings, and (for a ticket) its place each time the
/// line moves.
#[allow(clippy::too_many_arguments)]
async fn serve(
    engine: Engine,
    mut tab: Tab,
    first: String,
    mut watch: crate::live::SessionWatch,
    mut log: Option<crate::live::LogWatch>,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    ping_every: Duration,
) {
    if !say(&mut session, first).await {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut place = tokio::time::interval(PLACE_EVERY);
    place.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = tokio::time::Instant::now();
    // The line moved since the tab was last told its place.
    let mut moved = false;
    if let Some(log) = &mut log {
        log.seen();
    }
    loop {
        tokio::select! {
            reason = watch.ended() => {
                let _ = ended(session, reason).await;
                return;
            }
            _ = async { log.as_mut().expect("guarded").changed().await }, if log.is_some() && !moved => {
                moved = true;
            }
            _ = place.tick(), if moved => {
                moved = false;
                match tab.beat(&engine, true).await {
                    Ok(None) => {}
                    Ok(Some(frame)) => {
                        if !say(&mut session, frame).await {
                            return;
                        }
                    }
                    Err(reason) => {
                        let _ = ended(session, reason).await;
                        return;
                    }
                }
            }
            frame = stream.recv() => {
                heard = tokio::time::Instant::now();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(Message::Pong(_) | Message::Nop)) => continue,
                    Some(Ok(Message::Binary(_) | Message::Continuation(_))) => {
                        let refusal = Error::InvalidRequest(
                            "frames are JSON text: {\"type\": \"heartbeat\"}".into(),
                        );
                        if !say(&mut session, error_frame(&refusal)).await {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        let _ = session.close(None).await;
                        return;
                    }
                };
                let answer = match serde_json::from_str::<Frame>(&text) {
                    Ok(Frame::Heartbeat) => match tab.beat(&engine, false).await {
                        Ok(frame) => frame.unwrap_or_default(),
                        Err(reason) => {
                            let _ = ended(session, reason).await;
                            return;
                        }
                    },
                    Err(e) => error_frame(&Error::InvalidRequest(format!(
                        "a frame must be {{\"type\": \"heartbeat\"}}: {e}"
                    ))),
                };
                if !say(&mut session, answer).await {
                    return;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > ping_every * PINGS_UNANSWERED {
                    let _ = session
                        .close(Some(CloseReason {
                            code: CloseCode::Away,
                            description: Some("no answer to pings".into()),
                        }))
                        .await;
                    return;
                }
                let pinged = tokio::time::timeout(SLOW_CLIENT, session.ping(b"")).await;
                if !matches!(pinged, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }
}

/// A ticket's place as a frame: in line, or ready with the end of its claim window.
fn place_frame(status: &crate::pool::TicketStatus) -> String {
    match status.claim_by {
        Some(claim_by) => json!({"type": "ready", "position": 0, "claim_by": claim_by,
                                 "expires_at": status.expires_at}),
        None => json!({"type": "position", "position": status.position,
                       "expires_at": status.expires_at}),
    }
    .to_string()
}

/// Sends a text frame, or says the tab has gone (or reads too slowly to keep).
async fn say(session: &mut actix_ws::Session, text: String) -> bool {
    matches!(
        tokio::time::timeout(SLOW_CLIENT, session.text(text)).await,
        Ok(Ok(()))
    )
}

/// Tells the tab its session ended, and closes.
async fn ended(
    mut session: actix_ws::Session,
    reason: crate::error::EndReason,
) -> Result<(), actix_ws::Closed> {
    let frame = json!({"type": "ended", "reason": reason.as_str()}).to_string();
    if !say(&mut session, frame).await {
        return Err(actix_ws::Closed);
    }
    session
        .close(Some(CloseReason {
            code: CloseCode::Normal,
            description: Some(format!("ended: {}", reason.as_str())),
        }))
        .await
}
