//! Random sequences of logins, releases, ticket operations, licence changes, restarts
//! and clock advances on a pool that queues (SPEC §10), checked after every step: an
//! admission that takes a seat never passes the limit with seats taken and held; the line is served
//! strictly in order; no seat stays held for a ticket past its claim window; every
//! position answered is the ticket's place among those still waiting; and the pool's
//! own indexes agree (`check_invariants`).

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use usher::pool::{Entry, PoolState, Retention};
use usher::{
    Error, EventKind, Licence, OnLimit, SeatPer, SessionId, SessionToken, TenantId, Timestamp,
    UserId,
};

const USERS: [&str; 6] = ["ann", "bob", "carol", "dave", "erin", "fred"];
const T0: Timestamp = Timestamp::from_millis(1_768_435_200_000);
const CLAIM: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
enum Op {
    Enter(usize),
    Release(Index),
    Beat(Index),
    TicketBeat(Index),
    Claim(Index),
    Cancel(Index),
    Seats(u32),
    Advance(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..USERS.len()).prop_map(Op::Enter),
        3 => any::<Index>().prop_map(Op::Release),
        2 => any::<Index>().prop_map(Op::Beat),
        3 => any::<Index>().prop_map(Op::TicketBeat),
        4 => any::<Index>().prop_map(Op::Claim),
        1 => any::<Index>().prop_map(Op::Cancel),
        1 => (0u32..5).prop_map(Op::Seats),
        3 => prop_oneof![0u64..5_000, 20_000u64..40_000, 100_000u64..200_000].prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

fn licence(seats: u32, per: SeatPer) -> Licence {
    Licence::concurrent(seats)
        .seat_per(per)
        .on_limit(OnLimit::Queue)
        .queue_claim(CLAIM)
        .idle_timeout(IDLE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Waiting,
    Ready(Timestamp),
    Ended,
}

/// What the events and answers have told of the line.
#[derive(Default)]
struct Line {
    /// Tickets in the order they joined.
    order: Vec<SessionId>,
    place: HashMap<SessionId, Place>,
}

impl Line {
    fn follow(&mut self, pool: &mut PoolState) -> Result<(), TestCaseError> {
        for event in pool.take_events().collect::<Vec<_>>() {
            match event.kind {
                EventKind::Queued { ticket, .. } => {
                    self.order.push(ticket);
                    self.place.insert(ticket, Place::Waiting);
                }
                EventKind::TicketReady {
                    ticket, claim_by, ..
                } => {
                    // Strictly in order: nobody who joined earlier still waits.
                    let at = self.order.iter().position(|t| *t == ticket).unwrap();
                    for earlier in &self.order[..at] {
                        prop_assert_ne!(
                            self.place[earlier],
                            Place::Waiting,
                            "a ticket was served before one ahead of it"
                        );
                    }
                    self.place.insert(ticket, Place::Ready(claim_by));
                }
                EventKind::TicketEnded { ticket, .. } => {
                    self.place.insert(ticket, Place::Ended);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn position(&self, ticket: SessionId) -> u32 {
        let at = self.order.iter().position(|t| *t == ticket).unwrap();
        1 + self.order[..at]
            .iter()
            .filter(|t| self.place[*t] == Place::Waiting)
            .count() as u32
    }
}

fn run(ops: Vec<Op>, per: SeatPer) -> Result<(), TestCaseError> {
    let tenant = TenantId::parse("acme").unwrap();
    let mut now = T0;
    let mut seats = 2;
    let mut pool = PoolState::new(tenant, licence(seats, per), Retention::default(), now);
    let mut line = Line::default();
    let mut tickets: Vec<SessionToken> = Vec::new();
    let mut sessions: Vec<SessionToken> = Vec::new();
    for op in ops {
        let taken_before = pool.seats_in_use() + pool.held_for_queue();
        let mut admitted = false;
        let mut expired = true;
        match op {
            Op::Enter(u) => {
                let token = SessionToken::generate();
                let user = UserId::parse(USERS[u]).unwrap();
                match pool.enter(&user, None, token.id(), token.secret_hash(), now) {
                    Ok(Entry::Admitted(_)) => {
                        admitted = true;
                        sessions.push(token);
                    }
                    Ok(Entry::Queued(queued)) => {
                        line.follow(&mut pool)?;
                        prop_assert_eq!(queued.position, line.position(token.id()));
                        tickets.push(token);
                    }
                    Err(e) => prop_assert!(false, "a queueing login was refused: {e:?}"),
                }
            }
            Op::Release(i) if !sessions.is_empty() => {
                let token = &sessions[i.index(sessions.len())];
                let _ = pool.release(token.id(), &token.secret_hash(), now);
            }
            Op::Beat(i) if !sessions.is_empty() => {
                let token = &sessions[i.index(sessions.len())];
                let _ = pool.heartbeat(token.id(), &token.secret_hash(), now);
            }
            Op::TicketBeat(i) if !tickets.is_empty() => {
                let token = tickets[i.index(tickets.len())].clone();
                let answer = pool.ticket_heartbeat(token.id(), &token.secret_hash(), now);
                line.follow(&mut pool)?;
                match answer {
                    Ok(status) => match line.place[&token.id()] {
                        Place::Waiting => {
                            prop_assert_eq!(status.position, line.position(token.id()))
                        }
                        Place::Ready(claim_by) => {
                            prop_assert_eq!((status.position, status.claim_by), (0, Some(claim_by)))
                        }
                        Place::Ended => prop_assert!(false, "an ended ticket answered"),
                    },
                    Err(Error::TicketEnded { .. }) => {
                        prop_assert_eq!(line.place[&token.id()], Place::Ended)
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Claim(i) if !tickets.is_empty() => {
                let ticket = tickets[i.index(tickets.len())].clone();
                let token = SessionToken::generate();
                let answer = pool.claim(
                    ticket.id(),
                    &ticket.secret_hash(),
                    token.id(),
                    token.secret_hash(),
                    now,
                );
                line.follow(&mut pool)?;
                match answer {
                    Ok(_) => {
                        admitted = true;
                        sessions.push(token);
                    }
                    Err(Error::NotReady { position }) => {
                        // A ticket ready to share its user's seat goes back to its
                        // place when that seat has gone meanwhile.
                        prop_assert_ne!(line.place[&ticket.id()], Place::Ended);
                        line.place.insert(ticket.id(), Place::Waiting);
                        prop_assert_eq!(position, line.position(ticket.id()));
                    }
                    Err(Error::TicketEnded { .. }) => {
                        prop_assert_eq!(line.place[&ticket.id()], Place::Ended)
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
            Op::Cancel(i) if !tickets.is_empty() => {
                let ticket = &tickets[i.index(tickets.len())];
                let _ = pool.cancel_ticket(ticket.id(), &ticket.secret_hash(), now);
            }
            Op::Seats(n) => {
                seats = n;
                pool.set_licence(licence(seats, per), now);
            }
            Op::Advance(ms) => {
                now = now + Duration::from_millis(ms);
                expired = false;
            }
            Op::Restart => {
                line.follow(&mut pool)?;
                let snapshot = pool.snapshot();
                pool = PoolState::restore(snapshot, Retention::default(), now);
                // A restored line waits again, in its order, and is served afresh.
                for place in line.place.values_mut() {
                    if let Place::Ready(_) = place {
                        *place = Place::Waiting;
                    }
                }
            }
            _ => expired = false,
        }
        line.follow(&mut pool)?;
        pool.check_invariants().map_err(TestCaseError::fail)?;
        let taken = pool.seats_in_use() + pool.held_for_queue();
        // An admission that took a seat (rather than sharing its user's, or taking
        // the one held for its ticket) stays within the seats.
        if admitted && taken > taken_before {
            prop_assert!(taken <= seats, "{taken} seats taken or held of {seats}");
        }
        if expired {
            for place in line.place.values() {
                if let Place::Ready(claim_by) = place {
                    prop_assert!(*claim_by >= now, "a seat held past its claim window");
                }
            }
        }
        prop_assert_eq!(
            pool.queued() as usize,
            line.place.values().filter(|p| **p != Place::Ended).count()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_line_is_served_in_order_and_never_over_admits_with_a_seat_per_tab(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        run(ops, SeatPer::Session)?;
    }

    #[test]
    fn the_line_is_served_in_order_and_never_over_admits_with_a_seat_per_user(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        run(ops, SeatPer::User)?;
    }
}
