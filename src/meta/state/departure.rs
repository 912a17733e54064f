//! Nodes that go away at once, on the meta state: `drop_node` forgets a dead or
//! decommissioned node, and a replica server stopping on purpose (SIGTERM) first has its
//! primaries moved, then leaves every configuration without waiting for the grace period
//! (it has stopped serving, so no lease is at stake).

use std::time::Instant;

use super::MetaState;
use crate::error::{Error, Result};
use crate::meta::lifecycle::{NodeLife, NodeLifecycle};
use crate::meta::store::StoreOp;
use crate::model::Gpid;

/// What a stopping replica server asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveStage {
    /// Move my primaries to secondaries.
    MovePrimaries,
    /// I have stopped serving: take me out of every configuration now.
    Gone,
}

impl MetaState {
    /// Partitions whose last replica `node` holds: it is their only member, or they lost
    /// every member and wait for it (it was dropped last).
    pub fn last_replicas_on(&self, node: &str) -> Vec<Gpid> {
        let mut out = Vec::new();
        for app in self.apps.values() {
            for p in &app.partitions {
                let members: Vec<&str> = p.members().collect();
                let only = members == [node];
                let awaited = members.is_empty() && p.last_drops.last().is_some_and(|l| l == node);
                if only || awaited {
                    out.push(Gpid::new(app.record.app_id, p.pidx));
                }
            }
        }
        out
    }

    /// Forgets `node` at once: it leaves every configuration and `nodes`, and its data
    /// directory is refused if it beacons again. Refused while it is ALIVE (unless it is
    /// DECOMMISSIONED: it holds nothing), and while it holds a partition's last replica
    /// unless `force`. Returns the partitions a forced drop lost.
    pub fn drop_node(&mut self, node: &str, force: bool, now: Instant) -> Result<Vec<Gpid>> {
        let life = self.life(node);
        if life == NodeLifecycle::Dropped {
            return Ok(Vec::new());
        }
        let Some(state) = self.nodes.get(node) else {
            return Err(Error::NotFound(format!("no node {node}")));
        };
        if state.alive && life != NodeLifecycle::Decommissioned {
            return Err(Error::Unsafe(format!(
                "{node} is ALIVE: stop it first, or decommission it (a live node's replicas may still serve)"
            )));
        }
        let lost = self.last_replicas_on(node);
        if !lost.is_empty() && !force {
            let names: Vec<String> = lost.iter().map(Gpid::to_string).collect();
            return Err(Error::Unsafe(format!(
                "{node} holds the last replica of {} partition(s): {}; dropping it loses their data. Bring it back, or add --force to drop it anyway",
                lost.len(),
                names.join(" ")
            )));
        }
        let incarnation = state.incarnation.clone();
        if self.is_member(node) {
            self.remove_everywhere(node, now)?;
        }
        let record = NodeLife {
            state: NodeLifecycle::Dropped,
            started_ms: self.lives.get(node).map_or(0, |l| l.started_ms),
            replicas_total: 0,
            bytes_total: 0,
            incarnation,
        };
        self.persist(vec![StoreOp::PutLife(node.to_string(), record.clone())])?;
        self.forget(node, record);
        if !lost.is_empty() {
            tracing::error!(node, lost = ?lost, "node DROPPED by force: partitions lost their last replica");
        } else {
            tracing::warn!(node, "node DROPPED");
        }
        Ok(lost)
    }

    /// Takes a dropped node out of every in-memory view.
    pub(super) fn forget(&mut self, node: &str, record: NodeLife) {
        self.lives.insert(node.to_string(), record);
        self.nodes.remove(node);
        self.presence.remove(node);
        self.leaving.remove(node);
        self.pending_dead.remove(node);
        self.pending_replaced.remove(node);
        self.drain_marks.remove(node);
        self.inflight.retain(|_, f| !f.action.involves(node));
        self.proposals.retain(|_, a| !a.involves(node));
        self.lb_counts = None;
    }

    /// A stopping replica server's request. Returns how many partitions still have it
    /// as primary.
    pub fn leave(
        &mut self,
        node: &str,
        incarnation: &str,
        stage: LeaveStage,
        now: Instant,
    ) -> Result<u32> {
        let Some(state) = self.nodes.get(node) else {
            return Err(Error::NotFound(format!("no node {node}")));
        };
        if !state.incarnation.is_empty() && state.incarnation != incarnation {
            return Err(Error::Refused(format!(
                "{node} is now another data directory; this process may not speak for it"
            )));
        }
        match stage {
            LeaveStage::MovePrimaries => {
                if self.leaving.insert(node.to_string()) {
                    tracing::info!(node, "node is stopping: moving its primaries away");
                    self.lb_counts = None;
                }
            }
            LeaveStage::Gone => {
                self.leaving.remove(node);
                if let Some(n) = self.nodes.get_mut(node)
                    && n.alive
                {
                    n.alive = false;
                    tracing::warn!(node, "node is UNALIVE: it stopped on purpose");
                    if self.life(node) == NodeLifecycle::Decommissioned {
                        self.retire(node)?;
                    } else {
                        self.on_node_dead(node, now)?;
                    }
                }
            }
        }
        Ok(self.holdings(node).1)
    }

    /// A DECOMMISSIONED node stopped: it is DROPPED (listed only by `nodes -a`).
    pub(super) fn retire(&mut self, node: &str) -> Result<()> {
        let Some(mut record) = self.lives.get(node).cloned() else {
            return Ok(());
        };
        record.state = NodeLifecycle::Dropped;
        self.persist(vec![StoreOp::PutLife(node.to_string(), record.clone())])?;
        self.forget(node, record);
        tracing::info!(node, "decommissioned node stopped: it leaves `nodes`");
        Ok(())
    }
}
