//! Simulations of cure and balancer together (deterministic: the deciders are pure and
//! ties break by name). A simulated round plans cure, or — when cure has nothing to do —
//! the balancer, then applies every action at once. Each scenario asserts convergence,
//! one action per partition per round, nothing placed on a black-listed or dead node,
//! and, for scale-out, that the replica copies made equal the lower bound.

use std::collections::BTreeSet;

use super::sim::{Sim, addr};
use super::*;
use crate::meta::guardian::CureOptions;

const CURE: CureOptions = CureOptions {
    add_secondary_max_count_for_one_node: None,
};

fn scale_out(n: usize, k: usize, tables: &[(u32, u32)]) {
    let mut sim = Sim::new(n, tables);
    assert!(
        sim.run(&CURE, &BalancerOptions::default()).is_empty(),
        "a new table is balanced"
    );
    sim.add_nodes(k);
    let bound = sim.lower_bound();
    let actions = sim.run(&CURE, &BalancerOptions::default());
    sim.assert_healthy_and_balanced();
    assert_eq!(
        sim.copies,
        bound,
        "{n}->{n_k} nodes: copies at the lower bound",
        n_k = n + k
    );
    let ops = OperationCount::of(&actions);
    assert_eq!(ops.copy_pri, 0, "no primary was copied: {ops:?}");
    assert!(ops.move_pri > 0, "primaries moved onto the new nodes");
}

#[test]
fn scale_out_3_to_4() {
    scale_out(3, 1, &[(8, 3)]);
}

#[test]
fn scale_out_5_to_8() {
    scale_out(5, 3, &[(32, 3), (16, 2), (7, 3)]);
}

#[test]
fn scale_out_100_to_120() {
    scale_out(100, 20, &[(1024, 3), (512, 3), (256, 2)]);
}

#[test]
fn node_loss_waits_for_the_delay_then_heals_elsewhere() {
    let mut sim = Sim::new(5, &[(16, 3)]);
    let victim = addr(2);
    sim.kill(&victim);
    sim.run(&CURE, &BalancerOptions::default());
    let app = &sim.snap.apps[0];
    let short = app
        .partitions
        .iter()
        .filter(|p| p.config.members().count() < 3)
        .count();
    assert!(
        short > 0,
        "within the assign delay secondaries are not replaced"
    );
    assert!(
        app.partitions.iter().all(|p| p.config.primary.is_some()),
        "primaries are promoted at once"
    );
    sim.snap.now_ms += sim.snap.assign_delay_ms;
    sim.run(&CURE, &BalancerOptions::default());
    sim.assert_healthy_and_balanced();
}

#[test]
fn black_listed_node_is_an_emergency_and_never_receives() {
    let mut sim = Sim::new(6, &[(24, 3), (12, 3)]);
    let (leaving, other) = (addr(0), addr(1));
    let holds = |sim: &Sim, node: &str| {
        sim.snap
            .apps
            .iter()
            .flat_map(|a| &a.partitions)
            .filter(|p| p.config.members().any(|m| m == node))
            .count()
    };
    let lost = holds(&sim, &leaving) as u32;
    let other_before = holds(&sim, &other);
    sim.snap.black_list.extend([leaving.clone(), other.clone()]);
    sim.kill(&leaving);
    // Cure alone (the balancer ignores every table): it heals without waiting for the
    // delay, copying exactly the lost replicas.
    let no_balancer = BalancerOptions {
        ignored_apps: BTreeSet::from([1, 2]),
        ..BalancerOptions::default()
    };
    sim.run(&CURE, &no_balancer);
    assert_eq!(sim.copies, lost, "copies = the lost node's replicas");
    for p in sim.snap.apps.iter().flat_map(|a| &a.partitions) {
        assert_eq!(p.config.members().count(), 3, "healed: {:?}", p.config);
        assert!(!p.config.members().any(|m| m == leaving));
    }
    sim.run(&CURE, &BalancerOptions::default());
    sim.assert_healthy_and_balanced();
    assert!(
        holds(&sim, &other) <= other_before,
        "nothing new on the other black-listed node"
    );
}

#[test]
fn skewed_tables_are_balanced_each() {
    let mut sim = Sim::new(6, &[]);
    sim.create(24, 3, 3);
    sim.create(10, 2, 2);
    sim.create(7, 3, 6);
    sim.run(&CURE, &BalancerOptions::default());
    sim.assert_healthy_and_balanced();
}

#[test]
fn ignored_apps_are_left_alone_and_in_turn_does_one_table_a_round() {
    let mut sim = Sim::new(6, &[]);
    sim.create(12, 3, 3);
    sim.create(12, 3, 3);
    let before = sim.snap.apps[1].clone();
    let opts = BalancerOptions {
        ignored_apps: BTreeSet::from([2]),
        ..BalancerOptions::default()
    };
    sim.run(&CURE, &opts);
    assert_eq!(sim.snap.apps[1], before, "the ignored table did not move");
    assert!(is_balanced(&sim.snap.apps[0], &sim.live_nodes()));
    let in_turn = BalancerOptions {
        balancer_in_turn: true,
        ..BalancerOptions::default()
    };
    let actions = balance(&sim.snap, &in_turn);
    assert!(
        actions.iter().all(|a| a.gpid().app_id == 2),
        "only the first table that needs moves"
    );
}

#[test]
fn only_move_primary_never_copies() {
    let mut sim = Sim::new(4, &[(16, 3)]);
    sim.add_nodes(1);
    let opts = BalancerOptions {
        only_move_primary: true,
        ..BalancerOptions::default()
    };
    sim.run(&CURE, &opts);
    assert_eq!(sim.copies, 0);
}

#[test]
fn busy_partitions_get_no_balancer_action() {
    let mut sim = Sim::new(3, &[(6, 3)]);
    sim.add_nodes(1);
    let all: BTreeSet<_> = (0..6).map(|pidx| sim.snap.apps[0].gpid(pidx)).collect();
    sim.snap.busy = all;
    assert!(balance(&sim.snap, &BalancerOptions::default()).is_empty());
}
