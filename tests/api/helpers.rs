//! `spawn_app()`: a real `usher serve` on a free port, driven by a manual clock, and a
//! small HTTP client to talk to it.

use std::time::Duration;

use awc::http::header::HeaderMap;
use awc::http::Method;
use serde_json::{json, Value};
use usher::http::{RunningServer, ServerConfig};
use usher::{ManualClock, Timestamp};

/// The admin token every test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The origin the test servers allow for the browser routes.
pub const APP_ORIGIN: &str = "https://crm.example.org";

/// Where the manual clock starts: mid-month, mid-day, so a test can cross a day or a
/// month boundary on purpose only.
pub const START: &str = "2025-03-10T12:00:00Z";

/// A running server and a client for it.
pub struct TestApp {
    /// Declared first so that it is dropped first: its connections close before the
    /// server drains.
    pub client: awc::Client,
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The admin token.
    pub admin_token: String,
    /// The server's clock.
    pub clock: ManualClock,
    server: RunningServer,
}

/// A server with the default settings.
pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

/// A server whose settings `configure` may change first.
pub fn spawn_app_with(configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let mut app = spawn_starting_app_with(configure);
    app.wait_ready();
    app
}

/// A server that listens but may still be restoring its store, as `usher serve` is
/// just after start-up; [`TestApp::wait_ready`] waits for the rest.
pub fn spawn_starting_app_with(configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
    spawn_starting(|config, _| configure(config))
}

/// A server deciding on the shared test Redis, under a key prefix of its own, whose
/// scripts read the same manual clock as the server.
pub fn spawn_redis_app_with(configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let mut app = spawn_starting(|config, clock| {
        config.redis = Some(crate::redis_support::config(clock));
        configure(config);
    });
    app.wait_ready();
    app
}

fn spawn_starting(configure: impl FnOnce(&mut ServerConfig, &ManualClock)) -> TestApp {
    let clock = ManualClock::starting_at(Timestamp::parse_rfc3339(START).expect("a valid time"));
    let mut config = ServerConfig::new("127.0.0.1:0", ADMIN_TOKEN);
    config.clock = std::sync::Arc::new(clock.clone());
    config.cors_origins = vec![APP_ORIGIN.to_owned()];
    config.workers = 2;
    config.webhook_allow_hosts = vec!["127.0.0.1".to_owned()];
    configure(&mut config, &clock);
    let server = RunningServer::spawn_starting(config).expect("the test server starts");
    TestApp {
        client: client(),
        url: server.url(),
        admin_token: server.admin_token.clone(),
        clock,
        server,
    }
}

/// A client that opens as many connections as there are requests in flight.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
        .disable_redirects()
        .finish()
}

/// A server's answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON, or `Null` when it is empty or not JSON.
    pub body: Value,
}

impl Answer {
    /// The `error` code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// The `message` of an error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a success status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected answer: {self:?}");
        &self.body
    }

    /// Asserts an error answer of SPEC §4: this status, this code, a JSON content
    /// type and a message a person can read. Returns the body for its details.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected answer: {self:?}"
        );
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "an error body is JSON: {self:?}"
        );
        assert!(
            self.message().len() > 10,
            "an error says what is wrong: {self:?}"
        );
        &self.body
    }
}

/// A request being built: method, path, credential, headers, body.
pub struct Call {
    request: awc::ClientRequest,
}

impl Call {
    /// Sends `Authorization: Bearer <token>`.
    pub fn auth(mut self, token: &str) -> Self {
        self.request = self.request.bearer_auth(token);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.request = self.request.insert_header((name, value.to_owned()));
        self
    }

    /// Sends without a body.
    pub async fn send(self) -> Answer {
        read(self.request.send().await).await
    }

    /// Sends a JSON body.
    pub async fn json(self, body: Value) -> Answer {
        read(self.request.send_json(&body).await).await
    }

    /// Sends raw bytes with this content type.
    pub async fn raw(self, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        let request = self
            .request
            .insert_header(("content-type", content_type.to_owned()));
        read(request.send_body(body.into()).await).await
    }

    /// Sends raw bytes with no content type.
    pub async fn bare(self, body: impl Into<Vec<u8>>) -> Answer {
        read(self.request.send_body(body.into()).await).await
    }

    /// Sends a body in chunks, without a `Content-Length`.
    pub async fn chunked(self, content_type: &str, body: Vec<u8>) -> Answer {
        let chunks: Vec<Result<actix_web::web::Bytes, std::io::Error>> = body
            .chunks(4096)
            .map(|c| Ok(actix_web::web::Bytes::copy_from_slice(c)))
            .collect();
        let request = self
            .request
            .insert_header(("content-type", content_type.to_owned()));
        read(request.send_stream(futures::stream::iter(chunks)).await).await
    }
}

async fn read<S>(response: Result<awc::ClientResponse<S>, awc::error::SendRequestError>) -> Answer
where
    S: futures::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut response = response.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    // An event stream never ends: its first chunk stands for its body.
    let streaming = headers
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    let bytes = if streaming {
        use futures::StreamExt;
        match response.next().await {
            Some(chunk) => chunk.expect("the stream sends its first chunk"),
            None => actix_web::web::Bytes::new(),
        }
    } else {
        response
            .body()
            .limit(8 * 1024 * 1024)
            .await
            .expect("the server sends its whole answer")
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        body,
    }
}

impl TestApp {
    /// Waits until the server has finished starting (its store restored).
    pub fn wait_ready(&mut self) {
        self.server
            .wait_ready()
            .expect("the test server finishes starting");
    }

    /// `url + path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Starts a request.
    pub fn call(&self, method: Method, path: &str) -> Call {
        Call {
            request: self.client.request(method, self.at(path)),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path)
    }

    pub fn put(&self, path: &str) -> Call {
        self.call(Method::PUT, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.call(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.call(Method::DELETE, path)
    }

    /// A request with the admin token.
    pub fn admin(&self, method: Method, path: &str) -> Call {
        self.call(method, path).auth(&self.admin_token)
    }

    /// Creates a tenant with this licence and returns its API key.
    pub async fn create_tenant(&self, tenant: &str, licence: Value) -> String {
        let answer = self
            .admin(Method::PUT, &format!("/v1/tenants/{tenant}"))
            .json(licence)
            .await;
        let body = answer.expect(201);
        body["api_key"]
            .as_str()
            .expect("a new tenant comes with its API key")
            .to_owned()
    }

    /// Creates a concurrent tenant with `seats` seats and this idle timeout.
    pub async fn concurrent_tenant(&self, tenant: &str, seats: u32, idle_secs: u64) -> String {
        self.create_tenant(
            tenant,
            json!({"model": "concurrent", "seats": seats, "idle_timeout_secs": idle_secs}),
        )
        .await
    }

    /// Logs `user` in to `tenant` with `key`, from tab `client`.
    pub async fn login(&self, key: &str, tenant: &str, user: &str) -> Answer {
        self.post(&format!("/v1/tenants/{tenant}/sessions"))
            .auth(key)
            .json(json!({"user": user, "client": "tab"}))
            .await
    }

    /// Logs in and returns the session token; panics unless admitted.
    pub async fn session(&self, key: &str, tenant: &str, user: &str) -> String {
        let answer = self.login(key, tenant, user).await;
        answer.expect(201)["session"]
            .as_str()
            .expect("a login returns its token")
            .to_owned()
    }

    /// `POST /v1/sessions/{token}/{action}` with no credential, as a browser does.
    pub async fn browser(&self, token: &str, action: &str) -> Answer {
        self.post(&format!("/v1/sessions/{token}/{action}"))
            .send()
            .await
    }

    /// The tenant view, read with `key`.
    pub async fn tenant(&self, key: &str, tenant: &str) -> Value {
        self.get(&format!("/v1/tenants/{tenant}"))
            .auth(key)
            .send()
            .await
            .expect(200)
            .clone()
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// The server's time now, as the API writes it.
    pub fn now(&self) -> Timestamp {
        use usher::Clock;
        self.clock.now()
    }

    /// Asserts the server still answers normally.
    pub async fn assert_healthy(&self) {
        self.get("/healthz").send().await.expect(200);
    }
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The admin token only.
    Admin,
    /// The admin token or the tenant's own API key.
    Tenant,
    /// The session token in the path.
    Browser,
    /// Anyone.
    Open,
}

/// Every endpoint of SPEC §4: method, path template, who may call it.
pub const ENDPOINTS: &[(&str, &str, Access)] = &[
    ("GET", "/v1/tenants", Access::Admin),
    ("PUT", "/v1/tenants/{tenant}", Access::Admin),
    ("PATCH", "/v1/tenants/{tenant}", Access::Admin),
    ("DELETE", "/v1/tenants/{tenant}", Access::Admin),
    ("POST", "/v1/tenants/{tenant}/api-key", Access::Admin),
    ("GET", "/v1/tenants/{tenant}", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/users", Access::Tenant),
    ("PUT", "/v1/tenants/{tenant}/users/{user}", Access::Tenant),
    (
        "DELETE",
        "/v1/tenants/{tenant}/users/{user}",
        Access::Tenant,
    ),
    (
        "POST",
        "/v1/tenants/{tenant}/users/{user}/logout",
        Access::Tenant,
    ),
    ("POST", "/v1/tenants/{tenant}/sessions", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/sessions", Access::Tenant),
    (
        "DELETE",
        "/v1/tenants/{tenant}/sessions/{id}",
        Access::Tenant,
    ),
    ("PUT", "/v1/tenants/{tenant}/records", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/records", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/usage", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/events", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/queue", Access::Tenant),
    ("GET", "/v1/tenants/{tenant}/events/stream", Access::Tenant),
    ("GET", "/v1/events/stream", Access::Admin),
    ("GET", "/v1/tenants/{tenant}/webhooks", Access::Tenant),
    (
        "PUT",
        "/v1/tenants/{tenant}/webhooks/{name}",
        Access::Tenant,
    ),
    (
        "GET",
        "/v1/tenants/{tenant}/webhooks/{name}",
        Access::Tenant,
    ),
    (
        "DELETE",
        "/v1/tenants/{tenant}/webhooks/{name}",
        Access::Tenant,
    ),
    (
        "GET",
        "/v1/tenants/{tenant}/webhooks/{name}/deliveries",
        Access::Tenant,
    ),
    ("POST", "/v1/sessions/{token}/heartbeat", Access::Browser),
    ("POST", "/v1/sessions/{token}/release", Access::Browser),
    ("POST", "/v1/sessions/{token}/logout", Access::Browser),
    ("GET", "/v1/sessions/{token}/live", Access::Browser),
    ("POST", "/v1/tickets/{ticket}/heartbeat", Access::Browser),
    ("POST", "/v1/tickets/{ticket}/claim", Access::Browser),
    ("DELETE", "/v1/tickets/{ticket}", Access::Browser),
    ("GET", "/v1/tickets/{ticket}/live", Access::Browser),
    ("GET", "/healthz", Access::Open),
    ("GET", "/readyz", Access::Open),
    ("GET", "/metrics", Access::Open),
    ("GET", "/openapi.json", Access::Open),
];

/// The endpoints that take a JSON body, with a valid one.
pub fn valid_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("PUT", "/v1/tenants/{tenant}") => Some(json!({"model": "concurrent", "seats": 3})),
        ("PATCH", "/v1/tenants/{tenant}") => Some(json!({"seats": 3})),
        ("POST", "/v1/tenants/{tenant}/sessions") => Some(json!({"user": "zed"})),
        ("PUT", "/v1/tenants/{tenant}/records") => Some(json!({"count": 7})),
        ("PUT", "/v1/tenants/{tenant}/webhooks/{name}") => Some(json!({
            "url": "http://127.0.0.1:9/hooks", "events": ["admitted"],
            "secret": "whsec_0123456789abcdef"})),
        _ => None,
    }
}

/// A path template with its placeholders filled in (a webhook's name as the user's).
pub fn fill(template: &str, tenant: &str, user: &str, id: &str, token: &str) -> String {
    template
        .replace("{tenant}", tenant)
        .replace("{user}", user)
        .replace("{name}", user)
        .replace("{id}", id)
        .replace("{token}", token)
        .replace("{ticket}", token)
}

impl TestApp {
    /// Calls one endpoint of [`ENDPOINTS`] on a filled-in path, with its valid body if it
    /// takes one, and the credential given.
    pub async fn endpoint(
        &self,
        method: &str,
        template: &str,
        path: &str,
        auth: Option<&str>,
    ) -> Answer {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut call = self.call(method.clone(), path);
        if let Some(token) = auth {
            call = call.auth(token);
        }
        match valid_body(method.as_str(), template) {
            Some(body) => call.json(body).await,
            None => call.send().await,
        }
    }
}
