//! The README's walk-through, run as written: every command of "The HTTP API, walked
//! through" and "The admin client", in order, in one bash, against the real binary;
//! each command's output is compared with the output the README documents under it,
//! ids, keys, tokens and times aside. So README and product cannot drift apart.
//!
//! In a `sh` block, `# ` lines are the output of the commands above them; in a
//! `console` block, `$ ` lines are commands and the lines after them their output. A
//! command documented with no output must print nothing. `cargo run --release -- …`
//! runs the binary under test and `usher` is on the `PATH`; the server's address is a
//! free port instead of 8080 (in the text, and in `USHER_ADDR` and `USHER_URL`).
//!
//! It needs bash, curl and jq; without them it is skipped, unless
//! `USHER_README_TEST=require` (as CI sets it).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

/// The most the whole walk-through may take before it is stopped: a safety net for a
/// server that never gets ready, not a measure of speed.
const LIMIT: Duration = Duration::from_secs(300);

/// Where the walk-through starts and where it ends.
const FIRST_SECTION: &str = "## The HTTP API, walked through";
const AFTER_LAST_SECTION: &str = "## The browser client";

/// Commands and the output the README documents for them.
#[derive(Debug)]
struct Step {
    /// The README line of its first command.
    line: usize,
    commands: Vec<String>,
    expected: Vec<String>,
}

/// The walk-through's steps, in order.
fn steps(readme: &str) -> Vec<Step> {
    let start = readme
        .find(FIRST_SECTION)
        .expect("the walk-through section");
    let end = readme[start..]
        .find(AFTER_LAST_SECTION)
        .map_or(readme.len(), |n| start + n);
    let first_line = readme[..start].lines().count();
    let mut steps: Vec<Step> = Vec::new();
    let mut block: Option<&str> = None;
    let mut continued = false;
    for (n, line) in readme[start..end].lines().enumerate() {
        let line_no = first_line + n + 1;
        if let Some(fence) = line.strip_prefix("```") {
            block = match block {
                None if fence == "sh" || fence == "console" => Some(fence),
                None => Some("other"),
                Some(_) => None,
            };
            // A new block starts a new step.
            if block.is_some() {
                steps.push(Step {
                    line: line_no + 1,
                    commands: Vec::new(),
                    expected: Vec::new(),
                });
            }
            continue;
        }
        let command = match block {
            Some("sh") if continued => Some(line),
            Some("sh") if line == "#" || line.starts_with("# ") => {
                let step = steps.last_mut().expect("a step");
                step.expected.push(line.trim_start_matches('#').to_owned());
                None
            }
            Some("sh") => Some(line),
            Some("console") => match line.strip_prefix("$ ") {
                Some(command) => Some(command),
                None => {
                    steps
                        .last_mut()
                        .expect("a step")
                        .expected
                        .push(line.to_owned());
                    None
                }
            },
            _ => None,
        };
        let Some(command) = command else { continue };
        if command.trim().is_empty() {
            continue;
        }
        let step = steps.last_mut().expect("a step");
        // A command after documented output starts a step of its own, as does every
        // command of a console block.
        let own_step = match block {
            Some("console") => !step.commands.is_empty(),
            _ => !step.expected.is_empty() && !continued,
        };
        if own_step {
            steps.push(Step {
                line: line_no,
                commands: Vec::new(),
                expected: Vec::new(),
            });
        }
        let step = steps.last_mut().expect("a step");
        if step.commands.is_empty() {
            step.line = line_no;
        }
        step.commands.push(command.to_owned());
        continued = block == Some("sh") && command.ends_with('\\');
    }
    steps.retain(|s| !s.commands.is_empty());
    steps
}

/// Output as compared: ids, keys, tokens, cursors and times replaced by placeholders,
/// without whitespace or table rules (column widths follow the values).
fn normalized(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "<time>"),
        (r"\d{4}-\d{2}-\d{2}", "<day>"),
        (r"us[ak]_[A-Za-z0-9_-]+", "<key>"),
        (r#""session":"[A-Za-z0-9_-]+""#, r#""session":"<token>""#),
        (r#""ticket":"[A-Za-z0-9_-]+""#, r#""ticket":"<token>""#),
        (r"\b[0-9a-f]{16}\b", "<id>"),
        (r#""\d+-\d+""#, r#""<cursor>""#),
        (r#""retry_after_secs":\d+"#, r#""retry_after_secs":<n>"#),
    ];
    let mut text = text.to_owned();
    for (pattern, placeholder) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, placeholder)
            .into_owned();
    }
    text.chars()
        .filter(|c| !c.is_whitespace() && !('\u{2500}'..='\u{257f}').contains(c))
        .collect()
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `usher` on the PATH, and `cargo run --release -- ARGS` as the binary under test.
fn shims(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let usher = env!("CARGO_BIN_EXE_usher");
    std::os::unix::fs::symlink(usher, dir.join("usher")).unwrap();
    let cargo = dir.join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\n\
             [ \"$1 $2 $3\" = 'run --release --' ] || {{ echo \"the walk-through ran cargo $*\" >&2; exit 1; }}\n\
             shift 3\nexec '{usher}' \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_readme_walk_through_runs_as_written_and_prints_what_it_documents() {
    let required = std::env::var("USHER_README_TEST").is_ok_and(|v| v == "require");
    let missing: Vec<_> = ["bash", "curl", "jq"]
        .into_iter()
        .filter(|tool| !have(tool))
        .collect();
    if !missing.is_empty() {
        assert!(!required, "the README walk-through needs {missing:?}");
        eprintln!("skipped: the README walk-through needs {missing:?}");
        return;
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .unwrap()
        .replace("127.0.0.1:8080", &addr);
    let steps = steps(&readme);
    assert!(
        steps.len() > 30,
        "the walk-through has {} steps",
        steps.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    shims(&bin);
    let mut script = String::from("exec 2>&1\n");
    for (i, step) in steps.iter().enumerate() {
        script.push_str(&format!("printf '\\n@@step {i}@@\\n'\n"));
        for command in &step.commands {
            script.push_str(command);
            script.push('\n');
        }
    }
    script.push_str("printf '\\n@@end@@\\n'\n");
    std::fs::write(dir.path().join("walk-through.sh"), &script).unwrap();

    let mut command = Command::new("bash");
    command
        .arg("--noprofile")
        .arg("--norc")
        .arg(dir.path().join("walk-through.sh"))
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, _) in std::env::vars() {
        if name.starts_with("USHER_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command
        .env("PATH", path)
        .env("USHER_ADDR", &addr)
        .env("USHER_URL", format!("http://{addr}"))
        .env("TMPDIR", dir.path());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().expect("bash runs");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let finished = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The server, should the walk-through have left it running, goes with its group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    let output = reader.join().unwrap();
    assert!(
        finished.is_some(),
        "the walk-through did not finish within {LIMIT:?}:\n{output}\nserver log:\n{}",
        std::fs::read_to_string(work.join("usher.log")).unwrap_or_default()
    );
    assert!(
        output.contains("@@end@@"),
        "the walk-through stopped:\n{output}"
    );

    let mut drifted = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let begin = format!("@@step {i}@@\n");
        let from = output.find(&begin).expect("every step ran") + begin.len();
        let to = output[from..]
            .find("\n@@")
            .map_or(output.len(), |n| from + n);
        let actual = &output[from..to];
        let expected = step.expected.join("\n");
        if normalized(actual) != normalized(&expected) {
            drifted.push(format!(
                "README.md:{}: {}\n--- documented:\n{expected}\n--- printed:\n{}\n",
                step.line,
                step.commands.join("\n"),
                actual.trim_end()
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "{} of {} steps print other than the README documents:\n\n{}",
        drifted.len(),
        steps.len(),
        drifted.join("\n")
    );
}

#[test]
fn documented_output_is_compared_without_its_ids_and_times_but_with_everything_else() {
    let documented = r#"{"session":"bpIfgDvh2_g9hGlMTCyS-JpB1YFmTlNM","user":"ann",
      "expires_at":"2026-11-28T13:56:56.122Z","idle_timeout_secs":600}"#;
    let printed = r#"{"session":"Zz9fgDvh2_g9hGlMTCyS-JpB1YFmTlNQ","user":"ann","expires_at":"2027-01-02T03:04:05.006Z","idle_timeout_secs":600}"#;
    assert_eq!(normalized(documented), normalized(printed));
    let other = printed.replace("600", "601");
    assert_ne!(normalized(documented), normalized(&other));
    assert_ne!(
        normalized("hope-trust: 2 seats"),
        normalized("riverside: 2 seats")
    );
}

#[test]
fn the_walk_through_is_read_as_commands_and_their_documented_output() {
    let readme = format!(
        "{FIRST_SECTION}\n\n```sh\nA=1\ncurl -s x \\\n  -d y; echo\n# out 1\n#  out 1b\nB=2\n```\n\n\
         ```console\n$ usher admin tenants\nline\n$ usher admin show x\n```\n{AFTER_LAST_SECTION}\n"
    );
    let steps = steps(&readme);
    let seen: Vec<(Vec<&str>, Vec<&str>)> = steps
        .iter()
        .map(|s| {
            (
                s.commands.iter().map(String::as_str).collect(),
                s.expected.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                vec!["A=1", "curl -s x \\", "  -d y; echo"],
                vec![" out 1", "  out 1b"]
            ),
            (vec!["B=2"], vec![]),
            (vec!["usher admin tenants"], vec!["line"]),
            (vec!["usher admin show x"], vec![]),
        ]
    );
}
