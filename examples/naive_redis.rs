//! The naive Redis service: the baseline for Usher's Redis mode.
//!
//! An actix-web server whose handlers each run one Lua script on Redis per request
//! (`EVALSHA`, the admission decision of `benches/redis/admit.lua` and a heartbeat
//! beside it), on Redis time, with no batching: what a service built the obvious way
//! on the same Redis does. It speaks the part of Usher's HTTP API that the benchmarks
//! drive, with the same token shape (`tenant~secret`, so a heartbeat finds its tenant
//! without a lookup):
//!
//! - `PUT /v1/tenants/{tenant}` with `{"seats": N, "idle_timeout_secs": S}` (seats
//!   absent: no limit) answers `{"api_key": ...}`;
//! - `POST /v1/tenants/{tenant}/sessions` with `{"user": ..}` answers 201 with the
//!   session, or 409 `licence_limit_reached`;
//! - `POST /v1/sessions/{token}/heartbeat` answers 200, or 410 `session_ended`.
//!
//! It does less than Usher per request (no API key check, no accounts, no events,
//! usage or audit log, one seat per session), which favours it in the comparison.
//!
//! ```text
//! cargo run --release --example naive_redis -- 127.0.0.1:8082 redis://127.0.0.1:6379/0
//! ```
//!
//! See BENCHMARKS.md, "Scale-out on Redis".

use actix_web::{web, App, HttpResponse, HttpServer};
use redis::aio::ConnectionManager;
use redis::Script;
use serde::Deserialize;
use serde_json::json;

/// The tenant's licence, then its sessions by idle deadline: admitted unless the
/// seats are taken once the due sessions are gone.
///
/// KEYS[1] licence hash (seats, idle ms), KEYS[2] sessions zset (id → deadline ms);
/// ARGV[1] the new session's id. Returns `{1, expires_at}`, `{0, seats_in_use}` at
/// the limit, or `{-1}` for an unknown tenant.
const LOGIN: &str = r#"
local licence = redis.call('HMGET', KEYS[1], 'seats', 'idle')
if not licence[2] then return {-1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seats = tonumber(licence[1] or '-1')
local idle = tonumber(licence[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if seats >= 0 then
  local in_use = redis.call('ZCARD', KEYS[2])
  if in_use >= seats then return {0, in_use} end
end
redis.call('ZADD', KEYS[2], now + idle, ARGV[1])
return {1, now + idle}
"#;

/// Moves a live session's deadline. KEYS as [`LOGIN`]; ARGV[1] the session's id.
/// Returns `{1, expires_at}`, or `{0}` when the session is over or unknown.
const HEARTBEAT: &str = r#"
local idle = tonumber(redis.call('HGET', KEYS[1], 'idle') or '')
if not idle then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '')
if not deadline or deadline <= now then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
redis.call('ZADD', KEYS[2], 'XX', now + idle, ARGV[1])
return {1, now + idle}
"#;

struct State {
    redis: ConnectionManager,
    login: Script,
    heartbeat: Script,
}

fn keys(tenant: &str) -> [String; 2] {
    [
        format!("naive:{{{tenant}}}:licence"),
        format!("naive:{{{tenant}}}:sessions"),
    ]
}

fn unavailable(e: redis::RedisError) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(json!({"error": "unavailable", "message": e.to_string()}))
}

#[derive(Deserialize)]
struct LicenceBody {
    seats: Option<i64>,
    idle_timeout_secs: Option<u64>,
}

async fn put_tenant(
    state: web::Data<State>,
    tenant: web::Path<String>,
    body: web::Json<LicenceBody>,
) -> HttpResponse {
    let [licence, sessions] = keys(&tenant);
    let idle_ms = body.idle_timeout_secs.unwrap_or(600) * 1000;
    let result: redis::RedisResult<()> = redis::pipe()
        .atomic()
        .del(&sessions)
        .hset_multiple(
            &licence,
            &[
                ("seats", body.seats.unwrap_or(-1)),
                ("idle", idle_ms as i64),
            ],
        )
        .query_async(&mut state.redis.clone())
        .await;
    match result {
        Ok(()) => HttpResponse::Ok().json(json!({"tenant": *tenant, "api_key": "naive"})),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
}

async fn login(
    state: web::Data<State>,
    tenant: web::Path<String>,
    body: web::Json<LoginBody>,
) -> HttpResponse {
    let mut secret = [0u8; 16];
    if getrandom::fill(&mut secret).is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    let id: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let answer: redis::RedisResult<Vec<i64>> = state
        .login
        .key(&keys(&tenant))
        .arg(&id)
        .invoke_async(&mut state.redis.clone())
        .await;
    match answer.as_deref() {
        Ok([1, expires_at]) => HttpResponse::Created().json(json!({
            "session": format!("{tenant}~{id}"),
            "user": body.user,
            "expires_at_ms": expires_at,
            "heartbeat_interval_secs": 150,
            "idle_timeout_secs": 600,
        })),
        Ok([0, in_use]) => HttpResponse::Conflict()
            .json(json!({"error": "licence_limit_reached", "seats_in_use": in_use})),
        Ok(_) => HttpResponse::NotFound().json(json!({"error": "tenant_not_found"})),
        Err(e) => unavailable(e.clone()),
    }
}

async fn heartbeat(state: web::Data<State>, token: web::Path<String>) -> HttpResponse {
    let Some((tenant, id)) = token.split_once('~') else {
        return HttpResponse::NotFound().json(json!({"error": "session_not_found"}));
    };
    let answer: redis::RedisResult<Vec<i64>> = state
        .heartbeat
        .key(&keys(tenant))
        .arg(id)
        .invoke_async(&mut state.redis.clone())
        .await;
    match answer.as_deref() {
        Ok([1, expires_at]) => {
            HttpResponse::Ok().json(json!({"expires_at_ms": expires_at, "idle_timeout_secs": 600}))
        }
        Ok(_) => HttpResponse::Gone().json(json!({"error": "session_ended", "reason": "expired"})),
        Err(e) => unavailable(e.clone()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8082".into());
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let client = redis::Client::open(url.as_str()).map_err(std::io::Error::other)?;
    // One multiplexed connection, as a service built on redis-rs has it.
    let redis = ConnectionManager::new(client)
        .await
        .map_err(std::io::Error::other)?;
    let state = web::Data::new(State {
        redis,
        login: Script::new(LOGIN),
        heartbeat: Script::new(HEARTBEAT),
    });
    // One worker per core unless told otherwise, as `usher serve` does.
    let workers = std::env::var("USHER_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/v1/tenants/{tenant}", web::put().to(put_tenant))
            .route("/v1/tenants/{tenant}/sessions", web::post().to(login))
            .route("/v1/sessions/{token}/heartbeat", web::post().to(heartbeat))
    })
    .workers(workers)
    .backlog(4096)
    .bind(&addr)?;
    println!("naive Redis service on http://{addr} over {url} with {workers} workers");
    server.run().await
}
