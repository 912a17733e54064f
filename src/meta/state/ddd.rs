//! Partitions that lost every replica (Pegasus's DDD: dead, dead, dead): what each of
//! their last members reported, what cure waits for, and an operator's decision to make
//! a chosen node their primary. Nothing is rebuilt empty and called healthy unless an
//! operator says so, and the answer says what the choice may lose.

use std::time::Instant;

use super::MetaState;
use crate::error::{Error, Result};
use crate::meta::guardian::{DddDecision, ddd_decision};
use crate::model::{AppStatus, Gpid, MetaLevel, ReplicaReport};

/// One of a lost partition's last members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DddMember {
    /// The node.
    pub node: String,
    /// ALIVE now.
    pub alive: bool,
    /// It has reported since the meta server started.
    pub reported: bool,
    /// What it reported of the partition (`None`: it holds nothing of it).
    pub report: Option<ReplicaReport>,
}

/// A partition that lost every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DddPartition {
    /// The partition.
    pub gpid: Gpid,
    /// Its table.
    pub app_name: String,
    /// Its configuration's ballot.
    pub ballot: i64,
    /// Its dropped members, the one dropped last at the end.
    pub members: Vec<DddMember>,
    /// What cure waits for, or will do.
    pub decision: String,
}

impl MetaState {
    /// Every partition of an AVAILABLE table with no member left but dropped ones, at
    /// `now`.
    pub fn ddd_partitions(&self, now: Instant) -> Vec<DddPartition> {
        let snap = self.snapshot(now);
        let mut out = Vec::new();
        for app in &snap.apps {
            let name = &self.apps[&app.app_id].record.app_name;
            for p in &app.partitions {
                let c = &p.config;
                if c.primary.is_some() || !c.secondaries.is_empty() || c.last_drops.is_empty() {
                    continue;
                }
                let gpid = app.gpid(c.pidx);
                let members = c
                    .last_drops
                    .iter()
                    .map(|node| {
                        let view = snap.nodes.get(node);
                        DddMember {
                            node: node.clone(),
                            alive: view.is_some_and(|v| v.alive),
                            reported: view.is_some_and(|v| v.reported),
                            report: view.and_then(|v| v.replicas.get(&gpid).copied()),
                        }
                    })
                    .collect();
                let decision = match ddd_decision(&snap, app, p) {
                    DddDecision::Choose(node) => {
                        format!("cure makes {node} the primary: it holds the most")
                    }
                    DddDecision::Wait(why) => why,
                    DddDecision::Lost(why) => {
                        format!("{why}: ddd_diagnose --force-primary {gpid} ADDR --yes")
                    }
                };
                out.push(DddPartition {
                    gpid,
                    app_name: name.clone(),
                    ballot: c.ballot,
                    members,
                    decision,
                });
            }
        }
        out
    }

    /// The partitions of table `app_id` that lost every replica.
    pub fn ddd_pidxs(&self, app_id: u32) -> Vec<u32> {
        let Some(app) = self.durable.apps.get(&app_id) else {
            return Vec::new();
        };
        app.partitions
            .iter()
            .filter(|c| c.primary.is_none() && c.secondaries.is_empty() && !c.last_drops.is_empty())
            .map(|c| c.pidx)
            .collect()
    }

    /// An operator's decision for a partition that lost every replica: `node` becomes its
    /// primary — with its data if it holds a verified replica, otherwise empty. Returns
    /// what the choice may lose.
    pub fn force_primary(&mut self, gpid: Gpid, node: &str, now: Instant) -> Result<String> {
        let view = self.level();
        if view.effective < MetaLevel::Steady {
            return Err(Error::Refused(format!(
                "refused: current meta level is {} (needs steady or lively)",
                view.effective.fl_name()
            )));
        }
        let app = self
            .apps
            .get(&gpid.app_id)
            .filter(|a| a.record.status == AppStatus::Available)
            .ok_or_else(|| Error::NotFound(format!("table {} does not exist", gpid.app_id)))?;
        let config = app
            .partitions
            .get(gpid.pidx as usize)
            .ok_or_else(|| Error::NotFound(format!("partition {gpid} does not exist")))?
            .clone();
        if config.primary.is_some() || !config.secondaries.is_empty() {
            return Err(Error::Refused(format!(
                "partition {gpid} still has members (primary {}, secondaries [{}]): only a partition that lost every replica is forced",
                config.primary.as_deref().unwrap_or("-"),
                config.secondaries.join(",")
            )));
        }
        if !self.is_alive(node) {
            return Err(Error::Refused(format!("node {node} is not ALIVE")));
        }
        let held = self.nodes[node]
            .replicas
            .get(&gpid)
            .filter(|r| r.is_valid())
            .copied();
        let best = config
            .last_drops
            .iter()
            .filter_map(|d| self.nodes.get(d)?.replicas.get(&gpid).copied())
            .filter(ReplicaReport::is_valid)
            .map(|r| r.committed)
            .max();
        self.inflight.remove(&gpid);
        self.proposals.remove(&gpid);
        let applied = self.change_config(gpid, config.ballot, |c| {
            c.primary = Some(node.to_string());
            c.last_drops.retain(|d| d != node);
            c.fresh = held.is_none();
            true
        })?;
        if !applied {
            return Err(Error::Refused(format!(
                "the configuration of {gpid} changed meanwhile; look again"
            )));
        }
        let now_ms = self.unix_ms(now);
        self.last_drop_ms.insert(gpid, now_ms);
        let lost = match held {
            None => {
                format!("every write to partition {gpid} may be lost: it starts empty on {node}")
            }
            Some(r) => match best.filter(|b| *b > r.committed) {
                Some(b) => format!(
                    "writes to partition {gpid} after decree {} may be lost (another last member committed up to {b})",
                    r.committed
                ),
                None => format!(
                    "writes to partition {gpid} after decree {} may be lost (what {node} had not committed)",
                    r.committed
                ),
            },
        };
        tracing::warn!(%gpid, node, "operator forced a primary: {lost}");
        Ok(lost)
    }
}
