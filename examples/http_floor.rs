//! The HTTP floor: a bare actix-web server whose heartbeat handler does no work.
//!
//! It answers `POST /v1/sessions/{token}/heartbeat` with a small fixed JSON body of
//! the same shape as Usher's, on the same number of workers, so that `wrk` can measure
//! side by side how close `usher serve` comes to what actix-web itself costs:
//!
//! ```text
//! cargo run --release --example http_floor -- 127.0.0.1:8081
//! TOKENS=tokens.txt wrk -t2 -c64 -d20s -s benches/wrk/heartbeat.lua http://127.0.0.1:8081
//! ```
//!
//! See BENCHMARKS.md for the whole procedure.

use actix_web::{web, App, HttpResponse, HttpServer};

const ANSWER: &str = r#"{"expires_at":"2026-01-01T00:10:00.000Z","idle_timeout_secs":600}"#;

async fn heartbeat(_token: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(ANSWER)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    // One worker per core unless told otherwise, as `usher serve` does.
    let workers = std::env::var("USHER_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let server = HttpServer::new(|| {
        App::new().route("/v1/sessions/{token}/heartbeat", web::post().to(heartbeat))
    })
    .workers(workers)
    .backlog(4096)
    .bind(&addr)?;
    println!("HTTP floor on http://{addr} with {workers} workers");
    server.run().await
}
