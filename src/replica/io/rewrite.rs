//! A settled replica's store rewritten in key order. Records inserted in no order split
//! redb's pages and leave them about half full — 112-byte records took 2.1x their bytes,
//! and still did after `Database::compact` (which moves pages, not records) — while the
//! same records loaded in key order pack them (1.2x). So when a replica settles
//! ([`Effect::Tidy`](crate::replica::core::Effect::Tidy)) and its store file is well
//! above what its records need, a thread of its own copies a read snapshot of the store,
//! records in key order, into a new file, durably. The I/O thread swaps it in only if
//! nothing was written to the store meanwhile; otherwise the copy is thrown away and the
//! next quiet spell tries again. Reads already on the old file finish on it. A store
//! with a learned base file under it ([`crate::replica::base`]) is always rewritten
//! when it settles: the copy reads through the base, so the base folds into the new
//! file, which no longer refers to it, and opening that file removes the base.
//!
//! Crash safety: the copy is complete and durable before it is renamed over the store
//! (one atomic rename, then the directory synced, before any later write reaches the new
//! file), so either file found after a crash holds the same data at the same decree.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::Io;
use crate::error::{Error, Result};
use crate::replica::core::Input;
use crate::replica::layered::Merged;
use crate::replica::learned::mark_base;
use crate::replica::plog::sync_dir;
use crate::replica::storage::{FILE, META, RECORDS, ReplicaStore, SESSIONS, storage};

/// A store file this many times what its records need packed is rewritten...
const WASTE: f64 = 1.4;
/// ...when it is at least this big.
const MIN_BYTES: u64 = 256 << 10;
/// The copy commits (not durably) every this many bytes, bounding the pages it holds
/// in memory.
const COMMIT_BYTES: usize = 16 << 20;
/// The copy's page cache: it writes each page once, and is reopened as the store.
const COPY_CACHE: usize = 8 << 20;
/// The copy's file until it takes the store's place.
pub const REWRITE: &str = "data.redb.rewrite";

/// A rewrite under way.
pub struct Rewrite {
    /// The I/O thread's count of store writes when it began.
    writes: u64,
    done: Receiver<Result<()>>,
}

impl ReplicaStore {
    /// What the records would take packed: their keys and values and the pages' own
    /// bookkeeping.
    pub fn packed_bytes(&self) -> Result<u64> {
        let tx = self.db.begin_read().map_err(storage)?;
        let stats = tx
            .open_table(RECORDS)
            .map_err(storage)?
            .stats()
            .map_err(storage)?;
        Ok(stats.stored_bytes() + stats.metadata_bytes())
    }

    /// Copies a read snapshot of every table into a new store file at `tmp`, records in
    /// key order (the base file's folded in), durably.
    pub fn rewrite(&self, tmp: &Path) -> Result<()> {
        super::lifecycle::remove_if_present(tmp)?;
        let (snap, under) = self.view()?;
        let db = redb::Builder::new()
            .set_cache_size(COPY_CACHE)
            .create(tmp)
            .map_err(storage)?;
        let begin = || -> Result<redb::WriteTransaction> {
            let mut tx = db.begin_write().map_err(storage)?;
            tx.set_durability(Durability::None).map_err(storage)?;
            Ok(tx)
        };
        let mut tx = begin()?;
        copy_table(&snap, &tx, META)?;
        mark_base(&mut tx.open_table(META).map_err(storage)?, false)?;
        copy_table(&snap, &tx, SESSIONS)?;
        let mut bytes = 0;
        let mut records = tx.open_table(RECORDS).map_err(storage)?;
        let from = snap.open_table(RECORDS).map_err(storage)?;
        for entry in Merged::new(&from, under.as_ref(), b"", None)? {
            let (k, v) = entry?;
            records
                .insert(k.as_slice(), v.as_slice())
                .map_err(storage)?;
            bytes += k.len() + v.len();
            if bytes >= COMMIT_BYTES {
                drop(records);
                tx.commit().map_err(storage)?;
                tx = begin()?;
                records = tx.open_table(RECORDS).map_err(storage)?;
                bytes = 0;
            }
        }
        drop(records);
        tx.commit().map_err(storage)?;
        db.begin_write().map_err(storage)?.commit().map_err(storage)
    }
}

/// Copies every entry of table `def` from `snap` into `tx`.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    snap: &redb::ReadTransaction,
    tx: &redb::WriteTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<()> {
    let mut to = tx.open_table(def).map_err(storage)?;
    for entry in snap
        .open_table(def)
        .map_err(storage)?
        .iter()
        .map_err(storage)?
    {
        let (k, v) = entry.map_err(storage)?;
        to.insert(k.value(), v.value()).map_err(storage)?;
    }
    Ok(())
}

impl Io {
    /// The replica settled: starts rewriting its store if the file is well above what
    /// its records need (and no rewrite is under way). A rewrite is an optimisation: if
    /// it cannot start, the store stays as it is.
    pub(super) fn tidy(&mut self) {
        if let Err(e) = self.start_rewrite() {
            tracing::warn!(gpid = %self.gpid, "store rewrite not started: {e}");
        }
    }

    fn start_rewrite(&mut self) -> Result<()> {
        let Some(store) = self.store.clone().filter(|_| self.rewrite.is_none()) else {
            return Ok(());
        };
        let file = store.disk_usage();
        let wasteful = || -> Result<bool> {
            Ok(file >= MIN_BYTES && file as f64 >= WASTE * store.packed_bytes()? as f64)
        };
        if store.base().is_none() && !wasteful()? {
            return Ok(());
        }
        let tmp = self.dir.join(REWRITE);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("rewrite-{}", self.gpid))
            .spawn(move || {
                let copy = store.rewrite(&tmp);
                drop(store);
                // Failed, or the I/O thread is gone: nothing will take the copy.
                if copy.is_err() || tx.send(copy).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
            })?;
        self.rewrite = Some(Rewrite {
            writes: self.writes,
            done: rx,
        });
        Ok(())
    }

    /// Whether a rewrite is under way (the I/O thread then looks for its end while idle).
    pub(super) fn rewriting(&self) -> bool {
        self.rewrite.is_some()
    }

    /// Swaps a finished rewrite in if the store has not been written to since it began;
    /// throws it away otherwise.
    pub(super) fn finish_rewrite(&mut self) {
        let Some(rewrite) = &self.rewrite else {
            return;
        };
        let copy = match rewrite.done.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(copy) => copy,
            Err(TryRecvError::Disconnected) => Err(Error::Internal("the rewrite died".into())),
        };
        let unchanged = rewrite.writes == self.writes;
        self.rewrite = None;
        let tmp = self.dir.join(REWRITE);
        match copy {
            Ok(()) if unchanged && self.store.is_some() => {}
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                return;
            }
            Err(e) => {
                tracing::warn!(gpid = %self.gpid, "store rewrite failed: {e}");
                return;
            }
        }
        let before = self.store.as_ref().map_or(0, |s| s.disk_usage());
        if let Err(e) = std::fs::rename(&tmp, self.dir.join(FILE)) {
            tracing::warn!(gpid = %self.gpid, "store rewrite not swapped in: {e}");
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        // The new file is the store now: nothing may be written to the old one.
        let swapped =
            sync_dir(&self.dir).and_then(|()| ReplicaStore::open(&self.dir, self.cache_bytes));
        match swapped.map(Arc::new) {
            Ok(store) => {
                let after = store.disk_usage();
                self.shared.set_store(Some(store.clone()));
                self.store = Some(store);
                tracing::info!(gpid = %self.gpid, before, after, "store rewritten in key order");
            }
            Err(e) => {
                self.shared.set_store(None);
                self.store = None;
                // Until the rename is durable, or with no store to write to, later writes
                // could be lost: the replica trusts its store no more.
                tracing::error!(gpid = %self.gpid, "store rewrite: swapping in failed: {e}");
                self.send(Input::ApplyFailed(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::Gpid;
    use crate::pb;
    use crate::replica::core::{Effect, Entry};
    use crate::replica::io::Job;
    use crate::replica::storage::DEFAULT_CACHE_BYTES;
    use crate::replica::worker::{Msg, Shared};

    fn key(decree: u64) -> Vec<u8> {
        // Sixteen writers' sequences interleaved: no key order, as under load.
        format!("load_{}_{}", decree % 16, decree / 16).into_bytes()
    }

    fn entry(decree: u64) -> Entry {
        Arc::new(pb::LogEntry {
            ballot: 1,
            decree,
            mutations: vec![pb::Mutation {
                hash_key: key(decree),
                sort_key: b"s".to_vec(),
                value: vec![b'v'; 100],
                ..Default::default()
            }],
            requests: vec![],
        })
    }

    /// An I/O thread's state, run in the test's thread, over a store of `n` records
    /// applied a few at a time.
    fn io_with(dir: &Path, n: u64) -> (Io, tokio::sync::mpsc::UnboundedReceiver<Msg>) {
        let gpid = Gpid::new(1, 0);
        let (out, rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(gpid));
        let (mut io, _) = Io::open(
            gpid,
            dir.to_path_buf(),
            shared,
            Arc::default(),
            DEFAULT_CACHE_BYTES,
            out,
        );
        assert!(io.run_batch(vec![Job::Effect(Effect::CreateEmpty)]));
        for first in (1..=n).step_by(4) {
            let entries = (first..(first + 4).min(n + 1)).map(entry).collect();
            let apply = Effect::Apply {
                entries,
                durable: false,
            };
            assert!(io.run_batch(vec![Job::Effect(apply)]));
        }
        assert_eq!(io.applied, n);
        (io, rx)
    }

    fn wait_for_the_rewrite(io: &mut Io) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while io.rewriting() {
            assert!(Instant::now() < deadline, "the rewrite never ended");
            std::thread::sleep(Duration::from_millis(5));
            io.finish_rewrite();
        }
    }

    fn store(io: &Io) -> Arc<ReplicaStore> {
        io.store.clone().unwrap()
    }

    #[test]
    fn a_settled_store_is_rewritten_in_key_order_smaller_with_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let (mut io, _out) = io_with(dir.path(), 8000);
        let (before, packed) = (store(&io).disk_usage(), store(&io).packed_bytes().unwrap());
        assert!(
            before as f64 > WASTE * packed as f64,
            "{before} for {packed}"
        );
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        assert!(io.rewriting());
        wait_for_the_rewrite(&mut io);
        let after = store(&io).disk_usage();
        assert!(
            (after as f64) < 1.3 * packed as f64 && after * 10 < before * 7,
            "{before} -> {after} for {packed}"
        );
        assert!(!dir.path().join(REWRITE).exists());
        let readers = io.shared.store().unwrap();
        assert!(
            Arc::ptr_eq(&readers, &store(&io)),
            "readers see the new file"
        );
        drop(readers);
        let check = |s: &ReplicaStore| {
            let state = s.state().unwrap();
            assert!(state.valid);
            assert_eq!(state.applied, 8000);
            for d in [1, 2, 17, 4000, 7999, 8000] {
                let (value, _) = s.get(&key(d), b"s", 0).unwrap().unwrap();
                assert_eq!(value, vec![b'v'; 100], "decree {d}");
            }
            assert_eq!(s.estimate_count().unwrap(), 8000);
        };
        check(&store(&io));
        // The store goes on taking writes, and the renamed file is what a restart opens.
        assert!(io.run_batch(vec![Job::Effect(Effect::Apply {
            entries: vec![entry(8001)],
            durable: true,
        })]));
        drop(io);
        let reopened = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        assert_eq!(reopened.state().unwrap().applied, 8001);
        assert_eq!(reopened.estimate_count().unwrap(), 8001);
    }

    #[test]
    fn a_rewrite_is_thrown_away_if_the_store_was_written_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (mut io, _out) = io_with(dir.path(), 8000);
        let before = store(&io).disk_usage();
        let old = store(&io);
        assert!(io.run_batch(vec![
            Job::Effect(Effect::Tidy),
            Job::Effect(Effect::Apply {
                entries: vec![entry(8001)],
                durable: false,
            }),
        ]));
        wait_for_the_rewrite(&mut io);
        assert!(
            Arc::ptr_eq(&old, &store(&io)),
            "the old file stays the store"
        );
        assert!(store(&io).disk_usage() >= before);
        assert!(!dir.path().join(REWRITE).exists(), "the copy is deleted");
        assert_eq!(store(&io).state().unwrap().applied, 8001);
        assert!(store(&io).get(&key(8001), b"s", 0).unwrap().is_some());
    }

    #[test]
    fn a_learned_base_folds_into_the_store_when_it_settles() {
        let (src, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (source, _src_out) = io_with(src.path(), 2000);
        let snap = store(&source).snapshot().unwrap();
        let pairs = snap.chunk(b"", usize::MAX).unwrap();
        let (mut io, _out) = io_with(dir.path(), 0);
        assert!(io.run_batch(vec![
            Job::Effect(Effect::ResetData),
            Job::Effect(Effect::LoadChunk(pairs)),
            Job::Effect(Effect::Seal(2000, snap.sessions.clone())),
        ]));
        assert!(store(&io).base().is_some());
        // On top of the base: one record deleted, one added.
        let mut gone = (*entry(2001)).clone();
        gone.mutations[0].hash_key = key(7);
        gone.mutations[0].delete = true;
        assert!(io.run_batch(vec![Job::Effect(Effect::Apply {
            entries: vec![Arc::new(gone), entry(2002)],
            durable: true,
        })]));
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        assert!(io.rewriting(), "a store with a base is always rewritten");
        wait_for_the_rewrite(&mut io);
        let check = |s: &ReplicaStore| {
            assert!(s.base().is_none());
            assert_eq!(s.state().unwrap().applied, 2002);
            assert!(
                s.get(&key(7), b"s", 0).unwrap().is_none(),
                "the delete holds"
            );
            for d in [1, 1999, 2000, 2002] {
                assert!(s.get(&key(d), b"s", 0).unwrap().is_some(), "decree {d}");
            }
            assert_eq!(s.estimate_count().unwrap(), 2000);
        };
        check(&store(&io));
        assert!(!dir.path().join(crate::replica::base::BASE).exists());
        drop(io);
        check(&ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap());
    }
}
