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

/// Runs one scenario script from `tests/sim`; with UPDATE_GOLDENFILES set, rewrites it.
fn scenario(name: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sim")
        .join(format!("{name}.txt"));
    let original =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let actual = script::run_script(&original);
    if std::env::var_os("UPDATE_GOLDENFILES").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    if actual != original {
        let diff: Vec<String> = original
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .take(8)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "scenario {name} differs (UPDATE_GOLDENFILES=1 cargo test sim to accept):\n{}\n--- actual ---\n{actual}",
            diff.join("\n")
        );
    }
    assert!(!actual.contains("VIOLATION"), "{actual}");
}

macro_rules! scenarios {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                scenario($file);
            }
        )*

        #[test]
        fn every_scenario_file_has_a_test() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sim");
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".txt").to_string())
                .collect();
            files.sort();
            let mut named = vec![$($file.to_string()),*];
            named.sort();
            assert_eq!(files, named);
        }
    };
}

scenarios! {
    scenario_copy_primary_no_stale_read => "copy-primary-no-stale-read",
    scenario_ddd_every_replica_lost => "ddd-every-replica-lost",
    scenario_ddd_last_member => "ddd-last-member",
    scenario_empty_dir_restart => "empty-dir-restart",
    scenario_failed_sync => "failed-sync",
    scenario_kill_partition_after_restart => "kill-partition-after-restart",
    scenario_learner_catches_up_from_the_log => "learner-catches-up-from-the-log",
    scenario_meta_store_failure => "meta-store-failure",
    scenario_move_to_a_lost_replica => "move-to-a-lost-replica",
    scenario_no_stale_read_after_a_move => "no-stale-read-after-a-move",
    scenario_promise_survives_restart => "promise-survives-restart",
    scenario_restarted_primary_renews => "restarted-primary-renews",
}
