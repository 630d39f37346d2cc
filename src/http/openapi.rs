//! The OpenAPI document, generated from the handlers' annotations.
//!
//! What holds for every route rather than one is added here: the bearer scheme, the
//! `payload_too_large` answer of the body limit, `security: []` on the routes that
//! take no bearer token, and the links from an answer to the operations that take
//! what it returns (a login's token to the browser routes).

use std::borrow::Cow;

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;
use super::routes::{live, ops, sessions, tenants, tickets, users, webhooks};
use crate::ids::MAX_ID_LEN;

/// Every route of the HTTP API with its bodies and errors.
#[derive(OpenApi)]
#[openapi(
    info(title = "Usher", description = "Licence-seat engine: race-free admission, heartbeats and usage."),
    paths(
        tenants::put_tenant, tenants::patch_tenant, tenants::list_tenants, tenants::get_tenant, tenants::delete_tenant,
        tenants::rotate_key, tenants::put_records, tenants::get_records, tenants::usage, tenants::events,
        users::put_user, users::delete_user, users::list_users, users::logout_user,
        sessions::login, sessions::list_sessions, sessions::revoke,
        sessions::heartbeat, sessions::release, sessions::logout,
        tickets::ticket_heartbeat, tickets::claim_ticket, tickets::cancel_ticket, tickets::list_queue,
        live::tenant_stream, live::admin_stream, live::session_socket, live::ticket_socket,
        webhooks::list_webhooks, webhooks::put_webhook, webhooks::get_webhook, webhooks::delete_webhook, webhooks::deliveries,
        ops::healthz, ops::readyz, ops::metrics_text, ops::openapi_json,
    ),
    modifiers(&BearerAuth, &EveryRoute, &Links),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// The document as `/openapi.json` serves it.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    // utoipa 5.5 writes a Link's fields in snake case; OpenAPI spells them in camel case.
    let links = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(|l| l.as_object_mut()))
        .flat_map(|links| links.values_mut())
        .filter_map(|link| link.as_object_mut());
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.into(), value);
            }
        }
    }
    doc
}

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

/// A linked operation and its parameters, as runtime expressions.
type Link = (&'static str, &'static [(&'static str, &'static str)]);

/// From an operation's answer (operation id, status) to the operations that take what
/// it returns.
const LINKS: &[(&str, &str, &[Link])] = &[
    (
        "login",
        "201",
        &[
            ("heartbeat", &[("token", "$response.body#/session")]),
            ("release", &[("token", "$response.body#/session")]),
            ("logout", &[("token", "$response.body#/session")]),
            ("list_sessions", &[("tenant", "$request.path.tenant")]),
        ],
    ),
    (
        "login",
        "202",
        &[
            ("ticket_heartbeat", &[("ticket", "$response.body#/ticket")]),
            ("claim_ticket", &[("ticket", "$response.body#/ticket")]),
            ("cancel_ticket", &[("ticket", "$response.body#/ticket")]),
            ("list_queue", &[("tenant", "$request.path.tenant")]),
        ],
    ),
    (
        "claim_ticket",
        "201",
        &[
            ("heartbeat", &[("token", "$response.body#/session")]),
            ("release", &[("token", "$response.body#/session")]),
            ("logout", &[("token", "$response.body#/session")]),
        ],
    ),
    (
        "list_sessions",
        "200",
        &[(
            "revoke",
            &[
                ("tenant", "$request.path.tenant"),
                ("id", "$response.body#/sessions/0/id"),
            ],
        )],
    ),
    (
        "put_user",
        "200",
        &[
            (
                "logout_user",
                &[
                    ("tenant", "$request.path.tenant"),
                    ("user", "$response.body#/user"),
                ],
            ),
            (
                "delete_user",
                &[
                    ("tenant", "$request.path.tenant"),
                    ("user", "$response.body#/user"),
                ],
            ),
        ],
    ),
];

struct Links;

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        for (from, status, targets) in LINKS {
            let response = openapi
                .paths
                .paths
                .values_mut()
                .flat_map(operations)
                .filter(|op| op.operation_id.as_deref() == Some(*from))
                .find_map(|op| op.responses.responses.get_mut(*status));
            let Some(RefOr::T(response)) = response else {
                continue;
            };
            for (to, parameters) in *targets {
                let link = parameters.iter().fold(
                    LinkBuilder::new().operation_id(*to),
                    |link, (name, value)| link.parameter(*name, *value),
                );
                response.links.insert((*to).into(), RefOr::T(link.build()));
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
    /// The schema of a webhook's name.
    WebhookNameSchema,
    "WebhookName",
    "A webhook's name: 1 to 128 characters of letters, digits and . _ @ -",
    id_pattern(),
    1,
    MAX_ID_LEN
);
text_schema!(
    /// The schema of a group id.
    GroupIdSchema,
    "GroupId",
    "A group id: 1 to 128 characters of letters, digits and . _ @ -",
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
    "A session token: 32 characters of URL-safe base64, preceded by `tenant~` when the server runs on a shared store",
    "^([A-Za-z0-9._@-]{1,128}~)?[A-Za-z0-9_-]{32}$".to_string(),
    32,
    161
);
