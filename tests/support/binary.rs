//! The real `usher serve` binary on a data directory, for tests that kill it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `usher serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it serves, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Server {
    /// Starts `usher serve` on `dir` with the admin token `admin`.
    #[allow(dead_code)]
    pub fn start(dir: &Path, admin: &str) -> Server {
        Self::start_with(dir, admin, &[])
    }

    /// Starts `usher serve` on `dir` with the admin token `admin` and more flags.
    pub fn start_with(dir: &Path, admin: &str, flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", "2"])
            .args(flags)
            .arg("--data-dir")
            .arg(dir)
            .env("USHER_ADMIN_TOKEN", admin)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("usher starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("usher printed its URL before exiting")
                .expect("stdout is readable");
            if let Some(url) = line.strip_prefix("Usher is serving on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    /// SIGKILL, and wait until it is gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("the server is gone");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed check must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
