//! The PacificA core of one replica: a synchronous state machine with one owner.
//! [`Core::step`] takes an [`Input`] and leaves [`Effect`]s for its driver; it does no
//! I/O and reads no clock (time comes with each step), so the same code runs in the
//! replica server and in the deterministic simulation.
//!
//! The rules it keeps, whatever its role:
//! - **A promise is durable before it is used.** The highest ballot accepted (and its
//!   primary) is persisted before the replica acknowledges or sends anything under it;
//!   a replica that finds, after a restart, that it may have been primary at its
//!   assigned ballot asks the meta server for a new one instead of reusing it.
//! - **One primary per ballot.** A prepare at a lower ballot is refused; at the same
//!   ballot only from that ballot's primary; a higher one is adopted (a primary that
//!   sees it steps down).
//! - **Never acknowledge or serve what it does not hold.** Only verified data counts: a
//!   replica whose data is incomplete (learning), deleted or on a failed disk refuses
//!   prepares and never serves; a secondary refuses a primary that holds less than it
//!   has committed.
//! - **Logs match.** A prepare names the entry before its first one (Raft's log
//!   matching); an entry that differs from the one held replaces it and everything
//!   after it; an acknowledgement counts only entries that are durable.
//! - **Commit in order.** The primary commits a decree once its own log and every
//!   secondary's hold it durably; entries are applied in decree order, only committed
//!   and durable ones.
//!
//! [`primary`] holds the primary's rules, [`follower`] the secondary's and learner's.

mod events;
pub mod follower;
pub mod log;
pub mod primary;
pub mod sessions;
pub mod types;

use std::collections::BTreeMap;

use crate::error::Error;
use crate::model::Gpid;
use log::Log;
use primary::Primary;
use sessions::Sessions;
pub use types::*;

/// Timings and sizes of the core (milliseconds and counts).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// A peer that has not answered an outstanding prepare for this long is removed (a
    /// secondary, through the meta server) or given up (a learner).
    pub prepare_timeout_ms: u64,
    /// An unanswered prepare is sent again after this long.
    pub resend_ms: u64,
    /// A primary sends each peer at least one prepare this often (its commit point; a
    /// peer that restarted learns it, a dead one is noticed without a write).
    pub heartbeat_ms: u64,
    /// A write not committed within this long is answered "outcome unknown".
    pub commit_timeout_ms: u64,
    /// A learner whose request or snapshot makes no progress for this long starts over.
    pub learn_timeout_ms: u64,
    /// How long a learner waits before asking again after a failure.
    pub learn_retry_ms: u64,
    /// A learner its primary has not prepared to for this long asks to be taught again
    /// (the primary gave it up, or is a new one).
    pub follow_timeout_ms: u64,
    /// A configuration change request unanswered for this long is sent again.
    pub meta_retry_ms: u64,
    /// A commit point no prepare has carried yet goes out alone (an empty prepare) once
    /// this long has passed since the peer's last prepare. Under load the next write's
    /// prepare carries it; sent at once, every commit cost each secondary a message, a
    /// worker wake-up and an answer (`load --clients 16`, 3 alternating runs: 1.09x the
    /// set QPS). Secondaries only apply and trim with it: a new primary re-prepares what
    /// it has not seen committed, and a learner's last entry counts as well as its commit
    /// point.
    pub commit_notify_ms: u64,
    /// Entries a primary may have beyond its commit point (the pipeline's depth).
    pub window: u64,
    /// Entries a primary may have beyond what its store has applied: writers are answered
    /// at commit and reads wait for the apply, so a store slower than the log holds new
    /// entries back here instead of falling behind without bound.
    pub max_apply_lag: u64,
    /// Writes batched into one entry at most.
    pub max_batch: usize,
    /// Entries per prepare at most.
    pub max_entries_per_prepare: usize,
    /// The store is synced at least every this many decrees.
    pub durable_every: u64,
    /// Committed entries are applied once this many wait; the rest at the replica's next
    /// tick, when a read waits for them (`Input::ApplyNow`) or when a secondary takes over
    /// as primary. Writers are answered at commit, and one store transaction for many
    /// entries costs far less than one per entry (`load --clients 16`: secondaries
    /// batching 1.12x the set QPS; the primary batching too, 1.09x more, its point reads
    /// served from the committed entries meanwhile).
    pub apply_every: u64,
    /// The log is compacted once it holds this many bytes (down to what the store holds
    /// durably and every peer has). 2 MB: at 32 MB a replica's log was never trimmed in a
    /// 45 MB fill and took 1.1 bytes of disk per byte of payload; at 2 MB, 0.36
    /// (`ballast-bench load --duration 30s --value-size 1000`).
    pub compact_bytes: usize,
    /// Out-of-order prepares a follower keeps waiting for the ones before them.
    pub reorder_limit: usize,
    /// A primary keeps the log a dropped secondary would need for this long, so a
    /// replica that comes back (cure re-adds the last dropped member) catches up from the
    /// log instead of copying a snapshot. The meta server's default assign delay.
    pub catch_up_ms: u64,
    /// ...but never a log larger than this: past it the returning replica gets a
    /// snapshot, and the log is trimmed as usual.
    pub catch_up_bytes: usize,
    /// A replica whose log and commit point have not moved for this long settles: its
    /// store is made durable and its log compacted below `compact_bytes` too, so a quiet
    /// replica keeps no log its store holds (nor peers need).
    pub settle_ms: u64,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            prepare_timeout_ms: 1500,
            resend_ms: 300,
            heartbeat_ms: 1000,
            commit_timeout_ms: 8000,
            learn_timeout_ms: 10_000,
            learn_retry_ms: 500,
            follow_timeout_ms: 3000,
            meta_retry_ms: 1000,
            commit_notify_ms: 20,
            window: 64,
            max_apply_lag: 256,
            max_batch: 256,
            max_entries_per_prepare: 64,
            durable_every: 1024,
            apply_every: 32,
            compact_bytes: 2 << 20,
            reorder_limit: 64,
            catch_up_ms: 600_000,
            catch_up_bytes: 64 << 20,
            settle_ms: 5000,
        }
    }
}

/// What a replica recovers from its disk when it opens.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Its data's state.
    pub data: Option<DataState>,
    /// The last durable promise.
    pub hard: HardState,
    /// The log's entries, consecutive, oldest first.
    pub entries: Vec<Entry>,
    /// The last decree applied durably to the store.
    pub applied: u64,
    /// The client sessions as of `applied`.
    pub sessions: Sessions,
}

/// A learner's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Waiting to ask (after a failure, until this time).
    Idle(u64),
    /// Asked the primary, at this time.
    Requested(u64),
    /// Loading a snapshot at this decree; last progress at this time.
    Loading(u64, u64),
    /// Sealing the snapshot at this decree.
    Sealing(u64),
    /// Holds verified data and follows the primary's prepares.
    Ready,
}

/// The replica's role, carrying what the role needs.
#[derive(Debug)]
pub enum Role {
    /// Not assigned, or waiting for an assignment it can act on.
    Inactive,
    /// Follows this primary.
    Secondary(NodeId),
    /// Learns from this primary.
    Learner(NodeId, Stage),
    /// The partition's primary.
    Primary(Box<Primary>),
}

/// A prepare answered once its entries are durable.
#[derive(Debug, Clone)]
struct PendingAck {
    reply: ReplyId,
    ballot: i64,
    upto: u64,
}

/// One replica's PacificA state machine.
#[derive(Debug)]
pub struct Core {
    gpid: Gpid,
    me: NodeId,
    cfg: CoreConfig,
    now: u64,
    /// The latest promise (durable once `hard_durable` reaches its ballot).
    hard: HardState,
    hard_durable: i64,
    hard_pending: Vec<(u64, i64)>,
    /// The ballot recovered from disk: this process never prepared under it.
    recovered_ballot: i64,
    log: Log,
    committed: u64,
    /// A follower's knowledge of the primary's commit point (applied once durable).
    commit_hint: u64,
    /// Applies emitted so far.
    applied: u64,
    /// Applies the store confirmed, and made durable.
    store_applied: u64,
    store_durable: u64,
    data: DataState,
    sessions: Sessions,
    view: Option<Assignment>,
    role: Role,
    next_persist: u64,
    acks: Vec<PendingAck>,
    reorder: BTreeMap<u64, (Prepare, ReplyId, u64)>,
    meta_pending: Option<(i64, ConfigRequest, u64)>,
    /// After a refused configuration change, none is asked before this time.
    meta_backoff_until: u64,
    /// When a primary's prepare was last accepted.
    heard_at: u64,
    /// The learner's current attempt.
    learn_attempt: u64,
    /// The log's last decree and the commit point as last seen at a tick, and since when
    /// neither has moved.
    quiet: (u64, u64, u64),
    /// Settled in the current quiet spell (durable store, compacted log).
    settled: bool,
    out: Vec<Effect>,
}

impl Core {
    /// A replica of `gpid` on node `me`, from what its disk holds. `None` data means the
    /// node never held it: it is lost until taught, or created empty.
    pub fn new(gpid: Gpid, me: &str, cfg: CoreConfig, recovered: Recovered, now: u64) -> Core {
        let applied = recovered.applied;
        let log = Log::recovered(recovered.entries, applied);
        let data = recovered.data.unwrap_or(DataState::Lost(0));
        Core {
            gpid,
            me: me.to_string(),
            cfg,
            now,
            hard_durable: recovered.hard.ballot,
            recovered_ballot: recovered.hard.ballot,
            hard: recovered.hard,
            hard_pending: Vec::new(),
            log,
            committed: applied,
            commit_hint: applied,
            applied,
            store_applied: applied,
            store_durable: applied,
            data,
            sessions: recovered.sessions,
            view: None,
            role: Role::Inactive,
            next_persist: 0,
            acks: Vec::new(),
            reorder: BTreeMap::new(),
            meta_pending: None,
            meta_backoff_until: 0,
            heard_at: now,
            learn_attempt: 0,
            quiet: (0, 0, now),
            settled: false,
            out: Vec::new(),
        }
    }

    /// The partition.
    pub fn gpid(&self) -> Gpid {
        self.gpid
    }

    /// Takes one input at time `now` (ms, monotonic).
    pub fn step(&mut self, now: u64, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Tick => self.on_tick(),
            Input::ApplyNow => self.apply_committed(),
            Input::Assign(a) => self.on_assign(a),
            Input::Unassign => self.on_unassign(),
            Input::Write(w, reply) => self.on_write(w, reply),
            Input::Flush => self.on_flush(),
            Input::Prepare(p, reply) => self.on_prepare(p, reply),
            Input::PrepareReply(from, reply) => self.on_prepare_reply(&from, reply),
            Input::Learn(req, reply) => self.on_learn(req, reply),
            Input::LearnAnswer(a, answer) if a == self.learn_attempt => {
                self.on_learn_answer(answer)
            }
            Input::SnapshotChunk(a, chunk) if a == self.learn_attempt => {
                self.on_snapshot_chunk(chunk)
            }
            Input::SnapshotEnd(a, sessions) if a == self.learn_attempt => {
                self.on_snapshot_end(sessions)
            }
            Input::SnapshotFailed(a, why) if a == self.learn_attempt => {
                self.on_snapshot_failed(&why)
            }
            Input::LearnAnswer(..)
            | Input::SnapshotChunk(..)
            | Input::SnapshotEnd(..)
            | Input::SnapshotFailed(..) => {}
            Input::Sealed(decree) => self.on_sealed(decree),
            Input::Persisted(id) => self.on_persisted(id),
            Input::PersistFailed(why) | Input::ApplyFailed(why) => self.on_disk_failed(why),
            Input::Applied { upto, durable } => self.on_applied(upto, durable),
            Input::MetaAnswer(answer) => self.on_meta_answer(answer),
            Input::Kill => self.on_kill(),
        }
    }

    /// Takes the effects left by the steps so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    /// What the replica reports of itself.
    pub fn status(&self) -> Status {
        let ballot = match self.data {
            // A lost replica reports the ballot it was lost at: the meta server tells a
            // stale report from a new loss by it.
            DataState::Lost(at) => at.max(self.hard_durable),
            _ => self.hard_durable,
        };
        Status {
            data: self.data.clone(),
            ballot,
            committed: self.committed,
            prepared: self.log.durable().max(self.store_applied),
            applied: self.store_applied,
            serving: self.serving(),
        }
    }

    /// Whether this replica is the partition's primary and serves reads and writes now.
    pub fn serving(&self) -> bool {
        match &self.role {
            Role::Primary(p) => p.serving(),
            _ => false,
        }
    }

    /// The primary's ballot while it serves.
    pub fn serving_ballot(&self) -> Option<i64> {
        match &self.role {
            Role::Primary(p) if p.serving() => Some(p.ballot),
            _ => None,
        }
    }

    /// The role now.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The log (for the simulation's invariant checks).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The client sessions as of the last applied decree.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The latest (maybe not yet durable) promise.
    pub fn hard_state(&self) -> &HardState {
        &self.hard
    }

    fn emit(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    fn reply(&mut self, to: ReplyId, reply: Reply) {
        self.emit(Effect::Reply(to, reply));
    }

    /// Persists `records`; returns the persist id.
    fn persist(&mut self, records: Vec<LogRecord>) -> u64 {
        self.next_persist += 1;
        let id = self.next_persist;
        for r in &records {
            if let LogRecord::Hard(h) = r {
                self.hard_pending.push((id, h.ballot));
            }
        }
        self.emit(Effect::Persist { id, records });
        id
    }

    /// Changes the promise; returns the record to persist with it.
    fn promise(&mut self, ballot: i64, primary: &str) -> LogRecord {
        self.hard = HardState {
            ballot,
            primary: Some(primary.to_string()),
        };
        LogRecord::Hard(self.hard.clone())
    }
}

#[cfg(test)]
mod tests;
