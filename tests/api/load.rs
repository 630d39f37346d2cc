//! Many logins at once: the limit holds exactly over HTTP, and overload is shed; the
//! load tool drives several nodes on one Redis and checks them all.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use usher::http::{RunningServer, ServerConfig};
use usher::load::{self, LoadConfig, Op, TargetConfig};
use usher::redis::RedisConfig;

use crate::helpers::spawn_app_with;
use crate::redis_support;

#[actix_web::test]
async fn two_thousand_simultaneous_logins_admit_exactly_the_seats() {
    let app = spawn_app_with(|_| {});
    let key = app.concurrent_tenant("busy", 200, 600).await;
    let url = app.at("/v1/tenants/busy/sessions");
    // One connection per request: nothing is serialized on the client side.
    let logins = (0..2000).map(|i| {
        let request = app
            .client
            .post(&url)
            .bearer_auth(&key)
            .send_json(&json!({"user": format!("user-{i}")}));
        async move {
            let mut response = request.await.expect("the server answers");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("a JSON body");
            (status, body)
        }
    });
    let answers = join_all(logins).await;

    let admitted = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(admitted, 200);
    assert_eq!(refused.len(), 1800);
    for (_, body) in refused {
        assert_eq!(body["error"], "licence_limit_reached");
        assert_eq!(body["seats"], 200);
        assert_eq!(body["seats_in_use"], 200);
    }
    let view = app.tenant(&key, "busy").await;
    assert_eq!(view["seats_in_use"], 200);
    assert_eq!(view["sessions"], 200);
}

#[actix_web::test]
async fn a_flooded_tenant_sheds_load_with_503_and_retry_after() {
    let app = spawn_app_with(|config| {
        config.engine.mailbox_capacity = 1;
        config.workers = 4;
    });
    let key = app.concurrent_tenant("flooded", 10, 600).await;
    let url = app.at("/v1/tenants/flooded/sessions");
    let logins = (0..600).map(|i| {
        let request = app
            .client
            .post(&url)
            .bearer_auth(&key)
            .send_json(&json!({"user": format!("user-{i}")}));
        async move {
            let mut response = request.await.expect("the server answers");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = response.json().await.expect("a JSON body");
            (status, retry_after, body)
        }
    });
    let answers = join_all(logins).await;

    let count = |status| answers.iter().filter(|(s, _, _)| *s == status).count();
    let (admitted, refused, shed) = (count(201), count(409), count(503));
    assert_eq!(
        admitted + refused + shed,
        answers.len(),
        "only 201, 409 or 503"
    );
    assert!(admitted <= 10, "over-admitted: {admitted}");
    assert!(
        shed > 0,
        "nothing was shed ({admitted} admitted, {refused} refused)"
    );
    for (status, retry_after, body) in &answers {
        if *status == 503 {
            assert_eq!(body["error"], "overloaded");
            let secs: u64 = retry_after
                .as_deref()
                .expect("a Retry-After header")
                .parse()
                .expect("Retry-After in seconds");
            assert!(secs >= 1);
            assert_eq!(body["retry_after_secs"], secs);
        }
    }
    // Once the flood is over, the tenant answers normally again.
    let view = app.tenant(&key, "flooded").await;
    assert_eq!(view["seats_in_use"].as_u64(), Some(admitted as u64));
    app.assert_healthy().await;
}

/// Three `usher serve` nodes on the test Redis, under a key prefix of their own.
fn three_nodes() -> Vec<RunningServer> {
    let prefix = redis_support::unique_prefix();
    (0..3)
        .map(|_| {
            let mut config = ServerConfig::new("127.0.0.1:0", "load-nodes-admin");
            config.workers = 1;
            let mut redis = RedisConfig::new(redis_support::shared().url.clone());
            redis.prefix = prefix.clone();
            config.redis = Some(redis);
            RunningServer::spawn(config).expect("a node starts")
        })
        .collect()
}

fn over(nodes: &[RunningServer]) -> LoadConfig {
    let mut config = LoadConfig::new(TargetConfig::Http {
        urls: nodes.iter().map(RunningServer::url).collect(),
        admin_token: "load-nodes-admin".into(),
    });
    config.seed = 3;
    config
}

#[test]
fn a_storm_spread_over_three_nodes_admits_exactly_the_seats() {
    let nodes = three_nodes();
    let mut config = over(&nodes);
    config.storm = Some(600);
    config.seats = Some(60);
    let report = load::run(&config).unwrap();
    let text = report.to_text();
    let login = &report.stats.ops[&Op::Login];
    assert_eq!(login.ok, 60, "{text}");
    assert_eq!(login.refused["licence_limit_reached"], 540, "{text}");
    assert!(report.passed(), "{text}");
    // A third of the logins went to each node, and every node's view was checked.
    assert_eq!(report.nodes.len(), 3, "{text}");
    assert!(report.nodes.iter().all(|(_, sent)| *sent >= 200), "{text}");
    assert_eq!(report.checks[0].view.seats_in_use, 60);
    assert!(report.checks[0].node.is_some());
}

#[test]
fn browsers_spread_over_three_nodes_end_with_every_node_agreeing_with_them() {
    let nodes = three_nodes();
    let mut config = over(&nodes);
    config.tenants = 2;
    config.users = 12;
    config.seats = Some(6);
    config.duration = Duration::from_millis(2500);
    // Ten simulated minutes a second: idle timeout 2 s, heartbeats every second, each
    // to another node than the login.
    config.time_scale = 600.0;
    config.idle_timeout = Duration::from_secs(1200);
    let report = load::run(&config).unwrap();
    let text = report.to_text();
    assert!(report.passed(), "{text}");
    assert!(report.stats.ops[&Op::Login].ok > 0, "{text}");
    assert!(report.stats.ops[&Op::Heartbeat].ok > 0, "{text}");
    assert_eq!(report.stats.total().errors_total(), 0, "{text}");
    assert!(report.nodes.iter().all(|(_, sent)| *sent > 0), "{text}");
    assert!(text.contains("as every node sees them"), "{text}");
}
