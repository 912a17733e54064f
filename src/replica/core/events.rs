//! What happens to a replica outside the replication protocol: its disk reports a record
//! persisted or failed, it is killed, assigned or unassigned by the meta server, time
//! passes, applies finish; and the apply and compaction that follow a commit.

use super::*;

impl Core {
    pub(super) fn on_persisted(&mut self, id: u64) {
        self.log.persisted(id);
        let mut durable = self.hard_durable;
        self.hard_pending.retain(|(pid, ballot)| {
            if *pid <= id {
                durable = durable.max(*ballot);
            }
            *pid > id
        });
        self.hard_durable = durable;
        self.flush_acks();
        match &self.role {
            Role::Primary(_) => self.primary_progress(),
            _ => self.follower_commit(),
        }
    }

    /// A disk write, sync or store commit failed: nothing on this disk can be trusted
    /// any more. The replica steps down and reports it; it never acknowledges again.
    pub(super) fn on_disk_failed(&mut self, why: String) {
        tracing::error!(gpid = %self.gpid, "replica disk failed, stepping down: {why}");
        self.data = DataState::Broken(why.clone());
        self.stop_role(Error::OutcomeUnknown(format!(
            "{}: the replica's disk failed: {why}",
            self.gpid
        )));
        for ack in std::mem::take(&mut self.acks) {
            self.reply(
                ack.reply,
                Reply::Prepare(PrepareReply::Refused(Refusal::Failed(why.clone()))),
            );
        }
    }

    pub(super) fn on_kill(&mut self) {
        let ballot = self
            .hard
            .ballot
            .max(self.view.as_ref().map_or(0, |v| v.ballot));
        self.stop_role(Error::OutcomeUnknown(format!(
            "{}: the replica was killed",
            self.gpid
        )));
        self.data = DataState::Lost(ballot);
        self.forget_progress(0);
        self.reorder.clear();
        self.emit(Effect::Destroy(ballot));
    }

    /// Leaves whatever role the replica has: a primary answers its waiting writers
    /// (`logged` for writes already in the log, whose outcome is unknown).
    /// Forgets everything the replica held: its log restarts at `log_start`, nothing is
    /// committed or applied, no client session is remembered.
    pub(super) fn forget_progress(&mut self, log_start: u64) {
        self.log.reset(log_start);
        self.committed = 0;
        self.commit_hint = 0;
        self.applied = 0;
        self.store_applied = 0;
        self.store_durable = 0;
        self.sessions = Sessions::default();
    }

    pub(super) fn stop_role(&mut self, logged: Error) {
        if let Role::Primary(p) = std::mem::replace(&mut self.role, Role::Inactive) {
            let gpid = self.gpid;
            for (reply, err) in p.abandon(gpid, logged) {
                self.reply(reply, Reply::Write(Err(err)));
            }
        }
        self.meta_pending = None;
    }

    pub(super) fn on_unassign(&mut self) {
        if !matches!(self.role, Role::Inactive) {
            tracing::info!(gpid = %self.gpid, "no longer assigned: inactive");
        }
        self.stop_role(Error::OutcomeUnknown(format!(
            "{}: this node is no longer assigned the partition",
            self.gpid
        )));
        self.view = None;
    }

    pub(super) fn on_assign(&mut self, a: Assignment) {
        let known = self
            .view
            .as_ref()
            .map_or(0, |v| v.ballot)
            .max(self.hard.ballot);
        if a.ballot < known {
            return;
        }
        if a.create_empty
            && let DataState::Lost(lost_at) = self.data
            && a.ballot > lost_at
        {
            tracing::info!(gpid = %self.gpid, ballot = a.ballot, "created empty");
            self.data = DataState::Valid;
            self.emit(Effect::CreateEmpty);
        }
        self.view = Some(a.clone());
        match a.role {
            AssignedRole::Primary => self.assigned_primary(a),
            AssignedRole::Secondary => {
                let primary = a.primary.clone().unwrap_or_default();
                if let Role::Primary(p) = &self.role
                    && p.ballot < a.ballot
                {
                    self.step_down("assigned as a secondary");
                }
                if !matches!(self.role, Role::Primary(_)) {
                    self.role = Role::Secondary(primary);
                }
            }
            AssignedRole::Learner => {
                let primary = a.primary.clone().unwrap_or_default();
                if let Role::Primary(p) = &self.role
                    && p.ballot < a.ballot
                {
                    self.step_down("assigned as a learner");
                }
                let same = matches!(&self.role, Role::Learner(p, _) if *p == primary);
                if !same && !matches!(self.role, Role::Primary(_)) {
                    self.role = Role::Learner(primary, Stage::Idle(0));
                    self.learner_tick();
                }
            }
        }
    }

    pub(super) fn on_tick(&mut self) {
        match &self.role {
            Role::Primary(_) => self.primary_tick(),
            Role::Learner(..) => self.learner_tick(),
            _ => {}
        }
        self.follower_tick();
        // What is left unapplied (fewer than a batch).
        self.apply_committed();
        self.settle_when_quiet();
        if let Some((ballot, request, sent)) = self.meta_pending.clone()
            && self.now >= sent + self.cfg.meta_retry_ms
        {
            self.meta_pending = Some((ballot, request.clone(), self.now));
            self.emit(Effect::AskMeta(ballot, request));
        }
    }

    pub(super) fn ask_meta(&mut self, ballot: i64, request: ConfigRequest) {
        self.meta_pending = Some((ballot, request.clone(), self.now));
        self.emit(Effect::AskMeta(ballot, request));
    }

    pub(super) fn on_applied(&mut self, upto: u64, durable: bool) {
        // An apply finishing after the data was reset (a snapshot begun, the replica
        // killed) is about data that is gone.
        if self.data != DataState::Valid {
            return;
        }
        let upto = upto.min(self.applied);
        self.store_applied = self.store_applied.max(upto);
        if durable {
            self.store_durable = self.store_durable.max(upto);
        }
        if let Role::Primary(_) = self.role {
            self.primary_applied();
        }
        self.maybe_compact();
    }

    /// Emits applies for every committed entry not yet applied (valid data only).
    pub(super) fn apply_committed(&mut self) {
        if self.data != DataState::Valid || self.applied >= self.committed {
            return;
        }
        let entries = self.log.range(self.applied + 1, self.committed);
        let Some(last) = entries.last().map(|e| e.decree) else {
            return;
        };
        for e in &entries {
            self.sessions.apply(e.decree, &e.requests);
        }
        let every = self.cfg.durable_every;
        let durable = last / every > self.applied / every;
        self.applied = last;
        self.emit(Effect::Apply { entries, durable });
    }

    /// Once neither the log nor the commit point has moved for `settle_ms` and all is
    /// applied, makes the store durable (if it is not), compacts the log as far as peers
    /// allow and lets the store tidy itself, once per quiet spell.
    fn settle_when_quiet(&mut self) {
        let seen = (self.log.last(), self.committed);
        if seen != (self.quiet.0, self.quiet.1) {
            self.quiet = (seen.0, seen.1, self.now);
            self.settled = false;
            return;
        }
        if self.settled
            || self.now < self.quiet.2 + self.cfg.settle_ms
            || self.data != DataState::Valid
            || self.applied < self.committed
        {
            return;
        }
        self.settled = true;
        if self.store_durable < self.applied {
            // The durable apply's answer compacts (`on_applied`).
            self.emit(Effect::Apply {
                entries: Vec::new(),
                durable: true,
            });
        } else {
            self.maybe_compact();
        }
        self.emit(Effect::Tidy);
    }

    /// Drops log entries the store holds durably and no peer needs (nor a recently
    /// dropped secondary, within bounds), once the log is large or the replica has
    /// settled; asks the store for a durable point first if it lags.
    pub(super) fn maybe_compact(&mut self) {
        let settled = self.settled && self.log.last() == self.quiet.0;
        if self.log.bytes() < self.cfg.compact_bytes && !settled {
            return;
        }
        let (now, bytes) = (self.now, self.log.bytes());
        let floor = match &mut self.role {
            Role::Primary(p) => p
                .peer_floor()
                .min(p.departed_floor(now, bytes, &self.cfg))
                .min(self.store_durable),
            _ => self.store_durable,
        };
        // Settled, the disk may hold entries the memory does not (replayed at open below
        // the store's decree): the log on disk is compacted whatever is dropped here.
        if floor + 1 > self.log.first() || settled {
            self.log.compact(floor + 1);
            self.emit(Effect::Compact(floor + 1));
        } else if self.store_durable < self.applied {
            self.emit(Effect::Apply {
                entries: Vec::new(),
                durable: true,
            });
        }
    }
}
