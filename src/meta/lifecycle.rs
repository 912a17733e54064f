//! A node's lifecycle, as Doris and CockroachDB name it: `NORMAL → DECOMMISSIONING →
//! DECOMMISSIONED`, and `DROPPED`. A node that left on purpose no longer counts for
//! auto-freeze; a dropped one's old data directory is refused, so it can come back only
//! wiped, as a new node. The record is durable, so a decommission survives a meta
//! server restart and resumes.

use serde::{Deserialize, Serialize};

use crate::pb;

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub enum NodeLifecycle {
    /// A member like any other.
    #[default]
    Normal,
    /// Its replicas are moving away; it takes no new ones.
    Decommissioning,
    /// It holds no replica and may be stopped.
    Decommissioned,
    /// Forgotten.
    Dropped,
}

impl NodeLifecycle {
    /// The name `nodes` prints.
    pub fn name(self) -> &'static str {
        match self {
            NodeLifecycle::Normal => "NORMAL",
            NodeLifecycle::Decommissioning => "DECOMMISSIONING",
            NodeLifecycle::Decommissioned => "DECOMMISSIONED",
            NodeLifecycle::Dropped => "DROPPED",
        }
    }

    /// The wire form.
    pub fn to_pb(self) -> pb::NodeState {
        match self {
            NodeLifecycle::Normal => pb::NodeState::Normal,
            NodeLifecycle::Decommissioning => pb::NodeState::Decommissioning,
            NodeLifecycle::Decommissioned => pb::NodeState::Decommissioned,
            NodeLifecycle::Dropped => pb::NodeState::Dropped,
        }
    }

    /// Whether the node left on purpose (it no longer counts for auto-freeze).
    pub fn left(self) -> bool {
        matches!(self, NodeLifecycle::Decommissioned | NodeLifecycle::Dropped)
    }
}

/// A node's durable lifecycle record (absent means NORMAL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLife {
    /// Its state.
    pub state: NodeLifecycle,
    /// When it entered DECOMMISSIONING (Unix ms; 0 if never).
    pub started_ms: u64,
    /// Replicas it held then.
    pub replicas_total: u32,
    /// Their bytes, as last reported then.
    pub bytes_total: u64,
    /// The incarnation of the data directory it had when it was dropped or
    /// decommissioned: that directory is refused if it beacons again.
    pub incarnation: String,
}
