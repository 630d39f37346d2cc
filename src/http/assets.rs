//! The dashboard, the browser client and the demo, embedded in the binary.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::HttpResponse;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[exclude = "README.md"]
struct Assets;

/// The embedded file for a request path, if any: `/` and `dir/` mean `index.html`.
pub fn response(path: &str) -> Option<HttpResponse> {
    let mut name = path.trim_start_matches('/').to_string();
    if name.is_empty() || name.ends_with('/') {
        name.push_str("index.html");
    }
    let file = Assets::get(&name).or_else(|| Assets::get(&format!("{name}/index.html")))?;
    Some(
        HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, file.metadata.mimetype()))
            .insert_header((CACHE_CONTROL, "no-cache"))
            .body(file.data.into_owned()),
    )
}
