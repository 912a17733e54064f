//! One replica's worker: the task that owns its [`Core`]. Everything that changes the
//! replica's state arrives here as a message — client writes, prepares, learn requests
//! from the gRPC handlers; assignments from the beacon loop; outcomes from the I/O
//! thread, the network and the meta server — and nothing else touches the core. After
//! each burst of messages the worker cuts queued writes into an entry, carries out the
//! core's effects (disk work to the I/O thread, messages to peers and the meta server,
//! answers to waiting callers) and publishes what readers and the beacon need.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::pb;
use crate::replica::core::{
    Core, Effect, HardState, Input, LearnPlan, LearnRequest, Prepare, PrepareReply, Reply, ReplyId,
    Write,
};
use crate::replica::io::{Job, LearnStart};
use crate::replica::node::{Came, Node};
use crate::replica::pending::{Pending, Seen};
use crate::replica::storage::ReplicaStore;
use crate::replica::{transport, wire};

/// How often a worker ticks its core (timeouts, retries, heartbeats).
const TICK: Duration = Duration::from_millis(50);
/// Messages taken in one burst at most.
const BURST: usize = 256;
/// Snapshot chunks a learner may have received but not yet loaded.
pub const LEARN_READ_AHEAD: usize = 16;
/// How long a read waits for the store to apply what was committed when it came.
const READ_WAIT: Duration = Duration::from_secs(5);

/// What a worker publishes for readers and the beacon (never waits on the core).
pub struct Shared {
    /// The partition.
    pub gpid: Gpid,
    serving: AtomicBool,
    report: Mutex<pb::ReplicaReport>,
    hard: Mutex<Option<HardState>>,
    store: Mutex<Option<Arc<ReplicaStore>>>,
    log_bytes: AtomicU64,
    /// The commit point, published before the writers it covers are answered.
    committed: AtomicU64,
    /// The committed entries the store may lack, published with the commit point.
    pending: Mutex<Arc<Pending>>,
    /// The last decree the store applied (readable), published by the I/O thread.
    applied: watch::Sender<u64>,
    /// A read waits for the store: the worker applies what is committed at once.
    apply_wanted: Notify,
    /// Snapshot chunks a learner may still take before one is loaded.
    pub learn_permits: Arc<Semaphore>,
}

impl Shared {
    /// Nothing published yet.
    pub fn new(gpid: Gpid) -> Shared {
        Shared {
            gpid,
            serving: AtomicBool::new(false),
            report: Mutex::new(pb::ReplicaReport::default()),
            hard: Mutex::new(None),
            store: Mutex::new(None),
            log_bytes: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            pending: Mutex::new(Arc::default()),
            applied: watch::Sender::new(0),
            apply_wanted: Notify::new(),
            learn_permits: Arc::new(Semaphore::new(LEARN_READ_AHEAD)),
        }
    }

    /// Whether the replica serves reads and writes as its partition's primary.
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The store to read from, if the replica holds one.
    pub fn store(&self) -> Option<Arc<ReplicaStore>> {
        self.store.lock().expect("store").clone()
    }

    /// Replaces the store readers use.
    pub fn set_store(&self, store: Option<Arc<ReplicaStore>>) {
        *self.store.lock().expect("store") = store;
    }

    /// Records what the store has applied (every change, so readers waiting wake).
    pub fn set_applied(&self, decree: u64) {
        self.applied.send_replace(decree);
    }

    /// Waits until the store has applied everything committed when the call was made,
    /// so a read sees every write answered before it — writers are answered once their
    /// entry is committed, while its apply may still be running.
    pub async fn wait_applied(&self) -> Result<()> {
        let need = self.committed.load(Ordering::Acquire);
        let mut applied = self.applied.subscribe();
        if *applied.borrow() < need {
            // Committed entries are applied in batches; this read asks for them now.
            self.apply_wanted.notify_one();
        }
        // Ready at once (no timer) when the store is already there.
        match tokio::time::timeout(READ_WAIT, applied.wait_for(|a| *a >= need)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "{}: the store has not applied decree {need} yet; try again",
                self.gpid
            ))),
        }
    }

    /// What the committed entries the store may lack say of each of `sort_keys` of
    /// `hash_key` (see [`crate::replica::pending`]); `None` when a read must wait for the
    /// store ([`Shared::wait_applied`]).
    pub fn pending_view(
        &self,
        hash_key: &[u8],
        sort_keys: &[Vec<u8>],
        now_secs: u64,
    ) -> Option<Vec<Seen>> {
        let pending = self.pending.lock().expect("pending").clone();
        sort_keys
            .iter()
            .map(|sk| pending.seen(hash_key, sk, now_secs))
            .collect()
    }

    /// Records the size of the replica's prepare log (the I/O thread knows it without
    /// asking the file system).
    pub fn set_log_bytes(&self, bytes: u64) {
        self.log_bytes.store(bytes, Ordering::Relaxed);
    }

    /// What the beacon reports of the replica. Its size on disk is the store file's,
    /// asked of the file system here — once per report, not after every batch of the
    /// I/O thread — plus the prepare log's.
    pub fn report(&self) -> pb::ReplicaReport {
        let mut r = *self.report.lock().expect("report");
        r.disk_bytes =
            self.store().map_or(0, |s| s.disk_usage()) + self.log_bytes.load(Ordering::Relaxed);
        r
    }

    /// The replica's latest promise (for an I/O thread starting its log over).
    pub fn last_hard(&self) -> Option<HardState> {
        self.hard.lock().expect("hard").clone()
    }
}

/// A message for a worker.
pub enum Msg {
    /// An input as it is.
    Step(Input),
    /// A client write; answered with its decree.
    Write(Write, oneshot::Sender<Result<u64>>),
    /// A prepare from a primary.
    Prepare(Prepare, oneshot::Sender<PrepareReply>),
    /// A learner asks this primary to be taught.
    Learn(LearnRequest, oneshot::Sender<Result<LearnStart>>),
    /// A snapshot's last chunk came: its bytes, when the learning began and how it
    /// came. Recorded for `server-info` once the seal is durable.
    Received(u64, Instant, Came),
    /// Stop (the server is shutting down, or the replica is closed).
    Stop,
    /// Delete the replica's directory and stop.
    Delete,
}

/// Who waits for a reply.
enum Responder {
    Write(oneshot::Sender<Result<u64>>),
    Prepare(oneshot::Sender<PrepareReply>),
    Learn(oneshot::Sender<Result<LearnStart>>),
}

/// A running worker's state.
struct Worker {
    core: Core,
    node: Arc<Node>,
    shared: Arc<Shared>,
    io: std::sync::mpsc::Sender<Job>,
    tx: mpsc::UnboundedSender<Msg>,
    responders: HashMap<ReplyId, Responder>,
    next_reply: ReplyId,
    /// The commit point and serving flag the pending entries were last published for.
    published: (u64, bool),
    /// The snapshot received last, not yet sealed ([`Msg::Received`]).
    received: Option<(u64, Instant, Came)>,
}

/// Runs a replica's worker until it is stopped.
pub async fn run(
    core: Core,
    node: Arc<Node>,
    shared: Arc<Shared>,
    io: std::sync::mpsc::Sender<Job>,
    tx: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut w = Worker {
        core,
        node,
        shared,
        io,
        tx,
        responders: HashMap::new(),
        published: (0, false),
        next_reply: 0,
        received: None,
    };
    w.publish();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            msg = rx.recv() => msg,
            _ = tick.tick() => Some(Msg::Step(Input::Tick)),
            _ = w.shared.apply_wanted.notified() => Some(Msg::Step(Input::ApplyNow)),
        };
        let Some(mut msg) = first else { break };
        let mut handled = 0;
        let stop = loop {
            match msg {
                Msg::Stop => break Some(false),
                Msg::Delete => break Some(true),
                m => w.handle(m),
            }
            handled += 1;
            if handled >= BURST {
                break None;
            }
            match rx.try_recv() {
                Ok(m) => msg = m,
                Err(_) => break None,
            }
        };
        let now = w.node.now_ms();
        w.core.step(now, Input::Flush);
        w.dispatch();
        w.publish();
        if let Some(delete) = stop {
            w.shared.serving.store(false, Ordering::Release);
            if delete {
                let _ = w.io.send(Job::Delete);
            }
            return;
        }
    }
}

impl Worker {
    fn reply_id(&mut self, r: Responder) -> ReplyId {
        self.next_reply += 1;
        self.responders.insert(self.next_reply, r);
        self.next_reply
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.node.now_ms();
        let input = match msg {
            Msg::Step(Input::Sealed(decree)) => {
                // The learning ends when what it copied is durable, as `dd conv=fdatasync`.
                if let Some((bytes, started, came)) = self.received.take() {
                    self.node.record_learned(bytes, started.elapsed(), came);
                }
                Input::Sealed(decree)
            }
            Msg::Received(bytes, started, came) => {
                self.received = Some((bytes, started, came));
                return;
            }
            Msg::Step(input) => input,
            Msg::Write(w, tx) => Input::Write(w, self.reply_id(Responder::Write(tx))),
            Msg::Prepare(p, tx) => Input::Prepare(p, self.reply_id(Responder::Prepare(tx))),
            Msg::Learn(r, tx) => Input::Learn(r, self.reply_id(Responder::Learn(tx))),
            Msg::Stop | Msg::Delete => return,
        };
        self.core.step(now, input);
    }

    fn dispatch(&mut self) {
        let gpid = self.core.gpid();
        // Before any writer is answered: a read that comes after an answer sees what it
        // covers, in the published entries or by waiting for the store to apply it.
        let status = self.core.status();
        self.publish_pending(status.committed, status.serving);
        self.shared
            .committed
            .store(status.committed, Ordering::Release);
        for effect in self.core.take_effects() {
            match effect {
                Effect::Reply(id, reply) => self.answer(id, reply),
                Effect::StreamSnapshot(id, decree) => match self.responders.remove(&id) {
                    Some(Responder::Learn(tx)) => {
                        let _ = self.io.send(Job::Snapshot(decree, tx));
                    }
                    _ => tracing::error!(%gpid, "a snapshot for nobody waiting"),
                },
                Effect::Send(to, prepare) => {
                    transport::send_prepare(&self.node, gpid, to, prepare, self.tx.clone())
                }
                Effect::AskMeta(ballot, request) => {
                    transport::ask_meta(&self.node, gpid, ballot, request, self.tx.clone())
                }
                Effect::Learn(primary, request) => transport::learn(
                    &self.node,
                    gpid,
                    primary,
                    request,
                    self.tx.clone(),
                    self.shared.learn_permits.clone(),
                ),
                disk => {
                    let _ = self.io.send(Job::Effect(disk));
                }
            }
        }
    }

    fn answer(&mut self, id: ReplyId, reply: Reply) {
        match (self.responders.remove(&id), reply) {
            (Some(Responder::Write(tx)), Reply::Write(r)) => {
                let _ = tx.send(r);
            }
            (Some(Responder::Prepare(tx)), Reply::Prepare(r)) => {
                let _ = tx.send(r);
            }
            (Some(Responder::Learn(tx)), Reply::Learn(r)) => {
                let start = r.and_then(|plan| match plan {
                    LearnPlan::Incremental => Ok(LearnStart::Incremental),
                    LearnPlan::Snapshot(_) => Err(Error::Internal(
                        "a snapshot plan comes with its stream".into(),
                    )),
                });
                let _ = tx.send(start);
            }
            _ => {}
        }
    }

    /// Publishes the committed entries the store may lack, when the commit point moved
    /// or the replica began or stopped serving (only a serving primary is read).
    fn publish_pending(&mut self, committed: u64, serving: bool) {
        if (committed, serving) == self.published {
            return;
        }
        self.published = (committed, serving);
        let pending = if serving {
            let applied = *self.shared.applied.borrow();
            let log = self.core.log();
            Pending::collect(applied, committed, |d| log.get(d).cloned())
        } else {
            Pending::default()
        };
        *self.shared.pending.lock().expect("pending") = Arc::new(pending);
    }

    fn publish(&self) {
        let status = self.core.status();
        self.shared.serving.store(status.serving, Ordering::Release);
        let report = wire::report_to_pb(self.core.gpid(), self.core.role(), &status, 0);
        *self.shared.report.lock().expect("report") = report;
        let hard = self.core.hard_state().clone();
        *self.shared.hard.lock().expect("hard") = Some(hard);
    }
}
