//! Nodes on the meta state: beacons (registration, a replaced data directory, replica
//! reports), what each node is assigned, and the failure detector's check.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{BeaconOutcome, MetaState, NodeAssignment, NodeState};
use crate::error::{Error, Result};
use crate::meta::lifecycle::NodeLifecycle;
use crate::meta::store::StoreOp;
use crate::model::{Gpid, ReplicaReport, ReplicaRole, validate_address};

impl MetaState {
    /// Records a beacon: registers a new node (durably), marks it ALIVE, stores its
    /// replica report, takes out of every configuration a node whose data directory was
    /// replaced and members that lost their replica, and returns what the node should
    /// hold.
    pub fn beacon(
        &mut self,
        address: &str,
        incarnation: &str,
        replicas: BTreeMap<Gpid, ReplicaReport>,
        now: Instant,
    ) -> Result<BeaconOutcome> {
        validate_address(address)?;
        if let Some(life) = self.lives.get(address)
            && life.state == NodeLifecycle::Dropped
        {
            if life.incarnation.is_empty() || life.incarnation == incarnation {
                return Err(Error::Refused(format!(
                    "{address} was dropped from the cluster; its data directory is refused. Wipe it to join as a new node"
                )));
            }
            // A wiped data directory on a dropped node's address: a new node.
            self.persist(vec![StoreOp::DeleteLife(address.to_string())])?;
            self.lives.remove(address);
            tracing::info!(
                node = address,
                "a dropped node's address joins again as a new node"
            );
        }
        let known = self
            .nodes
            .get(address)
            .map(|n| (n.alive, n.incarnation.clone()));
        match &known {
            None => {
                self.persist(vec![StoreOp::PutNode(
                    address.to_string(),
                    incarnation.to_string(),
                )])?;
                tracing::info!(node = address, incarnation, "node joined");
                self.lb_counts = None;
            }
            Some((alive, old)) => {
                if old != incarnation {
                    self.persist(vec![StoreOp::PutNode(
                        address.to_string(),
                        incarnation.to_string(),
                    )])?;
                }
                if !old.is_empty() && old != incarnation {
                    tracing::warn!(
                        node = address,
                        old,
                        new = incarnation,
                        "a new data directory on a known address: a new, empty node; the old one's replicas are gone"
                    );
                    self.on_node_replaced(address, now)?;
                } else if !alive {
                    tracing::info!(node = address, "node is ALIVE again");
                    self.lb_counts = None;
                }
            }
        }
        let disk_free = self.nodes.get(address).map_or(0, |n| n.disk_free);
        let node = NodeState {
            alive: true,
            last_beacon: now,
            reported: true,
            incarnation: incarnation.to_string(),
            replicas,
            disk_free,
        };
        self.nodes.insert(address.to_string(), node);
        self.drop_lost_replicas(address, now)?;
        let assignments = self.assignments(address);
        let garbage = self.garbage(address, &assignments);
        Ok(BeaconOutcome {
            assignments,
            garbage,
        })
    }

    /// Every replica the durable configurations (and learners in flight) place on
    /// `address`. A node whose new data directory is not yet durably known is assigned
    /// nothing: its old replicas are gone.
    pub fn assignments(&self, address: &str) -> Vec<NodeAssignment> {
        let mut out = Vec::new();
        let known = self.durable.nodes.get(address);
        if self
            .nodes
            .get(address)
            .is_some_and(|n| known.is_some_and(|k| !k.is_empty() && *k != n.incarnation))
        {
            return out;
        }
        // Its partitions by the index, and those it learns (few: actions in flight), in
        // gpid order.
        let learning = self
            .inflight
            .iter()
            .filter(|(_, f)| f.action.copies_to() == Some(address))
            .map(|(g, _)| *g);
        let gpids: BTreeSet<Gpid> = self.members.of(address).chain(learning).collect();
        for gpid in gpids {
            let Some(app) = self.durable.apps.get(&gpid.app_id) else {
                continue;
            };
            let Some(p) = app.partitions.get(gpid.pidx as usize) else {
                continue;
            };
            let role = if p.primary.as_deref() == Some(address) {
                ReplicaRole::Primary
            } else if p.secondaries.iter().any(|s| s == address) {
                ReplicaRole::Secondary
            } else if self
                .inflight
                .get(&gpid)
                .is_some_and(|f| f.action.copies_to() == Some(address))
            {
                ReplicaRole::Learner
            } else {
                continue;
            };
            let proposal = self
                .inflight
                .get(&gpid)
                .filter(|f| role == ReplicaRole::Primary && f.action.primary_executes())
                .map(|f| f.action.clone());
            out.push(NodeAssignment {
                gpid,
                ballot: p.ballot,
                role,
                app_status: app.record.status,
                primary: p.primary.clone(),
                secondaries: p.secondaries.clone(),
                max_replica_count: app.record.max_replica_count,
                create_empty: p.fresh && role != ReplicaRole::Learner,
                proposal,
            });
        }
        out
    }

    /// The failure detector's check: nodes silent for longer than the grace period become
    /// UNALIVE and leave every configuration (or, while the level defers configuration
    /// changes, wait to). Returns the nodes that just became UNALIVE.
    pub fn check_nodes(&mut self, now: Instant) -> Result<Vec<String>> {
        let grace = self.config.grace;
        let mut dead = Vec::new();
        for (addr, node) in &mut self.nodes {
            if node.alive && now.saturating_duration_since(node.last_beacon) > grace {
                node.alive = false;
                tracing::warn!(
                    node = addr.as_str(),
                    "node is UNALIVE: no beacon within the grace period"
                );
                dead.push(addr.clone());
            }
        }
        // A dead node still in a configuration: its removal was not made durable (a
        // failed store write), so it is tried again.
        let stranded: Vec<String> = self
            .nodes
            .iter()
            .filter(|(addr, n)| {
                !n.alive && !dead.contains(addr) && !self.pending_dead.contains(*addr)
            })
            .map(|(addr, _)| addr.clone())
            .filter(|addr| self.is_member(addr))
            .collect();
        for addr in dead.iter().chain(&stranded) {
            self.lb_counts = None;
            if self.life(addr) == NodeLifecycle::Decommissioned {
                self.retire(addr)?;
            } else {
                self.on_node_dead(addr, now)?;
            }
        }
        Ok(dead)
    }

    /// Whether `address` is a member of any partition's configuration.
    pub(super) fn is_member(&self, address: &str) -> bool {
        self.apps
            .values()
            .flat_map(|a| &a.partitions)
            .any(|p| p.members().any(|m| m == address))
    }

    /// Whether `address` is a node the meta server knows (of any status).
    pub fn knows_node(&self, address: &str) -> bool {
        self.nodes.contains_key(address)
    }

    /// Whether `address` is ALIVE now.
    pub fn is_alive(&self, address: &str) -> bool {
        self.nodes.get(address).is_some_and(|n| n.alive)
    }

    /// (ALIVE, UNALIVE) node counts, for auto-freeze: nodes that left on purpose
    /// (DECOMMISSIONED) do not count.
    pub fn node_counts(&self) -> (u32, u32) {
        let counted = || {
            self.nodes
                .iter()
                .filter(|(addr, _)| !self.life(addr).left())
        };
        let alive = counted().filter(|(_, n)| n.alive).count() as u32;
        (alive, counted().count() as u32 - alive)
    }

    /// Records the free space a node reported on its data directory's disk.
    pub fn set_disk_free(&mut self, address: &str, bytes: u64) {
        if let Some(n) = self.nodes.get_mut(address) {
            n.disk_free = bytes;
        }
    }
}
