//! The storm: N distinct users log in to one tenant at the same instant, each on a
//! connection of its own opened beforehand. Latency runs from that common instant, so
//! the last answer's latency is the storm's wall time.

use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::raw::{self, RawConn};
use super::report::{Belief, Op, Outcome, Report, StormSummary};
use super::target::{EngineTarget, HttpTarget, Target};
use super::workload::Names;
use super::{check_tenants, tear_down, Ctx, LoadConfig, Progress};
use crate::licence::LicenceSpec;

/// Connections opened at once while preparing the storm (the listen backlog is the
/// limit, not the storm itself).
const CONNECTING_AT_ONCE: usize = 256;

/// Creates the storm's tenant: concurrent seats, an idle timeout long enough that
/// nothing expires before the check, room for every user's account.
async fn storm_tenant<T: Target>(
    target: &T,
    config: &LoadConfig,
    logins: u64,
) -> Result<(String, u32), String> {
    let seats = config
        .seats
        .unwrap_or((logins / 10).clamp(1, u64::from(u32::MAX)) as u32);
    let tenant = Names::new(config.seed ^ crate::token::random_u64()).tenant(0);
    let spec = LicenceSpec {
        model: "concurrent".into(),
        seats: Some(i64::from(seats)),
        seat_per: None,
        idle_timeout_secs: Some(3600),
        max_users: Some(logins.clamp(999, 1_000_000) as i64),

        ..Default::default()
    };
    target.create_tenant(&tenant, &spec).await?;
    Ok((tenant, seats))
}

/// Over HTTP, on pre-connected bare connections; with several nodes, login `i` goes
/// to node `i mod n`.
pub(super) async fn over_http(
    target: Rc<HttpTarget>,
    config: &LoadConfig,
    logins: u64,
) -> Result<Report, String> {
    let endpoints = target
        .urls()
        .iter()
        .map(|url| raw::endpoint(url))
        .collect::<Result<Vec<_>, String>>()?;
    let (tenant, seats) = storm_tenant(&*target, config, logins).await?;
    let key = target.key(&tenant).unwrap_or_default();
    let progress = Progress::new(config, 0);
    progress.say(&format!("opening {logins} connections"));
    let node_of = |i: u64| (i % endpoints.len() as u64) as usize;
    let connected: Vec<std::io::Result<RawConn>> = futures::stream::iter(0..logins)
        .map(|i| RawConn::connect(endpoints[node_of(i)].1))
        .buffered(CONNECTING_AT_ONCE)
        .collect()
        .await;
    let mut conns = Vec::with_capacity(connected.len());
    for (i, conn) in connected.into_iter().enumerate() {
        match conn {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                tear_down(&*target, config, std::slice::from_ref(&tenant)).await;
                return Err(format!(
                    "could not open {logins} connections to {} ({e}); raise the open-file limit (ulimit -n)",
                    endpoints[node_of(i as u64)].1
                ));
            }
        }
    }
    let path = format!("/v1/tenants/{tenant}/sessions");
    let states: Vec<(RawConn, Vec<u8>)> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let node = node_of(i as u64);
            target.count_sent(node);
            let body = json!({"user": format!("s{i}"), "client": "storm"}).to_string();
            (conn, raw::post_json(&endpoints[node].0, &path, &key, &body))
        })
        .collect();
    progress.say(&format!("{logins} logins at once"));
    let timeout = config.timeout;
    let ctx = Rc::new(Ctx::new(target.clone()));
    let wall = fire(&ctx, states, move |(mut conn, request)| async move {
        match actix_web::rt::time::timeout(timeout, conn.send(&request)).await {
            Err(_) => Outcome::Failed("timeout".into()),
            Ok(Err(_)) => Outcome::Failed("io".into()),
            Ok(Ok(answer)) if answer.status == 201 => Outcome::Ok(()),
            Ok(Ok(answer)) => {
                let body = serde_json::from_slice(&answer.body).unwrap_or_default();
                super::target::outcome_of(answer.status, &body)
            }
        }
    })
    .await;
    progress.finish();
    finish(target, ctx, config, tenant, seats, logins, wall).await
}

/// Straight into the engine.
pub(super) async fn in_process(
    target: Rc<EngineTarget>,
    config: &LoadConfig,
    logins: u64,
) -> Result<Report, String> {
    let (tenant, seats) = storm_tenant(&*target, config, logins).await?;
    let ctx = Rc::new(Ctx::new(target.clone()));
    let users: Vec<String> = (0..logins).map(|i| format!("s{i}")).collect();
    let (t, id) = (target.clone(), Rc::new(tenant.clone()));
    let wall = fire(&ctx, users, move |user| {
        let (t, id) = (t.clone(), id.clone());
        async move { t.login(&id, &user, "storm").await.class() }
    })
    .await;
    finish(target, ctx, config, tenant, seats, logins, wall).await
}

/// Starts one task per state, lets them all reach the gate, opens it, and records each
/// answer's latency from the opening. Returns the time to the last answer.
async fn fire<T, S, F, Fut>(ctx: &Rc<Ctx<T>>, states: Vec<S>, login: F) -> Duration
where
    T: Target + 'static,
    S: 'static,
    F: Fn(S) -> Fut + Clone + 'static,
    Fut: Future<Output = Outcome<()>> + 'static,
{
    let (gate, _) = tokio::sync::watch::channel(None::<Instant>);
    let tasks: Vec<_> = states
        .into_iter()
        .map(|state| {
            let mut opened = gate.subscribe();
            let login = login.clone();
            actix_web::rt::spawn(async move {
                let start = match opened.wait_for(Option::is_some).await {
                    Ok(start) => start.expect("waited for it"),
                    Err(_) => return None,
                };
                let outcome = login(state).await;
                Some((outcome, start.elapsed()))
            })
        })
        .collect();
    // Let every task run up to the gate before it opens.
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    let _ = gate.send(Some(Instant::now()));
    let mut wall = Duration::ZERO;
    for task in tasks {
        if let Ok(Some((outcome, latency))) = task.await {
            ctx.record(Op::Login, &outcome, latency);
            wall = wall.max(latency);
        }
    }
    wall
}

async fn finish<T: Target>(
    target: Rc<T>,
    ctx: Rc<Ctx<T>>,
    config: &LoadConfig,
    tenant: String,
    seats: u32,
    logins: u64,
    wall: Duration,
) -> Result<Report, String> {
    let stats = ctx.stats.borrow().clone();
    let admitted = stats.ops.get(&Op::Login).map_or(0, |s| s.ok) as u32;
    let tenants = [tenant];
    let belief = Belief {
        seats_in_use: admitted,
        sessions: admitted,
    };
    let checks = check_tenants(&*target, &tenants, &[Some(belief)]).await;
    tear_down(&*target, config, &tenants).await;
    Ok(Report {
        mode: "storm",
        target: target.describe(),
        elapsed: wall,
        stats,
        checks: checks?,
        storm: Some(StormSummary {
            logins,
            seats,
            wall,
        }),
        skipped: 0,
        nodes: target.spread(),
    })
}
