//! `usher admin`: an operator's terminal client for a running server, in the manner of
//! `lmstat` and `lmremove`. Tables for people, `--json` for scripts.

use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;
use serde_json::{json, Value};

/// Flags of `usher admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The server's URL.
    #[arg(long, env = "USHER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin token (or a tenant API key for that tenant's commands).
    #[arg(long, env = "USHER_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
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
    },
    /// Register users, or assign them named seats.
    Assign {
        /// Tenant id.
        tenant: String,
        /// User ids.
        #[arg(required = true)]
        users: Vec<String>,
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
}

/// Runs one admin command.
pub fn run(args: AdminArgs) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let client = Client {
            http: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
            url: args.url.trim_end_matches('/').to_string(),
            token: args.token.clone(),
        };
        let output = execute(&client, &args.command).await?;
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
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
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
            Err(format!(
                "{} {}: {}",
                response.status().as_u16(),
                value["error"].as_str().unwrap_or("error"),
                value["message"].as_str().unwrap_or("")
            ))
        }
    }
}

async fn execute(client: &Client, command: &AdminCommand) -> Result<Output, String> {
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
                let refused_total: u64 = [
                    "licence_limit_reached",
                    "user_not_licensed",
                    "user_limit_reached",
                ]
                .iter()
                .filter_map(|k| refused[k].as_u64())
                .sum();
                table.add_row(vec![
                    text(&t["tenant"]),
                    text(&t["model"]),
                    text(&t["seats"]),
                    text(&t["seats_in_use"]),
                    text(&t["sessions"]),
                    text(&t["users"]),
                    text(&t["records"]),
                    text(&t["today"]["logins"]),
                    refused_total.to_string(),
                ]);
            }
            Output::same(list, table.to_string())
        }
        AdminCommand::Show { tenant } => {
            let view = client
                .call("GET", &format!("/v1/tenants/{}", tenant), None)
                .await?;
            let sessions = client
                .call("GET", &format!("/v1/tenants/{}/sessions", tenant), None)
                .await?;
            let mut out = format!(
                "{}: {} licence, {} of {} seats in use, {} sessions, {} users, idle timeout {}s\n",
                text(&view["tenant"]),
                text(&view["model"]),
                text(&view["seats_in_use"]),
                text(&view["seats"]),
                text(&view["sessions"]),
                text(&view["users"]),
                text(&view["idle_timeout_secs"]),
            );
            let mut table = table(&[
                "SESSION",
                "USER",
                "CLIENT",
                "STARTED",
                "LAST HEARTBEAT",
                "EXPIRES",
            ]);
            for s in sessions["sessions"].as_array().into_iter().flatten() {
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
                json: json!({"tenant": view, "sessions": sessions["sessions"]}),
                text: out,
            }
        }
        AdminCommand::Release { tenant, session } => {
            client
                .call(
                    "DELETE",
                    &format!("/v1/tenants/{}/sessions/{}", tenant, session),
                    None,
                )
                .await?;
            Output::same(
                json!({"released": session}),
                format!("released session {session}"),
            )
        }
        AdminCommand::Logout { tenant, user } => {
            let answer = client
                .call(
                    "POST",
                    &format!("/v1/tenants/{}/users/{}/logout", tenant, user),
                    None,
                )
                .await?;
            let ended = text(&answer["sessions_ended"]);
            Output::same(answer, format!("logged {user} out: {ended} sessions ended"))
        }
        AdminCommand::SetLicence {
            tenant,
            model,
            seats,
            seat_per,
            idle_timeout_secs,
            max_users,
        } => {
            let mut body = json!({"model": model});
            for (key, value) in [
                ("seats", seats.map(Value::from)),
                ("seat_per", seat_per.clone().map(Value::from)),
                ("idle_timeout_secs", idle_timeout_secs.map(Value::from)),
                ("max_users", max_users.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            let answer = client
                .call("PUT", &format!("/v1/tenants/{}", tenant), Some(body))
                .await?;
            let mut text_out = format!(
                "{}: {} licence, {} seats, idle timeout {}s",
                text(&answer["tenant"]),
                text(&answer["model"]),
                text(&answer["seats"]),
                text(&answer["idle_timeout_secs"])
            );
            if let Some(key) = answer["api_key"].as_str() {
                text_out.push_str(&format!("\ncreated; API key (shown once): {key}"));
            }
            Output::same(answer, text_out)
        }
        AdminCommand::Assign { tenant, users } => {
            let mut results = Vec::new();
            for user in users {
                results.push(
                    client
                        .call(
                            "PUT",
                            &format!("/v1/tenants/{}/users/{}", tenant, user),
                            None,
                        )
                        .await?,
                );
            }
            let text_out = results
                .iter()
                .map(|u| format!("{}: assigned={}", text(&u["user"]), text(&u["assigned"])))
                .collect::<Vec<_>>()
                .join("\n");
            Output::same(json!({"users": results}), text_out)
        }
        AdminCommand::Unassign { tenant, users } => {
            for user in users {
                client
                    .call(
                        "DELETE",
                        &format!("/v1/tenants/{}/users/{}", tenant, user),
                        None,
                    )
                    .await?;
            }
            Output::same(
                json!({"removed": users}),
                format!("removed {}", users.join(", ")),
            )
        }
        AdminCommand::Usage { tenant, days } => {
            let report = client
                .call(
                    "GET",
                    &format!("/v1/tenants/{}/usage?days={days}", tenant),
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
            Output::same(report, table.to_string())
        }
        AdminCommand::Records { tenant, set } => {
            let path = format!("/v1/tenants/{}/records", tenant);
            let answer = match set {
                Some(count) => {
                    client
                        .call("PUT", &path, Some(json!({"count": count})))
                        .await?
                }
                None => client.call("GET", &path, None).await?,
            };
            let text_out = format!(
                "records: {} (peak today {}, peak this month {})",
                text(&answer["count"]),
                text(&answer["peak_today"]),
                text(&answer["peak_month"])
            );
            Output::same(answer, text_out)
        }
        AdminCommand::RotateKey { tenant } => {
            let answer = client
                .call("POST", &format!("/v1/tenants/{}/api-key", tenant), None)
                .await?;
            let text_out = format!(
                "new API key for {tenant} (shown once): {}",
                text(&answer["api_key"])
            );
            Output::same(answer, text_out)
        }
        AdminCommand::DeleteTenant { tenant } => {
            client
                .call("DELETE", &format!("/v1/tenants/{}", tenant), None)
                .await?;
            Output::same(json!({"deleted": tenant}), format!("deleted {tenant}"))
        }
    })
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
