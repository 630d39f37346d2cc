//! Every decision is an event (SPEC §1), with its moment and the seats it left in
//! use; what decides nothing says nothing.

use super::*;
use usher::Refusal;

#[tokio::test]
async fn every_decision_is_an_event() {
    let (engine, clock) = start().await;
    let t = tenant("st-mungos");
    let mut watch = Watch::start(&engine).await;
    let licence = Licence::concurrent(1).idle_timeout(Duration::from_secs(60));
    engine.put_tenant(&t, licence.clone()).await.unwrap();
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![event(
            &t,
            T0,
            EventKind::TenantCreated {
                licence: Box::new(licence)
            }
        )]
    );

    clock.set(at_secs(1));
    let ann = admit(&engine, &t, "ann").await;
    clock.set(at_secs(2));
    refusal(&engine, &t, "bob").await;
    clock.set(at_secs(3));
    engine.heartbeat(&ann).await.unwrap(); // keeping alive decides nothing
    clock.set(at_secs(4));
    engine.put_user(&t, &user("carol")).await.unwrap();
    let two = Licence::concurrent(2)
        .idle_timeout(Duration::from_secs(60))
        .max_users(3);
    clock.set(at_secs(5));
    engine.put_tenant(&t, two.clone()).await.unwrap();
    clock.set(at_secs(6));
    let bob = admit(&engine, &t, "bob").await;
    clock.set(at_secs(7));
    engine.release(&bob).await.unwrap();
    clock.set(at_secs(8));
    let carol = admit(&engine, &t, "carol").await;
    clock.set(at_secs(9));
    engine.revoke(&t, carol.id()).await.unwrap();
    clock.set(at_secs(10));
    refusal(&engine, &t, "dave").await; // the fourth account
    clock.set(at_secs(11));
    engine.remove_user(&t, &user("carol")).await.unwrap();
    clock.set(at_secs(12));
    engine.report_records(&t, 7).await.unwrap();
    clock.set(at_secs(70));
    engine.expire_due().await.unwrap(); // ann heartbeated at 3 s: due at 63 s
    clock.set(at_secs(71));
    engine.logout(&bob).await.unwrap_err(); // ended sessions decide nothing

    assert_eq!(
        watch.take(&engine, &t).await,
        vec![
            event(
                &t,
                at_secs(1),
                EventKind::Admitted {
                    user: user("ann"),
                    session: ann.id(),
                    seats_in_use: 1,
                    overage: false,
                }
            ),
            event(
                &t,
                at_secs(2),
                EventKind::Refused {
                    user: user("bob"),
                    reason: Refusal::LicenceLimitReached
                }
            ),
            event(
                &t,
                at_secs(4),
                EventKind::UserAssigned {
                    groups: Vec::new(),
                    user: user("carol"),
                    assigned: false,
                    seats_in_use: 1
                }
            ),
            event(
                &t,
                at_secs(5),
                EventKind::LicenceChanged {
                    licence: Box::new(two),
                    seats_in_use: 1
                }
            ),
            event(
                &t,
                at_secs(6),
                EventKind::Admitted {
                    user: user("bob"),
                    session: bob.id(),
                    seats_in_use: 2,
                    overage: false,
                }
            ),
            ended_event(&t, at_secs(7), "bob", &bob, EndReason::Released, 1),
            event(
                &t,
                at_secs(8),
                EventKind::Admitted {
                    user: user("carol"),
                    session: carol.id(),
                    seats_in_use: 2,
                    overage: false,
                }
            ),
            ended_event(&t, at_secs(9), "carol", &carol, EndReason::Revoked, 1),
            event(
                &t,
                at_secs(10),
                EventKind::Refused {
                    user: user("dave"),
                    reason: Refusal::UserLimitReached
                }
            ),
            event(
                &t,
                at_secs(11),
                EventKind::UserRemoved {
                    user: user("carol"),
                    seats_in_use: 1
                }
            ),
            event(&t, at_secs(12), EventKind::RecordsReported { count: 7 }),
            ended_event(&t, at_secs(70), "ann", &ann, EndReason::Expired, 0),
        ]
    );

    // Named: refusals and assignments; then the tenant is deleted.
    clock.set(at_secs(80));
    engine.put_tenant(&t, Licence::named(1)).await.unwrap();
    clock.set(at_secs(81));
    refusal(&engine, &t, "erin").await;
    clock.set(at_secs(82));
    engine.put_user(&t, &user("erin")).await.unwrap();
    clock.set(at_secs(83));
    let erin = admit(&engine, &t, "erin").await;
    clock.set(at_secs(84));
    engine.delete_tenant(&t).await.unwrap();
    // Every session of the deleted tenant still says why it ended.
    assert_eq!(beat(&engine, &erin).await, Err(ended(EndReason::Evicted)));
    assert_eq!(beat(&engine, &ann).await, Err(ended(EndReason::Expired)));
    assert_eq!(
        watch.take(&engine, &t).await,
        vec![
            event(
                &t,
                at_secs(80),
                EventKind::LicenceChanged {
                    licence: Box::new(Licence::named(1)),
                    seats_in_use: 0
                }
            ),
            event(
                &t,
                at_secs(81),
                EventKind::Refused {
                    user: user("erin"),
                    reason: Refusal::UserNotLicensed
                }
            ),
            event(
                &t,
                at_secs(82),
                EventKind::UserAssigned {
                    groups: Vec::new(),
                    user: user("erin"),
                    assigned: true,
                    seats_in_use: 1
                }
            ),
            event(
                &t,
                at_secs(83),
                EventKind::Admitted {
                    user: user("erin"),
                    session: erin.id(),
                    seats_in_use: 1,
                    overage: false,
                }
            ),
            ended_event(&t, at_secs(84), "erin", &erin, EndReason::Evicted, 1),
            event(&t, at_secs(84), EventKind::TenantDeleted),
        ]
    );
}
