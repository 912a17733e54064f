//! The cluster's vocabulary, shared by the meta server, replica servers and shell:
//! meta levels, node and table statuses, gpids, partition configurations, and the
//! health rules (Pegasus's) that `ls -d`, `app -d` and the meta server all apply.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pb;

mod report;
pub use report::{ReplicaData, ReplicaReport};

/// The meta function level: what the meta server may change, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MetaLevel {
    /// No configuration change reaches the cluster.
    Stopped,
    /// As stopped; changes are deferred.
    Blind,
    /// No cure, no balancer, no DDL.
    Freezed,
    /// Cure only; the balancer only counts what it would do.
    Steady,
    /// Cure and balancer.
    Lively,
}

impl MetaLevel {
    /// Every level, lowest first (for completion and help).
    pub const ALL: [MetaLevel; 5] = [
        MetaLevel::Stopped,
        MetaLevel::Blind,
        MetaLevel::Freezed,
        MetaLevel::Steady,
        MetaLevel::Lively,
    ];

    /// The bare name operators type: `lively`.
    pub fn name(self) -> &'static str {
        match self {
            MetaLevel::Stopped => "stopped",
            MetaLevel::Blind => "blind",
            MetaLevel::Freezed => "freezed",
            MetaLevel::Steady => "steady",
            MetaLevel::Lively => "lively",
        }
    }

    /// Pegasus's printed form: `fl_lively`.
    pub fn fl_name(self) -> String {
        format!("fl_{}", self.name())
    }

    /// Converts to the wire enum.
    pub fn to_pb(self) -> pb::MetaLevel {
        match self {
            MetaLevel::Stopped => pb::MetaLevel::Stopped,
            MetaLevel::Blind => pb::MetaLevel::Blind,
            MetaLevel::Freezed => pb::MetaLevel::Freezed,
            MetaLevel::Steady => pb::MetaLevel::Steady,
            MetaLevel::Lively => pb::MetaLevel::Lively,
        }
    }

    /// Converts from the wire value; `None` for "unspecified" (query only).
    pub fn from_pb(value: i32) -> Result<Option<MetaLevel>> {
        Ok(match pb::MetaLevel::try_from(value) {
            Ok(pb::MetaLevel::Unspecified) => None,
            Ok(pb::MetaLevel::Stopped) => Some(MetaLevel::Stopped),
            Ok(pb::MetaLevel::Blind) => Some(MetaLevel::Blind),
            Ok(pb::MetaLevel::Freezed) => Some(MetaLevel::Freezed),
            Ok(pb::MetaLevel::Steady) => Some(MetaLevel::Steady),
            Ok(pb::MetaLevel::Lively) => Some(MetaLevel::Lively),
            Err(_) => return Err(Error::InvalidInput(format!("unknown meta level {value}"))),
        })
    }
}

impl fmt::Display for MetaLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MetaLevel {
    type Err = Error;

    /// Accepts `lively`, `fl_lively` and any case.
    fn from_str(s: &str) -> Result<MetaLevel> {
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("fl_").unwrap_or(&lower);
        MetaLevel::ALL
            .into_iter()
            .find(|l| l.name() == bare)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "'{s}' is not a meta level (stopped, blind, freezed, steady, lively)"
                ))
            })
    }
}

/// A table's lifecycle, with Pegasus's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AppStatus {
    /// Serving.
    Available,
    /// Being created.
    Creating,
    /// Being dropped.
    Dropping,
    /// Dropped; recallable until it expires.
    Dropped,
}

impl AppStatus {
    /// Every status, for completion and validation.
    pub const ALL: [AppStatus; 4] = [
        AppStatus::Available,
        AppStatus::Creating,
        AppStatus::Dropping,
        AppStatus::Dropped,
    ];

    /// Pegasus's printed name: `AVAILABLE`.
    pub fn name(self) -> &'static str {
        match self {
            AppStatus::Available => "AVAILABLE",
            AppStatus::Creating => "CREATING",
            AppStatus::Dropping => "DROPPING",
            AppStatus::Dropped => "DROPPED",
        }
    }

    /// Converts to the wire enum.
    pub fn to_pb(self) -> pb::AppStatus {
        match self {
            AppStatus::Available => pb::AppStatus::Available,
            AppStatus::Creating => pb::AppStatus::Creating,
            AppStatus::Dropping => pb::AppStatus::Dropping,
            AppStatus::Dropped => pb::AppStatus::Dropped,
        }
    }

    /// Converts from the wire value; `None` for "unspecified".
    pub fn from_pb(value: i32) -> Option<AppStatus> {
        match pb::AppStatus::try_from(value).ok()? {
            pb::AppStatus::Unspecified => None,
            pb::AppStatus::Available => Some(AppStatus::Available),
            pb::AppStatus::Creating => Some(AppStatus::Creating),
            pb::AppStatus::Dropping => Some(AppStatus::Dropping),
            pb::AppStatus::Dropped => Some(AppStatus::Dropped),
        }
    }
}

impl FromStr for AppStatus {
    type Err = Error;

    /// Accepts `available`, `AVAILABLE`, `as_available` (Pegasus's enum spelling).
    fn from_str(s: &str) -> Result<AppStatus> {
        let upper = s.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("AS_").unwrap_or(&upper);
        AppStatus::ALL
            .into_iter()
            .find(|st| st.name() == bare)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "'{s}' is not a table status (available, creating, dropping, dropped)"
                ))
            })
    }
}

/// A replica's role on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaRole {
    /// Orders and commits the partition's writes.
    Primary,
    /// Follows the primary.
    Secondary,
    /// Being added: copies the primary's data, then becomes a secondary.
    Learner,
    /// No longer assigned; kept until garbage-collected (it may be the last copy).
    Inactive,
}

impl ReplicaRole {
    /// Converts to the wire enum.
    pub fn to_pb(self) -> pb::ReplicaRole {
        match self {
            ReplicaRole::Primary => pb::ReplicaRole::Primary,
            ReplicaRole::Secondary => pb::ReplicaRole::Secondary,
            ReplicaRole::Learner => pb::ReplicaRole::Learner,
            ReplicaRole::Inactive => pb::ReplicaRole::Inactive,
        }
    }

    /// Converts from the wire value (unknown values read as inactive: never serving).
    pub fn from_pb(value: i32) -> ReplicaRole {
        match pb::ReplicaRole::try_from(value) {
            Ok(pb::ReplicaRole::Primary) => ReplicaRole::Primary,
            Ok(pb::ReplicaRole::Secondary) => ReplicaRole::Secondary,
            Ok(pb::ReplicaRole::Learner) => ReplicaRole::Learner,
            _ => ReplicaRole::Inactive,
        }
    }
}

/// A partition's id: table id and partition index, printed `app_id.pidx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gpid {
    /// The table id.
    pub app_id: u32,
    /// The partition index.
    pub pidx: u32,
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_id, self.pidx)
    }
}

impl Gpid {
    /// Partition `pidx` of table `app_id`.
    pub const fn new(app_id: u32, pidx: u32) -> Gpid {
        Gpid { app_id, pidx }
    }

    /// Converts to the wire message.
    pub fn to_pb(self) -> pb::Gpid {
        pb::Gpid {
            app_id: self.app_id,
            pidx: self.pidx,
        }
    }

    /// Converts from the wire message.
    pub fn from_pb(g: &pb::Gpid) -> Gpid {
        Gpid {
            app_id: g.app_id,
            pidx: g.pidx,
        }
    }
}

impl FromStr for Gpid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Gpid> {
        let bad = || Error::InvalidInput(format!("'{s}' is not a gpid (app_id.pidx, e.g. 2.0)"));
        let (app, pidx) = s.split_once('.').ok_or_else(bad)?;
        Ok(Gpid {
            app_id: app.parse().map_err(|_| bad())?,
            pidx: pidx.parse().map_err(|_| bad())?,
        })
    }
}

/// A partition's configuration: who serves it, under which ballot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartitionConfig {
    /// The partition index.
    pub pidx: u32,
    /// Bumped on every configuration change; fences out stale primaries.
    pub ballot: i64,
    /// The primary's address, if the partition has one.
    pub primary: Option<String>,
    /// The secondaries' addresses.
    pub secondaries: Vec<String>,
    /// Nodes most recently dropped from the configuration, oldest first.
    pub last_drops: Vec<String>,
    /// Its members may start empty: it is brand new (or an operator chose an empty
    /// node for it after it lost every replica). Cleared by any other change.
    #[serde(default)]
    pub fresh: bool,
}

impl PartitionConfig {
    /// Every member: the primary (if any) and the secondaries.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.primary
            .as_deref()
            .into_iter()
            .chain(self.secondaries.iter().map(String::as_str))
    }

    /// Converts to the wire message.
    pub fn to_pb(&self) -> pb::PartitionConfig {
        pb::PartitionConfig {
            pidx: self.pidx,
            ballot: self.ballot,
            primary: self.primary.clone().unwrap_or_default(),
            secondaries: self.secondaries.clone(),
            last_drops: self.last_drops.clone(),
        }
    }

    /// Converts from the wire message.
    pub fn from_pb(p: &pb::PartitionConfig) -> PartitionConfig {
        PartitionConfig {
            pidx: p.pidx,
            ballot: p.ballot,
            primary: (!p.primary.is_empty()).then(|| p.primary.clone()),
            secondaries: p.secondaries.clone(),
            last_drops: p.last_drops.clone(),
            fresh: false,
        }
    }
}

/// A partition's health, by Pegasus's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Has a serving primary, at least `max_replica_count` serving replicas, and no
    /// member that is not serving.
    pub fully_healthy: bool,
    /// No serving primary, or fewer than two serving replicas: writes cannot commit
    /// safely.
    pub write_unhealthy: bool,
    /// No serving primary: reads cannot be served.
    pub read_unhealthy: bool,
}

/// Judges one partition: the one rule every health view (`ls -d`, `app -d`,
/// `cluster_info`, `wait healthy`, the balancer's precondition) applies. `serving` says
/// whether a member counts; the meta server decides it (ALIVE, beaconing, and its
/// process connected), so a member on a crashed node stops counting at once.
pub fn partition_health(
    config: &PartitionConfig,
    max_replica_count: u32,
    serving: impl Fn(&str) -> bool,
) -> Health {
    let has_primary = config.primary.as_deref().is_some_and(&serving);
    let members = config.members().count() as u32;
    let replicas = config.members().filter(|m| serving(m)).count() as u32;
    Health {
        fully_healthy: has_primary && replicas >= max_replica_count && replicas == members,
        write_unhealthy: !has_primary || replicas < 2,
        read_unhealthy: !has_primary,
    }
}

/// Health counts over a table's partitions, as `ls -d` and `app -d` print them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthCounts {
    /// Partitions that are fully healthy.
    pub fully_healthy: u32,
    /// Partitions that are not fully healthy.
    pub unhealthy: u32,
    /// Partitions that cannot take writes safely.
    pub write_unhealthy: u32,
    /// Partitions that cannot serve reads.
    pub read_unhealthy: u32,
}

impl HealthCounts {
    /// Counts over every partition of a table.
    pub fn of<'a>(
        partitions: impl IntoIterator<Item = &'a PartitionConfig>,
        max_replica_count: u32,
        serving: impl Fn(&str) -> bool,
    ) -> HealthCounts {
        let mut counts = HealthCounts::default();
        for p in partitions {
            let h = partition_health(p, max_replica_count, &serving);
            counts.fully_healthy += u32::from(h.fully_healthy);
            counts.unhealthy += u32::from(!h.fully_healthy);
            counts.write_unhealthy += u32::from(h.write_unhealthy);
            counts.read_unhealthy += u32::from(h.read_unhealthy);
        }
        counts
    }
}

/// Checks a table name: 1..=128 characters of `[A-Za-z0-9_.:-]`.
pub fn validate_app_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidInput("the table name is empty".into()));
    }
    if name.len() > 128 {
        return Err(Error::InvalidInput(format!(
            "table name '{name}' is longer than 128"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:-".contains(*c)))
    {
        return Err(Error::InvalidInput(format!(
            "table name '{name}' has '{c}'; use letters, digits, '_', '.', ':' and '-'"
        )));
    }
    Ok(())
}

/// Checks a node address: `host:port` with a numeric port.
pub fn validate_address(addr: &str) -> Result<()> {
    let bad = || Error::InvalidInput(format!("'{addr}' is not a node address (host:port)"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(primary: Option<&str>, secondaries: &[&str]) -> PartitionConfig {
        PartitionConfig {
            pidx: 0,
            ballot: 1,
            primary: primary.map(str::to_string),
            secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
            last_drops: vec![],
            fresh: false,
        }
    }

    #[test]
    fn levels_parse_in_every_spelling_and_order_by_power() {
        assert_eq!("lively".parse::<MetaLevel>().unwrap(), MetaLevel::Lively);
        assert_eq!("FL_STEADY".parse::<MetaLevel>().unwrap(), MetaLevel::Steady);
        assert!("fast".parse::<MetaLevel>().is_err());
        assert!(MetaLevel::Freezed < MetaLevel::Steady);
        assert_eq!(MetaLevel::Steady.fl_name(), "fl_steady");
        for level in MetaLevel::ALL {
            assert_eq!(
                MetaLevel::from_pb(level.to_pb() as i32).unwrap(),
                Some(level)
            );
        }
        assert_eq!(MetaLevel::from_pb(0).unwrap(), None);
        assert!(MetaLevel::from_pb(7).is_err());
    }

    #[test]
    fn health_follows_pegasus_rules() {
        let all = |_: &str| true;
        let h = partition_health(&config(Some("a"), &["b", "c"]), 3, all);
        assert!(h.fully_healthy && !h.write_unhealthy && !h.read_unhealthy);
        let h = partition_health(&config(Some("a"), &["b"]), 3, all);
        assert!(!h.fully_healthy && !h.write_unhealthy);
        let h = partition_health(&config(Some("a"), &[]), 3, all);
        assert!(h.write_unhealthy && !h.read_unhealthy);
        let h = partition_health(&config(None, &["b", "c"]), 3, all);
        assert!(h.write_unhealthy && h.read_unhealthy);
        // A member that is not alive does not count.
        let h = partition_health(&config(Some("a"), &["b", "c"]), 3, |m| m != "c");
        assert!(!h.fully_healthy && !h.write_unhealthy);
        let h = partition_health(&config(Some("a"), &["b", "c"]), 3, |m| m != "a");
        assert!(h.read_unhealthy);
    }

    #[test]
    fn health_counts_add_up() {
        let parts = [
            config(Some("a"), &["b", "c"]),
            config(None, &["b"]),
            config(Some("a"), &[]),
        ];
        let c = HealthCounts::of(&parts, 3, |_| true);
        assert_eq!(
            c,
            HealthCounts {
                fully_healthy: 1,
                unhealthy: 2,
                write_unhealthy: 2,
                read_unhealthy: 1
            }
        );
    }

    #[test]
    fn names_and_addresses_are_checked() {
        assert!(validate_app_name("temp_1.v2").is_ok());
        assert!(validate_app_name("").is_err());
        assert!(validate_app_name("a b").is_err());
        assert!(validate_app_name(&"x".repeat(129)).is_err());
        assert!(validate_address("127.0.0.1:34801").is_ok());
        assert!(validate_address("host:34801").is_ok());
        assert!(validate_address("127.0.0.1").is_err());
        assert!(validate_address(":1").is_err());
        assert!(validate_address("h:99999").is_err());
    }

    #[test]
    fn gpid_parses_and_prints() {
        let g: Gpid = "2.7".parse().unwrap();
        assert_eq!(g, Gpid { app_id: 2, pidx: 7 });
        assert_eq!(g.to_string(), "2.7");
        assert!("2".parse::<Gpid>().is_err());
        assert!("a.b".parse::<Gpid>().is_err());
    }

    #[test]
    fn app_status_parses_loosely() {
        assert_eq!("dropped".parse::<AppStatus>().unwrap(), AppStatus::Dropped);
        assert_eq!(
            "AS_AVAILABLE".parse::<AppStatus>().unwrap(),
            AppStatus::Available
        );
        assert!("gone".parse::<AppStatus>().is_err());
    }
}
