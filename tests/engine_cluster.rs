//! The rule suite (`tests/rules`) on a Redis Cluster of three masters: tenants spread
//! over the slots, every script touching one slot.

use usher::{Engine, EngineConfig, ManualClock};

mod rules;
#[path = "support/redis.rs"]
mod support;

/// An engine on the shared test cluster, under a key prefix of its own, whose scripts
/// read `clock`.
pub async fn engine_on(config: EngineConfig, clock: ManualClock) -> Engine {
    Engine::with_redis(config, support::cluster_config(&clock))
        .await
        .expect("an engine on the test cluster")
}

#[tokio::test]
async fn tenants_spread_over_the_masters_and_each_keeps_its_keys_in_one_slot() {
    let clock = ManualClock::starting_at(rules::T0);
    let config = support::cluster_config(&clock);
    let prefix = config.prefix.clone();
    let engine = Engine::with_redis(EngineConfig::default(), config)
        .await
        .unwrap();
    for i in 0..30 {
        let t = rules::tenant(&format!("charity-{i}"));
        engine
            .put_tenant(&t, usher::Licence::concurrent(2))
            .await
            .unwrap();
        rules::admit(&engine, &t, "ann").await;
    }
    // Which master holds keys of which tenant: each tenant on exactly one.
    let mut holders: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for url in support::cluster() {
        let port = url.rsplit(':').next().unwrap().trim_end_matches("/0");
        let keys = std::process::Command::new("redis-cli")
            .args(["-p", port, "--scan", "--pattern", &format!("{prefix}:{{*")])
            .output()
            .unwrap();
        let keys = String::from_utf8(keys.stdout).unwrap();
        let mut tenants: Vec<&str> = keys
            .lines()
            .filter_map(|k| k.split_once('{')?.1.split_once('}').map(|(t, _)| t))
            .collect();
        tenants.sort();
        tenants.dedup();
        for t in tenants {
            holders
                .entry(t.to_string())
                .or_default()
                .push(port.to_string());
        }
    }
    assert_eq!(holders.len(), 30, "{holders:?}");
    assert!(
        holders.values().all(|ports| ports.len() == 1),
        "{holders:?}"
    );
    let masters: std::collections::BTreeSet<&String> = holders.values().flatten().collect();
    assert!(
        masters.len() >= 2,
        "30 tenants all on one master: {masters:?}"
    );
}
