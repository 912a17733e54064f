//! A simulated replica server: the real cores of its replicas, their simulated disks
//! (one I/O queue per replica, run in order with random latency, stallable and able to
//! fail a sync), a lease from its beacons, and the same beacon-reply rule as the real
//! server ([`crate::replica::wire::sync_plan`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::error::Error;
use crate::model::Gpid;
use crate::pb;
use crate::replica::core::{Core, CoreConfig, Effect, Input, Reply, ReplyId};
use crate::replica::wire::{Sync, report_to_pb, sync_plan};
use crate::sim::Sim;
use crate::sim::disk::Disk;
use crate::sim::net::Body;

/// How often a node ticks its replicas (ms).
pub const TICK_MS: u64 = 50;

/// Where an answer goes.
#[derive(Debug, Clone)]
pub(super) enum Route {
    /// A prepare's answer, to its primary.
    Peer(String, Gpid),
    /// A write's answer, to a client operation.
    Client(String, u64),
    /// A learn request's answer, to the learner's attempt.
    Learner(String, Gpid, u64),
}

/// One replica of a simulated node.
#[derive(Debug)]
pub struct SimReplica {
    /// The real core.
    pub core: Core,
    /// Its disk.
    pub disk: Disk,
    /// The disk jobs its core asked for, run in order.
    pub(super) queue: VecDeque<Effect>,
    /// A job runs now.
    pub(super) busy: bool,
    /// Its I/O makes no progress until this time.
    pub stall_until: u64,
    /// Its next log sync fails.
    pub fail_sync: bool,
    /// Reads waiting for the store to apply what was committed when they came (as the
    /// real data service waits): (client, key, op, decree needed).
    pub(super) reads: Vec<(String, Vec<u8>, u64, u64)>,
}

/// The core's sizes scaled down to the simulation's small writes, so logs are compacted,
/// stores made durable and dropped members' logs kept and given up within a run.
fn sim_core_config() -> CoreConfig {
    CoreConfig {
        compact_bytes: 2 << 10,
        durable_every: 8,
        catch_up_bytes: 8 << 10,
        settle_ms: 400,
        ..CoreConfig::default()
    }
}

impl SimReplica {
    fn open(gpid: Gpid, me: &str, disk: Disk, now: u64) -> SimReplica {
        let recovered = disk.recover();
        SimReplica {
            core: Core::new(gpid, me, sim_core_config(), recovered, now),
            disk,
            queue: VecDeque::new(),
            busy: false,
            stall_until: 0,
            fail_sync: false,
            reads: Vec::new(),
        }
    }
}

/// A simulated replica server.
#[derive(Debug)]
pub struct SimNode {
    /// Its address.
    pub name: String,
    /// Its data directory's identity (a wipe makes a new one).
    pub incarnation: u64,
    /// Running.
    pub up: bool,
    /// Bumped by every crash: events of an older life are ignored.
    pub epoch: u64,
    /// Its replicas while running.
    pub replicas: BTreeMap<Gpid, SimReplica>,
    /// Its disks while down.
    pub stored: BTreeMap<Gpid, Disk>,
    /// It may serve until this time.
    pub lease_until: u64,
    next_reply: ReplyId,
    pub(super) routes: HashMap<ReplyId, Route>,
    /// The send time of the beacon awaiting its reply.
    beacon: Option<u64>,
    last_beacon: u64,
}

impl SimNode {
    /// A new, empty node.
    pub fn new(name: &str) -> SimNode {
        SimNode {
            name: name.to_string(),
            incarnation: 1,
            up: true,
            epoch: 0,
            replicas: BTreeMap::new(),
            stored: BTreeMap::new(),
            lease_until: 0,
            next_reply: 0,
            routes: HashMap::new(),
            beacon: None,
            last_beacon: 0,
        }
    }

    fn route(&mut self, route: Route) -> ReplyId {
        self.next_reply += 1;
        self.routes.insert(self.next_reply, route);
        self.next_reply
    }
}

impl Sim {
    pub(super) fn replica_mut(&mut self, node: &str, gpid: Gpid) -> Option<&mut SimReplica> {
        self.nodes
            .get_mut(node)
            .filter(|n| n.up)?
            .replicas
            .get_mut(&gpid)
    }

    /// Steps a replica's core and carries out its effects.
    pub(super) fn step_core(&mut self, node: &str, gpid: Gpid, input: Input) {
        let now = self.now;
        let Some(r) = self.replica_mut(node, gpid) else {
            return;
        };
        r.core.step(now, input);
        // As the real worker does after every burst of inputs.
        r.core.step(now, Input::Flush);
        let effects = r.core.take_effects();
        for e in effects {
            self.dispatch(node, gpid, e);
        }
        self.kick_io(node, gpid);
    }

    fn dispatch(&mut self, node: &str, gpid: Gpid, effect: Effect) {
        match effect {
            Effect::Send(to, p) => self.send(node, &to, Body::Prepare(gpid, p)),
            Effect::Reply(id, reply) => self.reply(node, id, reply),
            Effect::AskMeta(ballot, request) => {
                self.send(node, "meta", Body::Ask(gpid, ballot, request))
            }
            Effect::Learn(primary, request) => {
                self.send(node, &primary, Body::Learn(gpid, request))
            }
            io => {
                if let Some(r) = self.replica_mut(node, gpid) {
                    r.queue.push_back(io);
                }
            }
        }
    }

    fn reply(&mut self, node: &str, id: ReplyId, reply: Reply) {
        let Some(route) = self.nodes.get_mut(node).and_then(|n| n.routes.remove(&id)) else {
            return;
        };
        match (route, reply) {
            (Route::Peer(to, g), Reply::Prepare(r)) => {
                self.send(node, &to, Body::PrepareReply(g, Some(r)))
            }
            (Route::Client(to, op), Reply::Write(r)) => {
                self.send(node, &to, Body::WriteReply(op, r))
            }
            (Route::Learner(to, g, attempt), Reply::Learn(r)) => {
                self.send(node, &to, Body::LearnAnswer(g, attempt, r, None))
            }
            (route, reply) => self.violation(format!("{node}: reply {reply:?} for {route:?}")),
        }
    }

    /// A message for node `node`.
    pub(super) fn node_receive(&mut self, node: &str, from: &str, body: Body) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(node).filter(|n| n.up) else {
            return;
        };
        let lease = now < n.lease_until;
        match body {
            Body::Prepare(gpid, p) => {
                if !n.replicas.contains_key(&gpid) {
                    self.send(node, from, Body::PrepareReply(gpid, None));
                    return;
                }
                let id = n.route(Route::Peer(from.to_string(), gpid));
                self.step_core(node, gpid, Input::Prepare(p, id));
            }
            Body::PrepareReply(gpid, r) => {
                self.step_core(node, gpid, Input::PrepareReply(from.to_string(), r))
            }
            Body::Learn(gpid, req) => {
                if !n.replicas.contains_key(&gpid) {
                    let err = Error::NotFound(format!("{node} holds no replica of {gpid}"));
                    let attempt = req.attempt;
                    self.send(node, from, Body::LearnAnswer(gpid, attempt, Err(err), None));
                    return;
                }
                let id = n.route(Route::Learner(from.to_string(), gpid, req.attempt));
                self.step_core(node, gpid, Input::Learn(req, id));
            }
            Body::LearnAnswer(gpid, attempt, result, data) => {
                self.step_core(node, gpid, Input::LearnAnswer(attempt, result));
                if let Some((chunk, sessions)) = data {
                    self.step_core(node, gpid, Input::SnapshotChunk(attempt, chunk));
                    self.step_core(node, gpid, Input::SnapshotEnd(attempt, sessions));
                }
            }
            Body::Answer(gpid, result) => self.step_core(node, gpid, Input::MetaAnswer(result)),
            Body::BeaconReply(reply, sent) => self.on_beacon_reply(node, reply, sent),
            Body::Write(gpid, write, op) => {
                let refused = if !n.replicas.contains_key(&gpid) {
                    Some(Error::NotFound(format!(
                        "{node} holds no replica of {gpid}"
                    )))
                } else if !lease {
                    Some(Error::LeaseExpired(format!("the lease of {node} ran out")))
                } else {
                    None
                };
                if let Some(err) = refused {
                    self.send(node, from, Body::WriteReply(op, Err(err)));
                    return;
                }
                let id = n.route(Route::Client(from.to_string(), op));
                self.step_core(node, gpid, Input::Write(write, id));
            }
            Body::Read(gpid, key, op) => {
                let refused = match n.replicas.get_mut(&gpid) {
                    None => Error::NotFound(format!("{node} holds no replica of {gpid}")),
                    Some(_) if !lease => {
                        Error::LeaseExpired(format!("the lease of {node} ran out"))
                    }
                    Some(r) if !r.core.serving() => {
                        Error::NotPrimary(format!("{node} is not the serving primary of {gpid}"))
                    }
                    Some(r) => {
                        let need = r.core.status().committed;
                        r.reads.push((from.to_string(), key, op, need));
                        // Committed entries are applied in batches; a read asks for them now.
                        if need > r.disk.volatile.applied {
                            self.step_core(node, gpid, Input::ApplyNow);
                        }
                        self.serve_reads(node, gpid);
                        return;
                    }
                };
                self.send(node, from, Body::ReadReply(op, Err(refused)));
            }
            _ => {}
        }
    }

    /// Answers the replica's waiting reads that its store has applied enough for.
    pub(super) fn serve_reads(&mut self, node: &str, gpid: Gpid) {
        let Some(r) = self.replica_mut(node, gpid) else {
            return;
        };
        let applied = r.disk.volatile.applied;
        let (ready, waiting) = std::mem::take(&mut r.reads)
            .into_iter()
            .partition(|(.., need)| *need <= applied);
        r.reads = waiting;
        let answers: Vec<_> = ready
            .into_iter()
            .map(|(from, key, op, _)| (from, op, r.disk.volatile.records.get(&key).cloned()))
            .collect();
        for (from, op, value) in answers {
            self.stats.reads_served += 1;
            self.send(node, &from, Body::ReadReply(op, Ok(value)));
        }
    }

    /// The node's periodic work: tick its replicas, beacon when due.
    pub(super) fn node_tick(&mut self, node: &str, epoch: u64) {
        let now = self.now;
        let interval = self.meta.state.config().beacon_interval.as_millis() as u64;
        let Some(n) = self
            .nodes
            .get_mut(node)
            .filter(|n| n.up && n.epoch == epoch)
        else {
            return;
        };
        let gpids: Vec<Gpid> = n.replicas.keys().copied().collect();
        let beacon_due = now >= n.last_beacon + interval;
        if beacon_due {
            n.last_beacon = now;
            n.beacon = Some(now);
            let replicas = n
                .replicas
                .iter()
                .map(|(g, r)| report_to_pb(*g, r.core.role(), &r.core.status(), 0))
                .collect();
            let request = pb::BeaconRequest {
                address: node.to_string(),
                replicas,
                uptime_ms: 0,
                incarnation: format!("{node}#{}", n.incarnation),
                disk_free_bytes: 0,
            };
            self.send(node, "meta", Body::Beacon(request, now));
        }
        for gpid in gpids {
            self.step_core(node, gpid, Input::Tick);
        }
        self.schedule(
            now + TICK_MS,
            super::Event::NodeTick(node.to_string(), epoch),
        );
    }

    fn on_beacon_reply(&mut self, node: &str, reply: pb::BeaconReply, sent: u64) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.beacon != Some(sent) {
            return;
        }
        n.beacon = None;
        n.lease_until = n.lease_until.max(sent + reply.lease_ms);
        let held: Vec<Gpid> = n.replicas.keys().copied().collect();
        for step in sync_plan(held, &reply) {
            match step {
                Sync::Assign(gpid, a) => {
                    let n = self.nodes.get_mut(node).expect("node");
                    if !n.replicas.contains_key(&gpid) {
                        let disk = n.stored.remove(&gpid).unwrap_or_default();
                        let r = SimReplica::open(gpid, node, disk, now);
                        n.replicas.insert(gpid, r);
                    }
                    self.step_core(node, gpid, Input::Assign(a));
                }
                Sync::Unassign(gpid) => self.step_core(node, gpid, Input::Unassign),
                Sync::Delete(gpid) => {
                    self.nodes
                        .get_mut(node)
                        .expect("node")
                        .replicas
                        .remove(&gpid);
                    self.trace(format!("{node}: {gpid} deleted as garbage"));
                }
            }
        }
    }

    /// Crashes `node`: what was not synced is lost (a random prefix of the unsynced log
    /// survives), and nothing it had in flight completes.
    pub(super) fn crash(&mut self, node: &str) {
        let Some(n) = self.nodes.get_mut(node).filter(|n| n.up) else {
            return;
        };
        n.up = false;
        n.epoch += 1;
        n.routes.clear();
        n.beacon = None;
        n.lease_until = 0;
        let replicas = std::mem::take(&mut n.replicas);
        for (gpid, mut r) in replicas {
            r.disk.crash(&mut self.rng);
            // A replica it never held leaves nothing behind.
            if r.disk.created || r.disk.lost.is_some() {
                self.nodes
                    .get_mut(node)
                    .expect("node")
                    .stored
                    .insert(gpid, r.disk);
            }
        }
        self.trace(format!("{node}: crashed"));
    }

    /// Restarts `node` on its disks (or empty, with a new identity, if `wiped`).
    pub(super) fn restart(&mut self, node: &str, wiped: bool) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(node).filter(|n| !n.up) else {
            return;
        };
        if wiped {
            n.stored.clear();
            n.incarnation += 1;
        }
        n.up = true;
        n.last_beacon = 0;
        let stored = std::mem::take(&mut n.stored);
        for (gpid, disk) in stored {
            let r = SimReplica::open(gpid, node, disk, now);
            n.replicas.insert(gpid, r);
        }
        let epoch = n.epoch;
        self.trace(format!(
            "{node}: restarted{}",
            if wiped { " on a wiped disk" } else { "" }
        ));
        self.schedule(now, super::Event::NodeTick(node.to_string(), epoch));
    }
}
