//! What a point read sees before the store does: a serving primary answers writers once
//! their entry is committed and applies committed entries in batches, so a `get` may
//! come while the store still lacks some of them. The worker publishes those entries
//! with the commit point (before it answers the writers they hold); a read of one
//! record takes the last committed mutation of it from them, else reads the store,
//! whose value of that record no later committed entry changes. A later atomic write
//! (incr, check_and_set) on the hash key, or entries not all at hand, send the read to
//! wait for the store instead.

use crate::data::expired;
use crate::replica::core::Entry;

/// At most this many committed entries are published; a read behind more waits for the
/// store.
pub const MAX_PENDING: u64 = 1024;

/// Committed entries the store may not hold yet.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    /// The commit point they run up to.
    pub committed: u64,
    /// Every committed entry after the store's applied decree when published, in order.
    pub entries: Vec<Entry>,
    /// Whether `entries` are all there (false: a read waits for the store).
    pub complete: bool,
}

/// One record as the pending entries tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No pending entry changes it: the store's value is current.
    Untouched,
    /// Its last pending change sets it: value, expiry.
    Set(Vec<u8>, u32),
    /// Its last pending change deletes it (or it has expired).
    Gone,
}

impl Pending {
    /// The entries `(applied, committed]` of `entry(decree)`, or incomplete if one is
    /// missing or there are more than [`MAX_PENDING`].
    pub fn collect(applied: u64, committed: u64, entry: impl Fn(u64) -> Option<Entry>) -> Pending {
        let from = applied.min(committed);
        if committed - from > MAX_PENDING {
            return Pending {
                committed,
                ..Pending::default()
            };
        }
        let entries: Option<Vec<Entry>> = (from + 1..=committed).map(entry).collect();
        Pending {
            committed,
            complete: entries.is_some(),
            entries: entries.unwrap_or_default(),
        }
    }

    /// What the pending entries say of record (`hash_key`, `sort_key`) at `now_secs`;
    /// `None` when only the store can tell (an atomic write on it, or entries missing).
    pub fn seen(&self, hash_key: &[u8], sort_key: &[u8], now_secs: u64) -> Option<Seen> {
        if !self.complete {
            return None;
        }
        let mutations = self
            .entries
            .iter()
            .rev()
            .flat_map(|e| e.mutations.iter().rev());
        for m in mutations {
            if m.hash_key != hash_key {
                continue;
            }
            // An atomic write decides at apply what it sets, and where: check_and_set
            // may set another sort key of its hash key than the one it checks.
            if m.atomic.is_some() {
                return None;
            }
            if m.sort_key != sort_key {
                continue;
            }
            if m.delete || expired(m.expire_ts, now_secs) {
                return Some(Seen::Gone);
            }
            return Some(Seen::Set(m.value.clone(), m.expire_ts));
        }
        Some(Seen::Untouched)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pb;

    fn entry(decree: u64, mutations: Vec<pb::Mutation>) -> Entry {
        Arc::new(pb::LogEntry {
            ballot: 1,
            decree,
            mutations,
            requests: vec![],
        })
    }

    fn put(sk: &str, v: &str, expire_ts: u32) -> pb::Mutation {
        pb::Mutation {
            hash_key: b"h".to_vec(),
            sort_key: sk.into(),
            value: v.into(),
            expire_ts,
            ..Default::default()
        }
    }

    fn atomic(sk: &str, op: pb::atomic::Op) -> pb::Mutation {
        pb::Mutation {
            atomic: Some(pb::Atomic {
                op: Some(op),
                ..Default::default()
            }),
            ..put(sk, "", 0)
        }
    }

    /// What the worker publishes of `log` with the store at `applied`.
    fn published(log: &[Entry], applied: u64, committed: u64) -> Pending {
        Pending::collect(applied, committed, |d| {
            log.iter().find(|e| e.decree == d).cloned()
        })
    }

    fn del(sk: &str) -> pb::Mutation {
        pb::Mutation {
            delete: true,
            ..put(sk, "", 0)
        }
    }

    #[test]
    fn the_last_committed_change_of_a_record_wins_and_others_read_the_store() {
        let log = [
            entry(5, vec![put("a", "1", 0), put("b", "1", 0)]),
            entry(6, vec![put("a", "2", 0), del("b")]),
            entry(7, vec![put("c", "old", 100), put("c", "new", 0)]),
        ];
        let pending = published(&log, 4, 7);
        assert!(pending.complete);
        assert_eq!(
            pending.seen(b"h", b"a", 0),
            Some(Seen::Set(b"2".to_vec(), 0))
        );
        assert_eq!(pending.seen(b"h", b"b", 0), Some(Seen::Gone));
        assert_eq!(
            pending.seen(b"h", b"c", 0),
            Some(Seen::Set(b"new".to_vec(), 0))
        );
        assert_eq!(pending.seen(b"h", b"z", 0), Some(Seen::Untouched));
        assert_eq!(pending.seen(b"other", b"a", 0), Some(Seen::Untouched));
        // Only what the store lacks is published.
        let later = published(&log, 6, 7);
        assert_eq!(later.entries.len(), 1);
        assert_eq!(later.seen(b"h", b"a", 0), Some(Seen::Untouched));
    }

    #[test]
    fn expired_values_are_gone_and_atomic_writes_or_missing_entries_defer_to_the_store() {
        let incr = atomic("n", pb::atomic::Op::Incr(1));
        let log = [entry(1, vec![incr]), entry(2, vec![put("t", "v", 10)])];
        let pending = published(&log, 0, 2);
        assert_eq!(
            pending.seen(b"h", b"t", 5),
            Some(Seen::Set(b"v".to_vec(), 10))
        );
        assert_eq!(pending.seen(b"h", b"t", 10), Some(Seen::Gone));
        assert_eq!(
            pending.seen(b"h", b"n", 0),
            None,
            "incr: only the apply knows"
        );
        // check_and_set on sort key "c" may set "t" (its set sort key): a later atomic
        // write on the hash key defers every record of it to the store.
        let cas = atomic(
            "c",
            pb::atomic::Op::CheckAndSet(pb::CheckAndSet {
                set_sort_key: b"t".to_vec(),
                ..Default::default()
            }),
        );
        let log = [
            entry(1, vec![put("t", "3", 0)]),
            entry(2, vec![cas.clone()]),
        ];
        let pending = published(&log, 0, 2);
        assert_eq!(
            pending.seen(b"h", b"t", 0),
            None,
            "check_and_set may have set it"
        );
        assert_eq!(pending.seen(b"other", b"t", 0), Some(Seen::Untouched));
        // An atomic write before the last plain change of a record does not matter.
        let log = [entry(1, vec![cas]), entry(2, vec![put("t", "5", 0)])];
        let pending = published(&log, 0, 2);
        assert_eq!(
            pending.seen(b"h", b"t", 0),
            Some(Seen::Set(b"5".to_vec(), 0))
        );
        let gap = published(&log, 0, 3);
        assert!(!gap.complete);
        assert_eq!(gap.seen(b"h", b"t", 0), None);
        let far = Pending::collect(0, MAX_PENDING + 1, |_| log.first().cloned());
        assert!(!far.complete, "too many: reads wait for the store");
    }
}
