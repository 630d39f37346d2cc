//! Credentials and tenant isolation: a tenant key reaches its own tenant's routes and
//! nothing else, in both directions, on every route.

use awc::http::Method;
use serde_json::Value;

use crate::helpers::{fill, spawn_app, valid_body, Access, TestApp, ENDPOINTS};

/// Two tenants, each with a user logged in. Returns `(key_a, key_b, token_a, token_b)`.
async fn two_tenants(app: &TestApp) -> (String, String, String, String) {
    let key_a = app.concurrent_tenant("tenant-a", 5, 600).await;
    let key_b = app.concurrent_tenant("tenant-b", 5, 600).await;
    let token_a = app.session(&key_a, "tenant-a", "ann").await;
    let token_b = app.session(&key_b, "tenant-b", "bea").await;
    (key_a, key_b, token_a, token_b)
}

async fn session_id(app: &TestApp, key: &str, tenant: &str) -> String {
    let list = app
        .get(&format!("/v1/tenants/{tenant}/sessions"))
        .auth(key)
        .send()
        .await;
    list.expect(200)["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Everything a tenant's owner can observe.
async fn observe(app: &TestApp, tenant: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for part in ["", "/users", "/sessions", "/records"] {
        let answer = app
            .admin(Method::GET, &format!("/v1/tenants/{tenant}{part}"))
            .send()
            .await;
        seen.push(answer.expect(200).clone());
    }
    seen
}

#[actix_web::test]
async fn a_tenant_key_is_forbidden_on_every_route_of_another_tenant() {
    let app = spawn_app();
    let (key_a, key_b, token_a, token_b) = two_tenants(&app).await;
    let id_a = session_id(&app, &key_a, "tenant-a").await;
    let id_b = session_id(&app, &key_b, "tenant-b").await;
    let before = (
        observe(&app, "tenant-a").await,
        observe(&app, "tenant-b").await,
    );

    let mut checked = 0;
    for (caller, victim, user, id) in [
        (&key_a, "tenant-b", "bea", &id_b),
        (&key_b, "tenant-a", "ann", &id_a),
    ] {
        for (method, template, access) in ENDPOINTS {
            if !matches!(access, Access::Tenant | Access::Admin) || *template == "/v1/tenants" {
                continue;
            }
            let path = fill(template, victim, user, id, "");
            let answer = app.endpoint(method, template, &path, Some(caller)).await;
            answer.expect_error(403, "forbidden");
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 24);

    // Nothing changed on either side, and both tabs live on.
    let after = (
        observe(&app, "tenant-a").await,
        observe(&app, "tenant-b").await,
    );
    assert_eq!(before, after);
    app.browser(&token_a, "heartbeat").await.expect(200);
    app.browser(&token_b, "heartbeat").await.expect(200);
    app.admin(Method::GET, "/v1/tenants/tenant-a")
        .send()
        .await
        .expect(200);
}

#[actix_web::test]
async fn a_tenant_key_cannot_create_delete_list_tenants_or_rotate_keys() {
    let app = spawn_app();
    let (key_a, _, token_a, _) = two_tenants(&app).await;
    let mut checked = 0;
    for (method, template, access) in ENDPOINTS {
        if *access != Access::Admin {
            continue;
        }
        for tenant in ["tenant-a", "tenant-b", "brand-new"] {
            let path = fill(template, tenant, "", "", "");
            let answer = app.endpoint(method, template, &path, Some(&key_a)).await;
            answer.expect_error(403, "forbidden");
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 3);
    app.admin(Method::GET, "/v1/tenants/brand-new")
        .send()
        .await
        .expect_error(404, "tenant_not_found");
    // The key was not rotated away and the tenant not deleted.
    app.get("/v1/tenants/tenant-a")
        .auth(&key_a)
        .send()
        .await
        .expect(200);
    app.browser(&token_a, "heartbeat").await.expect(200);
    let list = app.admin(Method::GET, "/v1/tenants").send().await;
    assert_eq!(list.expect(200)["tenants"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn missing_or_wrong_credentials_are_unauthorized_on_every_route() {
    let app = spawn_app();
    let (key_a, _, token_a, _) = two_tenants(&app).await;
    let id_a = session_id(&app, &key_a, "tenant-a").await;
    let wrong_key = format!("{key_a}x");
    let basic = "Basic YWRtaW46c2VjcmV0";
    let mut checked = 0;
    for (method, template, access) in ENDPOINTS {
        if !matches!(access, Access::Tenant | Access::Admin) {
            continue;
        }
        let path = fill(template, "tenant-a", "ann", &id_a, "");
        let mut answers = vec![
            app.endpoint(method, template, &path, None).await,
            app.endpoint(method, template, &path, Some(&wrong_key))
                .await,
            app.endpoint(method, template, &path, Some("")).await,
            // A session token proves a session, not a tenant.
            app.endpoint(method, template, &path, Some(&token_a)).await,
        ];
        let with_basic = app
            .call(Method::from_bytes(method.as_bytes()).unwrap(), &path)
            .header("authorization", basic);
        answers.push(match valid_body(method, template) {
            Some(body) => with_basic.json(body).await,
            None => with_basic.send().await,
        });
        for answer in answers {
            answer.expect_error(401, "unauthorized");
            assert!(answer.message().contains("Bearer"), "{answer:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 25 * 5);
    app.browser(&token_a, "heartbeat").await.expect(200);
}

#[actix_web::test]
async fn a_session_of_another_tenant_cannot_be_force_released() {
    let app = spawn_app();
    let (key_a, key_b, _, token_b) = two_tenants(&app).await;
    let id_b = session_id(&app, &key_b, "tenant-b").await;

    let answer = app
        .delete(&format!("/v1/tenants/tenant-a/sessions/{id_b}"))
        .auth(&key_a)
        .send()
        .await;
    answer.expect_error(404, "session_not_found");
    // Not even the admin token reaches it through the wrong tenant.
    app.admin(
        Method::DELETE,
        &format!("/v1/tenants/tenant-a/sessions/{id_b}"),
    )
    .send()
    .await
    .expect_error(404, "session_not_found");
    app.browser(&token_b, "heartbeat").await.expect(200);
    assert_eq!(app.tenant(&key_b, "tenant-b").await["sessions"], 1);
}

#[actix_web::test]
async fn a_user_of_another_tenant_is_not_found_through_the_admin_token() {
    let app = spawn_app();
    let (_, _, _, token_b) = two_tenants(&app).await;
    for (method, path) in [
        (Method::DELETE, "/v1/tenants/tenant-a/users/bea"),
        (Method::POST, "/v1/tenants/tenant-a/users/bea/logout"),
    ] {
        app.admin(method, path)
            .send()
            .await
            .expect_error(404, "user_not_found");
    }
    app.browser(&token_b, "heartbeat").await.expect(200);
}

#[actix_web::test]
async fn key_rotation_makes_the_old_key_unauthorized_everywhere() {
    let app = spawn_app();
    let (old, _, _, _) = two_tenants(&app).await;
    let rotated = app
        .admin(Method::POST, "/v1/tenants/tenant-a/api-key")
        .send()
        .await;
    let new = rotated.expect(200)["api_key"].as_str().unwrap().to_owned();
    for (method, template, access) in ENDPOINTS {
        if *access != Access::Tenant {
            continue;
        }
        let path = fill(template, "tenant-a", "ann", "0123456789abcdef", "");
        app.endpoint(method, template, &path, Some(&old))
            .await
            .expect_error(401, "unauthorized");
    }
    app.get("/v1/tenants/tenant-a")
        .auth(&new)
        .send()
        .await
        .expect(200);
}
