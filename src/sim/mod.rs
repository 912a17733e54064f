//! A deterministic test cluster: replica servers running the real replica cores, the
//! real meta server state, clients, a network and disks — all in one process, on one
//! simulated clock, driven by a seeded scheduler. It can drop, delay, duplicate and
//! reorder messages, cut links, crash a node (losing what it had not synced, maybe
//! keeping a torn part of it), wipe its disk, stall or fail its disk, kill a replica,
//! and restart the meta server; after every step it checks the invariants:
//!
//! - at most one replica of a partition serves as primary with a valid lease;
//! - a serving primary has applied every write acknowledged to a client;
//! - no two replicas apply different mutations at one decree, and each client write is
//!   applied at one decree only;
//! - applied ≤ committed ≤ prepared on every replica;
//! - every read saw the latest acknowledged write of its key (the history checker).
//!
//! A run is replayed exactly by its seed. [`script`] runs scenario scripts (golden
//! files); [`run_random`] runs random faults for a number of steps, then heals the
//! cluster and checks every acknowledged write is still there.

pub mod client;
pub mod disk;
pub mod faults;
mod invariants;
pub mod meta;
mod meta_io;
pub mod net;
pub mod node;
mod node_io;
pub mod rng;
pub mod script;

use std::collections::{BTreeMap, VecDeque};

use crate::meta::wire::{beacon_reply_to_pb, primary_request_from_pb, report_from_pb};
use crate::model::{Gpid, HealthCounts};
use crate::replica::core::ConfigView;
use crate::replica::wire::config_request_to_pb;
use client::{Client, History};
use meta::SimMeta;
use net::{Body, Msg, Net};
use node::SimNode;
use rng::Rng;

/// A node's address: `n3` is `n3:1` (the meta server names nodes by host:port).
pub fn node_name(short: &str) -> String {
    if short.contains(':') {
        short.to_string()
    } else {
        format!("{short}:1")
    }
}

/// How many trace lines a failure report keeps.
const TRACE_LINES: usize = 200;

/// The shape of a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Replica servers.
    pub nodes: usize,
    /// Partitions of the one table.
    pub partitions: u32,
    /// Its replica count.
    pub replicas: u32,
    /// Clients.
    pub clients: usize,
    /// Keys each client writes.
    pub keys_per_client: usize,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            nodes: 5,
            partitions: 2,
            replicas: 3,
            clients: 3,
            keys_per_client: 4,
        }
    }
}

/// Something scheduled.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message arrives.
    Deliver(Msg),
    /// A node's periodic work (of the life `epoch`).
    NodeTick(String, u64),
    /// A replica's I/O job completes.
    IoDone(String, u64, Gpid),
    /// The meta server's failure detector and, every other time, cure.
    MetaTick(u64),
    /// A client's turn.
    ClientWake(usize),
    /// A crashed node starts again.
    Restart(String),
    /// The random fault injector's turn.
    Chaos,
    /// A random fault ends.
    Heal(faults::Heal),
}

/// Counts of what a run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Events processed.
    pub steps: u64,
    /// Messages sent.
    pub messages: u64,
    /// Reads a primary answered.
    pub reads_served: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
}

/// A simulated cluster.
pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: BTreeMap<String, SimNode>,
    meta: SimMeta,
    net: Net,
    clients: Vec<Client>,
    history: History,
    /// (gpid, decree) → digest of what was applied there.
    applied: BTreeMap<(Gpid, u64), u64>,
    /// (gpid, client, seq) → the decree it was applied at.
    requests: BTreeMap<(Gpid, u64, u64), u64>,
    /// The highest decree acknowledged to a client, per partition.
    acked_decree: BTreeMap<Gpid, u64>,
    trace: VecDeque<String>,
    violations: Vec<String>,
    app_id: u32,
    chaos: bool,
    /// The last read answered (operation, value), and the last failure (for scripts).
    last_read: Option<(u64, Option<Vec<u8>>)>,
    last_error: Option<String>,
    /// What the run did.
    pub stats: Stats,
}

impl Sim {
    /// A cluster of `cfg.nodes` replica servers with the table created and healthy.
    pub fn new(cfg: SimConfig, seed: u64) -> Sim {
        let mut sim = Sim::bare(cfg, seed);
        for i in 1..=sim.cfg.nodes {
            sim.add_node(&node_name(&format!("n{i}")));
        }
        sim.schedule(0, Event::MetaTick(0));
        sim.run_until(10_000, |s| {
            s.meta.state.node_counts().0 as usize == s.cfg.nodes
        });
        let (partitions, replicas) = (sim.cfg.partitions, sim.cfg.replicas);
        let created =
            sim.meta
                .state
                .create_app("t", partitions, replicas, false, Default::default());
        sim.app_id = created.expect("the simulated table is created").0;
        sim.run_until(10_000, |s| s.healthy() && s.all_serving());
        for c in 0..sim.clients.len() {
            let at = sim.now + c as u64;
            sim.schedule(at, Event::ClientWake(c));
        }
        sim
    }

    fn bare(cfg: SimConfig, seed: u64) -> Sim {
        Sim {
            rng: Rng::new(seed),
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes: BTreeMap::new(),
            meta: SimMeta::new(),
            net: Net::new(),
            clients: (0..cfg.clients)
                .map(|i| Client::new(i, cfg.keys_per_client))
                .collect(),
            history: History::default(),
            applied: BTreeMap::new(),
            requests: BTreeMap::new(),
            acked_decree: BTreeMap::new(),
            trace: VecDeque::new(),
            violations: Vec::new(),
            app_id: 0,
            chaos: false,
            last_read: None,
            last_error: None,
            stats: Stats::default(),
            cfg,
        }
    }

    /// Starts a new, empty replica server `name`.
    pub fn add_node(&mut self, name: &str) {
        self.nodes.insert(name.to_string(), SimNode::new(name));
        let now = self.now;
        self.schedule(now, Event::NodeTick(name.to_string(), 0));
    }

    /// Simulated time now (ms).
    pub fn now(&self) -> u64 {
        self.now
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at.max(self.now), self.seq), event);
    }

    /// Sends a message: cut links and random drops lose it; it arrives after a random
    /// delay, maybe twice.
    fn send(&mut self, from: &str, to: &str, body: Body) {
        self.stats.messages += 1;
        if self.net.is_cut(from, to)
            || self.net.is_blocked(from, to, body.kind())
            || self.rng.chance(self.net.drop)
        {
            return;
        }
        let copies = if self.rng.chance(self.net.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = self.rng.range(self.net.min_delay, self.net.max_delay + 1);
            let msg = Msg {
                from: from.to_string(),
                to: to.to_string(),
                body: body.clone(),
            };
            let at = self.now + delay;
            self.schedule(at, Event::Deliver(msg));
        }
    }

    fn trace(&mut self, line: String) {
        if self.trace.len() >= TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>7} ms  {line}", self.now));
    }

    fn violation(&mut self, what: String) {
        let line = format!("at {} ms: {what}", self.now);
        self.trace(format!("VIOLATION {what}"));
        if !self.violations.contains(&line) {
            self.violations.push(line);
        }
    }

    /// The invariant violations found so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// The last steps, one line each.
    pub fn trace_lines(&self) -> Vec<String> {
        self.trace.iter().cloned().collect()
    }

    /// Processes the next event and checks the invariants. Returns false when nothing
    /// is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now = self.now.max(at);
        self.stats.steps += 1;
        match event {
            Event::Deliver(msg) => self.deliver(msg),
            Event::NodeTick(node, epoch) => self.node_tick(&node, epoch),
            Event::IoDone(node, epoch, gpid) => self.io_done(&node, epoch, gpid),
            Event::MetaTick(n) => self.meta_tick(n),
            Event::ClientWake(c) => {
                self.client_wake(c);
                let at = self.now + 20;
                self.schedule(at, Event::ClientWake(c));
            }
            Event::Restart(node) => self.restart(&node, false),
            Event::Chaos => self.chaos_step(),
            Event::Heal(h) => self.heal(h),
        }
        self.check_invariants();
        true
    }

    /// Runs for `ms` of simulated time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        while self
            .events
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= until)
        {
            self.step();
        }
        self.now = until;
    }

    /// Runs until `done` holds (checked after every step) or `ms` pass; returns whether
    /// it holds.
    pub fn run_until(&mut self, ms: u64, done: impl Fn(&Sim) -> bool) -> bool {
        let until = self.now + ms;
        while !done(self) {
            if self
                .events
                .first_key_value()
                .is_none_or(|((at, _), _)| *at > until)
            {
                self.now = until;
                return done(self);
            }
            self.step();
        }
        true
    }

    fn deliver(&mut self, msg: Msg) {
        let Msg { from, to, body } = msg;
        if to == "meta" {
            self.meta_receive(&from, body);
        } else if to.starts_with('c') {
            self.on_client_reply(&to, body);
        } else {
            self.node_receive(&to, &from, body);
        }
    }
}

/// What a random run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// What happened.
    pub stats: Stats,
    /// Writes acknowledged, reads checked, writes given up.
    pub history: (u64, u64, u64),
    /// Simulated time at the end (ms).
    pub sim_ms: u64,
}

/// A failed random run: what broke and the last steps before it.
#[derive(Debug, Clone)]
pub struct RunFailure {
    /// The seed (rerun it to replay the failure).
    pub seed: u64,
    /// The invariants broken.
    pub violations: Vec<String>,
    /// The last steps.
    pub trace: Vec<String>,
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} broke {} invariant(s):",
            self.seed,
            self.violations.len()
        )?;
        for v in &self.violations {
            writeln!(f, "  {v}")?;
        }
        writeln!(f, "last steps:")?;
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        Ok(())
    }
}

/// Runs random faults for `steps` events, then heals the cluster and reads every key
/// back. Fails on the first broken invariant.
pub fn run_random(seed: u64, steps: u64, cfg: SimConfig) -> Result<RunReport, RunFailure> {
    run_random_watched(seed, steps, cfg, |_| {})
}

/// [`run_random`], calling `watch` after every step (to print how a failing seed
/// unfolds).
pub fn run_random_watched(
    seed: u64,
    steps: u64,
    cfg: SimConfig,
    mut watch: impl FnMut(&Sim),
) -> Result<RunReport, RunFailure> {
    let mut sim = Sim::new(cfg, seed);
    sim.start_chaos();
    while sim.stats.steps < steps && sim.violations.is_empty() {
        sim.step();
        watch(&sim);
    }
    if sim.violations.is_empty() {
        sim.finish();
    }
    if !sim.violations.is_empty() {
        return Err(RunFailure {
            seed,
            violations: sim.violations.clone(),
            trace: sim.trace_lines(),
        });
    }
    Ok(RunReport {
        seed,
        history: (sim.history.acked, sim.history.reads, sim.history.abandoned),
        sim_ms: sim.now,
        stats: sim.stats,
    })
}

#[cfg(test)]
mod tests;
