//! The meta server's one owner of state: nodes and their liveness, tables and partition
//! configurations, the stored meta level and the runtime settings. Every durable change
//! goes through the [`MetaStore`] before it is applied in memory and acknowledged. The
//! gRPC service and the remote commands are thin adapters over these methods.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::meta::app::{App, AppRecord};
use crate::meta::config::MetaConfig;
use crate::meta::levels::{FreezeThresholds, effective_level};
use crate::meta::placement::{NodeLoad, place};
use crate::meta::store::{MetaStore, StoreOp};
use crate::model::{AppStatus, MetaLevel, PartitionConfig, validate_address, validate_app_name};
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
    /// The replicas the node last reported: (app_id, pidx, ballot).
    pub replicas: Vec<(u32, u32, i64)>,
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
}

/// A replica the partition configurations place on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAssignment {
    /// The table id.
    pub app_id: u32,
    /// The partition index.
    pub pidx: u32,
    /// The configuration's ballot.
    pub ballot: i64,
    /// Whether the node is the primary.
    pub primary: bool,
    /// The table's status (a dropped table's replicas are kept until it expires).
    pub app_status: AppStatus,
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

/// The meta server's state.
pub struct MetaState {
    config: MetaConfig,
    store: Box<dyn MetaStore>,
    nodes: BTreeMap<String, NodeState>,
    apps: BTreeMap<u32, App>,
    next_app_id: u32,
    level: MetaLevel,
    settings: Settings,
}

impl MetaState {
    /// Loads durable state. Every known node starts ALIVE with a fresh grace period, so
    /// that a meta server restart does not declare the whole cluster dead at once.
    pub fn open(config: MetaConfig, store: Box<dyn MetaStore>, now: Instant) -> Result<MetaState> {
        config.validate()?;
        let stored = store.load()?;
        let mut known = stored.nodes.clone();
        for app in stored.apps.values() {
            for p in &app.partitions {
                known.extend(p.members().map(str::to_string));
            }
        }
        let nodes = known
            .into_iter()
            .map(|addr| {
                let node = NodeState {
                    alive: true,
                    last_beacon: now,
                    reported: false,
                    replicas: vec![],
                };
                (addr, node)
            })
            .collect();
        let settings = Settings {
            live_percentage: config.node_live_percentage_threshold_for_update,
            assign_delay_ms: config.assign_delay.as_millis() as u64,
            black_list: BTreeSet::new(),
        };
        Ok(MetaState {
            level: config.level_on_start,
            config,
            store,
            nodes,
            apps: stored.apps,
            next_app_id: stored.next_app_id.max(1),
            settings,
        })
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }

    /// Records a beacon: registers a new node (durably), marks it ALIVE, stores its
    /// replica report, and returns what the configurations place on it.
    pub fn beacon(
        &mut self,
        address: &str,
        replicas: Vec<(u32, u32, i64)>,
        now: Instant,
    ) -> Result<Vec<NodeAssignment>> {
        validate_address(address)?;
        if !self.nodes.contains_key(address) {
            self.store.apply(&[StoreOp::PutNode(address.to_string())])?;
            tracing::info!(node = address, "node joined");
        } else if !self.nodes[address].alive {
            tracing::info!(node = address, "node is ALIVE again");
        }
        let node = NodeState {
            alive: true,
            last_beacon: now,
            reported: true,
            replicas,
        };
        self.nodes.insert(address.to_string(), node);
        Ok(self.assignments(address))
    }

    /// Every replica the partition configurations place on `address`.
    pub fn assignments(&self, address: &str) -> Vec<NodeAssignment> {
        let mut out = Vec::new();
        for app in self.apps.values() {
            for p in &app.partitions {
                let primary = p.primary.as_deref() == Some(address);
                if primary || p.secondaries.iter().any(|s| s == address) {
                    out.push(NodeAssignment {
                        app_id: app.record.app_id,
                        pidx: p.pidx,
                        ballot: p.ballot,
                        primary,
                        app_status: app.record.status,
                    });
                }
            }
        }
        out
    }

    /// The failure detector's check: nodes silent for longer than the grace period become
    /// UNALIVE. Returns the nodes that just did.
    pub fn check_nodes(&mut self, now: Instant) -> Vec<String> {
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
        dead
    }

    /// Removes dropped tables whose reserve period has ended. Returns their ids.
    pub fn purge_expired(&mut self, now_ms: u64) -> Result<Vec<u32>> {
        let expired: Vec<u32> = self
            .apps
            .values()
            .filter(|a| a.record.status == AppStatus::Dropped && a.record.drop_expire_ms <= now_ms)
            .map(|a| a.record.app_id)
            .collect();
        if !expired.is_empty() {
            let ops: Vec<StoreOp> = expired.iter().map(|id| StoreOp::DeleteApp(*id)).collect();
            self.store.apply(&ops)?;
            for id in &expired {
                self.apps.remove(id);
                tracing::info!(app_id = id, "dropped table expired and is gone");
            }
        }
        Ok(expired)
    }

    /// Whether `address` is ALIVE now.
    pub fn is_alive(&self, address: &str) -> bool {
        self.nodes.get(address).is_some_and(|n| n.alive)
    }

    /// (ALIVE, UNALIVE) node counts.
    pub fn node_counts(&self) -> (u32, u32) {
        let alive = self.nodes.values().filter(|n| n.alive).count() as u32;
        (alive, self.nodes.len() as u32 - alive)
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

    /// Every node with its replica counts over AVAILABLE tables, by address.
    pub fn list_nodes(&self, now: Instant) -> Vec<NodeSummary> {
        let mut counts: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
        for app in self
            .apps
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
                }
            })
            .collect()
    }

    /// Tables, optionally of one status, by id.
    pub fn list_apps(&self, status: Option<AppStatus>) -> Vec<&App> {
        self.apps
            .values()
            .filter(|a| status.is_none_or(|s| a.record.status == s))
            .collect()
    }

    /// The table called `name` that is not dropped.
    pub fn app_by_name(&self, name: &str) -> Result<&App> {
        self.apps
            .values()
            .find(|a| a.record.app_name == name && a.record.status != AppStatus::Dropped)
            .ok_or_else(|| Error::NotFound(format!("table '{name}' does not exist")))
    }

    fn require_ddl(&self, what: &str) -> Result<()> {
        let view = self.level();
        if view.effective <= MetaLevel::Freezed {
            let why = view
                .freeze_reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "{what} refused: current meta level is {}{why}",
                view.effective.fl_name()
            )));
        }
        Ok(())
    }

    /// Creates a table and places its replicas on the ALIVE, non-black-listed nodes.
    /// Returns its id and whether it already existed (then nothing is created).
    pub fn create_app(
        &mut self,
        name: &str,
        partition_count: u32,
        replica_count: u32,
        fail_if_exist: bool,
        envs: BTreeMap<String, String>,
    ) -> Result<(u32, bool)> {
        validate_app_name(name)?;
        if let Ok(app) = self.app_by_name(name) {
            if fail_if_exist {
                return Err(Error::AlreadyExists(format!(
                    "table '{name}' already exists"
                )));
            }
            return Ok((app.record.app_id, true));
        }
        self.require_ddl("create")?;
        if partition_count == 0 || replica_count == 0 {
            return Err(Error::InvalidInput(
                "partition_count and replica_count must be at least 1".into(),
            ));
        }
        let loads = self.candidate_loads();
        let placements = place(&loads, partition_count, replica_count)?;
        let app_id = self.next_app_id;
        let record = AppRecord {
            app_id,
            app_name: name.to_string(),
            status: AppStatus::Available,
            partition_count,
            max_replica_count: replica_count,
            create_time_ms: now_ms(),
            drop_time_ms: 0,
            drop_expire_ms: 0,
            envs,
        };
        let partitions: Vec<PartitionConfig> = placements
            .into_iter()
            .enumerate()
            .map(|(pidx, pl)| PartitionConfig {
                pidx: pidx as u32,
                ballot: 1,
                primary: Some(pl.primary),
                secondaries: pl.secondaries,
                last_drops: Vec::new(),
            })
            .collect();
        let mut ops = vec![
            StoreOp::PutNextAppId(app_id + 1),
            StoreOp::PutApp(record.clone()),
        ];
        ops.extend(
            partitions
                .iter()
                .map(|p| StoreOp::PutPartition(app_id, p.clone())),
        );
        self.store.apply(&ops)?;
        self.next_app_id = app_id + 1;
        self.apps.insert(app_id, App { record, partitions });
        tracing::info!(
            app = name,
            app_id,
            partition_count,
            replica_count,
            "table created"
        );
        Ok((app_id, false))
    }

    /// The ALIVE nodes that may take new replicas, with what they hold.
    fn candidate_loads(&self) -> Vec<NodeLoad> {
        let now = Instant::now();
        self.list_nodes(now)
            .into_iter()
            .filter(|n| n.alive && !self.settings.black_list.contains(&n.address))
            .map(|n| NodeLoad {
                replicas: n.primary_count + n.secondary_count,
                primaries: n.primary_count,
                address: n.address,
            })
            .collect()
    }

    /// Drops a table: it stays recallable for `reserve` (or the configured default).
    /// Returns its id and when it expires (Unix ms).
    pub fn drop_app(&mut self, name: &str, reserve: Option<Duration>) -> Result<(u32, u64)> {
        let app_id = self.app_by_name(name)?.record.app_id;
        self.require_ddl("drop")?;
        let now = now_ms();
        let reserve = reserve.unwrap_or(self.config.hold_dropped_app);
        let mut record = self.apps[&app_id].record.clone();
        record.status = AppStatus::Dropped;
        record.drop_time_ms = now;
        record.drop_expire_ms = now.saturating_add(reserve.as_millis() as u64);
        self.store.apply(&[StoreOp::PutApp(record.clone())])?;
        let expire = record.drop_expire_ms;
        self.apps.get_mut(&app_id).expect("app exists").record = record;
        tracing::info!(app = name, app_id, "table dropped");
        Ok((app_id, expire))
    }

    /// Brings a dropped table back, under `new_name` if given.
    pub fn recall_app(&mut self, app_id: u32, new_name: Option<&str>) -> Result<AppRecord> {
        let app = self
            .apps
            .get(&app_id)
            .ok_or_else(|| Error::NotFound(format!("table {app_id} does not exist or is gone")))?;
        if app.record.status == AppStatus::Dropped && app.record.drop_expire_ms <= now_ms() {
            return Err(Error::NotFound(format!(
                "table {app_id} does not exist or is gone"
            )));
        }
        if app.record.status != AppStatus::Dropped {
            return Err(Error::Refused(format!(
                "table {app_id} ('{}') is {}, not DROPPED",
                app.record.app_name,
                app.record.status.name()
            )));
        }
        let name = new_name.unwrap_or(&app.record.app_name).to_string();
        validate_app_name(&name)?;
        if self.app_by_name(&name).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "table '{name}' exists; recall {app_id} under another name"
            )));
        }
        self.require_ddl("recall")?;
        let mut record = self.apps[&app_id].record.clone();
        record.status = AppStatus::Available;
        record.app_name = name;
        record.drop_time_ms = 0;
        record.drop_expire_ms = 0;
        self.store.apply(&[StoreOp::PutApp(record.clone())])?;
        self.apps.get_mut(&app_id).expect("app exists").record = record.clone();
        tracing::info!(app = record.app_name.as_str(), app_id, "table recalled");
        Ok(record)
    }
}

#[cfg(test)]
mod tests;
