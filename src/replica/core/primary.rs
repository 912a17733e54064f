//! The primary's rules (PacificA):
//!
//! 1. **Take over.** Persist the promise (ballot, itself) before sending anything; then
//!    prepare every entry it has not seen committed to every secondary (entries keep the
//!    ballot they were written under), commit and apply them, and serve only once every
//!    secondary has answered. A replica assigned primary at a ballot it may have used
//!    before a restart asks for a new one (renew).
//! 2. **Write.** Client writes queue; each flush cuts them into one entry at the next
//!    decree (at most `window` entries beyond the commit point). Entries are pipelined to
//!    every secondary and learner, each peer with its own progress; a peer that misses
//!    one is sent again from what it acknowledged, or from its commit point.
//! 3. **Commit** a decree once the primary's log and every secondary hold it durably;
//!    answer a writer then; apply in order in the background (reads wait until the store
//!    has applied what was committed when they came). Secondaries learn the commit point
//!    from the next prepare, or from an empty one a little later when no write follows.
//!    A write not committed in time is answered "outcome unknown" (it stays logged and
//!    may still commit). Writes need `min(2, max_replicas)` members.
//! 4. **Change the configuration** only through the meta server, one request at a time:
//!    remove a secondary that stopped answering; upgrade a learner that holds
//!    everything; carry out a proposal to move the primary or step down. Before a
//!    change that can hand the partition to another primary, it stops serving and waits
//!    until the target holds every entry, so no read is served stale and nothing
//!    committed is missing at the new primary.
//! 5. **Learners** are taught incrementally from the log when they hold data the log
//!    still reaches, otherwise by a snapshot of the store; they are fed prepares and do
//!    not count for commits.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{Core, Role};
use crate::error::Error;
use crate::model::Gpid;
use crate::replica::core::types::*;

mod assign;
mod handover;
mod replicate;
mod writes;

/// Prepares in flight to one peer at most.
const MAX_INFLIGHT: u32 = 8;

/// Where a primary is in its tenure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryStage {
    /// Asked the meta server for a new ballot (it may have used this one before).
    Renewing,
    /// Waiting for its promise to be durable (this persist).
    Promising(u64),
    /// Re-preparing the entries it took over with, up to `target`.
    Reconciling,
    /// Serving reads and writes.
    Serving,
    /// Not serving: waiting for in-flight entries before asking for this change.
    Handover(ConfigRequest, u64),
    /// Not serving: asked the meta server for this change.
    Asking(ConfigRequest),
}

/// A secondary's or learner's progress, as the primary tracks it.
#[derive(Debug, Clone)]
struct Peer {
    /// The next decree to send.
    next: u64,
    /// What the peer surely holds (acknowledged, or its commit point).
    floor: u64,
    /// The highest decree it acknowledged as durably logged.
    acked: u64,
    inflight: u32,
    sent_at: u64,
    /// Since when it has owed an answer without making progress.
    waiting_since: Option<u64>,
    retry_at: u64,
    learner: bool,
    ready: bool,
    /// It acknowledged a prepare of this tenure: it follows this primary and does not
    /// hold more than it has committed.
    confirmed: bool,
    committed_sent: u64,
}

impl Peer {
    fn new(floor: u64, learner: bool) -> Peer {
        Peer {
            next: floor + 1,
            floor,
            acked: 0,
            inflight: 0,
            sent_at: 0,
            waiting_since: None,
            retry_at: 0,
            learner,
            ready: !learner,
            confirmed: false,
            committed_sent: 0,
        }
    }

    /// Forgets what is in flight: the next prepare starts after what it surely holds.
    fn rewind(&mut self, retry_at: u64) {
        self.inflight = 0;
        self.next = self.floor.max(self.acked) + 1;
        self.retry_at = retry_at;
    }
}

/// Writes queued until the next entry is cut.
#[derive(Debug)]
struct Queued {
    write: Write,
    replies: Vec<ReplyId>,
    at: u64,
}

/// A primary's state.
#[derive(Debug)]
pub struct Primary {
    /// The configuration's ballot.
    pub ballot: i64,
    /// The ballot it took over at.
    tenure: i64,
    /// Where it is.
    pub stage: PrimaryStage,
    secondaries: Vec<NodeId>,
    max_replicas: u32,
    peers: BTreeMap<NodeId, Peer>,
    queued: VecDeque<Queued>,
    /// Writers waiting for their entry to be committed: decree → (reply, since).
    waiting: BTreeMap<u64, Vec<(ReplyId, u64)>>,
    /// Client writes logged but not applied: (client, seq) → decree.
    requests: HashMap<(u64, u64), u64>,
    proposal: Option<Proposal>,
    /// Secondaries dropped from the configuration in this tenure: node → (the decree it
    /// surely held, when it was dropped). Their log is kept for a while (bounded), so one
    /// that comes back catches up from the log.
    departed: BTreeMap<NodeId, (u64, u64)>,
    /// What a taking-over primary must commit before it serves.
    target: u64,
    /// Set inside a step to leave the role: (why, the role to take).
    resign: Option<(String, Role)>,
}

impl Primary {
    fn new(ballot: i64, a: &Assignment, stage: PrimaryStage) -> Primary {
        Primary {
            ballot,
            tenure: ballot,
            stage,
            secondaries: a.secondaries.clone(),
            max_replicas: a.max_replicas.max(1),
            peers: BTreeMap::new(),
            queued: VecDeque::new(),
            waiting: BTreeMap::new(),
            requests: HashMap::new(),
            proposal: a.proposal.clone(),
            departed: BTreeMap::new(),
            target: 0,
            resign: None,
        }
    }

    /// Whether it serves reads and writes now.
    pub fn serving(&self) -> bool {
        self.stage == PrimaryStage::Serving
    }

    /// The lowest decree some peer may still need.
    pub fn peer_floor(&self) -> u64 {
        self.peers
            .values()
            .map(|p| p.acked.min(p.next.saturating_sub(1)))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The lowest decree a recently dropped secondary would need to catch up from the
    /// log. A departure is forgotten after `catch_up_ms`, and all are once the log has
    /// grown past `catch_up_bytes` (the returning replica then copies a snapshot).
    pub fn departed_floor(&mut self, now: u64, log_bytes: usize, cfg: &super::CoreConfig) -> u64 {
        if log_bytes > cfg.catch_up_bytes {
            self.departed.clear();
        }
        self.departed
            .retain(|_, (_, since)| now < since.saturating_add(cfg.catch_up_ms));
        self.departed
            .values()
            .map(|(floor, _)| *floor)
            .min()
            .unwrap_or(u64::MAX)
    }

    fn min_members(&self) -> usize {
        self.max_replicas.min(2) as usize
    }

    /// Answers for everyone waiting when the primary leaves: queued writes were never
    /// logged (not primary); logged ones get `logged` (their outcome is unknown).
    pub fn abandon(self, gpid: Gpid, logged: Error) -> Vec<(ReplyId, Error)> {
        let mut out = Vec::new();
        for q in self.queued {
            for r in q.replies {
                out.push((
                    r,
                    Error::NotPrimary(format!("this node is no longer the primary of {gpid}")),
                ));
            }
        }
        for replies in self.waiting.into_values() {
            for (r, _) in replies {
                out.push((r, logged.clone()));
            }
        }
        out
    }

    fn resign(&mut self, why: impl Into<String>, then: Role) {
        if self.resign.is_none() {
            self.resign = Some((why.into(), then));
        }
    }
}

impl Core {
    /// Runs `f` on the primary's state; afterwards the role is the primary again, or
    /// what it resigned to.
    fn with_primary(&mut self, f: impl FnOnce(&mut Core, &mut Primary)) {
        if !matches!(self.role, Role::Primary(_)) {
            return;
        }
        let Role::Primary(mut p) = std::mem::replace(&mut self.role, Role::Inactive) else {
            unreachable!("checked above");
        };
        f(self, &mut p);
        match p.resign.take() {
            None => self.role = Role::Primary(p),
            Some((why, then)) => {
                tracing::info!(gpid = %self.gpid, ballot = p.ballot, "primary steps down: {why}");
                let gpid = self.gpid;
                let logged = Error::OutcomeUnknown(format!(
                    "{gpid}: the primary stepped down ({why}); the write may still commit"
                ));
                for (reply, err) in p.abandon(gpid, logged) {
                    self.reply(reply, Reply::Write(Err(err)));
                }
                self.meta_pending = None;
                self.role = then;
            }
        }
    }

    /// Leaves the primary role (when not inside [`Core::with_primary`]).
    pub(super) fn step_down(&mut self, why: &str) {
        let why = why.to_string();
        self.with_primary(|_, p| p.resign(why, Role::Inactive));
    }

    /// After a persist or an answer: promise durable → reconcile; commit; send.
    pub(super) fn primary_progress(&mut self) {
        self.with_primary(|c, p| {
            if let PrimaryStage::Promising(_) = p.stage
                && c.hard_durable >= p.ballot
            {
                p.stage = PrimaryStage::Reconciling;
            }
            c.commit_primary(p);
            c.pump(p);
            c.check_ready(p);
            c.maybe_handover(p);
        });
    }

    fn commit_primary(&mut self, p: &mut Primary) {
        if matches!(p.stage, PrimaryStage::Renewing | PrimaryStage::Promising(_)) {
            return;
        }
        let mut c = self.log.durable();
        for s in &p.secondaries {
            c = c.min(p.peers.get(s).map_or(self.committed, |peer| peer.acked));
        }
        if c > self.committed {
            self.committed = c;
            // In batches, as a secondary applies: point reads see committed entries
            // before the store does (`replica::pending`), other reads ask for the rest
            // (`Input::ApplyNow`), and the tick applies it. At once while taking over:
            // it serves once its store holds what it re-prepared.
            let serving = p.stage == PrimaryStage::Serving;
            if !serving || self.committed - self.applied >= self.cfg.apply_every {
                self.apply_committed();
            }
            self.answer_committed(p);
        }
    }

    /// A taking-over primary serves once every secondary has answered it (none holds
    /// more than it has committed) and everything it took over with is applied.
    fn check_ready(&mut self, p: &mut Primary) {
        let confirmed = p
            .secondaries
            .iter()
            .all(|s| p.peers.get(s).is_some_and(|peer| peer.confirmed));
        if p.stage == PrimaryStage::Reconciling
            && confirmed
            && self.committed >= p.target
            && self.store_applied >= p.target
        {
            p.stage = PrimaryStage::Serving;
            tracing::info!(gpid = %self.gpid, ballot = p.ballot, "primary serving");
            self.cut_entries(p);
            self.pump(p);
        }
    }
}
