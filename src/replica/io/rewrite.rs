//! A settled replica's store folded into a new base file ([`crate::replica::base`]).
//! Writes land in redb, whose B-tree takes 1.2-2.1x the bytes of its records and is
//! copied to a learner record by record; a base file is the records packed in key
//! order, and is copied byte for byte. So when a replica settles
//! ([`Effect::Tidy`](crate::replica::core::Effect::Tidy)) and its store holds enough
//! over its base (an eighth of the base, and at least [`MIN_BYTES`]), or its store file
//! is well above what its records need, a thread of its own reads a snapshot of the
//! store through the base into the next generation's base file, and writes a new store
//! file holding the metadata and sessions, no records, referring to that base. The I/O
//! thread swaps both in only if nothing was written to the store meanwhile; otherwise
//! the copy is thrown away and the next quiet spell tries again. Reads already on the
//! old files finish on them.
//!
//! Crash safety: both files are complete and durable before either is renamed into
//! place. The new base is renamed first, and the directory synced; then the new store
//! is renamed over the old one, and the directory synced, before any later write
//! reaches it. A crash between leaves the old store and its base, and an unreferenced
//! new base that opening removes; after, the new store and its base, the old base
//! unreferenced and removed. Either holds the same data at the same decree.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::Io;
use crate::error::{Error, Result};
use crate::replica::base::BaseWriter;
use crate::replica::base_files::{BASE_FOLD, base_path};
use crate::replica::core::Input;
use crate::replica::layered::Merged;
use crate::replica::learned::mark_base;
use crate::replica::plog::sync_dir;
use crate::replica::storage::{
    FILE, HAS_BASE, META, RECORDS, ReplicaStore, SESSIONS, SHADOW, meta_value, storage,
};

/// A store file this many times what its records need packed is folded...
const WASTE: f64 = 1.4;
/// ...when it is at least this big; and a store holding at least this much over its
/// base (and an eighth of the base) is folded.
const MIN_BYTES: u64 = 256 << 10;
/// A store file smaller than this is never folded for its size alone (an empty redb
/// file is already a few hundred KB).
const MIN_FILE: u64 = 2 << 20;
/// The new store file's page cache: it is written once, small, and reopened.
const COPY_CACHE: usize = 8 << 20;
/// The new store file until it takes the store's place.
pub const REWRITE: &str = "data.redb.rewrite";

/// A fold under way.
pub struct Rewrite {
    /// The I/O thread's count of store writes when it began.
    writes: u64,
    /// The new base's generation, or `None` when the store holds no records.
    done: Receiver<Result<Option<u64>>>,
}

impl ReplicaStore {
    /// What the store holds over its base, packed: its records and the keys deleted
    /// from the base, with the pages' own bookkeeping.
    pub fn packed_bytes(&self) -> Result<u64> {
        let tx = self.db.begin_read().map_err(storage)?;
        let records = tx
            .open_table(RECORDS)
            .map_err(storage)?
            .stats()
            .map_err(storage)?;
        let shadow = tx
            .open_table(SHADOW)
            .map_err(storage)?
            .stats()
            .map_err(storage)?;
        Ok(records.stored_bytes()
            + records.metadata_bytes()
            + shadow.stored_bytes()
            + shadow.metadata_bytes())
    }

    /// Folds a read snapshot of the store (records read through its base) into a new
    /// base file at `tmp_base` and a new store file at `tmp`, with no records, that
    /// refers to it as the next generation, both durably. Returns that generation, or
    /// `None` (and no base file) when there are no records.
    pub fn rewrite(&self, tmp: &Path, tmp_base: &Path) -> Result<Option<u64>> {
        super::lifecycle::remove_if_present(tmp)?;
        let (snap, under) = self.view()?;
        let generation = meta_value(&snap, HAS_BASE)? + 1;
        let mut base = BaseWriter::create(tmp_base)?;
        let from = snap.open_table(RECORDS).map_err(storage)?;
        for entry in Merged::new(&from, under.as_ref(), b"", None)? {
            let (k, v) = entry?;
            base.add(&k, &v)?;
        }
        let generation = match base.finish()? {
            0 => {
                super::lifecycle::remove_if_present(tmp_base)?;
                None
            }
            _ => Some(generation),
        };
        let db = redb::Builder::new()
            .set_cache_size(COPY_CACHE)
            .create(tmp)
            .map_err(storage)?;
        let mut tx = db.begin_write().map_err(storage)?;
        tx.set_durability(Durability::Immediate).map_err(storage)?;
        copy_table(&snap, &tx, META)?;
        mark_base(&mut tx.open_table(META).map_err(storage)?, generation)?;
        copy_table(&snap, &tx, SESSIONS)?;
        tx.open_table(RECORDS).map_err(storage)?;
        tx.open_table(SHADOW).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(generation)
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
        let base = store.base().map_or(0, |b| b.bytes());
        let file = store.disk_usage().saturating_sub(base);
        if !worth_folding(base, file, store.packed_bytes()?) {
            return Ok(());
        }
        let (tmp, tmp_base) = (self.dir.join(REWRITE), self.dir.join(BASE_FOLD));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("rewrite-{}", self.gpid))
            .spawn(move || {
                let copy = store.rewrite(&tmp, &tmp_base);
                drop(store);
                // Failed, or the I/O thread is gone: nothing will take the copy.
                if copy.is_err() || tx.send(copy).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    let _ = std::fs::remove_file(&tmp_base);
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
        let (tmp, tmp_base) = (self.dir.join(REWRITE), self.dir.join(BASE_FOLD));
        let throw_away = || {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&tmp_base);
        };
        let generation = match copy {
            Ok(generation) if unchanged && self.store.is_some() => generation,
            Ok(_) => return throw_away(),
            Err(e) => {
                tracing::warn!(gpid = %self.gpid, "store fold failed: {e}");
                return;
            }
        };
        let before = self.store.as_ref().map_or(0, |s| s.disk_usage());
        // The new base in place and durable before the store that refers to it.
        let placed = match generation {
            Some(g) => std::fs::rename(&tmp_base, base_path(&self.dir, g))
                .map_err(Error::from)
                .and_then(|()| sync_dir(&self.dir)),
            None => Ok(()),
        };
        if let Err(e) = placed.and_then(|()| Ok(std::fs::rename(&tmp, self.dir.join(FILE))?)) {
            tracing::warn!(gpid = %self.gpid, "store fold not swapped in: {e}");
            return throw_away();
        }
        // The new file is the store now: nothing may be written to the old one.
        let swapped =
            sync_dir(&self.dir).and_then(|()| ReplicaStore::open(&self.dir, self.cache_bytes));
        match swapped.map(Arc::new) {
            Ok(store) => {
                let after = store.disk_usage();
                self.shared.set_store(Some(store.clone()));
                self.store = Some(store);
                tracing::info!(gpid = %self.gpid, before, after, "store folded into a base file");
            }
            Err(e) => {
                self.shared.set_store(None);
                self.store = None;
                // Until the rename is durable, or with no store to write to, later writes
                // could be lost: the replica trusts its store no more.
                tracing::error!(gpid = %self.gpid, "store fold: swapping in failed: {e}");
                self.send(Input::ApplyFailed(e.to_string()));
            }
        }
    }
}

/// Whether a settled store is folded: it holds `over` packed bytes over a base file of
/// `base` bytes, in a store file of `file` bytes. Enough over the base (an eighth of
/// it, so a big base is not rewritten for a few writes), or a store file well above
/// what it holds (freed pages).
fn worth_folding(base: u64, file: u64, over: u64) -> bool {
    let enough = MIN_BYTES.max(base / 8);
    over >= enough || (file >= enough.max(MIN_FILE) && file as f64 >= WASTE * over as f64)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::model::Gpid;
    use crate::pb;
    use crate::replica::core::{Chunk, Effect, Entry};
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

    fn bases_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| crate::replica::base_files::is_base_file(n))
            .collect();
        names.sort();
        names
    }

    fn apply(io: &mut Io, entries: Vec<Entry>) {
        assert!(io.run_batch(vec![Job::Effect(Effect::Apply {
            entries,
            durable: true,
        })]));
    }

    fn deleted(decree: u64, of: u64) -> Entry {
        let mut gone = (*entry(decree)).clone();
        gone.mutations[0].hash_key = key(of);
        gone.mutations[0].delete = true;
        Arc::new(gone)
    }

    #[test]
    fn a_settled_store_folds_into_a_base_file_smaller_with_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let (mut io, _out) = io_with(dir.path(), 8000);
        let (before, packed) = (store(&io).disk_usage(), store(&io).packed_bytes().unwrap());
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        assert!(io.rewriting());
        wait_for_the_rewrite(&mut io);
        let after = store(&io).disk_usage();
        let base = store(&io).base().expect("a base file");
        assert_eq!(bases_in(dir.path()), [crate::replica::base::BASE]);
        assert!(
            base.bytes() < packed && after * 10 < before * 7,
            "{before} -> {after} (base {}) for {packed} packed",
            base.bytes()
        );
        assert!(
            store(&io).packed_bytes().unwrap() < 64 << 10,
            "all in the base"
        );
        assert!(!dir.path().join(REWRITE).exists());
        let readers = io.shared.store().unwrap();
        assert!(
            Arc::ptr_eq(&readers, &store(&io)),
            "readers see the new file"
        );
        drop(readers);
        let check = |s: &ReplicaStore, n: u64| {
            let state = s.state().unwrap();
            assert!(state.valid);
            assert_eq!(state.applied, n);
            for d in [1, 2, 17, 4000, 7999, 8000] {
                let (value, _) = s.get(&key(d), b"s", 0).unwrap().unwrap();
                assert_eq!(value, vec![b'v'; 100], "decree {d}");
            }
            assert_eq!(s.estimate_count().unwrap(), n);
        };
        check(&store(&io), 8000);
        // A few writes over the base are not worth rewriting it for.
        apply(&mut io, vec![entry(8001)]);
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        assert!(!io.rewriting());
        // The store goes on taking writes, and the renamed files are what a restart
        // opens.
        drop(io);
        let reopened = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        check(&reopened, 8001);
    }

    #[test]
    fn enough_written_over_a_base_folds_into_the_next_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (mut io, _out) = io_with(dir.path(), 4000);
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        wait_for_the_rewrite(&mut io);
        assert_eq!(bases_in(dir.path()), ["data.base"]);
        // Over the base: 3,000 new records, 500 of the base's deleted, one rewritten.
        let mut entries: Vec<Entry> = (4001..=7000).map(entry).collect();
        entries.extend((7001..=7500).map(|d| deleted(d, d - 7000)));
        let mut changed = (*entry(7501)).clone();
        changed.mutations[0].hash_key = key(600);
        changed.mutations[0].value = b"new".to_vec();
        entries.push(Arc::new(changed));
        apply(&mut io, entries);
        let held = store(&io);
        let old_base = held.base().unwrap();
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        assert!(io.rewriting());
        wait_for_the_rewrite(&mut io);
        assert_eq!(bases_in(dir.path()), ["data.base.2"]);
        let key_of = crate::data::encode_key(&key(1), b"s").unwrap();
        assert!(
            old_base.get(&key_of).unwrap().is_some(),
            "a read already on the old base finishes"
        );
        drop((held, old_base));
        let check = |s: &ReplicaStore| {
            assert_eq!(s.state().unwrap().applied, 7501);
            assert!(s.packed_bytes().unwrap() < 64 << 10, "all in the base");
            for d in [1, 250, 500] {
                assert!(s.get(&key(d), b"s", 0).unwrap().is_none(), "{d} deleted");
            }
            for d in [501, 3999, 4000, 4001, 7000] {
                assert!(s.get(&key(d), b"s", 0).unwrap().is_some(), "decree {d}");
            }
            assert_eq!(s.get(&key(600), b"s", 0).unwrap().unwrap().0, b"new");
            assert_eq!(s.estimate_count().unwrap(), 6500);
        };
        check(&store(&io));
        drop(io);
        check(&ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap());
    }

    #[test]
    fn a_crash_in_the_middle_of_a_fold_leaves_the_old_store_or_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let (mut io, _out) = io_with(dir.path(), 3000);
        let (tmp, tmp_base) = (dir.path().join(REWRITE), dir.path().join(BASE_FOLD));
        // The copy made, the new base renamed into place, the store not yet.
        let generation = store(&io).rewrite(&tmp, &tmp_base).unwrap().unwrap();
        std::fs::rename(&tmp_base, base_path(dir.path(), generation)).unwrap();
        io.close();
        drop(io);
        let s = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        assert!(s.base().is_none(), "the old store, which refers to no base");
        assert!(bases_in(dir.path()).is_empty(), "the stray base is removed");
        assert_eq!(s.estimate_count().unwrap(), 3000);
        // The copy made, nothing renamed: both halves are removed at open.
        s.rewrite(&tmp, &tmp_base).unwrap();
        drop(s);
        let s = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        assert!(bases_in(dir.path()).is_empty());
        assert_eq!(s.state().unwrap().applied, 3000);
        assert!(s.get(&key(2999), b"s", 0).unwrap().is_some());
    }

    #[test]
    fn a_fold_is_thrown_away_if_the_store_was_written_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let (mut io, _out) = io_with(dir.path(), 8000);
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
        assert!(store(&io).base().is_none());
        assert!(!dir.path().join(REWRITE).exists(), "the copy is deleted");
        assert!(bases_in(dir.path()).is_empty(), "and its base");
        assert_eq!(store(&io).state().unwrap().applied, 8001);
        assert!(store(&io).get(&key(8001), b"s", 0).unwrap().is_some());
    }

    #[test]
    fn a_learned_base_stays_under_a_few_writes() {
        let (src, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (source, _src_out) = io_with(src.path(), 2000);
        let snap = store(&source).snapshot().unwrap();
        let pairs = snap.chunk(b"", usize::MAX).unwrap();
        let (mut io, _out) = io_with(dir.path(), 0);
        assert!(io.run_batch(vec![
            Job::Effect(Effect::ResetData),
            Job::Effect(Effect::LoadChunk(Chunk::Records(pairs))),
            Job::Effect(Effect::Seal(2000, snap.sessions.clone())),
        ]));
        assert!(store(&io).base().is_some());
        // On top of the base: one record deleted, one added.
        apply(&mut io, vec![deleted(2001, 7), entry(2002)]);
        assert!(io.run_batch(vec![Job::Effect(Effect::Tidy)]));
        assert!(
            !io.rewriting(),
            "two writes are not worth rewriting the base"
        );
        let check = |s: &ReplicaStore| {
            assert!(s.base().is_some());
            assert_eq!(s.state().unwrap().applied, 2002);
            assert!(
                s.get(&key(7), b"s", 0).unwrap().is_none(),
                "the delete holds"
            );
            for d in [1, 1999, 2000, 2002] {
                assert!(s.get(&key(d), b"s", 0).unwrap().is_some(), "decree {d}");
            }
        };
        check(&store(&io));
        drop(io);
        check(&ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap());
    }

    #[test]
    fn folding_is_worth_it_only_for_enough_over_the_base_or_a_wasteful_file() {
        let mb = 1 << 20;
        assert!(!worth_folding(0, 100 << 10, 50 << 10), "a small store");
        assert!(worth_folding(0, 600 << 10, 300 << 10), "enough records");
        assert!(
            !worth_folding(256 * mb, mb, 10 * mb),
            "a little over a big base"
        );
        assert!(
            worth_folding(256 * mb, 70 * mb, 40 * mb),
            "an eighth over it"
        );
        assert!(
            worth_folding(8 * mb, 3 * mb, 10 << 10),
            "a file of freed pages"
        );
        assert!(
            !worth_folding(0, mb, 0),
            "an empty store file of any redb size"
        );
    }
}
