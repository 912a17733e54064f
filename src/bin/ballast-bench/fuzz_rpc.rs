//! `fuzz-rpc`: malformed requests ([`ballast::fuzz_rpc`]) to every RPC of a real meta
//! server and three replica servers holding a table; after every batch each process
//! must still be running and answering, and at the end no log may show a panic. Prints
//! the cases tried, how the servers answered and each crash; fails on any crash.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use ballast::fuzz_rpc::{Schema, send};
use ballast::sim::rng::Rng;
use tonic::transport::Channel;

use crate::ops;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct FuzzRpcArgs {
    /// How many requests.
    #[arg(long, default_value_t = 20_000)]
    cases: u64,
    /// The random seed (the same seed gives the same requests).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Checks the processes every this many cases.
const CHECK_EVERY: u64 = 250;

/// A process that died or stopped answering, or a panic in a log.
fn crashes(cluster: &mut crate::procs::ProcCluster, answering: &[(String, bool)]) -> Vec<String> {
    let mut out: Vec<String> = cluster
        .exited()
        .into_iter()
        .map(|a| format!("{a}: the process exited"))
        .collect();
    out.extend(
        answering
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(a, _)| format!("{a}: does not answer")),
    );
    out
}

/// Whether each server still answers a plain request.
async fn answering(meta: &str, nodes: &[String]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for addr in std::iter::once(meta.to_string()).chain(nodes.iter().cloned()) {
        let mut ok = false;
        for _ in 0..10 {
            if ops::remote(&addr, "server-info", &[]).await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        out.push((addr, ok));
    }
    out
}

/// Runs it; returns whether nothing crashed.
pub async fn run(args: FuzzRpcArgs) -> Result<bool> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let (cluster, _meta) = ops::cluster_with_table(dir.path(), &[], 3, "temp", 8, 3).await?;
    let mut cluster = cluster.expect("own processes");
    let meta = cluster.meta_addr().to_string();
    let nodes = cluster.running();
    let channel = |addr: &str| -> Result<Channel> {
        Ok(Channel::from_shared(format!("http://{addr}"))?.connect_lazy())
    };
    let meta_channel = channel(&meta)?;
    let node_channels: Vec<Channel> = nodes.iter().map(|a| channel(a)).collect::<Result<_>>()?;
    let schema = Schema::load();
    let mut rng = Rng::new(args.seed);
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    let mut found = Vec::new();
    let mut tried = 0;
    let mut slowest = (Duration::ZERO, String::new());
    while tried < args.cases && found.is_empty() {
        let rpc = rng.pick(&schema.rpcs).expect("rpcs").clone();
        let to_meta = rpc.service == "Meta" || (rpc.service == "Cli" && rng.chance(0.3));
        let target = if to_meta {
            meta_channel.clone()
        } else {
            rng.pick(&node_channels).expect("nodes").clone()
        };
        let body = schema.case(&mut rng, &rpc);
        let wait = if rpc.streaming { 300 } else { 5_000 };
        let sent = Instant::now();
        let outcome = send(target, &rpc, body, Duration::from_millis(wait)).await;
        if !rpc.streaming && sent.elapsed() > slowest.0 {
            slowest = (sent.elapsed(), rpc.path());
        }
        let answer = match outcome {
            Ok(code) => format!("{code:?}"),
            Err(_) if rpc.streaming => "stream open".to_string(),
            Err(_) => "no answer".to_string(),
        };
        *answers.entry(answer).or_default() += 1;
        tried += 1;
        if tried % CHECK_EVERY == 0 || tried == args.cases {
            let answering = answering(&meta, &nodes).await;
            found = crashes(&mut cluster, &answering);
            if !found.is_empty() {
                found.push(format!(
                    "after case {tried} (seed {}), the last to {}",
                    args.seed,
                    rpc.path()
                ));
            }
        }
    }
    for log in cluster.logs() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if let Some(at) = lines.iter().position(|l| l.contains("panicked")) {
            // The panic, its message and our frames of the backtrace (RUST_BACKTRACE=1).
            let mut said = vec![lines[at].to_string()];
            said.extend(
                lines
                    .iter()
                    .skip(at + 1)
                    .take(200)
                    .filter(|l| !l.starts_with(' ') || l.contains("ballast"))
                    .take(12)
                    .map(|l| l.to_string()),
            );
            found.push(format!("{}: {}", log.display(), said.join("\n")));
        }
    }
    for crash in &found {
        println!("crash: {crash}");
    }
    let answers: Vec<String> = answers.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let ok = found.is_empty();
    println!(
        "fuzz-rpc {}: seed {}, cases tried {tried} over {} RPCs, answers: {}; slowest answer {} ms ({}); crashes {}, in {:.1} s",
        if ok { "passed" } else { "FAILED" },
        args.seed,
        schema.rpcs.len(),
        answers.join(", "),
        slowest.0.as_millis(),
        slowest.1,
        found.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}
