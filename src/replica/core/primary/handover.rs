//! Configuration changes the primary carries out: teaching a learner (from the log or a
//! snapshot), upgrading it once it holds everything, moving the primary or stepping down
//! (after it stops serving and the target holds every entry), and the meta server's
//! answers to those requests.

use super::*;
use crate::replica::core::{Core, Role};

impl Core {
    pub(in crate::replica::core) fn on_learn(&mut self, req: LearnRequest, reply: ReplyId) {
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
        // Where the learner's log surely matches this one: its commit point, or its last
        // entry if this primary holds the same one (same decree and ballot).
        let matched = req
            .last
            .filter(|(d, b)| {
                *b != 0
                    && *d >= self.log.base()
                    && *d <= self.log.last()
                    && self.log.ballot_at(*d) == *b
            })
            .map(|(d, _)| d);
        let incremental = req
            .committed
            .map(|c| c.max(matched.unwrap_or(0)))
            .filter(|c| *c >= self.log.base() && *c <= self.log.last());
        // Entries are applied in batches: a snapshot is taken at the commit point.
        self.apply_committed();
        let applied = self.applied;
        self.with_primary(|c, p| {
            // Back as a learner: it is tracked as a peer from here on.
            p.departed.remove(&req.learner);
            match incremental {
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
        }
        });
    }

    /// Asks for a learner's upgrade once it is loaded and holds every committed entry.
    pub(super) fn maybe_upgrade(&mut self, p: &mut Primary) {
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
    pub(super) fn maybe_handover(&mut self, p: &mut Primary) {
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

    pub(in crate::replica::core) fn on_meta_answer(
        &mut self,
        answer: Result<(bool, ConfigView), Error>,
    ) {
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
