//! `learn`: how fast a new replica copies its partition's data, beside how fast this
//! disk writes sequentially.
//!
//! A one-partition table on three replica servers is filled to `--size-mb` through the
//! data client; a fourth server joins; `balance copy_sec` moves a secondary onto it, so
//! it learns the whole replica from the primary (snapshot stream, then the log since).
//! The learner's own timing (`last_learned_bytes` / `last_learned_seconds` in its
//! `server-info`) gives the copy rate; the time from the proposal until the new node is a
//! secondary adds the meta server's scheduling and the upgrade. The baseline, measured
//! in the same run on the same disk, is `dd if=/dev/zero bs=1M count=N conv=fdatasync`
//! for the same number of megabytes. MB here is 10^6 bytes, as dd counts. A last line
//! gives the learner's resident memory after the copy and at its peak.
//!
//! The copy starts once every replica has settled (a quiet spell folds a store into a
//! base file, which a learner is sent byte for byte; no fold then shares the disk with
//! the copy) — a replica at rest, as one being moved usually is. `--unsettled` starts
//! it right after the fill, while the primary's records are still in redb and are
//! streamed one by one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ballast::client::{DataClient, MetaClient};
use ballast::pb;

use crate::ops;

const TABLE: &str = "learn";
const MB: f64 = 1e6;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct LearnArgs {
    /// How much data to put in the replica before it is copied, in MB.
    #[arg(long, default_value_t = 256)]
    size_mb: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1000)]
    value_size: usize,
    /// Set nfs.max_copy_rate_megabytes_per_disk on every node first (default: leave
    /// the nodes' own limit, Pegasus's 500).
    #[arg(long)]
    copy_rate_mb: Option<u64>,
    /// Keep the cluster's directory (data and logs) and print where it is.
    #[arg(long)]
    keep: bool,
    /// Start the copy right after the fill, not once every replica's store has settled
    /// into a base file.
    #[arg(long)]
    unsettled: bool,
}

/// A replica directory settled: a base file in place (its size), no fold under way.
fn settled(dir: &std::path::Path) -> Option<u64> {
    use ballast::replica::base_files::{BASE_FOLD, is_base_file};
    if dir.join(BASE_FOLD).exists() {
        return None;
    }
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_base_file))
        .find_map(|e| e.metadata().ok().map(|m| m.len()))
}

/// Records per write: one hash key with this many sort keys.
const RECORDS_PER_WRITE: usize = 200;
/// Concurrent writers while filling.
const FILLERS: usize = 4;

/// Fills `table` with about `bytes` of values; returns the bytes written.
pub async fn fill(
    data: Arc<DataClient>,
    table: &'static str,
    bytes: u64,
    value_size: usize,
) -> Result<u64> {
    let per_write = (RECORDS_PER_WRITE * value_size) as u64;
    let writes = bytes.div_ceil(per_write.max(1));
    let mut tasks = Vec::new();
    for w in 0..FILLERS as u64 {
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; value_size];
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..RECORDS_PER_WRITE)
                .map(|s| (format!("s{s:04}").into_bytes(), value.clone()))
                .collect();
            let mut i = w;
            while i < writes {
                data.set(table, format!("fill_{i:08}").as_bytes(), &pairs, 0)
                    .await
                    .with_context(|| format!("fill write {i}"))?;
                i += FILLERS as u64;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(writes * per_write)
}

/// Runs `dd … conv=fdatasync` of `mb` megabytes into `dir`; returns MB/s.
fn dd_baseline(dir: &std::path::Path, mb: u64) -> Result<f64> {
    let target = dir.join("dd-baseline");
    let started = Instant::now();
    let out = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .args(["bs=1M", &format!("count={mb}"), "conv=fdatasync"])
        .output()
        .context("cannot run dd (the baseline needs it)")?;
    let elapsed = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("dd failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let _ = std::fs::remove_file(&target);
    Ok((mb << 20) as f64 / MB / elapsed)
}

/// Waits until `node` is a secondary of the partition.
async fn wait_secondary(meta: &MetaClient, node: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((_, p)) = ops::partition(meta, TABLE, 0).await
            && p.secondaries.iter().any(|s| s == node)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{node} did not become a secondary within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the learning benchmark and prints its report.
pub async fn run(args: LearnArgs) -> Result<()> {
    if args.size_mb == 0 || args.value_size == 0 {
        bail!("--size-mb and --value-size must be at least 1");
    }
    let dir = tempfile::Builder::new().prefix("learn").tempdir()?;
    let (cluster, meta) = ops::cluster_with_table(dir.path(), &[], 3, TABLE, 1, 3).await?;
    let mut cluster = cluster.context("no cluster")?;
    let data = Arc::new(DataClient::new(meta.clone(), Duration::from_secs(30)));
    let started = Instant::now();
    let written = fill(data, TABLE, args.size_mb * MB as u64, args.value_size).await?;
    let fill_secs = started.elapsed().as_secs_f64();

    let source = if args.unsettled {
        "unsettled: records streamed from redb".to_string()
    } else {
        // Every replica settled, not only the primary: a fold still writing on another
        // node would share the disk with the copy.
        let (app_id, part) = ops::partition(&meta, TABLE, 0).await?;
        let primary = part.primary.clone();
        let dirs: Vec<_> = std::iter::once(&part.primary)
            .chain(&part.secondaries)
            .map(|node| {
                let dir = cluster.node_dir(node).context("a replica not ours")?;
                Ok(dir.join("replicas").join(format!("{app_id}.0")))
            })
            .collect::<Result<_>>()?;
        if primary.is_empty() || dirs.len() < 2 {
            bail!("the partition has no primary or no secondary");
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let bytes = loop {
            let sizes: Option<Vec<u64>> = dirs.iter().map(|d| settled(d)).collect();
            if let Some(sizes) = sizes {
                break sizes[0];
            }
            if Instant::now() > deadline {
                bail!("the replicas did not settle into base files in 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        format!(
            "settled: a {:.0} MB base file sent byte for byte",
            bytes as f64 / MB
        )
    };
    let new_node = cluster.add_node()?;
    if let Some(rate) = args.copy_rate_mb {
        for node in cluster.running() {
            ops::remote(
                &node,
                "nfs.max_copy_rate_megabytes_per_disk",
                &[&rate.to_string()],
            )
            .await?;
        }
    }
    ops::wait_alive(&meta, &new_node, Duration::from_secs(20)).await?;
    let (app_id, part) = ops::partition(&meta, TABLE, 0).await?;
    let from = part.secondaries.first().context("no secondary")?.clone();
    // The copy and `dd` each start on a disk with nothing else to write back: the fill
    // leaves hundreds of MB dirty, and whichever ran while the kernel flushed them would
    // run at a fraction of its rate.
    rustix::fs::sync();
    let proposed = Instant::now();
    meta.propose(pb::ProposeRequest {
        gpid: Some(pb::Gpid { app_id, pidx: 0 }),
        kind: "copy_sec".into(),
        from,
        to: new_node.clone(),
        force: false,
    })
    .await?;
    // Generous: scheduling, plus the copy at a tenth of the limit or 5 MB/s.
    let rate = args.copy_rate_mb.unwrap_or(500).max(1);
    let limit = 60 + args.size_mb / 5 + args.size_mb * 10 / rate;
    wait_secondary(&meta, &new_node, Duration::from_secs(limit)).await?;
    let to_member = proposed.elapsed().as_secs_f64();
    let info = ops::remote(&new_node, "server-info", &[]).await?;
    let learned = info["last_learned_bytes"].as_u64().unwrap_or(0);
    let learn_secs = info["last_learned_seconds"].as_f64().unwrap_or(0.0);
    if learned == 0 || learn_secs <= 0.0 {
        bail!("{new_node} reports no completed learning: {info}");
    }
    let rate_limit = info["max_copy_rate_megabytes_per_disk"]
        .as_u64()
        .unwrap_or(0);
    // Read before `dd` runs: the learner's memory as the copy left it.
    let pid = cluster
        .node_pid(&new_node)
        .context("the learner is not running")?;
    let (rss, peak) = crate::proc_stats::memory(pid)?;
    let dd_mb = (learned as f64 / (1 << 20) as f64).ceil() as u64;
    rustix::fs::sync();
    let dd_rate = dd_baseline(dir.path(), dd_mb.max(1))?;

    println!(
        "learn: one replica, {:.0} MB of {}-byte values ({} records), copy limit {rate_limit} MB/s",
        written as f64 / MB,
        args.value_size,
        written / args.value_size as u64
    );
    println!(
        "fill:  {:.1} s, {:.1} MB/s through 3 replicas",
        fill_secs,
        written as f64 / MB / fill_secs
    );
    let on_link = info["learned_on_copy_links"].as_u64().unwrap_or(0) > 0;
    let way = if on_link { ", on a copy link" } else { "" };
    println!("source: {source}{way}");
    println!("what                       MB     seconds      MB/s   x dd");
    let row = |what: &str, mb: f64, secs: f64| {
        let rate = mb / secs;
        println!(
            "{what:<22} {mb:>6.0} {secs:>11.2} {rate:>9.1} {:>6.2}",
            rate / dd_rate
        );
    };
    row("learn (snapshot+log)", learned as f64 / MB, learn_secs);
    row("proposal -> secondary", learned as f64 / MB, to_member);
    let dd_bytes = (dd_mb << 20) as f64 / MB;
    row("dd conv=fdatasync", dd_bytes, dd_bytes / dd_rate);
    println!(
        "learner resident {:.0} MB, peak {:.0} MB",
        rss as f64 / MB,
        peak as f64 / MB
    );
    drop(cluster);
    if args.keep {
        println!("kept {}", dir.keep().display());
    }
    Ok(())
}
