//! Configuration changes on the meta state, each a compare-and-set on the partition's
//! ballot, persisted before it is applied: a node's death or replacement (it leaves
//! every configuration, into `last_drops`), a member that lost its replica, a primary's
//! requests (remove a member that does not answer, upgrade a learner that has caught
//! up, renew its ballot, carry out a proposed move or downgrade), and which inactive
//! replicas a node may delete. Bookkeeping (actions in flight) changes only after the
//! store has the new configuration.

use std::time::Instant;

use super::{MetaState, NodeAssignment};
use crate::error::{Error, Result};
use crate::meta::snapshot::{Action, apply_to_config};
use crate::meta::store::StoreOp;
use crate::model::{AppStatus, Gpid, HealthCounts, MetaLevel, PartitionConfig};

/// What a primary asks of its partition's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryRequest {
    /// Remove this member: it does not answer prepares.
    Remove(String),
    /// This learner has caught up: complete the action it was added for.
    UpgradeLearner(String),
    /// The same configuration under a new ballot (a restarted primary).
    Renew,
    /// Carry out the proposed move of the primary to this secondary.
    MovePrimary(String),
    /// Carry out the proposed downgrade of the primary.
    Downgrade,
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
    next.fresh = false;
    next
}

impl MetaState {
    /// Replaces `gpid`'s configuration with `change` applied, if its ballot is still
    /// `expected` and the change fits. The new configuration is persisted before it is
    /// applied in memory; it is no longer fresh unless `change` says so. Returns whether
    /// it was applied.
    pub(super) fn change_config(
        &mut self,
        gpid: Gpid,
        expected: i64,
        change: impl FnOnce(&mut PartitionConfig) -> bool,
    ) -> Result<bool> {
        let current = self
            .apps
            .get(&gpid.app_id)
            .and_then(|app| app.partitions.get(gpid.pidx as usize))
            .ok_or_else(|| Error::NotFound(format!("partition {gpid}")))?;
        if current.ballot != expected {
            return Ok(false);
        }
        let mut next = current.clone();
        next.fresh = false;
        if !change(&mut next) {
            return Ok(false);
        }
        next.ballot = next.ballot.max(expected + 1);
        self.persist(vec![StoreOp::PutPartition(gpid.app_id, next.clone())])?;
        tracing::info!(%gpid, ballot = next.ballot, primary = ?next.primary, secondaries = ?next.secondaries, "configuration changed");
        if let Some(app) = self.apps.get_mut(&gpid.app_id) {
            app.partitions[gpid.pidx as usize] = next;
        }
        self.lb_counts = None;
        Ok(true)
    }

    /// A node was declared dead: it leaves every configuration (one durable batch), and
    /// actions naming it are dropped. Deferred while the stored level is blind or lower.
    pub(super) fn on_node_dead(&mut self, node: &str, now: Instant) -> Result<()> {
        if self.level <= MetaLevel::Blind {
            self.pending_dead.insert(node.to_string());
            return Ok(());
        }
        self.remove_everywhere(node, now)
    }

    /// A known address beaconed with a new data directory: the old node's replicas are
    /// gone, so it leaves every configuration at once (as if dead). Deferred while the
    /// stored level is blind or lower.
    pub(super) fn on_node_replaced(&mut self, node: &str, now: Instant) -> Result<()> {
        if self.level <= MetaLevel::Blind {
            self.pending_replaced.insert(node.to_string());
            return Ok(());
        }
        self.remove_everywhere(node, now)
    }

    /// Takes `node` out of every configuration in one durable batch; only then are
    /// actions naming it dropped.
    pub(super) fn remove_everywhere(&mut self, node: &str, now: Instant) -> Result<()> {
        let mut changed: Vec<(Gpid, PartitionConfig)> = Vec::new();
        for app in self.apps.values() {
            for p in &app.partitions {
                if p.members().any(|m| m == node) {
                    let gpid = Gpid::new(app.record.app_id, p.pidx);
                    changed.push((gpid, without_member(p, node)));
                }
            }
        }
        let ops: Vec<StoreOp> = changed
            .iter()
            .map(|(g, c)| StoreOp::PutPartition(g.app_id, c.clone()))
            .collect();
        self.persist(ops)?;
        self.inflight.retain(|_, f| !f.action.involves(node));
        self.proposals.retain(|_, a| !a.involves(node));
        let now_ms = self.unix_ms(now);
        for (gpid, config) in changed {
            if config.primary.is_none() {
                // A learner cannot learn without a primary, and cure does not promote
                // one while an action is in flight: give the action up.
                self.inflight.remove(&gpid);
            }
            if let Some(app) = self.apps.get_mut(&gpid.app_id) {
                app.partitions[gpid.pidx as usize] = config;
            }
            self.last_drop_ms.insert(gpid, now_ms);
        }
        self.lb_counts = None;
        tracing::warn!(node, "node removed from every partition configuration");
        Ok(())
    }

    /// Members that report their replica without verified data (deleted with
    /// `replica.kill_partition`, never held, on a failed disk) lost it: they leave the
    /// configuration. Replica-initiated, so refused at freezed and below. A replica not
    /// reported at all is left alone: its node has not taken its assignment yet.
    pub(super) fn drop_lost_replicas(&mut self, node: &str, now: Instant) -> Result<()> {
        if self.level().effective <= MetaLevel::Freezed {
            return Ok(());
        }
        let Some(state) = self.nodes.get(node) else {
            return Ok(());
        };
        // Only what the node reports can be lost: its reports are walked, not every
        // partition (a beacon's cost stays the node's own, see `index.rs`).
        let mut lost = Vec::new();
        for (gpid, r) in &state.replicas {
            let Some(app) = self
                .apps
                .get(&gpid.app_id)
                .filter(|a| a.record.status == AppStatus::Available)
            else {
                continue;
            };
            let Some(p) = app.partitions.get(gpid.pidx as usize) else {
                continue;
            };
            // A fresh configuration's members may start empty: a report older than the
            // configuration is of a replica about to be created.
            let invalid = !(r.is_valid() || p.fresh && r.ballot < p.ballot);
            if invalid && p.members().any(|m| m == node) {
                lost.push((*gpid, p.ballot));
            }
        }
        for (gpid, ballot) in lost {
            tracing::warn!(%gpid, node, "member lost its replica");
            if self.change_config(gpid, ballot, |c| {
                *c = without_member(c, node);
                true
            })? {
                let now_ms = self.unix_ms(now);
                self.last_drop_ms.insert(gpid, now_ms);
                // An action that moves the partition to or from the node cannot finish
                // (and without a primary no learner can learn): it ends, so cure can
                // replace the replica now rather than once the action times out.
                let orphaned = self.partition(gpid)?.primary.is_none()
                    || self
                        .inflight
                        .get(&gpid)
                        .is_some_and(|f| f.action.involves(node));
                if orphaned {
                    self.inflight.remove(&gpid);
                }
            }
        }
        Ok(())
    }

    /// The action in flight on `gpid` if `matches` accepts it.
    fn flight(&self, gpid: Gpid, matches: impl Fn(&Action) -> bool) -> Option<Action> {
        self.inflight
            .get(&gpid)
            .filter(|f| matches(&f.action))
            .map(|f| f.action.clone())
    }

    /// A partition's primary changes its configuration, as a compare-and-set on
    /// `ballot`: it removes a member that stopped answering prepares, upgrades a learner
    /// that has caught up (completing the action the learner was added for), renews its
    /// ballot after a restart, or carries out a proposed move or downgrade of itself.
    /// Returns whether the change was applied, and the configuration now. Refused at
    /// blind and below, and from anyone but the current primary.
    pub fn update_partition(
        &mut self,
        gpid: Gpid,
        ballot: i64,
        from: &str,
        change: PrimaryRequest,
        now: Instant,
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
        let not_in_flight = |what: &str| {
            Error::Refused(format!(
                "{what} is not in flight for {gpid} (the action ended or timed out)"
            ))
        };
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
                    let now_ms = self.unix_ms(now);
                    self.last_drop_ms.insert(gpid, now_ms);
                    self.inflight.retain(|_, f| !f.action.involves(&node));
                }
                done
            }
            PrimaryRequest::Renew => self.change_config(gpid, ballot, |_| true)?,
            PrimaryRequest::UpgradeLearner(node) => {
                let action = self
                    .flight(gpid, |a| a.copies_to() == Some(node.as_str()))
                    .ok_or_else(|| not_in_flight(&format!("learning on {node}")))?;
                self.finish(gpid, ballot, action)?
            }
            PrimaryRequest::MovePrimary(to) => {
                let action = self
                    .flight(
                        gpid,
                        |a| matches!(a, Action::MovePrimary { to: t, .. } if *t == to),
                    )
                    .ok_or_else(|| not_in_flight(&format!("a move of the primary to {to}")))?;
                self.finish(gpid, ballot, action)?
            }
            PrimaryRequest::Downgrade => {
                let action = self
                    .flight(gpid, |a| matches!(a, Action::DowngradeToSecondary { .. }))
                    .ok_or_else(|| not_in_flight("a downgrade"))?;
                self.finish(gpid, ballot, action)?
            }
        };
        Ok((applied, self.partition(gpid)?.clone()))
    }

    /// Completes an action in flight; the action is forgotten only once the new
    /// configuration is durable (or the configuration moved on without it).
    fn finish(&mut self, gpid: Gpid, ballot: i64, action: Action) -> Result<bool> {
        let done = self.change_config(gpid, ballot, |c| apply_to_config(c, &action))?;
        if !done {
            tracing::info!(%gpid, %action, "configuration moved on; action dropped");
        }
        self.inflight.remove(&gpid);
        // The next step (another move, or the balancer once nothing is in flight) need not
        // wait for the interval.
        self.want_round();
        Ok(done)
    }

    /// Inactive replicas `node` holds that nothing needs any more: their table is gone, or
    /// their partition is fully healthy without them (`assignments` is what the node is
    /// assigned now), by the durable configurations. Only at level lively. Never one the
    /// working configurations make a member or an action in flight moves there: a learner
    /// just upgraded is in neither the durable assignments nor the in-flight actions until
    /// its new configuration is written.
    pub(super) fn garbage(&self, node: &str, assignments: &[NodeAssignment]) -> Vec<Gpid> {
        if self.level().effective < MetaLevel::Lively {
            return Vec::new();
        }
        let Some(state) = self.nodes.get(node) else {
            return Vec::new();
        };
        let assigned: Vec<Gpid> = assignments.iter().map(|a| a.gpid).collect();
        let planned_here = |g: &Gpid| {
            self.inflight
                .get(g)
                .is_some_and(|f| f.action.involves(node))
                || self
                    .apps
                    .get(&g.app_id)
                    .and_then(|a| a.partitions.get(g.pidx as usize))
                    .is_some_and(|p| p.members().any(|m| m == node))
        };
        state
            .replicas
            .keys()
            .filter(|g| !assigned.contains(g) && !planned_here(g))
            .filter(|g| match self.durable.apps.get(&g.app_id) {
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
            fresh: true,
        };
        c = without_member(&c, "a");
        assert_eq!(c.primary, None);
        assert_eq!(c.ballot, 4);
        assert!(!c.fresh, "a changed partition is not fresh");
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
