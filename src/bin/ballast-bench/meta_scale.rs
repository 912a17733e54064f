//! `meta-scale`: the meta server at a large cluster's size. A real meta server process
//! and `--nodes` simulated replica servers (lightweight beacon clients in this process,
//! see [`crate::sim_nodes`]) holding `--replicas` replicas (tables of three replicas per
//! partition, at most 4,096 partitions each). It reports:
//!
//! - how long placing every replica took (create, then cure to full health);
//! - the meta server's CPU per second while only beacons arrive, and per 1,000 beacons,
//!   and its resident memory (now and peak);
//! - `nodes -d` and `ls -d` through the shell binary: the median and worst of `--runs`
//!   one-shot runs, process start included;
//! - a node killed: how long from its death being declared (seen UNALIVE, polled every
//!   20 ms) until every partition it was primary of has a primary again.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ballast::client::MetaClient;
use ballast::pb;

use crate::ops;
use crate::proc_stats::{cpu_time, memory};
use crate::procs::ProcCluster;
use crate::sim_nodes::SimNodes;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct MetaScaleArgs {
    /// Simulated replica servers.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Replicas in all (three per partition).
    #[arg(long, default_value_t = 100_000)]
    replicas: usize,
    /// How often the nodes beacon, in ms.
    #[arg(long, default_value_t = 1000)]
    beacon_ms: u64,
    /// How often cure and the balancer run (the meta server's default; a death is cured
    /// at once regardless).
    #[arg(long, default_value_t = 10_000)]
    lb_interval_ms: u64,
    /// How long the beacon-only window lasts.
    #[arg(long, default_value = "10s", value_parser = ops::parse_duration)]
    window: Duration,
    /// One-shot shell runs per verb.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Keep the meta server's directory (data and log) and print where it is.
    #[arg(long)]
    keep: bool,
}

const REPLICAS_PER_PARTITION: usize = 3;
const MAX_PARTITIONS_PER_TABLE: usize = 4096;
/// The simulated nodes' first port (names only: nothing listens there).
const FIRST_PORT: u16 = 40_000;

/// Partitions (fully healthy, all, without a primary) over every table.
async fn health(meta: &MetaClient) -> Result<(usize, usize, usize)> {
    let apps = meta.list_apps(pb::AppStatus::Available).await?;
    let parts = apps.iter().flat_map(|a| &a.partitions);
    let (mut healthy, mut total, mut headless) = (0, 0, 0);
    for p in parts {
        total += 1;
        healthy +=
            usize::from(!p.primary.is_empty() && p.secondaries.len() + 1 == REPLICAS_PER_PARTITION);
        headless += usize::from(p.primary.is_empty());
    }
    Ok((healthy, total, headless))
}

/// The wall time of one-shot `shell --meta ADDR ARGS…` runs, sorted.
fn shell_times(bin_dir: &Path, meta: &str, args: &[&str], runs: usize) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(bin_dir.join("shell"))
            .args(["--meta", meta])
            .args(args)
            .env_remove("BALLAST_META")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        times.push(started.elapsed());
        ensure!(status.success(), "shell {args:?} failed: {status}");
    }
    times.sort();
    Ok(times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints its report.
pub async fn run(args: MetaScaleArgs) -> Result<()> {
    ensure!(
        args.nodes >= REPLICAS_PER_PARTITION,
        "--nodes must be at least 3"
    );
    ensure!(args.runs > 0, "--runs must be at least 1");
    let partitions = args.replicas.div_ceil(REPLICAS_PER_PARTITION).max(1);
    let tables = partitions.div_ceil(MAX_PARTITIONS_PER_TABLE);
    let per_table = partitions.div_ceil(tables);
    let dir = tempfile::Builder::new().prefix("meta-scale").tempdir()?;
    let beacon = args.beacon_ms.to_string();
    let (lease, grace) = (
        (args.beacon_ms * 4).to_string(),
        (args.beacon_ms * 5).to_string(),
    );
    let lb = args.lb_interval_ms.to_string();
    let flags = [
        "--beacon-interval-ms",
        &beacon,
        "--lease-ms",
        &lease,
        "--grace-ms",
        &grace,
        "--lb-interval-ms",
        &lb,
        "--log-level",
        "warn",
    ];
    let cluster = ProcCluster::start(dir.path(), 0, &flags)?;
    let pid = cluster
        .meta_pid()
        .context("the meta server is not running")?;
    let addr = cluster.meta_addr().to_string();
    let meta = MetaClient::new(std::slice::from_ref(&addr), Duration::from_secs(30))?;
    let mut nodes = SimNodes::start(std::slice::from_ref(&addr), args.nodes, FIRST_PORT)?;
    let joined = Instant::now();
    loop {
        let alive = meta.list_nodes(pb::NodeStatus::Alive).await?.len();
        if alive == args.nodes {
            break;
        }
        if joined.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {alive} of {} simulated nodes ALIVE after 60 s",
                args.nodes
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let placing = Instant::now();
    for t in 0..tables {
        meta.create_app(pb::CreateAppRequest {
            app_name: format!("scale{t}"),
            partition_count: per_table as u32,
            replica_count: REPLICAS_PER_PARTITION as u32,
            ..Default::default()
        })
        .await?;
    }
    let mut said = Instant::now();
    loop {
        let (healthy, total, headless) = health(&meta).await?;
        if total == tables * per_table && healthy == total {
            break;
        }
        if said.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "placing: {healthy} of {total} partitions healthy, {headless} without a primary"
            );
            said = Instant::now();
        }
        if placing.elapsed() > Duration::from_secs(600) {
            bail!("{healthy} of {total} partitions healthy after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let placed = placing.elapsed();

    // Beacons only.
    let (cpu0, beacons0, at0) = (cpu_time(pid)?, nodes.beacons(), Instant::now());
    let own0 = cpu_time(std::process::id())?;
    tokio::time::sleep(args.window).await;
    let secs = at0.elapsed().as_secs_f64();
    let cpu = (cpu_time(pid)? - cpu0).as_secs_f64();
    let own = (cpu_time(std::process::id())? - own0).as_secs_f64();
    let beacons = nodes.beacons() - beacons0;
    let (rss, peak) = memory(pid)?;

    let bin_dir = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .to_path_buf();
    let nodes_d = shell_times(&bin_dir, &addr, &["nodes", "-d"], args.runs)?;
    let ls_d = shell_times(&bin_dir, &addr, &["ls", "-d"], args.runs)?;

    // A node dies: its partitions get a primary again.
    let victim = nodes.addresses()[0].clone();
    let mut affected = Vec::new();
    for app in meta.list_apps(pb::AppStatus::Available).await? {
        let id = app.info.as_ref().map_or(0, |i| i.app_id);
        for p in &app.partitions {
            if p.primary == victim {
                affected.push((id, p.pidx));
            }
        }
    }
    let killed = Instant::now();
    nodes.kill(0);
    let declared = loop {
        let unalive = meta.list_nodes(pb::NodeStatus::Unalive).await?;
        if unalive.iter().any(|n| n.address == victim) {
            break Instant::now();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("{victim} not declared dead within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recovered = loop {
        let apps = meta.list_apps(pb::AppStatus::Available).await?;
        let headless = apps
            .iter()
            .flat_map(|a| {
                let id = a.info.as_ref().map_or(0, |i| i.app_id);
                a.partitions.iter().map(move |p| (id, p))
            })
            .filter(|(id, p)| {
                affected.contains(&(*id, p.pidx)) && (p.primary.is_empty() || p.primary == victim)
            })
            .count();
        if headless == 0 {
            break Instant::now();
        }
        if declared.elapsed() > Duration::from_secs(60) {
            bail!("{headless} partitions still without a primary 60 s after the death");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let median = |t: &[Duration]| t[t.len() / 2];
    let worst = |t: &[Duration]| t[t.len() - 1];
    println!(
        "meta-scale: {} simulated nodes, {} tables x {per_table} partitions x 3 = {} replicas, beacons every {} ms",
        args.nodes,
        tables,
        tables * per_table * REPLICAS_PER_PARTITION,
        args.beacon_ms
    );
    println!(
        "placement (create + cure to healthy)   {:>10.1} s",
        placed.as_secs_f64()
    );
    println!(
        "beacons/s                              {:>10.0}",
        beacons as f64 / secs
    );
    println!(
        "meta cpu (cores) while beaconing       {:>10.3}",
        cpu / secs
    );
    println!(
        "meta cpu ms per 1000 beacons           {:>10.1}",
        cpu * 1000.0 / (beacons.max(1) as f64 / 1000.0)
    );
    println!(
        "bench process cpu (cores, simulated)   {:>10.3}",
        own / secs
    );
    println!(
        "meta rss / peak (MB)                   {:>10.1} / {:.1}",
        rss as f64 / 1e6,
        peak as f64 / 1e6
    );
    println!(
        "shell nodes -d  median / worst (ms)    {:>10.1} / {:.1}",
        ms(median(&nodes_d)),
        ms(worst(&nodes_d))
    );
    println!(
        "shell ls -d     median / worst (ms)    {:>10.1} / {:.1}",
        ms(median(&ls_d)),
        ms(worst(&ls_d))
    );
    println!(
        "node death: {} partitions it led; declared {:.0} ms after the kill (grace {grace} ms); all led again {:.0} ms after the declaration",
        affected.len(),
        ms(declared - killed),
        ms(recovered - declared)
    );
    drop(nodes);
    drop(cluster);
    if args.keep {
        println!("kept {}", dir.keep().display());
    }
    Ok(())
}
