//! Client writes on the primary: queued, deduplicated by request id, cut into entries
//! within the window, and answered once committed (the entry is durable on every member;
//! its apply runs in the background, and reads wait for it).

use super::*;
use crate::replica::core::{Core, Role};

impl Core {
    pub(in crate::replica::core) fn on_write(&mut self, write: Write, reply: ReplyId) {
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
                    } else if decree <= c.committed {
                        c.reply(reply, Reply::Write(Ok(decree)));
                    } else {
                        p.waiting.entry(decree).or_default().push((reply, now));
                    }
                    return;
                }
                if let Some(&decree) = p.requests.get(&(id.client, id.seq)) {
                    if decree <= c.committed {
                        c.reply(reply, Reply::Write(Ok(decree)));
                    } else {
                        p.waiting.entry(decree).or_default().push((reply, now));
                    }
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

    pub(in crate::replica::core) fn on_flush(&mut self) {
        self.with_primary(|c, p| {
            c.cut_entries(p);
            c.pump(p);
        });
    }

    /// Cuts queued writes into entries, while serving, within the window and within the
    /// apply lag.
    pub(super) fn cut_entries(&mut self, p: &mut Primary) {
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
        while !p.queued.is_empty()
            && self.log.last() < self.committed + self.cfg.window
            && self.log.last() < self.store_applied + self.cfg.max_apply_lag
        {
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

    /// Answers the writers whose entries are committed.
    pub(super) fn answer_committed(&mut self, p: &mut Primary) {
        let rest = p.waiting.split_off(&(self.committed + 1));
        for (decree, replies) in std::mem::replace(&mut p.waiting, rest) {
            for (r, _) in replies {
                self.reply(r, Reply::Write(Ok(decree)));
            }
        }
    }

    pub(in crate::replica::core) fn primary_applied(&mut self) {
        self.with_primary(|c, p| {
            let emitted = c.applied;
            p.requests.retain(|_, d| *d > emitted);
            c.check_ready(p);
            c.maybe_handover(p);
        });
    }
}
