//! What an administrator reads: the tenant view, and the session and user lists a
//! page at a time, consistent while sessions come and go.

use super::*;
use usher::pool::{SessionCursor, SessionView, UserView};
use usher::SessionId;

#[tokio::test]
async fn lists_come_a_page_at_a_time_and_whole() {
    let (engine, clock) = start().await;
    let acme = tenant("acme");
    engine.put_tenant(&acme, Licence::records()).await.unwrap();
    for i in 0..25 {
        admit(&engine, &acme, &format!("u{:02}", i % 10)).await;
        clock.advance(millis(1));
    }
    let whole = engine.sessions(&acme).await.unwrap();
    assert_eq!(whole.len(), 25);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = engine.sessions_page(&acme, after, 10).await.unwrap();
        paged.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, whole);

    let users = engine.users(&acme).await.unwrap();
    assert_eq!(users.len(), 10);
    let first = engine.users_page(&acme, None, 4).await.unwrap();
    assert_eq!(first.items, users[..4]);
    let rest = engine
        .users_page(&acme, first.next.as_ref(), 100)
        .await
        .unwrap();
    assert_eq!(rest.items, users[4..]);
    assert_eq!(rest.next, None);

    for err in [
        engine.sessions_page(&acme, None, 0).await.unwrap_err(),
        engine.users_page(&acme, None, 0).await.unwrap_err(),
    ] {
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().contains("limit"), "{err}");
    }
    assert_eq!(
        engine.users_page(&tenant("nobody"), None, 0).await,
        Err(Error::TenantNotFound)
    );
}

#[tokio::test]
async fn the_tenant_view_reports_the_licence_and_usage() {
    let licence = Licence::concurrent(4)
        .seat_per(SeatPer::Session)
        .idle_timeout(Duration::from_secs(90))
        .max_users(50);
    let (engine, _clock, t) = start_tenant(licence).await;
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "ann").await;
    admit(&engine, &t, "bob").await;
    engine.put_user(&t, &user("carol")).await.unwrap();
    engine.report_records(&t, 12).await.unwrap();
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!(view.tenant, t);
    assert_eq!(view.model, "concurrent");
    assert_eq!(view.seats, Some(4));
    assert_eq!(view.seat_per, Some(SeatPer::Session));
    assert_eq!(view.idle_timeout_secs, 90);
    assert_eq!(view.max_users, 50);
    assert_eq!(view.seats_in_use, 3);
    assert_eq!(view.sessions, 3);
    assert_eq!(view.users, 3);
    assert_eq!(view.records, 12);

    let users = engine.users(&t).await.unwrap();
    let summary: Vec<(&str, bool, u32)> = users
        .iter()
        .map(|u| (u.user.as_str(), u.assigned, u.sessions))
        .collect();
    assert_eq!(
        summary,
        vec![("ann", false, 2), ("bob", false, 1), ("carol", false, 0)]
    );
}

fn keys(views: &[SessionView]) -> Vec<(Timestamp, SessionId)> {
    views.iter().map(|s| (s.started_at, s.id)).collect()
}

/// Checks one page of at most `limit`, which is empty only if it is the first.
fn check_page(items: &[SessionView], limit: usize, first: bool) {
    assert!(!items.is_empty() || first, "an empty page");
    assert!(items.len() <= limit);
}

#[tokio::test]
async fn sessions_are_listed_by_login_time_then_id_a_page_at_a_time() {
    let (engine, clock, t) = start_tenant(Licence::records()).await;
    // Several logins in the same millisecond: the id breaks the tie.
    let mut tokens = Vec::new();
    for i in 0..7u64 {
        clock.set(at_millis(i / 3));
        tokens.push(admit(&engine, &t, &format!("u{}", i % 3)).await);
    }
    let all = engine.sessions(&t).await.unwrap();
    assert_eq!(all.len(), 7);
    let mut expected: Vec<(Timestamp, SessionId)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (at_millis(i as u64 / 3), t.id()))
        .collect();
    expected.sort();
    assert_eq!(keys(&all), expected);

    let mut pages: Vec<Vec<SessionView>> = Vec::new();
    let mut after = None;
    loop {
        let page = engine.sessions_page(&t, after, 3).await.unwrap();
        check_page(&page.items, 3, pages.is_empty());
        pages.push(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1]
    );
    assert_eq!(pages.concat(), all);

    // A last page that is exactly full says there is no next one.
    let last = engine
        .sessions_page(&t, Some(SessionCursor::after(&all[3])), 3)
        .await
        .unwrap();
    assert_eq!(last.items, all[4..]);
    assert_eq!(last.next, None);
    let first = engine.sessions_page(&t, None, 6).await.unwrap();
    assert_eq!(first.next, Some(SessionCursor::after(&all[5])));
    assert_eq!(engine.sessions_page(&t, None, 7).await.unwrap().next, None);
}

#[tokio::test]
async fn paging_through_sessions_sees_each_lasting_one_once_while_others_come_and_go() {
    let (engine, clock, t) = start_tenant(Licence::records()).await;
    let mut lasting = Vec::new();
    for i in 0..40u64 {
        clock.set(at_millis(i / 4));
        lasting.push(admit(&engine, &t, &format!("u{}", i % 9)).await);
    }
    let mut doomed = Vec::new();
    for i in 0..20u64 {
        clock.set(at_millis(i));
        doomed.push(admit(&engine, &t, &format!("d{}", i % 5)).await);
    }
    let mut doomed = doomed.into_iter();
    let mut ended = Vec::new();
    let mut joined = Vec::new();
    let mut now = at_secs(1);

    let mut pages: Vec<Vec<SessionView>> = Vec::new();
    let mut after = None;
    loop {
        let page = engine.sessions_page(&t, after, 7).await.unwrap();
        check_page(&page.items, 7, pages.is_empty());
        pages.push(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        // Between pages: two sessions end, wherever they are in the list, and
        // two users log in (one of them a user already listed).
        clock.set(now);
        for token in doomed.by_ref().take(2) {
            engine.release(&token).await.unwrap();
            ended.push((token.id(), now));
        }
        joined.push(admit(&engine, &t, "u0").await.id());
        joined.push(
            admit(&engine, &t, &format!("new{}", pages.len()))
                .await
                .id(),
        );
        now = now + millis(1);
    }

    let seen: Vec<SessionView> = pages.concat();
    let seen_keys = keys(&seen);
    assert!(
        seen_keys.windows(2).all(|w| w[0] < w[1]),
        "in order, each once"
    );
    let seen_ids: Vec<SessionId> = seen.iter().map(|s| s.id).collect();
    for token in &lasting {
        assert_eq!(
            seen_ids.iter().filter(|&&id| id == token.id()).count(),
            1,
            "a lasting session is listed once"
        );
    }
    // Sessions that log in later sort after every page already read: none is missed.
    for id in &joined {
        assert!(
            seen_ids.contains(id),
            "a session logged in meanwhile is listed"
        );
    }
    assert_eq!(
        seen.len(),
        lasting.len() + joined.len() + 20 - ended.len() + {
            // Ended sessions that had been listed before they ended.
            ended.iter().filter(|(id, _)| seen_ids.contains(id)).count()
        }
    );
}

#[tokio::test]
async fn users_are_listed_by_user_id_a_page_at_a_time() {
    let (engine, _clock, t) = start_tenant(Licence::records()).await;
    for name in ["erin", "ann", "dave", "bob", "carol"] {
        engine.put_user(&t, &user(name)).await.unwrap();
    }
    admit(&engine, &t, "bob").await;
    let first = engine.users_page(&t, None, 2).await.unwrap();
    let names = |page: &[UserView]| page.iter().map(|u| u.user.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&first.items), ["ann", "bob"]);
    assert_eq!(first.items[1].sessions, 1);
    assert_eq!(first.next, Some(user("bob")));

    // Between pages: a user before the cursor joins (not listed: it sorts before),
    // one after joins (listed), one not yet listed leaves.
    engine.put_user(&t, &user("aaron")).await.unwrap();
    engine.put_user(&t, &user("dan")).await.unwrap();
    engine.remove_user(&t, &user("dave")).await.unwrap();
    let second = engine.users_page(&t, first.next.as_ref(), 2).await.unwrap();
    assert_eq!(names(&second.items), ["carol", "dan"]);
    let third = engine
        .users_page(&t, second.next.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(names(&third.items), ["erin"]);
    assert_eq!(third.next, None);

    // A cursor whose user has since gone still marks the place.
    engine.remove_user(&t, &user("carol")).await.unwrap();
    let after_carol = engine
        .users_page(&t, Some(&user("carol")), 10)
        .await
        .unwrap();
    assert_eq!(names(&after_carol.items), ["dan", "erin"]);
    assert_eq!(
        names(&engine.users(&t).await.unwrap()),
        ["aaron", "ann", "bob", "dan", "erin"]
    );
}
