//! One replica of one partition: its store, its prepare log and its view of the
//! partition's configuration, with the PacificA rules a replica follows whatever its role.
//!
//! - A prepare carrying a ballot lower than the replica's is refused (stale); a higher
//!   one is adopted (a primary that sees it steps down).
//! - Entries are logged durably before the prepare is acknowledged; a decree beyond the
//!   next one is refused (a gap: the replica missed entries and must learn again).
//! - Only entries up to the commit point are applied to the store, in decree order.
//! - A learner whose snapshot is not loaded yet only logs entries: its store is not
//!   valid until the snapshot is in.
//!
//! Blocking work (fsync, store transactions) runs on tokio's blocking pool through
//! [`Partition::with_state`]; the primary's write pipeline is in [`super::primary`] and
//! learning in [`super::learn`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::model::{Gpid, ReplicaRole};
use crate::pb;
use crate::replica::learn::MARKER;
use crate::replica::plog::{LogSync, PrepareLog};
use crate::replica::primary::Job;
use crate::replica::storage::{Mutation, ReplicaStore};

/// Compact the prepare log once it is larger than this.
const LOG_COMPACT_BYTES: u64 = 32 << 20;
/// Make the store durable at least every this many applied decrees.
const DURABLE_EVERY: u64 = 1024;

/// The replica's view of its partition's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The configuration ballot.
    pub ballot: i64,
    /// This replica's role in it.
    pub role: ReplicaRole,
    /// The primary's address.
    pub primary: Option<String>,
    /// The secondaries' addresses.
    pub secondaries: Vec<String>,
}

impl View {
    /// `me`'s view of a configuration the meta server sent.
    pub fn of(config: &pb::PartitionConfig, me: &str) -> View {
        let role = if config.primary == me {
            ReplicaRole::Primary
        } else if config.secondaries.iter().any(|s| s == me) {
            ReplicaRole::Secondary
        } else {
            ReplicaRole::Inactive
        };
        View {
            ballot: config.ballot,
            role,
            primary: (!config.primary.is_empty()).then(|| config.primary.clone()),
            secondaries: config.secondaries.clone(),
        }
    }
}

/// The mutable part of a replica.
pub struct PartitionState {
    /// The data (shared, so reads run without holding the state's lock: each read is
    /// its own consistent store transaction).
    pub store: Arc<ReplicaStore>,
    /// The prepare log.
    pub log: PrepareLog,
    /// The configuration as this replica knows it.
    pub view: View,
    /// The highest decree known to be committed.
    pub committed: u64,
    /// The highest decree applied to the store.
    pub applied: u64,
    durable_applied: u64,
    /// Whether the store holds a valid state (false while a learner's snapshot loads).
    pub loaded: bool,
    /// Primary: whether it has re-prepared its uncommitted entries and may serve.
    pub serving: bool,
    /// Primary: learners receiving prepares.
    pub learners: BTreeSet<String>,
    dir: PathBuf,
}

/// One replica.
pub struct Partition {
    /// The partition.
    pub gpid: Gpid,
    state: Mutex<PartitionState>,
    /// The primary's write queue, while its pipeline runs.
    pub(crate) queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// Whether a learning task runs.
    pub(crate) learning: AtomicBool,
    /// What the beacon last reported: (whether the replica is reportable, its bytes on
    /// disk). Used when the state is locked, so a beacon never waits on store I/O.
    last_report: Mutex<(bool, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Partition {
    /// Opens (creating if needed) the replica in `dir`, recovering its store and log.
    pub fn open(gpid: Gpid, dir: &Path, view: View) -> Result<Partition> {
        let store = match ReplicaStore::open(dir) {
            Ok(store) => store,
            Err(e) => {
                // A store that cannot be opened (e.g. killed while being created) holds
                // nothing to trust: start empty, marked as needing to learn.
                tracing::error!(%gpid, "replica store unreadable, starting over empty: {e}");
                std::fs::create_dir_all(dir)?;
                std::fs::File::create(dir.join(MARKER))?.sync_all()?;
                for f in ["data.redb", "prepare.log"] {
                    let _ = std::fs::remove_file(dir.join(f));
                }
                ReplicaStore::open(dir)?
            }
        };
        let log = PrepareLog::open(dir)?;
        let store = Arc::new(store);
        let applied = store.last_applied()?;
        let loaded = !dir.join(MARKER).exists();
        let state = PartitionState {
            store,
            log,
            view,
            committed: applied,
            applied,
            durable_applied: applied,
            loaded,
            serving: false,
            learners: BTreeSet::new(),
            dir: dir.to_path_buf(),
        };
        let report = state.report();
        Ok(Partition {
            gpid,
            state: Mutex::new(state),
            queue: Mutex::new(None),
            learning: AtomicBool::new(false),
            last_report: Mutex::new(report),
        })
    }

    /// Locks the state (for short, non-blocking work).
    pub fn state(&self) -> MutexGuard<'_, PartitionState> {
        lock(&self.state)
    }

    /// Runs `f` on the state on the blocking pool (for fsyncs and store transactions).
    pub async fn with_state<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut PartitionState) -> T + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&mut me.state()))
            .await
            .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))
    }

    /// Runs a read on the store on the blocking pool, without holding the state's lock
    /// (a long scan must not hold up prepares or the beacon).
    pub async fn read_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReplicaStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.state().store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
    }

    /// For the beacon: whether the replica holds data to report (its store is loaded,
    /// or it is a learner), and its size on disk (store and log). When the state is
    /// locked — a store transaction or fsync in progress — the last answer is given
    /// instead of waiting: the beacon must never be held up by I/O.
    pub fn report(&self) -> (bool, u64) {
        let fresh = match self.state.try_lock() {
            Ok(st) => Some(st.report()),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner().report()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let mut last = lock(&self.last_report);
        if let Some(fresh) = fresh {
            *last = fresh;
        }
        *last
    }
}

impl PartitionState {
    fn report(&self) -> (bool, u64) {
        let reportable = self.loaded || self.view.role == ReplicaRole::Learner;
        (reportable, self.store.disk_usage() + self.log.bytes())
    }

    /// Takes a newer view of the configuration (from the meta server or a prepare);
    /// an older one is ignored. Returns whether it was taken.
    pub fn adopt(&mut self, view: View) -> bool {
        if view.ballot < self.view.ballot {
            return false;
        }
        if view.role != ReplicaRole::Primary {
            self.serving = false;
            self.learners.clear();
        }
        self.view = view;
        true
    }

    /// Marks (or unmarks) the store as an incomplete snapshot, durably.
    pub fn set_marker(&mut self, on: bool) -> Result<()> {
        let path = self.dir.join(MARKER);
        if on {
            std::fs::File::create(&path)?.sync_all()?;
        } else if path.exists() {
            std::fs::remove_file(&path)?;
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// The store was just made durable at the applied decree.
    pub fn reset_durable(&mut self) {
        self.durable_applied = self.applied;
    }

    /// The highest decree this replica holds (logged or applied).
    pub fn last_prepared(&self) -> u64 {
        self.log.last_decree().max(self.applied)
    }

    /// Handles a prepare from the primary `from` at `ballot`: refuses a stale ballot
    /// and gaps, logs what is new durably, applies up to the commit point.
    pub fn accept_prepare(
        &mut self,
        ballot: i64,
        from: &str,
        entries: Vec<pb::LogEntry>,
        committed: u64,
    ) -> Result<u64> {
        if ballot < self.view.ballot {
            return Err(Error::Refused(format!(
                "stale ballot {ballot}: this replica has seen {}",
                self.view.ballot
            )));
        }
        if !self.loaded && self.view.role != ReplicaRole::Learner {
            // Its data is incomplete: acknowledging would count it as holding entries.
            return Err(Error::Refused(
                "this replica's data is incomplete: it must learn again".into(),
            ));
        }
        if ballot > self.view.ballot || self.view.role == ReplicaRole::Primary {
            let role = match self.view.role {
                ReplicaRole::Learner => ReplicaRole::Learner,
                _ => ReplicaRole::Secondary,
            };
            self.adopt(View {
                ballot,
                role,
                primary: Some(from.to_string()),
                secondaries: self.view.secondaries.clone(),
            });
        }
        let mut last = self.last_prepared();
        let mut fresh = Vec::new();
        for e in entries {
            if e.decree <= self.applied || self.log.has(&e) {
                continue;
            }
            if self.loaded && e.decree > last + 1 {
                return Err(Error::Refused(format!(
                    "missing decrees {}..{}: learn again",
                    last + 1,
                    e.decree
                )));
            }
            last = last.max(e.decree);
            fresh.push(e);
        }
        self.log.append(&fresh)?;
        self.committed = self.committed.max(committed);
        if self.loaded {
            self.apply_committed()?;
            if self.last_prepared() < committed {
                return Err(Error::Refused(format!(
                    "this replica holds decrees up to {}, the primary committed {committed}: learn again",
                    self.last_prepared()
                )));
            }
        }
        Ok(self.last_prepared())
    }

    /// Applies logged entries up to the commit point, in order.
    pub fn apply_committed(&mut self) -> Result<()> {
        while self.applied < self.committed {
            let next = self.applied + 1;
            let Some(entry) = self.log.get(next) else {
                break;
            };
            let mutations: Vec<Mutation> = entry.mutations.iter().map(Mutation::from_pb).collect();
            let durable = next - self.durable_applied >= DURABLE_EVERY;
            self.store.apply(next, &mutations, durable)?;
            self.applied = next;
            if durable {
                self.durable_applied = next;
            }
        }
        self.maybe_compact()
    }

    /// Rewrites a large log without the entries the store holds durably; skipped while
    /// learners may still need them.
    fn maybe_compact(&mut self) -> Result<()> {
        if self.log.bytes() < LOG_COMPACT_BYTES || !self.learners.is_empty() {
            return Ok(());
        }
        self.store.apply(self.applied, &[], true)?;
        self.durable_applied = self.applied;
        self.log.compact(self.applied + 1)
    }

    /// Primary: the next entry for `mutations`, written to the log; it is durable once
    /// the returned sync has been waited on (which the primary does while the entry's
    /// prepares are on the wire).
    pub fn prepare_local(&mut self, mutations: Vec<pb::Mutation>) -> Result<(u64, LogSync)> {
        let entry = pb::LogEntry {
            ballot: self.view.ballot,
            decree: self.last_prepared() + 1,
            mutations,
            requests: Vec::new(),
        };
        let decree = entry.decree;
        let sync = self.log.append_unsynced(&[entry])?;
        Ok((decree, sync))
    }

    /// A new primary re-stamps its uncommitted entries with its own ballot (so they
    /// overwrite whatever an older primary left on the secondaries).
    pub fn restamp_uncommitted(&mut self) -> Result<()> {
        let ballot = self.view.ballot;
        let restamped: Vec<pb::LogEntry> = self
            .log
            .since(self.committed + 1)
            .into_iter()
            .filter(|e| e.ballot != ballot)
            .map(|e| pb::LogEntry { ballot, ..e })
            .collect();
        self.log.append(&restamped)
    }

    /// The entries not yet known committed, for a prepare round.
    pub fn uncommitted(&self) -> Vec<pb::LogEntry> {
        self.log.since(self.committed + 1)
    }

    /// Primary: everything up to `decree` is committed; apply it.
    pub fn commit(&mut self, decree: u64) -> Result<()> {
        self.committed = self.committed.max(decree);
        self.apply_committed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ballot: i64, role: ReplicaRole) -> View {
        View {
            ballot,
            role,
            primary: Some("p".into()),
            secondaries: vec![],
        }
    }

    fn put(decree: u64, ballot: i64, key: &str, value: &str) -> pb::LogEntry {
        pb::LogEntry {
            ballot,
            decree,
            mutations: vec![pb::Mutation {
                hash_key: key.as_bytes().to_vec(),
                sort_key: b"s".to_vec(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            }],
            requests: vec![],
        }
    }

    fn value(st: &PartitionState, key: &str) -> Option<Vec<u8>> {
        st.store
            .get(key.as_bytes(), b"s", 0)
            .unwrap()
            .map(|(v, _)| v)
    }

    #[test]
    fn a_secondary_applies_only_committed_entries_and_refuses_stale_ballots_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let gpid = Gpid { app_id: 1, pidx: 0 };
        let p = Partition::open(gpid, dir.path(), view(3, ReplicaRole::Secondary)).unwrap();
        let mut st = p.state();
        assert_eq!(
            st.accept_prepare(3, "p", vec![put(1, 3, "a", "1")], 0)
                .unwrap(),
            1
        );
        assert_eq!(value(&st, "a"), None, "prepared, not committed");
        st.accept_prepare(3, "p", vec![put(2, 3, "b", "2")], 1)
            .unwrap();
        assert_eq!(
            value(&st, "a").as_deref(),
            Some(&b"1"[..]),
            "commit point rode on"
        );
        assert_eq!(value(&st, "b"), None);
        assert!(matches!(
            st.accept_prepare(2, "old", vec![put(3, 2, "c", "x")], 2),
            Err(Error::Refused(_))
        ));
        assert!(
            st.accept_prepare(3, "p", vec![put(5, 3, "e", "5")], 2)
                .is_err(),
            "a gap is refused"
        );
        // A new primary at ballot 4 overwrites decree 2 and commits it.
        st.accept_prepare(4, "q", vec![put(2, 4, "b", "new")], 2)
            .unwrap();
        assert_eq!(value(&st, "b").as_deref(), Some(&b"new"[..]));
        assert_eq!(st.view.ballot, 4);
        assert_eq!(st.view.primary.as_deref(), Some("q"));
    }

    #[test]
    fn committed_entries_are_recovered_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let gpid = Gpid { app_id: 1, pidx: 0 };
        {
            let p = Partition::open(gpid, dir.path(), view(1, ReplicaRole::Primary)).unwrap();
            let mut st = p.state();
            for i in 0..5 {
                let (d, sync) = st
                    .prepare_local(put(0, 0, &format!("k{i}"), "v").mutations)
                    .unwrap();
                sync.wait().unwrap();
                st.commit(d).unwrap();
            }
            let (_, sync) = st.prepare_local(put(0, 0, "unc", "v").mutations).unwrap();
            sync.wait().unwrap();
        }
        let p = Partition::open(gpid, dir.path(), view(2, ReplicaRole::Primary)).unwrap();
        let mut st = p.state();
        assert_eq!(
            st.last_prepared(),
            6,
            "the uncommitted entry is still logged"
        );
        st.restamp_uncommitted().unwrap();
        let pending = st.uncommitted();
        assert!(pending.iter().all(|e| e.ballot == 2));
        assert_eq!(pending.last().unwrap().decree, 6);
        st.commit(6).unwrap();
        for k in ["k0", "k4", "unc"] {
            assert!(value(&st, k).is_some(), "{k}");
        }
    }

    #[test]
    fn the_beacon_report_never_waits_for_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let gpid = Gpid { app_id: 1, pidx: 0 };
        let p = Partition::open(gpid, dir.path(), view(1, ReplicaRole::Primary)).unwrap();
        let (reportable, before) = p.report();
        assert!(reportable);
        {
            let mut st = p.state();
            let (d, sync) = st.prepare_local(put(0, 0, "k", "v").mutations).unwrap();
            sync.wait().unwrap();
            st.commit(d).unwrap();
            // Locked (as during a long store transaction): the last report is given.
            assert_eq!(p.report(), (true, before));
            st.loaded = false;
        }
        let (reportable, after) = p.report();
        assert!(!reportable, "an unloaded non-learner is not reported");
        assert!(after >= before, "{after} < {before}");
    }
}
