//! Cluster operations the benchmarks share, through the same clients the shell uses:
//! create a table, set the level, run remote commands, wait for health.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ballast::client::{MetaClient, call_remote};
use ballast::pb;

/// The cluster a benchmark runs against: its own processes under `dir` (when `meta` is
/// empty) or the cluster at `meta`; `table` (`partition_count` partitions,
/// `replicas` replicas) is created unless it exists.
pub async fn cluster_with_table(
    dir: &std::path::Path,
    meta: &[String],
    nodes: usize,
    table: &str,
    partition_count: u32,
    replicas: u32,
) -> Result<(Option<crate::procs::ProcCluster>, MetaClient)> {
    cluster_with_table_and_metas(dir, meta, nodes, 1, table, partition_count, replicas).await
}

/// [`cluster_with_table`] with `metas` meta servers (more than one: a Raft group).
pub async fn cluster_with_table_and_metas(
    dir: &std::path::Path,
    meta: &[String],
    nodes: usize,
    metas: usize,
    table: &str,
    partition_count: u32,
    replicas: u32,
) -> Result<(Option<crate::procs::ProcCluster>, MetaClient)> {
    let cluster = if meta.is_empty() {
        Some(crate::procs::ProcCluster::start_group(
            dir,
            nodes,
            metas,
            &[],
        )?)
    } else {
        None
    };
    let addrs = match &cluster {
        Some(c) => c.meta_addrs(),
        None => meta.to_vec(),
    };
    let client = MetaClient::new(&addrs, Duration::from_secs(5))?;
    // Every node started here joins before the table is placed: placement sees only the
    // nodes alive at creation, and a node that joined late would hold nothing.
    for node in cluster.iter().flat_map(|c| c.running()) {
        wait_alive(&client, &node, Duration::from_secs(20)).await?;
    }
    if partitions(&client, table).await.is_err() {
        create_table(&client, table, partition_count, replicas).await?;
    }
    Ok((cluster, client))
}

/// Whether every partition of `table` has a primary and all its replicas, all serving.
pub async fn healthy(meta: &MetaClient, table: &str) -> Result<bool> {
    let reply = meta.query_app(table).await?;
    let Some(app) = reply.app else {
        return Ok(false);
    };
    let max = app.info.as_ref().map_or(3, |i| i.max_replica_count) as usize;
    let alive = |m: &str| reply.serving_nodes.iter().any(|a| a == m);
    Ok(app.partitions.iter().all(|p| {
        !p.primary.is_empty()
            && alive(&p.primary)
            && p.secondaries.len() + 1 == max
            && p.secondaries.iter().all(|s| alive(s))
    }))
}

/// Polls until `table` is healthy, or fails after `timeout`.
pub async fn wait_healthy(meta: &MetaClient, table: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if healthy(meta, table).await.unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{table} not healthy within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the meta server lists `node` as ALIVE, or fails after `timeout`.
pub async fn wait_alive(meta: &MetaClient, node: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive = meta.list_nodes(pb::NodeStatus::Alive).await?;
        if alive.iter().any(|n| n.address == node) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{node} did not join within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `table` and waits until it is healthy.
pub async fn create_table(
    meta: &MetaClient,
    table: &str,
    partitions: u32,
    replicas: u32,
) -> Result<()> {
    // The nodes must have joined before placement.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive = meta.list_nodes(pb::NodeStatus::Alive).await?.len() as u32;
        if alive >= replicas {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {alive} nodes joined");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    meta.create_app(pb::CreateAppRequest {
        app_name: table.to_string(),
        partition_count: partitions,
        replica_count: replicas,
        ..Default::default()
    })
    .await?;
    wait_healthy(meta, table, Duration::from_secs(30)).await
}

/// Sets the meta level.
pub async fn set_level(meta: &MetaClient, level: pb::MetaLevel) -> Result<()> {
    meta.control_meta(level).await?;
    Ok(())
}

/// Runs a remote command on `addr`; an error reply is an error.
pub async fn remote(addr: &str, command: &str, args: &[&str]) -> Result<serde_json::Value> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (ok, reply) = call_remote(addr, command, &args, Duration::from_secs(5)).await?;
    if !ok {
        bail!("{command} on {addr}: {reply}");
    }
    Ok(reply)
}

/// `table`'s partition configurations.
pub async fn partitions(meta: &MetaClient, table: &str) -> Result<Vec<pb::PartitionConfig>> {
    let reply = meta.query_app(table).await?;
    Ok(reply.app.map(|a| a.partitions).unwrap_or_default())
}

/// `table`'s app id and the configuration of its partition `pidx`.
pub async fn partition(
    meta: &MetaClient,
    table: &str,
    pidx: u32,
) -> Result<(u32, pb::PartitionConfig)> {
    let reply = meta.query_app(table).await?;
    let app = reply.app.context("the table is gone")?;
    let app_id = app.info.as_ref().map_or(0, |i| i.app_id);
    let part = app
        .partitions
        .into_iter()
        .find(|p| p.pidx == pidx)
        .with_context(|| format!("{table} has no partition {pidx}"))?;
    Ok((app_id, part))
}

/// Latency percentiles of `samples` (microseconds): (p50, p99, p999).
pub fn percentiles(samples: &mut [u64]) -> (u64, u64, u64) {
    if samples.is_empty() {
        return (0, 0, 0);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99), at(0.999))
}

/// Parses a human duration: `40s`, `1m30s`, `500ms`, `2h`, or bare seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (e.g. 40s, 1m30s, 500ms)");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" | "sec" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
    }
    Ok(total)
}

/// Runs remote command `command` on the meta servers of `meta` (the leader answers; in a
/// group the others say they do not lead, so each is tried in turn).
pub async fn remote_meta(meta: &MetaClient, command: &str, args: &[&str]) -> Result<()> {
    // During an election no member leads: keep trying for a while.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut last = None;
        for addr in meta.addrs() {
            match remote(addr, command, args).await {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        if Instant::now() > deadline {
            return Err(last.unwrap_or_else(|| anyhow::anyhow!("no meta server")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_humans_write_them() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn percentiles_pick_ranks() {
        let mut v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentiles(&mut v), (501, 991, 1000));
    }
}

/// Disk space taken under some directories, by kind: the replicas' stores (`data.redb`
/// and a learned `data.base`),
/// their prepare logs (`*.seg`) and everything else, in allocated bytes (what `du`
/// counts, so sparse regions are not counted).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskUse {
    /// Store files.
    pub store: u64,
    /// Log segments.
    pub log: u64,
    /// Anything else.
    pub other: u64,
}

impl DiskUse {
    /// The total.
    pub fn total(&self) -> u64 {
        self.store + self.log + self.other
    }

    /// Adds up every file under `dirs`.
    pub fn of(dirs: &[std::path::PathBuf]) -> Result<DiskUse> {
        use std::os::unix::fs::MetadataExt;
        let mut out = DiskUse::default();
        let mut stack: Vec<std::path::PathBuf> = dirs.to_vec();
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let bytes = meta.blocks() * 512;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name == ballast::replica::storage::FILE
                    || ballast::replica::base_files::is_base_file(&name)
                {
                    out.store += bytes;
                } else if name.ends_with(".seg") {
                    out.log += bytes;
                } else {
                    out.other += bytes;
                }
            }
        }
        Ok(out)
    }
}
