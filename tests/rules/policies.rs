//! The seat policies of SPEC §9: overage, displacement with its minimum hold, and the
//! cap on one user's sessions.

use std::time::Duration;

use usher::{EndReason, Error, EventKind, Licence, OnLimit, SeatPer};

use super::*;

const MINUTE: Duration = Duration::from_secs(60);

fn displacing(seats: u32, min_hold: Duration) -> Licence {
    Licence::concurrent(seats)
        .on_limit(OnLimit::DisplaceIdlest)
        .min_hold(min_hold)
}

#[tokio::test]
async fn overage_admits_past_the_seats_up_to_its_floor_and_flags_each_such_login() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    // 10 seats and a quarter more: floor(12.5) = 12.
    let licence = Licence::concurrent(10).overage(0.25);
    assert_eq!(licence.limit(), Some(12));
    engine.put_tenant(&acme, licence).await.unwrap();
    let mut watch = Watch::start(&engine).await;

    let mut flags = Vec::new();
    for i in 0..12 {
        let login = engine
            .login(&acme, &user(&format!("u{i}")), None)
            .await
            .unwrap();
        flags.push(login.overage);
    }
    assert_eq!(flags, [vec![false; 10], vec![true; 2]].concat());
    // A second tab shares its user's seat: no seat past the licence is taken.
    let tab = engine.login(&acme, &user("u11"), None).await.unwrap();
    assert!(!tab.overage);
    assert_eq!(
        refusal(&engine, &acme, "late").await,
        limit_reached(10, 12, Some(Duration::from_secs(600) + millis(1)))
    );

    let admitted: Vec<(u32, bool)> = watch
        .kinds(&engine, &acme)
        .await
        .into_iter()
        .filter_map(|kind| match kind {
            EventKind::Admitted {
                seats_in_use,
                overage,
                ..
            } => Some((seats_in_use, overage)),
            _ => None,
        })
        .collect();
    let mut expected: Vec<(u32, bool)> = (1..=12).map(|n| (n, n > 10)).collect();
    expected.push((12, false));
    assert_eq!(admitted, expected);
}

#[tokio::test]
async fn overage_counts_every_tab_under_a_seat_per_session() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    let licence = Licence::concurrent(3)
        .seat_per(SeatPer::Session)
        .overage(0.5);
    assert_eq!(licence.limit(), Some(4));
    engine.put_tenant(&acme, licence).await.unwrap();
    let mut flags = Vec::new();
    for _ in 0..4 {
        flags.push(
            engine
                .login(&acme, &user("ann"), None)
                .await
                .unwrap()
                .overage,
        );
    }
    assert_eq!(flags, [false, false, false, true]);
    assert_eq!(
        refusal(&engine, &acme, "ann").await,
        limit_reached(3, 4, Some(Duration::from_secs(600) + millis(1)))
    );
    // Without an allowance nothing is ever flagged, and the limit is the seats.
    let plain = tenant("plain");
    engine
        .put_tenant(&plain, Licence::concurrent(1).seat_per(SeatPer::Session))
        .await
        .unwrap();
    assert!(
        !engine
            .login(&plain, &user("ann"), None)
            .await
            .unwrap()
            .overage
    );
    assert_eq!(
        refusal(&engine, &plain, "ann").await.code(),
        "licence_limit_reached"
    );
}

#[tokio::test]
async fn displacement_takes_over_the_seat_closest_to_expiring() {
    let (engine, clock) = start().await;
    for per in [SeatPer::User, SeatPer::Session] {
        let acme = tenant(&format!("acme-{per:?}").to_lowercase());
        engine
            .put_tenant(&acme, displacing(2, MINUTE).seat_per(per))
            .await
            .unwrap();
        let ann = admit(&engine, &acme, "ann").await;
        clock.advance(Duration::from_secs(1));
        let bob = admit(&engine, &acme, "bob").await;
        clock.advance(Duration::from_secs(120));
        // Ann's heartbeat leaves bob's seat the idlest, though ann logged in first.
        engine.heartbeat(&ann).await.unwrap();
        let mut watch = Watch::start(&engine).await;

        let carol = engine.login(&acme, &user("carol"), None).await.unwrap();
        assert!(!carol.overage);
        assert_eq!(
            engine.heartbeat(&bob).await.unwrap_err(),
            ended(EndReason::Displaced)
        );
        engine.heartbeat(&ann).await.unwrap();
        assert_eq!(engine.tenant(&acme).await.unwrap().seats_in_use, 2);

        let kinds = watch.kinds(&engine, &acme).await;
        assert!(
            matches!(
                &kinds[..],
                [
                    EventKind::Ended { user: who, session, reason: EndReason::Displaced, seats_in_use: 1 },
                    EventKind::Admitted { user: new, seats_in_use: 2, .. },
                ] if *who == user("bob") && *session == bob.id() && *new == user("carol")
            ),
            "{per:?}: {kinds:?}"
        );
    }
}

#[tokio::test]
async fn a_seat_held_less_than_the_minimum_hold_is_never_displaced_and_the_refusal_says_when_one_will_be(
) {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    let hold = Duration::from_secs(300);
    engine.put_tenant(&acme, displacing(1, hold)).await.unwrap();
    let ann = admit(&engine, &acme, "ann").await;

    clock.advance(Duration::from_secs(100));
    engine.heartbeat(&ann).await.unwrap();
    // Ann's seat may be taken in 200 s; it would expire in 600 s.
    assert_eq!(
        refusal(&engine, &acme, "bob").await,
        limit_reached(1, 1, Some(Duration::from_secs(200)))
    );
    clock.advance(Duration::from_secs(200) - millis(1));
    assert_eq!(
        refusal(&engine, &acme, "bob").await,
        limit_reached(1, 1, Some(millis(1)))
    );
    clock.advance(millis(1));
    admit(&engine, &acme, "bob").await;
    assert_eq!(
        engine.heartbeat(&ann).await.unwrap_err(),
        ended(EndReason::Displaced)
    );
    // Bob's seat is new: the next login waits for bob's hold, or for his deadline if
    // that came sooner.
    assert_eq!(
        refusal(&engine, &acme, "carol").await,
        limit_reached(1, 1, Some(hold))
    );
}

#[tokio::test]
async fn displacement_passes_over_seats_not_yet_held_long_enough() {
    let (engine, clock) = start().await;
    for per in [SeatPer::User, SeatPer::Session] {
        let t = tenant(&format!("young-{per:?}").to_lowercase());
        engine
            .put_tenant(&t, displacing(2, Duration::from_secs(300)).seat_per(per))
            .await
            .unwrap();
        let ann = admit(&engine, &t, "ann").await;
        clock.advance(Duration::from_secs(400));
        let bob = admit(&engine, &t, "bob").await;
        clock.advance(Duration::from_secs(1));
        engine.heartbeat(&ann).await.unwrap();
        clock.advance(Duration::from_secs(1));

        // Bob's seat is the idlest, but held for 2 s: ann's is taken.
        admit(&engine, &t, "carol").await;
        assert_eq!(
            engine.heartbeat(&ann).await.unwrap_err(),
            ended(EndReason::Displaced),
            "{per:?}"
        );
        engine.heartbeat(&bob).await.unwrap();
    }
}

#[tokio::test]
async fn with_a_seat_per_user_the_user_whose_newest_heartbeat_is_oldest_is_displaced() {
    let (engine, clock, acme) = start_tenant(displacing(2, Duration::ZERO)).await;
    let ann_first = admit(&engine, &acme, "ann").await;
    clock.advance(Duration::from_secs(1));
    let bob_tabs = [
        admit(&engine, &acme, "bob").await,
        admit(&engine, &acme, "bob").await,
    ];
    clock.advance(Duration::from_secs(1));
    // Ann's first tab is the session closest to expiring, but her second is the
    // newest of all: bob's seat is the idlest.
    let ann_second = admit(&engine, &acme, "ann").await;
    clock.advance(Duration::from_secs(1));

    admit(&engine, &acme, "carol").await;
    for tab in &bob_tabs {
        assert_eq!(
            engine.heartbeat(tab).await.unwrap_err(),
            ended(EndReason::Displaced)
        );
    }
    engine.heartbeat(&ann_first).await.unwrap();
    engine.heartbeat(&ann_second).await.unwrap();
    let view = engine.tenant(&acme).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (2, 3));
}

#[tokio::test]
async fn displacement_under_a_seat_per_user_waits_for_the_users_oldest_tab_to_be_held_long_enough()
{
    let (engine, clock, acme) = start_tenant(displacing(1, Duration::from_secs(300))).await;
    let first = admit(&engine, &acme, "ann").await;
    clock.advance(Duration::from_secs(250));
    let second = admit(&engine, &acme, "ann").await;
    clock.advance(Duration::from_secs(50));
    // The seat has been ann's for 300 s, though her newest tab is 50 s old.
    admit(&engine, &acme, "bob").await;
    for tab in [&first, &second] {
        assert_eq!(
            engine.heartbeat(tab).await.unwrap_err(),
            ended(EndReason::Displaced)
        );
    }
}

#[tokio::test]
async fn displacement_makes_room_only_at_exactly_the_limit() {
    let (engine, _clock, acme) = start_tenant(Licence::concurrent(3)).await;
    for name in ["ann", "bob", "carol"] {
        admit(&engine, &acme, name).await;
    }
    // Lowered below what is held: taking one seat over would still leave too many.
    engine
        .put_tenant(&acme, displacing(2, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        refusal(&engine, &acme, "dave").await,
        limit_reached(2, 3, Some(Duration::from_secs(600) + millis(1)))
    );
    assert_eq!(engine.tenant(&acme).await.unwrap().sessions, 3);
}

#[tokio::test]
async fn displacement_never_applies_to_a_tab_sharing_its_users_seat_or_to_no_seats() {
    let (engine, _clock, acme) = start_tenant(displacing(1, Duration::ZERO)).await;
    let ann = admit(&engine, &acme, "ann").await;
    // Ann's second tab shares her seat: nothing is displaced.
    let again = admit(&engine, &acme, "ann").await;
    engine.heartbeat(&ann).await.unwrap();
    engine.heartbeat(&again).await.unwrap();
    // A licence of no seats has nothing to take over.
    let none = tenant("none");
    engine
        .put_tenant(&none, displacing(0, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        refusal(&engine, &none, "ann").await,
        limit_reached(0, 0, None)
    );
}

#[tokio::test]
async fn a_user_past_the_session_cap_is_refused_with_session_limit_reached() {
    let (engine, _clock, acme) =
        start_tenant(Licence::concurrent(10).max_sessions_per_user(2)).await;
    let mut watch = Watch::start(&engine).await;
    let first = admit(&engine, &acme, "ann").await;
    admit(&engine, &acme, "ann").await;
    let capped = refusal(&engine, &acme, "ann").await;
    assert_eq!(
        capped,
        Error::SessionLimitReached {
            max_sessions_per_user: 2
        }
    );
    assert_eq!(
        (capped.code(), capped.http_status()),
        ("session_limit_reached", 409)
    );
    // Others are not held back, and a closed tab makes room.
    admit(&engine, &acme, "bob").await;
    engine.release(&first).await.unwrap();
    admit(&engine, &acme, "ann").await;

    let refused: Vec<_> = watch
        .kinds(&engine, &acme)
        .await
        .into_iter()
        .filter_map(|kind| match kind {
            EventKind::Refused { user, reason } => Some((user, reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [(user("ann"), "session_limit_reached")]);
    let today = &engine.usage(&acme, 1).await.unwrap()[0];
    assert_eq!(today.refusals.session_limit_reached, 1);
}

#[tokio::test]
async fn the_session_cap_holds_under_every_model_and_comes_before_the_seat_limit() {
    let (engine, _clock, named) = start_tenant(Licence::named(2).max_sessions_per_user(1)).await;
    engine.put_user(&named, &user("ann")).await.unwrap();
    admit(&engine, &named, "ann").await;
    assert_eq!(
        refusal(&engine, &named, "ann").await.code(),
        "session_limit_reached"
    );
    // An unassigned user is told that first.
    assert_eq!(
        refusal(&engine, &named, "bob").await.code(),
        "user_not_licensed"
    );

    let records = tenant("records");
    engine
        .put_tenant(&records, Licence::records().max_sessions_per_user(1))
        .await
        .unwrap();
    admit(&engine, &records, "ann").await;
    assert_eq!(
        refusal(&engine, &records, "ann").await.code(),
        "session_limit_reached"
    );

    // At a full tenant, a capped user learns of the cap rather than the limit.
    let full = tenant("full");
    engine
        .put_tenant(
            &full,
            Licence::concurrent(1)
                .seat_per(SeatPer::Session)
                .max_sessions_per_user(1),
        )
        .await
        .unwrap();
    admit(&engine, &full, "ann").await;
    assert_eq!(
        refusal(&engine, &full, "ann").await.code(),
        "session_limit_reached"
    );
    assert_eq!(
        refusal(&engine, &full, "bob").await.code(),
        "licence_limit_reached"
    );
}

#[tokio::test]
async fn policies_are_kept_shown_and_carried_by_the_licence_events() {
    let (engine, _clock) = start().await;
    let acme = tenant("acme");
    let licence = displacing(4, Duration::from_secs(90))
        .overage(0.5)
        .max_sessions_per_user(3);
    let mut watch = Watch::start(&engine).await;
    let (view, _) = engine.put_tenant(&acme, licence.clone()).await.unwrap();
    assert_eq!(view.policies, licence.policies);
    assert_eq!(
        engine.tenant(&acme).await.unwrap().policies,
        licence.policies
    );
    // Back to the defaults.
    let (view, _) = engine
        .put_tenant(&acme, Licence::concurrent(4))
        .await
        .unwrap();
    assert!(view.policies.is_default());

    let licences: Vec<Licence> = watch
        .kinds(&engine, &acme)
        .await
        .into_iter()
        .filter_map(|kind| match kind {
            EventKind::TenantCreated { licence } | EventKind::LicenceChanged { licence, .. } => {
                Some(*licence)
            }
            _ => None,
        })
        .collect();
    assert_eq!(licences, [licence, Licence::concurrent(4)]);
}

#[tokio::test]
async fn of_seats_equally_idle_the_one_taken_first_is_displaced() {
    let (engine, _clock) = start().await;
    for per in [SeatPer::Session, SeatPer::User] {
        let t = tenant(&format!("tie-{per:?}").to_lowercase());
        engine
            .put_tenant(&t, displacing(3, Duration::ZERO).seat_per(per))
            .await
            .unwrap();
        // Three seats taken at one moment: one idle deadline for all.
        let tabs = [
            admit(&engine, &t, "ann").await,
            admit(&engine, &t, "bob").await,
            admit(&engine, &t, "carol").await,
        ];
        admit(&engine, &t, "dave").await;
        assert_eq!(
            engine.heartbeat(&tabs[0]).await.unwrap_err(),
            ended(EndReason::Displaced),
            "{per:?}"
        );
        engine.heartbeat(&tabs[1]).await.unwrap();
        engine.heartbeat(&tabs[2]).await.unwrap();
    }
}

#[tokio::test]
async fn the_idlest_seat_is_known_however_the_seats_came_to_be_held() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    let second = Duration::from_secs(1);
    engine
        .put_tenant(&acme, Licence::concurrent(2))
        .await
        .unwrap();
    let ann_first = admit(&engine, &acme, "ann").await;
    clock.advance(second);
    let bob = admit(&engine, &acme, "bob").await;
    clock.advance(second);
    let ann_second = admit(&engine, &acme, "ann").await;
    clock.advance(second);

    // Seats held before the licence displaced, then ann's newest tab released: her
    // seat is as idle as her first tab, idler than bob's.
    engine
        .put_tenant(&acme, displacing(2, Duration::ZERO))
        .await
        .unwrap();
    engine.release(&ann_second).await.unwrap();
    let dave = admit(&engine, &acme, "dave").await;
    let displaced = Err(ended(EndReason::Displaced));
    assert_eq!(engine.heartbeat(&ann_first).await.map(drop), displaced);
    clock.advance(second);

    // A seat per tab from now on: bob's tab is the idlest.
    engine
        .put_tenant(
            &acme,
            displacing(2, Duration::ZERO).seat_per(SeatPer::Session),
        )
        .await
        .unwrap();
    admit(&engine, &acme, "erin").await;
    assert_eq!(engine.heartbeat(&bob).await.map(drop), displaced);
    engine.heartbeat(&dave).await.unwrap();
}

#[tokio::test]
async fn the_usage_report_counts_seats_past_the_licence_and_the_seconds_they_were_held() {
    let (engine, clock) = start().await;
    let t = tenant("acme");
    // From 22:00 on the first day: 2 seats and half as many again, sessions that stay.
    clock.set(T0 + 22 * HOUR);
    let week = Duration::from_secs(7 * 24 * 3600);
    let licence = Licence::concurrent(2).overage(0.5).idle_timeout(week);
    engine.put_tenant(&t, licence).await.unwrap();
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "bob").await;
    let cara = admit(&engine, &t, "cara").await;
    // One seat past the licence for 30 minutes, then none for 30, then one again.
    clock.advance(30 * MINUTE);
    engine.release(&cara).await.unwrap();
    clock.advance(30 * MINUTE);
    admit(&engine, &t, "dan").await;
    // Past midnight, at 01:00, the licence falls to one seat: two seats are past it.
    clock.advance(2 * HOUR);
    engine
        .put_tenant(&t, Licence::concurrent(1).idle_timeout(week))
        .await
        .unwrap();
    clock.advance(30 * MINUTE);

    let overage = |days: Vec<usher::usage::DayUsage>| -> Vec<(u32, u64)> {
        days.iter()
            .map(|d| (d.peak_overage_seats, d.overage_seat_secs))
            .collect()
    };
    // Day one: 22:00–22:30 and 23:00–24:00 with one seat over. Day two so far: one
    // seat over until 01:00, then two for 30 minutes.
    assert_eq!(
        overage(engine.usage(&t, 2).await.unwrap()),
        [(1, 5_400), (2, 3_600 + 2 * 1_800)]
    );

    // Two days on, with nothing happening: day two goes on at two seats over, day
    // three is over all day long, and day four until now (01:30).
    clock.advance(2 * DAY);
    assert_eq!(
        overage(engine.usage(&t, 4).await.unwrap()),
        [
            (1, 5_400),
            (2, 3_600 + 2 * (23 * 3_600)),
            (2, 2 * 24 * 3_600),
            (2, 2 * 5_400)
        ]
    );
}

fn group(name: &str) -> usher::GroupId {
    usher::GroupId::parse(name).unwrap()
}

async fn in_groups(engine: &Engine, t: &TenantId, name: &str, groups: &[&str]) {
    let groups: Vec<usher::GroupId> = groups.iter().map(|g| group(g)).collect();
    let view = engine
        .put_user_in_groups(t, &user(name), &groups)
        .await
        .unwrap();
    let mut sorted = groups.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(view.groups, sorted);
}

fn group_limit(name: &str, max: u32) -> Error {
    Error::GroupLimitReached {
        group: name.into(),
        max,
    }
}

fn limit_with_reserved(seats: u32, seats_in_use: u32, reserved: u32) -> Error {
    Error::LicenceLimitReached {
        seats,
        seats_in_use,
        reserved,
        retry_after: Some(Duration::from_secs(600) + millis(1)),
    }
}

#[tokio::test]
async fn a_group_takes_no_more_seats_than_its_group_max() {
    for seat_per in [SeatPer::User, SeatPer::Session] {
        let licence = Licence::concurrent(10)
            .seat_per(seat_per)
            .group_max("volunteers", 2);
        let (engine, _clock, t) = start_tenant(licence).await;
        for name in ["vic", "val", "vera"] {
            in_groups(&engine, &t, name, &["volunteers"]).await;
        }
        admit(&engine, &t, "vic").await;
        let val = admit(&engine, &t, "val").await;
        assert_eq!(
            refusal(&engine, &t, "vera").await,
            group_limit("volunteers", 2)
        );
        // A second tab shares its user's seat under a seat per user; under a seat per
        // tab it is a seat of the group's like any other.
        let second_tab = login(&engine, &t, "vic").await;
        match seat_per {
            SeatPer::User => assert!(second_tab.is_ok()),
            SeatPer::Session => assert_eq!(second_tab.unwrap_err(), group_limit("volunteers", 2)),
        }
        // Others are not held back by the group's cap.
        admit(&engine, &t, "olga").await;
        // A seat the group frees is the group's to take again.
        engine.release(&val).await.unwrap();
        admit(&engine, &t, "vera").await;
        assert_eq!(
            refusal(&engine, &t, "val").await,
            group_limit("volunteers", 2)
        );
        let refused = engine.usage(&t, 1).await.unwrap()[0].refusals;
        let expected = match seat_per {
            SeatPer::User => 2,
            SeatPer::Session => 3,
        };
        assert_eq!(refused.group_limit_reached, expected, "{seat_per:?}");
    }
}

#[tokio::test]
async fn reserved_seats_are_taken_only_by_their_groups_members() {
    // 4 seats, 2 of them kept for finance.
    let licence = Licence::concurrent(4).reserve("finance", 2);
    let (engine, _clock, t) = start_tenant(licence).await;
    in_groups(&engine, &t, "fay", &["finance"]).await;
    in_groups(&engine, &t, "fred", &["finance"]).await;
    in_groups(&engine, &t, "fiona", &["finance"]).await;

    admit(&engine, &t, "ann").await;
    let bob = admit(&engine, &t, "bob").await;
    // Two seats are free, and both are finance's.
    assert_eq!(
        refusal(&engine, &t, "cara").await,
        limit_with_reserved(4, 2, 2)
    );
    admit(&engine, &t, "fay").await;
    assert_eq!(
        refusal(&engine, &t, "cara").await,
        limit_with_reserved(4, 3, 1)
    );
    admit(&engine, &t, "fred").await;
    // Full: a member finds no seat either, and none is held back any more.
    assert_eq!(
        refusal(&engine, &t, "fiona").await,
        limit_reached(4, 4, Some(Duration::from_secs(600) + millis(1)))
    );
    // A seat freed by a non-member goes to whoever comes: finance's seats are filled.
    engine.release(&bob).await.unwrap();
    admit(&engine, &t, "cara").await;
}

#[tokio::test]
async fn a_member_of_several_groups_fills_a_reservation_of_each() {
    let licence = Licence::concurrent(4)
        .reserve("finance", 1)
        .reserve("hr", 1)
        .group_max("hr", 1);
    let (engine, _clock, t) = start_tenant(licence).await;
    in_groups(&engine, &t, "pat", &["hr", "finance", "hr"]).await;
    in_groups(&engine, &t, "helen", &["hr"]).await;
    admit(&engine, &t, "pat").await;
    // Pat's seat fills both reservations: three seats are anyone's.
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "bob").await;
    admit(&engine, &t, "cara").await;
    assert_eq!(
        refusal(&engine, &t, "dan").await,
        limit_reached(4, 4, Some(Duration::from_secs(600) + millis(1)))
    );
    // HR is at its cap of one: its members are refused for the cap first.
    assert_eq!(refusal(&engine, &t, "helen").await, group_limit("hr", 1));
}

#[tokio::test]
async fn seats_held_move_with_their_users_groups_and_with_a_new_licence() {
    let (engine, _clock, t) = start_tenant(Licence::concurrent(3)).await;
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "bob").await;
    // A cap arrives while two seats are held by people in no group.
    let capped = Licence::concurrent(3).group_max("sales", 1);
    engine.put_tenant(&t, capped.clone()).await.unwrap();
    in_groups(&engine, &t, "sam", &["sales"]).await;
    admit(&engine, &t, "sam").await;
    // Ann joins sales while holding a seat: the group now holds two, over its cap.
    // Nobody's session ends; the group takes no new seat until it is under its cap.
    in_groups(&engine, &t, "ann", &["sales"]).await;
    assert_eq!(usage_now(&engine, &t).await, (3, 3));
    in_groups(&engine, &t, "sue", &["sales"]).await;
    engine.logout_user(&t, &user("bob")).await.unwrap();
    assert_eq!(refusal(&engine, &t, "sue").await, group_limit("sales", 1));
    // Ann leaves the group: its seat count falls with her.
    in_groups(&engine, &t, "ann", &[]).await;
    assert_eq!(refusal(&engine, &t, "sue").await, group_limit("sales", 1));
    engine.logout_user(&t, &user("sam")).await.unwrap();
    admit(&engine, &t, "sue").await;
    // A licence that reserves for sales counts its seats afresh: sue fills it.
    let reserving = Licence::concurrent(3).reserve("sales", 1);
    engine.put_tenant(&t, reserving).await.unwrap();
    admit(&engine, &t, "dan").await;
    assert_eq!(usage_now(&engine, &t).await, (3, 3));
}

#[tokio::test]
async fn groups_are_kept_until_replaced_and_listed_in_the_user_view() {
    let (engine, _clock, t) = start_tenant(Licence::concurrent(3)).await;
    in_groups(&engine, &t, "ann", &["sales", "finance"]).await;
    // A plain PUT keeps them; an empty list clears them.
    let view = engine.put_user(&t, &user("ann")).await.unwrap();
    assert_eq!(view.groups, [group("finance"), group("sales")]);
    let listed = engine.users(&t).await.unwrap();
    assert_eq!(listed[0].groups, [group("finance"), group("sales")]);
    in_groups(&engine, &t, "ann", &[]).await;
    assert!(engine.users(&t).await.unwrap()[0].groups.is_empty());
    // Too many groups are refused, with nothing changed.
    let many: Vec<usher::GroupId> = (0..33).map(|i| group(&format!("g{i}"))).collect();
    let error = engine
        .put_user_in_groups(&t, &user("ann"), &many)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_request");
    assert!(engine.users(&t).await.unwrap()[0].groups.is_empty());
}

#[tokio::test]
async fn a_released_seat_stays_its_users_for_the_reload_grace() {
    for seat_per in [SeatPer::User, SeatPer::Session] {
        let licence = Licence::concurrent(2)
            .seat_per(seat_per)
            .reload_grace(Duration::from_secs(30));
        let (engine, clock, t) = start_tenant(licence).await;
        let ann = admit(&engine, &t, "ann").await;
        admit(&engine, &t, "bob").await;
        // Ann's page reloads: its tab releases its seat, which stays hers.
        engine.release(&ann).await.unwrap();
        assert_eq!(usage_now(&engine, &t).await, (2, 1), "{seat_per:?}");
        let reserved = limit_reached(2, 2, Some(Duration::from_secs(600) + millis(1)));
        assert_eq!(refusal(&engine, &t, "cara").await, reserved, "{seat_per:?}");
        clock.advance(Duration::from_secs(29));
        admit(&engine, &t, "ann").await;
        assert_eq!(usage_now(&engine, &t).await, (2, 2));
        // Taken back, the seat is an ordinary one again: a logout keeps nothing.
        engine.logout_user(&t, &user("ann")).await.unwrap();
        assert_eq!(usage_now(&engine, &t).await, (1, 1));
        admit(&engine, &t, "cara").await;
    }
}

#[tokio::test]
async fn a_lapsed_grace_is_an_event_and_the_usage_report_follows_it() {
    // Overage billing counts the seats held past the licence: a kept seat that lapses
    // stops counting the moment it lapses, not at the tenant's next event.
    let licence = Licence::concurrent(1)
        .overage(1.0)
        .reload_grace(Duration::from_secs(30));
    let (engine, clock, t) = start_tenant(licence).await;
    admit(&engine, &t, "ann").await;
    let bob = admit(&engine, &t, "bob").await; // past the seats: overage
    clock.advance(Duration::from_secs(10));
    let mut watch = Watch::start(&engine).await;
    engine.release(&bob).await.unwrap(); // bob's seat kept: still two held
    clock.advance(Duration::from_secs(30));
    engine.expire_due().await.unwrap();
    let kinds = watch.kinds(&engine, &t).await;
    assert_eq!(
        kinds.last(),
        Some(&EventKind::GraceLapsed {
            user: user("bob"),
            seats_in_use: 1,
        }),
        "{kinds:?}"
    );
    // A day later the overage was held for 40 s (10 s of bob's session, 30 s kept).
    clock.advance(DAY);
    let days = engine.usage(&t, 2).await.unwrap();
    assert_eq!(days[0].overage_seat_secs, 40);
    assert_eq!(days[1].overage_seat_secs, 0);
}

#[tokio::test]
async fn a_kept_seat_goes_when_the_grace_lapses_and_only_a_release_keeps_one() {
    let licence = Licence::concurrent(2).reload_grace(Duration::from_secs(30));
    let (engine, clock, t) = start_tenant(licence).await;
    let ann = admit(&engine, &t, "ann").await;
    let bob = admit(&engine, &t, "bob").await;
    engine.release(&ann).await.unwrap();
    // At 30 s the grace has run out, and anyone may take the seat.
    clock.advance(Duration::from_secs(30));
    assert_eq!(usage_now(&engine, &t).await, (1, 1));
    admit(&engine, &t, "cara").await;
    // A revoke, a logout or an expiry keeps no seat.
    engine.revoke(&t, bob.id()).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (1, 1));
    // Under a seat per user, a release keeps the seat only with the user's last tab.
    let first = admit(&engine, &t, "dan").await;
    let second = admit(&engine, &t, "dan").await;
    assert_eq!(usage_now(&engine, &t).await, (2, 3));
    engine.release(&first).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (2, 2));
    engine.release(&second).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (2, 1));
    // Removing the user lets their kept seat go; so does a licence without the grace.
    engine.remove_user(&t, &user("dan")).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (1, 1));
    let eve = admit(&engine, &t, "eve").await;
    engine.release(&eve).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (2, 1));
    engine.put_tenant(&t, Licence::concurrent(2)).await.unwrap();
    assert_eq!(usage_now(&engine, &t).await, (1, 1));
}

#[tokio::test]
async fn a_kept_seat_counts_for_its_users_groups_until_taken_back_or_lapsed() {
    for seat_per in [SeatPer::User, SeatPer::Session] {
        let licence = Licence::concurrent(5)
            .seat_per(seat_per)
            .group_max("volunteers", 1)
            .reserve("finance", 1)
            .reload_grace(Duration::from_secs(30));
        let (engine, clock, t) = start_tenant(licence).await;
        in_groups(&engine, &t, "vic", &["volunteers"]).await;
        in_groups(&engine, &t, "val", &["volunteers"]).await;
        in_groups(&engine, &t, "fay", &["finance"]).await;
        // Vic's page reloads: the volunteers' one seat is still his.
        let vic = admit(&engine, &t, "vic").await;
        engine.release(&vic).await.unwrap();
        assert_eq!(
            refusal(&engine, &t, "val").await,
            group_limit("volunteers", 1),
            "{seat_per:?}"
        );
        let vic = admit(&engine, &t, "vic").await;
        // Fay's kept seat still fills finance's reservation: four seats are anyone's.
        let fay = admit(&engine, &t, "fay").await;
        engine.release(&fay).await.unwrap();
        for name in ["ann", "bob", "cara"] {
            admit(&engine, &t, name).await;
        }
        assert_eq!(
            refusal(&engine, &t, "dan").await,
            limit_reached(5, 5, Some(Duration::from_secs(600) + millis(1))),
            "{seat_per:?}"
        );
        // At the end of the grace the seat is free, and finance's again.
        clock.advance(Duration::from_secs(30));
        let reserved = Error::LicenceLimitReached {
            seats: 5,
            seats_in_use: 4,
            reserved: 1,
            retry_after: Some(Duration::from_secs(570) + millis(1)),
        };
        assert_eq!(refusal(&engine, &t, "dan").await, reserved, "{seat_per:?}");
        // A kept seat lapsing frees its group's place too.
        engine.release(&vic).await.unwrap();
        assert_eq!(
            refusal(&engine, &t, "val").await,
            group_limit("volunteers", 1)
        );
        clock.advance(Duration::from_secs(30));
        admit(&engine, &t, "val").await;
    }
}

/// The view's count of seats kept under the reload grace, and of each group's seats.
async fn held(engine: &Engine, t: &TenantId) -> (Option<u32>, Option<Vec<(String, u32)>>) {
    let view = engine.tenant(t).await.unwrap();
    let groups = view
        .group_seats
        .map(|seats| seats.into_iter().map(|(g, n)| (g.to_string(), n)).collect());
    (view.held_for_reload, groups)
}

fn seats_of(groups: &[(&str, u32)]) -> Option<Vec<(String, u32)>> {
    Some(groups.iter().map(|&(g, n)| (g.to_string(), n)).collect())
}

#[tokio::test]
async fn the_view_counts_kept_seats_and_each_groups_seats_where_the_licence_does() {
    let (engine, clock, t) = start_tenant(Licence::concurrent(5)).await;
    // A plain licence counts neither.
    assert_eq!(held(&engine, &t).await, (None, None));
    let licence = Licence::concurrent(5)
        .seat_per(SeatPer::Session)
        .reserve("finance", 2)
        .group_max("volunteers", 3)
        .reload_grace(Duration::from_secs(30));
    engine.put_tenant(&t, licence.clone()).await.unwrap();
    let none = seats_of(&[("finance", 0), ("volunteers", 0)]);
    assert_eq!(held(&engine, &t).await, (Some(0), none));
    in_groups(&engine, &t, "fay", &["finance", "volunteers"]).await;
    in_groups(&engine, &t, "vic", &["volunteers", "hr"]).await;
    let fay = admit(&engine, &t, "fay").await;
    admit(&engine, &t, "fay").await;
    admit(&engine, &t, "vic").await;
    admit(&engine, &t, "ann").await;
    let both = seats_of(&[("finance", 2), ("volunteers", 3)]);
    assert_eq!(held(&engine, &t).await, (Some(0), both.clone()));
    // A released tab's seat is kept, and still fay's groups'.
    engine.release(&fay).await.unwrap();
    assert_eq!(held(&engine, &t).await, (Some(1), both));
    // Vic leaves the volunteers: their count falls with him.
    in_groups(&engine, &t, "vic", &["hr"]).await;
    let after = seats_of(&[("finance", 2), ("volunteers", 2)]);
    assert_eq!(held(&engine, &t).await, (Some(1), after));

    // A dry run shows the counts as the new licence would count them: a seat per user
    // counts fay once, and lets her kept seat go.
    let per_user = Licence::concurrent(5)
        .reserve("finance", 1)
        .group_max("hr", 1)
        .reload_grace(Duration::from_secs(30));
    let preview = engine.preview_licence(&t, per_user).await.unwrap();
    assert_eq!(preview.tenant.held_for_reload, Some(0));
    let previewed: Vec<(String, u32)> = preview
        .tenant
        .group_seats
        .unwrap()
        .into_iter()
        .map(|(g, n)| (g.to_string(), n))
        .collect();
    assert_eq!(Some(previewed), seats_of(&[("finance", 1), ("hr", 1)]));
    // The same seat rule keeps the kept seat, in fay's groups.
    let capped = licence.clone().group_max("finance", 4);
    let preview = engine.preview_licence(&t, capped).await.unwrap();
    assert_eq!(preview.tenant.held_for_reload, Some(1));
    assert_eq!(
        preview.tenant.group_seats.unwrap()[&group("finance")],
        2,
        "a tab and a kept seat"
    );
    // Nothing changed.
    let after = seats_of(&[("finance", 2), ("volunteers", 2)]);
    assert_eq!(held(&engine, &t).await, (Some(1), after));

    // The grace lapses: the seat leaves the count and the groups.
    clock.advance(Duration::from_secs(30));
    let lapsed = seats_of(&[("finance", 1), ("volunteers", 1)]);
    assert_eq!(held(&engine, &t).await, (Some(0), lapsed));
}

#[tokio::test]
async fn each_kept_seat_lapses_at_the_end_of_its_own_grace() {
    // Per seat per session, a user may have several seats kept. Ann's first seat is
    // kept under a 100 s grace; the grace is then shortened to 10 s (same seat rule,
    // so kept seats stay) and her second seat is kept until 20 s. At 20 s only the
    // second seat's grace has run out.
    let grace = |secs| {
        Licence::concurrent(3)
            .seat_per(SeatPer::Session)
            .reload_grace(Duration::from_secs(secs))
    };
    let (engine, clock, t) = start_tenant_with(no_sweeper(), grace(100)).await;
    let first = admit(&engine, &t, "ann").await;
    let second = admit(&engine, &t, "ann").await;
    engine.release(&first).await.unwrap(); // kept until 100 s
    engine.put_tenant(&t, grace(10)).await.unwrap();
    clock.advance(Duration::from_secs(10));
    engine.release(&second).await.unwrap(); // kept until 20 s
    assert_eq!(engine.tenant(&t).await.unwrap().held_for_reload, Some(2));

    let mut watch = Watch::start(&engine).await;
    clock.advance(Duration::from_secs(10)); // 20 s
    engine.expire_due().await.unwrap();
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(
        (view.held_for_reload, view.seats_in_use),
        (Some(1), 1),
        "at 20 s the seat kept until 100 s is still kept"
    );
    assert_eq!(
        watch.kinds(&engine, &t).await,
        vec![EventKind::GraceLapsed {
            user: user("ann"),
            seats_in_use: 1
        }]
    );
    clock.advance(Duration::from_secs(80)); // 100 s
    engine.expire_due().await.unwrap();
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.held_for_reload, view.seats_in_use), (Some(0), 0));
}

#[tokio::test]
async fn a_session_cap_of_zero_is_no_cap() {
    let licence = Licence::concurrent(2).max_sessions_per_user(0);
    assert_eq!(licence.policies.max_sessions_per_user, None);
    let (engine, _clock, t) = start_tenant(licence).await;
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "ann").await;
}
