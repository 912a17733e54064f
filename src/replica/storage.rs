//! One replica's data: an embedded store (a single redb file in the replica's own
//! directory, so a replica can be snapshotted, copied and deleted whole) holding the
//! records in Pegasus's key encoding ([`crate::data`]), the client sessions, the decree
//! of the last write applied, and whether the data is complete. Only committed entries
//! are applied, many per transaction, each recording its decree. At rest the records
//! live in an immutable base file under the store, in key order ([`super::base`]): a
//! quiet spell folds what the store holds into the next one ([`super::io::rewrite`]),
//! and a learner's snapshot is loaded as one and sealed complete in one durable commit
//! ([`super::learned`]). The file carries a format version: an unknown one is refused
//! by name. Reads are in [`super::reads`] and [`super::layered`].
//!
//! Why redb, not an LSM such as fjall — measured by `benches/store-choice` (`cargo run
//! --release` there; both stores, the replica's workloads, one run): redb applies
//! per-decree batches (16 x 100 B, synced every 1024) at ~5,000 commits/s, a third of
//! fjall's ~15,000; it answers random point reads 2x faster, streams a consistent full
//! scan (a learning snapshot, `count_data -c`) 5-6x faster, bulk-loads a learner's
//! snapshot at 0.6-1.2x, and takes ~1.7x the disk. The apply rate is not what bounds a
//! write: the prepare log's fsyncs and the round trip to the secondaries are (a
//! replicated write takes 1-7 ms at p50, applying its decree ~0.2 ms), while reads, scans
//! and snapshots are bound by the store. redb is also one file per replica (copied or
//! deleted whole, no background compaction) and already the meta server's store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::data::{decode_value, encode_key, encode_value};
use crate::error::{Error, Result};
use crate::pb;
use crate::replica::base::BaseFile;
use crate::replica::base_files::{base_path, remove_other_bases};
use crate::replica::core::Entry;
use crate::replica::core::sessions::{Session, Sessions};
use crate::replica::layered::{Under, point};
use crate::replica::learned::Load;

pub(super) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// Keys deleted from the base file under the store since it was written.
pub(super) const SHADOW: TableDefinition<&[u8], ()> = TableDefinition::new("shadow");
pub(super) const LAST_APPLIED: &str = "last_applied_decree";
pub(super) const VALID: &str = "valid";
/// The generation of the base file under the store ([`crate::replica::base_files`]);
/// 0 with none.
pub(super) const HAS_BASE: &str = "base";
pub(super) const FORMAT_KEY: &str = "format";
/// The newest format of `data.redb` this binary writes and reads: 3 while a base file
/// of any generation lies under the store, [`PLAIN_FORMAT`] otherwise — so a binary
/// that knows nothing of base files, or only of the first generation's
/// ([`FIRST_BASE_FORMAT`]), refuses such a store by name instead of reading it without
/// its base.
pub const FORMAT: u64 = 3;
/// The format written while only a first-generation base file (`data.base`) could lie
/// under a store; still read.
pub const FIRST_BASE_FORMAT: u64 = 2;
/// The format of a store with no base file under it.
pub const PLAIN_FORMAT: u64 = 1;
/// The store's file in a replica's directory.
pub const FILE: &str = "data.redb";
/// The page cache of each replica's store unless the server is told otherwise
/// (`replica-server --store-cache-mb`). redb's default is 1 GiB per database, and a
/// node holds many replicas: a server that learned one 256 MB replica peaked at 415 MB
/// resident with the default and 79 MB with this bound, and its load ran 1.33x faster
/// (`ballast-bench learn`, alternating runs). Reads of data larger than the cache go to
/// the host's page cache, which holds the file anyway.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// A record read back: sort key, value, expiry.
pub type Record = (Vec<u8>, Vec<u8>, u32);

/// A replica's store.
pub struct ReplicaStore {
    pub(super) db: Database,
    path: PathBuf,
    /// The base file under the store, if any (set by a seal or a fold).
    pub(super) base: RwLock<Option<Arc<BaseFile>>>,
    /// The base file a learner is writing, until it is sealed.
    pub(super) load: Mutex<Option<Load>>,
}

pub(super) fn storage<E: std::fmt::Display>(e: E) -> Error {
    Error::Storage(e.to_string())
}

/// What a store holds on opening.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    /// The data is complete (not a snapshot being loaded).
    pub valid: bool,
    /// The last decree applied.
    pub applied: u64,
    /// The client sessions as of it.
    pub sessions: Sessions,
}

impl ReplicaStore {
    /// Opens (creating if needed, as incomplete) the store in `dir`, keeping up to
    /// `cache_bytes` of its pages in memory. Refuses, by name, a file in a format this
    /// binary does not read.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<ReplicaStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(storage)?;
        let tx = db.begin_write().map_err(storage)?;
        let generation;
        {
            tx.open_table(RECORDS).map_err(storage)?;
            tx.open_table(SESSIONS).map_err(storage)?;
            tx.open_table(SHADOW).map_err(storage)?;
            let mut meta = tx.open_table(META).map_err(storage)?;
            generation = meta
                .get(HAS_BASE)
                .map_err(storage)?
                .map(|v| v.value())
                .filter(|g| *g > 0);
            let format = meta.get(FORMAT_KEY).map_err(storage)?.map(|v| v.value());
            let applied = meta.get(LAST_APPLIED).map_err(storage)?.is_some();
            match format {
                Some(PLAIN_FORMAT | FIRST_BASE_FORMAT | FORMAT) => {}
                Some(f) => {
                    return Err(Error::Storage(format!(
                        "{} is in format {f}; this binary reads formats {PLAIN_FORMAT} to {FORMAT}",
                        path.display()
                    )));
                }
                None if applied => {
                    return Err(Error::Storage(format!(
                        "{} is in format 0 (written before formats were versioned); this binary reads formats {PLAIN_FORMAT} to {FORMAT}",
                        path.display()
                    )));
                }
                None => {
                    meta.insert(FORMAT_KEY, PLAIN_FORMAT).map_err(storage)?;
                    meta.insert(LAST_APPLIED, 0).map_err(storage)?;
                    meta.insert(VALID, 0).map_err(storage)?;
                }
            }
        }
        tx.commit().map_err(storage)?;
        // A half-written load or fold does not outlive the process (a learner starts
        // over, a fold runs again), and a base the store does not refer to was left by
        // a crash: they all go.
        remove_other_bases(dir, generation)?;
        let base = match generation {
            Some(g) => Some(Arc::new(BaseFile::open(&base_path(dir, g))?)),
            None => None,
        };
        Ok(ReplicaStore {
            db,
            path,
            base: RwLock::new(base),
            load: Mutex::new(None),
        })
    }

    /// The base file under the store, if any.
    pub fn base(&self) -> Option<Arc<BaseFile>> {
        self.base.read().map_or(None, |b| b.clone())
    }

    /// A read transaction and, as of it, the base file and the keys deleted since it
    /// was loaded (if the store has a base): what every read of the records starts from.
    pub(super) fn view(&self) -> Result<(redb::ReadTransaction, Option<Under>)> {
        let base = self.base();
        let tx = self.db.begin_read().map_err(storage)?;
        let under = match base {
            Some(base) => Some((base, tx.open_table(SHADOW).map_err(storage)?)),
            None => None,
        };
        Ok((tx, under))
    }

    /// The store's directory.
    pub(super) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Whether the data is complete, the last decree applied, and the sessions.
    pub fn state(&self) -> Result<StoreState> {
        let tx = self.db.begin_read().map_err(storage)?;
        Ok(StoreState {
            valid: meta_value(&tx, VALID)? == 1,
            applied: meta_value(&tx, LAST_APPLIED)?,
            sessions: read_sessions(&tx.open_table(SESSIONS).map_err(storage)?)?,
        })
    }

    /// The kept outcome of client `id`'s atomic write (`None` once forgotten).
    pub fn atomic_result(&self, id: &pb::RequestId) -> Result<Option<pb::AtomicResult>> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(SESSIONS).map_err(storage)?;
        let Some(bytes) = table.get(id.client).map_err(storage)? else {
            return Ok(None);
        };
        let session: Session = serde_json::from_slice(bytes.value()).map_err(storage)?;
        let mut sessions = Sessions::default();
        sessions.clients.insert(id.client, session);
        result_of(&sessions, id)
    }

    pub(super) fn write(&self, durable: bool) -> Result<redb::WriteTransaction> {
        let mut tx = self.db.begin_write().map_err(storage)?;
        if !durable {
            tx.set_durability(Durability::None).map_err(storage)?;
        }
        Ok(tx)
    }

    /// Applies committed entries in one transaction, recording the last one's decree and
    /// the sessions they change (`sessions` is the store's copy, kept in step). `durable`
    /// syncs it (otherwise the prepare log keeps the entries, and a later durable commit
    /// covers them). Returns the last decree applied.
    pub fn apply(&self, entries: &[Entry], sessions: &mut Sessions, durable: bool) -> Result<u64> {
        let base = self.base();
        let tx = self.write(durable)?;
        let mut last = None;
        {
            let mut records = tx.open_table(RECORDS).map_err(storage)?;
            let mut table = tx.open_table(SESSIONS).map_err(storage)?;
            let mut shadow = match &base {
                Some(_) => Some(tx.open_table(SHADOW).map_err(storage)?),
                None => None,
            };
            let mut changed = std::collections::BTreeSet::new();
            for e in entries {
                let mut outcomes = Vec::new();
                for m in &e.mutations {
                    if let Some(atomic) = &m.atomic {
                        // A duplicate of a write already applied is not applied again.
                        if atomic
                            .request
                            .is_some_and(|id| sessions.lookup(&id).is_some())
                        {
                            continue;
                        }
                        let under = shadow.as_ref().zip(base.as_deref());
                        let (put, outcome) = apply_atomic(&records, under, m, atomic)?;
                        if let Some((sort_key, expire_ts, value)) = put {
                            let key = encode_key(&m.hash_key, &sort_key)?;
                            let value = encode_value(expire_ts, &value);
                            records
                                .insert(key.as_slice(), value.as_slice())
                                .map_err(storage)?;
                        }
                        outcomes.extend(atomic.request.map(|id| (id, outcome)));
                        continue;
                    }
                    let key = encode_key(&m.hash_key, &m.sort_key)?;
                    if m.delete {
                        records.remove(key.as_slice()).map_err(storage)?;
                        if let Some(shadow) = shadow.as_mut() {
                            shadow.insert(key.as_slice(), ()).map_err(storage)?;
                        }
                    } else {
                        let value = encode_value(m.expire_ts, &m.value);
                        records
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(storage)?;
                    }
                }
                let changes = sessions.apply(e.decree, &e.requests);
                for (id, outcome) in outcomes {
                    sessions.keep_result(&id, prost::Message::encode_to_vec(&outcome));
                    changed.insert(id.client);
                }
                changed.extend(changes.touched.into_iter().chain(changes.removed));
                last = Some(e.decree);
            }
            // Each client's session is written once per transaction, as it stands after
            // the last entry (a batch of entries from one client rewrote it per entry).
            for client in changed {
                match sessions.clients.get(&client) {
                    Some(session) => {
                        let bytes = serde_json::to_vec(session).map_err(storage)?;
                        table.insert(client, bytes.as_slice()).map_err(storage)?;
                    }
                    None => {
                        table.remove(client).map_err(storage)?;
                    }
                }
            }
            if let Some(decree) = last {
                let mut meta = tx.open_table(META).map_err(storage)?;
                meta.insert(LAST_APPLIED, decree).map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)?;
        match last {
            Some(d) => Ok(d),
            None => self.state().map(|s| s.applied),
        }
    }

    /// Makes everything applied so far durable.
    pub fn sync(&self) -> Result<()> {
        self.write(true)?.commit().map_err(storage)
    }

    /// The store's size on disk, in bytes, its base file's included.
    pub fn disk_usage(&self) -> u64 {
        let base = self.base().map_or(0, |b| b.bytes());
        std::fs::metadata(&self.path).map_or(0, |m| m.len()) + base
    }
}

/// Evaluates an atomic mutation against the records as of this point of the transaction.
fn apply_atomic(
    records: &redb::Table<&[u8], &[u8]>,
    under: Option<(&redb::Table<&[u8], ()>, &BaseFile)>,
    m: &pb::Mutation,
    atomic: &pb::Atomic,
) -> Result<(Option<crate::atomic::Put>, pb::AtomicResult)> {
    let mut failure = None;
    let read = |sort_key: &[u8]| -> Option<crate::atomic::Stored> {
        let stored = encode_key(&m.hash_key, sort_key)
            .and_then(|key| point(records, under, &key))
            .and_then(|v| {
                v.map(|v| decode_value(&v).map(|(ts, b)| (ts, b.to_vec())))
                    .transpose()
            });
        stored.unwrap_or_else(|e| {
            failure = Some(e);
            None
        })
    };
    let evaluated = crate::atomic::evaluate(atomic, &m.sort_key, read);
    match failure {
        Some(e) => Err(e),
        None => Ok(evaluated),
    }
}

/// The outcome of client `id`'s atomic write, if it is still kept.
fn result_of(sessions: &Sessions, id: &pb::RequestId) -> Result<Option<pb::AtomicResult>> {
    match sessions.result(id) {
        Some(bytes) => prost::Message::decode(bytes.as_slice())
            .map(Some)
            .map_err(|e| Error::Storage(format!("a kept write outcome is corrupt: {e}"))),
        None => Ok(None),
    }
}

/// Meta value `key` as of read transaction `tx` (0 if unset).
pub(super) fn meta_value(tx: &redb::ReadTransaction, key: &str) -> Result<u64> {
    let meta = tx.open_table(META).map_err(storage)?;
    Ok(meta.get(key).map_err(storage)?.map_or(0, |v| v.value()))
}

pub(super) fn read_sessions(table: &redb::ReadOnlyTable<u64, &[u8]>) -> Result<Sessions> {
    use redb::ReadableTable;
    let mut sessions = Sessions::default();
    for entry in table.iter().map_err(storage)? {
        let (client, bytes) = entry.map_err(storage)?;
        let session: Session = serde_json::from_slice(bytes.value()).map_err(storage)?;
        sessions.clients.insert(client.value(), session);
    }
    Ok(sessions)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pb;

    pub(crate) fn put(decree: u64, hk: &str, sk: &str, v: &str, ttl: u32) -> Entry {
        Arc::new(pb::LogEntry {
            ballot: 1,
            decree,
            mutations: vec![pb::Mutation {
                hash_key: hk.into(),
                sort_key: sk.into(),
                value: v.into(),
                expire_ts: ttl,
                ..Default::default()
            }],
            requests: vec![pb::RequestId {
                client: 7,
                seq: decree,
                acked_below: 0,
            }],
        })
    }

    pub(crate) fn incr(decree: u64, seq: u64, delta: i64) -> Entry {
        let id = pb::RequestId {
            client: 9,
            seq,
            acked_below: 0,
        };
        Arc::new(pb::LogEntry {
            ballot: 1,
            decree,
            mutations: vec![pb::Mutation {
                hash_key: b"h".to_vec(),
                sort_key: b"n".to_vec(),
                atomic: Some(pb::Atomic {
                    op: Some(pb::atomic::Op::Incr(delta)),
                    now_ms: 1_000,
                    request: Some(id),
                }),
                ..Default::default()
            }],
            requests: vec![id],
        })
    }

    #[test]
    fn an_atomic_write_is_applied_once_and_its_outcome_kept_with_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        let mut sessions = Sessions::default();
        store
            .apply(&[incr(1, 0, 5), incr(2, 1, 3)], &mut sessions, true)
            .unwrap();
        // The same write (seq 1) logged again at a later decree is not applied again.
        store.apply(&[incr(3, 1, 3)], &mut sessions, true).unwrap();
        assert_eq!(store.get(b"h", b"n", 1).unwrap().unwrap().0, b"8");
        let id = |seq| pb::RequestId {
            client: 9,
            seq,
            acked_below: 0,
        };
        let kept = store.atomic_result(&id(1)).unwrap().unwrap();
        assert_eq!(kept.outcome, Some(pb::atomic_result::Outcome::IncrValue(8)));
        drop(store);
        let store = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        let kept = store.atomic_result(&id(0)).unwrap().unwrap();
        assert_eq!(kept.outcome, Some(pb::atomic_result::Outcome::IncrValue(5)));
        assert!(store.atomic_result(&id(7)).unwrap().is_none());
        let snap = store.snapshot().unwrap();
        assert!(
            snap.sessions.result(&id(1)).is_some(),
            "a learner gets the outcomes"
        );
    }

    fn from(client: u64, decree: u64) -> Entry {
        Arc::new(pb::LogEntry {
            ballot: 1,
            decree,
            mutations: vec![],
            requests: vec![pb::RequestId {
                client,
                seq: decree,
                acked_below: 0,
            }],
        })
    }

    #[test]
    fn a_batch_stores_the_sessions_its_entries_one_by_one_would() {
        use crate::replica::core::sessions::{IDLE_DECREES, SWEEP_EVERY};
        let far = SWEEP_EVERY * (IDLE_DECREES / SWEEP_EVERY + 1);
        // Client 7 is swept as idle at `far`; in the second case it writes again after.
        let cases = [
            vec![from(7, 1), from(7, 2), from(8, far)],
            vec![from(7, 1), from(8, far), from(7, far + 1), from(7, far + 2)],
        ];
        for entries in cases {
            let one_by_one = tempfile::tempdir().unwrap();
            let store = ReplicaStore::open(one_by_one.path(), DEFAULT_CACHE_BYTES).unwrap();
            let mut expected = Sessions::default();
            for e in &entries {
                store
                    .apply(std::slice::from_ref(e), &mut expected, false)
                    .unwrap();
            }
            let stored_singly = store.state().unwrap().sessions;
            let batch = tempfile::tempdir().unwrap();
            let store = ReplicaStore::open(batch.path(), DEFAULT_CACHE_BYTES).unwrap();
            let mut sessions = Sessions::default();
            store.apply(&entries, &mut sessions, false).unwrap();
            assert_eq!(sessions, expected);
            assert_eq!(store.state().unwrap().sessions, stored_singly);
            assert_eq!(stored_singly, expected, "the store holds what memory holds");
        }
    }

    pub(crate) fn del(decree: u64, hk: &str, sk: &str) -> Entry {
        Arc::new(pb::LogEntry {
            ballot: 1,
            decree,
            mutations: vec![pb::Mutation {
                hash_key: hk.into(),
                sort_key: sk.into(),
                delete: true,
                ..Default::default()
            }],
            requests: vec![],
        })
    }

    #[test]
    fn applies_entries_reads_scans_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        assert!(!store.state().unwrap().valid, "a new store is incomplete");
        store.create_empty().unwrap();
        let mut sessions = Sessions::default();
        let batch = [
            put(1, "u1", "a", "1", 0),
            put(2, "u1", "b", "2", 0),
            put(3, "u2", "a", "3", 0),
        ];
        assert_eq!(store.apply(&batch, &mut sessions, true).unwrap(), 3);
        let later = [del(4, "u1", "a"), put(5, "u1", "c", "old", 50)];
        store.apply(&later, &mut sessions, true).unwrap();
        assert_eq!(store.get(b"u1", b"b", 0).unwrap(), Some((b"2".to_vec(), 0)));
        assert_eq!(store.get(b"u1", b"a", 0).unwrap(), None, "deleted");
        assert_eq!(store.get(b"u1", b"c", 60).unwrap(), None, "expired");
        let scan = store.scan_hash_key(b"u1", b"", b"", 10, 0).unwrap();
        let sort_keys: Vec<&[u8]> = scan.iter().map(|r| r.0.as_slice()).collect();
        assert_eq!(sort_keys, [&b"b"[..], &b"c"[..]]);
        assert_eq!(
            store.scan_hash_key(b"u1", b"b", b"c", 10, 0).unwrap().len(),
            1
        );
        assert_eq!(
            store.scan_all(b"", 10, 60).unwrap().len(),
            2,
            "u1/b and u2/a are live"
        );
        assert_eq!(store.estimate_count().unwrap(), 3);
        drop(store);
        let store = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        let state = store.state().unwrap();
        assert!(state.valid);
        assert_eq!(state.applied, 5);
        assert_eq!(state.sessions, sessions, "sessions survive with the data");
        assert_eq!(state.sessions.clients[&7].applied.get(&3), Some(&3));
        assert!(store.disk_usage() > 0);
    }

    #[test]
    fn a_snapshot_is_consistent_and_a_learner_seals_it_complete() {
        let dir = tempfile::tempdir().unwrap();
        let source =
            ReplicaStore::open(dir.path().join("a").as_path(), DEFAULT_CACHE_BYTES).unwrap();
        source.create_empty().unwrap();
        let mut sessions = Sessions::default();
        let batch: Vec<Entry> = (1..=25)
            .map(|d| put(d, &format!("h{d:02}"), "s", "v", 0))
            .collect();
        source.apply(&batch, &mut sessions, false).unwrap();
        let snap = source.snapshot().unwrap();
        source
            .apply(&[put(26, "late", "s", "v", 0)], &mut sessions, false)
            .unwrap();
        let learner =
            ReplicaStore::open(dir.path().join("b").as_path(), DEFAULT_CACHE_BYTES).unwrap();
        learner.reset().unwrap();
        for chunk in snap.pieces(true, 100) {
            learner.load(&[chunk.unwrap()], false).unwrap();
        }
        assert!(!learner.state().unwrap().valid, "incomplete until sealed");
        learner.seal(snap.decree, &snap.sessions).unwrap();
        let state = learner.state().unwrap();
        assert!(state.valid);
        assert_eq!(state.applied, 25);
        assert_eq!(
            learner.estimate_count().unwrap(),
            25,
            "the later write is not in it"
        );
        assert_eq!(state.sessions.clients[&7].applied.len(), 25);
        learner.reset().unwrap();
        assert_eq!(learner.estimate_count().unwrap(), 0);
        assert!(!learner.state().unwrap().valid);
    }

    #[test]
    fn a_store_many_times_its_cache_loads_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = 64 << 10;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..2_000u32)
            .map(|i| {
                (
                    format!("key{i:06}").into_bytes(),
                    vec![(i % 251) as u8; 1_000],
                )
            })
            .collect();
        {
            let store = ReplicaStore::open(dir.path(), tiny).unwrap();
            store.reset().unwrap();
            for chunk in pairs.chunks(300) {
                let chunk = crate::replica::core::Chunk::Records(chunk.to_vec());
                store.load(&[chunk], false).unwrap();
            }
            store.seal(9, &Sessions::default()).unwrap();
        }
        let store = ReplicaStore::open(dir.path(), tiny).unwrap();
        assert!(
            store.disk_usage() > 30 * tiny as u64,
            "the data outgrows the cache"
        );
        let state = store.state().unwrap();
        assert!(state.valid);
        assert_eq!(state.applied, 9);
        let snap = store.snapshot().unwrap();
        let mut read = Vec::new();
        loop {
            let after = read
                .last()
                .map_or(Vec::new(), |(k, _): &(Vec<u8>, _)| k.clone());
            let chunk = snap.chunk(&after, 64 << 10).unwrap();
            if chunk.is_empty() {
                break;
            }
            read.extend(chunk);
        }
        assert_eq!(read, pairs);
    }

    #[test]
    fn a_store_of_another_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        drop(ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap());
        {
            let db = Database::create(dir.path().join(FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert(FORMAT_KEY, 9).unwrap();
            tx.commit().unwrap();
        }
        let err = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("data.redb is in format 9"), "{err}");
    }

    #[test]
    fn a_store_on_a_first_generation_base_in_format_2_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let store = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        store.reset().unwrap();
        let pairs = vec![(encode_key(b"h", b"s").unwrap(), encode_value(0, b"v"))];
        let chunk = crate::replica::core::Chunk::Records(pairs);
        store.load(&[chunk], false).unwrap();
        store.seal(4, &Sessions::default()).unwrap();
        drop(store);
        {
            // As the build before generations wrote it.
            let db = Database::create(dir.path().join(FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            let mut meta = tx.open_table(META).unwrap();
            assert_eq!(meta.get(HAS_BASE).unwrap().unwrap().value(), 1);
            meta.insert(FORMAT_KEY, FIRST_BASE_FORMAT).unwrap();
            drop(meta);
            tx.commit().unwrap();
        }
        let store = ReplicaStore::open(dir.path(), DEFAULT_CACHE_BYTES).unwrap();
        assert_eq!(store.get(b"h", b"s", 0).unwrap().unwrap().0, b"v");
    }
}
