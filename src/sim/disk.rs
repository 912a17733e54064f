//! One simulated replica's disk: the prepare log (records synced, and records written
//! but not yet synced) and the store (what is durable, and what is only in memory). A
//! crash keeps the synced log and a random prefix of the unsynced records (a torn
//! write), and the store as last synced; recovery replays the log by the same rule the
//! real log uses.

use std::collections::BTreeMap;

use crate::data::encode_key;
use crate::replica::core::log::replay;
use crate::replica::core::sessions::Sessions;
use crate::replica::core::{DataState, Entry, HardState, LogRecord, Recovered};
use crate::sim::rng::Rng;

/// A replica's store, as of some decree.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Encoded key → value.
    pub records: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The last decree applied.
    pub applied: u64,
    /// The client sessions as of `applied`.
    pub sessions: Sessions,
    /// Holds verified data (not a snapshot being loaded).
    pub valid: bool,
}

impl Store {
    /// Applies one committed entry.
    pub fn apply(&mut self, e: &Entry) {
        for m in &e.mutations {
            let key = encode_key(&m.hash_key, &m.sort_key).unwrap_or_default();
            if m.delete {
                self.records.remove(&key);
            } else {
                self.records.insert(key, m.value.clone());
            }
        }
        self.sessions.apply(e.decree, &e.requests);
        self.applied = e.decree;
    }
}

/// One replica's disk.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// Synced log records.
    pub log: Vec<LogRecord>,
    /// Written, not synced.
    pub unsynced: Vec<LogRecord>,
    /// The store as last synced.
    pub durable: Store,
    /// The store in memory.
    pub volatile: Store,
    /// The replica was deleted (or its disk failed) at this ballot.
    pub lost: Option<i64>,
    /// The replica's directory exists (it was created empty, or is being learned).
    pub created: bool,
}

impl Disk {
    /// What a replica opening this disk recovers.
    pub fn recover(&self) -> Recovered {
        if !self.created && self.lost.is_none() {
            return Recovered::default();
        }
        if let Some(ballot) = self.lost {
            return Recovered {
                data: Some(DataState::Lost(ballot)),
                hard: replay(self.log.iter().cloned()).0,
                ..Recovered::default()
            };
        }
        let (hard, entries) = replay(self.log.iter().cloned());
        let data = if self.durable.valid {
            DataState::Valid
        } else {
            DataState::Learning
        };
        Recovered {
            data: Some(data),
            hard,
            entries,
            applied: self.durable.applied,
            sessions: self.durable.sessions.clone(),
        }
    }

    /// The process died: a random prefix of what was written but not synced survives,
    /// the store falls back to its last sync.
    pub fn crash(&mut self, rng: &mut Rng) {
        let kept = rng.range(0, self.unsynced.len() as u64 + 1) as usize;
        let unsynced = std::mem::take(&mut self.unsynced);
        self.log.extend(unsynced.into_iter().take(kept));
        self.volatile = self.durable.clone();
    }

    /// Syncs what was written.
    pub fn sync(&mut self) {
        let unsynced = std::mem::take(&mut self.unsynced);
        self.log.extend(unsynced);
    }

    /// The last promise written (synced or not).
    pub fn last_hard(&self) -> Option<HardState> {
        self.log
            .iter()
            .chain(&self.unsynced)
            .rev()
            .find_map(|r| match r {
                LogRecord::Hard(h) => Some(h.clone()),
                LogRecord::Entry(_) => None,
            })
    }

    /// Drops the oldest records, up to the first entry at `decree` or after (keeping
    /// the last promise) — as the real log deletes its oldest segments only. An entry
    /// below `decree` after that one stays: it may have replaced stale entries above
    /// `decree`, which replay would otherwise bring back.
    pub fn compact(&mut self, decree: u64) {
        self.sync();
        let hard = self.last_hard();
        let below = self
            .log
            .iter()
            .take_while(|r| match r {
                LogRecord::Entry(e) => e.decree < decree,
                LogRecord::Hard(_) => true,
            })
            .count();
        self.log.drain(..below);
        if let Some(h) = hard {
            self.log.insert(0, LogRecord::Hard(h));
        }
    }

    /// Empties the store and the log (keeping the last promise), marked incomplete.
    pub fn reset(&mut self) {
        let hard = self.last_hard();
        self.unsynced.clear();
        self.log = hard.map(LogRecord::Hard).into_iter().collect();
        self.durable = Store::default();
        self.volatile = Store::default();
        self.lost = None;
        self.created = true;
    }

    /// Deletes everything; the replica is lost at `ballot`.
    pub fn destroy(&mut self, ballot: i64) {
        *self = Disk {
            lost: Some(ballot),
            ..Disk::default()
        };
    }

    /// An empty, valid store.
    pub fn create_empty(&mut self) {
        let hard = self.last_hard();
        *self = Disk::default();
        self.log = hard.map(LogRecord::Hard).into_iter().collect();
        self.durable.valid = true;
        self.volatile.valid = true;
        self.created = true;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pb;

    fn entry(ballot: i64, decree: u64) -> LogRecord {
        LogRecord::Entry(Arc::new(pb::LogEntry {
            ballot,
            decree,
            ..Default::default()
        }))
    }

    #[test]
    fn compaction_keeps_an_entry_that_replaced_stale_ones_still_in_the_log() {
        // Ballot 1 logged decrees 1-5; ballot 2's primary replaced them from 3 on.
        let mut disk = Disk {
            log: (1..=5).map(|d| entry(1, d)).chain([entry(2, 3)]).collect(),
            ..Disk::default()
        };
        disk.compact(4);
        let (_, entries) = replay(disk.log.clone());
        let tags: Vec<(i64, u64)> = entries.iter().map(|e| (e.ballot, e.decree)).collect();
        assert_eq!(tags, [(2, 3)]);
        // A log in decree order loses everything below the decree.
        disk.log = (1..=5).map(|d| entry(2, d)).collect();
        disk.compact(4);
        let (_, entries) = replay(disk.log.clone());
        assert_eq!(entries.iter().map(|e| e.decree).collect::<Vec<_>>(), [4, 5]);
    }
}
