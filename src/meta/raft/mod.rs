//! The meta servers' Raft group, on openraft (pinned exactly in `Cargo.toml`; nothing outside
//! this module names an openraft type, so an upgrade stays here).
//!
//! - [`TypeConfig`]: the entry payload is a [`Command`] (a batch of [`StoreOp`]s, the same
//!   batches a single meta server writes to its store), members are [`MetaNode`]s;
//! - [`log_store`]: the Raft log and vote in their own redb file;
//! - [`state_machine`]: the replicated meta state — the tables of `meta.redb` plus the last
//!   applied log id and membership, written in one transaction per batch;
//! - [`network`]: Raft's messages as bytes over a [`network::Transport`] (gRPC between
//!   processes, [`mem_transport`] in tests, which drops and delays messages);
//! - [`membership`]: pure decisions on join and leave (who may join, what a leave would do to
//!   the quorum);
//! - [`group`]: one member — open, initialize, join, write, status, message handling; the
//!   leader's side of join, leave and leadership transfer is in `admin.rs`.
//!
//! Not wired into the meta server process yet: the server still runs one meta server over
//! its redb store (see the meta-HA issue's closing note for what remains).

mod admin;
pub mod client;
pub mod group;
pub mod grpc;
pub mod log_store;
pub mod mem_transport;
pub mod membership;
pub mod network;
mod settings;
pub mod state_machine;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::meta::store::StoreOp;

/// One replicated change: what a single meta server would write to its store atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A batch of store changes, applied atomically.
    Ops(Vec<StoreOp>),
    /// Remember that a member id was used (a removed or replaced id is never used again).
    RetireId(u64),
    /// A single meta server's state, written once when its data directory becomes the first
    /// member of a group (so members that join later receive it).
    Migrate(Vec<StoreOp>),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ops(ops) => write!(f, "ops({})", ops.len()),
            Command::RetireId(id) => write!(f, "retire_id({id})"),
            Command::Migrate(ops) => write!(f, "migrate({})", ops.len()),
        }
    }
}

/// What applying a [`Command`] answers (nothing: a change either commits or not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied;

/// A member of the group as the group's membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaNode {
    /// The address that serves admin, beacons and Raft (host:port).
    pub address: String,
    /// The identity of the member's data directory, made when it was created: a wiped
    /// member comes back with another one and is refused under its old id.
    pub incarnation: String,
}

impl fmt::Display for MetaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)
    }
}

openraft::declare_raft_types!(
    /// Ballast's Raft types.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = MetaNode,
);

/// The Raft handle of a member.
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;
/// A log entry.
pub type Entry = openraft::Entry<
    <<TypeConfig as openraft::RaftTypeConfig>::LeaderId as openraft::vote::RaftLeaderId>::Committed,
    <TypeConfig as openraft::RaftTypeConfig>::Payload,
>;
/// A log id.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A membership as stored with the log id that set it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;

/// Timings of the group. Tests use sub-second ones; servers the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How often the leader heartbeats, in milliseconds.
    pub heartbeat_ms: u64,
    /// The shortest election timeout; the longest is twice it.
    pub election_min_ms: u64,
    /// A snapshot is built after this many entries; the log keeps as many behind it.
    pub snapshot_every: u64,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            heartbeat_ms: 100,
            election_min_ms: 500,
            snapshot_every: 1000,
        }
    }
}

/// openraft's configuration for `timings`: a snapshot every `snapshot_every` entries, and as
/// many kept in the log behind it, so a lagging member usually catches up from the log.
pub fn config(timings: Timings) -> io::Result<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "ballast-meta".into(),
        heartbeat_interval: timings.heartbeat_ms,
        election_timeout_min: timings.election_min_ms,
        election_timeout_max: timings.election_min_ms * 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(timings.snapshot_every),
        max_in_snapshot_log_to_keep: timings.snapshot_every,
        ..Default::default()
    };
    config.validate().map_err(io::Error::other)
}

/// The identity (incarnation) of a meta server's data directory, made when the directory
/// first serves a group member and kept in `meta-identity` beside the stores: a wiped
/// directory gets a new one, so the group never mistakes it for the member it replaced.
pub fn identity(dir: &std::path::Path) -> crate::error::Result<String> {
    let path = dir.join("meta-identity");
    if let Ok(kept) = std::fs::read_to_string(&path)
        && !kept.trim().is_empty()
    {
        return Ok(kept.trim().to_string());
    }
    std::fs::create_dir_all(dir)?;
    let incarnation = crate::replica::node_dir::new_incarnation();
    crate::replica::node_dir::write_atomic(&path, incarnation.as_bytes())?;
    Ok(incarnation)
}

/// An `io::Error` for the storage traits from anything printable.
pub(crate) fn io_err(e: impl fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}
