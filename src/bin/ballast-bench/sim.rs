//! `sim`: the deterministic simulation's randomized run ([`ballast::sim::run_random`]):
//! real replica cores and the real meta server state on a simulated network and disks,
//! random faults, invariants checked after every step. One seed, or a range of them;
//! a failure prints the broken invariants and the last steps, and replays exactly with
//! its seed.

use std::time::Instant;

use ballast::sim::{SimConfig, run_random_watched};

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds, from --seed on.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Events per seed.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Replica servers.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: u64,
    /// Partitions.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    partitions: u32,
    /// Print every partition's configuration and every replica's state whenever they
    /// change from this simulated millisecond on (to see how a failing seed unfolds).
    #[arg(long, value_name = "MS")]
    watch_from: Option<u64>,
}

/// Runs the seeds; returns whether every one kept every invariant.
pub fn run(args: SimArgs) -> bool {
    let cfg = SimConfig {
        nodes: args.nodes as usize,
        partitions: args.partitions,
        ..SimConfig::default()
    };
    let mut failed = 0;
    let started = Instant::now();
    let mut total_steps = 0;
    for seed in args.seed..args.seed + args.seeds {
        let t = Instant::now();
        let mut last = String::new();
        let watch = |sim: &ballast::sim::Sim| {
            if args.watch_from.is_some_and(|from| sim.now() >= from) {
                let now = sim.describe();
                if now != last {
                    eprintln!("--- {} ms\n{now}", sim.now());
                    last = now;
                }
            }
        };
        match run_random_watched(seed, args.steps, cfg.clone(), watch) {
            Ok(r) => {
                total_steps += r.stats.steps;
                let faults: Vec<String> = r
                    .stats
                    .faults
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                println!(
                    "seed {seed}: ok: {} steps, {:.1} s simulated in {:.2} s; writes acknowledged {}, reads checked {}, given up {}; faults: {}",
                    r.stats.steps,
                    r.sim_ms as f64 / 1000.0,
                    t.elapsed().as_secs_f64(),
                    r.history.0,
                    r.history.1,
                    r.history.2,
                    faults.join(", ")
                );
            }
            Err(failure) => {
                failed += 1;
                println!("seed {seed}: FAILED");
                eprintln!("{failure}");
            }
        }
    }
    println!(
        "sim {}: {} seed(s), {} failed, {total_steps} steps in {:.1} s",
        if failed == 0 { "passed" } else { "FAILED" },
        args.seeds,
        failed,
        started.elapsed().as_secs_f64()
    );
    failed == 0
}
