//! The primary's replication loop: prepares pipelined to each peer (resent from what it
//! acknowledged when lost), their replies, and the tick that notices a peer that stopped
//! answering or a write that could not be applied in time.

use super::*;
use crate::replica::core::{Core, DataState, Role};

impl Core {
    /// Sends what each peer lacks, and the commit point to peers that lag behind it.
    pub(super) fn pump(&mut self, p: &mut Primary) {
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
            let behind = (peer.committed_sent < self.committed
                && self.now >= peer.sent_at + self.cfg.commit_notify_ms)
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

    pub(in crate::replica::core) fn on_prepare_reply(
        &mut self,
        from: &str,
        reply: Option<PrepareReply>,
    ) {
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
                    // A learner still loading is asked again soon: the first prepare it
                    // accepts tells the primary it is ready, and its upgrade waits on that
                    // (at `resend`, a scale-out waited a second per copy).
                    peer.ready = false;
                    peer.waiting_since = Some(now);
                    peer.rewind(now + resend.min(100));
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

    pub(in crate::replica::core) fn primary_tick(&mut self) {
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

    /// Writes not committed in time: queued ones failed (never logged), logged ones have
    /// an unknown outcome.
    pub(super) fn expire_writes(&mut self, p: &mut Primary) {
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
}
