//! Whether a node's replicas count as serving now — the one answer every health view
//! (`nodes`, `ls -d`, `app -d`, `cluster_info`, `wait healthy`) uses. A node serves while
//! it is ALIVE, beacons on time, and its process's presence stream is open: the meta
//! server sees that stream end the moment the process dies, long before the grace period
//! lets it declare the node dead (which leases require). A node that never opened the
//! stream since this meta server started (an older replica server, the simulation) is
//! judged by its beacons alone. The same stream carries the meta server's one message: a
//! nudge to beacon now, sent when the node's configuration changed, so a new primary
//! learns its role at once instead of at its next beacon.

use std::time::Instant;

use tokio::sync::mpsc;

use super::MetaState;
use crate::model::{AppStatus, Health, HealthCounts, PartitionConfig, partition_health};

/// One node's presence stream as the meta server last saw it.
#[derive(Debug, Clone)]
pub(super) struct Presence {
    /// Which opening of the stream this is (a late end of an older one is ignored).
    pub session: u64,
    /// Whether that stream is open.
    pub open: bool,
    /// Asks the node to beacon now (its configuration changed); one pending ask is
    /// enough, so a full channel drops the next.
    pub nudge: Option<mpsc::Sender<()>>,
}

impl MetaState {
    /// A node opened its presence stream, on which `nudge` asks it to beacon now;
    /// returns the session its end must name.
    pub fn presence_opened(&mut self, address: &str, nudge: mpsc::Sender<()>) -> u64 {
        self.presence_sessions += 1;
        let session = self.presence_sessions;
        let was_lost = self.presence.get(address).is_some_and(|p| !p.open);
        let presence = Presence {
            session,
            open: true,
            nudge: Some(nudge),
        };
        self.presence.insert(address.to_string(), presence);
        if was_lost {
            tracing::info!(node = address, "node CONNECTED again");
        }
        session
    }

    /// A node's presence stream ended: unless it has opened a newer one, the node is
    /// LOST — its replicas count as not serving — until it opens one again.
    pub fn presence_closed(&mut self, address: &str, session: u64) {
        if let Some(p) = self.presence.get_mut(address)
            && p.session == session
            && p.open
        {
            p.open = false;
            p.nudge = None;
            self.lb_counts = None;
            tracing::warn!(
                node = address,
                "node LOST: its process's connection ended; its replicas count as not serving"
            );
        }
    }

    /// Asks `address` to beacon now, if its presence stream is open.
    pub(super) fn nudge(&self, address: &str) {
        if let Some(tx) = self.presence.get(address).and_then(|p| p.nudge.as_ref()) {
            let _ = tx.try_send(());
        }
    }

    /// Whether `address`'s replicas count as serving at `now`.
    pub fn is_serving(&self, address: &str, now: Instant) -> bool {
        let Some(node) = self.nodes.get(address) else {
            return false;
        };
        let on_time = now.saturating_duration_since(node.last_beacon)
            <= self.config.beacon_interval * 2 + self.config.check_interval();
        node.alive && on_time && self.presence.get(address).is_none_or(|p| p.open)
    }

    /// One partition's health, counted against the serving nodes.
    pub fn partition_health(&self, p: &PartitionConfig, max: u32, now: Instant) -> Health {
        partition_health(p, max, |m| self.is_serving(m, now))
    }

    /// Health counts over `partitions`, counted against the serving nodes.
    pub fn health_counts<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a PartitionConfig>,
        max: u32,
        now: Instant,
    ) -> HealthCounts {
        HealthCounts::of(partitions, max, |m| self.is_serving(m, now))
    }

    /// Nodes whose replicas count as serving at `now`.
    pub fn serving_count(&self, now: Instant) -> u32 {
        self.nodes
            .keys()
            .filter(|n| self.is_serving(n, now))
            .count() as u32
    }

    /// Partitions of AVAILABLE tables (durable configurations) that are not fully
    /// healthy at `now`.
    pub fn unhealthy_count(&self, now: Instant) -> u32 {
        self.durable
            .apps
            .values()
            .filter(|a| a.record.status == AppStatus::Available)
            .map(|a| {
                self.health_counts(&a.partitions, a.record.max_replica_count, now)
                    .unhealthy
            })
            .sum()
    }
}
