//! The dashboard, the browser client and the demo, embedded in the binary.
//!
//! Every file is served with a Content-Security-Policy that allows only this server's
//! own scripts, styles and API, so an injected `<script>` or inline handler does not
//! run and no other site can frame the dashboard (where the admin token is typed).

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use actix_web::HttpResponse;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[exclude = "README.md"]
struct Assets;

/// The dashboard's policy: its scripts and styles are files of its own, its only
/// image is the `data:` favicon, and it talks to this server only. Forms are sent by
/// script, never by the browser, so a token typed into one cannot end up in a URL.
pub const DASHBOARD_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The demo CRM's policy: the dashboard's, but the page stands in for a customer's
/// application and keeps its styles inline.
pub const DEMO_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded file for a request path, if any: `/` and `dir/` mean `index.html`.
pub fn response(path: &str) -> Option<HttpResponse> {
    let mut name = path.trim_start_matches('/').to_string();
    if name.is_empty() || name.ends_with('/') {
        name.push_str("index.html");
    }
    let file = match Assets::get(&name) {
        Some(file) => file,
        None => {
            name.push_str("/index.html");
            Assets::get(&name)?
        }
    };
    let policy = if name.starts_with("demo/") {
        DEMO_POLICY
    } else {
        DASHBOARD_POLICY
    };
    Some(
        HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, file.metadata.mimetype()))
            .insert_header((CACHE_CONTROL, "no-cache"))
            .insert_header((CONTENT_SECURITY_POLICY, policy))
            .insert_header((X_FRAME_OPTIONS, "DENY"))
            .insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(file.data.into_owned()),
    )
}
