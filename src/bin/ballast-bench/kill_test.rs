//! `kill-test`: Pegasus's kill test. Writers write sequential keys
//! (`kill_test_hash_key_<id>` → `kill_test_value_<id>`), retrying each id until it is
//! acknowledged, and record every acknowledged id; readers keep checking that every
//! acknowledged id reads back with its value; meanwhile the killer — once the table is
//! healthy again after each step — kills (SIGKILL) and restarts a random replica server
//! (with `--wipe`, one restart in three is on an emptied data directory: a replaced disk
//! on the same address), kills one replica of a random partition on any of its nodes
//! (`replica.kill_partition`, Pegasus's partition_killer), or runs a scale procedure:
//! add a node at level lively (the balancer moves replicas to it), or black-list a node
//! and stop it for good (its replicas are copied elsewhere). One node is down at a time,
//! which a table of 3 replicas survives. At the end, once healthy, every acknowledged id
//! is read once more. The run passes only if no acknowledged write is missing or wrong;
//! the last line is the summary.
//!
//! With `--meta`, against a cluster it did not start, the killer cannot kill processes:
//! it only kills partitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use ballast::client::{DataClient, MetaClient};
use ballast::pb;

use crate::ops;
use crate::procs::ProcCluster;

const TABLE: &str = "kill_test";

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct KillTestArgs {
    /// How long to kill and scale (e.g. 40s, 2m).
    #[arg(long, default_value = "40s", value_parser = ops::parse_duration)]
    duration: Duration,
    /// Use this cluster instead of starting one (partitions are killed, not processes).
    #[arg(long, value_delimiter = ',')]
    meta: Vec<String>,
    /// Replica servers to start.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Writer tasks.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Reader tasks.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Seed for the killer's choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Sometimes delete a killed node's data directory before restarting it.
    #[arg(long)]
    wipe: bool,
    /// Run three meta servers as a group and kill -9 one of them (a minority) at random
    /// moments, restarting it shortly after.
    #[arg(long)]
    kill_meta: bool,
    /// Writers pause 8 s in every 30 s, so replicas settle while the killer goes on:
    /// stores made durable, logs compacted to a fresh segment, stores rewritten.
    #[arg(long)]
    quiet: bool,
}

impl KillTestArgs {
    /// How long the killer runs.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

#[derive(Default)]
struct Tally {
    next_id: AtomicU64,
    acked: std::sync::Mutex<Vec<u64>>,
    stop: AtomicBool,
    reads: AtomicU64,
    write_retries: AtomicU64,
    read_errors: AtomicU64,
    lost: std::sync::Mutex<Vec<u64>>,
    wrong: std::sync::Mutex<Vec<u64>>,
}

fn key(id: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        format!("kill_test_hash_key_{id}").into_bytes(),
        format!("kill_test_sort_key_{id}").into_bytes(),
        format!("kill_test_value_{id}").into_bytes(),
    )
}

/// xorshift64*: the killer's dice (reproducible with --seed).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Checks one id: Ok(true) verified, Ok(false) could not read (try again).
async fn check(data: &DataClient, tally: &Tally, id: u64) -> bool {
    let (hk, sk, value) = key(id);
    match data.get(TABLE, &hk, &[sk]).await {
        Ok(found) => {
            match found.first() {
                None => tally.lost.lock().expect("lost").push(id),
                Some(r) if r.value != value => tally.wrong.lock().expect("wrong").push(id),
                Some(_) => {}
            }
            tally.reads.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(_) => {
            tally.read_errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// With `--quiet`, the last 8 s of every 30 s are a writers' pause.
fn paused(quiet: Option<Instant>) -> bool {
    quiet.is_some_and(|start| start.elapsed().as_secs() % 30 >= 22)
}

async fn writer(data: Arc<DataClient>, tally: Arc<Tally>, quiet: Option<Instant>) {
    while !tally.stop.load(Ordering::Relaxed) {
        if paused(quiet) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let id = tally.next_id.fetch_add(1, Ordering::Relaxed);
        let (hk, sk, value) = key(id);
        loop {
            match data
                .set(TABLE, &hk, &[(sk.clone(), value.clone())], 0)
                .await
            {
                Ok(_) => {
                    tally.acked.lock().expect("acked").push(id);
                    break;
                }
                Err(_) if tally.stop.load(Ordering::Relaxed) => return,
                Err(_) => {
                    tally.write_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn reader(data: Arc<DataClient>, tally: Arc<Tally>, which: usize, of: usize) {
    while !tally.stop.load(Ordering::Relaxed) {
        let ids: Vec<u64> = tally.acked.lock().expect("acked").clone();
        let mine: Vec<u64> = ids.into_iter().skip(which).step_by(of).collect();
        if mine.is_empty() {
            // Nothing to check yet: wait rather than spin (a spinning task would hold
            // a worker thread).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for id in mine {
            if tally.stop.load(Ordering::Relaxed) {
                return;
            }
            check(&data, &tally, id).await;
        }
    }
}

/// What the killer did.
#[derive(Default, Debug)]
struct Moves {
    kills: u32,
    scale_outs: u32,
    scale_ins: u32,
    partition_kills: u32,
    wipes: u32,
    meta_kills: u32,
}

async fn kill_one(
    cluster: &mut ProcCluster,
    dice: &mut Dice,
    moves: &mut Moves,
    wipe: bool,
) -> Result<()> {
    let running = cluster.running();
    let victim = running[dice.roll(running.len() as u64) as usize].clone();
    cluster.kill(&victim)?;
    let wiped = wipe && dice.roll(3) == 0;
    if wiped {
        cluster.wipe(&victim)?;
        moves.wipes += 1;
    }
    tokio::time::sleep(Duration::from_millis(200 + dice.roll(1300))).await;
    cluster.restart(&victim)?;
    moves.kills += 1;
    let how = if wiped {
        " on an empty data directory"
    } else {
        ""
    };
    eprintln!("kill-test: killed and restarted {victim}{how}");
    Ok(())
}

async fn scale_out(cluster: &mut ProcCluster, meta: &MetaClient, moves: &mut Moves) -> Result<()> {
    let node = cluster.add_node()?;
    ops::set_level(meta, pb::MetaLevel::Lively).await?;
    moves.scale_outs += 1;
    eprintln!("kill-test: added {node}");
    Ok(())
}

async fn scale_in(
    cluster: &mut ProcCluster,
    meta: &MetaClient,
    dice: &mut Dice,
    gone: &mut Vec<String>,
    moves: &mut Moves,
) -> Result<()> {
    let running = cluster.running();
    let node = running[dice.roll(running.len() as u64) as usize].clone();
    gone.push(node.clone());
    let list = gone.join(",");
    ops::remote_meta(meta, "meta.lb.assign_secondary_black_list", &[&list]).await?;
    cluster.kill(&node)?;
    moves.scale_ins += 1;
    eprintln!("kill-test: black-listed and stopped {node}");
    Ok(())
}

/// Kills -9 one meta server of the group while all are up (never a majority), and
/// restarts it after a moment.
async fn kill_meta(cluster: &mut ProcCluster, dice: &mut Dice, moves: &mut Moves) -> Result<()> {
    let running = cluster.metas_running();
    let victim = running[dice.roll(running.len() as u64) as usize];
    cluster.kill_meta(victim)?;
    tokio::time::sleep(Duration::from_millis(200 + dice.roll(1300))).await;
    cluster.restart_meta(victim)?;
    moves.meta_kills += 1;
    eprintln!("kill-test: killed and restarted meta server {victim}");
    Ok(())
}

async fn kill_partition(meta: &MetaClient, dice: &mut Dice, moves: &mut Moves) -> Result<()> {
    let parts = ops::partitions(meta, TABLE).await?;
    let app_id = meta
        .query_app(TABLE)
        .await?
        .app
        .and_then(|a| a.info)
        .map_or(0, |i| i.app_id);
    let p = &parts[dice.roll(parts.len() as u64) as usize];
    let members: Vec<&String> = std::iter::once(&p.primary)
        .chain(&p.secondaries)
        .filter(|m| !m.is_empty())
        .collect();
    let Some(node) = members.get(dice.roll(members.len() as u64) as usize) else {
        return Ok(());
    };
    let (id, pidx) = (app_id.to_string(), p.pidx.to_string());
    ops::remote(node, "replica.kill_partition", &[&id, &pidx]).await?;
    moves.partition_kills += 1;
    eprintln!("kill-test: killed replica {id}.{pidx} on {node}");
    Ok(())
}

/// Runs the kill test; returns whether it passed.
pub async fn run(args: KillTestArgs) -> Result<bool> {
    let dir = tempfile::Builder::new().prefix("kill-test").tempdir()?;
    let metas = if args.kill_meta { 3 } else { 1 };
    let (mut cluster, meta) =
        ops::cluster_with_table_and_metas(dir.path(), &args.meta, args.nodes, metas, TABLE, 8, 3)
            .await?;
    let data = Arc::new(DataClient::new(meta.clone(), Duration::from_secs(5)));
    ops::set_level(&meta, pb::MetaLevel::Lively).await?;
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for _ in 0..args.writers {
        let quiet = args.quiet.then(Instant::now);
        tasks.push(tokio::spawn(writer(data.clone(), tally.clone(), quiet)));
    }
    for i in 0..args.readers {
        tasks.push(tokio::spawn(reader(
            data.clone(),
            tally.clone(),
            i,
            args.readers,
        )));
    }
    let seed = args.seed.unwrap_or_else(|| ballast::timeutil::now_ms() | 1);
    eprintln!("kill-test: seed {seed}, {:?}", args.duration);
    let mut dice = Dice(seed);
    let mut moves = Moves::default();
    let mut gone = Vec::new();
    let started = Instant::now();
    let mut failure = None;
    while started.elapsed() < args.duration {
        if let Err(e) = ops::wait_healthy(&meta, TABLE, Duration::from_secs(60)).await {
            failure = Some(format!("the table did not recover: {e}"));
            break;
        }
        let step = match cluster.as_mut() {
            None => kill_partition(&meta, &mut dice, &mut moves).await,
            Some(c) => match dice.roll(10) {
                6 => kill_partition(&meta, &mut dice, &mut moves).await,
                7 if moves.scale_outs < 2 => scale_out(c, &meta, &mut moves).await,
                8 if gone.is_empty() && c.running().len() > 4 => {
                    scale_in(c, &meta, &mut dice, &mut gone, &mut moves).await
                }
                3 | 4 if args.kill_meta && c.metas_running().len() == 3 => {
                    kill_meta(c, &mut dice, &mut moves).await
                }
                _ => kill_one(c, &mut dice, &mut moves, args.wipe).await,
            },
        };
        if let Err(e) = step {
            failure = Some(format!("the killer failed: {e}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300 + dice.roll(700))).await;
    }
    tally.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    // Final check: every acknowledged write, once the table is healthy again.
    if failure.is_none()
        && let Err(e) = ops::wait_healthy(&meta, TABLE, Duration::from_secs(60)).await
    {
        failure = Some(format!("the table did not recover: {e}"));
    }
    let acked: Vec<u64> = tally.acked.lock().expect("acked").clone();
    let mut unverified = 0u64;
    for id in &acked {
        let mut done = false;
        for _ in 0..5 {
            if check(&data, &tally, *id).await {
                done = true;
                break;
            }
        }
        unverified += u64::from(!done);
    }
    let lost = tally.lost.lock().expect("lost").clone();
    let wrong = tally.wrong.lock().expect("wrong").clone();
    if !lost.is_empty() || !wrong.is_empty() {
        eprintln!("kill-test: lost ids {lost:?}, wrong ids {wrong:?}");
    }
    if let Some(f) = &failure {
        eprintln!("kill-test: {f}");
        // Leave the evidence: the table as the meta server sees it, and the logs.
        if let Ok(parts) = ops::partitions(&meta, TABLE).await {
            for p in parts {
                eprintln!(
                    "kill-test: partition {} ballot {} primary {:?} secondaries {:?} last_drops {:?}",
                    p.pidx, p.ballot, p.primary, p.secondaries, p.last_drops
                );
            }
        }
        if let Ok(nodes) = meta.list_nodes(pb::NodeStatus::Unspecified).await {
            for n in nodes {
                eprintln!("kill-test: node {} status {}", n.address, n.status);
            }
        }
        eprintln!("kill-test: logs kept in {}", dir.path().display());
    }
    let passed = failure.is_none() && lost.is_empty() && wrong.is_empty() && unverified == 0;
    let learned = learned_on(cluster.as_ref().map(|c| c.running()).unwrap_or_default()).await;
    drop(cluster);
    if !passed {
        let _ = dir.keep();
    }
    // The verdict stays the last line: scripts and tests read it.
    println!("{learned}");
    println!(
        "kill-test {}: writes acknowledged {}, reads checked {}, kills {}, wipes {}, scale-outs {}, scale-ins {}, partition kills {}, meta kills {}, write retries {}, unverified {unverified}, wrong {}, lost = {}",
        if passed { "passed" } else { "FAILED" },
        acked.len(),
        tally.reads.load(Ordering::Relaxed),
        moves.kills,
        moves.wipes,
        moves.scale_outs,
        moves.scale_ins,
        moves.partition_kills,
        moves.meta_kills,
        tally.write_retries.load(Ordering::Relaxed),
        wrong.len(),
        lost.len(),
    );
    Ok(passed)
}

/// What the replica servers running at the end learned since they last started: how
/// often a snapshot was copied, and how, beside catch-ups from a primary's log.
async fn learned_on(nodes: Vec<String>) -> String {
    let mut sums = [0u64; 4];
    for node in &nodes {
        if let Ok(info) = ops::remote(node, "server-info", &[]).await {
            for (sum, key) in sums.iter_mut().zip([
                "learned_snapshots",
                "learned_base_files",
                "learned_on_copy_links",
                "learned_from_log",
            ]) {
                *sum += info[key].as_u64().unwrap_or(0);
            }
        }
    }
    format!(
        "kill-test learning, on the {} servers running at the end since they last started: snapshots {}, of them base files copied whole {} ({} on copy links), catch-ups from a primary's log {}",
        nodes.len(),
        sums[0],
        sums[1],
        sums[2],
        sums[3]
    )
}
