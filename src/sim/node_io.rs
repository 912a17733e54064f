//! A simulated replica's I/O: the disk jobs its core asked for, run one batch at a time
//! (stalls and failed syncs included), and their outcomes fed back to the core.

use super::node::Route;
use super::*;
use crate::replica::core::{Chunk, Effect, Input, LearnPlan};

impl Sim {
    /// Starts the replica's next I/O job if none runs.
    pub(super) fn kick_io(&mut self, node: &str, gpid: Gpid) {
        let now = self.now;
        let latency = self.rng.range(1, 6);
        let epoch = match self.nodes.get(node) {
            Some(n) if n.up => n.epoch,
            _ => return,
        };
        let Some(r) = self.replica_mut(node, gpid) else {
            return;
        };
        if r.busy || r.queue.is_empty() {
            return;
        }
        r.busy = true;
        if let Some(Effect::Persist { records, .. }) = r.queue.front() {
            r.disk.unsynced.extend(records.iter().cloned());
        }
        let at = now.max(r.stall_until) + latency;
        self.schedule(at, super::Event::IoDone(node.to_string(), epoch, gpid));
    }

    /// The replica's current I/O job is done.
    pub(super) fn io_done(&mut self, node: &str, epoch: u64, gpid: Gpid) {
        if self
            .nodes
            .get(node)
            .is_none_or(|n| !n.up || n.epoch != epoch)
        {
            return;
        }
        let now = self.now;
        let Some(r) = self.replica_mut(node, gpid) else {
            return;
        };
        if r.stall_until > now {
            let at = r.stall_until;
            self.schedule(at, super::Event::IoDone(node.to_string(), epoch, gpid));
            return;
        }
        let Some(job) = r.queue.pop_front() else {
            r.busy = false;
            return;
        };
        r.busy = false;
        let mut inputs = Vec::new();
        let mut applied = Vec::new();
        let mut snapshot = None;
        match job {
            Effect::Persist { id, .. } => {
                if std::mem::take(&mut r.fail_sync) {
                    inputs.push(Input::PersistFailed("injected: fsync failed (EIO)".into()));
                } else {
                    r.disk.sync();
                    inputs.push(Input::Persisted(id));
                }
            }
            Effect::Apply { entries, durable } => {
                for e in &entries {
                    r.disk.volatile.apply(e);
                    applied.push(e.clone());
                }
                if durable {
                    r.disk.durable = r.disk.volatile.clone();
                }
                let upto = r.disk.volatile.applied;
                inputs.push(Input::Applied { upto, durable });
            }
            Effect::Compact(below) => r.disk.compact(below),
            // A rewrite of the store changes none of what it holds.
            Effect::Tidy => {}
            Effect::StreamSnapshot(reply, decree) => {
                let store = &r.disk.volatile;
                snapshot = Some((
                    reply,
                    decree,
                    store.applied,
                    store.records.clone(),
                    store.sessions.clone(),
                ));
            }
            Effect::ResetData => r.disk.reset(),
            Effect::LoadChunk(Chunk::Records(pairs)) => r.disk.volatile.records.extend(pairs),
            // The simulated primary streams its records, never a file.
            Effect::LoadChunk(other) => {
                self.violation(format!("{node}: a {other:?} the simulation never sends"))
            }
            Effect::Seal(decree, sessions) => {
                r.disk.volatile.applied = decree;
                r.disk.volatile.sessions = sessions;
                r.disk.volatile.valid = true;
                r.disk.durable = r.disk.volatile.clone();
                inputs.push(Input::Sealed(decree));
            }
            Effect::Destroy(ballot) => r.disk.destroy(ballot),
            Effect::CreateEmpty => r.disk.create_empty(),
            other => self.violation(format!("{node}: {other:?} queued as I/O")),
        }
        for e in applied {
            self.record_apply(node, gpid, &e);
        }
        if let Some((reply, decree, at, records, sessions)) = snapshot {
            if at != decree {
                self.violation(format!(
                    "{node} {gpid}: snapshot for decree {decree} taken at applied decree {at}"
                ));
            }
            let route = self
                .nodes
                .get_mut(node)
                .and_then(|n| n.routes.remove(&reply));
            if let Some(Route::Learner(to, g, attempt)) = route {
                let data = (Chunk::Records(records.into_iter().collect()), sessions);
                let plan = Ok(LearnPlan::Snapshot(decree));
                self.send(node, &to, Body::LearnAnswer(g, attempt, plan, Some(data)));
            }
        }
        for input in inputs {
            self.step_core(node, gpid, input);
        }
        self.serve_reads(node, gpid);
        self.kick_io(node, gpid);
    }
}
