//! Users: register / assign, remove / unassign, list, log out everywhere.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{authorize, optional_body, PageQuery, State};
use crate::error::Error;
use crate::http::error::{ApiResult, ErrorBody};
use crate::http::openapi::{EngineFailures, GroupIdSchema, TenantIdSchema, UserIdSchema};
use crate::ids::{GroupId, UserId};
use crate::pool::UserView;

/// `{"users": [...], "next_cursor": "..."}`: a page of the accounts, by user id.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
    /// Pass as `cursor` for the next page (it is the last user id of this one); absent
    /// on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Sessions ended by a logout.
#[derive(Serialize, ToSchema)]
pub struct LoggedOut {
    /// The user.
    user: String,
    /// How many sessions ended.
    sessions_ended: u32,
}

/// The optional body of `PUT …/users/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// The user's groups, replacing those they had (`[]`: none). Left out, they stay
    /// as they are.
    #[schema(max_items = 32, value_type = Option<Vec<GroupIdSchema>>)]
    pub groups: Option<Vec<String>>,
}

/// Register a user, or under the named model assign them a seat; with a body, also set
/// their groups.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/users/{user}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), ("user" = inline(UserIdSchema), Path, description = "User id")),
    request_body(content = Option<UserRequest>, description = "Optional: the user's groups"),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "forbidden or user_limit_reached", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "seats_exhausted", body = ErrorBody),
        EngineFailures))]
pub async fn put_user(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &path.0).await?;
    let user = UserId::parse(&path.1)?;
    let view = match groups_of(&optional_body(payload).await?)? {
        None => state.engine.put_user(&tenant, &user).await?,
        Some(groups) => {
            state
                .engine
                .put_user_in_groups(&tenant, &user, &groups)
                .await?
        }
    };
    Ok(HttpResponse::Ok().json(view))
}

/// The groups an optional body gives: none without a body or without `groups`.
fn groups_of(body: &[u8]) -> Result<Option<Vec<GroupId>>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: Option<UserRequest> = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidRequest(format!("invalid JSON body: {e}")))?;
    let Some(groups) = request.and_then(|r| r.groups) else {
        return Ok(None);
    };
    let groups = groups
        .iter()
        .map(|g| GroupId::parse(g))
        .collect::<Result<Vec<_>, _>>()?;
    crate::pool::user_groups(&groups)?;
    Ok(Some(groups))
}

/// Remove a user (and any named seat), ending their sessions.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/users/{user}", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), ("user" = inline(UserIdSchema), Path, description = "User id")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn delete_user(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &path.0).await?;
    let user = UserId::parse(&path.1)?;
    state.engine.remove_user(&tenant, &user).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's users, a page at a time, by user id.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/users", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Users per page (1–1000, default 1000)"),
        ("cursor" = Option<String>, Query, pattern = r"^[A-Za-z0-9._@-]{1,128}$", max_length = 128, min_length = 1,
            description = "The `next_cursor` of the previous page (a user id); none for the first page")),
    responses((status = 200, body = UserList),
        (status = 400, description = "a limit out of range or a cursor no page gave", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        EngineFailures))]
pub async fn list_users(
    req: HttpRequest,
    state: State,
    tenant: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &tenant).await?;
    let query = PageQuery::from_request(&req)?;
    let after = query
        .cursor()
        .map(|cursor| {
            UserId::parse(cursor).map_err(|_| {
                Error::InvalidRequest(
                    "cursor must be the next_cursor of a previous page of users".into(),
                )
            })
        })
        .transpose()?;
    let page = state
        .engine
        .users_page(&tenant, after.as_ref(), query.limit())
        .await?;
    Ok(HttpResponse::Ok().json(UserList {
        users: page.items,
        next_cursor: page.next.map(|user| user.to_string()),
    }))
}

/// End every session of a user.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/users/{user}/logout", tag = "tenant",
    params(("tenant" = inline(TenantIdSchema), Path, description = "Tenant id"), ("user" = inline(UserIdSchema), Path, description = "User id")),
    responses((status = 200, body = LoggedOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), EngineFailures))]
pub async fn logout_user(
    req: HttpRequest,
    state: State,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let tenant = authorize(&req, &state, &path.0).await?;
    let user = UserId::parse(&path.1)?;
    let sessions_ended = state.engine.logout_user(&tenant, &user).await?;
    Ok(HttpResponse::Ok().json(LoggedOut {
        user: user.to_string(),
        sessions_ended,
    }))
}
