//! A backend embedding the engine: three charities, one per licence model.
//!
//! Time is a [`ManualClock`], so the idle timeout can be crossed on purpose. Run with
//! `cargo run --example embedded`.

use std::sync::Arc;
use std::time::Duration;

use usher::{
    Engine, EngineConfig, Error, Event, EventKind, Licence, ManualClock, TenantId, Timestamp,
    UserId,
};

fn id<T: std::str::FromStr<Err = Error>>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a valid id: {e}"))
}

/// How the backend would answer a refused request: the stable code and the sentence.
fn refusal(error: &Error) -> String {
    let mut text = format!("refused, {}: {error}", error.code());
    if let Error::LicenceLimitReached {
        retry_after: Some(wait),
        ..
    } = error
    {
        text.push_str(&format!(" (a seat may free itself in {}s)", wait.as_secs()));
    }
    text
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> usher::Result<()> {
    let start = Timestamp::parse_rfc3339("2025-11-28T09:00:00Z").expect("a valid date");
    let clock = ManualClock::starting_at(start);
    let engine = Engine::with_clock(EngineConfig::default(), Arc::new(clock.clone()));
    let audit = engine.subscribe(1_000);

    // One tenant per licence model.
    let named: TenantId = id("st-mungos");
    let concurrent: TenantId = id("shelter-leeds");
    let records: TenantId = id("food-bank");
    let idle = Duration::from_secs(600);
    engine
        .put_tenant(
            &named,
            Licence::named(2).idle_timeout(Duration::from_secs(3600)),
        )
        .await?;
    engine
        .put_tenant(&concurrent, Licence::concurrent(2).idle_timeout(idle))
        .await?;
    engine.put_tenant(&records, Licence::records()).await?;
    println!("09:00  tenants: {named} (named, 2 seats, 1 h idle), {concurrent} (concurrent, 2 seats, 10 min idle), {records} (records)");

    let (ann, bob, cat, dev): (UserId, UserId, UserId, UserId) =
        (id("ann"), id("bob"), id("cat"), id("dev"));

    // Named users: assigned users log in whenever they like; others are refused.
    println!("\n-- {named}: named users");
    engine.put_user(&named, &ann).await?;
    engine.put_user(&named, &bob).await?;
    println!("assigned ann and bob");
    match engine.put_user(&named, &cat).await {
        Ok(_) => println!("assigned cat"),
        Err(e) => println!("assign cat: {}", refusal(&e)),
    }
    engine.login(&named, &ann, Some("laptop")).await?;
    engine.login(&named, &ann, Some("phone")).await?;
    engine.login(&named, &bob, None).await?;
    println!("ann logged in on her laptop and her phone, bob on his desktop");
    match engine.login(&named, &cat, None).await {
        Ok(_) => println!("cat logged in"),
        Err(e) => println!("cat logs in: {}", refusal(&e)),
    }

    // Concurrent users: tabs of one user share a seat; the third user waits.
    println!("\n-- {concurrent}: concurrent users");
    let ann_tab1 = engine.login(&concurrent, &ann, Some("tab 1")).await?;
    let ann_tab2 = engine.login(&concurrent, &ann, Some("tab 2")).await?;
    let bob_tab = engine.login(&concurrent, &bob, Some("tab 1")).await?;
    let view = engine.tenant(&concurrent).await?;
    println!(
        "ann (2 tabs) and bob (1 tab) logged in: {} sessions hold {} of {} seats",
        view.sessions,
        view.seats_in_use,
        view.seats.unwrap_or(0)
    );
    match engine.login(&concurrent, &cat, None).await {
        Ok(_) => println!("cat logged in"),
        Err(e) => println!("cat logs in: {}", refusal(&e)),
    }

    engine.release(&ann_tab2.token).await?;
    println!("ann chose \"Release licence\" in tab 2; her tab 1 keeps her seat");

    clock.advance(Duration::from_secs(300));
    let beat = engine.heartbeat(&ann_tab1.token).await?;
    println!(
        "09:05  ann's tab 1 heartbeats: it now expires at {}",
        beat.expires_at
    );

    clock.advance(Duration::from_secs(301));
    engine.expire_due().await?;
    let view = engine.tenant(&concurrent).await?;
    println!(
        "09:10  bob went quiet past the 10-minute idle timeout and was expired: {} of {} seats in use",
        view.seats_in_use,
        view.seats.unwrap_or(0)
    );
    match engine.heartbeat(&bob_tab.token).await {
        Ok(_) => println!("bob's late heartbeat was accepted"),
        Err(e) => println!("bob's late heartbeat: {}", refusal(&e)),
    }
    engine.login(&concurrent, &cat, Some("tab 1")).await?;
    println!("cat tries again and gets bob's seat");

    // Records: no seat limit; billed by the record count.
    println!("\n-- {records}: records-based");
    for user in [&ann, &bob, &cat, &dev] {
        engine.login(&records, user, None).await?;
    }
    println!(
        "ann, bob, cat and dev logged in: {} users, no seat limit",
        engine.tenant(&records).await?.seats_in_use
    );
    engine.report_records(&records, 12_400).await?;
    engine.report_records(&records, 12_950).await?;
    let count = engine.report_records(&records, 12_700).await?;
    println!(
        "record counts reported: 12400, 12950, 12700 -> now {}, peak today {}, peak this month {} (the billing figure)",
        count.count, count.peak_today, count.peak_month
    );

    // The usage report: what a customer reads before buying more licences.
    println!("\n-- usage today");
    println!(
        "{:<15} {:>10} {:>7} {:>9} {:>9} {:>13}",
        "tenant", "peak seats", "logins", "refusals", "expiries", "peak records"
    );
    for tenant in [&named, &concurrent, &records] {
        for day in engine.usage(tenant, 1).await? {
            println!(
                "{:<15} {:>10} {:>7} {:>9} {:>9} {:>13}",
                tenant.as_str(),
                day.peak_seats_in_use,
                day.logins,
                day.refusals.total(),
                day.expiries,
                day.peak_records
            );
        }
    }

    // Every decision was also an event, for an audit log.
    let events: Vec<Event> = audit.try_iter().collect();
    let ended = |reason: &str| {
        events
            .iter()
            .filter(
                |e| matches!(&e.kind, EventKind::Ended { reason: r, .. } if r.as_str() == reason),
            )
            .count()
    };
    println!(
        "\naudit trail: {} events; refused logins {}, released sessions {}, expired sessions {}",
        events.len(),
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Refused { .. }))
            .count(),
        ended("released"),
        ended("expired"),
    );
    Ok(())
}
