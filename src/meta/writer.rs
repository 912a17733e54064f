//! The meta store's writer: one thread that owns the store, takes the batches the state
//! queues (several at a time, as one atomic write), and reports back — the state's image
//! of what is durable catches up, or the state is reverted — and then wakes whoever waits
//! for those batches. No store write runs under the state's lock or on the async runtime.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::meta::state::{Batch, MetaState};
use crate::meta::store::{MetaStore, StoreOp};

/// How many failed ranges [`Progress`] remembers (a waiter looks its batch up in them).
const FAILURES_KEPT: usize = 64;

/// What the writer has done so far.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The highest batch number written.
    pub durable: u64,
    /// Ranges of batch numbers that failed, with the store's error; newest last.
    pub failed: Vec<(u64, u64, String)>,
}

impl Progress {
    /// Whether batch `seq` is settled: `Some(Ok)` written, `Some(Err)` failed.
    pub fn outcome(&self, seq: u64) -> Option<Result<()>> {
        if let Some((_, _, err)) = self
            .failed
            .iter()
            .find(|(from, upto, _)| (*from..=*upto).contains(&seq))
        {
            return Some(Err(Error::Storage(format!(
                "the meta store refused the change: {err}"
            ))));
        }
        (self.durable >= seq).then_some(Ok(()))
    }
}

/// Starts the writer over `store`, reporting to `state` and `progress`. It ends when the
/// state is gone and its queue is closed.
pub fn spawn(
    state: Weak<Mutex<MetaState>>,
    mut store: Box<dyn MetaStore>,
    queue: Receiver<Batch>,
    progress: watch::Sender<Progress>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("meta-store-writer".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut batches = vec![first];
                batches.extend(queue.try_iter());
                let Some(state) = state.upgrade() else {
                    return;
                };
                {
                    let s = lock(&state);
                    batches.retain(|b| !s.is_failed(b.seq));
                }
                let Some(last) = batches.last().map(|b| b.seq) else {
                    continue;
                };
                let ops: Vec<StoreOp> = batches.iter().flat_map(|b| b.ops.clone()).collect();
                match store.apply(&ops) {
                    Ok(()) => {
                        let mut s = lock(&state);
                        for b in &batches {
                            s.on_durable(b);
                        }
                        drop(s);
                        progress.send_modify(|p| p.durable = last);
                    }
                    Err(e) => {
                        let first = batches[0].seq;
                        let upto = lock(&state).on_write_failed(first, &e);
                        progress.send_modify(|p| {
                            p.failed.push((first, upto, e.to_string()));
                            let excess = p.failed.len().saturating_sub(FAILURES_KEPT);
                            p.failed.drain(..excess);
                        });
                    }
                }
            }
        })
}

fn lock(state: &Arc<Mutex<MetaState>>) -> std::sync::MutexGuard<'_, MetaState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}
