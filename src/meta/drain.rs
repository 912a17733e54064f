//! Draining nodes, as a pure function: a [`Snapshot`] in, the actions that move replicas
//! off DECOMMISSIONING nodes (and primaries off nodes that are stopping) out, with the
//! reason each partition that cannot move yet is stuck. Primaries go first and without a
//! copy (to a secondary that stays); a secondary is copied to another node, then removed.
//! Nothing ever moves onto a departing node, so a batch never moves a replica onto
//! another node of the batch. One copy starts per receiving node per round; the copy
//! rate limit of the replica servers holds the bytes.

use std::collections::{BTreeMap, BTreeSet};

use crate::meta::snapshot::{Action, AppView, PartitionView, Snapshot};
use crate::model::Gpid;

/// One round of draining.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainPlan {
    /// Actions to start.
    pub actions: Vec<Action>,
    /// Partitions on departing nodes that cannot move this round, and why.
    pub blocked: BTreeMap<Gpid, String>,
}

/// Plans one round of draining.
pub fn drain(snap: &Snapshot) -> DrainPlan {
    let mut plan = DrainPlan::default();
    if snap.draining.is_empty() && snap.leaving.is_empty() {
        return plan;
    }
    let mut loads = snap.loads();
    let mut receiving: BTreeSet<String> = BTreeSet::new();
    // Primaries move first: a departing node whose primaries are moving (this round or
    // in flight) keeps its secondaries until they are done.
    let moving = handing_over(snap);
    for app in &snap.apps {
        for p in &app.partitions {
            let gpid = app.gpid(p.config.pidx);
            let waits = p
                .config
                .primary
                .as_deref()
                .is_none_or(|pr| !snap.departing(pr))
                && p.config
                    .secondaries
                    .iter()
                    .any(|s| moving.contains(s.as_str()));
            if waits {
                plan.blocked.insert(
                    gpid,
                    "waiting for the node's primaries to move first".into(),
                );
                continue;
            }
            match partition(snap, app, p, &loads, &receiving) {
                Ok(None) => {}
                Ok(Some(action)) => {
                    if let Some(to) = action.copies_to() {
                        receiving.insert(to.to_string());
                        if let Some(l) = loads.get_mut(to) {
                            l.0 += 1;
                        }
                    }
                    plan.actions.push(action);
                }
                Err(why) => {
                    plan.blocked.insert(gpid, why);
                }
            }
        }
    }
    plan
}

/// Departing nodes that are primary of a partition whose primary can move now or is
/// moving (a partition with an action in flight).
fn handing_over(snap: &Snapshot) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    for app in &snap.apps {
        for p in &app.partitions {
            let Some(primary) = p.config.primary.as_deref().filter(|n| snap.departing(n)) else {
                continue;
            };
            let gpid = app.gpid(p.config.pidx);
            let heir = p
                .config
                .secondaries
                .iter()
                .any(|s| snap.alive(s) && !snap.departing(s) && !snap.lost(s, gpid));
            if heir || snap.busy.contains(&gpid) {
                out.insert(primary);
            }
        }
    }
    out
}

/// What to do for one partition: nothing (`Ok(None)`), an action, or why it is stuck.
fn partition(
    snap: &Snapshot,
    app: &AppView,
    p: &PartitionView,
    loads: &BTreeMap<&str, (u32, u32)>,
    receiving: &BTreeSet<String>,
) -> Result<Option<Action>, String> {
    let c = &p.config;
    let gpid = app.gpid(c.pidx);
    let draining = |n: &str| snap.draining.contains(n);
    let primary_moves = c.primary.as_deref().is_some_and(|n| snap.departing(n));
    let secondary_moves = c.secondaries.iter().any(|s| draining(s));
    if !primary_moves && !secondary_moves {
        return Ok(None);
    }
    if snap.busy.contains(&gpid) {
        return Err("a configuration change is in flight".into());
    }
    let Some(primary) = c.primary.as_deref() else {
        return Err("no primary: cure must promote one first".into());
    };
    if primary_moves {
        let heir = c
            .secondaries
            .iter()
            .filter(|s| snap.alive(s) && !snap.departing(s) && !snap.lost(s, gpid))
            .min_by_key(|s| (loads.get(s.as_str()).map_or(0, |l| l.1), s.as_str()));
        if let Some(to) = heir {
            return Ok(Some(Action::MovePrimary {
                gpid,
                from: primary.to_string(),
                to: to.clone(),
            }));
        }
        if !draining(primary) {
            return Err("no secondary outside the departing nodes can take over".into());
        }
    }
    let surplus = c.members().count() > app.max_replica_count as usize;
    let draining_secondary = c.secondaries.iter().find(|s| draining(s));
    if let (true, Some(node)) = (surplus, draining_secondary) {
        // Its copy is done (or the table shrank): the draining member just leaves.
        return Ok(Some(Action::RemoveSecondary {
            gpid,
            node: node.clone(),
        }));
    }
    // A copy: of a draining secondary, or (a draining primary with no heir) a new
    // secondary that can take over next round.
    let to = copy_target(snap, p, loads, receiving)?;
    Ok(Some(match draining_secondary {
        Some(from) => Action::CopySecondary {
            gpid,
            from: from.clone(),
            to,
        },
        None => Action::AddSecondary { gpid, node: to },
    }))
}

/// The least loaded node that may receive a replica of `p` and has no copy arriving
/// this round.
fn copy_target(
    snap: &Snapshot,
    p: &PartitionView,
    loads: &BTreeMap<&str, (u32, u32)>,
    receiving: &BTreeSet<String>,
) -> Result<String, String> {
    let member = |n: &str| p.config.members().any(|m| m == n);
    let eligible: Vec<&String> = snap
        .nodes
        .keys()
        .filter(|n| snap.may_receive(n) && !member(n))
        .collect();
    if eligible.is_empty() {
        return Err(
            "no eligible target: every ALIVE node that may receive a replica already holds one"
                .into(),
        );
    }
    eligible
        .into_iter()
        .filter(|n| !receiving.contains(*n))
        .min_by_key(|n| (loads.get(n.as_str()).map_or(0, |l| l.0), n.as_str()))
        .cloned()
        .ok_or_else(|| "waiting: every eligible target receives a copy this round".into())
}

#[cfg(test)]
mod tests;
