//! `usher admin`: an operator's terminal client for a running server, in the manner of
//! `lmstat` and `lmremove`. Tables for people, `--json` for scripts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::settings::client_admin_token;

/// Flags of `usher admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The server's URL.
    #[arg(long, env = "USHER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token (or a tenant API key for that tenant's commands) [default: the
    /// one in DATA_DIR/admin-token].
    #[arg(long, env = "USHER_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The local server's data dir, to read its admin-token file when no token is given
    /// [default: ./usher-data].
    #[arg(long, env = "USHER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Sessions or users asked for per request; longer lists are fetched page by page.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List tenants with seats in use and today's usage.
    Tenants,
    /// Show a tenant's licence and who holds its seats.
    Show {
        /// Tenant id.
        tenant: String,
    },
    /// List a tenant's user accounts (and, for named licences, who has a seat).
    Users {
        /// Tenant id.
        tenant: String,
    },
    /// List a tenant's waitlist, head first (`on_limit = "queue"`).
    Queue {
        /// Tenant id.
        tenant: String,
    },
    /// Force-release one session (its id from `show`).
    Release {
        /// Tenant id.
        tenant: String,
        /// Session id.
        session: String,
    },
    /// End every session of a user.
    Logout {
        /// Tenant id.
        tenant: String,
        /// User id.
        user: String,
    },
    /// Create a tenant or change its licence.
    SetLicence {
        /// Tenant id.
        tenant: String,
        /// named, concurrent or records.
        #[arg(long)]
        model: String,
        /// Seats (named, concurrent).
        #[arg(long)]
        seats: Option<i64>,
        /// user or session (concurrent).
        #[arg(long)]
        seat_per: Option<String>,
        /// Idle timeout in seconds.
        #[arg(long)]
        idle_timeout_secs: Option<i64>,
        /// Account limit.
        #[arg(long)]
        max_users: Option<i64>,
        /// Concurrent: the share of the seats admitted past them, 0 to 1.
        #[arg(long)]
        overage: Option<f64>,
        /// Concurrent: refuse, queue or displace_idlest, what a login at the limit
        /// does.
        #[arg(long)]
        on_limit: Option<String>,
        /// Concurrent, queueing: seconds a freed seat is held for the head of the line.
        #[arg(long)]
        queue_claim_secs: Option<i64>,
        /// Concurrent: seconds a seat is held before it may be displaced.
        #[arg(long)]
        min_hold_secs: Option<i64>,
        /// Live sessions one user may hold at once.
        #[arg(long)]
        max_sessions_per_user: Option<i64>,
        /// Concurrent: seconds a released seat stays its user's, for a page reload.
        #[arg(long)]
        reload_grace_secs: Option<i64>,
        /// Concurrent: seats only a group's members may take, as GROUP=SEATS (repeat for
        /// more groups).
        #[arg(long, value_name = "GROUP=SEATS", value_parser = group_seats)]
        reserve: Vec<(String, i64)>,
        /// Concurrent: the most seats a group's members may hold at once, as
        /// GROUP=SEATS (repeat for more groups).
        #[arg(long, value_name = "GROUP=SEATS", value_parser = group_seats)]
        group_max: Vec<(String, i64)>,
        /// Named, concurrent: the share of the seats whose crossing raises webhooks'
        /// near_limit alert (above 0, at most 1; default 0.9).
        #[arg(long)]
        alert_at: Option<f64>,
        /// Say what the change would do, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Register users, or assign them named seats.
    Assign {
        /// Tenant id.
        tenant: String,
        /// User ids.
        #[arg(required = true)]
        users: Vec<String>,
        /// Make these the users' groups, comma-separated (`--groups ""`: none). Left
        /// out, their groups stay as they are.
        #[arg(long, value_name = "GROUP,...")]
        groups: Option<String>,
    },
    /// Remove users (freeing named seats and ending their sessions).
    Unassign {
        /// Tenant id.
        tenant: String,
        /// User ids.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// The usage report per day.
    Usage {
        /// Tenant id.
        tenant: String,
        /// Days to show.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Show the record count, or report one with --set.
    Records {
        /// Tenant id.
        tenant: String,
        /// Report this count.
        #[arg(long)]
        set: Option<u64>,
    },
    /// Issue a new API key for a tenant (the old one stops working).
    RotateKey {
        /// Tenant id.
        tenant: String,
    },
    /// Delete a tenant, ending its sessions.
    DeleteTenant {
        /// Tenant id.
        tenant: String,
    },
    /// Register a webhook, or replace one of the same name.
    SetWebhook {
        /// Tenant id.
        tenant: String,
        /// The webhook's name.
        name: String,
        /// Where deliveries go (a host of the server's webhook_allow_hosts).
        #[arg(long)]
        url: String,
        /// An event type to deliver (repeat for more), e.g. refused, limit_reached.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// The signing secret, 16 to 256 characters.
        #[arg(long, env = "USHER_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// Show a webhook and its latest deliveries.
    Webhook {
        /// Tenant id.
        tenant: String,
        /// The webhook's name.
        name: String,
    },
    /// Remove a webhook.
    RemoveWebhook {
        /// Tenant id.
        tenant: String,
        /// The webhook's name.
        name: String,
    },
}

/// Runs one admin command.
pub fn run(args: AdminArgs) -> Result<(), String> {
    let token = client_admin_token(args.token.as_deref(), args.data_dir.as_deref())?;
    actix_web::rt::System::new().block_on(async move {
        let client = Client {
            http: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
            url: args.url.trim_end_matches('/').to_string(),
            token,
            page_size: args.page_size,
        };
        let output = execute(&client, &args.command)
            .await
            .map_err(|e| e.in_context(&args.command, &client.url))?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&output.json).unwrap_or_default()
            );
        } else {
            println!("{}", output.text);
        }
        Ok(())
    })
}

struct Output {
    json: Value,
    text: String,
}

impl Output {
    fn same(json: Value, text: impl Into<String>) -> Self {
        Output {
            json,
            text: text.into(),
        }
    }
}

struct Client {
    http: awc::Client,
    url: String,
    token: String,
    page_size: u16,
}

/// Why a command failed: the server's refusal, or no answer at all.
#[derive(Debug)]
enum Failure {
    /// The server answered with an error.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No usable answer.
    Other(String),
    /// Part of a list of users was done before one failed.
    Partly {
        verb: &'static str,
        user: String,
        done: Vec<String>,
        why: Box<Failure>,
    },
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Other(message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused {
                status,
                code,
                message,
            } => write!(f, "{status} {code}: {message}"),
            Failure::Other(message) => f.write_str(message),
            Failure::Partly {
                verb,
                user,
                done,
                why,
            } => {
                write!(f, "cannot {verb} {user}: {why}; ")?;
                let past = if *verb == "assign" {
                    "assigned"
                } else {
                    "removed"
                };
                if done.is_empty() {
                    write!(f, "nothing was {past}")
                } else {
                    write!(f, "{past} before it: {}", done.join(", "))
                }
            }
        }
    }
}

impl Failure {
    /// The message for the operator: it names the tenant the command was about, and
    /// says so plainly when that tenant does not exist.
    fn in_context(&self, command: &AdminCommand, url: &str) -> String {
        let Some(tenant) = command.tenant() else {
            return self.to_string();
        };
        let refusal = match self {
            Failure::Partly { why, .. } => why.as_ref(),
            other => other,
        };
        if let Failure::Refused { code, .. } = refusal {
            if code == "tenant_not_found" {
                return format!(
                    "{tenant}: there is no tenant with the id {tenant} on {url} (404 tenant_not_found); \
                     `usher admin tenants` lists them"
                );
            }
        }
        format!("{tenant}: {self}")
    }
}

impl AdminCommand {
    /// The tenant the command is about, if one.
    fn tenant(&self) -> Option<&str> {
        match self {
            AdminCommand::Tenants => None,
            AdminCommand::Show { tenant }
            | AdminCommand::Users { tenant }
            | AdminCommand::Queue { tenant }
            | AdminCommand::Release { tenant, .. }
            | AdminCommand::Logout { tenant, .. }
            | AdminCommand::SetLicence { tenant, .. }
            | AdminCommand::Assign { tenant, .. }
            | AdminCommand::Unassign { tenant, .. }
            | AdminCommand::Usage { tenant, .. }
            | AdminCommand::Records { tenant, .. }
            | AdminCommand::RotateKey { tenant }
            | AdminCommand::DeleteTenant { tenant }
            | AdminCommand::SetWebhook { tenant, .. }
            | AdminCommand::Webhook { tenant, .. }
            | AdminCommand::RemoveWebhook { tenant, .. } => Some(tenant),
        }
    }
}

/// What a path segment must escape: all but letters, digits and `-._~@`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// A path segment: ids are plain, but whatever was typed must stay one segment.
fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// `/v1/tenants/{tenant}` and what follows it.
fn tenant_path(tenant: &str, rest: &str) -> String {
    format!("/v1/tenants/{}{rest}", segment(tenant))
}

impl Client {
    /// Every item of a paged list (`{"<key>": [...], "next_cursor": ...}`), page by
    /// page until the last.
    async fn list_all(&self, path: &str, key: &str) -> Result<Vec<Value>, Failure> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page_path = format!("{path}?limit={}", self.page_size);
            if let Some(cursor) = &cursor {
                page_path.push_str(&format!("&cursor={}", segment(cursor)));
            }
            let mut page = self.call("GET", &page_path, None).await?;
            if let Some(list) = page[key].as_array_mut() {
                items.append(list);
            }
            match page["next_cursor"].as_str() {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_string()),
                _ => return Ok(items),
            }
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        let bytes = response
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("the server's answer is not JSON: {e}"))?
        };
        if response.status().is_success() {
            Ok(value)
        } else {
            Err(Failure::Refused {
                status: response.status().as_u16(),
                code: value["error"].as_str().unwrap_or("error").to_string(),
                message: value["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }
}

/// How a licence's seats read: "3 seats", or "no seat limit" for records.
fn seats_of(view: &Value) -> String {
    match view["seats"].as_u64() {
        None => "no seat limit".into(),
        Some(seats) => plural(seats, "seat", "seats"),
    }
}

/// "2 of 3 seats in use", or "3 in use · no seat limit" for records.
fn in_use_of(view: &Value) -> String {
    let in_use = text(&view["seats_in_use"]);
    match view["seats"].as_u64() {
        None => format!("{in_use} in use · no seat limit"),
        Some(seats) => format!("{in_use} of {} in use", plural(seats, "seat", "seats")),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "concurrent licence, 5 seats, idle timeout 600s", then the seat policies the
/// licence sets: "overage 0.2, on limit displace_idlest, min hold 60s, at most 3
/// sessions per user, reserve finance=2, group max volunteers=3".
fn licence_of(view: &Value) -> String {
    let mut out = format!(
        "{} licence, {}, idle timeout {}s",
        text(&view["model"]),
        seats_of(view),
        text(&view["idle_timeout_secs"])
    );
    if let Some(overage) = view.get("overage").filter(|v| !v.is_null()) {
        out.push_str(&format!(", overage {}", text(overage)));
    }
    if let Some(on_limit) = view.get("on_limit").filter(|v| !v.is_null()) {
        out.push_str(&format!(", on limit {}", text(on_limit)));
    }
    if let Some(secs) = view.get("min_hold_secs").filter(|v| !v.is_null()) {
        out.push_str(&format!(", min hold {}s", text(secs)));
    }
    if let Some(secs) = view["queue_claim_secs"].as_u64() {
        out.push_str(&format!(", claim window {secs}s"));
    }
    if let Some(cap) = view["max_sessions_per_user"].as_u64() {
        out.push_str(&format!(
            ", at most {} per user",
            plural(cap, "session", "sessions")
        ));
    }
    if let Some(secs) = view["reload_grace_secs"].as_u64() {
        out.push_str(&format!(", reload grace {secs}s"));
    }
    for (key, says) in [("reserve", "reserve"), ("group_max", "group max")] {
        if let Some(groups) = view[key].as_object().filter(|g| !g.is_empty()) {
            let each: Vec<String> = groups
                .iter()
                .map(|(g, n)| format!("{g}={}", text(n)))
                .collect();
            out.push_str(&format!(", {says} {}", each.join(" ")));
        }
    }
    out
}

/// `GROUP=SEATS` of `--reserve` and `--group-max`.
fn group_seats(arg: &str) -> Result<(String, i64), String> {
    let (group, seats) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected GROUP=SEATS, got {arg:?}"))?;
    let seats = seats
        .parse()
        .map_err(|_| format!("the seats of {group:?} must be a whole number, got {seats:?}"))?;
    Ok((group.to_string(), seats))
}

/// What `set-licence --dry-run` prints: the licence as it would be, and what the
/// change would do to what the tenant holds now.
fn dry_run_text(tenant: &str, answer: &Value) -> String {
    let licence = licence_of(answer);
    if answer["creates"].as_bool() == Some(true) {
        return format!(
            "{tenant}: dry run, nothing changed: would create the tenant with a {licence}"
        );
    }
    let count = |key: &str| answer[key].as_u64().unwrap_or(0);
    let held = format!(
        "{} in use, {}, {}",
        plural(count("seats_in_use"), "seat", "seats"),
        plural(count("sessions"), "session", "sessions"),
        plural(count("users"), "user", "users"),
    );
    let effects = &answer["effects"];
    let over =
        |key: &str, one: &str, many: &str, past: &str| match effects[key].as_u64().unwrap_or(0) {
            0 => format!("no {one} {past}"),
            n => format!("{} {past}", plural(n, one, many)),
        };
    let lost: Vec<String> = effects["named_seats_lost"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let lost = match lost.len() {
        0 => "no named seat lost".to_string(),
        n => format!(
            "{} lost ({})",
            plural(n as u64, "named seat", "named seats"),
            lost.join(", ")
        ),
    };
    let ended = match effects["tickets_ended"].as_u64().unwrap_or(0) {
        0 => String::new(),
        n => format!("; {} in line ended", plural(n, "ticket", "tickets")),
    };
    format!(
        "{tenant}: dry run, nothing changed: {licence}; {held}\n{tenant}: {}; {}; {lost}{ended}",
        over(
            "seats_over_limit",
            "seat",
            "seats",
            "held past the new limit"
        ),
        over("users_over_limit", "account", "accounts", "past max_users"),
    )
}

async fn execute(client: &Client, command: &AdminCommand) -> Result<Output, Failure> {
    Ok(match command {
        AdminCommand::Tenants => {
            let list = client.call("GET", "/v1/tenants", None).await?;
            let mut table = table(&[
                "TENANT",
                "MODEL",
                "SEATS",
                "IN USE",
                "SESSIONS",
                "USERS",
                "RECORDS",
                "LOGINS TODAY",
                "REFUSED TODAY",
            ]);
            for t in list["tenants"].as_array().into_iter().flatten() {
                let refused = &t["today"]["refusals"];
                // Every reason the report counts, whatever the server's version.
                let refused_total: u64 = refused
                    .as_object()
                    .into_iter()
                    .flat_map(|reasons| reasons.values())
                    .filter_map(Value::as_u64)
                    .sum();
                table.add_row(vec![
                    text(&t["tenant"]),
                    text(&t["model"]),
                    if t["seats"].is_null() {
                        "no limit".into()
                    } else {
                        text(&t["seats"])
                    },
                    text(&t["seats_in_use"]),
                    text(&t["sessions"]),
                    text(&t["users"]),
                    text(&t["records"]),
                    text(&t["today"]["logins"]),
                    refused_total.to_string(),
                ]);
            }
            if list["tenants"].as_array().is_none_or(|t| t.is_empty()) {
                return Ok(Output::same(
                    list,
                    "no tenants yet; `usher admin set-licence TENANT --model …` creates one",
                ));
            }
            Output::same(list, table.to_string())
        }
        AdminCommand::Show { tenant } => {
            let view = client.call("GET", &tenant_path(tenant, ""), None).await?;
            let sessions = client
                .list_all(&tenant_path(tenant, "/sessions"), "sessions")
                .await?;
            let mut out = format!(
                "{}: {} licence, {}, {}, {}, idle timeout {}s\n",
                text(&view["tenant"]),
                text(&view["model"]),
                in_use_of(&view),
                plural(
                    view["sessions"].as_u64().unwrap_or(0),
                    "session",
                    "sessions"
                ),
                plural(view["users"].as_u64().unwrap_or(0), "user", "users"),
                text(&view["idle_timeout_secs"]),
            );
            if sessions.is_empty() {
                out.push_str(&format!("{tenant}: no sessions"));
                return Ok(Output {
                    json: json!({"tenant": view, "sessions": sessions}),
                    text: out,
                });
            }
            let mut table = table(&[
                "SESSION",
                "USER",
                "CLIENT",
                "STARTED",
                "LAST HEARTBEAT",
                "EXPIRES",
            ]);
            for s in &sessions {
                table.add_row(vec![
                    text(&s["id"]),
                    text(&s["user"]),
                    text(&s["client"]),
                    text(&s["started_at"]),
                    text(&s["last_heartbeat_at"]),
                    text(&s["expires_at"]),
                ]);
            }
            out.push_str(&table.to_string());
            Output {
                json: json!({"tenant": view, "sessions": sessions}),
                text: out,
            }
        }
        AdminCommand::Users { tenant } => {
            let users = client
                .list_all(&tenant_path(tenant, "/users"), "users")
                .await?;
            if users.is_empty() {
                return Ok(Output::same(
                    json!({"users": users}),
                    format!("{tenant}: no users"),
                ));
            }
            let mut table = table(&["USER", "ASSIGNED", "SESSIONS", "GROUPS"]);
            for u in &users {
                let groups = groups_of(u);
                table.add_row(vec![
                    text(&u["user"]),
                    if u["assigned"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                    text(&u["sessions"]),
                    groups.join(", "),
                ]);
            }
            let heading = format!(
                "{tenant}: {}\n",
                plural(users.len() as u64, "user", "users")
            );
            Output::same(json!({"users": users}), heading + &table.to_string())
        }
        AdminCommand::Queue { tenant } => {
            let answer = client
                .call("GET", &tenant_path(tenant, "/queue"), None)
                .await?;
            let line = answer["queue"].as_array().cloned().unwrap_or_default();
            if line.is_empty() {
                return Ok(Output::same(answer, format!("{tenant}: nobody in line")));
            }
            let ready = line.iter().filter(|t| t["position"] == 0).count() as u64;
            let mut table = table(&["POSITION", "TICKET", "USER", "CLIENT", "QUEUED", "CLAIM BY"]);
            for t in &line {
                let position = match t["position"].as_u64() {
                    Some(0) => "ready".to_string(),
                    _ => text(&t["position"]),
                };
                table.add_row(vec![
                    position,
                    text(&t["ticket"]),
                    text(&t["user"]),
                    text(&t["client"]),
                    text(&t["queued_at"]),
                    text(&t["claim_by"]),
                ]);
            }
            let heading = format!(
                "{tenant}: {} in line, {} held for the head\n",
                line.len(),
                plural(ready, "seat", "seats")
            );
            Output::same(answer, heading + &table.to_string())
        }
        AdminCommand::Release { tenant, session } => {
            client
                .call(
                    "DELETE",
                    &tenant_path(tenant, &format!("/sessions/{}", segment(session))),
                    None,
                )
                .await?;
            Output::same(
                json!({"released": session}),
                format!("{tenant}: released session {session}"),
            )
        }
        AdminCommand::Logout { tenant, user } => {
            let answer = client
                .call(
                    "POST",
                    &tenant_path(tenant, &format!("/users/{}/logout", segment(user))),
                    None,
                )
                .await?;
            let ended = plural(
                answer["sessions_ended"].as_u64().unwrap_or(0),
                "session",
                "sessions",
            );
            Output::same(
                answer,
                format!("{tenant}: logged {user} out: {ended} ended"),
            )
        }
        AdminCommand::SetLicence {
            tenant,
            model,
            seats,
            seat_per,
            idle_timeout_secs,
            max_users,
            overage,
            on_limit,
            queue_claim_secs,
            min_hold_secs,
            max_sessions_per_user,
            reload_grace_secs,
            reserve,
            group_max,
            alert_at,
            dry_run,
        } => {
            let mut body = json!({"model": model});
            for (key, groups) in [("reserve", reserve), ("group_max", group_max)] {
                if !groups.is_empty() {
                    body[key] = groups
                        .iter()
                        .map(|(g, n)| (g.clone(), Value::from(*n)))
                        .collect::<serde_json::Map<_, _>>()
                        .into();
                }
            }
            for (key, value) in [
                ("seats", seats.map(Value::from)),
                ("seat_per", seat_per.clone().map(Value::from)),
                ("idle_timeout_secs", idle_timeout_secs.map(Value::from)),
                ("max_users", max_users.map(Value::from)),
                ("overage", overage.map(Value::from)),
                ("on_limit", on_limit.clone().map(Value::from)),
                ("queue_claim_secs", queue_claim_secs.map(Value::from)),
                ("min_hold_secs", min_hold_secs.map(Value::from)),
                (
                    "max_sessions_per_user",
                    max_sessions_per_user.map(Value::from),
                ),
                ("reload_grace_secs", reload_grace_secs.map(Value::from)),
                ("alert_at", alert_at.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            if *dry_run {
                let answer = client
                    .call("PUT", &tenant_path(tenant, "?dry_run=true"), Some(body))
                    .await?;
                let text_out = dry_run_text(tenant, &answer);
                return Ok(Output::same(answer, text_out));
            }
            let answer = client
                .call("PUT", &tenant_path(tenant, ""), Some(body))
                .await?;
            let mut text_out = format!("{}: {}", text(&answer["tenant"]), licence_of(&answer));
            if let Some(key) = answer["api_key"].as_str() {
                text_out.push_str(&format!("\n{tenant}: created; API key (shown once): {key}"));
            }
            Output::same(answer, text_out)
        }
        AdminCommand::Assign {
            tenant,
            users,
            groups,
        } => {
            let body = groups.as_ref().map(|list| {
                let groups: Vec<&str> = list.split(',').filter(|g| !g.is_empty()).collect();
                json!({ "groups": groups })
            });
            let mut results = Vec::new();
            for user in users {
                let path = tenant_path(tenant, &format!("/users/{}", segment(user)));
                match client.call("PUT", &path, body.clone()).await {
                    Ok(answer) => results.push(answer),
                    Err(why) => {
                        return Err(Failure::Partly {
                            verb: "assign",
                            user: user.clone(),
                            done: results.iter().map(|u| text(&u["user"])).collect(),
                            why: Box::new(why),
                        })
                    }
                }
            }
            let text_out = results
                .iter()
                .map(|u| {
                    let how = if u["assigned"].as_bool() == Some(true) {
                        "assigned a named seat"
                    } else {
                        "registered"
                    };
                    let groups = groups_of(u);
                    let of = if groups.is_empty() {
                        String::new()
                    } else {
                        format!(", in {}", groups.join(", "))
                    };
                    format!("{tenant}: {} {how}{of}", text(&u["user"]))
                })
                .collect::<Vec<_>>()
                .join("\n");
            Output::same(json!({"users": results}), text_out)
        }
        AdminCommand::Unassign { tenant, users } => {
            for (done, user) in users.iter().enumerate() {
                let path = tenant_path(tenant, &format!("/users/{}", segment(user)));
                if let Err(why) = client.call("DELETE", &path, None).await {
                    return Err(Failure::Partly {
                        verb: "remove",
                        user: user.clone(),
                        done: users[..done].to_vec(),
                        why: Box::new(why),
                    });
                }
            }
            Output::same(
                json!({"removed": users}),
                format!("{tenant}: removed {}", users.join(", ")),
            )
        }
        AdminCommand::Usage { tenant, days } => {
            let report = client
                .call(
                    "GET",
                    &tenant_path(tenant, &format!("/usage?days={days}")),
                    None,
                )
                .await?;
            let mut table = table(&[
                "DAY",
                "PEAK SEATS",
                "LOGINS",
                "REFUSED (LIMIT)",
                "REFUSED (NOT LICENSED)",
                "REFUSED (USER LIMIT)",
                "EXPIRIES",
                "PEAK RECORDS",
            ]);
            for d in report["days"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    text(&d["day"]),
                    text(&d["peak_seats_in_use"]),
                    text(&d["logins"]),
                    text(&d["refusals"]["licence_limit_reached"]),
                    text(&d["refusals"]["user_not_licensed"]),
                    text(&d["refusals"]["user_limit_reached"]),
                    text(&d["expiries"]),
                    text(&d["peak_records"]),
                ]);
            }
            let heading = format!(
                "{tenant}: usage per day, {}\n",
                plural(u64::from(*days), "day", "days")
            );
            Output::same(report, heading + &table.to_string())
        }
        AdminCommand::Records { tenant, set } => {
            let path = tenant_path(tenant, "/records");
            let answer = match set {
                Some(count) => {
                    client
                        .call("PUT", &path, Some(json!({"count": count})))
                        .await?
                }
                None => client.call("GET", &path, None).await?,
            };
            let text_out = format!(
                "{tenant}: {} records (peak today {}, peak this month {})",
                text(&answer["count"]),
                text(&answer["peak_today"]),
                text(&answer["peak_month"])
            );
            Output::same(answer, text_out)
        }
        AdminCommand::RotateKey { tenant } => {
            let answer = client
                .call("POST", &tenant_path(tenant, "/api-key"), None)
                .await?;
            let text_out = format!(
                "{tenant}: new API key (shown once): {}",
                text(&answer["api_key"])
            );
            Output::same(answer, text_out)
        }
        AdminCommand::DeleteTenant { tenant } => {
            client
                .call("DELETE", &tenant_path(tenant, ""), None)
                .await?;
            Output::same(json!({"deleted": tenant}), format!("{tenant}: deleted"))
        }
        AdminCommand::SetWebhook {
            tenant,
            name,
            url,
            events,
            secret,
        } => {
            let body = json!({"url": url, "events": events, "secret": secret});
            let path = tenant_path(tenant, &format!("/webhooks/{}", segment(name)));
            let answer = client.call("PUT", &path, Some(body)).await?;
            let text_out = format!(
                "{tenant}: webhook {name} delivers {} to {}",
                event_list(&answer),
                text(&answer["url"])
            );
            Output::same(answer, text_out)
        }
        AdminCommand::Webhook { tenant, name } => {
            let path = tenant_path(tenant, &format!("/webhooks/{}", segment(name)));
            let view = client.call("GET", &path, None).await?;
            let deliveries = client
                .call("GET", &format!("{path}/deliveries"), None)
                .await?;
            let mut text_out = format!(
                "{tenant}: webhook {name} delivers {} to {}",
                event_list(&view),
                text(&view["url"])
            );
            if let Some(since) = view["failing_since"].as_str() {
                text_out.push_str(&format!(
                    "\n{tenant}: failing since {since}; next try at {}",
                    text(&view["next_attempt"])
                ));
            }
            let list = deliveries["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if list.is_empty() {
                text_out.push_str(&format!("\n{tenant}: no deliveries yet"));
            } else {
                let mut rows = table(&["at", "event", "type", "try", "outcome", "status", "error"]);
                for d in &list {
                    rows.add_row(vec![
                        text(&d["at"]),
                        text(&d["event_id"]),
                        text(&d["type"]),
                        text(&d["attempt"]),
                        text(&d["outcome"]),
                        text(&d["status"]),
                        text(&d["error"]),
                    ]);
                }
                text_out.push_str(&format!("\n{rows}"));
            }
            Output::same(json!({"webhook": view, "deliveries": list}), text_out)
        }
        AdminCommand::RemoveWebhook { tenant, name } => {
            let path = tenant_path(tenant, &format!("/webhooks/{}", segment(name)));
            client.call("DELETE", &path, None).await?;
            Output::same(
                json!({"removed": name}),
                format!("{tenant}: webhook {name} removed"),
            )
        }
    })
}

/// A webhook's event types, comma-separated.
fn event_list(view: &Value) -> String {
    view["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

/// A user view's groups, as text.
fn groups_of(user: &Value) -> Vec<String> {
    user["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
