//! What a replica server reports of each replica: whether its data is complete, and the
//! ballot and decrees the meta server compares when every replica of a partition is lost.

use serde::{Deserialize, Serialize};

use crate::pb;

/// Whether a replica holds data it may serve and acknowledge, as its node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaData {
    /// Verified data up to its applied decree.
    Valid,
    /// A snapshot is being loaded: incomplete.
    Learning,
    /// Deleted, never held, or on a failed disk.
    Lost,
}

impl ReplicaData {
    /// Converts to the wire enum.
    pub fn to_pb(self) -> pb::ReplicaData {
        match self {
            ReplicaData::Valid => pb::ReplicaData::Valid,
            ReplicaData::Learning => pb::ReplicaData::Learning,
            ReplicaData::Lost => pb::ReplicaData::Lost,
        }
    }

    /// Converts from the wire value (anything unknown reads as lost: never trusted).
    pub fn from_pb(value: i32) -> ReplicaData {
        match pb::ReplicaData::try_from(value) {
            Ok(pb::ReplicaData::Valid) => ReplicaData::Valid,
            Ok(pb::ReplicaData::Learning) => ReplicaData::Learning,
            _ => ReplicaData::Lost,
        }
    }

    /// The name `ddd_diagnose` prints.
    pub fn name(self) -> &'static str {
        match self {
            ReplicaData::Valid => "valid",
            ReplicaData::Learning => "learning",
            ReplicaData::Lost => "lost",
        }
    }
}

/// What a node reports of one replica it holds or is assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaReport {
    /// Whether its data is complete.
    pub data: ReplicaData,
    /// The highest ballot it durably promised.
    pub ballot: i64,
    /// Its commit point.
    pub committed: u64,
    /// Its last durably logged decree.
    pub prepared: u64,
    /// Its size on disk.
    pub disk_bytes: u64,
}

impl ReplicaReport {
    /// A valid replica's report (tests and simulations).
    pub fn valid(ballot: i64, committed: u64, prepared: u64) -> ReplicaReport {
        ReplicaReport {
            data: ReplicaData::Valid,
            ballot,
            committed,
            prepared,
            disk_bytes: 0,
        }
    }

    /// Whether its data is complete.
    pub fn is_valid(&self) -> bool {
        self.data == ReplicaData::Valid
    }
}
