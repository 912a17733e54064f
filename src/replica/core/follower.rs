//! A secondary's and a learner's rules: accept a primary's prepares (ballot and sender
//! checked, logs matched, durable before acknowledged, applied once committed and
//! durable), keep prepares that arrive ahead of a missing one for a while, and — as a
//! learner — ask the primary to be taught, load its snapshot and seal it.

use super::{Core, DataState, PendingAck, Role, Stage};
use crate::error::Error;
use crate::replica::core::sessions::Sessions;
use crate::replica::core::types::*;

/// What became of an accepted prepare.
enum Accepted {
    /// Logged (maybe not durable yet): answered once durable.
    Logged,
    /// Ahead of a missing prepare: kept until that one arrives.
    Held,
}

impl Core {
    pub(super) fn on_prepare(&mut self, p: Prepare, reply: ReplyId) {
        match self.accept(p, reply) {
            Ok(Accepted::Logged) => self.release_held(),
            Ok(Accepted::Held) => {}
            Err(refusal) => self.reply(reply, Reply::Prepare(PrepareReply::Refused(refusal))),
        }
    }

    fn accept(&mut self, p: Prepare, reply: ReplyId) -> Result<Accepted, Refusal> {
        match &self.data {
            DataState::Valid => {}
            DataState::Broken(why) => return Err(Refusal::Failed(why.clone())),
            DataState::Learning | DataState::Lost(_) => return Err(Refusal::NotReady),
        }
        if let Role::Learner(_, stage) = &self.role
            && *stage != Stage::Ready
        {
            return Err(Refusal::NotReady);
        }
        if p.ballot < self.hard.ballot {
            return Err(Refusal::StaleBallot(self.hard.ballot));
        }
        if p.from == self.me
            || (p.ballot == self.hard.ballot && self.hard.primary.as_deref() != Some(&p.from))
        {
            return Err(Refusal::WrongPrimary);
        }
        if p.last_prepared < self.committed {
            return Err(Refusal::PrimaryBehind(self.committed));
        }
        let consecutive = p
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.decree == p.prev_decree + 1 + i as u64 && e.ballot <= p.ballot);
        if !consecutive {
            return Err(Refusal::Mismatch {
                committed: self.committed,
            });
        }
        let mut records = Vec::new();
        if p.ballot > self.hard.ballot {
            self.adopt_ballot(&p);
            records.push(self.promise(p.ballot, &p.from));
        }
        let pd = p.prev_decree;
        if pd > self.log.last() {
            if self.reorder.len() < self.cfg.reorder_limit {
                let now = self.now;
                if let Some((_, old, _)) = self.reorder.insert(pd, (p, reply, now)) {
                    let refusal = Refusal::Mismatch {
                        committed: self.committed,
                    };
                    self.reply(old, Reply::Prepare(PrepareReply::Refused(refusal)));
                }
                if !records.is_empty() {
                    self.persist(records);
                }
                return Ok(Accepted::Held);
            }
            if !records.is_empty() {
                self.persist(records);
            }
            return Err(Refusal::Mismatch {
                committed: self.committed,
            });
        }
        if pd > self.committed && (p.prev_ballot == 0 || self.log.ballot_at(pd) != p.prev_ballot) {
            if !records.is_empty() {
                self.persist(records);
            }
            return Err(Refusal::Mismatch {
                committed: self.committed,
            });
        }
        let id = self.next_persist + 1;
        for e in &p.entries {
            if e.decree <= self.committed {
                continue;
            }
            if self
                .log
                .get(e.decree)
                .is_some_and(|mine| mine.ballot == e.ballot)
            {
                continue;
            }
            if e.decree <= self.log.last() {
                self.log.truncate_from(e.decree);
            }
            self.log.append(e.clone(), id);
            records.push(LogRecord::Entry(e.clone()));
        }
        if !records.is_empty() {
            self.persist(records);
        }
        let matched = pd + p.entries.len() as u64;
        self.heard_at = self.now;
        self.commit_hint = self.commit_hint.max(p.committed.min(matched));
        self.acks.push(PendingAck {
            reply,
            ballot: p.ballot,
            upto: matched,
        });
        self.follower_commit();
        self.flush_acks();
        Ok(Accepted::Logged)
    }

    /// A prepare at a higher ballot: this replica follows its sender from now on.
    fn adopt_ballot(&mut self, p: &Prepare) {
        if let Role::Primary(_) = self.role {
            self.step_down("a higher ballot's primary prepared to it");
        }
        match &mut self.role {
            Role::Learner(primary, _) => *primary = p.from.clone(),
            Role::Primary(_) => {}
            role => *role = Role::Secondary(p.from.clone()),
        }
        // Answers owed under an older ballot would vouch for entries this ballot's
        // primary may replace.
        for ack in std::mem::take(&mut self.acks) {
            self.reply(
                ack.reply,
                Reply::Prepare(PrepareReply::Refused(Refusal::StaleBallot(p.ballot))),
            );
        }
        for (_, (_, reply, _)) in std::mem::take(&mut self.reorder) {
            self.reply(
                reply,
                Reply::Prepare(PrepareReply::Refused(Refusal::StaleBallot(p.ballot))),
            );
        }
    }

    /// Takes held prepares that now follow what the log holds.
    fn release_held(&mut self) {
        while let Some((&pd, _)) = self.reorder.first_key_value() {
            if pd > self.log.last() {
                return;
            }
            let Some((_, (p, reply, _))) = self.reorder.pop_first() else {
                return;
            };
            match self.accept(p, reply) {
                Ok(_) => {}
                Err(refusal) => self.reply(reply, Reply::Prepare(PrepareReply::Refused(refusal))),
            }
        }
    }

    /// Answers prepares whose entries (and promise) are durable now.
    pub(super) fn flush_acks(&mut self) {
        let durable = self.log.durable();
        let ready = self.data == DataState::Valid;
        let (done, waiting): (Vec<PendingAck>, Vec<PendingAck>) = std::mem::take(&mut self.acks)
            .into_iter()
            .partition(|a| a.upto <= durable && a.ballot <= self.hard_durable);
        self.acks = waiting;
        for a in done {
            let ack = PrepareReply::Ack {
                ballot: a.ballot,
                prepared: a.upto,
                ready,
            };
            self.reply(a.reply, Reply::Prepare(ack));
        }
    }

    /// A follower commits what its primary committed, once durable here, and applies in
    /// batches of `apply_every` entries (its tick applies the rest).
    pub(super) fn follower_commit(&mut self) {
        if matches!(self.role, Role::Primary(_)) {
            return;
        }
        let c = self.commit_hint.min(self.log.durable());
        if c > self.committed {
            self.committed = c;
            if self.committed - self.applied >= self.cfg.apply_every {
                self.apply_committed();
            }
        }
    }

    /// Held prepares that waited too long are refused (the primary sends again).
    pub(super) fn follower_tick(&mut self) {
        let expired: Vec<u64> = self
            .reorder
            .iter()
            .filter(|(_, (_, _, at))| self.now >= at + self.cfg.resend_ms)
            .map(|(pd, _)| *pd)
            .collect();
        for pd in expired {
            if let Some((_, reply, _)) = self.reorder.remove(&pd) {
                let refusal = Refusal::Mismatch {
                    committed: self.committed,
                };
                self.reply(reply, Reply::Prepare(PrepareReply::Refused(refusal)));
            }
        }
    }

    /// A learner asks its primary when it is time, and starts over when stuck.
    pub(super) fn learner_tick(&mut self) {
        let now = self.now;
        let timeout = self.cfg.learn_timeout_ms;
        let Role::Learner(primary, stage) = &mut self.role else {
            return;
        };
        match *stage {
            Stage::Idle(at) if now >= at && !primary.is_empty() => {
                let primary = primary.clone();
                *stage = Stage::Requested(now);
                self.learn_attempt += 1;
                let request = LearnRequest {
                    ballot: self.view.as_ref().map_or(self.hard.ballot, |v| v.ballot),
                    learner: self.me.clone(),
                    committed: (self.data == DataState::Valid).then_some(self.committed),
                    last: (self.data == DataState::Valid)
                        .then(|| (self.log.last(), self.log.ballot_at(self.log.last()))),
                    attempt: self.learn_attempt,
                };
                self.emit(Effect::Learn(primary, request));
            }
            Stage::Requested(since) if now >= since + timeout => *stage = Stage::Idle(now),
            Stage::Loading(_, last) if now >= last + timeout => {
                self.on_snapshot_failed("the snapshot stream stalled")
            }
            Stage::Ready if now >= self.heard_at + self.cfg.follow_timeout_ms => {
                tracing::info!(gpid = %self.gpid, "learner not fed by its primary: asking again");
                *stage = Stage::Idle(now);
            }
            _ => {}
        }
    }

    pub(super) fn on_learn_answer(&mut self, answer: Result<LearnPlan, Error>) {
        let now = self.now;
        let retry = now + self.cfg.learn_retry_ms;
        let Role::Learner(_, stage) = &mut self.role else {
            return;
        };
        if !matches!(stage, Stage::Requested(_)) {
            return;
        }
        match answer {
            Ok(LearnPlan::Incremental) if self.data == DataState::Valid => {
                *stage = Stage::Ready;
                self.heard_at = now;
            }
            Ok(LearnPlan::Incremental) => *stage = Stage::Idle(retry),
            Ok(LearnPlan::Snapshot(decree)) => {
                *stage = Stage::Loading(decree, now);
                self.data = DataState::Learning;
                self.forget_progress(decree);
                self.emit(Effect::ResetData);
            }
            Err(e) => {
                tracing::debug!(gpid = %self.gpid, "learn request failed: {e}");
                *stage = Stage::Idle(retry);
            }
        }
    }

    pub(super) fn on_snapshot_chunk(&mut self, chunk: Chunk) {
        let now = self.now;
        if let Role::Learner(_, Stage::Loading(_, last)) = &mut self.role {
            *last = now;
            self.emit(Effect::LoadChunk(chunk));
        }
    }

    pub(super) fn on_snapshot_end(&mut self, sessions: Sessions) {
        if let Role::Learner(_, stage) = &mut self.role
            && let Stage::Loading(decree, _) = *stage
        {
            *stage = Stage::Sealing(decree);
            self.sessions = sessions.clone();
            self.emit(Effect::Seal(decree, sessions));
        }
    }

    pub(super) fn on_snapshot_failed(&mut self, why: &str) {
        let retry = self.now + self.cfg.learn_retry_ms;
        if let Role::Learner(_, stage) = &mut self.role
            && matches!(stage, Stage::Loading(..) | Stage::Requested(_))
        {
            tracing::warn!(gpid = %self.gpid, "learning failed, will retry: {why}");
            *stage = Stage::Idle(retry);
        }
    }

    pub(super) fn on_sealed(&mut self, decree: u64) {
        let Role::Learner(_, stage) = &mut self.role else {
            return;
        };
        if *stage != Stage::Sealing(decree) {
            return;
        }
        *stage = Stage::Ready;
        self.heard_at = self.now;
        self.data = DataState::Valid;
        self.committed = decree;
        self.commit_hint = decree;
        self.applied = decree;
        self.store_applied = decree;
        self.store_durable = decree;
        tracing::info!(gpid = %self.gpid, decree, "snapshot learned");
    }
}
