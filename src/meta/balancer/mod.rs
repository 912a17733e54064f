//! The load balancer as a pure function: a [`Snapshot`] of a healthy cluster in, the
//! moves that even it out out. Per table, over the ALIVE nodes that may take replicas:
//!
//! 1. **copy_sec**: even out replica counts by copying a secondary from the fullest node
//!    to the emptiest — the only copies that are unavoidable;
//! 2. **move_pri**: even out primaries by moving the role to nodes that already hold a
//!    replica ([`crate::meta::primary_chain`]) — no data copied;
//! 3. **copy_pri**: only when moving cannot balance, copy a primary to the node with the
//!    fewest (copying primaries first overloads new nodes: Pegasus issue #528).
//!
//! A stage runs only when the one before it planned nothing, at most one action per
//! partition, none for a partition with an action in flight. Balanced means, per table,
//! every node's replica count and primary count within one of every other's.

use std::collections::{BTreeMap, BTreeSet};

use crate::meta::primary_chain;
use crate::meta::snapshot::{Action, AppView, Snapshot};
use crate::model::PartitionConfig;

/// The balancer's runtime switches (`meta.lb.*`).
#[derive(Debug, Clone, Default)]
pub struct BalancerOptions {
    /// Only move primaries: never copy data.
    pub only_move_primary: bool,
    /// Only balance primaries (move, then copy), never secondaries.
    pub only_primary_balancer: bool,
    /// Stop after the first table that needed moves.
    pub balancer_in_turn: bool,
    /// Tables the balancer leaves alone.
    pub ignored_apps: BTreeSet<u32>,
}

/// Counts of a plan's actions by kind, as `balance_operation_count` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationCount {
    /// Primary moves (no copy).
    pub move_pri: u32,
    /// Primary copies.
    pub copy_pri: u32,
    /// Secondary copies.
    pub copy_sec: u32,
}

impl OperationCount {
    /// Counts the balancer actions in `actions`.
    pub fn of(actions: &[Action]) -> OperationCount {
        let mut c = OperationCount::default();
        for a in actions {
            match a {
                Action::MovePrimary { .. } => c.move_pri += 1,
                Action::CopyPrimary { .. } => c.copy_pri += 1,
                Action::CopySecondary { .. } => c.copy_sec += 1,
                _ => {}
            }
        }
        c
    }

    /// Every action.
    pub fn total(&self) -> u32 {
        self.move_pri + self.copy_pri + self.copy_sec
    }
}

/// Plans one round of balancing.
pub fn balance(snap: &Snapshot, opts: &BalancerOptions) -> Vec<Action> {
    let nodes: Vec<&str> = snap
        .nodes
        .keys()
        .map(String::as_str)
        .filter(|n| snap.may_receive(n))
        .collect();
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    for app in snap
        .apps
        .iter()
        .filter(|a| !opts.ignored_apps.contains(&a.app_id))
    {
        let planned = balance_app(snap, app, &nodes, opts);
        let stop = opts.balancer_in_turn && !planned.is_empty();
        actions.extend(planned);
        if stop {
            break;
        }
    }
    actions
}

/// One table's moves.
fn balance_app(
    snap: &Snapshot,
    app: &AppView,
    nodes: &[&str],
    opts: &BalancerOptions,
) -> Vec<Action> {
    let configs: Vec<&PartitionConfig> = app.partitions.iter().map(|p| &p.config).collect();
    let free = |c: &PartitionConfig| !snap.busy.contains(&app.gpid(c.pidx));
    if !opts.only_move_primary && !opts.only_primary_balancer {
        let copies = copy_secondaries(app, &configs, nodes, &free);
        if !copies.is_empty() {
            return copies;
        }
    }
    let moves = move_primaries(app, &configs, nodes, &free);
    if !moves.is_empty() || opts.only_move_primary {
        return moves;
    }
    copy_primaries(app, &configs, nodes, &free)
}

/// Per-node counts of this table's replicas (`replicas`) or primaries, over `nodes`.
fn counts<'a>(
    configs: &[&'a PartitionConfig],
    nodes: &[&'a str],
    primaries: bool,
) -> BTreeMap<&'a str, u32> {
    let mut counts: BTreeMap<&str, u32> = nodes.iter().map(|n| (*n, 0)).collect();
    for c in configs {
        let holders: Vec<&str> = if primaries {
            c.primary.as_deref().into_iter().collect()
        } else {
            c.members().collect()
        };
        for m in holders {
            if let Some(n) = counts.get_mut(m) {
                *n += 1;
            }
        }
    }
    counts
}

/// The (fullest, emptiest) pairs with a gap of two or more, widest gap first.
fn unbalanced_pairs<'a>(counts: &BTreeMap<&'a str, u32>) -> Vec<(&'a str, &'a str)> {
    let mut pairs = Vec::new();
    for (from, f) in counts {
        for (to, t) in counts {
            if *f >= t + 2 {
                pairs.push((*from, *to, f - t));
            }
        }
    }
    pairs.sort_by_key(|(from, to, gap)| (std::cmp::Reverse(*gap), *from, *to));
    pairs.into_iter().map(|(f, t, _)| (f, t)).collect()
}

fn copy_secondaries(
    app: &AppView,
    configs: &[&PartitionConfig],
    nodes: &[&str],
    free: &dyn Fn(&PartitionConfig) -> bool,
) -> Vec<Action> {
    let counts = counts(configs, nodes, false);
    // Nodes ordered by how many of the table's replicas they hold, and the partitions
    // each holds a movable secondary of: a copy looks only at the fullest node's list.
    let mut order: BTreeSet<(u32, &str)> = counts.iter().map(|(n, c)| (*c, *n)).collect();
    let mut secondary_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in configs.iter().enumerate() {
        if free(c) {
            for s in &c.secondaries {
                secondary_of.entry(s.as_str()).or_default().push(i);
            }
        }
    }
    let mut used = vec![false; configs.len()];
    let mut actions = Vec::new();
    'next: loop {
        let Some(&(min, _)) = order.first() else {
            return actions;
        };
        for &(f, from) in order.iter().rev() {
            if f < min + 2 {
                break;
            }
            for &(t, to) in order.iter() {
                if f < t + 2 {
                    break;
                }
                let list = secondary_of.get(from).map(Vec::as_slice).unwrap_or(&[]);
                let found = list
                    .iter()
                    .copied()
                    .find(|&i| !used[i] && !configs[i].members().any(|m| m == to));
                if let Some(i) = found {
                    used[i] = true;
                    order.remove(&(f, from));
                    order.remove(&(t, to));
                    order.insert((f - 1, from));
                    order.insert((t + 1, to));
                    let gpid = app.gpid(configs[i].pidx);
                    actions.push(Action::CopySecondary {
                        gpid,
                        from: from.into(),
                        to: to.into(),
                    });
                    continue 'next;
                }
            }
        }
        return actions;
    }
}

fn move_primaries(
    app: &AppView,
    configs: &[&PartitionConfig],
    nodes: &[&str],
    free: &dyn Fn(&PartitionConfig) -> bool,
) -> Vec<Action> {
    let movable: Vec<&&PartitionConfig> = configs
        .iter()
        .filter(|c| free(c) && c.primary.is_some())
        .collect();
    let mut sets: Vec<primary_chain::MemberSet<'_>> =
        movable.iter().map(|c| (0, c.members().collect())).collect();
    let mut primaries = counts(configs, nodes, true);
    let moves = primary_chain::even_out(&mut sets, &mut primaries);
    // A chain may pass through a partition twice; keep the first step for it (one
    // action per partition); the next round finishes the job.
    let mut used = BTreeSet::new();
    let mut actions = Vec::new();
    let mut current: Vec<usize> = vec![0; movable.len()];
    for (set, to) in moves {
        let members = &sets[set].1;
        let from = members[current[set]];
        current[set] = to;
        if used.insert(set) {
            let gpid = app.gpid(movable[set].pidx);
            actions.push(Action::MovePrimary {
                gpid,
                from: from.into(),
                to: members[to].into(),
            });
        }
    }
    actions
}

fn copy_primaries(
    app: &AppView,
    configs: &[&PartitionConfig],
    nodes: &[&str],
    free: &dyn Fn(&PartitionConfig) -> bool,
) -> Vec<Action> {
    let primaries = counts(configs, nodes, true);
    for (from, to) in unbalanced_pairs(&primaries) {
        let candidate = configs.iter().find(|c| {
            free(c) && c.primary.as_deref() == Some(from) && !c.members().any(|m| m == to)
        });
        if let Some(c) = candidate {
            let gpid = app.gpid(c.pidx);
            return vec![Action::CopyPrimary {
                gpid,
                from: from.into(),
                to: to.into(),
            }];
        }
    }
    Vec::new()
}

/// The fewest replica copies any plan needs to balance `app` over `nodes`: every node
/// must end with at least ⌊total/n⌋ replicas and at most ⌈total/n⌉.
pub fn copy_lower_bound(app: &AppView, nodes: &[&str]) -> u32 {
    let configs: Vec<&PartitionConfig> = app.partitions.iter().map(|p| &p.config).collect();
    let counts = counts(&configs, nodes, false);
    let total: u32 = counts.values().sum();
    let n = nodes.len() as u32;
    let (low, high) = (total / n, total.div_ceil(n));
    let deficit: u32 = counts.values().map(|c| low.saturating_sub(*c)).sum();
    let excess: u32 = counts.values().map(|c| c.saturating_sub(high)).sum();
    deficit.max(excess)
}

/// Whether `app` is balanced over `nodes`: replica and primary counts within one.
pub fn is_balanced(app: &AppView, nodes: &[&str]) -> bool {
    let configs: Vec<&PartitionConfig> = app.partitions.iter().map(|p| &p.config).collect();
    [false, true].iter().all(|primaries| {
        let c = counts(&configs, nodes, *primaries);
        c.values().max().unwrap_or(&0) - c.values().min().unwrap_or(&0) <= 1
    })
}

pub mod sim;

#[cfg(test)]
mod sim_tests;
