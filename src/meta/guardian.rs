//! Cure, Pegasus's partition guardian, as a pure function: a [`Snapshot`] in, the
//! actions that bring every partition back to a primary and `max_replica_count`
//! replicas out. At most one action per partition, none for a partition with an action
//! in flight, nothing onto a black-listed node, and no invented replicas: a partition
//! whose replicas all died waits for its last dropped replicas to come back.

use std::collections::BTreeMap;

use crate::meta::snapshot::{Action, AppView, PartitionView, Snapshot};

/// Cure's runtime switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct CureOptions {
    /// `meta.lb.add_secondary_max_count_for_one_node`: at most this many new secondaries
    /// per node per round (`None` = no limit).
    pub add_secondary_max_count_for_one_node: Option<u32>,
}

/// Plans one round of cure.
pub fn cure(snap: &Snapshot, opts: &CureOptions) -> Vec<Action> {
    let mut loads: BTreeMap<&str, (u32, u32)> = snap.loads();
    let mut actions = Vec::new();
    let mut wanting: Vec<(&AppView, &PartitionView)> = Vec::new();
    for app in &snap.apps {
        for p in &app.partitions {
            let gpid = app.gpid(p.config.pidx);
            if snap.busy.contains(&gpid) {
                continue;
            }
            let members = p.config.members().count() as u32;
            let action = if p.config.primary.is_none() {
                no_primary(snap, app, p, &loads)
            } else if members < app.max_replica_count {
                wanting.push((app, p));
                None
            } else if members > app.max_replica_count {
                // A departing member goes first (a decommission copied it away).
                p.config
                    .secondaries
                    .iter()
                    .max_by_key(|s| {
                        let load = loads.get(s.as_str()).map_or(0, |l| l.0);
                        (snap.departing(s), load, s.as_str())
                    })
                    .map(|s| Action::RemoveSecondary {
                        gpid,
                        node: s.clone(),
                    })
            } else {
                None
            };
            if let Some(action) = action {
                account(&mut loads, &action);
                actions.push(action);
            }
        }
    }
    // Partitions with the fewest secondaries get theirs first.
    wanting.sort_by_key(|(app, p)| (p.config.secondaries.len(), app.app_id, p.config.pidx));
    let mut added: BTreeMap<String, u32> = BTreeMap::new();
    for (app, p) in wanting {
        let full = |n: &str| {
            opts.add_secondary_max_count_for_one_node
                .is_some_and(|max| added.get(n).copied().unwrap_or(0) >= max)
        };
        if let Some(node) = new_secondary(snap, p, &loads, full) {
            *added.entry(node.clone()).or_default() += 1;
            let action = Action::AddSecondary {
                gpid: app.gpid(p.config.pidx),
                node,
            };
            account(&mut loads, &action);
            actions.push(action);
        }
    }
    actions
}

/// Keeps the per-node loads current as actions are planned, so ties spread.
fn account(loads: &mut BTreeMap<&str, (u32, u32)>, action: &Action) {
    let bump = |loads: &mut BTreeMap<&str, (u32, u32)>, node: &str, r: i32, p: i32| {
        if let Some(l) = loads.get_mut(node) {
            l.0 = l.0.saturating_add_signed(r);
            l.1 = l.1.saturating_add_signed(p);
        }
    };
    match action {
        Action::AssignPrimary { node, .. } => bump(loads, node, 1, 1),
        Action::UpgradeToPrimary { node, .. } => bump(loads, node, 0, 1),
        Action::AddSecondary { node, .. } => bump(loads, node, 1, 0),
        Action::RemoveSecondary { node, .. } => bump(loads, node, -1, 0),
        _ => {}
    }
}

/// A partition without a primary: promote a secondary, or, if none is left, wait for the
/// last dropped replicas and pick the most up to date.
fn no_primary(
    snap: &Snapshot,
    app: &AppView,
    p: &PartitionView,
    loads: &BTreeMap<&str, (u32, u32)>,
) -> Option<Action> {
    let gpid = app.gpid(p.config.pidx);
    let primaries = |n: &str| loads.get(n).map_or(0, |l| l.1);
    if let Some(node) = p
        .config
        .secondaries
        .iter()
        .filter(|s| snap.alive(s) && !snap.lost(s, gpid))
        .min_by_key(|s| (snap.departing(s), primaries(s), s.as_str()))
    {
        return Some(Action::UpgradeToPrimary {
            gpid,
            node: node.clone(),
        });
    }
    if !p.config.secondaries.is_empty() {
        return None;
    }
    if p.config.last_drops.is_empty() {
        // A partition that never had a replica: any node may start it.
        let node = snap
            .nodes
            .keys()
            .filter(|n| snap.may_receive(n))
            .min_by_key(|n| (primaries(n), n.as_str()))?;
        return Some(Action::AssignPrimary {
            gpid,
            node: node.clone(),
        });
    }
    match ddd_decision(snap, app, p) {
        DddDecision::Choose(node) => Some(Action::AssignPrimary { gpid, node }),
        DddDecision::Wait(_) | DddDecision::Lost(_) => None,
    }
}

/// What cure does about a partition whose every replica was dropped (Pegasus's DDD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DddDecision {
    /// Make this node the primary: it holds the most of the partition.
    Choose(String),
    /// Wait: a last member has not reported yet (why).
    Wait(String),
    /// Every last member lost its data: only an operator can choose (why).
    Lost(String),
}

/// Decides a partition with no member left. The member dropped last holds every
/// committed write: each commit needed every member of its configuration, and nothing
/// can commit once the last member is gone; a member added later learned everything
/// committed before it joined. So cure waits until that member is ALIVE and has
/// reported, and makes it the primary if its replica is valid. If it lost its data,
/// nothing is invented: the others may lack the last writes, so an operator decides
/// (`ddd_diagnose --force-primary`). The reported ballots and decrees are not used to
/// choose: a learner's ballot can be newer than its data, and a restarted replica's
/// commit point falls back to what its store had made durable (both found by the
/// simulation); they are shown to the operator.
pub fn ddd_decision(snap: &Snapshot, app: &AppView, p: &PartitionView) -> DddDecision {
    let gpid = app.gpid(p.config.pidx);
    let Some(last) = p.config.last_drops.last() else {
        return DddDecision::Wait("no member was ever dropped".into());
    };
    let Some(view) = snap.nodes.get(last).filter(|n| n.alive) else {
        return DddDecision::Wait(format!("waiting for {last}, the last member, to come back"));
    };
    if !view.reported {
        return DddDecision::Wait(format!("waiting for {last}, the last member, to report"));
    }
    match view.replicas.get(&gpid) {
        Some(r) if r.is_valid() => DddDecision::Choose(last.clone()),
        Some(_) => DddDecision::Lost(format!(
            "{last}, the last member, lost its replica; the others may lack the last writes: an operator must choose a primary"
        )),
        None => DddDecision::Lost(format!(
            "{last}, the last member, holds nothing of it (a new data directory?); the others may lack the last writes: an operator must choose a primary"
        )),
    }
}

/// Where a missing secondary goes, if anywhere yet.
fn new_secondary(
    snap: &Snapshot,
    p: &PartitionView,
    loads: &BTreeMap<&str, (u32, u32)>,
    full: impl Fn(&str) -> bool,
) -> Option<String> {
    let c = &p.config;
    let member = |n: &str| c.members().any(|m| m == n);
    let usable = |n: &str| snap.may_receive(n) && !member(n) && !full(n);
    let last = c.last_drops.last();
    // The last dropped replica is back: re-add it (it has the data).
    if let Some(last) = last.filter(|l| usable(l)) {
        return Some(last.clone());
    }
    let emergency = c.members().count() < 2
        || last.is_none()
        || snap.now_ms >= p.last_drop_ms.saturating_add(snap.assign_delay_ms)
        || last.is_some_and(|l| {
            // A last member that left on purpose (or was dropped) is not coming back.
            snap.black_list.contains(l) || snap.departing(l) || !snap.nodes.contains_key(l)
        });
    if !emergency {
        return None;
    }
    if let Some(dropped) = c.last_drops.iter().rev().find(|d| usable(d)) {
        return Some(dropped.clone());
    }
    snap.nodes
        .keys()
        .filter(|n| usable(n))
        .min_by_key(|n| (loads.get(n.as_str()).map_or(0, |l| l.0), n.as_str()))
        .cloned()
}

#[cfg(test)]
mod tests;
