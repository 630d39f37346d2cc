//! The `usher` command line as an operator meets it: start-up failures that say what
//! to do, `usher` as `usher serve`, the help, completions and man pages, logs, and the
//! admin client's output against a real server.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// How long to wait for a line a server is expected to print.
const PATIENCE: Duration = Duration::from_secs(60);

const TOKEN: &str = "cli-test-admin-token-4b1d9e";

/// `usher` with no `USHER_*` or `RUST_LOG` from the test's environment.
fn usher() -> Command {
    let mut command = Command::cargo_bin("usher").expect("the usher binary");
    for (name, _) in std::env::vars() {
        if name.starts_with("USHER_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.timeout(PATIENCE);
    command
}

/// A `usher` server process, its output read line by line.
struct Server {
    child: Child,
    lines: Receiver<(bool, String)>,
    url: String,
    /// What it printed on stdout while starting.
    banner: Vec<String>,
}

impl Server {
    /// Starts `usher ARGS` (on any free port unless `args` give one) and waits until it
    /// prints its URL.
    fn start(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Server {
        let mut command = Process::new(assert_cmd::cargo::cargo_bin("usher"));
        command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !args.contains(&"--addr") {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        for (name, _) in std::env::vars() {
            if name.starts_with("USHER_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("usher starts");
        let (tx, lines) = mpsc::channel();
        for (stdout, stream) in [
            (
                true,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (false, Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send((stdout, line));
                }
            });
        }
        let mut server = Server {
            child,
            lines,
            url: String::new(),
            banner: Vec::new(),
        };
        let line = server.line_with("Usher is serving on ");
        server.url = line.split("serving on ").nth(1).unwrap().trim().to_owned();
        loop {
            match server.lines.recv_timeout(PATIENCE) {
                Ok((true, line)) => {
                    let done = line.contains("state:");
                    server.banner.push(line);
                    if done {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("no state: line after the URL: {e}"),
            }
        }
        server
    }

    /// Whether it serves the demo, as its start-up banner says.
    fn serves_demo(&self) -> bool {
        self.banner.iter().any(|line| line.contains("demo CRM:"))
    }

    /// The next line containing `wanted`, on either stream.
    fn line_with(&self, wanted: &str) -> String {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok((_, line)) if line.contains(wanted) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {wanted:?}: {e}"),
            }
        }
    }

    fn admin(&self) -> Command {
        let mut command = usher();
        command.args(["admin", "--url", &self.url]);
        command
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> u16 {
    let status = Process::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0)
        });
    status.unwrap_or_else(|e| panic!("curl: {e}"))
}

/// Logs `user` in to `tenant` with the admin token, as the test's one tab.
fn login(url: &str, tenant: &str, user: &str) {
    let login = Process::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            &format!("{url}/v1/tenants/{tenant}/sessions"),
        ])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["-d", &format!("{{\"user\":\"{user}\"}}")])
        .output()
        .unwrap();
    assert!(login.status.success(), "login of {user}: {login:?}");
}

/// What a command printed on stdout, as JSON.
fn json_of(assert: assert_cmd::assert::Assert) -> serde_json::Value {
    let stdout = &assert.get_output().stdout;
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)))
}

// ---------------------------------------------------------------- start-up

#[test]
fn a_busy_port_is_named_with_a_way_out_and_leaves_the_data_dir_untouched() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("usher-data");
    usher()
        .args(["serve", "--addr", &addr, "--data-dir"])
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains(format!("cannot listen on {addr}")))
        .stderr(contains("already in use"))
        .stderr(contains("--addr"));
    assert!(!data.exists(), "a failed start created the data dir");

    // An empty data dir that exists stays empty: no database, token or tenants.
    std::fs::create_dir(&data).unwrap();
    usher()
        .args(["--demo", "--addr", &addr, "--data-dir"])
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains("already in use"));
    let left: Vec<_> = std::fs::read_dir(&data).unwrap().collect();
    assert!(left.is_empty(), "a failed start left {left:?}");
}

#[test]
fn a_second_server_on_a_data_dir_in_use_names_the_first_and_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(&["serve", "--data-dir", "data"], &[], dir.path());
    usher()
        .current_dir(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir", "data"])
        .assert()
        .failure()
        .stderr(contains("data dir data is in use"))
        .stderr(contains(format!(
            "another Usher (pid {})",
            first.child.id()
        )))
        .stderr(contains("corrupt").not());
}

#[test]
fn usher_without_a_subcommand_serves_with_serve_s_options() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &["--store", "memory", "--data-dir", "d"],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    assert_eq!(get(&format!("{}/readyz", server.url)), 200);
}

#[test]
fn boolean_settings_take_the_usual_spellings() {
    let dir = tempfile::tempdir().unwrap();
    for (value, demo) in [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("off", false),
    ] {
        let server = Server::start(
            &["serve", "--store", "memory", "--data-dir", "d"],
            &[("USHER_ADMIN_TOKEN", TOKEN), ("USHER_DEMO", value)],
            dir.path(),
        );
        assert_eq!(
            server.serves_demo(),
            demo,
            "USHER_DEMO={value}: {:?}",
            server.banner
        );
    }
    let config = dir.path().join("usher.toml");
    std::fs::write(&config, "demo = \"yes\"\n").unwrap();
    let server = Server::start(
        &[
            "serve",
            "--store",
            "memory",
            "--data-dir",
            "d",
            "--config",
            "usher.toml",
        ],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    assert!(server.serves_demo(), "demo = \"yes\": {:?}", server.banner);

    usher()
        .env("USHER_DEMO", "maybe")
        .args([
            "serve",
            "--store",
            "memory",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("d"))
        .assert()
        .failure()
        .stderr(contains("\"maybe\" is not a boolean"));
}

// ---------------------------------------------------------------- logs

#[test]
fn every_request_is_logged_at_the_default_level_and_as_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &["serve", "--store", "memory", "--data-dir", "d"],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    assert_eq!(get(&format!("{}/healthz", server.url)), 200);
    let line = server.line_with("usher::access");
    assert!(
        line.contains("path=/healthz") && line.contains("200"),
        "{line}"
    );

    let server = Server::start(
        &[
            "serve",
            "--store",
            "memory",
            "--data-dir",
            "d",
            "--log-format",
            "json",
        ],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    assert_eq!(get(&format!("{}/healthz", server.url)), 200);
    let line = server.line_with("usher::access");
    let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(event["path"], "/healthz");
    assert_eq!(event["status"], 200);
    assert_eq!(event["level"], "INFO");
}

// ---------------------------------------------------------------- help and docs

#[test]
fn the_help_says_serve_is_the_default_and_where_the_token_and_log_filter_come_from() {
    usher()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("With no subcommand, usher serves"))
        .stdout(contains("--addr"));
    usher()
        .args(["serve", "--help"])
        .assert()
        .success()
        .stdout(contains("USHER_ADMIN_TOKEN"))
        .stdout(contains("RUST_LOG"))
        .stdout(contains("--log-format"));
    usher()
        .args(["load", "--help"])
        .assert()
        .success()
        .stdout(contains("quiet phase"))
        .stdout(contains("--settle"))
        .stdout(contains("--queue"))
        .stdout(contains("--queue-claim"));
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish"] {
        usher()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("usher"))
            .stdout(contains("set-licence"))
            .stdout(contains("data-dir"));
    }
    usher()
        .args(["completions", "tcsh"])
        .assert()
        .failure()
        .stderr(contains("invalid value"));
    usher()
        .arg("man")
        .assert()
        .success()
        .stdout(contains(".TH usher"))
        .stdout(contains("completions"));
    let dir = tempfile::tempdir().unwrap();
    usher()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .assert()
        .success();
    for page in ["usher.1", "usher-serve.1", "usher-admin.1", "usher-load.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page}: {text:.200}");
    }
}

// ---------------------------------------------------------------- the admin client

#[test]
fn the_clients_find_the_token_the_local_server_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["serve"], &[], dir.path());
    // Run from the server's directory: ./usher-data/admin-token.
    server
        .admin()
        .current_dir(dir.path())
        .arg("tenants")
        .assert()
        .success()
        .stdout(contains("no tenants yet"));
    // From elsewhere, with --data-dir.
    let elsewhere = tempfile::tempdir().unwrap();
    server
        .admin()
        .current_dir(elsewhere.path())
        .arg("--data-dir")
        .arg(dir.path().join("usher-data"))
        .arg("tenants")
        .assert()
        .success();
    // No token anywhere: it says where it looked.
    server
        .admin()
        .current_dir(elsewhere.path())
        .arg("tenants")
        .assert()
        .failure()
        .stderr(contains("--token"))
        .stderr(contains("USHER_ADMIN_TOKEN"))
        .stderr(contains("./usher-data/admin-token"));
    usher()
        .current_dir(elsewhere.path())
        .args(["load", "--url", &server.url, "--duration", "1"])
        .assert()
        .failure()
        .stderr(contains("./usher-data/admin-token"));
}

#[test]
fn admin_queue_lists_the_waitlist_head_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &["serve", "--store", "memory", "--data-dir", "d"],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    let admin = |args: &[&str]| {
        let mut command = server.admin();
        command.env("USHER_ADMIN_TOKEN", TOKEN).args(args);
        command
    };
    admin(&[
        "set-licence",
        "harbour",
        "--model",
        "concurrent",
        "--seats",
        "1",
        "--on-limit",
        "queue",
        "--queue-claim-secs",
        "90",
    ])
    .assert()
    .success()
    .stdout(contains("on limit queue, claim window 90s"));
    admin(&["queue", "harbour"])
        .assert()
        .success()
        .stdout(contains("harbour: nobody in line"));
    for user in ["ann", "bob", "cy"] {
        login(&server.url, "harbour", user);
    }
    let listed = admin(&["queue", "harbour"]).assert().success();
    let out = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert!(
        out.contains("harbour: 2 in line, 0 seats held for the head"),
        "{out}"
    );
    let bob = out
        .lines()
        .position(|l| l.contains("bob"))
        .expect("bob is listed");
    let cy = out
        .lines()
        .position(|l| l.contains("cy"))
        .expect("cy is listed");
    assert!(bob < cy, "head first: {out}");
    let json = json_of(admin(&["--json", "queue", "harbour"]).assert().success());
    let users: Vec<&str> = json["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["bob", "cy"]);
    assert_eq!(json["queue"][0]["position"], 1);
    admin(&["queue", "nowhere"])
        .assert()
        .failure()
        .stderr(contains("no tenant with the id nowhere"));
}

#[test]
fn admin_lines_name_their_tenant_and_say_what_a_record_licence_is() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &["serve", "--store", "memory", "--data-dir", "d"],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    let admin = |args: &[&str]| {
        let mut command = server.admin();
        command.env("USHER_ADMIN_TOKEN", TOKEN).args(args);
        command
    };
    admin(&["set-licence", "seaside", "--model", "records"])
        .assert()
        .success()
        .stdout(contains("seaside: records licence, no seat limit"))
        .stdout(contains("seaside: created; API key (shown once): usk_"));
    admin(&["show", "seaside"])
        .assert()
        .success()
        .stdout(contains(
            "seaside: records licence, 0 in use · no seat limit",
        ))
        .stdout(contains("seaside: no sessions"))
        .stdout(contains("of - seats").not());
    admin(&["tenants"])
        .assert()
        .success()
        .stdout(contains("no limit"));
    admin(&["records", "seaside", "--set", "1450"])
        .assert()
        .success()
        .stdout(contains("seaside: 1450 records (peak today 1450"));
    admin(&["show", "nowhere"])
        .assert()
        .failure()
        .stderr(contains("no tenant with the id nowhere"));

    admin(&[
        "set-licence",
        "riverside",
        "--model",
        "named",
        "--seats",
        "2",
    ])
    .assert()
    .success()
    .stdout(contains("riverside: named licence, 2 seats"));
    admin(&["assign", "riverside", "ann", "bob", "cara", "dan"])
        .assert()
        .failure()
        .stderr(contains(
            "riverside: cannot assign cara: 409 seats_exhausted",
        ))
        .stderr(contains("assigned before it: ann, bob"));
    admin(&["unassign", "riverside", "bob"])
        .assert()
        .success()
        .stdout("riverside: removed bob\n");
    admin(&["assign", "riverside", "cara"])
        .assert()
        .success()
        .stdout("riverside: cara assigned a named seat\n");
    admin(&["logout", "riverside", "ann"])
        .assert()
        .success()
        .stdout("riverside: logged ann out: 0 sessions ended\n");
    admin(&["delete-tenant", "riverside"])
        .assert()
        .success()
        .stdout("riverside: deleted\n");
}

#[test]
fn admin_lists_every_page_of_sessions_and_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &["serve", "--store", "memory", "--data-dir", "d"],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    let admin = |args: &[&str]| {
        let mut command = server.admin();
        command.env("USHER_ADMIN_TOKEN", TOKEN).args(args);
        command
    };
    admin(&[
        "set-licence",
        "hope",
        "--model",
        "concurrent",
        "--seats",
        "10",
    ])
    .assert()
    .success();
    let users = ["ann", "bob", "cara", "dan", "eve"];
    for user in users {
        login(&server.url, "hope", user);
    }
    let shown = admin(&["--page-size", "2", "--json", "show", "hope"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let shown: serde_json::Value = serde_json::from_slice(&shown).unwrap();
    let holders: Vec<&str> = shown["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user"].as_str().unwrap())
        .collect();
    assert_eq!(holders, users, "every session, page by page");

    let listed = admin(&["--page-size", "2", "users", "hope"])
        .assert()
        .success()
        .stdout(contains("hope: 5 users"))
        .get_output()
        .stdout
        .clone();
    let listed = String::from_utf8(listed).unwrap();
    for user in users {
        assert!(listed.contains(&format!(" {user} ")), "{user} in\n{listed}");
    }
}

/// A server on the memory store, and `usher admin` against it with the admin token.
fn admin_server(dir: &Path) -> Server {
    Server::start(
        &["serve", "--store", "memory", "--data-dir", "d"],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir,
    )
}

impl Server {
    /// `usher admin ARGS` with the admin token.
    fn admin_with(&self, args: &[&str]) -> Command {
        let mut command = self.admin();
        command.env("USHER_ADMIN_TOKEN", TOKEN).args(args);
        command
    }

    /// The tenant view and its sessions, through `usher admin --json show`.
    fn shown(&self, tenant: &str) -> serde_json::Value {
        json_of(
            self.admin_with(&["--json", "show", tenant])
                .assert()
                .success(),
        )
    }
}

#[test]
fn a_dry_run_says_what_a_lowered_licence_would_do_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path());
    server
        .admin_with(&[
            "set-licence",
            "acme",
            "--model",
            "concurrent",
            "--seats",
            "3",
        ])
        .assert()
        .success();
    for user in ["ann", "bob", "cara"] {
        login(&server.url, "acme", user);
    }
    let before = server.shown("acme");
    assert_eq!(before["tenant"]["seats"], 3);
    assert_eq!(before["tenant"]["seats_in_use"], 3);
    assert_eq!(before["sessions"].as_array().unwrap().len(), 3);

    let lowered = [
        "set-licence",
        "acme",
        "--model",
        "concurrent",
        "--seats",
        "1",
        "--max-users",
        "2",
        "--dry-run",
    ];
    server.admin_with(&lowered).assert().success().stdout(
        "acme: dry run, nothing changed: concurrent licence, 1 seat, idle timeout 600s; \
         3 seats in use, 3 sessions, 3 users\n\
         acme: 2 seats held past the new limit; 1 account past max_users; no named seat lost\n",
    );
    let answer = json_of(
        server
            .admin_with(&[&["--json"][..], &lowered].concat())
            .assert()
            .success(),
    );
    assert_eq!(
        answer,
        serde_json::json!({
            "tenant": "acme", "model": "concurrent", "seats": 1, "seat_per": "user",
            "idle_timeout_secs": 600, "max_users": 2, "seats_in_use": 3, "sessions": 3,
            "users": 3, "records": 0, "queued": 0, "held_for_queue": 0, "creates": false,
            "effects": {"seats_over_limit": 2, "users_over_limit": 1, "named_seats_lost": [],
                        "tickets_ended": 0},
        })
    );
    assert_eq!(server.shown("acme"), before, "a dry run changed the tenant");

    // Leaving the named model takes the named seats, and says whose.
    server
        .admin_with(&["set-licence", "crew", "--model", "named", "--seats", "2"])
        .assert()
        .success();
    server
        .admin_with(&["assign", "crew", "bob", "ann"])
        .assert()
        .success();
    let before = server.shown("crew");
    server
        .admin_with(&["set-licence", "crew", "--model", "records", "--dry-run"])
        .assert()
        .success()
        .stdout(
            "crew: dry run, nothing changed: records licence, no seat limit, idle timeout 600s; \
             0 seats in use, 0 sessions, 2 users\n\
             crew: no seat held past the new limit; no account past max_users; \
             2 named seats lost (ann, bob)\n",
        );
    assert_eq!(server.shown("crew"), before, "a dry run changed the tenant");

    // A tenant that does not exist yet is not created.
    server
        .admin_with(&[
            "set-licence",
            "newco",
            "--model",
            "concurrent",
            "--seats",
            "5",
            "--on-limit",
            "displace_idlest",
            "--dry-run",
        ])
        .assert()
        .success()
        .stdout(
            "newco: dry run, nothing changed: would create the tenant with a concurrent \
             licence, 5 seats, idle timeout 600s, on limit displace_idlest\n",
        );
    server
        .admin_with(&["show", "newco"])
        .assert()
        .failure()
        .stderr(contains("no tenant with the id newco"));
}

#[test]
fn policy_flags_round_trip_and_a_bad_one_is_refused_with_the_server_s_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path());
    server
        .admin_with(&[
            "set-licence",
            "acme",
            "--model",
            "concurrent",
            "--seats",
            "10",
            "--overage",
            "0.2",
            "--on-limit",
            "displace_idlest",
            "--min-hold-secs",
            "60",
            "--max-sessions-per-user",
            "3",
        ])
        .assert()
        .success()
        .stdout(contains(
            "acme: concurrent licence, 10 seats, idle timeout 600s, overage 0.2, \
             on limit displace_idlest, min hold 60s, at most 3 sessions per user\n\
             acme: created; API key (shown once): usk_",
        ));
    let tenant = server.shown("acme")["tenant"].clone();
    assert_eq!(
        tenant,
        serde_json::json!({
            "tenant": "acme", "model": "concurrent", "seats": 10, "seat_per": "user",
            "idle_timeout_secs": 600, "max_users": 999, "overage": 0.2,
            "on_limit": "displace_idlest", "min_hold_secs": 60, "max_sessions_per_user": 3,
            "seats_in_use": 0, "sessions": 0, "users": 0, "records": 0,
            "queued": 0, "held_for_queue": 0,
        })
    );

    for (flags, says) in [
        (
            &["--model", "concurrent", "--seats", "10", "--overage", "2"][..],
            "acme: 400 invalid_request: \"overage\" must be between 0 and 1, got 2",
        ),
        (
            &["--model", "concurrent", "--seats", "10", "--on-limit", "evict"][..],
            "acme: 400 invalid_request: \"on_limit\" must be \"refuse\", \"queue\" or \"displace_idlest\", got \"evict\"",
        ),
        (
            &["--model", "named", "--seats", "10", "--min-hold-secs", "5"][..],
            "acme: 400 invalid_request: \"min_hold_secs\" applies to the concurrent model only",
        ),
        (
            &["--model", "concurrent", "--seats", "10", "--max-sessions-per-user", "0"][..],
            "acme: 400 invalid_request: \"max_sessions_per_user\" must be between 1 and 1000000, got 0",
        ),
    ] {
        for dry_run in [&[][..], &["--dry-run"][..]] {
            server
                .admin_with(&[&["set-licence", "acme"][..], flags, dry_run].concat())
                .assert()
                .failure()
                .stdout("")
                .stderr(format!("usher: {says}\n"));
        }
    }
    assert_eq!(
        server.shown("acme")["tenant"],
        tenant,
        "a refused change changed the tenant"
    );

    // A named licence takes the cap on sessions, which applies to every model.
    server
        .admin_with(&[
            "set-licence",
            "acme",
            "--model",
            "named",
            "--seats",
            "4",
            "--max-sessions-per-user",
            "1",
        ])
        .assert()
        .success()
        .stdout("acme: named licence, 4 seats, idle timeout 600s, at most 1 session per user\n");
    assert_eq!(server.shown("acme")["tenant"]["max_sessions_per_user"], 1);

    // Groups: each --reserve and --group-max names one group.
    server
        .admin_with(&[
            "set-licence",
            "acme",
            "--model",
            "concurrent",
            "--seats",
            "6",
            "--reserve",
            "finance=2",
            "--reserve",
            "hr=1",
            "--group-max",
            "volunteers=3",
            "--reload-grace-secs",
            "20",
        ])
        .assert()
        .success()
        .stdout(
            "acme: concurrent licence, 6 seats, idle timeout 600s, reload grace 20s, \
             reserve finance=2 hr=1, group max volunteers=3\n",
        );
    let shown = server.shown("acme")["tenant"].clone();
    assert_eq!(shown["reserve"], serde_json::json!({"finance": 2, "hr": 1}));
    assert_eq!(shown["group_max"], serde_json::json!({"volunteers": 3}));
    assert_eq!(shown["reload_grace_secs"], 20);
    for (flag, says) in [
        (
            "finance=7",
            "acme: 400 invalid_request: \"reserve\" of finance must be between 0 and the licence's 6 seats, got 7",
        ),
        ("finance", "expected GROUP=SEATS"),
        ("finance=two", "must be a whole number"),
    ] {
        server
            .admin_with(&[
                "set-licence", "acme", "--model", "concurrent", "--seats", "6", "--reserve", flag,
            ])
            .assert()
            .failure()
            .stderr(contains(says));
    }
    assert_eq!(server.shown("acme")["tenant"], shown);
}

#[test]
fn completions_and_man_pages_end_quietly_when_their_reader_is_gone() {
    for args in [&["completions", "bash"][..], &["man"][..]] {
        let mut child = Process::new(env!("CARGO_BIN_EXE_usher"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A reader gone before anything is written, as `| head` may be by then.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}

#[test]
fn assign_sets_groups_and_users_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path());
    server
        .admin_with(&[
            "set-licence",
            "acme",
            "--model",
            "concurrent",
            "--seats",
            "4",
        ])
        .assert()
        .success();
    server
        .admin_with(&[
            "assign",
            "acme",
            "ann",
            "bob",
            "--groups",
            "sales,finance,sales",
        ])
        .assert()
        .success()
        .stdout(
            "acme: ann registered, in finance, sales\nacme: bob registered, in finance, sales\n",
        );
    // Without --groups they stay; with an empty list they go.
    server
        .admin_with(&["assign", "acme", "ann"])
        .assert()
        .success()
        .stdout("acme: ann registered, in finance, sales\n");
    server
        .admin_with(&["assign", "acme", "bob", "--groups", ""])
        .assert()
        .success()
        .stdout("acme: bob registered\n");
    let users = server.admin_with(&["users", "acme"]).assert().success();
    let out = String::from_utf8(users.get_output().stdout.clone()).unwrap();
    assert!(out.contains("GROUPS"), "{out}");
    let ann = out.lines().find(|l| l.contains(" ann ")).unwrap();
    assert!(ann.contains("finance, sales"), "{out}");
    let bob = out.lines().find(|l| l.contains(" bob ")).unwrap();
    assert!(!bob.contains("finance"), "{out}");
    server
        .admin_with(&["assign", "acme", "cara", "--groups", "not ok"])
        .assert()
        .failure()
        .stderr(contains("group id may only contain"));
}

#[test]
fn the_admin_client_registers_shows_and_removes_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &[
            "serve",
            "--store",
            "memory",
            "--data-dir",
            "d",
            "--webhook-allow-host",
            "127.0.0.1",
        ],
        &[("USHER_ADMIN_TOKEN", TOKEN)],
        dir.path(),
    );
    let admin = |args: &[&str]| {
        let mut command = server.admin();
        command.env("USHER_ADMIN_TOKEN", TOKEN).args(args);
        command
    };
    admin(&[
        "set-licence",
        "acme",
        "--model",
        "concurrent",
        "--seats",
        "2",
        "--alert-at",
        "0.5",
    ])
    .assert()
    .success();
    let view = json_of(admin(&["--json", "show", "acme"]).assert().success());
    assert_eq!(view["tenant"]["alert_at"], 0.5, "{view}");
    // Nothing listens on port 9: deliveries fail, and the webhook says so.
    admin(&[
        "set-webhook",
        "acme",
        "crm",
        "--url",
        "http://127.0.0.1:9/hook",
        "--event",
        "admitted",
        "--event",
        "limit_reached",
        "--secret",
        "whsec_0123456789abcdef",
    ])
    .assert()
    .success()
    .stdout(contains(
        "acme: webhook crm delivers admitted, limit_reached to http://127.0.0.1:9/hook",
    ));
    admin(&["webhook", "acme", "crm"])
        .assert()
        .success()
        .stdout(contains("acme: no deliveries yet"));
    login(&server.url, "acme", "ann");
    let mut shown = String::new();
    for _ in 0..300 {
        let out = admin(&["webhook", "acme", "crm"]).assert().success();
        shown = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        // The webhook and its deliveries are two reads: a try may land between them.
        if shown.contains("failing since") && shown.contains("failed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(shown.contains("acme: failing since"), "{shown}");
    assert!(shown.contains("failed"), "{shown}");
    admin(&["remove-webhook", "acme", "crm"])
        .assert()
        .success()
        .stdout(contains("acme: webhook crm removed"));
    admin(&["webhook", "acme", "crm"])
        .assert()
        .failure()
        .stderr(contains("webhook"));
    // A target outside the allowed hosts is refused with the server's reason.
    admin(&[
        "set-webhook",
        "acme",
        "crm",
        "--url",
        "http://10.0.0.1/hook",
        "--event",
        "admitted",
        "--secret",
        "whsec_0123456789abcdef",
    ])
    .assert()
    .failure()
    .stderr(contains("webhook_allow_hosts"));
}
