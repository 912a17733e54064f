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
//!    apply in order; answer a writer once its entry is applied. A write not applied in
//!    time is answered "outcome unknown" (it stays logged and may still commit). Writes
//!    need `min(2, max_replicas)` members.
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

use super::{Core, DataState, Role};
use crate::error::Error;
use crate::model::Gpid;
use crate::replica::core::types::*;

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
    /// Writers waiting for their entry to be applied: decree → (reply, since).
    waiting: BTreeMap<u64, Vec<(ReplyId, u64)>>,
    /// Client writes logged but not applied: (client, seq) → decree.
    requests: HashMap<(u64, u64), u64>,
    proposal: Option<Proposal>,
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

    pub(super) fn assigned_primary(&mut self, a: Assignment) {
        if let Role::Primary(p) = &mut self.role {
            let renewing = p.stage == PrimaryStage::Renewing;
            if a.ballot == p.ballot && !renewing {
                p.max_replicas = a.max_replicas.max(1);
                if a.proposal.is_some() {
                    p.proposal = a.proposal.clone();
                }
                let secondaries = a.secondaries.clone();
                self.with_primary(|c, p| {
                    c.adopt_config(p, a.ballot, secondaries);
                    c.maybe_handover(p);
                });
                return;
            }
            if a.ballot > p.ballot && !renewing {
                let secondaries = a.secondaries.clone();
                self.with_primary(|c, p| {
                    p.max_replicas = a.max_replicas.max(1);
                    p.proposal = a.proposal.clone();
                    c.adopt_config(p, a.ballot, secondaries);
                });
                return;
            }
            if a.ballot <= p.ballot {
                return;
            }
        }
        self.stop_role(Error::OutcomeUnknown(format!(
            "{}: role changed",
            self.gpid
        )));
        if self.data != DataState::Valid {
            tracing::warn!(gpid = %self.gpid, data = ?self.data, "assigned primary without verified data: not serving");
            return;
        }
        if a.ballot <= self.hard.ballot.max(self.recovered_ballot) {
            tracing::info!(gpid = %self.gpid, ballot = a.ballot, "may have prepared under this ballot before a restart: renewing it");
            self.role = Role::Primary(Box::new(Primary::new(a.ballot, &a, PrimaryStage::Renewing)));
            self.ask_meta(a.ballot, ConfigRequest::Renew);
            return;
        }
        self.take_over(&a);
    }

    /// Becomes primary at `a.ballot`: the promise is persisted before anything is sent.
    /// Its uncommitted entries keep their ballots (they are prepared again under the new
    /// one): rewriting them would let a crash mid-rewrite cut durable entries off the
    /// log, as replay lets a rewritten entry replace the ones after it.
    fn take_over(&mut self, a: &Assignment) {
        let ballot = a.ballot;
        let me = self.me.clone();
        for (_, (_, reply, _)) in std::mem::take(&mut self.reorder) {
            self.reply(
                reply,
                Reply::Prepare(PrepareReply::Refused(Refusal::WrongPrimary)),
            );
        }
        for ack in std::mem::take(&mut self.acks) {
            self.reply(
                ack.reply,
                Reply::Prepare(PrepareReply::Refused(Refusal::StaleBallot(ballot))),
            );
        }
        let records = vec![self.promise(ballot, &me)];
        let persist = self.persist(records);
        let mut p = Primary::new(ballot, a, PrimaryStage::Promising(persist));
        p.target = self.log.last();
        for s in &a.secondaries {
            p.peers.insert(s.clone(), Peer::new(self.committed, false));
        }
        for d in self.applied + 1..=self.log.last() {
            if let Some(e) = self.log.get(d) {
                for r in &e.requests {
                    p.requests.insert((r.client, r.seq), d);
                }
            }
        }
        tracing::info!(gpid = %self.gpid, ballot, committed = self.committed, last = p.target, "taking over as primary");
        self.role = Role::Primary(Box::new(p));
    }

    /// The configuration (at `ballot`, not older than the primary's) with this node
    /// still primary: its secondaries become the peers that count (learners are kept);
    /// a new ballot is promised before anything is sent under it.
    fn adopt_config(&mut self, p: &mut Primary, ballot: i64, secondaries: Vec<NodeId>) {
        if ballot < p.ballot {
            return;
        }
        for s in &secondaries {
            match p.peers.get_mut(s) {
                Some(peer) => peer.learner = false,
                None => {
                    p.peers.insert(s.clone(), Peer::new(self.committed, false));
                }
            }
        }
        p.peers
            .retain(|n, peer| peer.learner || secondaries.contains(n));
        p.secondaries = secondaries;
        if ballot > p.ballot {
            p.ballot = ballot;
            let me = self.me.clone();
            let record = self.promise(ballot, &me);
            self.persist(vec![record]);
        }
        self.commit_primary(p);
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
            self.apply_committed();
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

    /// Sends what each peer lacks, and the commit point to peers that lag behind it.
    fn pump(&mut self, p: &mut Primary) {
        let sending = matches!(
            p.stage,
            PrimaryStage::Reconciling
                | PrimaryStage::Serving
                | PrimaryStage::Handover(..)
                | PrimaryStage::Asking(_)
        );
        if !sending || self.hard_durable < p.ballot {
            return;
        }
        let last = self.log.last();
        let per = self.cfg.max_entries_per_prepare as u64;
        let mut sends = Vec::new();
        for (node, peer) in p.peers.iter_mut() {
            if self.now < peer.retry_at || peer.next < self.log.first() {
                continue;
            }
            while peer.inflight < MAX_INFLIGHT && peer.next <= last {
                let to = last.min(peer.next + per - 1);
                sends.push((node.clone(), peer.next, to));
                peer.next = to + 1;
                peer.inflight += 1;
            }
            let behind = peer.committed_sent < self.committed
                || (peer.learner && !peer.ready)
                || !peer.confirmed
                || self.now >= peer.sent_at + self.cfg.heartbeat_ms;
            if peer.inflight == 0 && behind {
                sends.push((node.clone(), peer.next, peer.next - 1));
                peer.inflight = 1;
            }
            if sends.last().is_some_and(|(n, _, _)| n == node) {
                peer.sent_at = self.now;
                peer.committed_sent = self.committed;
                peer.waiting_since.get_or_insert(self.now);
            }
        }
        for (node, from, to) in sends {
            let prepare = Prepare {
                ballot: p.ballot,
                from: self.me.clone(),
                prev_decree: from - 1,
                prev_ballot: self.log.ballot_at(from - 1),
                entries: self.log.range(from, to),
                committed: self.committed,
                last_prepared: last,
            };
            self.emit(Effect::Send(node, prepare));
        }
    }

    pub(super) fn on_prepare_reply(&mut self, from: &str, reply: Option<PrepareReply>) {
        let now = self.now;
        let resend = self.cfg.resend_ms;
        let me = self.me.clone();
        self.with_primary(|c, p| {
            let Some(peer) = p.peers.get_mut(from) else {
                return;
            };
            match reply {
                Some(PrepareReply::Ack {
                    ballot,
                    prepared,
                    ready,
                }) => {
                    if ballot < p.tenure || ballot > p.ballot {
                        return;
                    }
                    let progress = prepared > peer.acked || ready != peer.ready;
                    peer.acked = peer.acked.max(prepared);
                    peer.floor = peer.floor.max(prepared);
                    peer.inflight = peer.inflight.saturating_sub(1);
                    peer.ready = ready;
                    peer.confirmed = true;
                    if peer.acked + 1 >= peer.next {
                        peer.waiting_since = None;
                    } else if progress {
                        peer.waiting_since = Some(now);
                    }
                }
                Some(PrepareReply::Refused(Refusal::StaleBallot(b))) if b > p.ballot => {
                    p.resign(format!("{from} has seen ballot {b}"), Role::Inactive);
                    return;
                }
                Some(PrepareReply::Refused(Refusal::PrimaryBehind(committed))) => {
                    tracing::error!(gpid = %c.gpid, peer = from, committed, "this primary lacks committed decrees");
                    c.data = DataState::Broken(format!(
                        "{me} lacks decrees {from} committed (up to {committed})"
                    ));
                    p.resign("it lacks committed decrees", Role::Inactive);
                    return;
                }
                Some(PrepareReply::Refused(Refusal::Mismatch { committed })) => {
                    peer.floor = committed;
                    peer.acked = peer.acked.max(committed);
                    peer.rewind(now);
                }
                Some(PrepareReply::Refused(Refusal::NotReady)) => {
                    peer.ready = false;
                    peer.waiting_since = Some(now);
                    peer.rewind(now + resend);
                }
                Some(PrepareReply::Refused(_)) | None => peer.rewind(now + resend.min(100)),
            }
            c.commit_primary(p);
            c.pump(p);
            c.check_ready(p);
            c.maybe_upgrade(p);
            c.maybe_handover(p);
        });
    }

    pub(super) fn primary_tick(&mut self) {
        let now = self.now;
        let cfg = self.cfg.clone();
        self.with_primary(|c, p| {
            let first = c.log.first();
            let mut failing = Vec::new();
            for (node, peer) in p.peers.iter_mut() {
                if peer.inflight > 0 && now >= peer.sent_at + cfg.resend_ms {
                    peer.rewind(now);
                }
                let stalled = peer
                    .waiting_since
                    .is_some_and(|t| now >= t + cfg.prepare_timeout_ms);
                if stalled || peer.next < first {
                    failing.push((node.clone(), peer.learner));
                }
            }
            for (node, learner) in failing {
                if learner {
                    tracing::warn!(gpid = %c.gpid, learner = node, "learner stopped following: given up");
                    p.peers.remove(&node);
                } else if c.meta_pending.is_none() && p.secondaries.contains(&node) {
                    tracing::warn!(gpid = %c.gpid, secondary = node, "secondary does not answer: removing it");
                    c.ask_meta(p.ballot, ConfigRequest::Remove(node));
                }
            }
            if let PrimaryStage::Handover(_, since) = p.stage
                && now >= since + cfg.prepare_timeout_ms
            {
                tracing::warn!(gpid = %c.gpid, "handover target did not catch up: serving again");
                p.proposal = None;
                p.stage = PrimaryStage::Serving;
            }
            c.expire_writes(p);
            c.cut_entries(p);
            c.pump(p);
            c.maybe_upgrade(p);
            c.maybe_handover(p);
        });
    }

    /// Writes not applied in time: queued ones failed (never logged), logged ones have
    /// an unknown outcome.
    fn expire_writes(&mut self, p: &mut Primary) {
        let deadline = self.now.saturating_sub(self.cfg.commit_timeout_ms);
        let gpid = self.gpid;
        while p.queued.front().is_some_and(|q| q.at < deadline) {
            let Some(q) = p.queued.pop_front() else { break };
            for r in q.replies {
                let err = Error::Unavailable(format!(
                    "{gpid}: the primary could not take the write in time; it was not applied"
                ));
                self.reply(r, Reply::Write(Err(err)));
            }
        }
        let mut expired = Vec::new();
        for (decree, replies) in p.waiting.iter_mut() {
            replies.retain(|(r, since)| {
                let keep = *since >= deadline;
                if !keep {
                    expired.push((*r, *decree));
                }
                keep
            });
        }
        p.waiting.retain(|_, r| !r.is_empty());
        for (r, decree) in expired {
            let err = Error::OutcomeUnknown(format!(
                "{gpid}: the write (decree {decree}) was not committed in time; it may still be"
            ));
            self.reply(r, Reply::Write(Err(err)));
        }
    }

    pub(super) fn on_write(&mut self, write: Write, reply: ReplyId) {
        if !matches!(self.role, Role::Primary(_)) {
            let err = Error::NotPrimary(format!("this node is not the primary of {}", self.gpid));
            self.reply(reply, Reply::Write(Err(err)));
            return;
        }
        let now = self.now;
        self.with_primary(|c, p| {
            if let Some(id) = &write.request {
                if let Some(decree) = c.sessions.lookup(id) {
                    if decree == 0 {
                        let err = Error::InvalidInput(format!(
                            "write {} of client {} was already answered",
                            id.seq, id.client
                        ));
                        c.reply(reply, Reply::Write(Err(err)));
                    } else if decree <= c.store_applied {
                        c.reply(reply, Reply::Write(Ok(decree)));
                    } else {
                        p.waiting.entry(decree).or_default().push((reply, now));
                    }
                    return;
                }
                if let Some(decree) = p.requests.get(&(id.client, id.seq)) {
                    p.waiting.entry(*decree).or_default().push((reply, now));
                    return;
                }
                let same = |q: &&mut Queued| {
                    q.write
                        .request
                        .as_ref()
                        .is_some_and(|r| r.client == id.client && r.seq == id.seq)
                };
                if let Some(q) = p.queued.iter_mut().find(same) {
                    q.replies.push(reply);
                    return;
                }
            }
            p.queued.push_back(Queued {
                write,
                replies: vec![reply],
                at: now,
            });
        });
    }

    pub(super) fn on_flush(&mut self) {
        self.with_primary(|c, p| {
            c.cut_entries(p);
            c.pump(p);
        });
    }

    /// Cuts queued writes into entries, while serving and within the window.
    fn cut_entries(&mut self, p: &mut Primary) {
        if p.stage != PrimaryStage::Serving || p.queued.is_empty() {
            return;
        }
        if 1 + p.secondaries.len() < p.min_members() {
            let err = Error::Refused(format!(
                "partition {} has {} replica(s); writes need {}",
                self.gpid,
                1 + p.secondaries.len(),
                p.min_members()
            ));
            for q in std::mem::take(&mut p.queued) {
                for r in q.replies {
                    self.reply(r, Reply::Write(Err(err.clone())));
                }
            }
            return;
        }
        while !p.queued.is_empty() && self.log.last() < self.committed + self.cfg.window {
            let mut mutations = Vec::new();
            let mut requests = Vec::new();
            let mut replies = Vec::new();
            let mut writes = 0;
            while writes < self.cfg.max_batch {
                let Some(q) = p.queued.pop_front() else { break };
                mutations.extend(q.write.mutations);
                requests.extend(q.write.request);
                replies.extend(q.replies.into_iter().map(|r| (r, q.at)));
                writes += 1;
            }
            let decree = self.log.last() + 1;
            let entry = std::sync::Arc::new(crate::pb::LogEntry {
                ballot: p.ballot,
                decree,
                mutations,
                requests,
            });
            for r in &entry.requests {
                p.requests.insert((r.client, r.seq), decree);
            }
            let id = self.next_persist + 1;
            self.log.append(entry.clone(), id);
            self.persist(vec![LogRecord::Entry(entry)]);
            p.waiting.insert(decree, replies);
        }
    }

    pub(super) fn primary_applied(&mut self) {
        self.with_primary(|c, p| {
            let applied = c.store_applied;
            let rest = p.waiting.split_off(&(applied + 1));
            for (decree, replies) in std::mem::replace(&mut p.waiting, rest) {
                for (r, _) in replies {
                    c.reply(r, Reply::Write(Ok(decree)));
                }
            }
            let emitted = c.applied;
            p.requests.retain(|_, d| *d > emitted);
            c.check_ready(p);
            c.maybe_handover(p);
        });
    }

    pub(super) fn on_learn(&mut self, req: LearnRequest, reply: ReplyId) {
        let not_primary = || {
            Error::NotPrimary(format!(
                "this node is not the serving primary of the partition learned at ballot {}",
                req.ballot
            ))
        };
        let Role::Primary(p) = &self.role else {
            self.reply(reply, Reply::Learn(Err(not_primary())));
            return;
        };
        if p.stage != PrimaryStage::Serving || req.ballot > p.ballot {
            self.reply(reply, Reply::Learn(Err(not_primary())));
            return;
        }
        if req.learner == self.me || p.secondaries.contains(&req.learner) {
            let err = Error::InvalidInput(format!("{} is already a member", req.learner));
            self.reply(reply, Reply::Learn(Err(err)));
            return;
        }
        let incremental = req
            .committed
            .filter(|c| *c >= self.log.base() && *c <= self.log.last());
        let applied = self.applied;
        self.with_primary(|c, p| match incremental {
            Some(committed) => {
                tracing::info!(gpid = %c.gpid, learner = req.learner, committed, "learner catches up from the log");
                p.peers
                    .insert(req.learner.clone(), Peer::new(committed, true));
                c.reply(reply, Reply::Learn(Ok(LearnPlan::Incremental)));
                c.pump(p);
            }
            None => {
                tracing::info!(gpid = %c.gpid, learner = req.learner, decree = applied, "learner gets a snapshot");
                p.peers.insert(req.learner.clone(), Peer::new(applied, true));
                c.emit(Effect::StreamSnapshot(reply, applied));
            }
        });
    }

    /// Asks for a learner's upgrade once it is loaded and holds every committed entry.
    fn maybe_upgrade(&mut self, p: &mut Primary) {
        if p.stage != PrimaryStage::Serving
            || self.meta_pending.is_some()
            || p.proposal.is_some()
            || self.now < self.meta_backoff_until
        {
            return;
        }
        let caught_up = p
            .peers
            .iter()
            .find(|(_, peer)| peer.learner && peer.ready && peer.acked >= self.committed)
            .map(|(n, _)| n.clone());
        if let Some(learner) = caught_up {
            p.stage = PrimaryStage::Handover(ConfigRequest::UpgradeLearner(learner), self.now);
            self.maybe_handover(p);
        }
    }

    /// Carries a handover on: starts a proposal when serving; asks the meta server once
    /// every entry is committed and the target holds them all.
    fn maybe_handover(&mut self, p: &mut Primary) {
        if p.stage == PrimaryStage::Serving
            && self.meta_pending.is_none()
            && self.now >= self.meta_backoff_until
        {
            let request = match p.proposal.clone() {
                Some(Proposal::MovePrimary(to)) if p.secondaries.contains(&to) => {
                    Some(ConfigRequest::MovePrimary(to))
                }
                Some(Proposal::Downgrade) => Some(ConfigRequest::Downgrade),
                Some(_) => {
                    p.proposal = None;
                    None
                }
                None => None,
            };
            if let Some(request) = request {
                p.stage = PrimaryStage::Handover(request, self.now);
            }
        }
        let PrimaryStage::Handover(request, _) = &p.stage else {
            return;
        };
        let last = self.log.last();
        let target_holds = match request {
            ConfigRequest::MovePrimary(n) | ConfigRequest::UpgradeLearner(n) => {
                p.peers.get(n).is_some_and(|peer| peer.acked >= last)
            }
            _ => true,
        };
        if self.committed >= last && target_holds && self.meta_pending.is_none() {
            let request = request.clone();
            p.stage = PrimaryStage::Asking(request.clone());
            self.ask_meta(p.ballot, request);
        }
    }

    pub(super) fn on_meta_answer(&mut self, answer: Result<(bool, ConfigView), Error>) {
        let Some((ballot, request, _)) = self.meta_pending.take() else {
            return;
        };
        let (applied, view) = match answer {
            Ok(answer) => answer,
            Err(e) if !e.is_retryable() && !matches!(e, Error::Timeout(_) | Error::Internal(_)) => {
                // A definite no (the action ended, the level forbids, the store failed):
                // nothing changed, so the primary carries on as it was, and asks again
                // (if the change is still wanted) only after the retry interval.
                tracing::info!(gpid = %self.gpid, ?request, "configuration change refused: {e}");
                let transient = matches!(e, Error::Storage(_));
                self.meta_backoff_until = self.now + self.cfg.meta_retry_ms;
                self.with_primary(|c, p| {
                    match &request {
                        ConfigRequest::UpgradeLearner(l) if !transient => {
                            p.peers.remove(l);
                        }
                        ConfigRequest::MovePrimary(_) | ConfigRequest::Downgrade if !transient => {
                            p.proposal = None;
                        }
                        _ => {}
                    }
                    if matches!(
                        p.stage,
                        PrimaryStage::Asking(_) | PrimaryStage::Handover(..)
                    ) {
                        p.stage = PrimaryStage::Serving;
                    }
                    if p.stage == PrimaryStage::Renewing {
                        c.meta_pending = Some((ballot, request.clone(), c.now));
                    }
                    c.cut_entries(p);
                    c.pump(p);
                });
                return;
            }
            Err(e) => {
                tracing::debug!(gpid = %self.gpid, ?request, "configuration change got no answer: {e}");
                // Asked again after the retry interval: until the answer is known the
                // primary does not serve if the change could hand the partition over.
                self.meta_pending = Some((ballot, request, self.now));
                return;
            }
        };
        let me = self.me.clone();
        if view.primary.as_deref() != Some(me.as_str()) {
            let then = match &view.primary {
                Some(primary) if view.secondaries.contains(&me) => Role::Secondary(primary.clone()),
                _ => Role::Inactive,
            };
            self.with_primary(|_, p| p.resign("the configuration moved the primary away", then));
            return;
        }
        if request == ConfigRequest::Renew {
            let Role::Primary(p) = &self.role else {
                return;
            };
            if view.ballot > p.ballot {
                let a = Assignment {
                    ballot: view.ballot,
                    role: AssignedRole::Primary,
                    primary: view.primary.clone(),
                    secondaries: view.secondaries.clone(),
                    max_replicas: p.max_replicas,
                    proposal: None,
                    create_empty: false,
                };
                self.take_over(&a);
            } else if !applied {
                self.meta_pending = Some((ballot, request, self.now));
            }
            return;
        }
        self.with_primary(|c, p| {
            if let ConfigRequest::UpgradeLearner(l) = &request
                && !view.secondaries.contains(l)
            {
                p.peers.remove(l);
            }
            if matches!(
                request,
                ConfigRequest::MovePrimary(_) | ConfigRequest::Downgrade
            ) {
                p.proposal = None;
            }
            c.adopt_config(p, view.ballot, view.secondaries.clone());
            if matches!(
                p.stage,
                PrimaryStage::Asking(_) | PrimaryStage::Handover(..)
            ) {
                p.stage = PrimaryStage::Serving;
            }
            c.cut_entries(p);
            c.pump(p);
        });
    }
}
