//! A table as the meta server keeps it: its record (name, status, sizes, times) and its
//! partitions' configurations, with conversions to the wire messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{AppStatus, PartitionConfig};
use crate::pb;

/// A table's description, persisted as one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Never reused.
    pub app_id: u32,
    /// Unique among tables that are not dropped.
    pub app_name: String,
    /// AVAILABLE or DROPPED (CREATING and DROPPING are not held: both are one step here).
    pub status: AppStatus,
    /// Number of partitions.
    pub partition_count: u32,
    /// Maximum replicas per partition.
    pub max_replica_count: u32,
    /// Unix milliseconds.
    pub create_time_ms: u64,
    /// Unix milliseconds; 0 if not dropped.
    pub drop_time_ms: u64,
    /// When a dropped table is removed for good, Unix milliseconds; 0 if not dropped.
    pub drop_expire_ms: u64,
    /// Table environment variables.
    pub envs: BTreeMap<String, String>,
}

impl AppRecord {
    /// Converts to the wire message.
    pub fn to_pb(&self) -> pb::AppInfo {
        pb::AppInfo {
            app_id: self.app_id,
            app_name: self.app_name.clone(),
            status: self.status.to_pb() as i32,
            app_type: "pegasus".to_string(),
            partition_count: self.partition_count,
            max_replica_count: self.max_replica_count,
            create_time_ms: self.create_time_ms,
            drop_time_ms: self.drop_time_ms,
            drop_expire_ms: self.drop_expire_ms,
            envs: self.envs.clone().into_iter().collect(),
        }
    }
}

/// A table and its partitions, the unit the meta server holds in memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// The table's record.
    pub record: AppRecord,
    /// Its partitions, indexed by pidx.
    pub partitions: Vec<PartitionConfig>,
}

impl App {
    /// Converts to the wire message.
    pub fn to_pb(&self) -> pb::AppDetail {
        pb::AppDetail {
            info: Some(self.record.to_pb()),
            partitions: self.partitions.iter().map(PartitionConfig::to_pb).collect(),
        }
    }
}
