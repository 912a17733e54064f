//! The replica core's vocabulary: what goes in ([`Input`]), what comes out ([`Effect`]),
//! and the messages replicas of one partition exchange. Nothing here does I/O; a driver
//! (the replica server's worker, or the deterministic simulation) carries effects out
//! and feeds their outcomes back as inputs.

use std::sync::Arc;

use crate::error::Error;
use crate::pb;
use crate::replica::core::sessions::Sessions;

/// A node's name: its `host:port`.
pub type NodeId = String;

/// Who waits for a reply: the driver maps it to a client, an RPC or a simulated message.
pub type ReplyId = u64;

/// A log entry, shared between the log, prepares in flight and the applier.
pub type Entry = Arc<pb::LogEntry>;

/// The role the meta server assigns a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignedRole {
    /// Orders and commits the partition's writes.
    Primary,
    /// Logs the primary's prepares.
    Secondary,
    /// Copies the primary's data, then asks to become a secondary.
    Learner,
}

/// A change the meta server asks a primary to carry out itself, so that it stops
/// serving before another node may start (no stale read from an old primary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Hand the primary role to this secondary.
    MovePrimary(NodeId),
    /// Become a secondary; cure then promotes one.
    Downgrade,
}

/// The meta server's assignment of this replica (from a beacon reply or the answer to a
/// configuration change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The configuration's ballot.
    pub ballot: i64,
    /// This replica's role in it.
    pub role: AssignedRole,
    /// The configuration's primary.
    pub primary: Option<NodeId>,
    /// The configuration's secondaries.
    pub secondaries: Vec<NodeId>,
    /// The table's replica count (writes need `min(2, max_replicas)` members).
    pub max_replicas: u32,
    /// A change for the primary to carry out.
    pub proposal: Option<Proposal>,
    /// The replica may start empty: the partition is brand new, or an operator chose
    /// this node for a partition whose every replica was lost.
    pub create_empty: bool,
}

/// A configuration as the meta server answered a change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigView {
    /// The ballot.
    pub ballot: i64,
    /// The primary.
    pub primary: Option<NodeId>,
    /// The secondaries.
    pub secondaries: Vec<NodeId>,
}

/// A configuration change a primary asks the meta server for (a compare-and-set on its
/// ballot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigRequest {
    /// Remove a member that does not answer prepares.
    Remove(NodeId),
    /// Make a learner that has caught up a member.
    UpgradeLearner(NodeId),
    /// The same configuration under a new ballot: a restarted primary must not reuse a
    /// ballot it may have prepared under before.
    Renew,
    /// Make this secondary the primary; this one becomes a secondary.
    MovePrimary(NodeId),
    /// Become a secondary, leaving the partition without a primary.
    Downgrade,
}

/// A replica's promise: the highest ballot it has accepted and that ballot's primary.
/// Made durable before the replica acknowledges or sends anything under the ballot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardState {
    /// The ballot.
    pub ballot: i64,
    /// Its primary.
    pub primary: Option<NodeId>,
}

/// One record of the prepare log.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    /// A promise.
    Hard(HardState),
    /// An entry: replaces any entry at its decree and after it.
    Entry(Entry),
}

/// A primary's prepare: entries following `prev`, and its commit point.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepare {
    /// The primary's ballot.
    pub ballot: i64,
    /// The primary.
    pub from: NodeId,
    /// The decree before the first entry (or the point the prepare confirms, if none).
    pub prev_decree: u64,
    /// The ballot of the primary's entry at `prev_decree` (0 if unknown).
    pub prev_ballot: i64,
    /// Consecutive entries after `prev_decree`.
    pub entries: Vec<Entry>,
    /// The primary's commit point.
    pub committed: u64,
    /// The primary's last prepared decree: a replica that has committed more refuses it.
    pub last_prepared: u64,
}

/// Why a replica refused a prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It has accepted a higher ballot.
    StaleBallot(i64),
    /// At this ballot it follows another primary (or is the primary itself).
    WrongPrimary,
    /// The primary holds less than this replica has committed: it lacks data.
    PrimaryBehind(u64),
    /// The entries do not follow what it holds: send from after its commit point.
    Mismatch {
        /// Its commit point.
        committed: u64,
    },
    /// Its data is not loaded (learning, lost).
    NotReady,
    /// Its disk failed.
    Failed(String),
}

/// A replica's answer to a prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareReply {
    /// Logged durably up to `prepared`, matching the primary's log.
    Ack {
        /// The ballot the prepare came under.
        ballot: i64,
        /// Every decree up to this is durably logged and matches the primary's.
        prepared: u64,
        /// The replica's data is complete (a learner's snapshot is loaded).
        ready: bool,
    },
    /// Refused.
    Refused(Refusal),
}

/// A learner's request to be taught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnRequest {
    /// The ballot it was assigned under.
    pub ballot: i64,
    /// The learner.
    pub learner: NodeId,
    /// Its commit point, if it holds verified data (it may then catch up from the log).
    pub committed: Option<u64>,
    /// The last entry of its log (decree, ballot), if it holds verified data: a primary
    /// that holds the same entry knows the learner's log matches its own up to there
    /// (log matching), so the learner catches up from there even if its store, and so
    /// its commit point, trails (a restarted replica's commit point is its store's
    /// durable point).
    pub last: Option<(u64, i64)>,
    /// The learner's attempt (not sent: what comes back of an older attempt is ignored).
    pub attempt: u64,
}

/// How a primary will teach a learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnPlan {
    /// The learner keeps its data: prepares bring it up to date from its commit point.
    Incremental,
    /// A snapshot of the store at this decree comes first.
    Snapshot(u64),
}

/// A client write.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The mutations, applied atomically.
    pub mutations: Vec<pb::Mutation>,
    /// The client's id for it, if it gave one.
    pub request: Option<pb::RequestId>,
}

/// A piece of a snapshot, in the form the primary's store holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Records as stored, in key order after those before (the whole store, read
    /// through any base file).
    Records(Vec<(Vec<u8>, Vec<u8>)>),
    /// The next bytes of the primary's base file, as they lie on its disk.
    File(Vec<u8>),
    /// After the base file: records the primary's store holds over it, and keys
    /// deleted from it since it was written.
    Overlay {
        /// Records as stored.
        puts: Vec<(Vec<u8>, Vec<u8>)>,
        /// Encoded keys.
        deleted: Vec<Vec<u8>>,
    },
}

impl Chunk {
    /// The bytes the chunk carries.
    pub fn bytes(&self) -> usize {
        let pairs = |p: &[(Vec<u8>, Vec<u8>)]| p.iter().map(|(k, v)| k.len() + v.len()).sum();
        match self {
            Chunk::Records(p) => pairs(p),
            Chunk::File(b) => b.len(),
            Chunk::Overlay { puts, deleted } => {
                pairs(puts) + deleted.iter().map(Vec::len).sum::<usize>()
            }
        }
    }
}

/// An answer the core sends to whoever waits on a [`ReplyId`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A client write: its decree, or why it failed (or may have).
    Write(Result<u64, Error>),
    /// A prepare.
    Prepare(PrepareReply),
    /// A learn request.
    Learn(Result<LearnPlan, Error>),
}

/// What the core is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Time passed (timeouts, retries).
    Tick,
    /// A read waits for the store: apply everything committed now.
    ApplyNow,
    /// The meta server assigns this replica.
    Assign(Assignment),
    /// The node's assignments no longer include this replica.
    Unassign,
    /// A client write (primary).
    Write(Write, ReplyId),
    /// Queued writes may be cut into an entry now (the driver drained its inputs).
    Flush,
    /// A prepare from a primary.
    Prepare(Prepare, ReplyId),
    /// The answer to a prepare this replica sent to `from`; `None` if the send failed.
    PrepareReply(NodeId, Option<PrepareReply>),
    /// A learner asks to be taught (primary).
    Learn(LearnRequest, ReplyId),
    /// The primary answered this learner's request of attempt `.0` (`Err` if it could
    /// not be reached).
    LearnAnswer(u64, Result<LearnPlan, Error>),
    /// A snapshot chunk of attempt `.0` arrived (learner).
    SnapshotChunk(u64, Chunk),
    /// Attempt `.0`'s snapshot ended, with the client sessions as of its decree.
    SnapshotEnd(u64, Sessions),
    /// Attempt `.0`'s snapshot stream failed (learner).
    SnapshotFailed(u64, String),
    /// The snapshot is loaded and durable at this decree (learner).
    Sealed(u64),
    /// Every persist up to this id is durable.
    Persisted(u64),
    /// A persist failed: the disk cannot be trusted.
    PersistFailed(String),
    /// Entries up to this decree are applied; `durable`: the store is synced up to it.
    Applied {
        /// The last decree applied.
        upto: u64,
        /// Whether the store is durable up to it.
        durable: bool,
    },
    /// Applying (or loading) failed: the store cannot be trusted.
    ApplyFailed(String),
    /// The meta server answered a configuration change request (`Err`: no answer).
    MetaAnswer(Result<(bool, ConfigView), Error>),
    /// `replica.kill_partition`: the replica's data is deleted.
    Kill,
}

/// What the core asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append these records to the log durably; report [`Input::Persisted`] with `id`.
    Persist {
        /// Increasing per core.
        id: u64,
        /// The records, in order.
        records: Vec<LogRecord>,
    },
    /// Apply these committed entries to the store, in order; report [`Input::Applied`].
    Apply {
        /// Consecutive entries.
        entries: Vec<Entry>,
        /// Sync the store after them.
        durable: bool,
    },
    /// Drop log records every one of whose entries is below this decree (all applied
    /// durably and no longer needed by any peer).
    Compact(u64),
    /// The replica settled (quiet, store durable, log compacted): the store may rewrite
    /// itself denser, off the write path, if nothing is written meanwhile.
    Tidy,
    /// Send a prepare; report [`Input::PrepareReply`].
    Send(NodeId, Prepare),
    /// Answer a waiting caller.
    Reply(ReplyId, Reply),
    /// Ask the meta server for a configuration change at `ballot`; report
    /// [`Input::MetaAnswer`].
    AskMeta(i64, ConfigRequest),
    /// Learner: ask the primary to be taught; report [`Input::LearnAnswer`], then stream
    /// snapshot chunks as [`Input::SnapshotChunk`] and [`Input::SnapshotEnd`].
    Learn(NodeId, LearnRequest),
    /// Primary: answer a learner with a snapshot of the store at `decree` (everything
    /// applied so far) and stream it.
    StreamSnapshot(ReplyId, u64),
    /// Learner: empty the store and the log (keeping the promise) and mark the data as
    /// incomplete, durably.
    ResetData,
    /// Learner: load a snapshot chunk into the store.
    LoadChunk(Chunk),
    /// Learner: seal the snapshot at `decree` with `sessions`, durably; report
    /// [`Input::Sealed`].
    Seal(u64, Sessions),
    /// Delete the replica's data and keep a marker that it was lost at this ballot.
    Destroy(i64),
    /// Make the replica an empty, valid store (a brand-new partition), durably.
    CreateEmpty,
}

/// Whether the replica's store holds data it may serve and acknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataState {
    /// Verified data: everything up to the applied decree.
    Valid,
    /// A snapshot is being loaded: incomplete.
    Learning,
    /// Deleted (`replica.kill_partition`) or never held; at this ballot.
    Lost(i64),
    /// A disk write or sync failed: nothing it holds can be trusted.
    Broken(String),
}

/// What a replica reports of itself (beacons, `ddd_diagnose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its data.
    pub data: DataState,
    /// Its durable promise's ballot.
    pub ballot: i64,
    /// Its commit point.
    pub committed: u64,
    /// Its last durably logged decree.
    pub prepared: u64,
    /// The last decree applied to its store.
    pub applied: u64,
    /// Serving reads and writes as primary now.
    pub serving: bool,
}
