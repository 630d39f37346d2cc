//! Tenants: create or change the licence, list, view, delete, rotate the API key;
//! records and the usage report.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::executor::block_on;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::{authorize, authorize_admin, off_worker, Json, State, StrictObject};
use crate::engine::Engine;
use crate::http::auth::Credentials;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::openapi::{EngineFailures, TenantIdSchema};
use crate::licence::{Licence, LicenceSpec, MAX_IDLE_TIMEOUT_SECS, MAX_SEATS};
use crate::pool::{RecordsView, TenantView};
use crate::store::{EventPage, EventQuery};
use crate::usage::{DayUsage, USAGE_DAYS_KEPT};

/// A tenant just created: its view and, this once, its API key.
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    #[serde(flatten)]
    tenant: TenantView,
    /// The tenant API key. Shown only now; only its hash is kept.
    api_key: String,
}

/// A tenant with today's usage.
#[derive(Serialize, ToSchema)]
pub struct TenantSummary {
    #[serde(flatten)]
    tenant: TenantView,
    /// Today's figures, if anything happened yet.
    today: Option<DayUsage>,
}

/// `{"tenants": [...]}`
#[derive(Serialize, ToSchema)]
pub struct TenantList {
    tenants: Vec<TenantSummary>,
}

/// A rotated API key.
#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    /// The tenant.
    tenant: String,
    /// The new key; the old one no longer works.
    api_key: String,
}

/// `PUT …/records`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordCount {
    /// The tenant's total number of records.
    #[serde(deserialize_with = "crate::licence::whole::count")]
    count: u64,
}

/// `?days=N`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Days to report, ending today (1–400, default 30).
    #[param(minimum = 1, maximum = 400)]
    days: Option<u32>,
}

/// `{"days": [...]}`, oldest first.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    /// The tenant.
    tenant: String,
    /// One entry per day.
    days: Vec<DayUsage>,
}

/// The body of `PUT /v1/tenants/{tenant}` as the document states it: one shape per
/// model, with the bounds [`LicenceSpec::validate`] checks. The handler reads it as a
/// [`LicenceSpec`].
pub struct LicenceRequest;

impl utoipa::PartialSchema for LicenceRequest {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ObjectBuilder, OneOfBuilder, SchemaType, Type,
        };
        let integer = |min: u64, max: u64, nullable: bool, description: &str| {
            let kind = if nullable {
                SchemaType::from_iter([Type::Integer, Type::Null])
            } else {
                SchemaType::new(Type::Integer)
            };
            ObjectBuilder::new()
                .schema_type(kind)
                .minimum(Some(min as f64))
                .maximum(Some(max as f64))
                .description(Some(description))
        };
        let shape = |model: &str, description: &str, seats: bool, seat_per: bool| {
            let mut shape = ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "model",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([model])),
                )
                .required("model");
            // A field the model does not have may still be sent as null.
            let absent = |description: &str| {
                ObjectBuilder::new()
                    .schema_type(Type::Null)
                    .description(Some(description))
            };
            if seats {
                let seats = integer(0, MAX_SEATS.into(), false, "Seats in the licence");
                let alert_at = ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
                    .exclusive_minimum(Some(0.0))
                    .maximum(Some(1.0))
                    .description(Some(
                        "Share of the seats whose crossing raises the near_limit alert (default 0.9)",
                    ));
                shape = shape
                    .property("seats", seats)
                    .required("seats")
                    .property("alert_at", alert_at);
            } else {
                shape = shape.property("seats", absent("No seats under this model"));
            }
            if seat_per {
                let seat_per = ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .enum_values(Some([Some("user"), Some("session"), None]))
                    .description(Some("One seat per user (default) or per tab"));
                shape = shape.property("seat_per", seat_per);
            } else {
                let seat_per = absent("The concurrent model's only");
                shape = shape.property("seat_per", seat_per);
            }
            shape
                .property(
                    "idle_timeout_secs",
                    integer(
                        1,
                        MAX_IDLE_TIMEOUT_SECS,
                        true,
                        "Idle timeout in seconds (default 600)",
                    ),
                )
                .property(
                    "max_users",
                    integer(1, 1_000_000, true, "Account limit (default: the server's)"),
                )
                .property(
                    "max_sessions_per_user",
                    integer(
                        1,
                        MAX_SEATS.into(),
                        true,
                        "Live sessions one user may hold at once (default: no cap)",
                    ),
                )
        };
        // The concurrent model's seat policies (SPEC §9).
        let policies = |shape: ObjectBuilder| {
            let overage = ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
                .minimum(Some(0.0))
                .maximum(Some(1.0))
                .description(Some("Share of the seats admitted past them (default 0)"));
            let on_limit = ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .enum_values(Some([Some("refuse"), Some("displace_idlest"), None]))
                .description(Some(
                    "At the limit: refuse (default) or take over the idlest seat",
                ));
            let groups = |description: &str| {
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
                    .description(Some(description))
                    .property_names(Some(crate::http::openapi::GroupIdSchema::schema()))
                    .max_properties(Some(crate::licence::MAX_GROUPS))
                    .additional_properties(Some(integer(
                        0,
                        MAX_SEATS.into(),
                        false,
                        "Seats, at most the licence's",
                    )))
            };
            shape
                .property("overage", overage)
                .property("on_limit", on_limit)
                .property(
                    "reload_grace_secs",
                    integer(
                        0,
                        crate::licence::MAX_RELOAD_GRACE_SECS,
                        true,
                        "Seconds a released seat stays its user's, for a page reload (default 0)",
                    ),
                )
                .property(
                    "reserve",
                    groups("Seats only members of a group may take, by group; at most the seats in all, each at most its group_max; not with displace_idlest"),
                )
                .property(
                    "group_max",
                    groups("The most seats a group's members may hold at once, by group"),
                )
                .property(
                    "min_hold_secs",
                    integer(
                        0,
                        MAX_IDLE_TIMEOUT_SECS,
                        true,
                        "Seconds a seat is held before it may be displaced (default 300)",
                    ),
                )
        };
        let closed = |shape: ObjectBuilder| {
            shape.additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .description(Some("The licence: one shape per model"))
            .item(closed(shape(
                "named",
                "Seats assigned to named users",
                true,
                false,
            )))
            .item(closed(policies(shape(
                "concurrent",
                "At most `seats` seats held at once",
                true,
                true,
            ))))
            .item(closed(shape(
                "records",
                "No seat limit; billed by the record count",
                false,
                false,
            )))
            .into()
    }
}

impl ToSchema for LicenceRequest {}

/// Create a tenant or change its licence.
#[utoipa::path(put, path = "/v1/tenants/{tenant}", tag = "admin",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), DryRunQuery),
    request_body = LicenceRequest,
    responses(
        (status = 201, description = "Created; the body carries the API key, once", body = CreatedTenant),
        (status = 200, description = "Licence changed; with dry_run, nothing changed: the tenant as it would be, with `creates` (whether the change would create it) and `effects` (a LicenceEffects)", body = TenantView),
        (status = 400, description = "invalid_request: a bad id or licence", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "tenant_not_found: deleted while being changed", body = ErrorBody),
        EngineFailures,
    ))]
pub async fn put_tenant(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
    spec: Json<LicenceSpec>,
) -> ApiResult<HttpResponse> {
    authorize_admin(&req, &state).await?;
    let tenant = crate::TenantId::parse(&tenant)?;
    let dry_run = dry_run(&req)?;
    let licence = spec.validate(state.engine.config().default_max_users)?;
    if dry_run {
        let preview = state.engine.preview_licence(&tenant, licence).await?;
        return Ok(HttpResponse::Ok().json(preview));
    }
    let (view, created) = state.engine.put_tenant(&tenant, licence).await?;
    if created {
        let api_key = issue_key(&state, &tenant).await?;
        Ok(HttpResponse::Created().json(CreatedTenant {
            tenant: view,
            api_key,
        }))
    } else {
        Ok(HttpResponse::Ok().json(view))
    }
}

/// `?dry_run=true`: say what the change would do, and make none.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DryRunQuery {
    /// Answer the tenant as it would be and the change's `effects`, changing nothing.
    dry_run: Option<bool>,
}

fn dry_run(req: &HttpRequest) -> Result<bool, crate::Error> {
    let query = web::Query::<DryRunQuery>::from_query(req.query_string()).map_err(|e| {
        crate::Error::InvalidRequest(format!("invalid query: {e}; expected ?dry_run=true"))
    })?;
    Ok(query.dry_run.unwrap_or(false))
}

/// The licence fields a `PATCH` changes, each optional; `null` puts one back to its
/// default, and a new `model` leaves behind the fields that do not apply to it. Which
/// fields apply depends on the licence in force, so a body of this shape may still be
/// refused with `invalid_request`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LicencePatch {
    /// `named`, `concurrent` or `records`.
    model: Option<String>,
    /// Seats (named, concurrent).
    #[schema(minimum = 0, maximum = 1_000_000)]
    seats: Option<i64>,
    /// `user` or `session` (concurrent).
    seat_per: Option<String>,
    /// Idle timeout in seconds.
    #[schema(minimum = 1)]
    idle_timeout_secs: Option<i64>,
    /// Account limit.
    #[schema(minimum = 0)]
    max_users: Option<i64>,
    /// Concurrent: the share of the seats admitted past them, 0–1.
    #[schema(minimum = 0, maximum = 1)]
    overage: Option<f64>,
    /// Concurrent: `refuse` or `displace_idlest`.
    on_limit: Option<String>,
    /// Concurrent: seconds a seat is held before it may be displaced.
    #[schema(minimum = 0)]
    min_hold_secs: Option<i64>,
    /// Live sessions one user may hold at once.
    #[schema(minimum = 1)]
    max_sessions_per_user: Option<i64>,
    /// Concurrent: seconds a released seat stays its user's, for a page reload.
    #[schema(minimum = 0, maximum = 3600)]
    reload_grace_secs: Option<i64>,
    /// Concurrent: seats only a group's members may take, merged group by group (a
    /// group set to null is taken out).
    reserve: Option<std::collections::BTreeMap<String, Option<i64>>>,
    /// Concurrent: the most seats a group's members may hold at once, merged group by
    /// group.
    group_max: Option<std::collections::BTreeMap<String, Option<i64>>>,
    /// Named, concurrent: the share of the seats whose crossing raises `near_limit`.
    #[schema(exclusive_minimum = 0, maximum = 1)]
    alert_at: Option<f64>,
}

/// Change only the fields given of a tenant's licence.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "admin",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), DryRunQuery),
    request_body = LicencePatch,
    responses(
        (status = 200, description = "Licence changed; with dry_run, nothing changed: the tenant as it would be, with `creates` and `effects` (a LicenceEffects)", body = TenantView),
        (status = 400, description = "invalid_request: a bad id, field or licence", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "tenant_not_found", body = ErrorBody),
        (status = 409, description = "licence_changed: changes from elsewhere (another node, a PUT) kept coming between", body = ErrorBody),
        EngineFailures,
    ))]
pub async fn patch_tenant(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
    patch: Json<StrictObject>,
) -> ApiResult<HttpResponse> {
    authorize_admin(&req, &state).await?;
    let tenant = crate::TenantId::parse(&tenant)?;
    let dry_run = dry_run(&req)?;
    let engine = &state.engine;
    let default_max_users = engine.config().default_max_users;
    let change = |current: &Licence| {
        let mut licence = patched(current, &patch)?.validate(default_max_users)?;
        // The request speaks in whole seconds; a timeout it does not mention stays exact.
        if !patch.contains_key("idle_timeout_secs") {
            licence.idle_timeout = current.idle_timeout;
        }
        Ok(licence)
    };
    if dry_run {
        let licence = change(&engine.licence(&tenant).await?)?;
        let preview = engine.preview_licence(&tenant, licence).await?;
        return Ok(HttpResponse::Ok().json(preview));
    }
    let changed = engine.update_licence(&tenant, change).await?;
    Ok(HttpResponse::Ok().json(changed))
}

/// The request for `current` with the fields of `patch` changed (a JSON merge
/// patch: a field given replaces the current one, `null` puts it back to its
/// default). When the patch changes the model, the current fields that do not apply
/// to the new one are left behind. The result still has to be validated.
fn patched(current: &Licence, patch: &Map<String, Value>) -> Result<LicenceSpec, crate::Error> {
    let Value::Object(mut fields) = serde_json::to_value(current).unwrap_or_default() else {
        return Err(crate::Error::Internal(
            "the licence could not be read".into(),
        ));
    };
    let model = patch.get("model").and_then(Value::as_str);
    if let Some(model) = model.filter(|m| *m != current.model.name()) {
        let applies: &[&str] = match model {
            "named" | "concurrent" => &["seats", "alert_at"],
            _ => &[],
        };
        let everywhere = ["idle_timeout_secs", "max_users", "max_sessions_per_user"];
        fields.retain(|k, _| everywhere.contains(&k.as_str()) || applies.contains(&k.as_str()));
    }
    const FIELDS: [&str; 13] = [
        "model",
        "seats",
        "seat_per",
        "idle_timeout_secs",
        "max_users",
        "overage",
        "on_limit",
        "min_hold_secs",
        "max_sessions_per_user",
        "reload_grace_secs",
        "reserve",
        "group_max",
        "alert_at",
    ];
    for (field, value) in patch {
        if !FIELDS.contains(&field.as_str()) {
            return Err(crate::Error::InvalidRequest(format!(
                "invalid licence: unknown field \"{field}\", expected one of {}",
                FIELDS.join(", ")
            )));
        }
        match (value, fields.get_mut(field)) {
            (Value::Null, _) => {
                fields.remove(field);
            }
            // A map of groups is merged group by group; a null group is taken out.
            (Value::Object(groups), Some(Value::Object(current))) => {
                for (group, seats) in groups {
                    if seats.is_null() {
                        current.remove(group);
                    } else {
                        current.insert(group.clone(), seats.clone());
                    }
                }
                if current.is_empty() {
                    fields.remove(field);
                }
            }
            (Value::Object(groups), _) => {
                let set: Map<String, Value> = groups
                    .iter()
                    .filter(|(_, seats)| !seats.is_null())
                    .map(|(g, s)| (g.clone(), s.clone()))
                    .collect();
                if !set.is_empty() {
                    fields.insert(field.clone(), Value::Object(set));
                }
            }
            (value, _) => {
                fields.insert(field.clone(), value.clone());
            }
        }
    }
    let model = fields.get("model").cloned().unwrap_or(Value::Null);
    serde_json::from_value(Value::Object(fields)).map_err(|e| {
        // Name the field: the first of the patch's that is wrong on its own.
        let wrong = patch.iter().find_map(|(field, value)| {
            let alone = json!({"model": model, field.as_str(): value});
            let error = serde_json::from_value::<LicenceSpec>(alone).err()?;
            Some(format!("\"{field}\": {error}"))
        });
        crate::Error::InvalidRequest(format!(
            "invalid licence: {}",
            wrong.unwrap_or(e.to_string())
        ))
    })
}

/// A new key for `tenant`: stored (its hash) before it takes effect and is shown.
async fn issue_key(state: &State, tenant: &crate::TenantId) -> ApiResult<String> {
    let (api_key, hash) = Credentials::new_tenant_key();
    state.engine.set_api_key(tenant, hash).await?;
    Ok(api_key)
}

/// All tenants with a usage summary.
#[utoipa::path(get, path = "/v1/tenants", tag = "admin",
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tenants(req: HttpRequest, state: State) -> ApiResult<HttpResponse> {
    authorize_admin(&req, &state).await?;
    let engine = state.engine.clone();
    // Asking for usage may wait for room on the event channel.
    let tenants = off_worker(move || Ok(block_on(summaries(&engine)))).await?;
    Ok(HttpResponse::Ok().json(TenantList { tenants }))
}

async fn summaries(engine: &Engine) -> Vec<TenantSummary> {
    let mut tenants = Vec::new();
    let Ok(ids) = engine.tenant_ids().await else {
        return tenants;
    };
    for id in ids {
        // A tenant deleted while listing is simply left out.
        let Ok(view) = engine.tenant(&id).await else {
            continue;
        };
        let today = engine.usage(&id, 1).await.ok().and_then(|mut d| d.pop());
        tenants.push(TenantSummary {
            tenant: view,
            today,
        });
    }
    tenants
}

/// The tenant view.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn get_tenant(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    Ok(HttpResponse::Ok().json(state.engine.tenant(&tenant).await?))
}

/// Remove the tenant and end its sessions.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "admin",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn delete_tenant(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    authorize_admin(&req, &state).await?;
    let tenant = crate::TenantId::parse(&tenant)?;
    state.engine.delete_tenant(&tenant).await?;
    // Its webhooks go with it (a tenant created again under the id starts without).
    crate::http::webhooks::forget_tenant(&state.engine, &tenant).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate the tenant API key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/api-key", tag = "admin",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    responses((status = 200, body = ApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn rotate_key(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    authorize_admin(&req, &state).await?;
    let tenant = crate::TenantId::parse(&tenant)?;
    let api_key = issue_key(&state, &tenant).await?;
    Ok(HttpResponse::Ok().json(ApiKey {
        tenant: tenant.to_string(),
        api_key,
    }))
}

/// Report the record count.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/records", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    request_body = RecordCount,
    responses((status = 200, body = RecordsView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        EngineFailures))]
pub async fn put_records(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
    body: Json<RecordCount>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    Ok(HttpResponse::Ok().json(state.engine.report_records(&tenant, body.count).await?))
}

/// The record count and its peaks today and this month.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/records", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id")),
    responses((status = 200, body = RecordsView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn get_records(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    Ok(HttpResponse::Ok().json(state.engine.records(&tenant).await?))
}

/// The usage report per day.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), UsageQuery),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "overloaded, with Retry-After", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait")))))]
pub async fn usage(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    let query = web::Query::<UsageQuery>::from_query(req.query_string()).map_err(|e| {
        crate::Error::InvalidRequest(format!("invalid query: {e}; expected ?days=N"))
    })?;
    let days = query.days.unwrap_or(30);
    if days == 0 || days as usize > USAGE_DAYS_KEPT {
        return Err(crate::Error::InvalidRequest(format!(
            "days must be between 1 and {USAGE_DAYS_KEPT}, got {days}"
        ))
        .into());
    }
    let engine = state.engine.clone();
    let asked = tenant.clone();
    // Asking for usage may wait for room on the event channel.
    let days = off_worker(move || block_on(engine.usage(&asked, days))).await?;
    Ok(HttpResponse::Ok().json(UsageReport {
        tenant: tenant.to_string(),
        days,
    }))
}

/// `?since=…&limit=…&cursor=…`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events at or after this RFC 3339 moment (default: the oldest kept).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Events per page (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}-[0-9]{1,19}$")]
    cursor: Option<String>,
}

/// The audit log: every decision, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/events", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), EventsQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 500, description = "internal_error: the store could not be read", body = ErrorBody)))]
pub async fn events(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    let query = web::Query::<EventsQuery>::from_query(req.query_string()).map_err(|e| {
        crate::Error::InvalidRequest(format!(
            "invalid query: {e}; expected ?since=<RFC 3339>&limit=<n>"
        ))
    })?;
    let since = match &query.since {
        // Every event is at or after a moment before the epoch.
        Some(text) if before_the_epoch(text) => crate::Timestamp::EPOCH,
        Some(text) => crate::Timestamp::parse_rfc3339(text).ok_or_else(|| {
            crate::Error::InvalidRequest(format!(
                "since must be an RFC 3339 date-time, got {text:?}"
            ))
        })?,
        None => crate::Timestamp::EPOCH,
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(crate::Error::InvalidRequest(format!(
            "limit must be between 1 and 1000, got {limit}"
        ))
        .into());
    }
    let query = EventQuery {
        since,
        cursor: query.cursor.clone(),
        limit,
    };
    let engine = &state.engine;
    let page = engine.events(&tenant, &query).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Whether `text` is an RFC 3339 date-time before 1970, which a [`Timestamp`] cannot
/// hold.
///
/// [`Timestamp`]: crate::Timestamp
fn before_the_epoch(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok_and(|t| t.timestamp_millis() < 0)
}
