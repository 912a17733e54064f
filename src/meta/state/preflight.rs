//! A decommission's pre-flight checks, in a fixed order (`nodes_exist`, `enough_nodes`,
//! `disk_space`, `all_healthy`, `live_ratio`), and its plan: where each departing node's
//! replicas would go, by the choice draining makes.

use std::collections::BTreeMap;
use std::time::Instant;

use super::MetaState;
use crate::meta::lifecycle::NodeLifecycle;
use crate::model::{AppStatus, Gpid};
use crate::timeutil::format_size;

/// One pre-flight check of a decommission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What it checks (stable, snake_case).
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// The figures behind it.
    pub detail: String,
}

/// One node's part of a decommission plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// The node.
    pub node: String,
    /// Replicas it holds.
    pub replicas: u32,
    /// Of them, primaries.
    pub primaries: u32,
    /// Bytes to copy.
    pub bytes: u64,
    /// Receiving node → (replicas, bytes).
    pub targets: BTreeMap<String, (u32, u64)>,
}

impl MetaState {
    /// Every pre-flight check, in a fixed order.
    pub(super) fn preflight(&self, batch: &[String], now: Instant) -> Vec<Check> {
        let in_batch =
            |n: &str| batch.iter().any(|b| b == n) || self.life(n) != NodeLifecycle::Normal;
        let mut problems = Vec::new();
        for n in batch {
            if !self.nodes.contains_key(n.as_str()) {
                problems.push(format!("{n} is not a known node"));
            } else if self.life(n).left() {
                problems.push(format!("{n} is already {}", self.life(n).name()));
            }
        }
        let mut checks = vec![Check {
            name: "nodes_exist",
            ok: problems.is_empty(),
            detail: if problems.is_empty() {
                format!("{} known node(s)", batch.len())
            } else {
                problems.join("; ")
            },
        }];
        let remaining: Vec<&str> = self
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|n| !in_batch(n) && self.is_serving(n, now))
            .collect();
        let widest = self
            .apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
            .map(|a| a.record.max_replica_count)
            .max()
            .unwrap_or(0);
        checks.push(Check {
            name: "enough_nodes",
            ok: remaining.len() as u32 >= widest,
            detail: format!(
                "{} serving node(s) remain; the widest table has {widest} replicas",
                remaining.len()
            ),
        });
        // Reported numbers are untrusted: saturate rather than overflow.
        let moving: u64 = batch
            .iter()
            .map(|n| self.holdings(n).2)
            .fold(0, u64::saturating_add);
        let free: u64 = remaining
            .iter()
            .filter_map(|n| self.nodes.get(*n))
            .map(|n| n.disk_free)
            .fold(0, u64::saturating_add);
        let needed = moving.saturating_add(moving / 10);
        checks.push(Check {
            name: "disk_space",
            ok: free >= needed,
            detail: format!(
                "moves {} (+10% headroom) onto {} free; {} would remain",
                format_size(moving),
                format_size(free),
                format_size(free.saturating_sub(moving))
            ),
        });
        checks.push(self.live_ratio_check(batch));
        let unhealthy: Vec<String> = self
            .apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
            .flat_map(|a| {
                a.partitions
                    .iter()
                    .filter(|p| {
                        !self
                            .partition_health(p, a.record.max_replica_count, now)
                            .fully_healthy
                    })
                    .map(|p| Gpid::new(a.record.app_id, p.pidx).to_string())
            })
            .collect();
        checks.push(Check {
            name: "all_healthy",
            ok: unhealthy.is_empty(),
            detail: if unhealthy.is_empty() {
                "every partition is fully healthy".into()
            } else {
                let shown: Vec<&str> = unhealthy.iter().take(8).map(String::as_str).collect();
                format!(
                    "{} unhealthy partition(s): {}",
                    unhealthy.len(),
                    shown.join(" ")
                )
            },
        });
        checks
    }

    /// Whether the meta server stays unfrozen once the batch has left.
    fn live_ratio_check(&self, batch: &[String]) -> Check {
        let (alive, dead) = self.node_counts();
        let counted: Vec<&String> = batch
            .iter()
            .filter(|n| self.nodes.contains_key(n.as_str()) && !self.life(n).left())
            .collect();
        let leaving_alive = counted.iter().filter(|n| self.is_alive(n)).count() as u32;
        let leaving_dead = counted.len() as u32 - leaving_alive;
        let alive_after = alive.saturating_sub(leaving_alive);
        let total_after = (alive + dead).saturating_sub(leaving_alive + leaving_dead);
        let min = self.config.min_live_node_count_for_unfreeze;
        let pct = self.settings.live_percentage;
        let ok = alive_after >= min && alive_after * 100 >= pct * total_after;
        Check {
            name: "live_ratio",
            ok,
            detail: format!(
                "after: {alive_after} ALIVE of {total_after} (needs >= {min} and >= {pct}%)"
            ),
        }
    }

    /// Where each node's replicas would go, by the same choice draining makes.
    pub(super) fn project(&self, batch: &[String]) -> Vec<NodePlan> {
        let mut loads: BTreeMap<String, u32> = self
            .nodes
            .keys()
            .filter(|n| {
                self.is_alive(n)
                    && self.life(n) == NodeLifecycle::Normal
                    && !batch.contains(n)
                    && !self.settings.black_list.contains(*n)
            })
            .map(|n| (n.clone(), self.holdings(n).0))
            .collect();
        let mut plans = Vec::new();
        for node in batch {
            let mut plan = NodePlan {
                node: node.clone(),
                ..NodePlan::default()
            };
            for (gpid, p) in self.replicas_on(node) {
                let bytes = self.reported_bytes(node, gpid);
                plan.replicas += 1;
                plan.primaries += u32::from(p.primary.as_deref() == Some(node));
                plan.bytes += bytes;
                let target = loads
                    .iter()
                    .filter(|(n, _)| !p.members().any(|m| m == n.as_str()))
                    .min_by_key(|(n, l)| (**l, n.as_str()))
                    .map(|(n, _)| n.clone());
                if let Some(t) = target {
                    *loads.get_mut(&t).expect("a load") += 1;
                    let e = plan.targets.entry(t).or_default();
                    e.0 += 1;
                    e.1 += bytes;
                }
            }
            plans.push(plan);
        }
        plans
    }
}
