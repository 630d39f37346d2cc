//! The OpenAPI document, generated from the handlers' annotations.
//!
//! What holds for every route rather than one is added here: the bearer scheme, the
//! `payload_too_large` answer of the body limit, and `security: []` on the routes that
//! take no bearer token.

use std::borrow::Cow;

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::routes::{ops, sessions, tenants, users};
use crate::ids::MAX_ID_LEN;

/// Every route of the HTTP API with its bodies and errors.
#[derive(OpenApi)]
#[openapi(
    info(title = "Usher", description = "Licence-seat engine: race-free admission, heartbeats and usage."),
    paths(
        tenants::put_tenant, tenants::list_tenants, tenants::get_tenant, tenants::delete_tenant,
        tenants::rotate_key, tenants::put_records, tenants::get_records, tenants::usage, tenants::events,
        users::put_user, users::delete_user, users::list_users, users::logout_user,
        sessions::login, sessions::list_sessions, sessions::revoke,
        sessions::heartbeat, sessions::release, sessions::logout,
        ops::healthz, ops::readyz, ops::metrics_text, ops::openapi_json,
    ),
    modifiers(&BearerAuth, &EveryRoute),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin token or a tenant API key"))
                    .build(),
            ),
        );
    }
}

/// What the server does around every handler.
struct EveryRoute;

impl utoipa::Modify for EveryRoute {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                // The body limit is checked before any route is matched.
                operation.responses.responses.insert(
                    "413".into(),
                    ResponseBuilder::new()
                        .description("payload_too_large: a body over 64 KiB")
                        .content(
                            "application/json",
                            utoipa::openapi::content::Content::new(Some(RefOr::<Schema>::Ref(
                                utoipa::openapi::Ref::from_schema_name(ErrorBody::name()),
                            ))),
                        )
                        .into(),
                );
                // `security(())` in an annotation means "no credential": say so with an
                // empty list, which overrides the document's bearer requirement.
                if let Some(security) = &mut operation.security {
                    if security.len() == 1 && is_empty_requirement(&security[0]) {
                        security.clear();
                    }
                }
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn is_empty_requirement(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// `500` and `503`: what any request that reaches a tenant's pool can answer.
#[derive(IntoResponses)]
#[allow(dead_code)] // only its responses are used
pub enum EngineFailures {
    /// internal_error: the store failed to write; nothing is acknowledged until a restart.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// overloaded: the tenant's queue is full; retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Overloaded(ErrorBody),
}

/// A string schema: `pattern`, and the length bounds it implies.
fn text(description: &str, pattern: String, min: usize, max: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .into()
}

/// The id pattern of SPEC §4, as `ids` checks it.
pub fn id_pattern() -> String {
    format!("^[A-Za-z0-9._@-]{{1,{MAX_ID_LEN}}}$")
}

macro_rules! text_schema {
    ($(#[$doc:meta])* $name:ident, $as:literal, $description:literal, $pattern:expr, $min:expr, $max:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                text($description, $pattern, $min, $max)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($as)
            }
        }
    };
}

text_schema!(
    /// The schema of a tenant id.
    TenantIdSchema,
    "TenantId",
    "A tenant id: 1 to 128 characters of letters, digits and . _ @ -",
    id_pattern(),
    1,
    MAX_ID_LEN
);
text_schema!(
    /// The schema of a user id.
    UserIdSchema,
    "UserId",
    "A user id: 1 to 128 characters of letters, digits and . _ @ -",
    id_pattern(),
    1,
    MAX_ID_LEN
);
text_schema!(
    /// The schema of a session's public handle.
    SessionIdSchema,
    "SessionId",
    "A session's handle: 16 hexadecimal digits",
    "^[0-9A-Fa-f]{16}$".to_string(),
    16,
    16
);
text_schema!(
    /// The schema of a session token.
    SessionTokenSchema,
    "SessionToken",
    "A session token: 32 characters of URL-safe base64",
    "^[A-Za-z0-9_-]{32}$".to_string(),
    32,
    32
);
