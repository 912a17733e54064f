//! The meta server's configuration: timings of the failure detector, the starting meta
//! level, the auto-freeze thresholds and the defaults of the runtime settings. Defaults
//! are Pegasus's; tests use sub-second timings.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::MetaLevel;

/// Everything a meta server is started with.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// How often replica servers beacon (handed to them in beacon replies).
    pub beacon_interval: Duration,
    /// How long an acknowledged beacon keeps a replica server's lease.
    pub lease: Duration,
    /// How long without a beacon before a node is declared UNALIVE; must exceed the lease
    /// so that a cut-off primary has stopped serving before its partitions move.
    pub grace: Duration,
    /// The stored meta level at start (the level is not persisted).
    pub level_on_start: MetaLevel,
    /// Auto-freeze while fewer nodes than this are ALIVE.
    pub min_live_node_count_for_unfreeze: u32,
    /// Auto-freeze while ALIVE·100 < this·(ALIVE+UNALIVE); `meta.live_percentage` overrides it.
    pub node_live_percentage_threshold_for_update: u32,
    /// How long to wait for a dropped secondary before re-replicating elsewhere;
    /// `meta.lb.assign_delay_ms` overrides it.
    pub assign_delay: Duration,
    /// How long a dropped table stays recallable when `drop` gives no `-r`.
    pub hold_dropped_app: Duration,
    /// The addresses of every meta server of the cluster (for `cluster_info`).
    pub meta_servers: Vec<String>,
    /// How often cure and the balancer run (Pegasus's `lb_interval_ms`).
    pub lb_interval: Duration,
    /// How long a learner-based action may take before it is given up and re-planned.
    pub action_timeout: Duration,
}

impl Default for MetaConfig {
    fn default() -> MetaConfig {
        MetaConfig {
            beacon_interval: Duration::from_secs(3),
            lease: Duration::from_secs(20),
            grace: Duration::from_secs(22),
            level_on_start: MetaLevel::Steady,
            min_live_node_count_for_unfreeze: 3,
            node_live_percentage_threshold_for_update: 65,
            assign_delay: Duration::from_millis(600_000),
            hold_dropped_app: Duration::from_secs(7 * 24 * 3600),
            meta_servers: Vec::new(),
            lb_interval: Duration::from_secs(10),
            action_timeout: Duration::from_secs(600),
        }
    }
}

impl MetaConfig {
    /// Sub-second timings for tests and the embedded cluster.
    pub fn fast() -> MetaConfig {
        MetaConfig {
            beacon_interval: Duration::from_millis(100),
            lease: Duration::from_millis(800),
            grace: Duration::from_millis(1000),
            lb_interval: Duration::from_millis(100),
            action_timeout: Duration::from_secs(5),
            ..MetaConfig::default()
        }
    }

    /// Refuses configurations under which the failure detector would be unsafe.
    pub fn validate(&self) -> Result<()> {
        if self.beacon_interval.is_zero() {
            return Err(Error::InvalidInput(
                "the beacon interval must be positive".into(),
            ));
        }
        if self.lease <= self.beacon_interval {
            return Err(Error::InvalidInput(format!(
                "the lease ({} ms) must exceed the beacon interval ({} ms)",
                self.lease.as_millis(),
                self.beacon_interval.as_millis()
            )));
        }
        if self.grace <= self.lease {
            return Err(Error::InvalidInput(format!(
                "the grace period ({} ms) must exceed the lease ({} ms), or a partition \
                 could have two primaries serving at once",
                self.grace.as_millis(),
                self.lease.as_millis()
            )));
        }
        if self.node_live_percentage_threshold_for_update > 100 {
            return Err(Error::InvalidInput(
                "node_live_percentage_threshold_for_update must be within [0, 100]".into(),
            ));
        }
        Ok(())
    }

    /// How often the failure detector looks for silent nodes.
    pub fn check_interval(&self) -> Duration {
        (self.beacon_interval / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pegasus_and_valid() {
        let c = MetaConfig::default();
        assert_eq!(c.beacon_interval, Duration::from_secs(3));
        assert_eq!(c.lease, Duration::from_secs(20));
        assert_eq!(c.grace, Duration::from_secs(22));
        c.validate().unwrap();
        MetaConfig::fast().validate().unwrap();
    }

    #[test]
    fn grace_must_exceed_lease() {
        let c = MetaConfig {
            grace: Duration::from_secs(20),
            ..MetaConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("must exceed the lease"), "{err}");
        let c = MetaConfig {
            lease: Duration::from_secs(1),
            ..MetaConfig::default()
        };
        assert!(c.validate().is_err(), "lease not above the beacon interval");
    }
}
