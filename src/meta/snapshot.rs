//! The pure view of the cluster that cure ([`crate::meta::guardian`]) and the balancer
//! ([`crate::meta::balancer`]) read, and the actions they return. Building a snapshot
//! is the state's job; deciding from it does no I/O, so both are tested by simulation
//! on thousands of nodes and partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{Gpid, PartitionConfig, ReplicaReport};

/// One node as the deciders see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    /// ALIVE now.
    pub alive: bool,
    /// It has reported its replicas since the meta server started.
    pub reported: bool,
    /// The replicas it reported.
    pub replicas: BTreeMap<Gpid, ReplicaReport>,
}

/// One partition as the deciders see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Its configuration.
    pub config: PartitionConfig,
    /// When its last member was dropped (Unix ms; 0 if never).
    pub last_drop_ms: u64,
}

/// One table as the deciders see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppView {
    /// The table id.
    pub app_id: u32,
    /// Replicas each partition should have.
    pub max_replica_count: u32,
    /// Its partitions, by pidx.
    pub partitions: Vec<PartitionView>,
}

impl AppView {
    /// The gpid of partition `pidx`.
    pub fn gpid(&self, pidx: u32) -> Gpid {
        Gpid {
            app_id: self.app_id,
            pidx,
        }
    }
}

/// Everything cure and the balancer decide from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Now, Unix ms (drop delays are measured against it).
    pub now_ms: u64,
    /// Every known node by address.
    pub nodes: BTreeMap<String, NodeView>,
    /// Every AVAILABLE table.
    pub apps: Vec<AppView>,
    /// Nodes that must not receive new replicas.
    pub black_list: BTreeSet<String>,
    /// How long to wait for a dropped secondary to come back.
    pub assign_delay_ms: u64,
    /// Partitions with an action in flight: nothing else is planned for them.
    pub busy: BTreeSet<Gpid>,
    /// DECOMMISSIONING (and DECOMMISSIONED) nodes: every replica moves away, none
    /// arrives.
    pub draining: BTreeSet<String>,
    /// Nodes stopping on purpose: their primaries move to secondaries, nothing arrives.
    pub leaving: BTreeSet<String>,
}

impl Snapshot {
    /// Whether `node` is ALIVE.
    pub fn alive(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.alive)
    }

    /// Whether `node` reported its replica of `gpid` without verified data.
    pub fn lost(&self, node: &str, gpid: Gpid) -> bool {
        self.nodes
            .get(node)
            .and_then(|n| n.replicas.get(&gpid))
            .is_some_and(|r| !r.is_valid())
    }

    /// Whether `node` may receive a new replica: ALIVE, not black-listed, not being
    /// decommissioned and not stopping.
    pub fn may_receive(&self, node: &str) -> bool {
        self.alive(node) && !self.black_list.contains(node) && !self.departing(node)
    }

    /// Whether `node` is being decommissioned or is stopping: what it holds should go.
    pub fn departing(&self, node: &str) -> bool {
        self.draining.contains(node) || self.leaving.contains(node)
    }

    /// Replicas and primaries per node over every table (for tie-breaks).
    pub fn loads(&self) -> BTreeMap<&str, (u32, u32)> {
        let mut loads: BTreeMap<&str, (u32, u32)> =
            self.nodes.keys().map(|n| (n.as_str(), (0, 0))).collect();
        for app in &self.apps {
            for p in &app.partitions {
                for m in p.config.members() {
                    if let Some(l) = loads.get_mut(m) {
                        l.0 += 1;
                        l.1 += u32::from(p.config.primary.as_deref() == Some(m));
                    }
                }
            }
        }
        loads
    }
}

/// A configuration change cure or the balancer wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Make `node` primary of a partition that has no member (a new one, or one whose
    /// replicas all died and one came back).
    AssignPrimary {
        /// The partition.
        gpid: Gpid,
        /// The new primary.
        node: String,
    },
    /// Promote secondary `node` of a partition without a primary.
    UpgradeToPrimary {
        /// The partition.
        gpid: Gpid,
        /// The secondary to promote.
        node: String,
    },
    /// Add `node` as a learner that becomes a secondary once it has caught up.
    AddSecondary {
        /// The partition.
        gpid: Gpid,
        /// The new replica's node.
        node: String,
    },
    /// Primary `node` becomes a secondary, leaving the partition without a primary
    /// until cure promotes one (Pegasus's DOWNGRADE_TO_SECONDARY).
    DowngradeToSecondary {
        /// The partition.
        gpid: Gpid,
        /// The current primary.
        node: String,
    },
    /// Remove secondary `node`.
    RemoveSecondary {
        /// The partition.
        gpid: Gpid,
        /// The secondary to remove.
        node: String,
    },
    /// Swap roles: primary `from` becomes a secondary, secondary `to` the primary. No copy.
    MovePrimary {
        /// The partition.
        gpid: Gpid,
        /// The current primary.
        from: String,
        /// A current secondary.
        to: String,
    },
    /// Copy secondary `from` to `to` (a learner), then remove `from`.
    CopySecondary {
        /// The partition.
        gpid: Gpid,
        /// The secondary to move.
        from: String,
        /// Its new node.
        to: String,
    },
    /// Copy primary `from` to `to` (a learner), make `to` primary, then remove `from`.
    CopyPrimary {
        /// The partition.
        gpid: Gpid,
        /// The current primary.
        from: String,
        /// Its new node.
        to: String,
    },
}

impl Action {
    /// The partition the action changes.
    pub fn gpid(&self) -> Gpid {
        match self {
            Action::AssignPrimary { gpid, .. }
            | Action::UpgradeToPrimary { gpid, .. }
            | Action::AddSecondary { gpid, .. }
            | Action::RemoveSecondary { gpid, .. }
            | Action::DowngradeToSecondary { gpid, .. }
            | Action::MovePrimary { gpid, .. }
            | Action::CopySecondary { gpid, .. }
            | Action::CopyPrimary { gpid, .. } => *gpid,
        }
    }

    /// Whether the action names `node` (as target or source).
    pub fn involves(&self, node: &str) -> bool {
        match self {
            Action::AssignPrimary { node: n, .. }
            | Action::UpgradeToPrimary { node: n, .. }
            | Action::AddSecondary { node: n, .. }
            | Action::RemoveSecondary { node: n, .. }
            | Action::DowngradeToSecondary { node: n, .. } => n == node,
            Action::MovePrimary { from, to, .. }
            | Action::CopySecondary { from, to, .. }
            | Action::CopyPrimary { from, to, .. } => from == node || to == node,
        }
    }

    /// Whether the partition's primary carries the action out itself (it stops serving
    /// first, so no read is served by an old primary).
    pub fn primary_executes(&self) -> bool {
        matches!(
            self,
            Action::MovePrimary { .. } | Action::DowngradeToSecondary { .. }
        )
    }

    /// The node that receives a new replica (a data copy), if any.
    pub fn copies_to(&self) -> Option<&str> {
        match self {
            Action::AddSecondary { node, .. } => Some(node),
            Action::CopySecondary { to, .. } | Action::CopyPrimary { to, .. } => Some(to),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::AssignPrimary { gpid, node } => write!(f, "{gpid} assign_primary {node}"),
            Action::UpgradeToPrimary { gpid, node } => {
                write!(f, "{gpid} upgrade_to_primary {node}")
            }
            Action::AddSecondary { gpid, node } => write!(f, "{gpid} add_secondary {node}"),
            Action::RemoveSecondary { gpid, node } => write!(f, "{gpid} remove {node}"),
            Action::DowngradeToSecondary { gpid, node } => {
                write!(f, "{gpid} downgrade_to_secondary {node}")
            }
            Action::MovePrimary { gpid, from, to } => write!(f, "{gpid} move_pri {from} -> {to}"),
            Action::CopySecondary { gpid, from, to } => write!(f, "{gpid} copy_sec {from} -> {to}"),
            Action::CopyPrimary { gpid, from, to } => write!(f, "{gpid} copy_pri {from} -> {to}"),
        }
    }
}

/// Applies `action` to a configuration as it will be once the action completes (for
/// simulations and for the state's bookkeeping). Returns false if it does not fit.
pub fn apply_to_config(config: &mut PartitionConfig, action: &Action) -> bool {
    let is_secondary = |c: &PartitionConfig, n: &str| c.secondaries.iter().any(|s| s == n);
    let member = |c: &PartitionConfig, n: &str| c.members().any(|m| m == n);
    match action {
        Action::AssignPrimary { node, .. } => {
            if config.primary.is_some() || member(config, node) {
                return false;
            }
            config.primary = Some(node.clone());
            // A partition that never had a replica starts empty.
            config.fresh = config.last_drops.is_empty() && config.secondaries.is_empty();
        }
        Action::UpgradeToPrimary { node, .. } => {
            if config.primary.is_some() || !is_secondary(config, node) {
                return false;
            }
            config.secondaries.retain(|s| s != node);
            config.primary = Some(node.clone());
        }
        Action::AddSecondary { node, .. } => {
            if config.primary.is_none() || member(config, node) {
                return false;
            }
            config.secondaries.push(node.clone());
        }
        Action::RemoveSecondary { node, .. } => {
            if !is_secondary(config, node) {
                return false;
            }
            config.secondaries.retain(|s| s != node);
        }
        Action::DowngradeToSecondary { node, .. } => {
            if config.primary.as_deref() != Some(node) {
                return false;
            }
            config.primary = None;
            config.secondaries.push(node.clone());
        }
        Action::MovePrimary { from, to, .. } => {
            if config.primary.as_deref() != Some(from) || !is_secondary(config, to) {
                return false;
            }
            config.secondaries.retain(|s| s != to);
            config.secondaries.push(from.clone());
            config.primary = Some(to.clone());
        }
        Action::CopySecondary { from, to, .. } => {
            if !is_secondary(config, from) || member(config, to) || config.primary.is_none() {
                return false;
            }
            config.secondaries.retain(|s| s != from);
            config.secondaries.push(to.clone());
        }
        Action::CopyPrimary { from, to, .. } => {
            if config.primary.as_deref() != Some(from) || member(config, to) {
                return false;
            }
            config.primary = Some(to.clone());
        }
    }
    config.secondaries.sort();
    // A node that is a member again is no longer among the dropped.
    let members: Vec<String> = config.members().map(str::to_string).collect();
    config.last_drops.retain(|d| !members.contains(d));
    config.ballot += 1;
    true
}
