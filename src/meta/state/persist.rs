//! How the meta state reaches its store. The state plans on its working copy and keeps
//! an image of what is durable; everything it shows outside (assignments to replica
//! servers, garbage, the tables and nodes the shell lists) is read from that image, so
//! nothing not yet durable is ever acted on or reported.
//!
//! Two ways to write: [`Sink::Direct`] writes each batch before the call returns (tests
//! and the simulation: working copy and image are equal after every call), and
//! [`Sink::Queued`] hands batches to a writer thread (the server: no store write runs
//! under the state's lock, so a stalled disk never stops beacons or reads). A queued
//! batch that fails reverts the working copy to the image and fails every batch queued
//! behind it, which was planned on top of it.

use std::collections::BTreeSet;
use std::sync::mpsc;

use super::MetaState;
use super::index::MemberIndex;
use crate::error::{Error, Result};
use crate::meta::store::{MetaStore, StoreOp};

/// A batch of store changes in the writer's queue, numbered in submission order.
#[derive(Debug)]
pub struct Batch {
    /// Its number (the first is 1).
    pub seq: u64,
    /// The changes, applied atomically.
    pub ops: Vec<StoreOp>,
}

/// Where the state's durable changes go.
pub(super) enum Sink {
    /// Written before the call returns.
    Direct(Box<dyn MetaStore>),
    /// Queued for a writer thread.
    Queued {
        /// The writer's queue.
        tx: mpsc::Sender<Batch>,
        /// The last batch number handed out.
        submitted: u64,
        /// Batches up to this number failed (or were planned on one that did).
        failed_upto: u64,
    },
}

impl MetaState {
    /// Makes `ops` durable: at once with a direct store (an error leaves everything as
    /// it was), or queued for the writer (the working copy runs ahead of the image).
    pub(super) fn persist(&mut self, ops: Vec<StoreOp>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Direct(store) => {
                store.apply(&ops)?;
                self.apply_durable(&ops)
            }
            Sink::Queued { tx, submitted, .. } => {
                *submitted += 1;
                tx.send(Batch {
                    seq: *submitted,
                    ops,
                })
                .map_err(|_| Error::Storage("the meta store writer has stopped".into()))
            }
        }
    }

    /// Moves the store to a writer: from now on batches are queued on the returned
    /// receiver, and the writer reports back with [`MetaState::on_durable`] and
    /// [`MetaState::on_write_failed`]. Returns `None` if already moved.
    pub fn detach_store(&mut self) -> Option<(Box<dyn MetaStore>, mpsc::Receiver<Batch>)> {
        let (tx, rx) = mpsc::channel();
        let queued = Sink::Queued {
            tx,
            submitted: 0,
            failed_upto: 0,
        };
        match std::mem::replace(&mut self.sink, queued) {
            Sink::Direct(store) => Some((store, rx)),
            old => {
                self.sink = old;
                None
            }
        }
    }

    /// The number of the last batch submitted (0 with a direct store: nothing waits).
    pub fn submitted(&self) -> u64 {
        match &self.sink {
            Sink::Direct(_) => 0,
            Sink::Queued { submitted, .. } => *submitted,
        }
    }

    /// Whether batch `seq` must not be written: it failed, or was planned on one that did.
    pub fn is_failed(&self, seq: u64) -> bool {
        matches!(&self.sink, Sink::Queued { failed_upto, .. } if seq <= *failed_upto)
    }

    /// The writer made `batch` durable: the image catches up.
    pub fn on_durable(&mut self, batch: &Batch) {
        if let Err(e) = self.apply_durable(&batch.ops) {
            tracing::error!(
                seq = batch.seq,
                "durable image out of step with the store: {e}"
            );
        }
    }

    /// Takes a durable batch into the image, and nudges every node whose replicas it
    /// changes (members before and after), so each learns its new configuration now
    /// rather than at its next beacon.
    fn apply_durable(&mut self, ops: &[StoreOp]) -> Result<()> {
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for op in ops {
            if let StoreOp::PutPartition(app_id, config) = op {
                touched.extend(config.members().map(str::to_string));
                if let Some(old) = self
                    .durable
                    .apps
                    .get(app_id)
                    .and_then(|a| a.partitions.get(config.pidx as usize))
                {
                    touched.extend(old.members().map(str::to_string));
                }
            }
        }
        let partitions = MemberIndex::touched(&self.durable, ops);
        self.members.unindex(&self.durable, &partitions);
        let applied = self.durable.apply(ops);
        self.members.reindex(&self.durable, &partitions);
        applied?;
        for node in &touched {
            self.nudge(node);
        }
        Ok(())
    }

    /// The writer failed to write batch `seq`: the working copy returns to the image,
    /// and every batch submitted so far is failed. Returns the last failed number.
    pub fn on_write_failed(&mut self, seq: u64, err: &Error) -> u64 {
        let upto = match &mut self.sink {
            Sink::Queued {
                submitted,
                failed_upto,
                ..
            } => {
                *failed_upto = *submitted;
                *submitted
            }
            Sink::Direct(_) => return seq,
        };
        tracing::error!(
            seq,
            failed_upto = upto,
            "meta store write failed; changes since the last durable one are undone: {err}"
        );
        self.apps = self.durable.apps.clone();
        self.next_app_id = self.durable.next_app_id.max(1);
        self.lives = self.durable.lives.clone();
        for (addr, node) in &mut self.nodes {
            // A node whose registration was lost registers again on its next beacon; a
            // replacement that was lost is noticed again the same way.
            node.incarnation = self.durable.nodes.get(addr).cloned().unwrap_or_default();
        }
        self.lb_counts = None;
        upto
    }
}
