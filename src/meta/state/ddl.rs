//! DDL on the meta state: create (with placement), drop, recall, and the purge of
//! dropped tables whose reserve period ended. All refused at freezed and below.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::MetaState;
use crate::error::{Error, Result};
use crate::meta::app::{App, AppRecord};
use crate::meta::lifecycle::NodeLifecycle;
use crate::meta::placement::{NodeLoad, place};
use crate::meta::store::StoreOp;
use crate::model::{AppStatus, MetaLevel, PartitionConfig, validate_app_name};
use crate::timeutil::now_ms;

/// The most partitions a table may have (the shell's `create -p` limit too).
pub const MAX_PARTITION_COUNT: u32 = 4096;
/// The most replicas a partition may have.
pub const MAX_REPLICA_COUNT: u32 = 9;

impl MetaState {
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
            self.persist(ops)?;
            for id in &expired {
                self.apps.remove(id);
                tracing::info!(app_id = id, "dropped table expired and is gone");
            }
        }
        Ok(expired)
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
        if let Ok(app) = self.planned_app_by_name(name) {
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
        if partition_count > MAX_PARTITION_COUNT || replica_count > MAX_REPLICA_COUNT {
            return Err(Error::InvalidInput(format!(
                "partition_count is at most {MAX_PARTITION_COUNT} and replica_count at most \
                 {MAX_REPLICA_COUNT} (asked {partition_count} and {replica_count})"
            )));
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
                fresh: true,
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
        self.persist(ops)?;
        self.next_app_id = app_id + 1;
        self.lb_counts = None;
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

    /// The ALIVE nodes that may take new replicas (not black-listed, not leaving), with
    /// what they hold.
    fn candidate_loads(&self) -> Vec<NodeLoad> {
        let now = Instant::now();
        self.node_summaries(&self.apps, now)
            .into_iter()
            .filter(|n| {
                n.alive
                    && n.state == NodeLifecycle::Normal
                    && !self.leaving.contains(&n.address)
                    && !self.settings.black_list.contains(&n.address)
            })
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
        let app_id = self.planned_app_by_name(name)?.record.app_id;
        self.require_ddl("drop")?;
        let now = now_ms();
        let reserve = reserve.unwrap_or(self.config.hold_dropped_app);
        let mut record = self.apps[&app_id].record.clone();
        record.status = AppStatus::Dropped;
        record.drop_time_ms = now;
        record.drop_expire_ms = now.saturating_add(reserve.as_millis() as u64);
        self.persist(vec![StoreOp::PutApp(record.clone())])?;
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
        if self.planned_app_by_name(&name).is_ok() {
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
        self.persist(vec![StoreOp::PutApp(record.clone())])?;
        self.apps.get_mut(&app_id).expect("app exists").record = record.clone();
        self.lb_counts = None;
        tracing::info!(app = record.app_name.as_str(), app_id, "table recalled");
        Ok(record)
    }
}
