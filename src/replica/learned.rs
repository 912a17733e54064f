//! A replica's store through a learner's life: emptied to start over, loaded from the
//! primary's snapshot, sealed complete. The snapshot arrives either as records in key
//! order, written straight into a new base file ([`super::base`]) rather than the
//! store's B-tree, or — from a primary whose store stands on a base file — as that
//! file's bytes, written out as they come, then the records and deletions over it,
//! which go into the store. The seal makes the file durable, puts it in place and, in
//! the same durable commit that marks the data complete, makes the store refer to it.
//! Until then nothing refers to it, so a crash at any point leaves either the old state
//! or the sealed one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use redb::ReadableDatabase;

use crate::error::{Error, Result};
use crate::replica::base::{BASE_TMP, BaseFile, BaseWriter};
use crate::replica::base_files::{Writeback, base_path, remove_other_bases};
use crate::replica::core::Chunk;
use crate::replica::core::sessions::Sessions;
use crate::replica::plog::sync_dir;
use crate::replica::storage::{
    FORMAT, FORMAT_KEY, HAS_BASE, LAST_APPLIED, META, PLAIN_FORMAT, RECORDS, ReplicaStore,
    SESSIONS, SHADOW, VALID, storage,
};

/// The base file a learner is writing, until it is sealed.
pub enum Load {
    /// Built from records in key order.
    Records(BaseWriter),
    /// Copied byte for byte from the primary's.
    File(FileLoad),
}

/// A base file being copied, and how much of it was written.
pub struct FileLoad {
    out: BufWriter<File>,
    written: u64,
    writeback: Writeback,
}

impl FileLoad {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        self.writeback.after(&mut self.out, self.written)
    }
}

/// The base file generation a learner's seal writes (a reset removed every other).
const LEARNED_GENERATION: u64 = 1;

/// Records in `meta` which base file generation the store stands on (`None`: none), and
/// the format that follows from it.
pub(super) fn mark_base(meta: &mut redb::Table<&str, u64>, generation: Option<u64>) -> Result<()> {
    let format = if generation.is_some() {
        FORMAT
    } else {
        PLAIN_FORMAT
    };
    meta.insert(HAS_BASE, generation.unwrap_or(0))
        .map_err(storage)?;
    meta.insert(FORMAT_KEY, format).map_err(storage)?;
    Ok(())
}

fn poisoned<T>(_: T) -> Error {
    Error::Internal("a replica store's lock was poisoned".into())
}

fn out_of_turn(what: &str) -> Error {
    Error::Internal(format!("a snapshot's {what} arrived out of turn"))
}

impl ReplicaStore {
    /// Empties the store, marked incomplete, durably (a learner starting over): its
    /// records, sessions and base files, and any load under way.
    pub fn reset(&self) -> Result<()> {
        *self.load.lock().map_err(poisoned)? = None;
        let tx = self.write(true)?;
        tx.delete_table(RECORDS).map_err(storage)?;
        tx.delete_table(SHADOW).map_err(storage)?;
        tx.delete_table(SESSIONS).map_err(storage)?;
        tx.open_table(RECORDS).map_err(storage)?;
        tx.open_table(SHADOW).map_err(storage)?;
        tx.open_table(SESSIONS).map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert(LAST_APPLIED, 0).map_err(storage)?;
            meta.insert(VALID, 0).map_err(storage)?;
            mark_base(&mut meta, None)?;
        }
        tx.commit().map_err(storage)?;
        // Nothing refers to a base file now; reads already on one keep it open.
        *self.base.write().map_err(poisoned)? = None;
        remove_other_bases(self.dir(), None)
    }

    /// Marks an empty store complete, durably (a brand-new partition).
    pub fn create_empty(&self) -> Result<()> {
        self.reset()?;
        let tx = self.write(true)?;
        tx.open_table(META)
            .map_err(storage)?
            .insert(VALID, 1)
            .map_err(storage)?;
        tx.commit().map_err(storage)
    }

    /// Loads snapshot chunks, in the order they were sent: records (in key order, after
    /// those loaded before) into a new base file, a base file's bytes onto the copy
    /// under way, the records and deletions over it into the store. Durable or not, a
    /// load is not valid data until [`ReplicaStore::seal`]; a durable load bounds how
    /// much the seal must write back.
    pub fn load(&self, chunks: &[Chunk], durable: bool) -> Result<()> {
        let mut load = self.load.lock().map_err(poisoned)?;
        let mut over = None;
        for chunk in chunks {
            if load.is_none() {
                if self.base().is_some() || !self.records_empty()? {
                    return Err(Error::Internal(
                        "a snapshot load into a store that was not emptied first".into(),
                    ));
                }
                let tmp = self.dir().join(BASE_TMP);
                *load = Some(match chunk {
                    Chunk::File(_) => Load::File(FileLoad {
                        out: BufWriter::with_capacity(1 << 20, File::create(tmp)?),
                        written: 0,
                        writeback: Writeback::default(),
                    }),
                    _ => Load::Records(BaseWriter::create(&tmp)?),
                });
            }
            match (chunk, load.as_mut()) {
                (Chunk::Records(pairs), Some(Load::Records(writer))) => {
                    for (k, v) in pairs {
                        writer.add(k, v)?;
                    }
                }
                (Chunk::File(bytes), Some(Load::File(copy))) => copy.append(bytes)?,
                (Chunk::Overlay { puts, deleted }, Some(Load::File(_))) => {
                    let tx = match &mut over {
                        Some(tx) => tx,
                        None => over.insert(self.write(false)?),
                    };
                    let mut records = tx.open_table(RECORDS).map_err(storage)?;
                    for (k, v) in puts {
                        records
                            .insert(k.as_slice(), v.as_slice())
                            .map_err(storage)?;
                    }
                    let mut shadow = tx.open_table(SHADOW).map_err(storage)?;
                    for k in deleted {
                        shadow.insert(k.as_slice(), ()).map_err(storage)?;
                    }
                }
                (Chunk::Records(_), _) => return Err(out_of_turn("records")),
                (Chunk::File(_), _) => return Err(out_of_turn("base file")),
                (Chunk::Overlay { .. }, _) => return Err(out_of_turn("overlay")),
            }
        }
        if let Some(tx) = over {
            tx.commit().map_err(storage)?;
        }
        match (durable, load.as_mut()) {
            (true, Some(Load::Records(writer))) => writer.sync(),
            (true, Some(Load::File(copy))) => {
                copy.out.flush()?;
                Ok(copy.out.get_ref().sync_data()?)
            }
            _ => Ok(()),
        }
    }

    fn records_empty(&self) -> Result<bool> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read().map_err(storage)?;
        tx.open_table(RECORDS)
            .map_err(storage)?
            .is_empty()
            .map_err(storage)
    }

    /// Seals a loaded snapshot: its base file durable and in place, then the store
    /// complete, at `decree`, with `sessions` and referring to the base, in one durable
    /// commit. A copied base file is checked (footer and index) before anything refers
    /// to it.
    pub fn seal(&self, decree: u64, sessions: &Sessions) -> Result<()> {
        let tmp = self.dir().join(BASE_TMP);
        let finished = match self.load.lock().map_err(poisoned)?.take() {
            Some(Load::Records(writer)) => writer.finish().map(|_| true)?,
            Some(Load::File(mut copy)) => {
                copy.out.flush()?;
                copy.out.get_ref().sync_all()?;
                true
            }
            None => false,
        };
        let base = if finished {
            let path = base_path(self.dir(), LEARNED_GENERATION);
            std::fs::rename(&tmp, &path)?;
            sync_dir(self.dir())?;
            Some(Arc::new(BaseFile::open(&path)?))
        } else {
            None
        };
        let tx = self.write(true)?;
        {
            let mut table = tx.open_table(SESSIONS).map_err(storage)?;
            for (client, session) in &sessions.clients {
                let bytes = serde_json::to_vec(session).map_err(storage)?;
                table.insert(*client, bytes.as_slice()).map_err(storage)?;
            }
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert(LAST_APPLIED, decree).map_err(storage)?;
            meta.insert(VALID, 1).map_err(storage)?;
            mark_base(&mut meta, base.as_ref().map(|_| LEARNED_GENERATION))?;
        }
        tx.commit().map_err(storage)?;
        *self.base.write().map_err(poisoned)? = base;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::replica::base::BASE;
    use crate::replica::storage::DEFAULT_CACHE_BYTES;
    use crate::replica::storage::tests::{del, incr, put};

    type Contents = BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

    fn open(dir: &Path) -> ReplicaStore {
        ReplicaStore::open(dir, DEFAULT_CACHE_BYTES).unwrap()
    }

    /// Teaches `to` what `from` holds, as a learner is taught: emptied, loaded from a
    /// snapshot in chunks of about `chunk` bytes (two at a time, as the I/O thread
    /// batches them), sealed. `takes_file`: as a learner that takes a base file.
    fn teach(from: &ReplicaStore, to: &ReplicaStore, chunk: usize, takes_file: bool) {
        to.reset().unwrap();
        let snap = from.snapshot().unwrap();
        let pieces: Vec<Chunk> = snap
            .pieces(takes_file, chunk)
            .collect::<Result<_>>()
            .unwrap();
        for batch in pieces.chunks(2) {
            to.load(batch, false).unwrap();
        }
        to.seal(snap.decree, &snap.sessions).unwrap();
    }

    fn learn(from: &ReplicaStore, to: &ReplicaStore, chunk: usize) {
        teach(from, to, chunk, true);
    }

    fn records(pairs: &[(Vec<u8>, Vec<u8>)]) -> [Chunk; 1] {
        [Chunk::Records(pairs.to_vec())]
    }

    /// Everything a store answers by full scan, after checking that point reads and
    /// each hash key's scan agree with it.
    fn contents(store: &ReplicaStore) -> Contents {
        let mut all = Contents::new();
        let mut after = Vec::new();
        loop {
            let page = store.scan_all(&after, 7, 0).unwrap();
            let Some((hk, (sk, _, _))) = page.last() else {
                break;
            };
            after = crate::data::encode_key(hk, sk).unwrap();
            for (hk, (sk, v, _)) in page {
                assert!(all.insert((hk, sk), v).is_none(), "a key twice in a scan");
            }
        }
        for ((hk, sk), v) in &all {
            assert_eq!(store.get(hk, sk, 0).unwrap().unwrap().0, *v, "point read");
        }
        type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
        let mut by_hash: BTreeMap<&Vec<u8>, Pairs> = BTreeMap::new();
        for ((hk, sk), v) in &all {
            by_hash.entry(hk).or_default().push((sk.clone(), v.clone()));
        }
        for (hk, want) in by_hash {
            let got: Vec<_> = store
                .scan_hash_key(hk, b"", b"", usize::MAX, 0)
                .unwrap()
                .into_iter()
                .map(|(sk, v, _)| (sk, v))
                .collect();
            assert_eq!(got, want, "hash key {}", String::from_utf8_lossy(hk));
        }
        all
    }

    fn format_of(store: &ReplicaStore) -> u64 {
        let tx = store.db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        meta.get("format").unwrap().unwrap().value()
    }

    fn raw_records(store: &ReplicaStore) -> u64 {
        use redb::ReadableTableMetadata;
        let tx = store.db.begin_read().unwrap();
        tx.open_table(RECORDS).unwrap().len().unwrap()
    }

    fn shadowed(store: &ReplicaStore) -> u64 {
        use redb::ReadableTableMetadata;
        let tx = store.db.begin_read().unwrap();
        tx.open_table(SHADOW).unwrap().len().unwrap()
    }

    #[test]
    fn a_learned_base_reads_like_the_primary_under_any_later_writes() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (primary, learner, third) = (open(a.path()), open(b.path()), open(c.path()));
        let mut sessions = (Sessions::default(), Sessions::default());
        let mut decree = 0;
        let mut both = |entry: &dyn Fn(u64) -> crate::replica::core::Entry,
                        learner: Option<&ReplicaStore>,
                        sessions: &mut (Sessions, Sessions)| {
            decree += 1;
            primary
                .apply(&[entry(decree)], &mut sessions.0, false)
                .unwrap();
            if let Some(l) = learner {
                l.apply(&[entry(decree)], &mut sessions.1, false).unwrap();
            }
        };
        for i in 0..300 {
            let (hk, sk) = (format!("h{}", i % 6), format!("s{i:03}"));
            both(
                &|d| put(d, &hk, &sk, &format!("v{i}"), 0),
                None,
                &mut sessions,
            );
        }
        both(&|d| put(d, "h", "n", "5", 0), None, &mut sessions);
        learn(&primary, &learner, 2_000);
        assert!(learner.base().is_some() && b.path().join(BASE).exists());
        assert_eq!(format_of(&learner), crate::replica::storage::FORMAT);
        assert_eq!(raw_records(&learner), 0, "the snapshot is all in the base");
        assert_eq!(
            learner.state().unwrap().applied,
            primary.state().unwrap().applied
        );
        assert_eq!(contents(&learner), contents(&primary));
        sessions.1 = learner.state().unwrap().sessions;

        // Seeded puts and deletes on both, over keys in the base and new ones.
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for step in 0..600 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = rng % 400;
            let (hk, sk) = (format!("h{}", i % 6), format!("s{i:03}"));
            if rng.is_multiple_of(3) {
                both(&|d| del(d, &hk, &sk), Some(&learner), &mut sessions);
            } else {
                let v = format!("w{step}");
                both(&|d| put(d, &hk, &sk, &v, 0), Some(&learner), &mut sessions);
            }
            assert_eq!(
                learner.get(hk.as_bytes(), sk.as_bytes(), 0).unwrap(),
                primary.get(hk.as_bytes(), sk.as_bytes(), 0).unwrap(),
                "step {step}: {hk}/{sk}"
            );
            if step % 100 == 99 {
                assert_eq!(contents(&learner), contents(&primary), "step {step}");
            }
        }
        // An atomic write reads a value that is only in the base.
        both(&|d| incr(d, 0, 3), Some(&learner), &mut sessions);
        assert_eq!(learner.get(b"h", b"n", 1).unwrap().unwrap().0, b"8");
        let want = contents(&primary);
        // A restart reads the same; a learner taught by this store (base and all) too:
        // given the base file byte for byte, then the records and deletions over it...
        drop(learner);
        let learner = open(b.path());
        assert_eq!(contents(&learner), want);
        assert!(raw_records(&learner) > 0 && shadowed(&learner) > 0);
        let pieces: Vec<_> = learner.snapshot().unwrap().pieces(true, 1_000).collect();
        assert!(matches!(pieces[0], Ok(Chunk::File(_))), "{:?}", pieces[0]);
        learn(&learner, &third, 1_000);
        assert_eq!(contents(&third), want);
        assert_eq!(raw_records(&third), raw_records(&learner));
        assert_eq!(shadowed(&third), shadowed(&learner));
        assert_eq!(
            std::fs::read(third.base().unwrap().path()).unwrap(),
            std::fs::read(learner.base().unwrap().path()).unwrap(),
            "the same base file"
        );
        // ...or, to a learner that does not take one, as records through the base.
        teach(&learner, &third, 700, false);
        assert_eq!(contents(&third), want);
        assert_eq!(shadowed(&third), 0);
        assert!(learner.estimate_count().unwrap() >= want.len() as u64);
    }

    #[test]
    fn a_load_is_nothing_until_sealed_and_a_sealed_base_survives_a_restart() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let primary = open(a.path());
        let mut sessions = Sessions::default();
        let entries: Vec<_> = (1..=50)
            .map(|d| put(d, "h", &format!("s{d:02}"), "v", 0))
            .collect();
        primary.apply(&entries, &mut sessions, true).unwrap();
        let pairs = primary.snapshot().unwrap().chunk(b"", usize::MAX).unwrap();
        {
            // A learner crashes halfway through its load.
            let learner = open(b.path());
            learner.reset().unwrap();
            learner.load(&records(&pairs[..25]), true).unwrap();
            assert!(b.path().join(BASE_TMP).exists());
        }
        let learner = open(b.path());
        assert!(!b.path().join(BASE_TMP).exists(), "the half load is gone");
        assert!(learner.base().is_none());
        assert!(!learner.state().unwrap().valid);
        assert!(learner.get(b"h", b"s01", 0).unwrap().is_none());
        drop(learner);
        // A base file the store does not refer to (a crash between the rename and the
        // seal's commit) is removed, not read.
        std::fs::write(b.path().join(BASE), b"left over").unwrap();
        let learner = open(b.path());
        assert!(!b.path().join(BASE).exists());
        learn(&primary, &learner, 300);
        drop(learner);
        let learner = open(b.path());
        assert!(learner.state().unwrap().valid);
        assert_eq!(contents(&learner), contents(&primary));
        drop(learner);
        // A base the store refers to but cannot read: refused by name, never empty data.
        std::fs::remove_file(b.path().join(BASE)).unwrap();
        let err = ReplicaStore::open(b.path(), DEFAULT_CACHE_BYTES)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(BASE) || err.contains("No such file"), "{err}");
    }

    #[test]
    fn a_reset_drops_the_base_and_a_load_needs_an_emptied_store() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (primary, learner) = (open(a.path()), open(b.path()));
        let mut sessions = Sessions::default();
        primary
            .apply(&[put(1, "h", "s", "v", 0)], &mut sessions, true)
            .unwrap();
        learn(&primary, &learner, 100);
        let held = learner.base().unwrap();
        learner.reset().unwrap();
        assert!(learner.base().is_none() && !b.path().join(BASE).exists());
        assert_eq!(
            format_of(&learner),
            crate::replica::storage::PLAIN_FORMAT,
            "a store with no base reads in binaries that know nothing of bases"
        );
        assert!(learner.get(b"h", b"s", 0).unwrap().is_none());
        let key = crate::data::encode_key(b"h", b"s").unwrap();
        assert!(
            held.get(&key).unwrap().is_some(),
            "a read already on the base finishes"
        );
        let pairs = primary.snapshot().unwrap().chunk(b"", usize::MAX).unwrap();
        learner
            .apply(&[put(1, "x", "y", "z", 0)], &mut Sessions::default(), true)
            .unwrap();
        let err = learner.load(&records(&pairs), false).unwrap_err();
        assert!(err.to_string().contains("not emptied"), "{err}");
        // Pieces out of turn are refused: the store cannot tell what they mean.
        learner.reset().unwrap();
        let overlay = Chunk::Overlay {
            puts: pairs.clone(),
            deleted: vec![],
        };
        let err = learner.load(&[overlay], false).unwrap_err();
        assert!(err.to_string().contains("out of turn"), "{err}");
        learner.reset().unwrap();
        let mixed = [records(&pairs)[0].clone(), Chunk::File(vec![1, 2, 3])];
        let err = learner.load(&mixed, false).unwrap_err();
        assert!(err.to_string().contains("out of turn"), "{err}");
    }
}
