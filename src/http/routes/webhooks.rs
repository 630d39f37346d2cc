//! Webhooks: register, read, remove, and the log of deliveries (SPEC §11).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{authorize, Json, State};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::openapi::{EngineFailures, TenantIdSchema, WebhookNameSchema};
use crate::http::webhooks::{self, Delivery, Progress, Registration};
use crate::ids::{TenantId, WebhookName};

/// The body of `PUT …/webhooks/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where deliveries go: an http(s) URL on a host of the server's
    /// `webhook_allow_hosts`.
    #[schema(max_length = 2048)]
    pub url: String,
    /// The event types to deliver: the audit log's (`admitted`, `refused`, `ended`,
    /// …) and the alerts `limit_reached` and `near_limit`.
    #[schema(min_items = 1, max_items = 12, value_type = Vec<WebhookEventType>)]
    pub events: Vec<String>,
    /// The key of each delivery's `Usher-Signature`, 16 to 256 characters. Never
    /// shown again.
    #[schema(min_length = 16, max_length = 256)]
    pub secret: String,
}

/// An event type a webhook may deliver.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum WebhookEventType {
    TenantCreated,
    LicenceChanged,
    TenantDeleted,
    Admitted,
    Refused,
    Withdrawn,
    Ended,
    UserAssigned,
    UserRemoved,
    RecordsReported,
    GraceLapsed,
    Queued,
    TicketReady,
    TicketEnded,
    LimitReached,
    NearLimit,
}

/// A webhook as its tenant sees it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// The name it is registered under.
    name: String,
    /// Where deliveries go.
    url: String,
    /// The event types delivered.
    events: Vec<String>,
    /// When it was first registered.
    #[schema(value_type = String, format = DateTime)]
    created_at: crate::clock::Timestamp,
    /// The id of the last event dealt with (delivered, or given up after 24 h).
    cursor: Option<String>,
    /// Since when the delivery under way has been failing.
    #[schema(value_type = Option<String>, format = DateTime)]
    failing_since: Option<crate::clock::Timestamp>,
    /// When it is tried again.
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt: Option<crate::clock::Timestamp>,
}

impl WebhookView {
    fn of(name: &WebhookName, registration: Registration, progress: &Progress) -> Self {
        WebhookView {
            name: name.to_string(),
            url: registration.url,
            events: registration.events,
            created_at: registration.created_at,
            cursor: progress.cursor.clone().or(registration.start_after),
            failing_since: progress.failing_since,
            next_attempt: progress.next_attempt,
        }
    }
}

/// `{"webhooks": [...]}`, by name.
#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookView>,
}

/// A tenant's webhooks, by name (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    responses((status = 200, body = WebhookList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), EngineFailures))]
pub async fn list_webhooks(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    state.engine.tenant(&tenant).await?;
    let webhooks = webhooks::registrations(&state.engine, &tenant)
        .await?
        .into_iter()
        .map(|(name, registration, progress)| {
            let name = WebhookName::parse(&name)?;
            Ok(WebhookView::of(&name, registration, &progress))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(HttpResponse::Ok().json(WebhookList { webhooks }))
}

/// `{"deliveries": [...]}`, newest first.
#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    deliveries: Vec<Delivery>,
}

/// The tenant and webhook of a path, the tenant known to exist.
async fn webhook_of(
    req: &HttpRequest,
    state: &State,
    path: &(String, String),
) -> ApiResult<(TenantId, WebhookName)> {
    let tenant = authorize(req, state, &path.0).await?;
    let name = WebhookName::parse(&path.1)?;
    state.engine.tenant(&tenant).await?;
    Ok((tenant, name))
}

/// A registered webhook with its progress, or 404 `webhook_not_found`.
async fn registered(
    state: &State,
    tenant: &TenantId,
    name: &WebhookName,
) -> ApiResult<(Registration, Progress)> {
    let registration = webhooks::registration(&state.engine, tenant, name.as_str())
        .await?
        .ok_or(Error::WebhookNotFound)?;
    let progress = webhooks::progress(&state.engine, tenant, name.as_str()).await?;
    Ok((registration, progress))
}

/// Register a webhook, or replace one of the same name (its deliveries continue where
/// they were). A new webhook delivers the events written after it.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/webhooks/{name}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"),
        ("name" = inline(WebhookNameSchema), Path, description = "Webhook name")),
    request_body = WebhookRequest,
    responses((status = 201, description = "Registered", body = WebhookView),
        (status = 200, description = "Replaced", body = WebhookView),
        (status = 400, description = "invalid_request: a bad name, URL, host, event type or secret", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), EngineFailures))]
pub async fn put_webhook(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
    spec: Json<WebhookRequest>,
) -> ApiResult<HttpResponse> {
    let (tenant, name) = webhook_of(&req, &state, &path).await?;
    let spec = spec.into_inner().0;
    let events = webhooks::event_types(spec.events)?;
    webhooks::check_secret(&spec.secret)?;
    let url = state.webhooks.check_target(&spec.url).await?;
    let (registration, created) = webhooks::register(
        &state.engine,
        &tenant,
        name.as_str(),
        url.to_string(),
        events,
        spec.secret,
    )
    .await?;
    let progress = webhooks::progress(&state.engine, &tenant, name.as_str()).await?;
    let view = WebhookView::of(&name, registration, &progress);
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// A webhook: where it delivers, what, and how far it has come.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks/{name}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"),
        ("name" = inline(WebhookNameSchema), Path, description = "Webhook name")),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "tenant_not_found or webhook_not_found", body = ErrorBody),
        EngineFailures))]
pub async fn get_webhook(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tenant, name) = webhook_of(&req, &state, &path).await?;
    let (registration, progress) = registered(&state, &tenant, &name).await?;
    Ok(HttpResponse::Ok().json(WebhookView::of(&name, registration, &progress)))
}

/// Remove a webhook: nothing more is delivered to it.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/webhooks/{name}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"),
        ("name" = inline(WebhookNameSchema), Path, description = "Webhook name")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "tenant_not_found or webhook_not_found", body = ErrorBody),
        EngineFailures))]
pub async fn delete_webhook(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tenant, name) = webhook_of(&req, &state, &path).await?;
    if !webhooks::unregister(&state.engine, &tenant, name.as_str()).await? {
        return Err(Error::WebhookNotFound.into());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The latest deliveries of a webhook (up to 100), newest first: each try with its
/// outcome, the target's status and what went wrong.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks/{name}/deliveries", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"),
        ("name" = inline(WebhookNameSchema), Path, description = "Webhook name")),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "tenant_not_found or webhook_not_found", body = ErrorBody),
        EngineFailures))]
pub async fn deliveries(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tenant, name) = webhook_of(&req, &state, &path).await?;
    let (_, progress) = registered(&state, &tenant, &name).await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: progress.deliveries.into_iter().collect(),
    }))
}
