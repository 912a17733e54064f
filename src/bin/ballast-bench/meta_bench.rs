//! `meta-bench`: what Raft costs the meta server. The same DDL (`create` of a one-partition
//! table) and configuration changes (`set_app_envs`, one durable change each) run one at a
//! time against a single meta server and against a group of three, in the same run, on real
//! processes; it reports p50 and p99 of each and the group's ratio to the single server.

use std::time::{Duration, Instant};

use anyhow::Result;
use ballast::client::MetaClient;
use ballast::pb;

use crate::ops;
use crate::procs::ProcCluster;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct MetaBenchArgs {
    /// Operations of each kind against each store.
    #[arg(long, default_value_t = 200)]
    ops: usize,
}

/// Latencies (µs) of `ops` creates and `ops` envs changes against `metas` meta servers.
async fn measure(metas: usize, ops: usize) -> Result<(Vec<u64>, Vec<u64>)> {
    let dir = tempfile::Builder::new().prefix("meta-bench").tempdir()?;
    let unfreeze = ["--min-live-node-count-for-unfreeze", "1"];
    let cluster = ProcCluster::start_group(dir.path(), 1, metas, &unfreeze)?;
    let meta = MetaClient::new(&cluster.meta_addrs(), Duration::from_secs(5))?;
    ops::create_table(&meta, "b0", 1, 1).await?;
    let mut creates = Vec::with_capacity(ops);
    for i in 1..=ops {
        let started = Instant::now();
        meta.create_app(pb::CreateAppRequest {
            app_name: format!("b{i}"),
            partition_count: 1,
            replica_count: 1,
            ..Default::default()
        })
        .await?;
        creates.push(started.elapsed().as_micros() as u64);
    }
    let mut envs = Vec::with_capacity(ops);
    for i in 0..ops {
        let started = Instant::now();
        meta.update_app_envs(pb::UpdateAppEnvsRequest {
            app_name: "b0".into(),
            set: [("bench.key".to_string(), i.to_string())].into(),
            ..Default::default()
        })
        .await?;
        envs.push(started.elapsed().as_micros() as u64);
    }
    drop(cluster);
    Ok((creates, envs))
}

/// Runs both and prints the table.
pub async fn run(args: MetaBenchArgs) -> Result<()> {
    anyhow::ensure!(args.ops > 0, "--ops must be at least 1");
    let (mut single_create, mut single_envs) = measure(1, args.ops).await?;
    let (mut group_create, mut group_envs) = measure(3, args.ops).await?;
    println!(
        "meta-bench: {} operations of each kind, one at a time",
        args.ops
    );
    println!(
        "{:<13} {:<15} {:>7} {:>7}",
        "op", "store", "p50_us", "p99_us"
    );
    let mut ratios = Vec::new();
    for (op, single, group) in [
        ("create", &mut single_create, &mut group_create),
        ("set_app_envs", &mut single_envs, &mut group_envs),
    ] {
        let (s50, s99, _) = ops::percentiles(single);
        let (g50, g99, _) = ops::percentiles(group);
        println!("{op:<13} {:<15} {s50:>7} {s99:>7}", "single");
        println!("{op:<13} {:<15} {g50:>7} {g99:>7}", "raft-3-voters");
        ratios.push(format!(
            "{op} p50 {:.1}x, p99 {:.1}x",
            g50 as f64 / s50.max(1) as f64,
            g99 as f64 / s99.max(1) as f64
        ));
    }
    println!("raft / single: {}", ratios.join("; "));
    Ok(())
}
