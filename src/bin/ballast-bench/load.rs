//! `load`: N concurrent clients set, then get, for a while (after an unmeasured second
//! of sets that opens connections and caches routes); reports QPS and latency
//! percentiles (p50/p99/p999), beside a baseline measured in the same run on the same
//! disk: one small append + fdatasync, the floor under a durable write (the primary
//! and each secondary log every write before it is acknowledged).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ballast::client::DataClient;

use crate::ops;

const TABLE: &str = "load";

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long each phase (set, then get) runs.
    #[arg(long, default_value = "10s", value_parser = ops::parse_duration)]
    duration: Duration,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Use this cluster instead of starting one.
    #[arg(long, value_delimiter = ',')]
    meta: Vec<String>,
    /// Replica servers to start.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
}

fn fsync_baseline(dir: &std::path::Path, samples: usize) -> Result<Vec<u64>> {
    let mut file = std::fs::File::create(dir.join("fsync-baseline"))?;
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        file.write_all(&[7u8; 128])?;
        file.sync_data()?;
        out.push(t.elapsed().as_micros() as u64);
    }
    Ok(out)
}

async fn phase(
    data: Arc<DataClient>,
    clients: usize,
    duration: Duration,
    value: Arc<Vec<u8>>,
    write: bool,
    keys_per_client: Arc<Vec<u64>>,
) -> (Vec<u64>, Vec<u64>, u64) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (data, value, keys) = (data.clone(), value.clone(), keys_per_client.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let end = Instant::now() + duration;
            let mut i = 0u64;
            while Instant::now() < end {
                let hk = format!("load_{c}_{}", if write { i } else { i % keys[c].max(1) });
                let t = Instant::now();
                let ok = if write {
                    data.set(TABLE, hk.as_bytes(), &[(b"s".to_vec(), value.to_vec())], 0)
                        .await
                        .is_ok()
                } else {
                    data.get(TABLE, hk.as_bytes(), &[b"s".to_vec()])
                        .await
                        .is_ok()
                };
                if ok {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
                i += 1;
            }
            (lat, i, errors)
        }));
    }
    let mut all = Vec::new();
    let mut counts = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, n, e)) = t.await {
            all.extend(lat);
            counts.push(n);
            errors += e;
        }
    }
    (all, counts, errors)
}

/// Runs the load benchmark and prints its report.
pub async fn run(args: LoadArgs) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("load").tempdir()?;
    let replicas = 3.min(args.nodes as u32);
    let (cluster, meta) =
        ops::cluster_with_table(dir.path(), &args.meta, args.nodes, TABLE, 8, replicas).await?;
    let data = Arc::new(DataClient::new(meta.clone(), Duration::from_secs(5)));
    let value = Arc::new(vec![b'v'; args.value_size]);
    let none = Arc::new(vec![0; args.clients]);
    // Warm up, unmeasured: connections, routes, the servers' first allocations.
    phase(
        data.clone(),
        args.clients,
        Duration::from_secs(1),
        value.clone(),
        true,
        none.clone(),
    )
    .await;
    let (mut set_lat, written, set_err) = phase(
        data.clone(),
        args.clients,
        args.duration,
        value.clone(),
        true,
        none,
    )
    .await;
    let payload = payload_bytes(&written, args.value_size);
    let (mut get_lat, _, get_err) = phase(
        data,
        args.clients,
        args.duration,
        value,
        false,
        Arc::new(written),
    )
    .await;
    // The get phase is the fill's settling time: what the disks hold now.
    let disk = match &cluster {
        Some(c) => Some(ops::DiskUse::of(&c.node_dirs())?),
        None => None,
    };
    let reported: u64 = if disk.is_some() {
        0
    } else {
        meta.list_nodes(ballast::pb::NodeStatus::Unspecified)
            .await?
            .iter()
            .map(|n| n.disk_bytes)
            .sum()
    };
    let mut base = fsync_baseline(dir.path(), 500)?;
    let secs = args.duration.as_secs_f64();
    let (b50, b99, b999) = ops::percentiles(&mut base);
    println!(
        "load: {} clients, {}-byte values, {replicas} replicas, {:?} per phase",
        args.clients, args.value_size, args.duration
    );
    println!("op      ops        qps   p50_us   p99_us  p999_us  errors  p50/fsync_p50");
    for (name, lat, errors) in [
        ("set", &mut set_lat, set_err),
        ("get", &mut get_lat, get_err),
    ] {
        let (p50, p99, p999) = ops::percentiles(lat);
        println!(
            "{name:<5} {:>6} {:>10.0} {p50:>8} {p99:>8} {p999:>8} {errors:>7} {:>14.1}",
            lat.len(),
            lat.len() as f64 / secs,
            p50 as f64 / b50.max(1) as f64
        );
    }
    println!(
        "fsync {:>6} {:>10} {b50:>8} {b99:>8} {b999:>8} {:>7} {:>14.1}",
        base.len(),
        "-",
        0,
        1.0
    );
    // Disk per byte of payload, per replica (a new line: the table above is read by scripts).
    let per_copy = (payload * u64::from(replicas)).max(1) as f64;
    let mb = |b: u64| b as f64 / 1e6;
    match disk {
        Some(d) => println!(
            "disk {:.1} MB (store {:.1}, log {:.1}, other {:.1}) for {:.1} MB payload x {replicas} replicas = {:.2} bytes per payload byte",
            mb(d.total()),
            mb(d.store),
            mb(d.log),
            mb(d.other),
            mb(payload),
            d.total() as f64 / per_copy
        ),
        None => println!(
            "disk {:.1} MB (as the nodes report it) for {:.1} MB payload x {replicas} replicas = {:.2} bytes per payload byte",
            mb(reported),
            mb(payload),
            reported as f64 / per_copy
        ),
    }
    drop(cluster);
    Ok(())
}

/// The bytes of the records the set phase wrote: hash key, sort key `s` and value each
/// (`written[c]` keys `load_{c}_{i}` per client).
fn payload_bytes(written: &[u64], value_size: usize) -> u64 {
    let mut total = 0u64;
    for (c, n) in written.iter().enumerate() {
        for i in 0..*n {
            total += (format!("load_{c}_{i}").len() + 1 + value_size) as u64;
        }
    }
    total
}
