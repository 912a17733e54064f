//! Read-only queries on the meta state: nodes with their replica counts, tables, one
//! partition's configuration. What the shell is shown (nodes' counts, tables) is read
//! from the image of what is durable; planning reads the working copy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{MetaState, NodeSummary};
use crate::error::{Error, Result};
use crate::meta::app::App;
use crate::meta::lifecycle::NodeLifecycle;
use crate::model::{AppStatus, Gpid, PartitionConfig};

impl MetaState {
    /// Every node with its durable replica counts over AVAILABLE tables, by address.
    pub fn list_nodes(&self, now: Instant) -> Vec<NodeSummary> {
        self.node_summaries(&self.durable.apps, now)
    }

    /// Dropped nodes (what `nodes -a` adds), by address.
    pub fn dropped_nodes(&self) -> Vec<NodeSummary> {
        self.durable
            .lives
            .iter()
            .filter(|(_, l)| l.state == NodeLifecycle::Dropped)
            .map(|(addr, _)| NodeSummary {
                address: addr.clone(),
                alive: false,
                primary_count: 0,
                secondary_count: 0,
                last_beacon_ago: Duration::ZERO,
                reported: false,
                disk_bytes: 0,
                serving: false,
                state: NodeLifecycle::Dropped,
                disk_free: 0,
            })
            .collect()
    }

    /// Every node with its replica counts in `apps`, by address.
    pub(super) fn node_summaries(
        &self,
        apps: &BTreeMap<u32, App>,
        now: Instant,
    ) -> Vec<NodeSummary> {
        let mut counts: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
        for app in apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
        {
            for p in &app.partitions {
                if let Some(primary) = &p.primary {
                    counts.entry(primary).or_default().0 += 1;
                }
                for s in &p.secondaries {
                    counts.entry(s).or_default().1 += 1;
                }
            }
        }
        self.nodes
            .iter()
            .map(|(addr, n)| {
                let (primary_count, secondary_count) =
                    counts.get(addr.as_str()).copied().unwrap_or_default();
                NodeSummary {
                    address: addr.clone(),
                    alive: n.alive,
                    primary_count,
                    secondary_count,
                    last_beacon_ago: now.saturating_duration_since(n.last_beacon),
                    reported: n.reported,
                    // Reported numbers are untrusted: saturate rather than overflow.
                    disk_bytes: n
                        .replicas
                        .values()
                        .map(|r| r.disk_bytes)
                        .fold(0, u64::saturating_add),
                    serving: self.is_serving(addr, now),
                    state: self.life(addr),
                    disk_free: n.disk_free,
                }
            })
            .collect()
    }

    /// The disk used by each reported replica of table `app_id`: (pidx, node, bytes).
    pub fn replica_disks(&self, app_id: u32) -> Vec<(u32, String, u64)> {
        let mut out = Vec::new();
        for (addr, n) in &self.nodes {
            let range = Gpid::new(app_id, 0)..=Gpid::new(app_id, u32::MAX);
            for (gpid, r) in n.replicas.range(range) {
                out.push((gpid.pidx, addr.clone(), r.disk_bytes));
            }
        }
        out.sort();
        out
    }

    /// Durable tables, optionally of one status, by id.
    pub fn list_apps(&self, status: Option<AppStatus>) -> Vec<&App> {
        self.durable
            .apps
            .values()
            .filter(|a| status.is_none_or(|s| a.record.status == s))
            .collect()
    }

    /// The configuration of partition `gpid` of an AVAILABLE table.
    pub fn partition(&self, gpid: Gpid) -> Result<&PartitionConfig> {
        self.apps
            .get(&gpid.app_id)
            .filter(|a| a.record.status == AppStatus::Available)
            .and_then(|a| a.partitions.get(gpid.pidx as usize))
            .ok_or_else(|| Error::NotFound(format!("partition {gpid} does not exist")))
    }

    /// The durable table called `name` that is not dropped.
    pub fn app_by_name(&self, name: &str) -> Result<&App> {
        find_by_name(&self.durable.apps, name)
    }

    /// The table called `name` that is not dropped, in the working copy.
    pub(super) fn planned_app_by_name(&self, name: &str) -> Result<&App> {
        find_by_name(&self.apps, name)
    }
}

fn find_by_name<'a>(apps: &'a BTreeMap<u32, App>, name: &str) -> Result<&'a App> {
    apps.values()
        .find(|a| a.record.app_name == name && a.record.status != AppStatus::Dropped)
        .ok_or_else(|| Error::NotFound(format!("table '{name}' does not exist")))
}
