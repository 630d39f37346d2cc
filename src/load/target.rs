//! Where the requests go: a running server over HTTP, or an [`Engine`] in this
//! process, behind one trait so that the same workload measures both.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::report::{LineEntry, Outcome, ServerView};
use crate::engine::Engine;
use crate::error::Error;
use crate::ids::{TenantId, UserId};
use crate::licence::LicenceSpec;
use crate::token::SessionToken;

/// An admitted login, as a client keeps it.
#[derive(Debug, Clone)]
pub struct Session<K> {
    /// The token.
    pub token: K,
    /// How often the server asks for a heartbeat.
    pub heartbeat_every: Duration,
    /// The idle timeout in force.
    pub idle_timeout: Duration,
}

/// What a login came to: a session, or, under a licence that queues, a place in line.
#[derive(Debug, Clone)]
pub enum Entry<K> {
    /// Admitted at once.
    Admitted(Session<K>),
    /// Put in the tenant's waitlist (`202`).
    Queued(Place<K>),
}

/// A place in a tenant's waitlist, as a client keeps it.
#[derive(Debug, Clone)]
pub struct Place<K> {
    /// The ticket: a credential like a session token.
    pub ticket: K,
    /// Its place in line when queued: 1 is next.
    pub position: u32,
    /// How often the server asks for a ticket heartbeat.
    pub heartbeat_every: Duration,
    /// The ticket ends after this long without a heartbeat.
    pub idle_timeout: Duration,
}

/// Where a ticket stands, as its heartbeat answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Its place in line (1 is next); 0 once a seat is held for it.
    pub position: u32,
    /// A seat is held for it: claim it now.
    pub ready: bool,
}

/// The operations the load tool drives. Futures are not `Send`: the tool runs on one
/// thread, as a browser does.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// A session token as this target hands it out.
    type Token: Clone + 'static;

    /// Where the requests go, for the report.
    fn describe(&self) -> String;

    /// Creates a tenant with this licence.
    async fn create_tenant(&self, tenant: &str, licence: &LicenceSpec) -> Result<(), String>;

    /// Assigns a named seat (or registers the user).
    async fn assign(&self, tenant: &str, user: &str) -> Result<(), String>;

    /// Logs in one tab: a session, or under a licence that queues, a place in line.
    async fn login(&self, tenant: &str, user: &str, client: &str) -> Outcome<Entry<Self::Token>>;

    /// Heartbeats a ticket: it keeps its place, and hears when a seat is held for it.
    async fn ticket_heartbeat(&self, ticket: &Self::Token) -> Outcome<Standing>;

    /// Claims a ready ticket: a session of the ticket's user.
    async fn claim(&self, ticket: &Self::Token) -> Outcome<Session<Self::Token>>;

    /// The tenant's waitlist as the server lists it, head first.
    async fn line(&self, tenant: &str) -> Result<Vec<LineEntry>, String>;

    /// Heartbeats one tab.
    async fn heartbeat(&self, token: &Self::Token) -> Outcome<()>;

    /// Releases one tab.
    async fn release(&self, token: &Self::Token) -> Outcome<()>;

    /// Logs the token's user out of every tab.
    async fn logout(&self, token: &Self::Token) -> Outcome<()>;

    /// The tenant as the server sees it.
    async fn view(&self, tenant: &str) -> Result<ServerView, String>;

    /// How many nodes serve the requests (the check reads the view from each).
    fn nodes(&self) -> usize {
        1
    }

    /// The tenant as node `node` (of [`Target::nodes`]) sees it.
    async fn view_on(&self, tenant: &str, node: usize) -> Result<ServerView, String> {
        let _ = node;
        self.view(tenant).await
    }

    /// Requests sent to each node so far, by URL; empty for a target in this process.
    fn spread(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// Deletes a tenant.
    async fn delete_tenant(&self, tenant: &str) -> Result<(), String>;
}

/// A session token as [`HttpTarget`] keeps it: the token and the node that admitted
/// the login, so that the session's later requests can go elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeToken {
    /// The token.
    pub token: String,
    /// Index (in [`HttpTarget::urls`]) of the node the login went to.
    pub node: usize,
}

/// How requests are spread over the nodes: logins and tenant requests round-robin, one
/// node after the other; a session's heartbeats, releases and logout to the node after
/// the one that admitted its login, so that with two nodes or more every session is
/// served by two of them.
#[derive(Debug, Default)]
pub struct Spread {
    nodes: usize,
    next: Cell<usize>,
}

impl Spread {
    /// Over `nodes` nodes (at least one).
    pub fn new(nodes: usize) -> Self {
        Spread {
            nodes: nodes.max(1),
            next: Cell::new(0),
        }
    }

    /// The node of the next login or tenant request.
    pub fn next(&self) -> usize {
        let node = self.next.get();
        self.next.set((node + 1) % self.nodes);
        node
    }

    /// The node for a request about a session whose login went to `login`: another
    /// one whenever there is another.
    pub fn after_login(&self, login: usize) -> usize {
        (login + 1) % self.nodes
    }
}

/// Running `usher serve` nodes, over HTTP/1.1 with keep-alive connections: one, or
/// several serving the same tenants (on one Redis), with the requests spread over them
/// by [`Spread`].
pub struct HttpTarget {
    client: awc::Client,
    urls: Vec<String>,
    admin_token: String,
    /// Each tenant's API key, as returned at creation: the backend's credential.
    keys: RefCell<HashMap<String, String>>,
    spread: Spread,
    /// Requests sent to each node.
    sent: RefCell<Vec<u64>>,
}

impl HttpTarget {
    /// A client for the server at `url`, with at most `connections` connections.
    pub fn new(url: &str, admin_token: &str, connections: usize, timeout: Duration) -> Self {
        Self::over(&[url.to_string()], admin_token, connections, timeout)
    }

    /// A client for the nodes at `urls` (at least one), with at most `connections`
    /// connections to each.
    pub fn over(urls: &[String], admin_token: &str, connections: usize, timeout: Duration) -> Self {
        let connector = awc::Connector::new()
            .limit(connections)
            .timeout(timeout)
            // Below the server's keep-alive of 5 s, so an idle connection is never
            // reused just as the server closes it.
            .conn_keep_alive(Duration::from_secs(4));
        HttpTarget {
            client: awc::Client::builder()
                .connector(connector)
                .timeout(timeout)
                .disable_redirects()
                .finish(),
            urls: urls
                .iter()
                .map(|url| url.trim_end_matches('/').to_string())
                .collect(),
            admin_token: admin_token.to_string(),
            keys: RefCell::default(),
            spread: Spread::new(urls.len()),
            sent: RefCell::new(vec![0; urls.len()]),
        }
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Counts a request sent to `node` outside [`HttpTarget`] (the storm's own
    /// connections).
    pub fn count_sent(&self, node: usize) {
        if let Some(n) = self.sent.borrow_mut().get_mut(node) {
            *n += 1;
        }
    }

    /// A tenant's API key, once the tool created it.
    pub fn key(&self, tenant: &str) -> Option<String> {
        self.keys.borrow().get(tenant).cloned()
    }

    fn key_or_admin(&self, tenant: &str) -> String {
        self.key(tenant).unwrap_or_else(|| self.admin_token.clone())
    }

    /// Sends a request to the next node; answers the status and the JSON body.
    async fn call(
        &self,
        method: awc::http::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let node = self.spread.next();
        self.call_on(node, method, path, bearer, body).await
    }

    /// Sends a request to `node`; answers the status and the JSON body (`Null` when
    /// empty).
    async fn call_on(
        &self,
        node: usize,
        method: awc::http::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.count_sent(node);
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.urls[node]));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| transport_error(&e).to_string())?;
        let bytes = response
            .body()
            .limit(1 << 20)
            .await
            .map_err(|_| "read".to_string())?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| "not_json".to_string())?
        };
        Ok((response.status().as_u16(), value))
    }

    async fn session_call(&self, token: &NodeToken, action: &str) -> Outcome<()> {
        let path = format!("/v1/sessions/{}/{action}", token.token);
        let node = self.spread.after_login(token.node);
        match self
            .call_on(node, awc::http::Method::POST, &path, None, None)
            .await
        {
            Ok((200 | 204, _)) => Outcome::Ok(()),
            Ok((status, body)) => outcome_of(status, &body),
            Err(kind) => Outcome::Failed(kind),
        }
    }

    /// A ticket request (`POST /v1/tickets/{ticket}/{action}`), to another node than
    /// the one that queued the login; answers that node too.
    async fn ticket_call(
        &self,
        ticket: &NodeToken,
        action: &str,
    ) -> (usize, Result<(u16, Value), String>) {
        let path = format!("/v1/tickets/{}/{action}", ticket.token);
        let node = self.spread.after_login(ticket.node);
        let answer = self
            .call_on(node, awc::http::Method::POST, &path, None, None)
            .await;
        (node, answer)
    }
}

/// A `201` login answer as a client keeps it, its token tagged with `node`.
fn session_of(body: &Value, node: usize) -> Option<Session<NodeToken>> {
    Some(Session {
        token: NodeToken {
            token: body["session"].as_str()?.to_string(),
            node,
        },
        heartbeat_every: Duration::from_secs(body["heartbeat_interval_secs"].as_u64()?.max(1)),
        idle_timeout: Duration::from_secs(body["idle_timeout_secs"].as_u64()?),
    })
}

/// A `202` queued answer as a client keeps it, its ticket tagged with `node`.
pub(crate) fn place_of(body: &Value, node: usize) -> Option<Place<NodeToken>> {
    Some(Place {
        ticket: NodeToken {
            token: body["ticket"].as_str()?.to_string(),
            node,
        },
        position: u32::try_from(body["position"].as_u64()?).ok()?,
        heartbeat_every: Duration::from_secs(body["heartbeat_interval_secs"].as_u64()?.max(1)),
        idle_timeout: Duration::from_secs(body["idle_timeout_secs"].as_u64()?),
    })
}

/// `{"queue": [...]}` as the check reads it.
pub fn line_of(body: &Value) -> Result<Vec<LineEntry>, String> {
    let entries = body["queue"]
        .as_array()
        .ok_or("the queue list has no queue")?;
    entries
        .iter()
        .map(|e| {
            Ok(LineEntry {
                user: e["user"]
                    .as_str()
                    .ok_or("a queue entry has no user")?
                    .to_string(),
                position: e["position"]
                    .as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or("a queue entry has no position")?,
            })
        })
        .collect()
}

/// A transport failure in a word, for the report.
fn transport_error(e: &awc::error::SendRequestError) -> &'static str {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => "timeout",
        E::Connect(_) => "connect",
        E::Send(_) => "send",
        E::Response(_) => "response",
        _ => "transport",
    }
}

/// An error answer sorted by its code.
pub(crate) fn outcome_of<T>(status: u16, body: &Value) -> Outcome<T> {
    match body["error"].as_str() {
        Some(code) => Outcome::from_code(code, body["reason"].as_str()),
        None => Outcome::Failed(format!("http_{status}")),
    }
}

fn expect_ok(result: Result<(u16, Value), String>, what: &str) -> Result<Value, String> {
    match result {
        Ok((status, body)) if (200..300).contains(&status) => Ok(body),
        Ok((status, body)) => Err(format!(
            "{what}: {status} {}: {}",
            body["error"].as_str().unwrap_or("error"),
            body["message"].as_str().unwrap_or("")
        )),
        Err(kind) => Err(format!("{what}: {kind}")),
    }
}

/// The part of a tenant view the check reads.
pub fn server_view(body: &Value) -> Result<ServerView, String> {
    let number = |key: &str| {
        body[key]
            .as_u64()
            .map(|n| n as u32)
            .ok_or_else(|| format!("the tenant view has no {key}"))
    };
    Ok(ServerView {
        tenant: body["tenant"].as_str().unwrap_or_default().to_string(),
        seats: body["seats"].as_u64().map(|n| n as u32),
        seats_in_use: number("seats_in_use")?,
        sessions: number("sessions")?,
        // A server from before the waitlist has no line to count.
        queued: body["queued"].as_u64().map_or(0, |n| n as u32),
        held_for_queue: body["held_for_queue"].as_u64().map_or(0, |n| n as u32),
    })
}

impl Target for HttpTarget {
    type Token = NodeToken;

    fn describe(&self) -> String {
        self.urls.join(", ")
    }

    fn nodes(&self) -> usize {
        self.urls.len()
    }

    fn spread(&self) -> Vec<(String, u64)> {
        self.urls
            .iter()
            .cloned()
            .zip(self.sent.borrow().iter().copied())
            .collect()
    }

    async fn create_tenant(&self, tenant: &str, licence: &LicenceSpec) -> Result<(), String> {
        let body = serde_json::to_value(licence).map_err(|e| e.to_string())?;
        let answer = expect_ok(
            self.call(
                awc::http::Method::PUT,
                &format!("/v1/tenants/{tenant}"),
                Some(&self.admin_token),
                Some(&body),
            )
            .await,
            &format!("creating tenant {tenant}"),
        )?;
        if let Some(key) = answer["api_key"].as_str() {
            self.keys
                .borrow_mut()
                .insert(tenant.to_string(), key.to_string());
        }
        Ok(())
    }

    async fn assign(&self, tenant: &str, user: &str) -> Result<(), String> {
        let key = self.key_or_admin(tenant);
        expect_ok(
            self.call(
                awc::http::Method::PUT,
                &format!("/v1/tenants/{tenant}/users/{user}"),
                Some(&key),
                None,
            )
            .await,
            &format!("assigning {user} in {tenant}"),
        )
        .map(drop)
    }

    async fn login(&self, tenant: &str, user: &str, client: &str) -> Outcome<Entry<NodeToken>> {
        let key = self.key_or_admin(tenant);
        let body = serde_json::json!({"user": user, "client": client});
        let node = self.spread.next();
        let answer = self
            .call_on(
                node,
                awc::http::Method::POST,
                &format!("/v1/tenants/{tenant}/sessions"),
                Some(&key),
                Some(&body),
            )
            .await;
        match answer {
            Ok((201, body)) => session_of(&body, node).map_or_else(
                || Outcome::Failed("bad_login_answer".into()),
                |s| Outcome::Ok(Entry::Admitted(s)),
            ),
            Ok((202, body)) => place_of(&body, node).map_or_else(
                || Outcome::Failed("bad_queued_answer".into()),
                |p| Outcome::Ok(Entry::Queued(p)),
            ),
            Ok((status, body)) => outcome_of(status, &body),
            Err(kind) => Outcome::Failed(kind),
        }
    }

    async fn ticket_heartbeat(&self, ticket: &NodeToken) -> Outcome<Standing> {
        match self.ticket_call(ticket, "heartbeat").await {
            (_, Ok((200, body))) => match body["position"].as_u64() {
                Some(position) => Outcome::Ok(Standing {
                    position: position as u32,
                    ready: body["ready"].as_bool().unwrap_or(false),
                }),
                None => Outcome::Failed("bad_ticket_answer".into()),
            },
            (_, Ok((status, body))) => outcome_of(status, &body),
            (_, Err(kind)) => Outcome::Failed(kind),
        }
    }

    async fn claim(&self, ticket: &NodeToken) -> Outcome<Session<NodeToken>> {
        match self.ticket_call(ticket, "claim").await {
            // The session's later requests go to another node than the claim.
            (node, Ok((201, body))) => session_of(&body, node)
                .map_or_else(|| Outcome::Failed("bad_login_answer".into()), Outcome::Ok),
            (_, Ok((status, body))) => outcome_of(status, &body),
            (_, Err(kind)) => Outcome::Failed(kind),
        }
    }

    async fn line(&self, tenant: &str) -> Result<Vec<LineEntry>, String> {
        let key = self.key_or_admin(tenant);
        let body = expect_ok(
            self.call(
                awc::http::Method::GET,
                &format!("/v1/tenants/{tenant}/queue"),
                Some(&key),
                None,
            )
            .await,
            &format!("reading the waitlist of {tenant}"),
        )?;
        line_of(&body)
    }

    async fn heartbeat(&self, token: &NodeToken) -> Outcome<()> {
        self.session_call(token, "heartbeat").await
    }

    async fn release(&self, token: &NodeToken) -> Outcome<()> {
        self.session_call(token, "release").await
    }

    async fn logout(&self, token: &NodeToken) -> Outcome<()> {
        self.session_call(token, "logout").await
    }

    async fn view(&self, tenant: &str) -> Result<ServerView, String> {
        let node = self.spread.next();
        self.view_on(tenant, node).await
    }

    async fn view_on(&self, tenant: &str, node: usize) -> Result<ServerView, String> {
        let key = self.key_or_admin(tenant);
        let body = expect_ok(
            self.call_on(
                node,
                awc::http::Method::GET,
                &format!("/v1/tenants/{tenant}"),
                Some(&key),
                None,
            )
            .await,
            &format!("reading tenant {tenant} from {}", self.urls[node]),
        )?;
        server_view(&body)
    }

    async fn delete_tenant(&self, tenant: &str) -> Result<(), String> {
        expect_ok(
            self.call(
                awc::http::Method::DELETE,
                &format!("/v1/tenants/{tenant}"),
                Some(&self.admin_token),
                None,
            )
            .await,
            &format!("deleting tenant {tenant}"),
        )?;
        self.keys.borrow_mut().remove(tenant);
        Ok(())
    }
}

/// An [`Engine`] in this process: the same workload without HTTP, to tell the
/// engine's cost from the server's.
pub struct EngineTarget {
    engine: Engine,
}

impl EngineTarget {
    /// Drives `engine`.
    pub fn new(engine: Engine) -> Self {
        EngineTarget { engine }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn engine_outcome<T>(error: Error) -> Outcome<T> {
    match error {
        Error::SessionEnded { reason } | Error::TicketEnded { reason } => {
            Outcome::Ended(reason.as_str().to_string())
        }
        other => Outcome::from_code(other.code(), None),
    }
}

/// An engine login as a client keeps it.
fn engine_session(login: crate::engine::Login) -> Session<SessionToken> {
    Session {
        token: login.token,
        heartbeat_every: login.heartbeat_interval.max(Duration::from_secs(1)),
        idle_timeout: login.idle_timeout,
    }
}

fn ids(tenant: &str, user: Option<&str>) -> Result<(TenantId, Option<UserId>), Error> {
    Ok((
        TenantId::parse(tenant)?,
        user.map(UserId::parse).transpose()?,
    ))
}

impl Target for EngineTarget {
    type Token = SessionToken;

    fn describe(&self) -> String {
        "in-process".into()
    }

    async fn create_tenant(&self, tenant: &str, licence: &LicenceSpec) -> Result<(), String> {
        let licence = licence
            .validate(self.engine.config().default_max_users)
            .map_err(|e| e.to_string())?;
        let (tenant, _) = ids(tenant, None).map_err(|e| e.to_string())?;
        self.engine
            .put_tenant(&tenant, licence)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn assign(&self, tenant: &str, user: &str) -> Result<(), String> {
        let (tenant, user) = ids(tenant, Some(user)).map_err(|e| e.to_string())?;
        let user = user.expect("parsed above");
        self.engine
            .put_user(&tenant, &user)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn login(&self, tenant: &str, user: &str, client: &str) -> Outcome<Entry<SessionToken>> {
        let (tenant, user) = match ids(tenant, Some(user)) {
            Ok((t, Some(u))) => (t, u),
            Ok(_) => return Outcome::Failed("invalid_request".into()),
            Err(e) => return engine_outcome(e),
        };
        // `enter` is `login` but for a licence that queues, as the HTTP route is.
        match self.engine.enter(&tenant, &user, Some(client)).await {
            Ok(crate::engine::Entry::Admitted(login)) => {
                Outcome::Ok(Entry::Admitted(engine_session(login)))
            }
            Ok(crate::engine::Entry::Queued(ticket)) => Outcome::Ok(Entry::Queued(Place {
                ticket: ticket.token,
                position: ticket.position,
                heartbeat_every: ticket.heartbeat_interval.max(Duration::from_secs(1)),
                idle_timeout: ticket.idle_timeout,
            })),
            Err(e) => engine_outcome(e),
        }
    }

    async fn ticket_heartbeat(&self, ticket: &SessionToken) -> Outcome<Standing> {
        match self.engine.ticket_heartbeat(ticket).await {
            Ok(status) => Outcome::Ok(Standing {
                position: status.position,
                ready: status.claim_by.is_some(),
            }),
            Err(e) => engine_outcome(e),
        }
    }

    async fn claim(&self, ticket: &SessionToken) -> Outcome<Session<SessionToken>> {
        match self.engine.claim(ticket).await {
            Ok(login) => Outcome::Ok(engine_session(login)),
            Err(e) => engine_outcome(e),
        }
    }

    async fn line(&self, tenant: &str) -> Result<Vec<LineEntry>, String> {
        let (tenant, _) = ids(tenant, None).map_err(|e| e.to_string())?;
        let line = self
            .engine
            .waitlist(&tenant)
            .await
            .map_err(|e| e.to_string())?;
        Ok(line
            .into_iter()
            .map(|e| LineEntry {
                user: e.user.to_string(),
                position: e.position,
            })
            .collect())
    }

    async fn heartbeat(&self, token: &SessionToken) -> Outcome<()> {
        match self.engine.heartbeat(token).await {
            Ok(_) => Outcome::Ok(()),
            Err(e) => engine_outcome(e),
        }
    }

    async fn release(&self, token: &SessionToken) -> Outcome<()> {
        match self.engine.release(token).await {
            Ok(()) => Outcome::Ok(()),
            Err(e) => engine_outcome(e),
        }
    }

    async fn logout(&self, token: &SessionToken) -> Outcome<()> {
        match self.engine.logout(token).await {
            Ok(_) => Outcome::Ok(()),
            Err(e) => engine_outcome(e),
        }
    }

    async fn view(&self, tenant: &str) -> Result<ServerView, String> {
        let (tenant, _) = ids(tenant, None).map_err(|e| e.to_string())?;
        let view = self
            .engine
            .tenant(&tenant)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ServerView {
            tenant: view.tenant.to_string(),
            seats: view.seats,
            seats_in_use: view.seats_in_use,
            sessions: view.sessions,
            queued: view.queued,
            held_for_queue: view.held_for_queue,
        })
    }

    async fn delete_tenant(&self, tenant: &str) -> Result<(), String> {
        let (tenant, _) = ids(tenant, None).map_err(|e| e.to_string())?;
        self.engine
            .delete_tenant(&tenant)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_answers_are_sorted_by_their_code() {
        let refused: Outcome<()> = outcome_of(409, &json!({"error": "licence_limit_reached"}));
        assert_eq!(refused, Outcome::Refused("licence_limit_reached".into()));
        let ended: Outcome<()> =
            outcome_of(410, &json!({"error": "session_ended", "reason": "expired"}));
        assert_eq!(ended, Outcome::Ended("expired".into()));
        let shed: Outcome<()> = outcome_of(503, &json!({"error": "overloaded"}));
        assert_eq!(shed, Outcome::Failed("overloaded".into()));
        let bare: Outcome<()> = outcome_of(502, &Value::Null);
        assert_eq!(bare, Outcome::Failed("http_502".into()));
    }

    #[test]
    fn logins_go_round_robin_and_a_sessions_requests_to_another_node() {
        let three = Spread::new(3);
        let logins: Vec<usize> = (0..6).map(|_| three.next()).collect();
        assert_eq!(logins, [0, 1, 2, 0, 1, 2]);
        for login in 0..3 {
            assert_ne!(three.after_login(login), login);
        }
        assert_eq!(three.after_login(2), 0);
        // One node serves everything.
        let one = Spread::new(1);
        assert_eq!((one.next(), one.next(), one.after_login(0)), (0, 0, 0));
        assert_eq!(Spread::new(0).next(), 0);
    }

    #[test]
    fn a_tenant_view_is_read_from_the_servers_json() {
        let view = server_view(&json!({
            "tenant": "acme", "model": "concurrent", "seats": 5,
            "seats_in_use": 3, "sessions": 4, "users": 9
        }))
        .unwrap();
        assert_eq!(
            view,
            ServerView {
                tenant: "acme".into(),
                seats: Some(5),
                seats_in_use: 3,
                sessions: 4,
                queued: 0,
                held_for_queue: 0,
            }
        );
        let records =
            server_view(&json!({"tenant": "r", "seats": null, "seats_in_use": 2, "sessions": 2}))
                .unwrap();
        assert_eq!(records.seats, None);
        assert!(server_view(&json!({"tenant": "x"})).is_err());
    }

    #[test]
    fn a_queued_answer_becomes_a_place_and_the_queue_list_a_line() {
        let place = place_of(
            &json!({"ticket": "ust_abc", "position": 3, "tenant": "acme", "user": "ann",
                "heartbeat_interval_secs": 2, "idle_timeout_secs": 10}),
            1,
        )
        .unwrap();
        assert_eq!(
            place.ticket,
            NodeToken {
                token: "ust_abc".into(),
                node: 1
            }
        );
        assert_eq!(place.position, 3);
        assert_eq!(place.heartbeat_every, Duration::from_secs(2));
        assert!(place_of(&json!({"position": 3}), 0).is_none());
        let line = line_of(&json!({"queue": [
            {"position": 0, "ticket": "00ff", "user": "ann", "client": "tab",
                "queued_at": "2026-01-01T00:00:00Z", "claim_by": "2026-01-01T00:01:00Z"},
            {"position": 1, "ticket": "01ff", "user": "bob", "client": null,
                "queued_at": "2026-01-01T00:00:01Z", "claim_by": null},
        ]}))
        .unwrap();
        assert_eq!(
            line,
            [
                LineEntry {
                    user: "ann".into(),
                    position: 0
                },
                LineEntry {
                    user: "bob".into(),
                    position: 1
                }
            ]
        );
        assert!(line_of(&json!({"error": "forbidden"})).is_err());
    }
}
