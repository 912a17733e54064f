//! One replica's I/O thread: the only place its log is written and its store committed,
//! so no fsync or store commit ever runs on the async runtime or under a lock an async
//! task takes. Jobs (the core's disk effects) run in order; whatever is queued when the
//! thread wakes is done together — consecutive log appends as one write and one sync
//! (group commit), consecutive applies as one store transaction. Outcomes go back to the
//! replica's worker as core inputs. A snapshot for a learner is opened here too, so it
//! reflects exactly the applies queued before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::replica::core::sessions::Sessions;
use crate::replica::core::{Chunk, DataState, Effect, Entry, Input, LogRecord, Recovered};
use crate::replica::faults::Faults;
use crate::replica::node_dir::LOST;
use crate::replica::plog::PrepareLog;
use crate::replica::snapshot::StoreSnapshot;
use crate::replica::storage::ReplicaStore;
use crate::replica::worker::{LEARN_READ_AHEAD, Msg, Shared};

/// A learner's snapshot loads are made durable every this many bytes; the seal makes the
/// rest durable. A durable load stops the load until the kernel has written back every
/// page so far, while between them the kernel writes back as the load goes on — and a
/// learner that crashes mid-copy starts over whatever was durable, so earlier syncs buy
/// nothing but a bound on what the seal writes back. (Measured when loads went into redb,
/// `learn --size-mb 256`, 3 runs each beside the same `dd`: every 32 MB 0.29-0.48x dd,
/// every 128 MB 0.30-0.57x, only at the seal 0.42-0.79x; loads now go into a base file,
/// [`crate::replica::base`].)
const DURABLE_LOAD_BYTES: u64 = 1 << 30;
/// Jobs taken together at most.
const MAX_BATCH: usize = 512;
/// How often an idle I/O thread looks whether a store rewrite has ended.
const REWRITE_POLL: Duration = Duration::from_millis(50);

mod lifecycle;
pub use lifecycle::remove_if_present;
mod rewrite;

/// How a primary teaches a learner, once decided.
pub enum LearnStart {
    /// From the log: nothing to stream.
    Incremental,
    /// A consistent view of the store to stream.
    Snapshot(Box<StoreSnapshot>),
}

/// Work for the I/O thread.
pub enum Job {
    /// A disk effect of the core.
    Effect(Effect),
    /// Open a snapshot at `decree` (everything queued before is applied) for a learner.
    Snapshot(u64, oneshot::Sender<Result<LearnStart>>),
    /// Delete the replica's directory, then stop.
    Delete,
}

/// The I/O thread's state.
pub struct Io {
    gpid: Gpid,
    dir: PathBuf,
    store: Option<Arc<ReplicaStore>>,
    log: Option<PrepareLog>,
    sessions: Sessions,
    applied: u64,
    load_bytes: u64,
    shared: Arc<Shared>,
    faults: Arc<Faults>,
    /// The page cache each store this replica opens may keep.
    cache_bytes: usize,
    out: mpsc::UnboundedSender<Msg>,
    /// Jobs that changed the store so far (a rewrite begun before the last is stale).
    writes: u64,
    rewrite: Option<rewrite::Rewrite>,
}

/// What a replica's directory holds: what the core recovers, and the open store and log.
fn open_dir(
    gpid: Gpid,
    dir: &Path,
    cache_bytes: usize,
) -> (Recovered, Option<ReplicaStore>, Option<PrepareLog>) {
    if !dir.exists() {
        return (Recovered::default(), None, None);
    }
    // A store rewrite the process did not finish: the store is the old file.
    let _ = std::fs::remove_file(dir.join(rewrite::REWRITE));
    if let Ok(text) = std::fs::read_to_string(dir.join(LOST)) {
        let ballot = text.trim().parse().unwrap_or(0);
        let recovered = Recovered {
            data: Some(DataState::Lost(ballot)),
            ..Recovered::default()
        };
        return (recovered, None, None);
    }
    let lost = |why: String| {
        tracing::error!(%gpid, "replica cannot be trusted, it must learn again: {why}");
        Recovered {
            data: Some(DataState::Lost(0)),
            ..Recovered::default()
        }
    };
    let store = match ReplicaStore::open(dir, cache_bytes) {
        Ok(s) => s,
        Err(e) => return (lost(e.to_string()), None, None),
    };
    let (log, replayed) = match PrepareLog::open(dir) {
        Ok(l) => l,
        Err(e) => return (lost(e.to_string()), None, None),
    };
    let state = match store.state() {
        Ok(s) => s,
        Err(e) => return (lost(e.to_string()), None, None),
    };
    let data = if state.valid {
        DataState::Valid
    } else {
        DataState::Learning
    };
    let recovered = Recovered {
        data: Some(data),
        hard: replayed.hard,
        entries: replayed.entries,
        applied: state.applied,
        sessions: state.sessions,
    };
    (recovered, Some(store), Some(log))
}

impl Io {
    /// Opens replica `gpid` in `dir` (blocking: replays its log) and returns what its
    /// core recovers, with the I/O state ready to run; its store keeps up to
    /// `cache_bytes` of pages in memory.
    pub fn open(
        gpid: Gpid,
        dir: PathBuf,
        shared: Arc<Shared>,
        faults: Arc<Faults>,
        cache_bytes: usize,
        out: mpsc::UnboundedSender<Msg>,
    ) -> (Io, Recovered) {
        let (recovered, store, log) = open_dir(gpid, &dir, cache_bytes);
        let store = store.map(Arc::new);
        shared.set_store(store.clone());
        let io = Io {
            gpid,
            dir,
            store,
            log,
            sessions: recovered.sessions.clone(),
            applied: recovered.applied,
            load_bytes: 0,
            shared,
            faults,
            cache_bytes,
            out,
            writes: 0,
            rewrite: None,
        };
        io.shared.set_applied(io.applied);
        io.publish_disk();
        (io, recovered)
    }

    /// Runs jobs until the worker goes away (or the replica is deleted).
    pub fn run(mut self, jobs: Receiver<Job>) {
        loop {
            let first = if self.rewriting() {
                match jobs.recv_timeout(REWRITE_POLL) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                if !self.run_batch(batch) {
                    return;
                }
            }
            self.finish_rewrite();
            self.publish_disk();
        }
    }

    /// Runs a batch; returns false once the replica is deleted.
    fn run_batch(&mut self, batch: Vec<Job>) -> bool {
        let mut jobs = batch.into_iter().peekable();
        while let Some(job) = jobs.next() {
            if !matches!(
                job,
                Job::Effect(Effect::Persist { .. } | Effect::Compact(_) | Effect::Tidy)
                    | Job::Snapshot(..)
            ) {
                self.writes += 1;
            }
            match job {
                Job::Effect(Effect::Persist { id, records }) => {
                    let (mut last, mut all) = (id, records);
                    while let Some(Job::Effect(Effect::Persist { .. })) = jobs.peek() {
                        if let Some(Job::Effect(Effect::Persist { id, records })) = jobs.next() {
                            last = id;
                            all.extend(records);
                        }
                    }
                    self.persist(last, &all);
                }
                Job::Effect(Effect::Apply { entries, durable }) => {
                    let (mut all, mut sync) = (entries, durable);
                    while let Some(Job::Effect(Effect::Apply { .. })) = jobs.peek() {
                        if let Some(Job::Effect(Effect::Apply { entries, durable })) = jobs.next() {
                            all.extend(entries);
                            sync |= durable;
                        }
                    }
                    self.apply(&all, sync);
                }
                Job::Effect(Effect::LoadChunk(chunk)) => {
                    // Chunks queued together load in one store transaction.
                    let mut all = vec![chunk];
                    while let Some(Job::Effect(Effect::LoadChunk(_))) = jobs.peek() {
                        if let Some(Job::Effect(Effect::LoadChunk(more))) = jobs.next() {
                            all.push(more);
                        }
                    }
                    self.load(all);
                }
                Job::Effect(effect) => self.other(effect),
                Job::Snapshot(decree, tx) => {
                    let _ = tx.send(self.snapshot(decree));
                }
                Job::Delete => {
                    self.close();
                    if let Err(e) = std::fs::remove_dir_all(&self.dir)
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(gpid = %self.gpid, "cannot delete replica files: {e}");
                    }
                    return false;
                }
            }
        }
        true
    }

    fn send(&self, input: Input) {
        let _ = self.out.send(Msg::Step(input));
    }

    fn persist(&mut self, id: u64, records: &[LogRecord]) {
        self.faults.wait_if_stalled(self.gpid);
        let outcome = if self.faults.take_failed_sync(self.gpid) {
            Err(Error::Storage("injected: fsync failed (EIO)".into()))
        } else {
            match self.log.as_mut() {
                Some(log) => log.append(records),
                None => Err(Error::Internal("the replica has no log to write".into())),
            }
        };
        match outcome {
            Ok(()) => self.send(Input::Persisted(id)),
            Err(e) => {
                tracing::error!(gpid = %self.gpid, "prepare log write failed: {e}");
                self.send(Input::PersistFailed(e.to_string()));
            }
        }
    }

    fn apply(&mut self, entries: &[Entry], durable: bool) {
        self.faults.wait_if_stalled(self.gpid);
        self.faults.delay_apply(self.gpid);
        let Some(store) = self.store.clone() else {
            return self.send(Input::ApplyFailed("the replica has no store".into()));
        };
        let outcome = if entries.is_empty() {
            store.sync().map(|()| self.applied)
        } else {
            store.apply(entries, &mut self.sessions, durable)
        };
        match outcome {
            Ok(upto) => {
                self.set_applied(upto);
                self.send(Input::Applied { upto, durable });
            }
            Err(e) => {
                tracing::error!(gpid = %self.gpid, "store commit failed: {e}");
                self.send(Input::ApplyFailed(e.to_string()));
            }
        }
    }

    /// Loads snapshot chunks in one transaction, made durable every
    /// `DURABLE_LOAD_BYTES`, and gives their read-ahead permits back.
    fn load(&mut self, chunks: Vec<Chunk>) {
        let bytes: u64 = chunks.iter().map(|c| c.bytes() as u64).sum();
        let durable =
            (self.load_bytes + bytes) / DURABLE_LOAD_BYTES > self.load_bytes / DURABLE_LOAD_BYTES;
        self.load_bytes += bytes;
        let loaded = match &self.store {
            Some(store) => store.load(&chunks, durable),
            None => Err(Error::Internal("no store to load into".into())),
        };
        let owed = LEARN_READ_AHEAD.saturating_sub(self.shared.learn_permits.available_permits());
        self.shared
            .learn_permits
            .add_permits(chunks.len().min(owed));
        if let Err(e) = loaded {
            tracing::error!(gpid = %self.gpid, "replica I/O failed: {e}");
            self.send(Input::ApplyFailed(e.to_string()));
        }
    }

    fn other(&mut self, effect: Effect) {
        let outcome = match effect {
            Effect::Compact(below) => match self.log.as_mut() {
                Some(log) => log.compact(below),
                None => Ok(()),
            },
            Effect::Tidy => {
                self.tidy();
                Ok(())
            }
            Effect::ResetData => self.reset(),
            Effect::Seal(decree, sessions) => {
                let sealed = match &self.store {
                    Some(store) => store.seal(decree, &sessions),
                    None => Err(Error::Internal("no store to seal".into())),
                };
                if sealed.is_ok() {
                    self.sessions = sessions;
                    self.set_applied(decree);
                    self.send(Input::Sealed(decree));
                }
                sealed
            }
            Effect::Destroy(ballot) => self.destroy(ballot),
            Effect::CreateEmpty => self.create_empty(),
            other => Err(Error::Internal(format!("not an I/O effect: {other:?}"))),
        };
        if let Err(e) = outcome {
            tracing::error!(gpid = %self.gpid, "replica I/O failed: {e}");
            self.send(Input::ApplyFailed(e.to_string()));
        }
    }

    fn snapshot(&self, decree: u64) -> Result<LearnStart> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| Error::NotLoaded(format!("{} holds no data", self.gpid)))?;
        let snap = store.snapshot()?;
        if snap.decree != decree {
            return Err(Error::Internal(format!(
                "snapshot of {} at decree {}, expected {decree}",
                self.gpid, snap.decree
            )));
        }
        Ok(LearnStart::Snapshot(Box::new(snap)))
    }

    /// Records what the store has applied, for the core's next steps and for readers.
    fn set_applied(&mut self, decree: u64) {
        self.applied = decree;
        self.shared.set_applied(decree);
    }

    fn publish_disk(&self) {
        let bytes = self.log.as_ref().map_or(0, PrepareLog::bytes);
        self.shared.set_log_bytes(bytes);
    }
}

/// Starts the I/O thread of replica `gpid`; returns its job queue and handle.
pub fn spawn(io: Io) -> (Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = format!("io-{}", io.gpid);
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || io.run(rx))
        .expect("spawn an I/O thread");
    (tx, handle)
}
