//! The simulation's own checks, and short randomized runs (`cargo test`); long runs are
//! `ballast-bench sim --seed N --steps M`.

use super::*;

#[test]
fn a_cluster_starts_healthy_and_serves_writes_and_reads() {
    let mut sim = Sim::new(SimConfig::default(), 1);
    assert!(sim.healthy(), "{}", sim.describe());
    sim.run_for(3_000);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    assert!(
        sim.history.acked > 10,
        "writes acknowledged: {}",
        sim.history.acked
    );
    assert!(
        sim.history.reads > 5,
        "reads checked: {}",
        sim.history.reads
    );
    sim.finish();
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn short_random_runs_keep_every_invariant() {
    for seed in 1..=3 {
        match run_random(seed, 20_000, SimConfig::default()) {
            Ok(report) => assert!(report.history.0 > 0, "{report:?}"),
            Err(failure) => panic!("{failure}"),
        }
    }
}
