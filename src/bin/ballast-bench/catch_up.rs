//! `catch-up`: what a replica server copies when it comes back after being down for a
//! while under write load.
//!
//! Four replica servers hold a table filled to `--size-mb`; writers keep writing while one node is killed (SIGKILL), stays down
//! for `--down`, and is restarted on its data. Cure re-adds it (the last dropped member)
//! and each of its replicas learns from its primary: from the primary's log if the
//! primary kept what it needs, else by a snapshot of the whole replica. The report puts
//! the bytes copied by snapshots beside the data the node holds (the baseline: a full
//! copy; its share of the payload, as keys spread evenly over partitions), and says how
//! many replicas caught up from the log, from the restarted node's own `server-info`
//! counters. MB here is 10^6 bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ballast::client::DataClient;

use crate::{learn, ops};

const TABLE: &str = "catchup";
const MB: f64 = 1e6;
/// Replica servers: four, so that with one down the meta server does not freeze (Pegasus's
/// `min_live_node_count_for_unfreeze` is 3) and moves its primaries.
const NODES: usize = 4;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct CatchUpArgs {
    /// Data in the table before the node goes down, in MB.
    #[arg(long, default_value_t = 64)]
    size_mb: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1000)]
    value_size: usize,
    /// How long the node stays down.
    #[arg(long, default_value = "10s", value_parser = ops::parse_duration)]
    down: Duration,
    /// Writers that keep writing throughout.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Partitions of the table.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Keep the cluster's directory (data and logs) and print where it is.
    #[arg(long)]
    keep: bool,
}

/// Writers that set `value_size`-byte values until told to stop; they count the bytes
/// acknowledged and the writes that failed (a primary moving away from the dead node).
struct Writers {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(data: Arc<DataClient>, n: usize, value_size: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let tasks = (0..n)
            .map(|w| {
                let (data, stop) = (data.clone(), stop.clone());
                let (bytes, failed) = (bytes.clone(), failed.clone());
                tokio::spawn(async move {
                    let value = vec![b'w'; value_size];
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("live_{w}_{i}");
                        let pairs = [(b"s".to_vec(), value.clone())];
                        match data.set(TABLE, key.as_bytes(), &pairs, 0).await {
                            Ok(_) => bytes.fetch_add(value_size as u64, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        i += 1;
                    }
                })
            })
            .collect();
        Writers {
            stop,
            bytes,
            failed,
            tasks,
        }
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.failed.load(Ordering::Relaxed)
    }
}

/// Runs the catch-up benchmark and prints its report.
pub async fn run(args: CatchUpArgs) -> Result<()> {
    if args.size_mb == 0 || args.value_size == 0 || args.writers == 0 || args.partitions == 0 {
        bail!("--size-mb, --value-size, --writers and --partitions must be at least 1");
    }
    let dir = tempfile::Builder::new().prefix("catchup").tempdir()?;
    let (cluster, meta) =
        ops::cluster_with_table(dir.path(), &[], NODES, TABLE, args.partitions, 3).await?;
    let mut cluster = cluster.context("no cluster")?;
    let data = Arc::new(DataClient::new(meta.clone(), Duration::from_secs(30)));
    let filled = learn::fill(
        data.clone(),
        TABLE,
        args.size_mb * MB as u64,
        args.value_size,
    )
    .await?;

    let writers = Writers::start(data, args.writers, args.value_size);
    // The victim is the node holding the most replicas of the table.
    let partitions = ops::partitions(&meta, TABLE).await?;
    let held_by = |node: &String| {
        partitions
            .iter()
            .filter(|p| &p.primary == node || p.secondaries.contains(node))
            .count() as u64
    };
    let victim = cluster
        .running()
        .into_iter()
        .max_by_key(held_by)
        .context("no node")?;
    let replicas = held_by(&victim);
    if replicas == 0 {
        bail!("no node holds a replica of {TABLE}");
    }
    cluster.kill(&victim)?;
    let before = writers.bytes();
    // The scenario itself: the node stays down this long while writes go on.
    tokio::time::sleep(args.down).await;
    let while_down = writers.bytes() - before;
    cluster.restart(&victim)?;
    let back = Instant::now();
    let limit = Duration::from_secs(120 + args.size_mb / 2);
    ops::wait_healthy(&meta, TABLE, limit).await?;
    let caught_up = back.elapsed().as_secs_f64();
    let after = writers.bytes();
    let failed = writers.stop().await;

    let info = ops::remote(&victim, "server-info", &[]).await?;
    let number = |key: &str| info[key].as_u64().unwrap_or(0);
    let (snapshots, copied, from_log) = (
        number("learned_snapshots"),
        number("learned_snapshot_bytes"),
        number("learned_from_log"),
    );
    // Keys spread evenly over the partitions: the victim holds its replicas' share.
    let held = (filled + after) * replicas / u64::from(args.partitions);
    println!(
        "catch-up: {NODES} replica servers, {} partitions x 3 replicas, {:.0} MB of {}-byte values; one node down {:?} under {} writers",
        args.partitions,
        filled as f64 / MB,
        args.value_size,
        args.down,
        args.writers
    );
    println!(
        "while down: {:.1} MB written; healthy {caught_up:.1} s after the restart; {failed} writes failed (primaries moving)",
        while_down as f64 / MB
    );
    println!("replicas  from_log  snapshots  copied_MB  held_MB  copied/held");
    println!(
        "{:>8} {:>9} {:>10} {:>10.1} {:>8.1} {:>11.1}%",
        replicas,
        from_log,
        snapshots,
        copied as f64 / MB,
        held as f64 / MB,
        100.0 * copied as f64 / held.max(1) as f64
    );
    drop(cluster);
    if args.keep {
        println!("kept {}", dir.keep().display());
    }
    Ok(())
}
