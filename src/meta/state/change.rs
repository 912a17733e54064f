//! Configuration changes on the meta state, each a compare-and-set on the partition's
//! ballot, persisted before it is applied: a node's death (it leaves every
//! configuration, into `last_drops`), a member that lost its replica, a primary's
//! requests (remove a member that does not answer, upgrade a learner that has caught
//! up), and which inactive replicas a node may delete.

use super::{MetaState, NodeAssignment};
use crate::error::{Error, Result};
use crate::meta::snapshot::apply_to_config;
use crate::meta::store::StoreOp;
use crate::model::{AppStatus, Gpid, HealthCounts, MetaLevel, PartitionConfig};
use crate::timeutil::now_ms;

/// What a primary asks of its partition's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryRequest {
    /// Remove this member: it does not answer prepares.
    Remove(String),
    /// This learner has caught up: complete the action it was added for.
    UpgradeLearner(String),
}

/// How many dropped members a partition remembers (Pegasus's max_replicas_in_group).
const MAX_LAST_DROPS: usize = 4;

/// `config` without `node`, which is recorded as the newest drop; the ballot is bumped.
pub fn without_member(config: &PartitionConfig, node: &str) -> PartitionConfig {
    let mut next = config.clone();
    if next.primary.as_deref() == Some(node) {
        next.primary = None;
    }
    next.secondaries.retain(|s| s != node);
    next.last_drops.retain(|d| d != node);
    next.last_drops.push(node.to_string());
    let excess = next.last_drops.len().saturating_sub(MAX_LAST_DROPS);
    next.last_drops.drain(..excess);
    next.ballot += 1;
    next
}

impl MetaState {
    /// Replaces `gpid`'s configuration with `change` applied, if its ballot is still
    /// `expected` and the change fits. Returns whether it was applied.
    pub(super) fn change_config(
        &mut self,
        gpid: Gpid,
        expected: i64,
        change: impl FnOnce(&mut PartitionConfig) -> bool,
    ) -> Result<bool> {
        let app = self
            .apps
            .get_mut(&gpid.app_id)
            .ok_or_else(|| Error::NotFound(format!("partition {gpid}")))?;
        let current = app
            .partitions
            .get(gpid.pidx as usize)
            .ok_or_else(|| Error::NotFound(format!("partition {gpid}")))?;
        if current.ballot != expected {
            return Ok(false);
        }
        let mut next = current.clone();
        if !change(&mut next) {
            return Ok(false);
        }
        next.ballot = next.ballot.max(expected + 1);
        self.store
            .apply(&[StoreOp::PutPartition(gpid.app_id, next.clone())])?;
        tracing::info!(%gpid, ballot = next.ballot, primary = ?next.primary, secondaries = ?next.secondaries, "configuration changed");
        app.partitions[gpid.pidx as usize] = next;
        self.touch(gpid);
        self.lb_counts = None;
        Ok(true)
    }

    /// Records that `gpid`'s configuration changed now.
    pub(super) fn touch(&mut self, gpid: Gpid) {
        self.version += 1;
        self.changed_at.insert(gpid, self.version);
    }

    /// A node was declared dead: it leaves every configuration (one durable batch), and
    /// actions naming it are dropped. Deferred while the stored level is blind or lower.
    pub(super) fn on_node_dead(&mut self, node: &str) -> Result<()> {
        if self.level <= MetaLevel::Blind {
            self.pending_dead.insert(node.to_string());
            return Ok(());
        }
        self.inflight.retain(|_, f| !f.action.involves(node));
        self.proposals.retain(|_, a| !a.involves(node));
        let mut changed: Vec<(Gpid, PartitionConfig)> = Vec::new();
        for app in self.apps.values() {
            for p in &app.partitions {
                if p.members().any(|m| m == node) {
                    changed.push((
                        Gpid {
                            app_id: app.record.app_id,
                            pidx: p.pidx,
                        },
                        without_member(p, node),
                    ));
                }
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        let ops: Vec<StoreOp> = changed
            .iter()
            .map(|(g, c)| StoreOp::PutPartition(g.app_id, c.clone()))
            .collect();
        self.store.apply(&ops)?;
        let now = now_ms();
        for (gpid, config) in changed {
            if config.primary.is_none() {
                // A learner cannot learn without a primary, and cure does not promote
                // one while an action is in flight: give the action up.
                self.inflight.remove(&gpid);
            }
            if let Some(app) = self.apps.get_mut(&gpid.app_id) {
                app.partitions[gpid.pidx as usize] = config;
            }
            self.last_drop_ms.insert(gpid, now);
            self.touch(gpid);
        }
        tracing::warn!(node, "node removed from every partition configuration");
        Ok(())
    }

    /// Members whose report lacks their replica, although they applied assignments that
    /// include it, lost it (e.g. `replica.kill_partition`): they leave the configuration.
    /// Replica-initiated, so refused at freezed and below.
    pub(super) fn drop_lost_replicas(&mut self, node: &str) -> Result<()> {
        if self.level().effective <= MetaLevel::Freezed {
            return Ok(());
        }
        let Some(state) = self.nodes.get(node) else {
            return Ok(());
        };
        let mut lost = Vec::new();
        for app in self
            .apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
        {
            for p in &app.partitions {
                let gpid = Gpid {
                    app_id: app.record.app_id,
                    pidx: p.pidx,
                };
                let applied = state.assignment_version
                    >= self
                        .changed_at
                        .get(&gpid)
                        .copied()
                        .unwrap_or(self.start_version());
                if applied && p.members().any(|m| m == node) && !state.replicas.contains_key(&gpid)
                {
                    lost.push((gpid, p.ballot));
                }
            }
        }
        for (gpid, ballot) in lost {
            tracing::warn!(%gpid, node, "member lost its replica");
            if self.change_config(gpid, ballot, |c| {
                *c = without_member(c, node);
                true
            })? {
                self.last_drop_ms.insert(gpid, now_ms());
                if self.partition(gpid)?.primary.is_none() {
                    self.inflight.remove(&gpid);
                }
            }
        }
        Ok(())
    }

    /// A partition's primary changes its configuration, as a compare-and-set on
    /// `ballot`: it removes a member that stopped answering prepares, or upgrades a
    /// learner that has caught up (completing the action the learner was added for: it
    /// becomes a secondary, or the primary, and a copied replica's old node leaves).
    /// Returns whether the change was applied, and the configuration now. Refused at
    /// blind and below, and from anyone but the current primary.
    pub fn update_partition(
        &mut self,
        gpid: Gpid,
        ballot: i64,
        from: &str,
        change: PrimaryRequest,
    ) -> Result<(bool, PartitionConfig)> {
        if self.level <= MetaLevel::Blind {
            return Err(Error::Refused(format!(
                "meta level is {}: configuration changes are held",
                self.level.name()
            )));
        }
        let current = self.partition(gpid)?.clone();
        if current.ballot != ballot || current.primary.as_deref() != Some(from) {
            return Ok((false, current));
        }
        let applied = match change {
            PrimaryRequest::Remove(node) => {
                if node == from || !current.secondaries.contains(&node) {
                    return Err(Error::InvalidInput(format!(
                        "{node} is not a secondary of {gpid}"
                    )));
                }
                tracing::warn!(%gpid, node, "primary removes a member that does not answer");
                let done = self.change_config(gpid, ballot, |c| {
                    *c = without_member(c, &node);
                    true
                })?;
                if done {
                    self.last_drop_ms.insert(gpid, now_ms());
                }
                done
            }
            PrimaryRequest::UpgradeLearner(node) => {
                let Some(flight) = self
                    .inflight
                    .get(&gpid)
                    .filter(|f| f.action.copies_to() == Some(node.as_str()))
                    .cloned()
                else {
                    return Err(Error::Refused(format!(
                        "{node} is not learning {gpid} (the action ended or timed out)"
                    )));
                };
                self.inflight.remove(&gpid);
                let done =
                    self.change_config(gpid, ballot, |c| apply_to_config(c, &flight.action))?;
                if !done {
                    tracing::info!(%gpid, action = %flight.action, "configuration moved on; action dropped");
                }
                done
            }
        };
        Ok((applied, self.partition(gpid)?.clone()))
    }

    /// Inactive replicas `node` holds that nothing needs any more: their table is gone, or
    /// their partition is fully healthy without them (`assignments` is what the node is
    /// assigned now). Only at level lively.
    pub(super) fn garbage(&self, node: &str, assignments: &[NodeAssignment]) -> Vec<Gpid> {
        if self.level().effective < MetaLevel::Lively {
            return Vec::new();
        }
        let Some(state) = self.nodes.get(node) else {
            return Vec::new();
        };
        let assigned: Vec<Gpid> = assignments.iter().map(|a| a.gpid).collect();
        state
            .replicas
            .keys()
            .filter(|g| !assigned.contains(g))
            .filter(|g| match self.apps.get(&g.app_id) {
                None => true,
                Some(app) if app.record.status != AppStatus::Available => false,
                Some(app) => app.partitions.get(g.pidx as usize).is_none_or(|p| {
                    HealthCounts::of([p], app.record.max_replica_count, |m| self.is_alive(m))
                        .unhealthy
                        == 0
                }),
            })
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_member_is_remembered_newest_last_and_bounded() {
        let mut c = PartitionConfig {
            pidx: 0,
            ballot: 3,
            primary: Some("a".into()),
            secondaries: vec!["b".into(), "c".into()],
            last_drops: vec!["w".into(), "x".into(), "y".into(), "b".into()],
        };
        c = without_member(&c, "a");
        assert_eq!(c.primary, None);
        assert_eq!(c.ballot, 4);
        assert_eq!(c.last_drops, ["x", "y", "b", "a"]);
        c = without_member(&c, "b");
        assert_eq!(c.secondaries, ["c"]);
        assert_eq!(
            c.last_drops,
            ["x", "y", "a", "b"],
            "b moves to the newest place"
        );
    }
}
