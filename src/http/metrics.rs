//! Prometheus metrics through the `metrics` facade.
//!
//! Counters and gauges are fed by engine events on a thread of their own; request
//! latency is recorded by the middleware. Labels are bounded: reasons and route
//! patterns, never tenants, users or tokens.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::thread;

use metrics::Counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::engine::Engine;
use crate::events::EventKind;

/// The process-wide Prometheus recorder (the `metrics` facade allows one).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("usher_http_request_duration_seconds".into()),
                    &buckets,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program; then
            // /metrics shows only what this handle sees.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!("usher_logins_admitted_total", "Logins admitted");
    metrics::describe_counter!("usher_logins_refused_total", "Logins refused, by reason");
    metrics::describe_counter!("usher_sessions_ended_total", "Sessions ended, by reason");
    metrics::describe_counter!(
        "usher_webhook_deliveries_total",
        "Webhook delivery tries, by outcome (delivered, failed, given_up)"
    );
    metrics::describe_gauge!("usher_sessions", "Live sessions");
    metrics::describe_gauge!("usher_seats_in_use", "Seats held, all tenants together");
    metrics::describe_gauge!("usher_tenants", "Tenants");
    metrics::describe_histogram!(
        "usher_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by route pattern"
    );
}

/// Follows the engine's events and keeps the counters. Each counter's handle is
/// looked up once: at thousands of logins a second, building its key per event showed
/// in profiles.
pub fn follow(engine: &Engine) {
    let events = engine.subscribe(65_536);
    let _ = thread::Builder::new()
        .name("usher-metrics".into())
        .spawn(move || {
            let admitted = metrics::counter!("usher_logins_admitted_total");
            let mut refused = Counters::new("usher_logins_refused_total");
            let mut ended = Counters::new("usher_sessions_ended_total");
            for event in events {
                match &event.kind {
                    EventKind::Admitted { .. } => admitted.increment(1),
                    EventKind::Refused { reason, .. } => refused.get(reason.as_str()).increment(1),
                    EventKind::Ended { reason, .. } => ended.get(reason.as_str()).increment(1),
                    _ => {}
                }
            }
        });
}

/// One counter per reason, by handle.
struct Counters {
    name: &'static str,
    by_reason: HashMap<&'static str, Counter>,
}

impl Counters {
    fn new(name: &'static str) -> Self {
        Counters {
            name,
            by_reason: HashMap::new(),
        }
    }

    fn get(&mut self, reason: &'static str) -> &Counter {
        let name = self.name;
        self.by_reason
            .entry(reason)
            .or_insert_with(|| metrics::counter!(name, "reason" => reason))
    }
}

/// The exposition text, with the gauges read from the engine now.
pub fn render(engine: &Engine) -> String {
    let stats = engine.stats();
    metrics::gauge!("usher_sessions").set(stats.live_sessions as f64);
    metrics::gauge!("usher_seats_in_use").set(stats.seats_in_use as f64);
    metrics::gauge!("usher_tenants").set(stats.tenants as f64);
    handle().render()
}
