//! Records-based licences (SPEC §1): no seat limit, and the record count kept with its
//! peak per day and per calendar month, the billing period.

use super::*;

#[tokio::test]
async fn records_are_kept_with_their_peaks() {
    let (engine, clock) = start().await;
    let big = tenant("big-charity");
    engine.put_tenant(&big, Licence::records()).await.unwrap();
    engine.report_records(&big, 1_000).await.unwrap();
    let view = engine.report_records(&big, 5_000).await.unwrap();
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (5_000, 5_000, 5_000)
    );
    engine.report_records(&big, 3_000).await.unwrap();
    clock.advance(DAY);
    let view = engine.records(&big).await.unwrap();
    assert_eq!(
        (view.count, view.peak_today, view.peak_month),
        (3_000, 3_000, 5_000)
    );
    assert_eq!(engine.tenant(&big).await.unwrap().records, 3_000);
}

#[tokio::test]
async fn records_model_has_no_seat_limit() {
    let (engine, _clock, t) = start_tenant(Licence::records()).await;
    for i in 0..500 {
        admit(&engine, &t, &format!("user{i}")).await;
    }
    admit(&engine, &t, "user0").await;
    let view = engine.tenant(&t).await.unwrap();
    assert_eq!((view.seats_in_use, view.sessions), (500, 501));
    assert_eq!(view.model, "records");
    assert_eq!(view.seats, None);
    assert_eq!(view.users, 500);
}

#[tokio::test]
async fn records_peak_per_day_and_month() {
    let jan_15 = T0;
    let (engine, clock, t) = start_tenant(Licence::records()).await;
    let mut watch = Watch::start(&engine).await;
    let report = |count: u64, at: Timestamp| {
        clock.set(at);
        let engine = engine.clone();
        let t = t.clone();
        async move {
            let view = engine.report_records(&t, count).await.unwrap();
            (view.count, view.peak_today, view.peak_month)
        }
    };
    let records_at = |at: Timestamp| {
        clock.set(at);
        let engine = engine.clone();
        let t = t.clone();
        async move {
            let view = engine.records(&t).await.unwrap();
            (view.count, view.peak_today, view.peak_month)
        }
    };

    assert_eq!(records_at(jan_15).await, (0, 0, 0));

    report(100, jan_15 + 10 * HOUR).await;
    report(300, jan_15 + 11 * HOUR).await;
    assert_eq!(report(200, jan_15 + 12 * HOUR).await, (200, 300, 300));
    assert_eq!(
        watch.take(&engine, &t).await,
        [100, 300, 200]
            .iter()
            .zip(10..)
            .map(|(&count, h)| event(&t, jan_15 + h * HOUR, EventKind::RecordsReported { count }))
            .collect::<Vec<_>>()
    );
    assert_eq!(engine.tenant(&t).await.unwrap().records, 200);

    // Just before midnight it is still the same day.
    let last_ms = jan_15 + DAY - millis(1);
    assert_eq!(records_at(last_ms).await.1, 300);

    // A new day starts from the current count; the month keeps its peak.
    let jan_16 = jan_15 + DAY;
    assert_eq!(records_at(jan_16).await, (200, 200, 300));
    assert_eq!(report(250, jan_16 + HOUR).await, (250, 250, 300));
    assert_eq!(report(400, jan_16 + 2 * HOUR).await, (400, 400, 400));
    // On 31 January the count stood at 400 until this report.
    assert_eq!(report(150, jan_15 + 16 * DAY).await, (150, 400, 400));

    // A new month (the billing period) starts from the current count too.
    let feb_1 = jan_15 + 17 * DAY;
    assert_eq!(feb_1.to_rfc3339(), "2026-02-01T00:00:00.000Z");
    assert_eq!(records_at(feb_1).await, (150, 150, 150));
    assert_eq!(report(120, feb_1 + HOUR).await, (120, 150, 150));

    // The same month of the next year is another billing period.
    assert_eq!(report(900, feb_1 + 2 * HOUR).await.2, 900);
    let next_feb = feb_1 + 365 * DAY;
    assert_eq!(next_feb.to_rfc3339(), "2027-02-01T00:00:00.000Z");
    assert_eq!(records_at(next_feb).await, (900, 900, 900));
    assert_eq!(report(10, next_feb + HOUR).await, (10, 900, 900));
}

#[tokio::test]
async fn reporting_records_first_expires_what_is_due() {
    let licence = Licence::records().idle_timeout(Duration::from_secs(60));
    let (engine, clock, t) = start_tenant_with(no_sweeper(), licence).await;
    let ann = admit(&engine, &t, "ann").await;
    clock.advance(Duration::from_secs(61));
    let mut watch = Watch::start(&engine).await;
    engine.report_records(&t, 5).await.unwrap();
    assert_eq!(
        watch.kinds(&engine, &t).await,
        vec![
            EventKind::Ended {
                user: user("ann"),
                session: ann.id(),
                reason: EndReason::Expired,
                seats_in_use: 0,
            },
            EventKind::RecordsReported { count: 5 },
        ]
    );
}
