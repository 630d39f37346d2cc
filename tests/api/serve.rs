//! `usher serve` as a process: what it prints, what it logs, and what stops it
//! starting.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use awc::http::Method;
use serde_json::json;

use crate::helpers::{client, Answer};

/// How long to wait for a line the server is expected to print.
const PATIENCE: Duration = Duration::from_secs(60);

/// A token long enough to be accepted.
const GOOD_TOKEN: &str = "serve-test-admin-token-5f2c9e";

/// Command-line arguments of a case.
type Args<'a> = &'a [&'a str];
/// Environment variables of a case.
type Env<'a> = &'a [(&'a str, &'a str)];

/// One line of output and the stream it came from.
struct Line {
    stdout: bool,
    text: String,
}

/// A running `usher` process, its output read line by line as it comes.
struct Usher {
    child: Child,
    lines: Receiver<Line>,
    /// Everything printed so far, both streams.
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Usher {
    /// Starts `usher serve` with these arguments and variables, on any free port, with
    /// the memory store unless `args` name one, the usual umask (022), and no `USHER_*`
    /// variable inherited from the test's environment.
    fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Usher {
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_usher"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .args(if args.contains(&"--store") {
                &[][..]
            } else {
                &["--store", "memory"][..]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("USHER_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("the usher binary runs");
        let (tx, lines) = mpsc::channel();
        let output = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            read_lines(
                child.stdout.take().expect("piped"),
                true,
                tx.clone(),
                &output,
            ),
            read_lines(child.stderr.take().expect("piped"), false, tx, &output),
        ];
        Usher {
            child,
            lines,
            output,
            readers,
        }
    }

    /// Waits for a line containing `wanted` and returns it; `None` if the process
    /// closed its output first.
    fn line_with(&self, wanted: &str) -> Option<Line> {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) if line.text.contains(wanted) => return Some(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {wanted:?} within {PATIENCE:?}; output so far:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Waits until the server says where it listens; returns its URL.
    fn url(&self) -> String {
        let line = self
            .line_with("Usher is serving on ")
            .unwrap_or_else(|| panic!("the server did not start:\n{}", self.output()));
        assert!(line.stdout, "the URL is printed on stdout");
        let url = line.text.split("serving on ").nth(1).expect("a URL");
        url.trim().to_owned()
    }

    /// Everything printed so far.
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for the process to end by itself, which it does once its output closes;
    /// panics if it starts serving instead.
    fn exit(mut self) -> (ExitStatus, String) {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) if line.text.contains("Usher is serving on ") => {
                    panic!("the server started:\n{}", self.output())
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the process did not end:\n{}", self.output())
                }
            }
        }
        let status = self.child.wait().expect("the process can be waited for");
        self.finish();
        (status, self.output())
    }

    /// Kills the process and returns everything it printed.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.finish();
        self.output()
    }

    fn finish(&mut self) {
        for reader in self.readers.drain(..) {
            reader.join().expect("the output reader ends");
        }
    }
}

impl Drop for Usher {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(
    stream: impl Read + Send + 'static,
    stdout: bool,
    tx: mpsc::Sender<Line>,
    output: &Arc<Mutex<String>>,
) -> JoinHandle<()> {
    let output = output.clone();
    thread::spawn(move || {
        for text in BufReader::new(stream).lines() {
            let Ok(text) = text else { break };
            {
                let mut all = output.lock().unwrap();
                all.push_str(&text);
                all.push('\n');
            }
            let _ = tx.send(Line { stdout, text });
        }
    })
}

/// `text` with every character percent-encoded, hex digits upper or lower case.
fn encoded(text: &str, lower: bool) -> String {
    text.bytes()
        .map(|b| {
            if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn call(
    client: &awc::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Answer {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("the server answers");
    let bytes = response.body().await.expect("a whole body");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        body: serde_json::from_slice(&bytes).unwrap_or_default(),
    }
}

#[actix_web::test]
async fn the_access_log_never_shows_a_session_token_however_the_path_is_spelt() {
    let dir = tempfile::tempdir().unwrap();
    let usher = Usher::start(
        dir.path(),
        &[],
        &[("USHER_ADMIN_TOKEN", GOOD_TOKEN), ("RUST_LOG", "debug")],
    );
    let url = usher.url();
    let client = client();
    let created = call(
        &client,
        Method::PUT,
        &format!("{url}/v1/tenants/acme"),
        Some(GOOD_TOKEN),
        Some(json!({"model": "concurrent", "seats": 1})),
    )
    .await;
    let key = created.expect(201)["api_key"].as_str().unwrap().to_owned();
    let login = call(
        &client,
        Method::POST,
        &format!("{url}/v1/tenants/acme/sessions"),
        Some(&key),
        Some(json!({"user": "ann"})),
    )
    .await;
    let token = login.expect(201)["session"].as_str().unwrap().to_owned();

    let paths = [
        format!("/v1/sessions/{token}/heartbeat"),
        format!("/v1/%73essions/{token}/heartbeat"),
        format!("/v1/s%65ss%69%6Fn%73/{}/heartbeat", encoded(&token, false)),
        format!("/v1/%73e%73%73io%6es/{}/heartbeat", encoded(&token, true)),
    ];
    for path in &paths {
        let answer = call(&client, Method::POST, &format!("{url}{path}"), None, None).await;
        assert_eq!(
            answer.status, 200,
            "{path} reaches the heartbeat: {answer:?}"
        );
    }
    // Each request is logged before it is answered; wait for all the lines.
    for path in &paths {
        let line = loop {
            let line = usher
                .line_with("usher::access")
                .unwrap_or_else(|| panic!("the server stopped:\n{}", usher.output()));
            if line.text.contains("heartbeat") {
                break line;
            }
        };
        assert!(
            line.text.contains("path=/v1/sessions/<token>/heartbeat") && line.text.contains("200"),
            "the access log line of {path}: {}",
            line.text
        );
    }
    // Paths with a token where no route takes one (a base URL set wrong, a token
    // pasted where a session's id belongs): answered without it, logged without it.
    let misplaced = [
        (
            Method::POST,
            format!("/sessions/{token}/heartbeat"),
            None,
            404,
        ),
        (
            Method::POST,
            format!("/v1/session/{token}/heartbeat"),
            None,
            404,
        ),
        (
            Method::POST,
            format!("/api/v1/sessions/{token}/heartbeat"),
            None,
            404,
        ),
        (
            Method::DELETE,
            format!("/v1/tenants/acme/sessions/{token}"),
            Some(&key),
            400,
        ),
    ];
    for (method, path, auth, status) in &misplaced {
        let answer = call(
            &client,
            method.clone(),
            &format!("{url}{path}"),
            auth.map(|k| k.as_str()),
            None,
        )
        .await;
        assert_eq!(answer.status, *status, "{path}: {answer:?}");
        assert!(!answer.text.contains(&token[16..]), "{path}: {answer:?}");
    }
    for _ in &misplaced {
        let line = usher
            .line_with("usher::access")
            .unwrap_or_else(|| panic!("the server stopped:\n{}", usher.output()));
        assert!(line.text.contains("<token>"), "{}", line.text);
    }
    let output = usher.kill();
    assert!(output.contains("usher::access"), "{output}");
    for secret in [
        token.clone(),
        encoded(&token, false),
        encoded(&token, true),
        token[16..].to_owned(),
        GOOD_TOKEN.to_owned(),
        key,
    ] {
        assert!(
            !output.contains(&secret),
            "{secret} is in the log:\n{output}"
        );
    }
}

#[actix_web::test]
async fn requests_too_malformed_to_parse_are_answered_400_and_flood_no_log() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let usher = Usher::start(dir.path(), &[], &[("USHER_ADMIN_TOKEN", GOOD_TOKEN)]);
    let url = usher.url();
    let address = url.trim_start_matches("http://").to_owned();
    for request in [
        "GET /v1/tenants/\u{e9}t\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ] {
        let mut socket = std::net::TcpStream::connect(&address).unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{request:?}: {answer:?}"
        );
    }
    // The server still answers, and said nothing of those at its default level.
    let healthy = call(
        &client(),
        Method::GET,
        &format!("{url}/healthz"),
        None,
        None,
    )
    .await;
    assert_eq!(healthy.status, 200);
    let output = usher.kill();
    assert!(!output.contains("ERROR"), "{output}");
    assert!(!output.contains("parse error"), "{output}");
}

#[test]
fn a_short_or_blank_admin_token_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("usher.toml");
    std::fs::write(&config, "admin_token = \"fifteen-chars-x\"\n").unwrap();
    let config = config.to_str().unwrap();
    let cases: [(Args, Env, &str); 5] = [
        (&[], &[("USHER_ADMIN_TOKEN", "short")], "USHER_ADMIN_TOKEN"),
        (&[], &[("USHER_ADMIN_TOKEN", "")], "USHER_ADMIN_TOKEN"),
        (&[], &[("USHER_ADMIN_TOKEN", "   ")], "USHER_ADMIN_TOKEN"),
        (
            &[],
            &[("USHER_ADMIN_TOKEN", "fifteen-chars-x")],
            "USHER_ADMIN_TOKEN",
        ),
        (&["--config", config], &[], "config file"),
    ];
    for (args, env, source) in cases {
        let usher = Usher::start(&dir.path().join("data"), args, env);
        let (status, output) = usher.exit();
        assert!(!status.success(), "{env:?} {args:?}: {output}");
        assert!(!output.contains("serving on"), "{output}");
        assert!(output.contains("usher: the admin token from"), "{output}");
        assert!(output.contains(source), "names {source}: {output}");
        assert!(output.contains("16"), "says how long it must be: {output}");
        for (_, token) in env {
            if !token.trim().is_empty() {
                assert!(!output.contains(token), "{output}");
            }
        }
        assert!(!output.contains("fifteen-chars-x"), "{output}");
    }
}

#[test]
fn a_supplied_admin_token_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("usher.toml");
    let from_config = "config-file-admin-token-81c3a0";
    std::fs::write(&config, format!("admin_token = \"{from_config}\"\n")).unwrap();
    let config = config.to_str().unwrap();
    let cases: [(Args, Env, &str, &str); 2] = [
        (
            &[],
            &[("USHER_ADMIN_TOKEN", GOOD_TOKEN)],
            GOOD_TOKEN,
            "admin token: from USHER_ADMIN_TOKEN",
        ),
        (
            &["--config", config],
            &[],
            from_config,
            "admin token: from admin_token in the config file",
        ),
    ];
    for (args, env, token, source) in cases {
        let usher = Usher::start(&dir.path().join("data"), args, env);
        usher.url();
        let line = usher
            .line_with("admin token")
            .unwrap_or_else(|| panic!("no admin token line:\n{}", usher.output()));
        assert!(line.text.contains(source), "{}", line.text);
        // The last line of the banner: everything about the token is out by now.
        usher.line_with("state:");
        let output = usher.kill();
        assert!(!output.contains(token), "the token is printed:\n{output}");
        assert!(
            !std::fs::read_dir(dir.path().join("data"))
                .unwrap()
                .any(|e| e.unwrap().file_name() == "admin-token"),
            "a supplied token is not stored"
        );
    }
}

#[test]
fn a_generated_admin_token_is_printed_once_then_only_its_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let usher = Usher::start(dir.path(), &[], &[]);
    usher.url();
    let line = usher
        .line_with("admin token")
        .unwrap_or_else(|| panic!("no admin token line:\n{}", usher.output()));
    assert!(line.stdout);
    assert!(line.text.contains("generated"), "{}", line.text);
    let token = line.text.rsplit(' ').next().unwrap().to_owned();
    usher.kill();
    let stored = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    assert_eq!(stored.trim(), token);
    assert!(token.len() >= 16, "{token}");

    let usher = Usher::start(dir.path(), &[], &[]);
    usher.url();
    let line = usher
        .line_with("admin token")
        .unwrap_or_else(|| panic!("no admin token line:\n{}", usher.output()));
    assert!(line.text.contains("stored in"), "{}", line.text);
    assert!(line.text.contains("admin-token"), "{}", line.text);
    usher.line_with("state:");
    let output = usher.kill();
    assert!(
        !output.contains(&token),
        "the stored token is printed:\n{output}"
    );
}

#[cfg(unix)]
#[test]
fn the_data_dir_and_its_files_are_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        format!(
            "{:o}",
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        )
    };
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let db = data.join("usher.redb");
    let token = data.join("admin-token");

    let usher = Usher::start(&data, &["--store", "redb"], &[]);
    usher.url();
    usher.line_with("state:");
    usher.kill();
    assert_eq!(mode(&data), "700", "a new data dir");
    assert_eq!(mode(&db), "600", "a new database");
    assert_eq!(mode(&token), "600", "a new admin token file");

    // Left behind by an older version: a readable database and an empty token file.
    set_mode(&db, 0o644);
    std::fs::write(&token, "").unwrap();
    set_mode(&token, 0o644);
    let usher = Usher::start(&data, &["--store", "redb"], &[]);
    usher.url();
    usher.line_with("state:");
    usher.kill();
    assert_eq!(mode(&db), "600", "an existing database");
    assert_eq!(mode(&token), "600", "a regenerated admin token file");
    assert!(!std::fs::read_to_string(&token).unwrap().trim().is_empty());
}

#[test]
fn a_declared_tenant_that_cannot_be_created_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("usher.toml");
    std::fs::write(
        &config,
        "[[tenants]]\ntenant = \"acme\"\nlicence = { model = \"concurrent\", seats = 2, idle_timeout_secs = 0 }\n",
    )
    .unwrap();
    let usher = Usher::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("USHER_ADMIN_TOKEN", GOOD_TOKEN)],
    );
    let (status, output) = usher.exit();
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot start the server"), "{output}");
    assert!(output.contains("tenant acme"), "{output}");
}
