//! The core's view of its prepare log: consecutive entries after a base decree, each
//! tagged with the persist that writes it, so the core knows which decrees are durable.
//!
//! Rules: entries are consecutive (`base+1 ..= last`); an entry written at a decree the
//! log already holds replaces it and everything after it (on disk, replay applies the
//! same rule); the durable point is the highest decree whose every entry up to it has
//! been persisted, and it falls back when a truncation replaces entries.

use std::collections::VecDeque;

use crate::replica::core::types::{Entry, HardState, LogRecord};

#[derive(Debug, Clone)]
struct Slot {
    entry: Entry,
    /// The persist that writes this entry (0: already on disk).
    persist: u64,
}

/// A replica's log, in memory.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// The decree before the first entry (a snapshot's, or compacted away).
    base: u64,
    /// The ballot of the entry at `base`, if known (0: unknown).
    base_ballot: i64,
    slots: VecDeque<Slot>,
    /// Every persist up to this id is done.
    persisted: u64,
    /// Every entry up to this decree is durable.
    durable: u64,
    bytes: usize,
}

fn size(entry: &Entry) -> usize {
    64 + entry
        .mutations
        .iter()
        .map(|m| m.hash_key.len() + m.sort_key.len() + m.value.len() + 16)
        .sum::<usize>()
}

impl Log {
    /// An empty log after `base`.
    pub fn new(base: u64) -> Log {
        Log {
            base,
            durable: base,
            ..Log::default()
        }
    }

    /// The log recovered from disk: `entries` (consecutive, oldest first) are durable;
    /// those at or below `applied` are dropped, and so is anything after a gap.
    pub fn recovered(entries: Vec<Entry>, applied: u64) -> Log {
        let mut log = Log::new(applied);
        for e in entries {
            if e.decree <= applied {
                if e.decree == applied {
                    log.base_ballot = e.ballot;
                }
                continue;
            }
            if e.decree != log.last() + 1 {
                break;
            }
            log.append(e, 0);
        }
        log.durable = log.last();
        log
    }

    /// The decree before the first entry.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The first decree the log holds an entry for (`last() + 1` when empty).
    pub fn first(&self) -> u64 {
        self.base + 1
    }

    /// The last decree logged (the base when empty).
    pub fn last(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// The highest decree up to which every entry is durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// Bytes the entries take, roughly.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry at `decree`.
    pub fn get(&self, decree: u64) -> Option<&Entry> {
        let i = decree.checked_sub(self.base + 1)?;
        self.slots.get(i as usize).map(|s| &s.entry)
    }

    /// The ballot of the entry at `decree` (the base's if known; 0 if unknown).
    pub fn ballot_at(&self, decree: u64) -> i64 {
        if decree == self.base {
            return self.base_ballot;
        }
        self.get(decree).map_or(0, |e| e.ballot)
    }

    /// Entries `from ..= to` (clamped to what the log holds).
    pub fn range(&self, from: u64, to: u64) -> Vec<Entry> {
        let from = from.max(self.first());
        let to = to.min(self.last());
        (from..=to).filter_map(|d| self.get(d).cloned()).collect()
    }

    /// Appends `entry` (at `last() + 1`), written by persist `persist`.
    pub fn append(&mut self, entry: Entry, persist: u64) {
        debug_assert_eq!(entry.decree, self.last() + 1, "log entries are consecutive");
        self.bytes += size(&entry);
        self.slots.push_back(Slot { entry, persist });
    }

    /// Drops every entry at `decree` and after.
    pub fn truncate_from(&mut self, decree: u64) {
        let keep = decree.saturating_sub(self.base + 1) as usize;
        while self.slots.len() > keep {
            if let Some(s) = self.slots.pop_back() {
                self.bytes -= size(&s.entry);
            }
        }
        self.durable = self.durable.min(self.last());
    }

    /// Persists up to `id` are done: the durable point moves on.
    pub fn persisted(&mut self, id: u64) {
        self.persisted = self.persisted.max(id);
        while let Some(s) = self.get_slot(self.durable + 1) {
            if s.persist > self.persisted {
                break;
            }
            self.durable += 1;
        }
    }

    fn get_slot(&self, decree: u64) -> Option<&Slot> {
        let i = decree.checked_sub(self.base + 1)?;
        self.slots.get(i as usize)
    }

    /// Forgets entries below `decree` (their effects are durable in the store).
    pub fn compact(&mut self, decree: u64) {
        while self.first() < decree {
            let Some(s) = self.slots.pop_front() else {
                break;
            };
            self.bytes -= size(&s.entry);
            self.base = s.entry.decree;
            self.base_ballot = s.entry.ballot;
        }
        self.durable = self.durable.max(self.base);
    }

    /// Empties the log, which now starts after `base` (a snapshot's decree).
    pub fn reset(&mut self, base: u64) {
        let persisted = self.persisted;
        *self = Log::new(base);
        self.persisted = persisted;
    }
}

/// What a log's records say, replayed in order: the last promise, and the entries
/// (an entry at decree `d` replaces every entry at `d` and after, as it did when it was
/// written), oldest first.
pub fn replay(records: impl IntoIterator<Item = LogRecord>) -> (HardState, Vec<Entry>) {
    let mut hard = HardState::default();
    let mut entries: std::collections::BTreeMap<u64, Entry> = std::collections::BTreeMap::new();
    for r in records {
        match r {
            LogRecord::Hard(h) => hard = h,
            LogRecord::Entry(e) => {
                entries.split_off(&e.decree);
                entries.insert(e.decree, e);
            }
        }
    }
    (hard, entries.into_values().collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pb;

    fn e(ballot: i64, decree: u64) -> Entry {
        Arc::new(pb::LogEntry {
            ballot,
            decree,
            ..Default::default()
        })
    }

    #[test]
    fn the_durable_point_follows_persists_and_falls_back_on_truncation() {
        let mut log = Log::new(0);
        log.append(e(1, 1), 1);
        log.append(e(1, 2), 2);
        log.append(e(1, 3), 2);
        assert_eq!(log.durable(), 0);
        log.persisted(1);
        assert_eq!(log.durable(), 1);
        log.persisted(2);
        assert_eq!(log.durable(), 3);
        log.truncate_from(2);
        assert_eq!((log.last(), log.durable()), (1, 1));
        log.append(e(2, 2), 3);
        assert_eq!(log.durable(), 1, "the replacement is not durable yet");
        log.persisted(3);
        assert_eq!(log.durable(), 2);
        assert_eq!(log.ballot_at(2), 2);
    }

    #[test]
    fn replay_keeps_the_last_promise_and_lets_an_entry_replace_its_decree_and_after() {
        let hard = |b| {
            LogRecord::Hard(HardState {
                ballot: b,
                primary: Some("p".into()),
            })
        };
        let (h, entries) = replay([
            hard(1),
            LogRecord::Entry(e(1, 1)),
            LogRecord::Entry(e(1, 2)),
            LogRecord::Entry(e(1, 3)),
            hard(2),
            LogRecord::Entry(e(2, 2)),
        ]);
        assert_eq!(h.ballot, 2);
        let got: Vec<(i64, u64)> = entries.iter().map(|e| (e.ballot, e.decree)).collect();
        assert_eq!(got, [(1, 1), (2, 2)]);
    }

    #[test]
    fn recovery_keeps_the_run_after_the_applied_decree_and_compaction_moves_the_base() {
        let log = Log::recovered(vec![e(1, 3), e(1, 4), e(2, 5), e(2, 7)], 3);
        assert_eq!((log.base(), log.last(), log.durable()), (3, 5, 5));
        assert_eq!(log.ballot_at(3), 1, "the base's ballot is kept");
        let mut log = log;
        log.compact(5);
        assert_eq!((log.first(), log.last()), (5, 5));
        assert_eq!(log.ballot_at(4), 1);
        assert_eq!(log.range(1, 9).len(), 1);
        log.reset(9);
        assert_eq!((log.last(), log.durable()), (9, 9));
    }
}
