//! What the simulation checks: whether the table is healthy and served, and the
//! invariants that must hold after every step.

use super::*;
use crate::pb;

impl Sim {
    /// Whether every partition has a primary and its full replica count, all ALIVE.
    pub fn healthy(&self) -> bool {
        if !self.meta.up {
            return false;
        }
        self.meta.state.list_apps(None).iter().all(|app| {
            HealthCounts::of(&app.partitions, app.record.max_replica_count, |m| {
                self.meta.state.is_alive(m) && self.nodes.get(m).is_some_and(|n| n.up)
            })
            .unhealthy
                == 0
        })
    }

    /// Whether every partition's primary (as the meta server sees it) serves.
    pub fn all_serving(&self) -> bool {
        (0..self.cfg.partitions).all(|p| {
            let gpid = Gpid::new(self.app_id, p);
            let primary = self
                .meta
                .state
                .partition(gpid)
                .ok()
                .and_then(|c| c.primary.clone());
            primary.is_some_and(|n| {
                self.nodes
                    .get(&n)
                    .and_then(|n| n.replicas.get(&gpid))
                    .is_some_and(|r| r.core.serving())
            })
        })
    }

    pub(super) fn check_invariants(&mut self) {
        let now = self.now;
        let mut found = Vec::new();
        let mut serving: BTreeMap<Gpid, Vec<String>> = BTreeMap::new();
        for (name, node) in &self.nodes {
            if !node.up {
                continue;
            }
            for (gpid, r) in &node.replicas {
                let s = r.core.status();
                if !(s.applied <= s.committed && s.committed <= s.prepared) {
                    found.push(format!(
                        "{name} {gpid}: applied {} committed {} prepared {}",
                        s.applied, s.committed, s.prepared
                    ));
                }
                if s.serving && now < node.lease_until {
                    serving.entry(*gpid).or_default().push(name.clone());
                    let acked = self.acked_decree.get(gpid).copied().unwrap_or(0);
                    if s.committed < acked {
                        found.push(format!(
                            "{name} serves {gpid} having committed {} < {acked} acknowledged",
                            s.committed
                        ));
                    }
                }
            }
        }
        for (gpid, nodes) in serving {
            if nodes.len() > 1 {
                found.push(format!(
                    "{gpid} served by {} primaries: {nodes:?}",
                    nodes.len()
                ));
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    /// Records an entry applied at `node`, checking that every replica applies the same
    /// mutations at a decree and each client write once.
    pub(super) fn record_apply(&mut self, node: &str, gpid: Gpid, e: &crate::replica::core::Entry) {
        let digest = entry_digest(e);
        match self.applied.get(&(gpid, e.decree)) {
            Some(d) if *d != digest => self.violation(format!(
                "{node} applied different mutations at {gpid} decree {}",
                e.decree
            )),
            Some(_) => {}
            None => {
                self.applied.insert((gpid, e.decree), digest);
            }
        }
        for r in &e.requests {
            match self.requests.get(&(gpid, r.client, r.seq)) {
                Some(d) if *d != e.decree => self.violation(format!(
                    "{node}: write {} of client {} applied at decrees {d} and {}",
                    r.seq, r.client, e.decree
                )),
                Some(_) => {}
                None => {
                    self.requests.insert((gpid, r.client, r.seq), e.decree);
                }
            }
        }
    }
}

/// A digest of an entry's content (not its ballot: a new primary re-stamps entries).
fn entry_digest(e: &crate::replica::core::Entry) -> u64 {
    use prost::Message;
    let content = pb::LogEntry {
        ballot: 0,
        ..(**e).clone()
    };
    crate::data::crc64(&content.encode_to_vec())
}
