//! `failover`: the longest write stall on a partition when its primary's node goes away,
//! beside a primary move measured in the same run. Writers keep writing keys of one
//! partition; then, one after another, the primary is moved (`balance -p move_pri`), its
//! node is stopped the planned way (SIGTERM) and restarted, and it is killed (`kill -9`)
//! and restarted. A kill's stall is bounded by the failover time (the grace period plus
//! one failure-detector check, printed beside it): cure runs as soon as the node is
//! declared dead. A planned stop's stall should be a primary move's. Every acknowledged
//! write is read back at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ballast::client::{DataClient, MetaClient};

use crate::move_pri::{PARTITIONS, PIDX, Seen, TABLE, longest_gap, move_once, ms, verify, writer};
use crate::ops;
use crate::procs::ProcCluster;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Rounds of each kind of failover.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Concurrent writers to the partition.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// The meta server's grace period, in ms.
    #[arg(long, default_value_t = 1500)]
    grace_ms: u64,
    /// The replica servers' lease, in ms (less than the grace period).
    #[arg(long, default_value_t = 1200)]
    lease_ms: u64,
    /// The beacon interval, in ms.
    #[arg(long, default_value_t = 100)]
    beacon_ms: u64,
    /// Writing after each round before the next one.
    #[arg(long, default_value = "2s", value_parser = ops::parse_duration)]
    settle: Duration,
}

/// One kind of failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Move,
    Sigterm,
    Kill,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Move => "move_pri",
            Kind::Sigterm => "sigterm",
            Kind::Kill => "kill -9",
        }
    }
}

/// Waits until the partition has a primary other than `old` (its other replicas come
/// back when the node is restarted).
async fn settled(meta: &MetaClient, old: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, p) = ops::partition(meta, TABLE, PIDX).await?;
        if !p.primary.is_empty() && p.primary != old {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("partition {PIDX} did not settle within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one round of `kind`; returns the node the primary left.
async fn round(
    cluster: &mut ProcCluster,
    meta: &MetaClient,
    kind: Kind,
    n: usize,
) -> Result<String> {
    let (_, p) = ops::partition(meta, TABLE, PIDX).await?;
    let primary = p.primary.clone();
    eprintln!("failover: round {} {} of {primary}", n + 1, kind.name());
    match kind {
        Kind::Move => {
            move_once(meta, n).await?;
        }
        Kind::Sigterm => {
            cluster.terminate(&primary)?;
            settled(meta, &primary).await?;
            cluster.restart(&primary)?;
        }
        Kind::Kill => {
            cluster.kill(&primary)?;
            settled(meta, &primary).await?;
            cluster.restart(&primary)?;
        }
    }
    ops::wait_healthy(meta, TABLE, Duration::from_secs(120)).await?;
    Ok(primary)
}

/// Runs the benchmark; returns whether every acknowledged write survived.
pub async fn run(args: FailoverArgs) -> Result<bool> {
    if args.rounds == 0 || args.clients == 0 || args.lease_ms >= args.grace_ms {
        bail!("--rounds and --clients must be at least 1, and --lease-ms below --grace-ms");
    }
    let dir = tempfile::Builder::new().prefix("failover").tempdir()?;
    let (grace, lease, beacon) = (
        args.grace_ms.to_string(),
        args.lease_ms.to_string(),
        args.beacon_ms.to_string(),
    );
    let meta_args = [
        "--grace-ms",
        grace.as_str(),
        "--lease-ms",
        lease.as_str(),
        "--beacon-interval-ms",
        beacon.as_str(),
    ];
    let mut cluster = ProcCluster::start(dir.path(), 4, &meta_args)?;
    let meta = MetaClient::new(&[cluster.meta_addr().to_string()], Duration::from_secs(5))?;
    ops::create_table(&meta, TABLE, PARTITIONS, 3).await?;
    let failover_ms = meta.cluster_info().await?.failover_ms;
    let data = Arc::new(DataClient::new(meta.clone(), Duration::from_secs(60)));
    let seen = Arc::new(Seen::default());
    *seen.acked.lock().expect("lock") = vec![Vec::new(); args.clients];
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..args.clients)
        .map(|w| tokio::spawn(writer(data.clone(), seen.clone(), stop.clone(), w)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rounds = Vec::new();
    for kind in [Kind::Move, Kind::Sigterm, Kind::Kill] {
        for n in 0..args.rounds as usize {
            let from = Instant::now();
            let node = round(&mut cluster, &meta, kind, n).await?;
            tokio::time::sleep(args.settle).await;
            rounds.push((kind, node, from, Instant::now()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    let mut done = seen.done.lock().expect("lock").clone();
    done.sort();
    let acked = seen.acked.lock().expect("lock").clone();
    let (checked, bad) = verify(&data, &acked).await?;
    drop(cluster);

    println!(
        "failover: partition {PIDX} of {PARTITIONS}, {} writers, beacon {} ms, lease {} ms, grace {} ms, failover time {failover_ms} ms",
        args.clients, args.beacon_ms, args.lease_ms, args.grace_ms
    );
    println!("round  kind      node                  stall_ms");
    let worst = |k: Kind| -> f64 {
        rounds
            .iter()
            .filter(|r| r.0 == k)
            .map(|r| ms(longest_gap(&done, r.2, r.3)))
            .fold(0.0, f64::max)
    };
    for (i, (kind, node, a, b)) in rounds.iter().enumerate() {
        println!(
            "{:>5}  {:<8}  {:<20} {:>9.0}",
            i + 1,
            kind.name(),
            node,
            ms(longest_gap(&done, *a, *b))
        );
    }
    let (moved, termed, killed) = (worst(Kind::Move), worst(Kind::Sigterm), worst(Kind::Kill));
    let passed = bad == 0;
    println!(
        "failover {}: worst stall move_pri {moved:.0} ms, sigterm {termed:.0} ms ({:.1}x move_pri), kill -9 {killed:.0} ms (failover time {failover_ms} ms, +1 s allowed: {}), writes acknowledged {}, read back {checked}, lost = {bad}",
        if passed { "passed" } else { "FAILED" },
        termed / moved.max(0.001),
        if killed <= (failover_ms + 1000) as f64 {
            "within"
        } else {
            "OVER"
        },
        done.len(),
    );
    Ok(passed)
}
