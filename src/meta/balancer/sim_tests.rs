//! Simulations of cure and balancer together (deterministic: the deciders are pure and
//! ties break by name). A simulated round plans cure, or — when cure has nothing to do —
//! the balancer, then applies every action at once. Each scenario asserts convergence,
//! one action per partition per round, nothing placed on a black-listed or dead node,
//! and, for scale-out, that the replica copies made equal the lower bound.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::meta::guardian::{CureOptions, cure};
use crate::meta::placement::{NodeLoad, place};
use crate::meta::snapshot::{NodeView, PartitionView, apply_to_config};
use crate::model::PartitionConfig;

fn addr(i: usize) -> String {
    format!("10.0.{}.{}:34801", i / 250, i % 250)
}

struct Sim {
    snap: Snapshot,
    copies: u32,
    rounds: u32,
}

impl Sim {
    /// `n` nodes and tables of (partition_count, replica_count), placed as `create` does.
    fn new(n: usize, tables: &[(u32, u32)]) -> Sim {
        let nodes = (0..n)
            .map(|i| {
                (
                    addr(i),
                    NodeView {
                        alive: true,
                        reported: BTreeMap::new(),
                    },
                )
            })
            .collect();
        let mut sim = Sim {
            snap: Snapshot {
                now_ms: 1_000,
                nodes,
                assign_delay_ms: 600_000,
                ..Snapshot::default()
            },
            copies: 0,
            rounds: 0,
        };
        for &(p, r) in tables {
            sim.create(p, r, n);
        }
        sim
    }

    /// Creates a table on the first `on` nodes only (to make skew).
    fn create(&mut self, p: u32, r: u32, on: usize) {
        let loads: Vec<NodeLoad> = self
            .snap
            .loads()
            .into_iter()
            .take(on)
            .map(|(a, (replicas, primaries))| NodeLoad {
                address: a.to_string(),
                replicas,
                primaries,
            })
            .collect();
        let placed = place(&loads, p, r).unwrap();
        let partitions = placed
            .into_iter()
            .enumerate()
            .map(|(i, pl)| PartitionView {
                config: PartitionConfig {
                    pidx: i as u32,
                    ballot: 1,
                    primary: Some(pl.primary),
                    secondaries: pl.secondaries,
                    last_drops: vec![],
                },
                last_drop_ms: 0,
            })
            .collect();
        let app_id = self.snap.apps.len() as u32 + 1;
        self.snap.apps.push(AppView {
            app_id,
            max_replica_count: r,
            partitions,
        });
    }

    fn add_nodes(&mut self, k: usize) {
        let n = self.snap.nodes.len();
        for i in n..n + k {
            self.snap.nodes.insert(
                addr(i),
                NodeView {
                    alive: true,
                    reported: BTreeMap::new(),
                },
            );
        }
    }

    /// What the meta server does when a node dies: out of every configuration.
    fn kill(&mut self, node: &str) {
        self.snap.nodes.get_mut(node).unwrap().alive = false;
        for app in &mut self.snap.apps {
            for p in &mut app.partitions {
                let c = &mut p.config;
                if c.members().any(|m| m == node) {
                    if c.primary.as_deref() == Some(node) {
                        c.primary = None;
                    }
                    c.secondaries.retain(|s| s != node);
                    c.last_drops.push(node.to_string());
                    c.ballot += 1;
                    p.last_drop_ms = self.snap.now_ms;
                }
            }
        }
    }

    /// Runs rounds until nothing is planned; returns the balancer's actions seen.
    fn run(&mut self, cure_opts: &CureOptions, opts: &BalancerOptions) -> Vec<Action> {
        let mut balancer_actions = Vec::new();
        for _ in 0..10_000 {
            let mut actions = cure(&self.snap, cure_opts);
            let from_balancer = actions.is_empty();
            if from_balancer {
                actions = balance(&self.snap, opts);
            }
            if actions.is_empty() {
                return balancer_actions;
            }
            self.rounds += 1;
            let gpids: BTreeSet<_> = actions.iter().map(Action::gpid).collect();
            assert_eq!(
                gpids.len(),
                actions.len(),
                "one action per partition per round"
            );
            for a in &actions {
                if let Some(to) = a.copies_to() {
                    assert!(
                        self.snap.may_receive(to),
                        "{a} copies to a node that may not receive"
                    );
                    self.copies += 1;
                }
                let app = self
                    .snap
                    .apps
                    .iter_mut()
                    .find(|x| x.app_id == a.gpid().app_id)
                    .unwrap();
                let config = &mut app.partitions[a.gpid().pidx as usize].config;
                assert!(apply_to_config(config, a), "{a} does not fit {config:?}");
            }
            if from_balancer {
                balancer_actions.extend(actions);
            }
        }
        panic!("did not converge in 10000 rounds");
    }

    fn live_nodes(&self) -> Vec<&str> {
        self.snap
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|n| self.snap.may_receive(n))
            .collect()
    }

    fn lower_bound(&self) -> u32 {
        let nodes = self.live_nodes();
        self.snap
            .apps
            .iter()
            .map(|a| copy_lower_bound(a, &nodes))
            .sum()
    }

    fn assert_healthy_and_balanced(&self) {
        let nodes = self.live_nodes();
        for app in &self.snap.apps {
            for p in &app.partitions {
                let members: Vec<&str> = p.config.members().collect();
                assert!(p.config.primary.is_some(), "{:?} has no primary", p.config);
                assert_eq!(
                    members.len() as u32,
                    app.max_replica_count,
                    "{:?}",
                    p.config
                );
                assert!(
                    members.iter().all(|m| self.snap.alive(m)),
                    "dead member in {:?}",
                    p.config
                );
            }
            assert!(
                is_balanced(app, &nodes),
                "table {} is not balanced",
                app.app_id
            );
        }
    }
}

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
