//! A Redis server for the tests: started once per test process on a free loopback
//! port (or taken from `USHER_TEST_REDIS_URL`), with every test under a key prefix of
//! its own so that tests share it without seeing each other.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use usher::redis::{RedisClock, RedisConfig};
use usher::ManualClock;

/// A `redis-server` this process started; it is killed when the process exits.
pub struct RedisServer {
    pub url: String,
    pub port: u16,
    _child: Option<Child>,
}

impl RedisServer {
    /// Stops the server's process (SIGSTOP): it holds its connections and answers
    /// nothing until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(child) = &mut self._child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, signal: i32) {
        let child = self._child.as_ref().expect("a server this process started");
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the Redis on `port` has `replicas` replicas online and in step.
pub fn wait_for_replica(port: u16, replicas: usize) {
    let started = Instant::now();
    loop {
        let info = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "info", "replication"])
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&info.stdout);
        let online = text
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count();
        if online >= replicas {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replicas of port {port} did not come online: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback port (free when asked; the caller binds it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts `redis-server` on a free loopback port with `extra` arguments, and waits
/// until it answers. The server dies with the test process.
pub fn start_redis(dir: &std::path::Path, extra: &[&str]) -> RedisServer {
    let port = free_port();
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--dir", dir.to_str().expect("a UTF-8 path")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The server must not outlive the tests, however they end.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = command.spawn().unwrap_or_else(|e| {
        panic!("cannot start redis-server ({e}); install it, e.g. `apt-get install redis-server`")
    });
    let url = format!("redis://127.0.0.1:{port}/0");
    wait_for(port);
    RedisServer {
        url,
        port,
        _child: Some(child),
    }
}

/// Waits until a Redis answers PING on `port`.
pub fn wait_for(port: u16) {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let mut answer = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "redis-server on port {port} did not answer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Redis every test of this process shares.
pub fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("USHER_TEST_REDIS_URL") {
            return RedisServer {
                url,
                port: 0,
                _child: None,
            };
        }
        // Started from a thread that lives as long as the process: the server is
        // killed when the thread that started it ends.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = std::env::temp_dir().join(format!("usher-test-redis-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a directory for redis-server");
            let server = start_redis(&dir, &["--appendonly", "no"]);
            tx.send((server.url.clone(), server.port)).unwrap();
            let _server = server;
            loop {
                std::thread::park();
            }
        });
        let (url, port) = rx.recv().expect("redis-server started");
        RedisServer {
            url,
            port,
            _child: None,
        }
    })
}

/// A key prefix no other test of any process uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        usher::token::random_u64() % 1_000_000
    )
}

/// Settings for an engine on the shared Redis whose scripts read `clock`.
pub fn config(clock: &ManualClock) -> RedisConfig {
    let mut config = RedisConfig::new(shared().url.clone());
    config.prefix = unique_prefix();
    config.clock = RedisClock::manual(clock.clone());
    // A slow or busy machine must not turn a slow answer into a 503: the tests of
    // the deadline set their own.
    config.deadline = Duration::from_secs(60);
    config
}

/// A Redis Cluster of three masters on loopback, shared by the tests of this process:
/// its seed URLs.
pub fn cluster() -> &'static Vec<String> {
    static CLUSTER: OnceLock<Vec<String>> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let root =
                std::env::temp_dir().join(format!("usher-test-cluster-{}", std::process::id()));
            let mut servers = Vec::new();
            for i in 0..3 {
                let dir = root.join(i.to_string());
                std::fs::create_dir_all(&dir).expect("a directory for redis-server");
                servers.push(start_redis(
                    &dir,
                    &["--cluster-enabled", "yes", "--appendonly", "no"],
                ));
            }
            let nodes: Vec<String> = servers
                .iter()
                .map(|s| format!("127.0.0.1:{}", s.port))
                .collect();
            let created = Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("redis-cli runs");
            assert!(created.success(), "redis-cli --cluster create failed");
            for server in &servers {
                wait_for_cluster(server.port);
            }
            tx.send(servers.iter().map(|s| s.url.clone()).collect::<Vec<_>>())
                .unwrap();
            let _servers = servers;
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the cluster started")
    })
}

/// Waits until the node on `port` sees the cluster as ok.
fn wait_for_cluster(port: u16) {
    let started = Instant::now();
    loop {
        let info = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .output()
            .expect("redis-cli runs");
        if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cluster on port {port} did not become ok"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Settings for an engine on the shared test cluster whose scripts read `clock`.
pub fn cluster_config(clock: &ManualClock) -> RedisConfig {
    let seeds = cluster();
    let mut config = RedisConfig::new(seeds[0].clone());
    config.urls = seeds.clone();
    config.cluster = true;
    config.prefix = unique_prefix();
    config.clock = RedisClock::manual(clock.clone());
    config.deadline = Duration::from_secs(60);
    config
}
