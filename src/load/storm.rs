//! The storm: N distinct users log in to one tenant at the same instant, each on a
//! connection of its own opened beforehand. Latency runs from that common instant, so
//! the last answer's latency is the storm's wall time.
//!
//! Under a licence that queues (`--queue`), the S logins the seats allow are admitted
//! and the other N − S put in line, at positions 1 to N − S each exactly once. Then
//! the line is drained: the S sessions are released at once, and each release hands
//! its seat down the line: the k-th release answered means the ticket at position k
//! is ready (the k-th release the tenant decided served it, and at least k were
//! decided), so that ticket heartbeats, must hear "ready", claims, and releases in
//! turn. The drain thus runs S chains of heartbeat, claim and release with no polling
//! and no think time: its wall time is the line's own throughput, and a ticket not
//! ready when its turn came is a break of first come, first served.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::raw::{self, RawConn};
use super::report::{position_faults, Belief, Op, Outcome, Report, StormLine, StormSummary};
use super::target::{self, EngineTarget, Entry, HttpTarget, Standing, Target};
use super::workload::Names;
use super::{check_lines, check_tenants, tear_down, Ctx, LoadConfig, Progress};
use crate::licence::LicenceSpec;

/// What one storm login came to, as its client keeps it for the drain.
enum Landing<K> {
    /// Admitted: the session's token.
    Admitted(K),
    /// Put in line: the ticket, its position and whose it is.
    Queued {
        ticket: K,
        position: u32,
        user: String,
    },
    /// Refused, or failed.
    Neither,
}

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
        on_limit: config.queue.then(|| "queue".to_string()),
        // The drain claims the moment a ticket's turn comes; the window only has to
        // outlast a slow answer.
        queue_claim_secs: config.queue.then_some(600),
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
    let states: Vec<(usize, usize, RawConn, Vec<u8>)> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let node = node_of(i as u64);
            target.count_sent(node);
            let body = json!({"user": format!("s{i}"), "client": "storm"}).to_string();
            (
                i,
                node,
                conn,
                raw::post_json(&endpoints[node].0, &path, &key, &body),
            )
        })
        .collect();
    progress.say(&format!("{logins} logins at once"));
    let timeout = config.timeout;
    let queue = config.queue;
    let ctx = Rc::new(Ctx::new(target.clone()));
    let (wall, landings) = fire(
        &ctx,
        states,
        move |(i, node, mut conn, request)| async move {
            match actix_web::rt::time::timeout(timeout, conn.send(&request)).await {
                Err(_) => (Outcome::Failed("timeout".into()), Landing::Neither),
                Ok(Err(_)) => (Outcome::Failed("io".into()), Landing::Neither),
                // Without a line, nothing of the answer is needed but its status.
                Ok(Ok(answer)) if answer.status == 201 && !queue => {
                    (Outcome::Ok(()), Landing::Neither)
                }
                Ok(Ok(answer)) => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&answer.body).unwrap_or_default();
                    landing_of_http(answer.status, &body, node, format!("s{i}"))
                }
            }
        },
    )
    .await;
    progress.finish();
    finish(target, ctx, config, tenant, seats, logins, wall, landings).await
}

/// A raw login answer sorted, with what the drain needs of it.
fn landing_of_http(
    status: u16,
    body: &serde_json::Value,
    node: usize,
    user: String,
) -> (Outcome<()>, Landing<target::NodeToken>) {
    let token = |key: &str| {
        body[key].as_str().map(|token| target::NodeToken {
            token: token.to_string(),
            node,
        })
    };
    match status {
        201 => match token("session") {
            Some(session) => (Outcome::Ok(()), Landing::Admitted(session)),
            None => (Outcome::Failed("bad_login_answer".into()), Landing::Neither),
        },
        202 => match target::place_of(body, node) {
            Some(place) => (
                Outcome::Ok(()),
                Landing::Queued {
                    ticket: place.ticket,
                    position: place.position,
                    user,
                },
            ),
            None => (
                Outcome::Failed("bad_queued_answer".into()),
                Landing::Neither,
            ),
        },
        _ => (target::outcome_of(status, body), Landing::Neither),
    }
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
    let (wall, landings) = fire(&ctx, users, move |user| {
        let (t, id) = (t.clone(), id.clone());
        async move {
            let answer = t.login(&id, &user, "storm").await;
            let class = answer.class();
            let landing = match answer {
                Outcome::Ok(Entry::Admitted(session)) => Landing::Admitted(session.token),
                Outcome::Ok(Entry::Queued(place)) => Landing::Queued {
                    ticket: place.ticket,
                    position: place.position,
                    user,
                },
                _ => Landing::Neither,
            };
            (class, landing)
        }
    })
    .await;
    finish(target, ctx, config, tenant, seats, logins, wall, landings).await
}

/// Starts one task per state, lets them all reach the gate, opens it, and records each
/// answer's latency from the opening. Returns the time to the last answer, and what
/// each login came to.
async fn fire<T, S, F, Fut, L>(ctx: &Rc<Ctx<T>>, states: Vec<S>, login: F) -> (Duration, Vec<L>)
where
    T: Target + 'static,
    S: 'static,
    L: 'static,
    F: Fn(S) -> Fut + Clone + 'static,
    Fut: Future<Output = (Outcome<()>, L)> + 'static,
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
                let (outcome, landing) = login(state).await;
                Some((outcome, start.elapsed(), landing))
            })
        })
        .collect();
    // Let every task run up to the gate before it opens.
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    let _ = gate.send(Some(Instant::now()));
    let mut wall = Duration::ZERO;
    let mut landings = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Some((outcome, latency, landing))) = task.await {
            ctx.record(Op::Login, &outcome, latency);
            wall = wall.max(latency);
            landings.push(landing);
        }
    }
    (wall, landings)
}

#[allow(clippy::too_many_arguments)]
async fn finish<T: Target + 'static>(
    target: Rc<T>,
    ctx: Rc<Ctx<T>>,
    config: &LoadConfig,
    tenant: String,
    seats: u32,
    logins: u64,
    wall: Duration,
    landings: Vec<Landing<T::Token>>,
) -> Result<Report, String> {
    let tenants = [tenant];
    // The measured time: the storm, then the drain of its line, if any.
    let mut elapsed = wall;
    let (belief, line, waiting) = if config.queue {
        let (line, drained) = form_and_drain(&ctx, seats, logins, landings).await;
        elapsed += drained.took;
        let belief = Belief {
            seats_in_use: drained.held,
            sessions: drained.held,
        };
        (belief, Some(line), Some(drained.waiting))
    } else {
        let admitted = ctx.stats.borrow().ops.get(&Op::Login).map_or(0, |s| s.ok) as u32;
        let belief = Belief {
            seats_in_use: admitted,
            sessions: admitted,
        };
        (belief, None, None)
    };
    let checks = check_tenants(&*target, &tenants, &[Some(belief)]).await;
    let checks = match (checks, waiting) {
        (Ok(mut checks), Some(waiting)) => check_lines(&*target, &tenants, &[waiting], &mut checks)
            .await
            .map(|()| checks),
        (checks, _) => checks,
    };
    tear_down(&*target, config, &tenants).await;
    let stats = ctx.stats.borrow().clone();
    Ok(Report {
        mode: "storm",
        target: target.describe(),
        elapsed,
        stats,
        checks: checks?,
        storm: Some(StormSummary {
            logins,
            seats,
            wall,
            line,
        }),
        skipped: 0,
        nodes: target.spread(),
        queue: config.queue.then(|| ctx.queue.borrow().clone()),
    })
}

/// What the drain left: seats still held by the storm's clients, and the users still
/// in line as they see it.
struct Drained {
    held: u32,
    waiting: Vec<String>,
    /// From the first release to the last chain's end.
    took: Duration,
}

/// Checks the line the storm formed, then drains it (see the module's doc), filling
/// the queue figures as it goes.
async fn form_and_drain<T: Target + 'static>(
    ctx: &Rc<Ctx<T>>,
    seats: u32,
    logins: u64,
    landings: Vec<Landing<T::Token>>,
) -> (StormLine, Drained) {
    let expected = logins - logins.min(u64::from(seats));
    let mut sessions = Vec::new();
    let mut line = Vec::new();
    for landing in landings {
        match landing {
            Landing::Admitted(token) => sessions.push(token),
            Landing::Queued {
                ticket,
                position,
                user,
            } => line.push((position, ticket, user)),
            Landing::Neither => {}
        }
    }
    let positions: Vec<u32> = line.iter().map(|(p, _, _)| *p).collect();
    let faults = position_faults(&positions, expected);
    line.sort_by_key(|(p, _, _)| *p);
    let queued = line.len() as u64;
    ctx.queue.borrow_mut().queued = queued;
    let mut storm_line = StormLine {
        queued,
        position_faults: faults,
        out_of_turn: 0,
        drained: None,
    };
    if faults > 0 || queued == 0 {
        // Turns are positions: with positions off, nobody knows whose turn it is.
        ctx.queue.borrow_mut().waiting_at_end = queued;
        let held = sessions.len() as u32;
        let waiting = line.into_iter().map(|(_, _, user)| user).collect();
        if faults == 0 {
            storm_line.drained = Some(Duration::ZERO);
        }
        let took = Duration::ZERO;
        return (
            storm_line,
            Drained {
                held,
                waiting,
                took,
            },
        );
    }
    let drain = Rc::new(Drain {
        line: line
            .into_iter()
            .map(|(_, ticket, user)| (ticket, user))
            .collect(),
        served: RefCell::new(vec![false; queued as usize]),
        turns: Cell::new(0),
        held: Cell::new(sessions.len() as u32),
        out_of_turn: Cell::new(0),
        last_claim: Cell::new(None),
        joined: Instant::now(),
    });
    let started = Instant::now();
    let chains: Vec<_> = sessions
        .into_iter()
        .map(|session| actix_web::rt::spawn(chain(ctx.clone(), drain.clone(), session)))
        .collect();
    for chain in chains {
        let _ = chain.await;
    }
    let took = started.elapsed();
    let served = drain.served.borrow().iter().filter(|s| **s).count() as u64;
    storm_line.out_of_turn = drain.out_of_turn.get();
    if served == queued {
        storm_line.drained = drain.last_claim.get().map(|last| last - started);
    }
    ctx.queue.borrow_mut().waiting_at_end = queued - served;
    let waiting = drain
        .line
        .iter()
        .zip(drain.served.borrow().iter())
        .filter(|(_, served)| !**served)
        .map(|((_, user), _)| user.clone())
        .collect();
    let held = drain.held.get();
    (
        storm_line,
        Drained {
            held,
            waiting,
            took,
        },
    )
}

/// What the drain's chains share.
struct Drain<K> {
    /// The line, head first: ticket and user.
    line: Vec<(K, String)>,
    /// Which tickets were claimed.
    served: RefCell<Vec<bool>>,
    /// Releases answered so far: the next turn.
    turns: Cell<usize>,
    /// Sessions the storm's clients hold.
    held: Cell<u32>,
    /// Tickets not ready, or whose claim failed, when their turn came.
    out_of_turn: Cell<u64>,
    /// When the last claim was answered.
    last_claim: Cell<Option<Instant>>,
    /// When the line was complete (the storm's last answer was in): the waits run
    /// from here to each claim's answer.
    joined: Instant,
}

/// One chain of the drain: release the seat, hand it to the ticket whose turn that
/// release made, claim it for that ticket, and so on until the line is empty.
async fn chain<T: Target>(ctx: Rc<Ctx<T>>, drain: Rc<Drain<T::Token>>, first: T::Token) {
    let target = &ctx.target;
    let mut session = first;
    loop {
        let released = ctx
            .timed(Op::Release, Instant::now(), target.release(&session))
            .await;
        if released != Outcome::Ok(()) {
            // The seat may still be held: the turn it would have made is not counted.
            return;
        }
        drain.held.set(drain.held.get() - 1);
        let turn = drain.turns.get();
        drain.turns.set(turn + 1);
        let Some((ticket, _)) = drain.line.get(turn) else {
            return;
        };
        let beat = ctx
            .timed(
                Op::TicketHeartbeat,
                Instant::now(),
                target.ticket_heartbeat(ticket),
            )
            .await;
        if !matches!(beat, Outcome::Ok(Standing { ready: true, .. })) {
            drain.out_of_turn.set(drain.out_of_turn.get() + 1);
            return;
        }
        let claimed = ctx
            .timed(Op::Claim, Instant::now(), target.claim(ticket))
            .await;
        let Outcome::Ok(claimed) = claimed else {
            drain.out_of_turn.set(drain.out_of_turn.get() + 1);
            return;
        };
        let now = Instant::now();
        drain.last_claim.set(Some(now));
        drain.served.borrow_mut()[turn] = true;
        drain.held.set(drain.held.get() + 1);
        ctx.queue.borrow_mut().record_served(now - drain.joined);
        session = claimed.token;
    }
}
