//! Many logins at once: the limit holds exactly over HTTP, and overload is shed.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::spawn_app_with;

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
