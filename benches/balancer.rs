//! `cargo bench --bench balancer`: how long cure and the balancer take to plan, and how
//! many replica copies a scale-out makes against the lower bound, for 1,000 nodes holding
//! 100,000 replicas (900 nodes scaled out by 100). Times are reported beside a baseline
//! measured in the same run: one pass over every replica (the snapshot's load count),
//! which any planner must at least do. Set BALLAST_BENCH_NODES / _REPLICAS to change size.

use std::time::{Duration, Instant};

use ballast::meta::balancer::sim::Sim;
use ballast::meta::balancer::{BalancerOptions, OperationCount, balance};
use ballast::meta::guardian::{CureOptions, cure};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let nodes = env("BALLAST_BENCH_NODES", 1000);
    let replicas = env("BALLAST_BENCH_REPLICAS", 100_000);
    let added = nodes / 10;
    // Two tables: 3-replica and 2-replica, half the replicas each.
    let p3 = (replicas / 2 / 3) as u32;
    let p2 = (replicas / 2 / 2) as u32;
    let build = Instant::now();
    let mut sim = Sim::new(nodes - added, &[(p3, 3), (p2, 2)]);
    sim.add_nodes(added);
    let build = build.elapsed();
    let total: usize = sim
        .snap
        .apps
        .iter()
        .map(|a| a.partitions.len() * a.max_replica_count as usize)
        .sum();
    let cure_opts = CureOptions::default();
    let opts = BalancerOptions::default();

    let baseline = median(5, || {
        std::hint::black_box(sim.snap.loads());
    });
    let cure_time = median(5, || {
        std::hint::black_box(cure(&sim.snap, &cure_opts));
    });
    let mut first = Vec::new();
    let plan_time = median(3, || first = balance(&sim.snap, &opts));
    let ops = OperationCount::of(&first);

    let bound = sim.lower_bound();
    let converge = Instant::now();
    let actions = sim.run(&cure_opts, &opts);
    let converge = converge.elapsed();
    sim.assert_healthy_and_balanced();
    let all = OperationCount::of(&actions);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "balancer bench: {nodes} nodes ({} + {added} new), {total} replicas",
        nodes - added
    );
    println!("{:<44} {:>12} {:>12}", "metric", "value", "ratio");
    println!(
        "{:<44} {:>10.2}ms {:>12}",
        "baseline: one pass over every replica",
        ms(baseline),
        "1.00"
    );
    println!(
        "{:<44} {:>10.2}ms {:>11.1}x",
        "cure plan (healthy cluster)",
        ms(cure_time),
        ms(cure_time) / ms(baseline)
    );
    println!(
        "{:<44} {:>10.2}ms {:>11.1}x",
        format!("balancer plan, first round ({} actions)", ops.total()),
        ms(plan_time),
        ms(plan_time) / ms(baseline)
    );
    println!(
        "{:<44} {:>10.2}ms {:>11.1}x",
        format!("convergence ({} rounds)", sim.rounds),
        ms(converge),
        ms(converge) / ms(baseline)
    );
    println!(
        "{:<44} {:>12} {:>12}",
        "copies made (copy_sec + copy_pri)", sim.copies, ""
    );
    println!(
        "{:<44} {:>12} {:>12.3}",
        "copies / lower bound",
        bound,
        f64::from(sim.copies) / f64::from(bound.max(1))
    );
    println!(
        "{:<44} {:>12} {:>12}",
        "moves: move_pri / copy_pri / copy_sec",
        format!("{}/{}/{}", all.move_pri, all.copy_pri, all.copy_sec),
        ""
    );
    println!(
        "(building the {total}-replica cluster took {:.0}ms)",
        ms(build)
    );
}
