//! Client sessions: which writes each client has had applied, so a write retried after
//! an unknown outcome is answered with its first decree instead of being applied twice.
//!
//! Every replica derives the same sessions from the same entries ([`Sessions::apply`] is
//! a function of the entry and the decree only), so a new primary knows what its
//! predecessor applied. A client tells with every write which of its writes it has had
//! answers for (`acked_below`); those are forgotten. A client silent for
//! [`IDLE_DECREES`] decrees is forgotten whole (checked every [`SWEEP_EVERY`] decrees).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pb;

/// A session not written to for this many decrees is forgotten.
pub const IDLE_DECREES: u64 = 1_000_000;
/// Idle sessions are swept when the decree is a multiple of this.
pub const SWEEP_EVERY: u64 = 4096;

/// One client's applied writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Writes numbered below this have been answered: forgotten.
    pub floor: u64,
    /// Applied writes at or above the floor: seq → decree.
    pub applied: BTreeMap<u64, u64>,
    /// The last decree that carried a write of this client.
    pub last: u64,
    /// Outcomes of atomic writes at or above the floor (an encoded `AtomicResult`): seq
    /// → outcome. Kept by the store's copy only (the store computes them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<u64, Vec<u8>>,
}

/// Every client's session, as of some decree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    /// By client id.
    pub clients: BTreeMap<u64, Session>,
}

/// What one apply changed, for a store that keeps sessions per client.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SessionChanges {
    /// Clients whose session changed.
    pub touched: Vec<u64>,
    /// Clients forgotten.
    pub removed: Vec<u64>,
}

impl Sessions {
    /// The decree a write was applied at, if this client's write `seq` was applied (or
    /// `Some(0)` if the client said it had its answer already).
    pub fn lookup(&self, id: &pb::RequestId) -> Option<u64> {
        let s = self.clients.get(&id.client)?;
        if id.seq < s.floor {
            return Some(0);
        }
        s.applied.get(&id.seq).copied()
    }

    /// The kept outcome of an atomic write.
    pub fn result(&self, id: &pb::RequestId) -> Option<&Vec<u8>> {
        self.clients.get(&id.client)?.results.get(&id.seq)
    }

    /// Keeps the outcome of an atomic write just applied (the first one stays: a
    /// duplicate of a write is not applied again).
    pub fn keep_result(&mut self, id: &pb::RequestId, outcome: Vec<u8>) {
        if let Some(s) = self.clients.get_mut(&id.client)
            && id.seq >= s.floor
        {
            s.results.entry(id.seq).or_insert(outcome);
        }
    }

    /// Records the writes of the entry at `decree`.
    pub fn apply(&mut self, decree: u64, requests: &[pb::RequestId]) -> SessionChanges {
        let mut changes = SessionChanges::default();
        for r in requests {
            let s = self.clients.entry(r.client).or_default();
            if r.acked_below > s.floor {
                s.floor = r.acked_below;
                s.applied = s.applied.split_off(&s.floor);
                s.results = s.results.split_off(&s.floor);
            }
            if r.seq >= s.floor {
                s.applied.entry(r.seq).or_insert(decree);
            }
            s.last = decree;
            if !changes.touched.contains(&r.client) {
                changes.touched.push(r.client);
            }
        }
        if decree.is_multiple_of(SWEEP_EVERY) {
            let idle: Vec<u64> = self
                .clients
                .iter()
                .filter(|(_, s)| s.last + IDLE_DECREES < decree)
                .map(|(c, _)| *c)
                .collect();
            for c in idle {
                self.clients.remove(&c);
                changes.touched.retain(|t| *t != c);
                changes.removed.push(c);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, seq: u64, acked_below: u64) -> pb::RequestId {
        pb::RequestId {
            client,
            seq,
            acked_below,
        }
    }

    #[test]
    fn applied_writes_are_found_answered_ones_forgotten_idle_clients_swept() {
        let mut s = Sessions::default();
        s.apply(1, &[id(7, 0, 0), id(7, 1, 0)]);
        s.apply(2, &[id(8, 5, 0)]);
        assert_eq!(s.lookup(&id(7, 1, 0)), Some(1));
        assert_eq!(s.lookup(&id(7, 2, 0)), None);
        let changes = s.apply(3, &[id(7, 2, 2)]);
        assert_eq!(changes.touched, vec![7]);
        assert_eq!(s.lookup(&id(7, 0, 0)), Some(0), "below the floor: answered");
        assert_eq!(s.clients[&7].applied.len(), 1, "seqs 0 and 1 forgotten");
        let far = SWEEP_EVERY * (IDLE_DECREES / SWEEP_EVERY + 1);
        let changes = s.apply(far, &[id(8, 6, 6)]);
        assert_eq!(changes.removed, vec![7], "client 7 idle for long");
        assert_eq!(s.lookup(&id(8, 6, 0)), Some(far));
    }

    #[test]
    fn a_retried_write_keeps_its_first_decree() {
        let mut s = Sessions::default();
        s.apply(4, &[id(1, 9, 0)]);
        s.apply(6, &[id(1, 9, 0)]);
        assert_eq!(s.lookup(&id(1, 9, 0)), Some(4));
    }
}
