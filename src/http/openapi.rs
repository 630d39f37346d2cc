//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::routes::{ops, sessions, tenants, users};

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
    modifiers(&BearerAuth),
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
