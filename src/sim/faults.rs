//! The random fault injector, and the end of a random run. Faults that only take
//! availability (crashes, cut links, lost or duplicated messages, slow disks, primary
//! moves, meta server restarts and store failures) come at any time; faults that
//! destroy a replica's data (a wiped disk, `replica.kill_partition`, a failed sync) come
//! only while every partition is fully healthy and no node is down — as the kill test's
//! killer waits — so the cluster always keeps a copy of every acknowledged write.

use crate::model::Gpid;
use crate::replica::core::{DataState, Input};
use crate::sim::client::{store_key, version_of};
use crate::sim::{Event, Sim};

/// A fault that ends later.
#[derive(Debug, Clone)]
pub enum Heal {
    /// Cut links are restored.
    Links,
    /// Message loss, duplication and delay spikes end.
    Net,
    /// The meta server starts again.
    MetaUp,
    /// The meta store writes again.
    MetaStore,
}

impl Sim {
    /// Starts injecting random faults.
    pub fn start_chaos(&mut self) {
        self.chaos = true;
        let at = self.now + 100;
        self.schedule(at, Event::Chaos);
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.faults.entry(what).or_default() += 1;
    }

    fn down(&self) -> usize {
        self.nodes.values().filter(|n| !n.up).count()
    }

    fn up_nodes(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.up)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether a fault may destroy a replica's data now: everything healthy, nothing
    /// down, every replica held with verified data.
    fn may_destroy(&self) -> bool {
        self.healthy()
            && self.down() == 0
            && self.nodes.values().all(|n| {
                n.replicas
                    .values()
                    .all(|r| r.core.status().data == DataState::Valid)
            })
    }

    pub(super) fn chaos_step(&mut self) {
        if !self.chaos {
            return;
        }
        let next = self.now + self.rng.range(50, 400);
        self.schedule(next, Event::Chaos);
        let roll = self.rng.range(0, 100);
        let up = self.up_nodes();
        let Some(victim) = self.rng.pick(&up).cloned() else {
            return;
        };
        match roll {
            0..20 if self.down() < 2 => {
                self.crash(&victim);
                let at = self.now + self.rng.range(100, 3000);
                self.schedule(at, Event::Restart(victim));
                self.count("crash");
            }
            20..24 if self.may_destroy() => {
                self.wipe(&victim);
                let at = self.now + self.rng.range(0, 800);
                self.schedule(at, Event::Restart(victim));
                self.count("wipe");
            }
            24..34 if self.net.describe().is_empty() => {
                let mut others: Vec<String> = self.nodes.keys().cloned().collect();
                others.push("meta".into());
                others.extend(self.clients.iter().map(|c| c.name.clone()));
                for other in others {
                    if other != victim && self.rng.chance(0.5) {
                        self.net.cut(&victim, &other);
                    }
                }
                let at = self.now + self.rng.range(100, 2000);
                self.schedule(at, Event::Heal(Heal::Links));
                self.count("partition");
            }
            34..42 => {
                self.net.drop = [0.02, 0.1, 0.3][self.rng.range(0, 3) as usize];
                self.net.dup = 0.05;
                if self.rng.chance(0.3) {
                    self.net.max_delay = 60;
                }
                let at = self.now + self.rng.range(200, 2000);
                self.schedule(at, Event::Heal(Heal::Net));
                self.count("lossy network");
            }
            42..50 => {
                let until = self.now + self.rng.range(100, 1500);
                let n = self.nodes.get_mut(&victim).expect("node");
                for r in n.replicas.values_mut() {
                    r.stall_until = until;
                }
                self.count("stalled disk");
            }
            50..53 if self.may_destroy() => {
                let gpids: Vec<Gpid> = self.nodes[&victim].replicas.keys().copied().collect();
                if let Some(g) = self.rng.pick(&gpids).copied()
                    && let Some(r) = self
                        .nodes
                        .get_mut(&victim)
                        .and_then(|n| n.replicas.get_mut(&g))
                {
                    r.fail_sync = true;
                    self.count("failed sync");
                }
            }
            53..57 if self.may_destroy() => {
                let gpids: Vec<Gpid> = self.nodes[&victim].replicas.keys().copied().collect();
                if let Some(g) = self.rng.pick(&gpids).copied() {
                    self.trace(format!("{victim}: replica.kill_partition {g}"));
                    self.step_core(&victim, g, Input::Kill);
                    self.count("kill partition");
                }
            }
            57..65 => self.propose_move(),
            65..68 if self.meta.up => {
                self.meta.up = false;
                let at = self.now + self.rng.range(100, 1000);
                self.schedule(at, Event::Heal(Heal::MetaUp));
                self.trace("meta: crashed".into());
                self.count("meta restart");
            }
            68..71 => {
                self.meta.store.fail(true);
                let at = self.now + self.rng.range(100, 1000);
                self.schedule(at, Event::Heal(Heal::MetaStore));
                self.count("meta store failure");
            }
            _ => {}
        }
    }

    /// Proposes a balancer move on a random partition, as `balance` would: the primary
    /// to a secondary (no copy), or a copy of the primary or of a secondary to a node
    /// that holds no replica of it.
    fn propose_move(&mut self) {
        use crate::meta::snapshot::Action;
        let now = self.meta.at(self.now);
        let pidx = self.rng.range(0, self.cfg.partitions as u64) as u32;
        let gpid = Gpid::new(self.app_id, pidx);
        let Ok(config) = self.meta.state.partition(gpid).cloned() else {
            return;
        };
        let outsiders: Vec<String> = self
            .nodes
            .keys()
            .filter(|n| !config.members().any(|m| m == n.as_str()))
            .cloned()
            .collect();
        let (Some(from), Some(to), Some(out)) = (
            config.primary.clone(),
            self.rng.pick(&config.secondaries).cloned(),
            self.rng.pick(&outsiders).cloned(),
        ) else {
            return;
        };
        let (action, kind) = match self.rng.range(0, 4) {
            0 => (
                Action::CopyPrimary {
                    gpid,
                    from,
                    to: out,
                },
                "primary copy",
            ),
            1 => (
                Action::CopySecondary {
                    gpid,
                    from: to,
                    to: out,
                },
                "secondary copy",
            ),
            _ => (Action::MovePrimary { gpid, from, to }, "primary move"),
        };
        if self.meta.up && self.meta.state.propose(action.clone(), false, now).is_ok() {
            self.trace(format!("meta: proposed {action}"));
            self.count(kind);
        }
    }

    /// Crashes `node` and deletes its data directory: it comes back as a new node.
    pub fn wipe(&mut self, node: &str) {
        self.crash(node);
        if let Some(n) = self.nodes.get_mut(node) {
            n.stored.clear();
            n.incarnation += 1;
        }
        self.trace(format!("{node}: disk wiped"));
    }

    pub(super) fn heal(&mut self, heal: Heal) {
        match heal {
            Heal::Links => {
                let cut = self.net.describe();
                self.net.heal();
                if !cut.is_empty() {
                    self.trace(format!("net: healed {}", cut.join(", ")));
                }
            }
            Heal::Net => {
                self.net.drop = 0.0;
                self.net.dup = 0.0;
                self.net.max_delay = 5;
            }
            Heal::MetaUp => {
                let now = self.now;
                self.meta.restart(now);
                self.trace("meta: restarted".into());
            }
            Heal::MetaStore => {
                self.meta.store.fail(false);
            }
        }
    }

    /// Ends a random run: no more faults, everything restarted and healed; waits for the
    /// cluster to be healthy and the clients done, then checks every acknowledged write
    /// is on every replica of its partition.
    pub fn finish(&mut self) {
        self.chaos = false;
        self.net.heal();
        self.net.max_delay = 5;
        self.meta.store.fail(false);
        if !self.meta.up {
            let now = self.now;
            self.meta.restart(now);
        }
        // A replica whose disk failed trusts nothing until its process restarts: the
        // operator restarts the node, as after any disk error.
        let broken: Vec<String> = self
            .nodes
            .values()
            .filter(|n| {
                n.up && n.replicas.values().any(|r| {
                    matches!(
                        r.core.status().data,
                        crate::replica::core::DataState::Broken(_)
                    )
                })
            })
            .map(|n| n.name.clone())
            .collect();
        for n in broken {
            self.trace(format!(
                "{n}: restarted by the operator (a replica's disk failed)"
            ));
            self.crash(&n);
        }
        let down: Vec<String> = self
            .nodes
            .values()
            .filter(|n| !n.up)
            .map(|n| n.name.clone())
            .collect();
        for n in down {
            self.restart(&n, false);
        }
        for n in self.nodes.values_mut() {
            for r in n.replicas.values_mut() {
                r.stall_until = 0;
                r.fail_sync = false;
            }
        }
        for c in &mut self.clients {
            c.active = false;
        }
        let settled = self.run_until(120_000, |s| {
            s.healthy() && s.clients.iter().all(|c| c.op.is_none())
        });
        if !settled {
            let status = self.describe();
            self.violation(format!(
                "the cluster did not recover within 120 s:\n{status}"
            ));
            return;
        }
        // Let commit points reach every secondary, then compare every replica.
        self.run_for(2_000);
        self.verify_replicas();
    }

    /// Every acknowledged write is readable from its primary, and every member of a
    /// partition holds the same records once caught up.
    fn verify_replicas(&mut self) {
        let mut found = Vec::new();
        for (key, acked) in self.history.last_acked() {
            let gpid = Gpid::new(
                self.app_id,
                crate::data::partition_index(&key, b"", self.cfg.partitions),
            );
            let Some(primary) = self
                .meta
                .state
                .partition(gpid)
                .ok()
                .and_then(|c| c.primary.clone())
            else {
                found.push(format!("{gpid} has no primary at the end"));
                continue;
            };
            let Some(r) = self.nodes.get(&primary).and_then(|n| n.replicas.get(&gpid)) else {
                found.push(format!("{primary} does not hold {gpid}"));
                continue;
            };
            let got = r
                .disk
                .volatile
                .records
                .get(&store_key(&key))
                .and_then(|v| version_of(v))
                .unwrap_or(0);
            if got < acked {
                found.push(format!(
                    "{} lost: version {acked} was acknowledged, the primary {primary} has {got}",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
        for p in 0..self.cfg.partitions {
            let gpid = Gpid::new(self.app_id, p);
            let Ok(config) = self.meta.state.partition(gpid).cloned() else {
                continue;
            };
            let stores: Vec<(String, u64, usize)> = config
                .members()
                .filter_map(|m| {
                    let r = self.nodes.get(m)?.replicas.get(&gpid)?;
                    let digest = r.disk.volatile.records.len();
                    Some((m.to_string(), r.disk.volatile.applied, digest))
                })
                .collect();
            let contents: Vec<_> = config
                .members()
                .filter_map(|m| {
                    Some(
                        &self
                            .nodes
                            .get(m)?
                            .replicas
                            .get(&gpid)?
                            .disk
                            .volatile
                            .records,
                    )
                })
                .collect();
            if contents.windows(2).any(|w| w[0] != w[1]) {
                found.push(format!(
                    "{gpid}: replicas differ after catching up: {stores:?}\n{}",
                    self.describe()
                ));
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    /// Every partition's configuration and every replica's state, one line each.
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        for app in self.meta.state.list_apps(None) {
            for p in &app.partitions {
                out.push(format!(
                    "{}.{} ballot {} primary {} secondaries [{}] last_drops [{}]",
                    app.record.app_id,
                    p.pidx,
                    p.ballot,
                    p.primary.as_deref().unwrap_or("-"),
                    p.secondaries.join(","),
                    p.last_drops.join(",")
                ));
            }
        }
        for (name, n) in &self.nodes {
            if !n.up {
                out.push(format!("{name}: down"));
                continue;
            }
            for (g, r) in &n.replicas {
                let s = r.core.status();
                out.push(format!(
                    "{name} {g}: {} data {:?} ballot {} committed {} prepared {} applied {}",
                    role_name(r.core.role()),
                    s.data,
                    s.ballot,
                    s.committed,
                    s.prepared,
                    s.applied
                ));
            }
        }
        out.join("\n")
    }
}

/// A role's short name.
pub fn role_name(role: &crate::replica::core::Role) -> String {
    use crate::replica::core::Role;
    match role {
        Role::Inactive => "inactive".into(),
        Role::Secondary(p) => format!("secondary of {p}"),
        Role::Learner(p, stage) => format!("learner of {p} ({stage:?})"),
        Role::Primary(p) => format!("primary ({:?})", p.stage),
    }
}
