//! The meta server's one owner of state: nodes and their liveness, tables and partition
//! configurations, the stored meta level, the runtime settings, and the configuration
//! changes in flight. Changes are planned on a working copy and made durable through
//! the [`MetaStore`] (at once, or queued for a writer thread); what is assigned to
//! replica servers and shown to operators is read from the image of what is durable.
//! Every configuration change is a compare-and-set on the partition's ballot. The gRPC
//! service and the remote commands are thin adapters over these methods; `ddl`,
//! `change`, `query`, `schedule`, `ddd` and `persist` hold the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::meta::app::App;
use crate::meta::balancer::OperationCount;
use crate::meta::config::MetaConfig;
use crate::meta::levels::{FreezeThresholds, effective_level};
use crate::meta::lifecycle::{NodeLife, NodeLifecycle};
use crate::meta::snapshot::Action;
use crate::meta::store::{MetaStore, StoredState};
use crate::model::{AppStatus, Gpid, MetaLevel, ReplicaReport, ReplicaRole};
use crate::timeutil::now_ms;

/// What the meta server knows of one replica server.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// ALIVE (beaconing within the grace period) or not.
    pub alive: bool,
    /// When the last beacon arrived (or, for a node known from the store, when this meta
    /// server started: a fresh grace period).
    pub last_beacon: Instant,
    /// Whether the node has beaconed (and so reported its replicas) since this start.
    pub reported: bool,
    /// The identity of the node's data directory (empty until it beacons, for a node
    /// stored before incarnations were).
    pub incarnation: String,
    /// The replicas the node last reported.
    pub replicas: BTreeMap<Gpid, ReplicaReport>,
    /// Free space on its data directory's disk, as last reported.
    pub disk_free: u64,
}

/// Settings operators change at runtime through remote commands; not persisted.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `meta.live_percentage`: the auto-freeze percentage threshold.
    pub live_percentage: u32,
    /// `meta.lb.assign_delay_ms`: how long to wait for a dropped secondary.
    pub assign_delay_ms: u64,
    /// `meta.lb.assign_secondary_black_list`: nodes that never receive new replicas.
    pub black_list: BTreeSet<String>,
    /// `meta.lb.add_secondary_max_count_for_one_node` (`None`: no limit).
    pub add_secondary_max_count_for_one_node: Option<u32>,
    /// `meta.lb.only_move_primary`.
    pub only_move_primary: bool,
    /// `meta.lb.only_primary_balancer`.
    pub only_primary_balancer: bool,
    /// `meta.lb.balancer_in_turn`.
    pub balancer_in_turn: bool,
    /// `meta.lb.ignored_app_list`.
    pub ignored_apps: BTreeSet<u32>,
}

/// A replica the meta server wants on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAssignment {
    /// The partition.
    pub gpid: Gpid,
    /// The configuration's ballot.
    pub ballot: i64,
    /// Primary, secondary or learner.
    pub role: ReplicaRole,
    /// The table's status (a dropped table's replicas are kept until it expires).
    pub app_status: AppStatus,
    /// The configuration's primary, if any.
    pub primary: Option<String>,
    /// The configuration's secondaries.
    pub secondaries: Vec<String>,
    /// The table's replica count.
    pub max_replica_count: u32,
    /// The replica may start empty (a brand-new partition).
    pub create_empty: bool,
    /// A change the primary is asked to carry out itself.
    pub proposal: Option<Action>,
}

/// What a beacon reply carries back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeaconOutcome {
    /// Every replica the node should hold.
    pub assignments: Vec<NodeAssignment>,
    /// Inactive replicas the node may delete.
    pub garbage: Vec<Gpid>,
}

/// One row of `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    /// host:port.
    pub address: String,
    /// ALIVE or not.
    pub alive: bool,
    /// Primaries of AVAILABLE tables on the node.
    pub primary_count: u32,
    /// Secondaries of AVAILABLE tables on the node.
    pub secondary_count: u32,
    /// Time since the last beacon.
    pub last_beacon_ago: Duration,
    /// Whether it has reported since this meta server started.
    pub reported: bool,
    /// Disk used by its replicas as last reported, in bytes.
    pub disk_bytes: u64,
    /// Whether its replicas count as serving now.
    pub serving: bool,
    /// Its lifecycle.
    pub state: NodeLifecycle,
    /// Free space on its data directory's disk, as last reported.
    pub disk_free: u64,
}

/// The meta level before and after a control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelView {
    /// The stored level before the request.
    pub old: MetaLevel,
    /// The stored level now.
    pub stored: MetaLevel,
    /// The level in force now.
    pub effective: MetaLevel,
    /// Why the effective level is lower, if it is.
    pub freeze_reason: Option<String>,
}

/// A configuration change waiting for its learner to catch up, or for the primary to
/// carry it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The action (AddSecondary, CopySecondary or CopyPrimary with a learner;
    /// MovePrimary or DowngradeToSecondary by the primary).
    pub action: Action,
    /// The partition's ballot when it started.
    pub ballot: i64,
    /// When it is given up and re-planned.
    pub deadline: Instant,
}

/// The meta server's state.
pub struct MetaState {
    config: MetaConfig,
    sink: Sink,
    /// What the store holds: the tables, partitions and nodes shown outside.
    durable: StoredState,
    /// Per node, the partitions `durable` makes it a member of.
    members: index::MemberIndex,
    nodes: BTreeMap<String, NodeState>,
    apps: BTreeMap<u32, App>,
    next_app_id: u32,
    level: MetaLevel,
    settings: Settings,
    /// Learner-based actions in flight, at most one per partition.
    inflight: BTreeMap<Gpid, InFlight>,
    /// Manual proposals (`balance`, `propose`) for the next round.
    proposals: BTreeMap<Gpid, Action>,
    /// When each partition last lost a member (Unix ms); after a restart, the start.
    last_drop_ms: BTreeMap<Gpid, u64>,
    /// Nodes declared dead, or replaced by a new data directory, while the level
    /// deferred configuration changes.
    pending_dead: BTreeSet<String>,
    pending_replaced: BTreeSet<String>,
    /// The balancer's last count; `None` while replica reports are being collected.
    lb_counts: Option<OperationCount>,
    /// When this meta server started (Unix ms), and the same moment on the monotonic
    /// clock: Unix times are derived from the `now` each call is given.
    started_ms: u64,
    started: Instant,
    /// Each node's presence stream, by address.
    presence: BTreeMap<String, presence::Presence>,
    /// Presence streams opened since start (numbers each opening).
    presence_sessions: u64,
    /// Lifecycle records of nodes that are not NORMAL (working copy).
    lives: BTreeMap<String, NodeLife>,
    /// Nodes stopping on purpose, whose primaries move away.
    leaving: BTreeSet<String>,
    /// Per DECOMMISSIONING node: (fewest replicas seen, when, Unix ms) for stall reports.
    drain_marks: BTreeMap<String, (u32, u64)>,
    /// Woken when a round should not wait for the next interval: an action finished, the
    /// level changed, a proposal arrived.
    round_wanted: std::sync::Arc<tokio::sync::Notify>,
}

impl MetaState {
    /// Loads durable state. Every known node starts ALIVE with a fresh grace period, so
    /// that a meta server restart does not declare the whole cluster dead at once.
    pub fn open(config: MetaConfig, store: Box<dyn MetaStore>, now: Instant) -> Result<MetaState> {
        config.validate()?;
        let mut stored = store.load()?;
        stored.next_app_id = stored.next_app_id.max(1);
        let mut known = stored.nodes.clone();
        for app in stored.apps.values() {
            for p in &app.partitions {
                for m in p.members() {
                    known.entry(m.to_string()).or_default();
                }
            }
        }
        let nodes = known
            .into_iter()
            .filter(|(addr, _)| {
                stored
                    .lives
                    .get(addr)
                    .is_none_or(|l| l.state != NodeLifecycle::Dropped)
            })
            .map(|(addr, incarnation)| {
                let node = NodeState {
                    alive: true,
                    last_beacon: now,
                    reported: false,
                    incarnation,
                    replicas: BTreeMap::new(),
                    disk_free: 0,
                };
                (addr, node)
            })
            .collect();
        let settings = Settings {
            live_percentage: config.node_live_percentage_threshold_for_update,
            assign_delay_ms: config.assign_delay.as_millis() as u64,
            black_list: BTreeSet::new(),
            add_secondary_max_count_for_one_node: None,
            only_move_primary: false,
            only_primary_balancer: false,
            balancer_in_turn: false,
            ignored_apps: BTreeSet::new(),
        };
        let started_ms = now_ms();
        let lives = stored.lives.clone();
        Ok(MetaState {
            level: config.level_on_start,
            config,
            sink: Sink::Direct(store),
            nodes,
            apps: stored.apps.clone(),
            next_app_id: stored.next_app_id,
            members: index::MemberIndex::build(&stored),
            durable: stored,
            settings,
            inflight: BTreeMap::new(),
            proposals: BTreeMap::new(),
            last_drop_ms: BTreeMap::new(),
            pending_dead: BTreeSet::new(),
            pending_replaced: BTreeSet::new(),
            lb_counts: None,
            started_ms,
            started: now,
            presence: BTreeMap::new(),
            presence_sessions: 0,
            lives,
            leaving: BTreeSet::new(),
            drain_marks: BTreeMap::new(),
            round_wanted: std::sync::Arc::default(),
        })
    }

    /// Asks for a round soon, not at the next interval.
    pub fn want_round(&self) {
        self.round_wanted.notify_one();
    }

    /// What [`MetaState::want_round`] wakes (the scheduler's ticker waits on it).
    pub fn round_wanted(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.round_wanted.clone()
    }

    /// Unix milliseconds at the monotonic instant `now`.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.started).as_millis() as u64;
        self.started_ms + since
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }

    /// The level in force and why it is lower than the stored one, if it is.
    pub fn level(&self) -> LevelView {
        let (alive, dead) = self.node_counts();
        let thresholds = FreezeThresholds {
            min_live_node_count: self.config.min_live_node_count_for_unfreeze,
            live_percentage: self.settings.live_percentage,
        };
        let (effective, freeze_reason) = effective_level(self.level, alive, dead, thresholds);
        LevelView {
            old: self.level,
            stored: self.level,
            effective,
            freeze_reason,
        }
    }

    /// Sets the stored level (not persisted: a restart returns to the start level).
    pub fn set_level(&mut self, level: MetaLevel) -> LevelView {
        let old = self.level;
        if old != level {
            tracing::info!(old = old.name(), new = level.name(), "meta level changed");
        }
        self.level = level;
        // What the balancer would do depends on the level; recount in the next round.
        self.lb_counts = None;
        if old != level {
            self.want_round();
        }
        LevelView {
            old,
            ..self.level()
        }
    }

    /// The runtime settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The runtime settings, for the remote commands that change them.
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }
}

mod change;
mod ddl;
mod departure;
mod envs;
mod index;
pub use envs::EnvChange;
mod nodes;
mod persist;
mod presence;
pub use departure::LeaveStage;
mod lifecycle;
mod preflight;
pub use lifecycle::{DecommissionOutcome, DrainView};
pub use persist::Batch;
use persist::Sink;
pub use preflight::{Check, NodePlan};

pub use change::PrimaryRequest;
mod ddd;
pub use ddd::{DddMember, DddPartition};
mod query;
mod schedule;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
