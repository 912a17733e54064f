//! The primary role taken and kept (rule 1 and the start of rule 4): an assignment at
//! the primary's own ballot, at a newer one, or at one it may have used before a restart
//! (renewed first); the take-over that persists the promise before anything is sent; and
//! a new configuration adopted, its departed members remembered for the log they need.

use super::*;
use crate::replica::core::{Core, DataState, Role};

impl Core {
    /// An assignment naming this replica primary.
    pub(in crate::replica::core) fn assigned_primary(&mut self, a: Assignment) {
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
    pub(super) fn take_over(&mut self, a: &Assignment) {
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
        // The primary it followed, if it is gone from the configuration (it died), may
        // come back: it will hold at least what this replica has committed, less what
        // its store had not made durable.
        let departed = self
            .hard
            .primary
            .clone()
            .filter(|old| *old != me && !a.secondaries.contains(old));
        let records = vec![self.promise(ballot, &me)];
        let persist = self.persist(records);
        let mut p = Primary::new(ballot, a, PrimaryStage::Promising(persist));
        if let Some(old) = departed {
            let floor = self.committed.saturating_sub(2 * self.cfg.durable_every);
            p.departed.insert(old, (floor, self.now));
        }
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
        // A follower applies in batches: reads wait for the store, so it catches up now.
        self.apply_committed();
    }

    /// The configuration (at `ballot`, not older than the primary's) with this node
    /// still primary: its secondaries become the peers that count (learners are kept);
    /// a new ballot is promised before anything is sent under it.
    pub(super) fn adopt_config(&mut self, p: &mut Primary, ballot: i64, secondaries: Vec<NodeId>) {
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
        for (n, peer) in &p.peers {
            if !peer.learner && !secondaries.contains(n) {
                // It comes back with its store's durable point as its commit point,
                // which trails what it was told is committed by up to `durable_every`
                // decrees (and the apply in flight): keep two such spans more.
                let told = peer.acked.min(peer.committed_sent);
                let floor = told.saturating_sub(2 * self.cfg.durable_every);
                p.departed.insert(n.clone(), (floor, self.now));
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
}
