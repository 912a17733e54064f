//! Shared test scaffolding: an in-process cluster with its own runtime (so tests are
//! plain `#[test]`s that run the real `shell` binary against it), a runner for that
//! binary, and polling with a deadline instead of sleeps.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ballast::local::LocalCluster;
use ballast::meta::config::MetaConfig;

/// The `shell` binary under test.
pub const SHELL: &str = env!("CARGO_BIN_EXE_shell");
/// The `meta-server` binary under test.
pub const META_SERVER: &str = env!("CARGO_BIN_EXE_meta-server");
/// The `replica-server` binary under test.
pub const REPLICA_SERVER: &str = env!("CARGO_BIN_EXE_replica-server");

/// How long a server's (or the cluster's) graceful stop may take in a test.
pub const STOP_WITHIN: Duration = Duration::from_secs(30);

/// An in-process cluster (meta server + N replica servers on loopback) with the table
/// `temp`, shut down on drop.
pub struct TestCluster {
    rt: tokio::runtime::Runtime,
    cluster: Option<LocalCluster>,
}

impl TestCluster {
    /// Starts `n` replica servers with sub-second timings and creates `temp` (8
    /// partitions) if `with_temp`.
    pub fn start(n: usize, with_temp: bool) -> TestCluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let cluster = rt
            .block_on(async {
                let cluster = LocalCluster::start(n, None, MetaConfig::fast()).await?;
                if with_temp {
                    cluster
                        .create_table_and_wait("temp", 8, Duration::from_secs(20))
                        .await?;
                } else {
                    let deadline = std::time::Instant::now() + Duration::from_secs(20);
                    cluster.wait_all_serving(deadline).await?;
                }
                Ok::<_, ballast::Error>(cluster)
            })
            .expect("cluster starts");
        TestCluster {
            rt,
            cluster: Some(cluster),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &LocalCluster {
        self.cluster.as_ref().expect("running")
    }

    /// Stops a replica server at once (failing, not hanging, if its stop is held open).
    pub fn stop_node(&mut self, address: &str) {
        let TestCluster { rt, cluster } = self;
        let cluster = cluster.as_mut().expect("running");
        rt.block_on(async { tokio::time::timeout(STOP_WITHIN, cluster.stop_node(address)).await })
            .expect("the node stops in time")
            .expect("node stops");
    }

    /// Starts a stopped replica server again.
    pub fn start_node(&mut self, address: &str) {
        let TestCluster { rt, cluster } = self;
        let cluster = cluster.as_mut().expect("running");
        rt.block_on(cluster.start_node(address))
            .expect("node starts");
    }

    /// Adds a replica server; returns its address.
    pub fn add_node(&mut self) -> String {
        let TestCluster { rt, cluster } = self;
        let cluster = cluster.as_mut().expect("running");
        rt.block_on(cluster.add_node()).expect("node added")
    }

    /// Runs a future on the cluster's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The meta server's address.
    pub fn meta(&self) -> String {
        self.cluster().meta_addr().to_string()
    }

    /// Runs `shell --meta <meta> -e <commands>`.
    pub fn exec(&self, commands: &str) -> Run {
        shell(&["--meta", &self.meta(), "-e", commands], None)
    }

    /// Runs `shell --meta <meta>` with `script` on stdin.
    pub fn script(&self, script: &str) -> Run {
        shell(&["--meta", &self.meta()], Some(script))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            let stopped = self
                .rt
                .block_on(async { tokio::time::timeout(STOP_WITHIN, cluster.shutdown()).await });
            assert!(
                stopped.is_ok() || std::thread::panicking(),
                "the cluster did not shut down within {STOP_WITHIN:?}"
            );
        }
    }
}

/// What a `shell` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code.
    pub code: i32,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "shell failed: {self:?}");
        &self.stdout
    }

    /// Parses stdout as JSON, asserting success.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs the shell binary with `args`, feeding `stdin` (or nothing) on standard input.
pub fn shell(args: &[&str], stdin: Option<&str>) -> Run {
    shell_bytes(args, stdin.unwrap_or("").as_bytes())
}

/// Runs the shell binary with `args`, feeding `stdin` bytes (not necessarily UTF-8).
pub fn shell_bytes(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(SHELL)
        .args(args)
        .env_remove("BALLAST_META")
        .env("BALLAST_LOCAL_PORTS", "random")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shell");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let out: Output = child.wait_with_output().expect("shell runs");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Polls `check` every 25 ms until it returns `Some`, panicking after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The statuses `nodes -j` reports, by address.
pub fn node_statuses(meta: &str) -> Vec<(String, String)> {
    let run = shell(&["--meta", meta, "-e", "nodes -j"], None);
    if run.code != 0 {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    json["details"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["address"].as_str().unwrap_or("").into(),
                        r["status"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `nodes` on `meta` shows `addr` with `status` (ALIVE or UNALIVE).
pub fn wait_node_status(meta: &str, addr: &str, status: &str, timeout: Duration) {
    wait_for(&format!("{addr} to be {status}"), timeout, || {
        node_statuses(meta)
            .iter()
            .any(|(a, s)| a == addr && s == status)
            .then_some(())
    });
}

/// A loopback address nothing listens on (bound, then released).
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    addr
}

/// Whether `path` exists and contains `needle`.
pub fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
}

/// A child process that is killed (SIGKILL) and reaped on drop.
pub struct Proc {
    child: Child,
    /// The address the process printed.
    pub addr: String,
}

impl Proc {
    /// Spawns `bin` with `args` and reads the address it prints ("... listening on ADDR").
    pub fn spawn(bin: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--log-level", "warn"])
            .env_remove("BALLAST_META")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read address");
        let addr = line.trim().rsplit(' ').next().expect("address").to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "unexpected first line {line:?}"
        );
        Proc { child, addr }
    }

    /// Sends SIGTERM (what systemd sends) and waits up to `timeout` for the process to
    /// exit; panics if it does not.
    pub fn terminate(&mut self, timeout: Duration) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + timeout;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} still runs {timeout:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills (SIGKILL) and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a meta-server process with sub-second timings, listening on `listen`.
pub fn start_meta(dir: &Path, listen: &str) -> Proc {
    start_meta_timed(dir, listen, 800, 1000)
}

/// Starts a meta-server process with a 100 ms beacon and lb round and the given lease
/// and grace period (ms), listening on `listen`.
pub fn start_meta_timed(dir: &Path, listen: &str, lease_ms: u64, grace_ms: u64) -> Proc {
    start_meta_beaconing(dir, listen, 100, lease_ms, grace_ms)
}

/// Starts a meta-server process with the given beacon interval, lease and grace period
/// (ms) and a 100 ms lb round, listening on `listen`.
pub fn start_meta_beaconing(
    dir: &Path,
    listen: &str,
    beacon_ms: u64,
    lease_ms: u64,
    grace_ms: u64,
) -> Proc {
    let data = dir.join("meta");
    let (lease, grace) = (lease_ms.to_string(), grace_ms.to_string());
    let beacon = beacon_ms.to_string();
    Proc::spawn(
        META_SERVER,
        &[
            "--listen",
            listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--beacon-interval-ms",
            &beacon,
            "--lease-ms",
            &lease,
            "--grace-ms",
            &grace,
            "--lb-interval-ms",
            "100",
        ],
    )
}

/// Starts meta server `id` of a group (data in `dir/meta-ID`) with test timings: a new group
/// (`--single`) when `join` is `None`, else joining through `join` (`--observer` if asked).
pub fn start_meta_member(dir: &Path, id: u64, join: Option<&str>, observer: bool) -> Proc {
    let data = dir.join(format!("meta-{id}"));
    let id = id.to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--id",
        &id,
        "--beacon-interval-ms",
        "100",
        "--lease-ms",
        "800",
        "--grace-ms",
        "1000",
        "--lb-interval-ms",
        "100",
        "--raft-heartbeat-ms",
        "50",
        "--raft-election-ms",
        "300",
    ];
    match join {
        None => args.push("--single"),
        Some(addr) => args.extend(["--join", addr]),
    }
    if observer {
        args.push("--observer");
    }
    Proc::spawn(META_SERVER, &args)
}

/// Starts replica-server process `i` (data in `dir/replica-i`) against `meta`.
pub fn start_replica(dir: &Path, i: usize, meta: &str) -> Proc {
    start_replica_on(dir, i, meta, "127.0.0.1:0")
}

/// Starts replica-server process `i` on `listen` (to restart a node under its name).
pub fn start_replica_on(dir: &Path, i: usize, meta: &str, listen: &str) -> Proc {
    let data = dir.join(format!("replica-{i}"));
    Proc::spawn(
        REPLICA_SERVER,
        &[
            "--listen",
            listen,
            "--meta",
            meta,
            "--data-dir",
            data.to_str().unwrap(),
            "--beacon-interval-ms",
            "100",
        ],
    )
}
