//! Webhooks (SPEC §11): a tenant registers a URL for some event types, and one node
//! delivers its audit log's events there, signed, in order, at least once.
//!
//! A webhook is two entries where the engine keeps its state (the store, or the shared
//! Redis): its registration, `config/<tenant>/<name>`, and its progress,
//! `state/<tenant>/<name>` — the id of the last event dealt with and the latest
//! deliveries. The deliverer reads the durable audit log after that id and records
//! each answer before it moves on, so a restart re-sends at most the delivery that was
//! under way. In Redis mode a lease makes one node the deliverer.
//!
//! Targets are limited to the hosts of `webhook_allow_hosts`; a host name must also
//! resolve to public addresses, or to ones the list names, and the connection goes to
//! the addresses so checked (no redirects are followed).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use crate::clock::Timestamp;
use crate::engine::Engine;
use crate::error::Error;
use crate::ids::TenantId;
use crate::licence::{Licence, WHOLE_PPM};
use crate::store::{AuditEvent, EventQuery};

/// Event types a webhook may ask for: the audit log's, and the two alerts.
pub const EVENT_TYPES: &[&str] = &[
    "tenant_created",
    "licence_changed",
    "tenant_deleted",
    "admitted",
    "refused",
    "withdrawn",
    "ended",
    "user_assigned",
    "user_removed",
    "records_reported",
    "grace_lapsed",
    "queued",
    "ticket_ready",
    "ticket_ended",
    "limit_reached",
    "near_limit",
];

/// `limit_reached` is raised for the first refusal at the limit in this long.
const LIMIT_ALERT_EVERY: Duration = Duration::from_secs(3600);
/// Failed deliveries of one event are retried for this long, then given up.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between two tries.
const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// A target must answer within this long.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries kept per webhook for its log.
const DELIVERIES_KEPT: usize = 100;
/// Events read from the log at a time.
const PAGE: usize = 100;
/// How often the deliverer looks for work: retries that came due, and news.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// A webhook's log is read when its tenant has news, and at least this often besides
/// (news may be lost, for example while the shared store's notifications were cut).
const READ_ANYWAY_EVERY: Duration = Duration::from_secs(5);
/// How often registrations are read again (others may change them).
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// The deliverer's lease in Redis mode, renewed well within it.
const LEASE_FOR: Duration = Duration::from_secs(15);
/// Secrets are at least this long.
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
const MAX_URL: usize = 2048;

/// The server's webhook settings.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Hosts (names or addresses) webhooks may target; a leading `*.` allows the
    /// subdomains of a name. None by default: no webhook can be registered.
    pub allow_hosts: Vec<String>,
}

impl WebhookSettings {
    /// Whether `host` (a URL's host, lower-case) is on the list.
    fn allows_host(&self, host: &str) -> bool {
        self.allow_hosts.iter().any(|allowed| {
            let allowed = allowed.trim().to_ascii_lowercase();
            let allowed = allowed.trim_start_matches('[').trim_end_matches(']');
            match allowed.strip_prefix("*.") {
                Some(parent) => host.ends_with(&format!(".{parent}")),
                None => host == allowed,
            }
        })
    }

    /// Whether a connection may go to `ip`: a public address, or one the list names.
    fn allows_address(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allows_host(&ip.to_string())
    }

    /// Checks a target URL: http(s), a host on the list, and (for a name) at least
    /// one address it may connect to. Returns the URL.
    pub async fn check_target(&self, raw: &str) -> Result<reqwest::Url, Error> {
        if raw.len() > MAX_URL {
            return Err(Error::InvalidRequest(format!(
                "url is at most {MAX_URL} bytes"
            )));
        }
        let url = reqwest::Url::parse(raw)
            .map_err(|e| Error::InvalidRequest(format!("url is not an absolute URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidRequest(
                "url must be http:// or https://".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::InvalidRequest(
                "url must not carry credentials; sign with the secret instead".into(),
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Error::InvalidRequest("url has no host".into()))?
            .to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !self.allows_host(bare) {
            return Err(Error::InvalidRequest(format!(
                "webhook targets are limited to the server's webhook_allow_hosts, and {bare} is not one"
            )));
        }
        if bare.parse::<IpAddr>().is_err() {
            let port = url.port_or_known_default().unwrap_or(80);
            self.addresses(bare, port).await?;
        }
        Ok(url)
    }

    /// The addresses `host` resolves to that a connection may go to; an error if none.
    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::InvalidRequest(format!("{host} does not resolve: {e}")))?
            .collect();
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|addr| self.allows_address(addr.ip()))
            .collect();
        if allowed.is_empty() {
            let seen: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
            return Err(Error::InvalidRequest(format!(
                "{host} resolves to {}, which webhook_allow_hosts does not allow",
                seen.join(", ")
            )));
        }
        Ok(allowed)
    }
}

/// Public unicast addresses: not loopback, private, link-local, shared, reserved,
/// multicast or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves names for deliveries, keeping only the addresses the settings allow.
struct GuardedResolver(Arc<WebhookSettings>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let settings = self.0.clone();
        Box::pin(async move {
            let addrs = settings.addresses(name.as_str(), 0).await.map_err(
                |e| -> Box<dyn std::error::Error + Send + Sync> { e.to_string().into() },
            )?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A registration, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Where deliveries go.
    pub url: String,
    /// The event types delivered.
    pub events: Vec<String>,
    /// The signing secret.
    pub secret: String,
    /// When it was first registered.
    pub created_at: Timestamp,
    /// The last event of the log when it was first registered: delivery starts after.
    #[serde(default)]
    pub start_after: Option<String>,
}

/// One try at delivering one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The delivered event's id (an alert's ends in `/<type>`).
    pub event_id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the try began.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Which try at this event, from 1.
    pub attempt: u32,
    /// `delivered`, `failed` (tried again later) or `given_up` (after 24 h).
    pub outcome: String,
    /// The target's HTTP status, if it answered.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// How long the try took.
    pub duration_ms: u64,
}

/// A webhook's progress through its tenant's log, as kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The last event dealt with.
    pub cursor: Option<String>,
    /// Payloads of the event after `cursor` already delivered (an event may make two:
    /// itself and an alert).
    pub done: usize,
    /// Failed tries at the payload under way.
    pub attempts: u32,
    /// When its first try failed.
    pub failing_since: Option<Timestamp>,
    /// Not before this moment.
    pub next_attempt: Option<Timestamp>,
    /// The time of the last `limit_reached` raised.
    pub last_limit_alert: Option<Timestamp>,
    /// The latest deliveries, newest first.
    pub deliveries: VecDeque<Delivery>,
}

fn config_key(tenant: &TenantId, name: &str) -> String {
    format!("config/{tenant}/{name}")
}

fn state_key(tenant: &TenantId, name: &str) -> String {
    format!("state/{tenant}/{name}")
}

fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Internal(format!("a webhook entry: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("webhook entries serialize")
}

/// A tenant's registration `name`, if any.
pub async fn registration(
    engine: &Engine,
    tenant: &TenantId,
    name: &str,
) -> Result<Option<Registration>, Error> {
    engine
        .webhook_entry(&config_key(tenant, name))
        .await?
        .map(|v| decode(&v))
        .transpose()
}

/// A webhook's progress (empty before its first delivery).
pub async fn progress(engine: &Engine, tenant: &TenantId, name: &str) -> Result<Progress, Error> {
    Ok(engine
        .webhook_entry(&state_key(tenant, name))
        .await?
        .map(|v| decode(&v))
        .transpose()?
        .unwrap_or_default())
}

/// The event types asked for, each known, without repeats, in the order given.
pub fn event_types(asked: Vec<String>) -> Result<Vec<String>, Error> {
    if asked.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "events must name at least one of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut events: Vec<String> = Vec::new();
    for kind in asked {
        if !EVENT_TYPES.contains(&kind.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "unknown event type {kind:?}; the types are {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    Ok(events)
}

/// A signing secret of 16 to 256 characters.
pub fn check_secret(secret: &str) -> Result<(), Error> {
    let len = secret.chars().count();
    if (MIN_SECRET..=MAX_SECRET).contains(&len) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "secret must be {MIN_SECRET} to {MAX_SECRET} characters long, got {len}"
        )))
    }
}

/// Every webhook of a tenant, by name, with its progress.
pub async fn registrations(
    engine: &Engine,
    tenant: &TenantId,
) -> Result<Vec<(String, Registration, Progress)>, Error> {
    let configs = engine.webhook_entries(&format!("config/{tenant}/")).await?;
    let states: BTreeMap<String, Vec<u8>> = engine
        .webhook_entries(&format!("state/{tenant}/"))
        .await?
        .into_iter()
        .collect();
    let mut all = Vec::new();
    for (key, value) in configs {
        let Some(name) = key.rsplit('/').next() else {
            continue;
        };
        let progress = states
            .get(&state_key(tenant, name))
            .map(|v| decode(v))
            .transpose()?
            .unwrap_or_default();
        all.push((name.to_owned(), decode(&value)?, progress));
    }
    Ok(all)
}

/// Registers (or replaces) a webhook; true if it is new. A new one starts after the
/// last event written so far.
pub async fn register(
    engine: &Engine,
    tenant: &TenantId,
    name: &str,
    url: String,
    events: Vec<String>,
    secret: String,
) -> Result<(Registration, bool), Error> {
    let existing = registration(engine, tenant, name).await?;
    let created = existing.is_none();
    let (created_at, start_after) = match existing {
        Some(old) => (old.created_at, old.start_after),
        None => (
            engine.clock().now(),
            engine
                .last_event_id(tenant, Timestamp::from_millis(0))
                .await?,
        ),
    };
    let registration = Registration {
        url,
        events,
        secret,
        created_at,
        start_after,
    };
    engine
        .put_webhook_entry(&config_key(tenant, name), Some(encode(&registration)))
        .await?;
    Ok((registration, created))
}

/// Removes a webhook and its progress; false if there was none.
pub async fn unregister(engine: &Engine, tenant: &TenantId, name: &str) -> Result<bool, Error> {
    let known = registration(engine, tenant, name).await?.is_some();
    if known {
        engine
            .put_webhook_entry(&config_key(tenant, name), None)
            .await?;
    }
    engine
        .put_webhook_entry(&state_key(tenant, name), None)
        .await?;
    Ok(known)
}

/// Removes every webhook of a deleted tenant.
pub async fn forget_tenant(engine: &Engine, tenant: &TenantId) -> Result<(), Error> {
    for prefix in [format!("config/{tenant}/"), format!("state/{tenant}/")] {
        for (key, _) in engine.webhook_entries(&prefix).await? {
            engine.put_webhook_entry(&key, None).await?;
        }
    }
    Ok(())
}

/// The payloads one event makes for a webhook: the event itself if it asks for its
/// type, then an alert it raises.
fn payloads(
    event: &AuditEvent,
    registration: &Registration,
    progress: &Progress,
    limits: Option<Limits>,
) -> Vec<(String, Value)> {
    let wants = |kind: &str| registration.events.iter().any(|e| e == kind);
    let mut out = Vec::new();
    let Ok(Value::Object(body)) = serde_json::to_value(event) else {
        return out;
    };
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if wants(&kind) {
        out.push((kind.clone(), Value::Object(body.clone())));
    }
    let at = event.event.at;
    let alert = |alert: &str, fields: Value| {
        let mut value = json!({
            "id": format!("{}/{alert}", event.id),
            "type": alert,
            "tenant": body.get("tenant"),
            "at": body.get("at"),
        });
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, fields) {
            map.extend(extra);
        }
        (alert.to_owned(), value)
    };
    if kind == "refused"
        && wants("limit_reached")
        && body.get("reason").and_then(Value::as_str) == Some("licence_limit_reached")
        && progress.last_limit_alert.is_none_or(|last| {
            at.as_millis().saturating_sub(last.as_millis()) >= LIMIT_ALERT_EVERY.as_millis() as u64
        })
    {
        out.push(alert(
            "limit_reached",
            json!({"user": body.get("user"), "seats": limits.map(|l| l.seats)}),
        ));
    }
    // Seats are taken one at a time: by a login (concurrent) or an assignment (named).
    let took_seat = kind == "admitted"
        || (kind == "user_assigned" && body.get("assigned") == Some(&Value::Bool(true)));
    if took_seat && wants("near_limit") {
        if let (Some(limits), Some(used)) =
            (limits, body.get("seats_in_use").and_then(Value::as_u64))
        {
            let threshold = limits.threshold();
            if used >= threshold && used.saturating_sub(1) < threshold {
                out.push(alert(
                    "near_limit",
                    json!({"seats": limits.seats, "seats_in_use": used,
                           "alert_at": f64::from(limits.alert_at_ppm) / f64::from(WHOLE_PPM)}),
                ));
            }
        }
    }
    out
}

/// What the alerts read of a tenant's licence.
#[derive(Debug, Clone, Copy)]
struct Limits {
    seats: u32,
    alert_at_ppm: u32,
}

impl Limits {
    fn of(licence: &Licence) -> Option<Limits> {
        Some(Limits {
            seats: licence.model.seats()?,
            alert_at_ppm: licence.policies.alert_at_ppm,
        })
    }

    /// Seats in use at which `near_limit` is raised: the share of the seats, rounded
    /// up, at least one.
    fn threshold(self) -> u64 {
        let ppm = u64::from(self.seats) * u64::from(self.alert_at_ppm);
        ppm.div_ceil(u64::from(WHOLE_PPM)).max(1)
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, unix: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before try `attempts + 1`: 1 s doubling, capped at an hour.
fn backoff(attempts: u32) -> Duration {
    let secs = 1u64 << attempts.saturating_sub(1).min(20);
    Duration::from_secs(secs).min(BACKOFF_CAP)
}

/// One webhook as the deliverer tracks it.
struct Hook {
    registration: Registration,
    progress: Progress,
    /// When its log was last read: the tenant's news count and the news epoch then.
    polled: Option<(u64, u64, tokio::time::Instant)>,
    /// Its last read moved it on: read again, there may be more.
    again: bool,
}

type HookId = (TenantId, String);

/// Starts the deliverer on the current runtime: it runs as long as the engine does.
pub fn start(engine: Engine, settings: Arc<WebhookSettings>) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .dns_resolver(Arc::new(GuardedResolver(settings.clone())))
        .user_agent(concat!("usher/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhooks cannot be delivered: no HTTP client");
            return;
        }
    };
    tokio::spawn(deliver_forever(engine, client, settings));
}

async fn deliver_forever(engine: Engine, client: reqwest::Client, settings: Arc<WebhookSettings>) {
    let holder = node_name();
    let mut hooks: BTreeMap<HookId, Hook> = BTreeMap::new();
    let mut busy: JoinSet<(HookId, Option<Progress>)> = JoinSet::new();
    let mut in_flight: std::collections::BTreeSet<HookId> = Default::default();
    let mut leader = false;
    let mut last_reload: Option<tokio::time::Instant> = None;
    let mut last_lease: Option<tokio::time::Instant> = None;
    let mut ticks = tokio::time::interval(POLL_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each tenant's news since start, and an epoch bumped when news was missed.
    let mut news = engine.live().watch_all();
    let mut heard: HashMap<TenantId, u64> = HashMap::new();
    let mut epoch = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            got = news.recv() => {
                match got {
                    Ok(tenant) => *heard.entry(tenant).or_default() += 1,
                    Err(broadcast::error::RecvError::Lagged(_)) => epoch += 1,
                    // The engine (which holds the sender) is gone: nothing more to do.
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                continue;
            }
            Some(done) = busy.join_next(), if !busy.is_empty() => {
                if let Ok((id, progress)) = done {
                    in_flight.remove(&id);
                    match progress {
                        Some(progress) => {
                            if let Some(hook) = hooks.get_mut(&id) {
                                hook.again = progress.cursor != hook.progress.cursor
                                    || progress.done != hook.progress.done;
                                hook.progress = progress;
                            }
                        }
                        None => {
                            hooks.remove(&id);
                        }
                    }
                }
                continue;
            }
        }
        if last_lease.is_none_or(|at| at.elapsed() >= LEASE_FOR / 3) {
            let held = engine
                .webhook_lease(&holder, LEASE_FOR)
                .await
                .unwrap_or(false);
            last_lease = Some(tokio::time::Instant::now());
            if held != leader {
                leader = held;
                // Whoever delivered before may have moved on: read progress again.
                hooks.clear();
                last_reload = None;
            }
        }
        if !leader {
            continue;
        }
        if last_reload.is_none_or(|at| at.elapsed() >= RELOAD_EVERY) {
            if let Ok(found) = load(&engine, &hooks, &in_flight).await {
                hooks = found;
                last_reload = Some(tokio::time::Instant::now());
            }
        }
        let now = engine.clock().now();
        for (id, hook) in hooks.iter_mut() {
            let news = heard.get(&id.0).copied().unwrap_or(0);
            let due = match hook.progress.next_attempt {
                Some(at) => at <= now,
                None => {
                    hook.again
                        || hook.polled.is_none_or(|(seen, seen_epoch, at)| {
                            seen != news || seen_epoch != epoch || at.elapsed() >= READ_ANYWAY_EVERY
                        })
                }
            };
            if !due || in_flight.contains(id) {
                continue;
            }
            hook.polled = Some((news, epoch, tokio::time::Instant::now()));
            hook.again = false;
            in_flight.insert(id.clone());
            let (engine, client, settings, id, registration, progress) = (
                engine.clone(),
                client.clone(),
                settings.clone(),
                id.clone(),
                hook.registration.clone(),
                hook.progress.clone(),
            );
            busy.spawn(async move {
                let progress =
                    deliver(&engine, &client, &settings, &id, &registration, progress).await;
                (id, progress)
            });
        }
    }
}

/// Every registration with its progress; a webhook under way keeps the progress the
/// deliverer has (it is the newer).
async fn load(
    engine: &Engine,
    current: &BTreeMap<HookId, Hook>,
    in_flight: &std::collections::BTreeSet<HookId>,
) -> Result<BTreeMap<HookId, Hook>, Error> {
    let configs = engine.webhook_entries("config/").await?;
    let states: BTreeMap<String, Vec<u8>> = engine
        .webhook_entries("state/")
        .await?
        .into_iter()
        .collect();
    let mut hooks = BTreeMap::new();
    for (key, value) in configs {
        let Some((tenant, name)) = key
            .strip_prefix("config/")
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let Ok(tenant) = TenantId::parse(tenant) else {
            continue;
        };
        let id = (tenant, name.to_owned());
        let Ok(registration) = decode::<Registration>(&value) else {
            tracing::warn!(webhook = %key, "an unreadable webhook registration is skipped");
            continue;
        };
        let known = current.get(&id);
        let progress = match known {
            Some(hook) if in_flight.contains(&id) => hook.progress.clone(),
            _ => states
                .get(&state_key(&id.0, &id.1))
                .and_then(|v| decode(v).ok())
                .unwrap_or_default(),
        };
        let hook = Hook {
            registration,
            progress,
            polled: known.and_then(|hook| hook.polled),
            again: known.is_some_and(|hook| hook.again),
        };
        hooks.insert(id, hook);
    }
    Ok(hooks)
}

/// A name for this node's lease: host and process, and a random part.
fn node_name() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("{}-{}", std::process::id(), hex::encode(bytes))
}

/// Delivers what is due of one webhook; returns its progress, or None once the
/// webhook is gone (its tenant deleted).
async fn deliver(
    engine: &Engine,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    id: &HookId,
    registration: &Registration,
    mut progress: Progress,
) -> Option<Progress> {
    let (tenant, name) = id;
    let cursor = progress
        .cursor
        .clone()
        .or_else(|| registration.start_after.clone());
    let query = EventQuery {
        since: if cursor.is_some() {
            Timestamp::from_millis(0)
        } else {
            registration.created_at
        },
        cursor,
        limit: PAGE,
    };
    let page = match engine.events(tenant, &query).await {
        Ok(page) => page,
        Err(Error::TenantNotFound) => {
            let _ = unregister(engine, tenant, name).await;
            return None;
        }
        Err(_) => return Some(progress),
    };
    if page.events.is_empty() {
        return Some(progress);
    }
    let limits = match engine.licence(tenant).await {
        Ok(licence) => Limits::of(&licence),
        Err(Error::TenantNotFound) => None,
        Err(_) => return Some(progress),
    };
    let before = progress.clone();
    for event in &page.events {
        let made = payloads(event, registration, &progress, limits);
        while progress.done < made.len() {
            let (kind, body) = &made[progress.done];
            let outcome = post(
                engine,
                client,
                settings,
                registration,
                kind,
                body,
                &mut progress,
            )
            .await;
            if !outcome {
                save(engine, tenant, name, &progress).await;
                return Some(progress);
            }
            if kind == "limit_reached" {
                progress.last_limit_alert = Some(event.event.at);
            }
            progress.done += 1;
            // Acknowledged: recorded before the next, so it is not sent again.
            save(engine, tenant, name, &progress).await;
        }
        progress.cursor = Some(event.id.clone());
        progress.done = 0;
    }
    if progress != before {
        save(engine, tenant, name, &progress).await;
    }
    Some(progress)
}

/// One try at one payload; true once the target acknowledged it (or it was given up).
#[allow(clippy::too_many_arguments)]
async fn post(
    engine: &Engine,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    registration: &Registration,
    kind: &str,
    body: &Value,
    progress: &mut Progress,
) -> bool {
    let now = engine.clock().now();
    let event_id = body["id"].as_str().unwrap_or_default().to_owned();
    let bytes = serde_json::to_vec(body).expect("JSON serializes");
    let unix = chrono::Utc::now().timestamp().max(0) as u64;
    let started = std::time::Instant::now();
    // The allowed hosts may have changed since the webhook was registered.
    let host = reqwest::Url::parse(&registration.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let answer = if !settings.allows_host(bare) {
        Err(format!(
            "{bare} is no longer one of the server's webhook_allow_hosts"
        ))
    } else {
        client
            .post(&registration.url)
            .header("content-type", "application/json")
            .header(
                "usher-signature",
                signature(&registration.secret, unix, &bytes),
            )
            .header("usher-event", kind)
            .header("usher-event-id", &event_id)
            .body(bytes)
            .send()
            .await
            .map_err(|e| describe(&e))
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let (status, error) = match answer {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => (
            Some(response.status().as_u16()),
            Some(format!("the target answered {}", response.status())),
        ),
        Err(e) => (None, Some(e)),
    };
    let attempt = progress.attempts + 1;
    let delivered = error.is_none();
    let given_up = !delivered
        && progress.failing_since.is_some_and(|since| {
            now.as_millis().saturating_sub(since.as_millis()) >= RETRY_FOR.as_millis() as u64
        });
    let outcome = if delivered {
        "delivered"
    } else if given_up {
        "given_up"
    } else {
        "failed"
    };
    progress.deliveries.push_front(Delivery {
        event_id,
        kind: kind.to_owned(),
        at: now,
        attempt,
        outcome: outcome.into(),
        status,
        error,
        duration_ms,
    });
    progress.deliveries.truncate(DELIVERIES_KEPT);
    metrics::counter!("usher_webhook_deliveries_total", "outcome" => outcome).increment(1);
    if delivered || given_up {
        progress.attempts = 0;
        progress.failing_since = None;
        progress.next_attempt = None;
        return true;
    }
    progress.attempts = attempt;
    progress.failing_since.get_or_insert(now);
    let wait = backoff(attempt);
    progress.next_attempt = Some(Timestamp::from_millis(
        now.as_millis() + wait.as_millis() as u64,
    ));
    false
}

/// A transport error in a few words: what failed and its innermost cause (a refused
/// address says why).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if error.is_connect() {
        format!("could not connect: {cause}")
    } else {
        cause.to_string()
    }
}

async fn save(engine: &Engine, tenant: &TenantId, name: &str, progress: &Progress) {
    if let Err(e) = engine
        .put_webhook_entry(&state_key(tenant, name), Some(encode(progress)))
        .await
    {
        tracing::warn!(tenant = %tenant, webhook = name, error = %e, "webhook progress not saved");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // The expected value from `printf '1700000000.{"a":1}' | openssl dgst -sha256
        // -hmac whsec_test_secret_1234`.
        assert_eq!(
            signature("whsec_test_secret_1234", 1_700_000_000, b"{\"a\":1}"),
            "t=1700000000,v1=09b3dbd0d037bc391fb094acc8a79acc8199cdce9440582d74d96e9f4688d5e6"
        );
    }

    #[test]
    fn only_listed_hosts_and_public_or_listed_addresses_are_allowed() {
        let settings = WebhookSettings {
            allow_hosts: vec![
                "hooks.example.com".into(),
                "*.acme.test".into(),
                "127.0.0.1".into(),
            ],
        };
        assert!(settings.allows_host("hooks.example.com"));
        assert!(settings.allows_host("a.acme.test"));
        assert!(!settings.allows_host("acme.test"));
        assert!(!settings.allows_host("evil.com"));
        assert!(settings.allows_address("127.0.0.1".parse().unwrap()));
        assert!(!settings.allows_address("127.0.0.2".parse().unwrap()));
        assert!(!settings.allows_address("10.1.2.3".parse().unwrap()));
        assert!(!settings.allows_address("169.254.169.254".parse().unwrap()));
        assert!(!settings.allows_address("::1".parse().unwrap()));
        assert!(!settings.allows_address("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!settings.allows_address("fd00::1".parse().unwrap()));
        assert!(settings.allows_address("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn backoff_doubles_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), BACKOFF_CAP);
    }
}
