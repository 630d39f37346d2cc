//! The two backends side by side: random sequences of operations, applied to an
//! embedded engine and to an engine on Redis that read the same manual clock, give the
//! same answers (codes and details, deadlines, fences, places in line) and leave the
//! same state (the tenant view, the session list, the user list and the waitlist)
//! after every step.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use usher::pool::{QueueEntry, SessionView};
use usher::{Engine, EngineConfig, Entry, Licence, ManualClock, SessionToken, TenantId, UserId};

#[path = "support/licences.rs"]
mod licences;
#[path = "support/redis.rs"]
mod support;

use licences::{grouped_licence, licence_with_policies, queueing_licence};

const USERS: [&str; 5] = ["ann", "bob", "carol", "dave", "erin"];

#[derive(Debug, Clone)]
enum Op {
    Login(usize),
    /// A login that a licence that queues may put in line.
    Enter(usize),
    TicketHeartbeat(Index),
    Claim(Index),
    CancelTicket(Index),
    Heartbeat(Index),
    Release(Index),
    Logout(Index),
    Revoke(Index),
    LogoutUser(usize),
    PutUser(usize),
    /// The user's groups become those of the mask's bits.
    PutUserInGroups(usize, u8),
    RemoveUser(usize),
    SetLicence(Licence),
    ReportRecords(u64),
    Advance(Duration),
    ExpireDue,
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    prop_oneof![
        8 => user.clone().prop_map(Op::Login),
        6 => user.clone().prop_map(Op::Enter),
        3 => any::<Index>().prop_map(Op::TicketHeartbeat),
        4 => any::<Index>().prop_map(Op::Claim),
        1 => any::<Index>().prop_map(Op::CancelTicket),
        3 => any::<Index>().prop_map(Op::Heartbeat),
        2 => any::<Index>().prop_map(Op::Release),
        1 => any::<Index>().prop_map(Op::Logout),
        1 => any::<Index>().prop_map(Op::Revoke),
        1 => user.clone().prop_map(Op::LogoutUser),
        3 => user.clone().prop_map(Op::PutUser),
        3 => (user.clone(), 0u8..4).prop_map(|(user, mask)| Op::PutUserInGroups(user, mask)),
        1 => user.prop_map(Op::RemoveUser),
        2 => prop_oneof![licence_with_policies(), queueing_licence()].prop_map(Op::SetLicence),
        1 => (0u64..1_000).prop_map(Op::ReportRecords),
        3 => prop_oneof![0u64..2_000, 0u64..100_000, 3_000_000u64..4_000_000]
            .prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        1 => Just(Op::ExpireDue),
    ]
}

/// The two engines, reading one clock.
struct Pair {
    embedded: Engine,
    redis: Engine,
    clock: ManualClock,
}

/// A session as both backends handed it out.
struct Tab {
    embedded: SessionToken,
    redis: SessionToken,
}

/// A waitlist ticket as both backends handed it out.
struct Place {
    embedded: SessionToken,
    redis: SessionToken,
}

fn user(i: usize) -> UserId {
    UserId::parse(USERS[i]).unwrap()
}

/// The session list with each backend's own ids replaced by the tab's place in the
/// order of logins, so that the two lists compare. Sessions that logged in at the same
/// moment are listed by id, which differs between the backends: the list is sorted.
fn normalised(
    list: Vec<SessionView>,
    tabs: &[Tab],
    of: impl Fn(&Tab) -> &SessionToken,
) -> Vec<String> {
    let mut list: Vec<String> = list
        .into_iter()
        .map(|s| {
            let tab = tabs.iter().position(|t| of(t).id() == s.id);
            format!(
                "tab {tab:?} {} {:?} {} {} {} fence {}",
                s.user, s.client, s.started_at, s.last_heartbeat_at, s.expires_at, s.fence
            )
        })
        .collect();
    list.sort();
    list
}

/// The waitlist with each backend's own ticket ids replaced by the ticket's place in
/// the order of logins put in line.
fn line(
    list: Vec<QueueEntry>,
    places: &[Place],
    of: impl Fn(&Place) -> &SessionToken,
) -> Vec<String> {
    list.into_iter()
        .map(|e| {
            let place = places.iter().position(|p| of(p).id() == e.ticket);
            format!(
                "{} ticket {place:?} {} {:?} {} {:?}",
                e.position, e.user, e.client, e.queued_at, e.claim_by
            )
        })
        .collect()
}

macro_rules! same {
    ($step:expr, $a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        prop_assert_eq!(&a, &b, "step {}", $step);
    }};
}

async fn check(pair: &Pair, case: u64, start: Licence, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tenant = TenantId::parse(&format!("case-{case}")).unwrap();
    let (e, r) = (&pair.embedded, &pair.redis);
    same!(
        "create",
        e.put_tenant(&tenant, start.clone()).await,
        r.put_tenant(&tenant, start).await
    );
    let mut tabs: Vec<Tab> = Vec::new();
    let mut places: Vec<Place> = Vec::new();
    let shown = |l: &usher::Result<usher::Login>| {
        l.as_ref()
            .map(|l| {
                (
                    l.user.clone(),
                    l.expires_at,
                    l.idle_timeout,
                    l.heartbeat_interval,
                    l.fence,
                    l.overage,
                )
            })
            .map_err(Clone::clone)
    };
    for (step, op) in ops.into_iter().enumerate() {
        let step = format!("{step}: {op:?}");
        match op {
            Op::Enter(u) => {
                let client = Some("tab");
                let a = e.enter(&tenant, &user(u), client).await;
                let b = r.enter(&tenant, &user(u), client).await;
                let entry = |entry: &usher::Result<Entry>| {
                    entry
                        .as_ref()
                        .map(|entry| match entry {
                            Entry::Admitted(l) => format!(
                                "admitted {} {} {:?} {:?} fence {} {}",
                                l.user,
                                l.expires_at,
                                l.idle_timeout,
                                l.heartbeat_interval,
                                l.fence,
                                l.overage
                            ),
                            Entry::Queued(t) => format!(
                                "queued {} at {} {} {:?} {:?}",
                                t.user,
                                t.position,
                                t.expires_at,
                                t.idle_timeout,
                                t.heartbeat_interval
                            ),
                        })
                        .map_err(Clone::clone)
                };
                same!(step, entry(&a), entry(&b));
                match (a, b) {
                    (Ok(Entry::Admitted(a)), Ok(Entry::Admitted(b))) => tabs.push(Tab {
                        embedded: a.token,
                        redis: b.token,
                    }),
                    (Ok(Entry::Queued(a)), Ok(Entry::Queued(b))) => places.push(Place {
                        embedded: a.token,
                        redis: b.token,
                    }),
                    _ => {}
                }
            }
            Op::TicketHeartbeat(i) | Op::Claim(i) | Op::CancelTicket(i) if places.is_empty() => {
                let _ = i;
            }
            Op::TicketHeartbeat(i) => {
                let place = i.get(&places);
                same!(
                    step,
                    e.ticket_heartbeat(&place.embedded).await,
                    r.ticket_heartbeat(&place.redis).await
                );
            }
            Op::Claim(i) => {
                let place = i.get(&places);
                let a = e.claim(&place.embedded).await;
                let b = r.claim(&place.redis).await;
                same!(step, shown(&a), shown(&b));
                if let (Ok(a), Ok(b)) = (a, b) {
                    tabs.push(Tab {
                        embedded: a.token,
                        redis: b.token,
                    });
                }
            }
            Op::CancelTicket(i) => {
                let place = i.get(&places);
                same!(
                    step,
                    e.cancel_ticket(&place.embedded).await,
                    r.cancel_ticket(&place.redis).await
                );
            }
            Op::Login(u) => {
                let client = Some("tab");
                let a = e.login(&tenant, &user(u), client).await;
                let b = r.login(&tenant, &user(u), client).await;
                same!(step, shown(&a), shown(&b));
                if let (Ok(a), Ok(b)) = (a, b) {
                    tabs.push(Tab {
                        embedded: a.token,
                        redis: b.token,
                    });
                }
            }
            Op::Heartbeat(i) | Op::Release(i) | Op::Logout(i) | Op::Revoke(i)
                if tabs.is_empty() =>
            {
                let _ = i;
            }
            Op::Heartbeat(i) => {
                let tab = i.get(&tabs);
                same!(
                    step,
                    e.heartbeat(&tab.embedded).await,
                    r.heartbeat(&tab.redis).await
                );
            }
            Op::Release(i) => {
                let tab = i.get(&tabs);
                same!(
                    step,
                    e.release(&tab.embedded).await,
                    r.release(&tab.redis).await
                );
            }
            Op::Logout(i) => {
                let tab = i.get(&tabs);
                same!(
                    step,
                    e.logout(&tab.embedded).await,
                    r.logout(&tab.redis).await
                );
            }
            Op::Revoke(i) => {
                let tab = i.get(&tabs);
                same!(
                    step,
                    e.revoke(&tenant, tab.embedded.id()).await,
                    r.revoke(&tenant, tab.redis.id()).await
                );
            }
            Op::LogoutUser(u) => {
                same!(
                    step,
                    e.logout_user(&tenant, &user(u)).await,
                    r.logout_user(&tenant, &user(u)).await
                );
            }
            Op::PutUser(u) => {
                same!(
                    step,
                    e.put_user(&tenant, &user(u)).await,
                    r.put_user(&tenant, &user(u)).await
                );
            }
            Op::PutUserInGroups(u, mask) => {
                let groups: Vec<usher::GroupId> = (0..licences::GROUPS.len())
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| usher::GroupId::parse(licences::GROUPS[bit]).unwrap())
                    .collect();
                same!(
                    step,
                    e.put_user_in_groups(&tenant, &user(u), &groups).await,
                    r.put_user_in_groups(&tenant, &user(u), &groups).await
                );
            }
            Op::RemoveUser(u) => {
                same!(
                    step,
                    e.remove_user(&tenant, &user(u)).await,
                    r.remove_user(&tenant, &user(u)).await
                );
            }
            Op::SetLicence(licence) => {
                same!(
                    step,
                    e.put_tenant(&tenant, licence.clone()).await,
                    r.put_tenant(&tenant, licence).await
                );
            }
            Op::ReportRecords(count) => {
                same!(
                    step,
                    e.report_records(&tenant, count).await,
                    r.report_records(&tenant, count).await
                );
            }
            Op::Advance(by) => pair.clock.advance(by),
            Op::ExpireDue => {
                e.expire_due().await.unwrap();
                r.expire_due().await.unwrap();
            }
        }
        same!(step, e.tenant(&tenant).await, r.tenant(&tenant).await);
        same!(step, e.users(&tenant).await, r.users(&tenant).await);
        same!(step, e.records(&tenant).await, r.records(&tenant).await);
        let sessions = (
            normalised(e.sessions(&tenant).await.unwrap(), &tabs, |t| &t.embedded),
            normalised(r.sessions(&tenant).await.unwrap(), &tabs, |t| &t.redis),
        );
        same!(step, sessions.0, sessions.1);
        let waitlists = (
            line(e.waitlist(&tenant).await.unwrap(), &places, |p| &p.embedded),
            line(r.waitlist(&tenant).await.unwrap(), &places, |p| &p.redis),
        );
        same!(step, waitlists.0, waitlists.1);
    }
    same!(
        "delete",
        e.delete_tenant(&tenant).await,
        r.delete_tenant(&tenant).await
    );
    for tab in &tabs {
        same!(
            "after the delete",
            e.heartbeat(&tab.embedded).await,
            r.heartbeat(&tab.redis).await
        );
    }
    for place in &places {
        same!(
            "after the delete",
            e.ticket_heartbeat(&place.embedded).await,
            r.ticket_heartbeat(&place.redis).await
        );
    }
    Ok(())
}

#[test]
fn both_backends_answer_every_sequence_alike() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::starting_at(usher::Timestamp::from_millis(1_768_435_200_000));
    let pair = runtime.block_on(async {
        Pair {
            embedded: Engine::with_clock(
                EngineConfig::default(),
                std::sync::Arc::new(clock.clone()),
            ),
            redis: Engine::with_redis(EngineConfig::default(), support::config(&clock))
                .await
                .unwrap(),
            clock: clock.clone(),
        }
    });
    let cases = std::env::var("USHER_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(0);
    // A quarter of the cases start on a licence with group rules and half on one that
    // queues, so that they meet often.
    let strategy = (
        prop_oneof![
            1 => licence_with_policies(),
            1 => grouped_licence(),
            2 => queueing_licence()
        ],
        proptest::collection::vec(op(), 1..40),
    );
    let result = runner.run(&strategy, |(start, ops)| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(check(&pair, case, start, ops))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
