//! `failover`: the longest write stall on a partition when its primary's node goes away,
//! beside a primary move measured in the same run. Writers keep writing keys of one
//! partition; then, one after another, the primary is moved (`balance -p move_pri`), its
//! node is stopped the planned way (SIGTERM) and restarted, and it is killed (`kill -9`)
//! and restarted; last, the primary's node is decommissioned. A kill's stall is bounded
//! by the failover time (the grace period plus one failure-detector check, printed
//! beside it): cure runs as soon as the node is declared dead; how soon the meta server
//! stops counting the killed node as serving is printed too. A planned stop's and a
//! decommission's stall should be a primary move's. With `--metas 3` the meta servers are a
//! Raft group and a last kind of round kills -9 the meta leader: the writes should stall no
//! longer than an election (the replica servers' leases are renewed by whichever member
//! leads). Every acknowledged write is read back at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ballast::client::{DataClient, MetaClient};
use ballast::pb;

use crate::move_pri::{PARTITIONS, PIDX, Seen, TABLE, move_once, ms, verify, writer};
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
    /// Meta servers: 3 (or more) runs them as a group and adds rounds that kill -9 the
    /// meta leader.
    #[arg(long, default_value_t = 1)]
    metas: usize,
}

/// One kind of failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Move,
    Sigterm,
    Kill,
    Decommission,
    MetaKill,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Move => "move_pri",
            Kind::Sigterm => "sigterm",
            Kind::Kill => "kill -9",
            Kind::Decommission => "decommission",
            Kind::MetaKill => "meta kill -9",
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

/// A round's stall: the longest gap between successful writes from the last one before
/// `from` up to `to`. Unlike a primary move's window, the end is not stretched to the
/// next write: the next round starts right after `to`, and its stall is its own.
fn stall(done: &[std::time::Instant], from: Instant, to: Instant) -> Duration {
    let start = done.partition_point(|t| *t <= from);
    let end = done.partition_point(|t| *t <= to);
    let first = if start > 0 { done[start - 1] } else { from };
    std::iter::once(first)
        .chain(done[start..end].iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// Waits until the meta server no longer counts `node` as serving; returns when.
async fn not_serving(meta: &MetaClient, node: &str) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nodes = meta.list_nodes(pb::NodeStatus::Unspecified).await?;
        if nodes.iter().any(|n| n.address == node && !n.serving) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("{node} still counted as serving after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs one round of `kind`; returns the node the primary left. A kill's time until the
/// meta server stops counting the node as serving goes to `noticed`.
async fn round(
    cluster: &mut ProcCluster,
    meta: &MetaClient,
    kind: Kind,
    n: usize,
    noticed: &mut Vec<Duration>,
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
            let killed = Instant::now();
            cluster.kill(&primary)?;
            let lost = not_serving(meta, &primary).await?;
            noticed.push(lost.duration_since(killed));
            settled(meta, &primary).await?;
            cluster.restart(&primary)?;
        }
        Kind::MetaKill => {
            let leader = meta.cluster_info().await?.primary_meta_server;
            let Some(at) = cluster.meta_addrs().iter().position(|a| *a == leader) else {
                bail!("the meta leader {leader} is not one of this cluster's meta servers");
            };
            cluster.kill_meta(at + 1)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let info = meta.cluster_info().await;
                if info.is_ok_and(|i| i.primary_meta_server != leader) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("no new meta leader within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            cluster.restart_meta(at + 1)?;
            ops::wait_healthy(meta, TABLE, Duration::from_secs(120)).await?;
            return Ok(leader);
        }
        Kind::Decommission => {
            let request = pb::DecommissionRequest {
                nodes: vec![primary.clone()],
                dry_run: false,
            };
            meta.decommission(request).await?;
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let status = meta.decommission_status().await?;
                let done = status
                    .nodes
                    .iter()
                    .any(|d| d.node == primary && d.state == pb::NodeState::Decommissioned as i32);
                if done {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the decommission of {primary} did not end within 300 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
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
    let mut cluster = ProcCluster::start_group(dir.path(), 4, args.metas.max(1), &meta_args)?;
    let meta = MetaClient::new(&cluster.meta_addrs(), Duration::from_secs(5))?;
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
    let mut noticed = Vec::new();
    let mut kinds = vec![Kind::Move, Kind::Sigterm, Kind::Kill, Kind::Decommission];
    if args.metas >= 3 {
        kinds.push(Kind::MetaKill);
    }
    for kind in kinds {
        // A decommission removes a node for good: once, last.
        let times = if kind == Kind::Decommission {
            1
        } else {
            args.rounds as usize
        };
        for n in 0..times {
            let from = Instant::now();
            let node = round(&mut cluster, &meta, kind, n, &mut noticed).await?;
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
    if std::env::var_os("BALLAST_KEEP_LOGS").is_some() {
        eprintln!("failover: logs kept in {}", dir.path().display());
        let _ = dir.keep();
    }

    println!(
        "failover: partition {PIDX} of {PARTITIONS}, {} writers, beacon {} ms, lease {} ms, grace {} ms, failover time {failover_ms} ms",
        args.clients, args.beacon_ms, args.lease_ms, args.grace_ms
    );
    println!("round  kind          node                  stall_ms");
    let worst = |k: Kind| -> f64 {
        rounds
            .iter()
            .filter(|r| r.0 == k)
            .map(|r| ms(stall(&done, r.2, r.3)))
            .fold(0.0, f64::max)
    };
    for (i, (kind, node, a, b)) in rounds.iter().enumerate() {
        println!(
            "{:>5}  {:<12}  {:<20} {:>9.0}",
            i + 1,
            kind.name(),
            node,
            ms(stall(&done, *a, *b))
        );
    }
    let (moved, termed, killed) = (worst(Kind::Move), worst(Kind::Sigterm), worst(Kind::Kill));
    let drained = worst(Kind::Decommission);
    let lost_ms = noticed.iter().map(|d| ms(*d)).fold(0.0, f64::max);
    println!(
        "kill -9: the meta server stopped counting the node as serving within {lost_ms:.0} ms (worst of {}; the grace period is {} ms)",
        noticed.len(),
        args.grace_ms
    );
    if args.metas >= 3 {
        println!(
            "meta leader kill -9: worst write stall {:.0} ms ({} rounds; election timeout 300-600 ms, leases {} ms)",
            worst(Kind::MetaKill),
            args.rounds,
            args.lease_ms
        );
    }
    let passed = bad == 0;
    let within = if killed <= (failover_ms + 1000) as f64 {
        "within"
    } else {
        "OVER"
    };
    println!(
        "failover {}: worst stall move_pri {moved:.0} ms, sigterm {termed:.0} ms ({:.1}x move_pri), decommission {drained:.0} ms ({:.1}x move_pri), kill -9 {killed:.0} ms (failover time {failover_ms} ms, +1 s allowed: {within}), writes acknowledged {}, read back {checked}, lost = {bad}",
        if passed { "passed" } else { "FAILED" },
        termed / moved.max(0.001),
        drained / moved.max(0.001),
        done.len(),
    );
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rounds_stall_ends_at_the_round_and_starts_before_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let done = vec![at(0), at(10), at(500), at(510), at(2_000)];
        // From the last write before the round (10) to the first inside it (500).
        assert_eq!(stall(&done, at(100), at(600)), Duration::from_millis(490));
        // The gap after the round's end belongs to the next round.
        assert_eq!(stall(&done, at(505), at(600)), Duration::from_millis(10));
    }
}
