//! Nodes leaving on purpose, on the meta state: decommission (pre-flight checks, plan,
//! progress, cancel), drop, and a replica server that stops (SIGTERM). The decisions of
//! what moves are [`crate::meta::drain`]'s; this module keeps the durable lifecycle
//! records and judges "holds nothing" by the configurations, so a decommission also
//! finishes at level steady.

use std::collections::BTreeMap;
use std::time::Instant;

use super::MetaState;
use super::preflight::{Check, NodePlan};
use crate::error::{Error, Result};
use crate::meta::drain::drain;
use crate::meta::lifecycle::{NodeLife, NodeLifecycle};
use crate::meta::store::StoreOp;
use crate::model::{AppStatus, Gpid, MetaLevel, PartitionConfig};

/// A decommission's checks and plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecommissionOutcome {
    /// Every check.
    pub checks: Vec<Check>,
    /// The plan, per node.
    pub plan: Vec<NodePlan>,
    /// Whether the nodes are now DECOMMISSIONING.
    pub started: bool,
}

/// One departing node's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainView {
    /// The node.
    pub node: String,
    /// Its lifecycle record.
    pub life: NodeLife,
    /// Whether it is ALIVE.
    pub alive: bool,
    /// Replicas the configurations still place on it, and their bytes.
    pub replicas_left: u32,
    /// Their bytes, as last reported.
    pub bytes_left: u64,
    /// Of them, primaries.
    pub primaries_left: u32,
    /// Milliseconds since a replica last left it.
    pub idle_ms: u64,
    /// Why partitions do not move (filled once it is idle for a while).
    pub blockers: Vec<(Gpid, String)>,
}

impl MetaState {
    /// A node's lifecycle (NORMAL unless recorded otherwise).
    pub fn life(&self, node: &str) -> NodeLifecycle {
        self.lives
            .get(node)
            .map_or(NodeLifecycle::Normal, |l| l.state)
    }

    /// (replicas, primaries, bytes) the configurations of AVAILABLE tables place on
    /// `node`, bytes as it last reported them.
    pub(super) fn holdings(&self, node: &str) -> (u32, u32, u64) {
        let (mut replicas, mut primaries, mut bytes) = (0, 0, 0u64);
        for (gpid, p) in self.replicas_on(node) {
            replicas += 1;
            primaries += u32::from(p.primary.as_deref() == Some(node));
            bytes = bytes.saturating_add(self.reported_bytes(node, gpid));
        }
        (replicas, primaries, bytes)
    }

    /// The partitions of AVAILABLE tables whose configuration names `node`.
    pub(super) fn replicas_on<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = (Gpid, &'a PartitionConfig)> + 'a {
        self.apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
            .flat_map(move |a| {
                a.partitions
                    .iter()
                    .filter(move |p| p.members().any(|m| m == node))
                    .map(move |p| (Gpid::new(a.record.app_id, p.pidx), p))
            })
    }

    /// The bytes `node` last reported for its replica of `gpid`.
    pub(super) fn reported_bytes(&self, node: &str, gpid: Gpid) -> u64 {
        self.nodes
            .get(node)
            .and_then(|n| n.replicas.get(&gpid))
            .map_or(0, |r| r.disk_bytes)
    }

    /// Checks a decommission of `nodes` and plans it; unless `dry_run`, and only if every
    /// check passed, the nodes become DECOMMISSIONING. Nodes already DECOMMISSIONING join
    /// the batch (a second decommission while one runs).
    pub fn decommission(
        &mut self,
        nodes: &[String],
        dry_run: bool,
        now: Instant,
    ) -> Result<DecommissionOutcome> {
        if nodes.is_empty() {
            return Err(Error::InvalidInput("name at least one node".into()));
        }
        let checks = self.preflight(nodes, now);
        let plan = self.project(nodes);
        let ok = checks.iter().all(|c| c.ok);
        if ok && !dry_run {
            let now_ms = self.unix_ms(now);
            let mut ops = Vec::new();
            for node in nodes {
                if self.life(node) == NodeLifecycle::Decommissioning {
                    continue;
                }
                let (replicas, _, bytes) = self.holdings(node);
                let life = NodeLife {
                    state: NodeLifecycle::Decommissioning,
                    started_ms: now_ms,
                    replicas_total: replicas,
                    bytes_total: bytes,
                    incarnation: self.incarnation_of(node),
                };
                ops.push(StoreOp::PutLife(node.clone(), life.clone()));
                self.lives.insert(node.clone(), life);
                self.drain_marks.insert(node.clone(), (replicas, now_ms));
                tracing::warn!(node = node.as_str(), replicas, "node is DECOMMISSIONING");
            }
            self.persist(ops)?;
            self.lb_counts = None;
            // A node that holds nothing is DECOMMISSIONED at once.
            self.finish_drains(now)?;
        }
        Ok(DecommissionOutcome {
            checks,
            plan,
            started: ok && !dry_run,
        })
    }

    fn incarnation_of(&self, node: &str) -> String {
        self.nodes
            .get(node)
            .map(|n| n.incarnation.clone())
            .unwrap_or_default()
    }

    /// Returns DECOMMISSIONING nodes among `nodes` to NORMAL; what moved stays moved.
    pub fn cancel_decommission(&mut self, nodes: &[String]) -> Result<Vec<String>> {
        let mut ops = Vec::new();
        let mut cancelled = Vec::new();
        for node in nodes {
            match self.life(node) {
                NodeLifecycle::Decommissioning => {
                    ops.push(StoreOp::DeleteLife(node.clone()));
                    cancelled.push(node.clone());
                }
                NodeLifecycle::Normal if self.nodes.contains_key(node) => {}
                NodeLifecycle::Normal => {
                    return Err(Error::NotFound(format!("no node {node}")));
                }
                other => {
                    return Err(Error::Refused(format!(
                        "{node} is {}: only a DECOMMISSIONING node can be cancelled",
                        other.name()
                    )));
                }
            }
        }
        self.persist(ops)?;
        for node in &cancelled {
            self.lives.remove(node);
            self.drain_marks.remove(node);
            tracing::warn!(
                node = node.as_str(),
                "decommission cancelled: node is NORMAL"
            );
        }
        self.lb_counts = None;
        Ok(cancelled)
    }

    /// Ends decommissions whose node holds nothing any more (no configuration names it
    /// and no copy to it is in flight), and notes progress for stall reports.
    pub(super) fn finish_drains(&mut self, now: Instant) -> Result<()> {
        let now_ms = self.unix_ms(now);
        let draining: Vec<String> = self
            .lives
            .iter()
            .filter(|(_, l)| l.state == NodeLifecycle::Decommissioning)
            .map(|(n, _)| n.clone())
            .collect();
        for node in draining {
            let (replicas, _, _) = self.holdings(&node);
            let mark = self
                .drain_marks
                .entry(node.clone())
                .or_insert((replicas, now_ms));
            if replicas < mark.0 {
                *mark = (replicas, now_ms);
            }
            let copying = self.inflight.values().any(|f| f.action.involves(&node));
            if replicas > 0 || copying {
                continue;
            }
            let mut life = self.lives[&node].clone();
            life.state = NodeLifecycle::Decommissioned;
            self.persist(vec![StoreOp::PutLife(node.clone(), life.clone())])?;
            self.lives.insert(node.clone(), life);
            self.drain_marks.remove(&node);
            tracing::warn!(
                node = node.as_str(),
                "node is DECOMMISSIONED: it holds nothing and may be stopped"
            );
            if !self.is_alive(&node) {
                self.retire(&node)?;
            }
        }
        Ok(())
    }

    /// Progress of every node that is not NORMAL (dropped ones excluded).
    pub fn drain_status(&self, now: Instant) -> Vec<DrainView> {
        let now_ms = self.unix_ms(now);
        let stall_after_ms = (self.config.lb_interval.as_millis() as u64 * 10).max(5_000);
        let level = self.level().effective;
        let plan = drain(&self.snapshot(now));
        self.durable
            .lives
            .iter()
            .filter(|(_, l)| l.state != NodeLifecycle::Dropped)
            .map(|(node, life)| {
                let (replicas_left, primaries_left, bytes_left) = self.holdings(node);
                let since = self.drain_marks.get(node).map_or(life.started_ms, |m| m.1);
                let idle_ms = now_ms.saturating_sub(since);
                let mut blockers = Vec::new();
                if life.state == NodeLifecycle::Decommissioning && idle_ms >= stall_after_ms {
                    blockers = self.blockers(node, level, &plan.blocked);
                }
                DrainView {
                    node: node.clone(),
                    life: life.clone(),
                    alive: self.is_alive(node),
                    replicas_left,
                    bytes_left,
                    primaries_left,
                    idle_ms,
                    blockers,
                }
            })
            .collect()
    }

    /// Why `node`'s partitions do not move.
    fn blockers(
        &self,
        node: &str,
        level: MetaLevel,
        blocked: &BTreeMap<Gpid, String>,
    ) -> Vec<(Gpid, String)> {
        let mut out = Vec::new();
        for (gpid, _) in self.replicas_on(node) {
            let why = if level <= MetaLevel::Freezed {
                format!("the meta level in force is {}: nothing moves", level.name())
            } else if !self.all_reported() {
                "waiting for every ALIVE node to report after a meta server start".into()
            } else if let Some(f) = self.inflight.get(&gpid) {
                format!(
                    "in flight: {} (a learner that keeps failing is retried when it times out)",
                    f.action
                )
            } else if let Some(why) = blocked.get(&gpid) {
                why.clone()
            } else {
                "waiting for the next scheduling round".into()
            };
            out.push((gpid, why));
        }
        out
    }
}
