//! A simulator of cure and the balancer together, for the simulation tests and the
//! `balancer` bench: rounds plan cure, or — when cure has nothing to do — the balancer,
//! and apply every action at once. It checks, every round, one action per partition and
//! nothing copied onto a node that may not receive, and counts the copies made.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::meta::guardian::{CureOptions, cure};
use crate::meta::placement::{NodeLoad, place};
use crate::meta::snapshot::{NodeView, PartitionView, apply_to_config};
use crate::model::PartitionConfig;

/// The address of simulated node `i`.
pub fn addr(i: usize) -> String {
    format!("10.0.{}.{}:34801", i / 250, i % 250)
}

/// A simulated cluster.
pub struct Sim {
    /// The cluster as the deciders see it.
    pub snap: Snapshot,
    /// Replica copies made so far.
    pub copies: u32,
    /// Rounds that planned something.
    pub rounds: u32,
}

impl Sim {
    /// `n` nodes and tables of (partition_count, replica_count), placed as `create` does.
    pub fn new(n: usize, tables: &[(u32, u32)]) -> Sim {
        let nodes = (0..n)
            .map(|i| {
                (
                    addr(i),
                    NodeView {
                        alive: true,
                        reported: true,
                        replicas: BTreeMap::new(),
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
    pub fn create(&mut self, p: u32, r: u32, on: usize) {
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
                    fresh: false,
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

    /// Adds `k` ALIVE nodes holding nothing.
    pub fn add_nodes(&mut self, k: usize) {
        let n = self.snap.nodes.len();
        for i in n..n + k {
            self.snap.nodes.insert(
                addr(i),
                NodeView {
                    alive: true,
                    reported: true,
                    replicas: BTreeMap::new(),
                },
            );
        }
    }

    /// What the meta server does when a node dies: out of every configuration.
    pub fn kill(&mut self, node: &str) {
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
    pub fn run(&mut self, cure_opts: &CureOptions, opts: &BalancerOptions) -> Vec<Action> {
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

    /// The nodes that may receive replicas.
    pub fn live_nodes(&self) -> Vec<&str> {
        self.snap
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|n| self.snap.may_receive(n))
            .collect()
    }

    /// The fewest copies that balance every table from here.
    pub fn lower_bound(&self) -> u32 {
        let nodes = self.live_nodes();
        self.snap
            .apps
            .iter()
            .map(|a| copy_lower_bound(a, &nodes))
            .sum()
    }

    /// Panics unless every partition is whole on live nodes and every table balanced.
    pub fn assert_healthy_and_balanced(&self) {
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
