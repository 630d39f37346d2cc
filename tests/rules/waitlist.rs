//! The waitlist of SPEC §10 (`on_limit = "queue"`): one test per rule, through the
//! public engine on a manual clock.

use std::time::Duration;

use usher::pool::TicketStatus;
use usher::{
    EndReason, Engine, Entry, Error, EventKind, Licence, ManualClock, OnLimit, SeatPer,
    SessionToken, TenantId, Ticket,
};

use super::*;

const MINUTE: Duration = Duration::from_secs(60);

/// A concurrent licence of `seats` that queues, with a one-minute claim window and a
/// ten-minute idle timeout.
fn queueing(seats: u32) -> Licence {
    Licence::concurrent(seats)
        .on_limit(OnLimit::Queue)
        .queue_claim(MINUTE)
}

/// A login that must be put in line.
async fn queued(engine: &Engine, t: &TenantId, name: &str) -> Ticket {
    match engine.enter(t, &user(name), Some("tab")).await {
        Ok(Entry::Queued(ticket)) => ticket,
        Ok(Entry::Admitted(_)) => panic!("{name} should be queued, was admitted"),
        Err(e) => panic!("{name} should be queued: {e:?}"),
    }
}

/// A login that must be admitted at once, though it may queue.
async fn entered(engine: &Engine, t: &TenantId, name: &str) -> SessionToken {
    match engine.enter(t, &user(name), Some("tab")).await {
        Ok(Entry::Admitted(login)) => login.token,
        Ok(Entry::Queued(ticket)) => panic!(
            "{name} should be admitted, was queued at {}",
            ticket.position
        ),
        Err(e) => panic!("{name} should be admitted: {e:?}"),
    }
}

async fn status(engine: &Engine, ticket: &Ticket) -> Result<TicketStatus, Error> {
    engine.ticket_heartbeat(&ticket.token).await
}

async fn position(engine: &Engine, ticket: &Ticket) -> u32 {
    status(engine, ticket).await.unwrap().position
}

fn ticket_ended(reason: EndReason) -> Error {
    Error::TicketEnded { reason }
}

/// A tenant of `seats` queueing seats, every one held (by `seat0`, `seat1`, …).
async fn full(seats: u32) -> (Engine, ManualClock, TenantId, Vec<SessionToken>) {
    let (engine, clock, t) = start_tenant(queueing(seats)).await;
    let mut held = Vec::new();
    for i in 0..seats {
        held.push(entered(&engine, &t, &format!("seat{i}")).await);
    }
    (engine, clock, t, held)
}

#[tokio::test]
async fn logins_at_the_limit_wait_in_line_in_arrival_order() {
    let (engine, _clock, t, _held) = full(2).await;
    let mut watch = Watch::start(&engine).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    let cat = queued(&engine, &t, "cat").await;
    assert_eq!((ann.position, bob.position, cat.position), (1, 2, 3));
    assert_eq!(ann.idle_timeout, Duration::from_secs(600));
    assert_eq!(
        (position(&engine, &bob).await, position(&engine, &cat).await),
        (2, 3)
    );
    // A queued login is neither admitted nor refused.
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(
        (
            view.seats_in_use,
            view.sessions,
            view.queued,
            view.held_for_queue
        ),
        (2, 2, 3, 0)
    );
    assert_eq!(view.users, 5, "a user in line has an account");
    let line = engine.waitlist(&t).await.unwrap();
    let listed: Vec<(u32, &str)> = line.iter().map(|e| (e.position, e.user.as_str())).collect();
    assert_eq!(listed, [(1, "ann"), (2, "bob"), (3, "cat")]);
    assert_eq!(line[0].ticket, ann.token.id());
    assert_eq!(line[0].client.as_deref(), Some("tab"));
    let kinds = watch.kinds(&engine, &t).await;
    assert_eq!(
        kinds,
        [("ann", &ann, 1), ("bob", &bob, 2), ("cat", &cat, 3)].map(|(name, ticket, position)| {
            EventKind::Queued {
                user: user(name),
                ticket: ticket.token.id(),
                position,
            }
        })
    );
}

#[tokio::test]
async fn a_freed_seat_is_held_for_the_head_of_the_line_and_nobody_else_takes_it() {
    let (engine, clock, t, held) = full(2).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    clock.advance(Duration::from_secs(5));
    let mut watch = Watch::start(&engine).await;
    engine.release(&held[0]).await.unwrap();

    let now = clock_now(&clock);
    let head = status(&engine, &ann).await.unwrap();
    assert_eq!((head.position, head.claim_by), (0, Some(now + MINUTE)));
    assert_eq!(position(&engine, &bob).await, 1);
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(
        (view.seats_in_use, view.held_for_queue, view.queued),
        (1, 1, 2)
    );
    // Nobody outside the line takes the held seat: a newcomer joins the line behind
    // bob, and a plain login is refused.
    let dan = queued(&engine, &t, "dan").await;
    assert_eq!(dan.position, 2);
    assert_eq!(
        refusal(&engine, &t, "eve").await.code(),
        "licence_limit_reached"
    );
    let kinds = watch.kinds(&engine, &t).await;
    assert!(kinds.contains(&EventKind::TicketReady {
        user: user("ann"),
        ticket: ann.token.id(),
        claim_by: now + MINUTE,
    }));
}

#[tokio::test]
async fn a_ready_ticket_is_claimed_into_a_session_and_one_not_ready_is_told_its_place() {
    let (engine, clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    assert_eq!(
        engine.claim(&ann.token).await.unwrap_err(),
        Error::NotReady { position: 1 }
    );
    assert_eq!(
        engine.claim(&bob.token).await.unwrap_err(),
        Error::NotReady { position: 2 }
    );
    clock.advance(Duration::from_secs(30));
    engine.release(&held[0]).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let mut watch = Watch::start(&engine).await;

    let login = engine.claim(&ann.token).await.unwrap();
    assert_eq!(login.user, user("ann"));
    assert_ne!(login.token, ann.token, "a session has a token of its own");
    assert!(is_live(&engine, &t, &login.token).await);
    beat(&engine, &login.token).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (1, 1));
    // The ticket is spent: it answers why, and a second claim admits nobody.
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Claimed)
    );
    assert_eq!(
        engine.claim(&ann.token).await.unwrap_err(),
        ticket_ended(EndReason::Claimed)
    );
    assert_eq!(position(&engine, &bob).await, 1);
    let kinds = watch.kinds(&engine, &t).await;
    assert_eq!(
        kinds[0],
        EventKind::TicketEnded {
            user: user("ann"),
            ticket: ann.token.id(),
            reason: EndReason::Claimed,
            waited_ms: 40_000,
        }
    );
    assert!(
        matches!(&kinds[1], EventKind::Admitted { user: u, session, .. }
        if *u == user("ann") && *session == login.token.id())
    );
}

#[tokio::test]
async fn a_missed_claim_ends_the_ticket_and_passes_the_seat_to_the_next() {
    let (engine, clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    engine.release(&held[0]).await.unwrap();
    // Heartbeats do not stretch the claim window.
    clock.advance(Duration::from_secs(30));
    assert_eq!(position(&engine, &ann).await, 0);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        position(&engine, &ann).await,
        0,
        "held until the window ends"
    );
    clock.advance(millis(1));
    engine.expire_due().await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::ClaimMissed)
    );
    assert_eq!(
        engine.claim(&ann.token).await.unwrap_err(),
        ticket_ended(EndReason::ClaimMissed)
    );
    let next = status(&engine, &bob).await.unwrap();
    assert_eq!(next.position, 0);
    assert_eq!(next.claim_by, Some(clock_now(&clock) + MINUTE));
    engine.claim(&bob.token).await.unwrap();
    assert_eq!(engine.tenant(&t).await.unwrap().queued, 0);
}

#[tokio::test]
async fn a_ticket_left_without_heartbeats_expires_like_a_session() {
    let (engine, clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    for _ in 0..2 {
        clock.advance(Duration::from_secs(300));
        beat(&engine, &held[0]).await.unwrap();
        assert_eq!(position(&engine, &bob).await, 2);
    }
    // ann never beat: gone once the idle timeout has passed; bob moves up.
    clock.advance(millis(1));
    engine.expire_due().await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Expired)
    );
    assert_eq!(position(&engine, &bob).await, 1);
    let line = engine.waitlist(&t).await.unwrap();
    assert_eq!(line.len(), 1);
    // Remembered for the retention, then unknown.
    clock.advance(HOUR - millis(1));
    engine.expire_due().await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Expired)
    );
    clock.advance(millis(1));
    engine.expire_due().await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        Error::TicketNotFound
    );
}

#[tokio::test]
async fn a_ticket_idle_past_its_deadline_gets_no_seat_freed_at_the_same_moment() {
    let (engine, clock, t) = start_tenant(queueing(1).idle_timeout(MINUTE)).await;
    let held = entered(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    clock.advance(Duration::from_secs(30));
    let cy = queued(&engine, &t, "cy").await;
    // ann and bob fall idle together; cy still beats.
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        position(&engine, &cy).await,
        0,
        "the seat goes to the live ticket"
    );
    assert_eq!(
        status(&engine, &bob).await.unwrap_err(),
        ticket_ended(EndReason::Expired)
    );
    assert_eq!(
        beat(&engine, &held).await.unwrap_err(),
        ended(EndReason::Expired)
    );
}

#[tokio::test]
async fn leaving_the_line_moves_everyone_behind_up() {
    let (engine, _clock, t, _held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    let cat = queued(&engine, &t, "cat").await;
    engine.cancel_ticket(&bob.token).await.unwrap();
    assert_eq!(
        status(&engine, &bob).await.unwrap_err(),
        ticket_ended(EndReason::Cancelled)
    );
    assert_eq!(
        engine.cancel_ticket(&bob.token).await.unwrap_err(),
        ticket_ended(EndReason::Cancelled)
    );
    assert_eq!(
        (position(&engine, &ann).await, position(&engine, &cat).await),
        (1, 2)
    );
    // A ready ticket that leaves passes its seat on.
    let (engine, _clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    engine.release(&held[0]).await.unwrap();
    engine.cancel_ticket(&ann.token).await.unwrap();
    assert_eq!(position(&engine, &bob).await, 0);
}

#[tokio::test]
async fn leaving_after_a_claim_whose_answer_was_lost_gives_its_seat_back() {
    // The tab went away while its claim was on its way: the claim took the seat, and
    // only its answer, which nobody reads, holds the session's token. The tab's leaving
    // (DELETE of the ticket) releases that session, and the seat serves the line.
    let (engine, clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    engine.release(&held[0]).await.unwrap();
    let lost = engine.claim(&ann.token).await.unwrap();
    clock.advance(Duration::from_secs(5));
    let mut watch = Watch::start(&engine).await;

    // Someone else's secret under the ticket's id releases nothing.
    let forged = match ann.token.route() {
        Some(tenant) => SessionToken::with_id(ann.token.id()).routed(tenant),
        None => SessionToken::with_id(ann.token.id()),
    };
    assert_eq!(
        engine.cancel_ticket(&forged).await.unwrap_err(),
        Error::TicketNotFound
    );
    assert!(is_live(&engine, &t, &lost.token).await);

    engine.cancel_ticket(&ann.token).await.unwrap();
    assert_eq!(
        beat(&engine, &lost.token).await.unwrap_err(),
        ended(EndReason::Released)
    );
    let now = clock_now(&clock);
    let kinds = watch.kinds(&engine, &t).await;
    assert_eq!(
        kinds,
        vec![
            EventKind::Ended {
                user: user("ann"),
                session: lost.token.id(),
                reason: EndReason::Released,
                seats_in_use: 0,
            },
            EventKind::TicketReady {
                user: user("bob"),
                ticket: bob.token.id(),
                claim_by: now + MINUTE,
            },
        ]
    );
    assert_eq!(position(&engine, &bob).await, 0);
    // The ticket still answers that it was claimed, and leaving again gives nothing
    // more back.
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Claimed)
    );
    assert_eq!(
        engine.cancel_ticket(&ann.token).await.unwrap_err(),
        ticket_ended(EndReason::Claimed)
    );

    // A claimed session that ended otherwise is not the ticket's to end twice.
    let kept = engine.claim(&bob.token).await.unwrap();
    engine.release(&kept.token).await.unwrap();
    assert_eq!(
        engine.cancel_ticket(&bob.token).await.unwrap_err(),
        ticket_ended(EndReason::Claimed)
    );
}

#[tokio::test]
async fn a_claim_that_sends_its_ticket_back_in_line_past_its_deadline_admits_nobody() {
    // Bob's second tab is ready to share his seat; the seat goes (held now for cara),
    // and the tab, not heartbeated, passes its idle deadline inside its longer claim
    // window. Its claim puts it back in line, where it ends `expired`: nobody is
    // admitted past the limit.
    let licence = Licence::concurrent(1)
        .on_limit(OnLimit::Queue)
        .queue_claim(2 * MINUTE)
        .idle_timeout(MINUTE);
    let (engine, clock, t) = start_tenant_with(no_sweeper(), licence).await;
    let held = entered(&engine, &t, "seat0").await;
    let first = queued(&engine, &t, "bob").await;
    let second = queued(&engine, &t, "bob").await;
    engine.release(&held).await.unwrap();
    let bob = engine.claim(&first.token).await.unwrap();
    let cara = queued(&engine, &t, "cara").await;
    clock.advance(Duration::from_secs(30));
    engine.ticket_heartbeat(&cara.token).await.unwrap();
    engine.release(&bob.token).await.unwrap();
    clock.advance(Duration::from_secs(31));

    assert_eq!(
        engine.claim(&second.token).await.unwrap_err(),
        ticket_ended(EndReason::Expired)
    );
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.seats_in_use, view.held_for_queue), (0, 1));
    assert_eq!(position(&engine, &cara).await, 0);
}

#[tokio::test]
async fn a_raised_licence_holds_a_seat_for_each_of_the_first_in_line() {
    let (engine, clock, t, _held) = full(2).await;
    let line: Vec<Ticket> = {
        let mut line = Vec::new();
        for name in ["ann", "bob", "cat", "dan"] {
            line.push(queued(&engine, &t, name).await);
        }
        line
    };
    let (view, _) = engine.put_tenant(&t, queueing(5)).await.unwrap();
    assert_eq!((view.held_for_queue, view.queued), (3, 4));
    let now = clock_now(&clock);
    for ticket in &line[..3] {
        assert_eq!(
            status(&engine, ticket).await.unwrap().claim_by,
            Some(now + MINUTE)
        );
    }
    assert_eq!(position(&engine, &line[3]).await, 1);
    for ticket in &line[..3] {
        engine.claim(&ticket.token).await.unwrap();
    }
    assert_eq!(usage_now(&engine, &t).await, (5, 5));
    assert_eq!(
        refusal(&engine, &t, "eve").await.code(),
        "licence_limit_reached"
    );
}

#[tokio::test]
async fn every_way_a_seat_frees_serves_the_line() {
    let (engine, clock, t, held) = full(5).await;
    let mut line = Vec::new();
    for i in 0..5 {
        line.push(queued(&engine, &t, &format!("q{i}")).await);
    }
    let ready = |n: usize| {
        let engine = engine.clone();
        let line = line.clone();
        async move {
            let mut count = 0;
            for ticket in &line {
                if engine
                    .ticket_heartbeat(&ticket.token)
                    .await
                    .unwrap()
                    .position
                    == 0
                {
                    count += 1;
                }
            }
            assert_eq!(count, n);
        }
    };
    engine.release(&held[0]).await.unwrap();
    ready(1).await;
    engine.logout(&held[1]).await.unwrap();
    ready(2).await;
    engine.revoke(&t, held[2].id()).await.unwrap();
    ready(3).await;
    engine.remove_user(&t, &user("seat3")).await.unwrap();
    ready(4).await;
    // The first four miss their claims: the seats pass on, to q4 first.
    clock.advance(Duration::from_secs(590));
    assert_eq!(position(&engine, &line[4]).await, 0);
    // seat4 stops beating and expires.
    clock.advance(Duration::from_secs(11));
    engine.expire_due().await.unwrap();
    assert_eq!(
        beat(&engine, &held[4]).await.unwrap_err(),
        ended(EndReason::Expired)
    );
    // Nobody else is in line: the seats stay free but for the one held for q4.
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(
        (view.seats_in_use, view.queued, view.held_for_queue),
        (0, 1, 1)
    );
    assert_eq!(position(&engine, &line[4]).await, 0);
    assert_eq!(
        status(&engine, &line[0]).await.unwrap_err(),
        ticket_ended(EndReason::ClaimMissed)
    );
}

#[tokio::test]
async fn while_anyone_waits_a_users_other_tab_still_shares_their_seat() {
    let (engine, _clock, t, _held) = full(2).await;
    let ann = queued(&engine, &t, "ann").await;
    // seat0 opens a second tab: under a seat per user it takes no seat.
    let tab = entered(&engine, &t, "seat0").await;
    assert!(is_live(&engine, &t, &tab).await);
    assert_eq!(usage_now(&engine, &t).await, (2, 3));
    assert_eq!(position(&engine, &ann).await, 1);
    // A user already in line who opens another tab waits behind the others.
    let again = queued(&engine, &t, "ann").await;
    assert_eq!(again.position, 2);
}

#[tokio::test]
async fn under_a_seat_per_tab_every_tab_waits_for_a_seat_of_its_own() {
    let licence = queueing(2).seat_per(SeatPer::Session);
    let (engine, _clock, t) = start_tenant(licence).await;
    let first = entered(&engine, &t, "ann").await;
    entered(&engine, &t, "ann").await;
    let third = queued(&engine, &t, "ann").await;
    assert_eq!(third.position, 1);
    engine.release(&first).await.unwrap();
    assert_eq!(position(&engine, &third).await, 0);
    engine.claim(&third.token).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (2, 2));
}

#[tokio::test]
async fn a_ready_ticket_whose_user_already_holds_a_seat_shares_it() {
    let (engine, _clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    engine.release(&held[0]).await.unwrap();
    let ann_again = queued(&engine, &t, "ann").await;
    assert_eq!(ann_again.position, 2);
    let session = engine.claim(&ann.token).await.unwrap();
    assert!(is_live(&engine, &t, &session.token).await);
    // bob waits for a seat; ann's second ticket comes up behind him.
    assert_eq!(position(&engine, &bob).await, 1);
    assert_eq!(position(&engine, &ann_again).await, 2);
}

#[tokio::test]
async fn a_plain_login_never_queues_and_never_barges() {
    let (engine, _clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    assert_eq!(
        refusal(&engine, &t, "bob").await,
        limit_reached(1, 1, Some(Duration::from_secs(600) + millis(1)))
    );
    engine.release(&held[0]).await.unwrap();
    // The freed seat is ann's: a plain login is refused, counting it as taken.
    assert_eq!(
        refusal(&engine, &t, "bob").await.code(),
        "licence_limit_reached"
    );
    engine.claim(&ann.token).await.unwrap();
}

#[tokio::test]
async fn a_user_removed_leaves_the_line() {
    let (engine, _clock, t, _held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    engine.remove_user(&t, &user("ann")).await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Evicted)
    );
    assert_eq!(position(&engine, &bob).await, 1);
}

#[tokio::test]
async fn a_licence_that_stops_queueing_serves_the_line_it_has_and_grows_no_longer() {
    let (engine, _clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    engine.put_tenant(&t, Licence::concurrent(1)).await.unwrap();
    assert_eq!(position(&engine, &ann).await, 1);
    // At the limit a login is refused now, not queued.
    let refused = engine.enter(&t, &user("bob"), None).await.unwrap_err();
    assert_eq!(refused.code(), "licence_limit_reached");
    engine.release(&held[0]).await.unwrap();
    engine.claim(&ann.token).await.unwrap();
    // Another model has no line at all.
    let (engine, _clock, t, _held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    engine.put_tenant(&t, Licence::named(3)).await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Evicted)
    );
}

#[tokio::test]
async fn ended_tickets_are_forgotten_after_the_retention_though_the_licence_no_longer_queues() {
    let (engine, clock, t, _held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    engine.cancel_ticket(&ann.token).await.unwrap();
    engine.put_tenant(&t, Licence::concurrent(1)).await.unwrap();
    clock.advance(HOUR - millis(1));
    engine.expire_due().await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Cancelled)
    );
    clock.advance(millis(1));
    engine.expire_due().await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        Error::TicketNotFound
    );
}

#[tokio::test]
async fn a_deleted_tenants_tickets_answer_why() {
    let (engine, _clock, t, _held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    engine.delete_tenant(&t).await.unwrap();
    assert_eq!(
        status(&engine, &ann).await.unwrap_err(),
        ticket_ended(EndReason::Evicted)
    );
}

#[tokio::test]
async fn a_ticket_is_a_credential() {
    let (engine, _clock, t, held) = full(1).await;
    let ann = queued(&engine, &t, "ann").await;
    // A forged secret under ann's id (routed as hers is), and a session token, are no
    // tickets.
    let forged = match ann.token.route() {
        Some(tenant) => SessionToken::with_id(ann.token.id()).routed(tenant),
        None => SessionToken::with_id(ann.token.id()),
    };
    assert_eq!(
        engine.ticket_heartbeat(&forged).await.unwrap_err(),
        Error::TicketNotFound
    );
    assert_eq!(
        engine.claim(&forged).await.unwrap_err(),
        Error::TicketNotFound
    );
    assert_eq!(
        engine.cancel_ticket(&forged).await.unwrap_err(),
        Error::TicketNotFound
    );
    assert_eq!(
        engine.ticket_heartbeat(&held[0]).await.unwrap_err(),
        Error::TicketNotFound
    );
    // And a ticket is no session.
    assert_eq!(
        engine.heartbeat(&ann.token).await.unwrap_err(),
        Error::SessionNotFound
    );
    assert_eq!(
        engine.release(&ann.token).await.unwrap_err(),
        Error::SessionNotFound
    );
    assert_eq!(position(&engine, &ann).await, 1);
}

#[tokio::test]
async fn the_claim_respects_the_cap_on_a_users_sessions() {
    let licence = queueing(1).max_sessions_per_user(1);
    let (engine, _clock, t) = start_tenant(licence).await;
    let held = entered(&engine, &t, "bob").await;
    let ann = queued(&engine, &t, "ann").await;
    engine.release(&held).await.unwrap();
    engine.claim(&ann.token).await.unwrap();
    // A second tab of ann's is refused before it reaches the line.
    let refused = engine.enter(&t, &user("ann"), None).await.unwrap_err();
    assert_eq!(refused.code(), "session_limit_reached");
}

#[tokio::test]
async fn the_usage_report_counts_the_line() {
    let (engine, clock, t, held) = full(2).await;
    let ann = queued(&engine, &t, "ann").await;
    let bob = queued(&engine, &t, "bob").await;
    let cat = queued(&engine, &t, "cat").await;
    let dan = queued(&engine, &t, "dan").await;
    clock.advance(Duration::from_secs(10));
    engine.release(&held[0]).await.unwrap();
    engine.claim(&ann.token).await.unwrap(); // waited 10 s
    clock.advance(Duration::from_secs(20));
    engine.release(&held[1]).await.unwrap();
    engine.claim(&bob.token).await.unwrap(); // waited 30 s
    engine.cancel_ticket(&cat.token).await.unwrap();
    let _ = dan;
    let today = &engine.usage(&t, 1).await.unwrap()[0];
    assert_eq!(
        (
            today.queued,
            today.served_from_queue,
            today.gave_up_in_queue
        ),
        (4, 2, 1)
    );
    assert_eq!(
        (today.queue_wait_p50_secs, today.queue_wait_p90_secs),
        (Some(10), Some(30))
    );
    assert_eq!(today.logins, 4, "claims are logins too");
}

#[tokio::test]
async fn thousands_at_once_onto_a_full_tenant_wait_in_one_line_served_in_order() {
    let (engine, _clock, t) = start_tenant(queueing(100).max_users(2000)).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2000));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2000 {
        let (engine, t, barrier) = (engine.clone(), t.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            engine
                .enter(&t, &user(&format!("u{i}")), None)
                .await
                .unwrap()
        });
    }
    let mut admitted = Vec::new();
    let mut line = Vec::new();
    while let Some(entry) = tasks.join_next().await {
        match entry.unwrap() {
            Entry::Admitted(login) => admitted.push(login),
            Entry::Queued(ticket) => line.push(ticket),
        }
    }
    assert_eq!(admitted.len(), 100);
    assert_eq!(line.len(), 1900);
    line.sort_by_key(|t| t.position);
    let positions: Vec<u32> = line.iter().map(|t| t.position).collect();
    assert_eq!(positions, (1..=1900).collect::<Vec<u32>>());
    // Seats freed one by one go to the line strictly in order.
    for (n, login) in admitted.iter().take(20).enumerate() {
        engine.release(&login.token).await.unwrap();
        assert_eq!(
            engine.claim(&line[n].token).await.unwrap().user,
            line[n].user
        );
        if let Some(next) = line.get(n + 1) {
            assert_eq!(
                engine.claim(&next.token).await.unwrap_err(),
                Error::NotReady { position: 1 }
            );
        }
    }
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(
        (view.seats_in_use, view.queued, view.held_for_queue),
        (100, 1880, 0)
    );
}
