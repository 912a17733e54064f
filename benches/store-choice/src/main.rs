//! The measurement behind Ballast's choice of replica store: redb (B-tree, copy-on-write)
//! against fjall (LSM), on the workloads a replica puts on its store.
//!
//! - `apply`: committed mutations applied in batches (16 records of 100 bytes, one
//!   commit per decree), not synced — the prepare log is the durable copy — with a
//!   durable commit every 1024 decrees, as `PartitionState::commit` does;
//! - `apply-sync`: the same, every commit synced (what a store without a log would pay);
//! - `get`: random point reads of keys that exist;
//! - `scan`: one consistent full scan (a learner's snapshot stream, `count_data -c`);
//! - `load`: a learner's bulk load, 1000-byte values in key order, 1 MB per commit,
//!   durable every 32 MB;
//! - the bytes on disk at the end.
//!
//! Run: `cargo run --release -- [--scale N]` from this directory. Each row prints the
//! time and rate of both stores and redb's rate as a multiple of fjall's.

use std::path::Path;
use std::time::{Duration, Instant};

const APPLY_COMMITS: u64 = 20_000;
const SYNC_COMMITS: u64 = 1_000;
const BATCH: u64 = 16;
const DURABLE_EVERY: u64 = 1024;
const GETS: u64 = 100_000;
const LOAD_RECORDS: u64 = 200_000;
const LOAD_VALUE: usize = 1000;
const CHUNK: usize = 1 << 20;
const DURABLE_LOAD: usize = 32 << 20;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The operations the comparison needs from a store.
trait Store {
    fn commit(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Res<()>;
    fn get(&self, key: &[u8]) -> Res<bool>;
    /// Scans everything in one consistent view; returns (records, bytes).
    fn scan(&self) -> Res<(u64, u64)>;
}

/// Pegasus's key layout: 2-byte hash-key length, hash key, sort key.
fn key(hash: u64, sort: u64) -> Vec<u8> {
    let hk = format!("user{hash:012}");
    let mut k = (hk.len() as u16).to_be_bytes().to_vec();
    k.extend_from_slice(hk.as_bytes());
    k.extend_from_slice(format!("s{sort:04}").as_bytes());
    k
}

/// A small deterministic generator (no dependency).
struct Dice(u64);
impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

mod redb_store {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

    const T: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

    pub struct S(Database);

    pub fn open(dir: &Path) -> Res<S> {
        let db = Database::create(dir.join("data.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(T)?;
        tx.commit()?;
        Ok(S(db))
    }

    impl Store for S {
        fn commit(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Res<()> {
            let mut tx = self.0.begin_write()?;
            if !durable {
                tx.set_durability(Durability::None)?;
            }
            {
                let mut t = tx.open_table(T)?;
                for (k, v) in pairs {
                    t.insert(k.as_slice(), v.as_slice())?;
                }
            }
            tx.commit()?;
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Res<bool> {
            let tx = self.0.begin_read()?;
            Ok(tx.open_table(T)?.get(key)?.is_some())
        }
        fn scan(&self) -> Res<(u64, u64)> {
            let tx = self.0.begin_read()?;
            let t = tx.open_table(T)?;
            let (mut n, mut bytes) = (0, 0);
            for e in t.iter()? {
                let (k, v) = e?;
                n += 1;
                bytes += (k.value().len() + v.value().len()) as u64;
            }
            Ok((n, bytes))
        }
    }
}

mod fjall_store {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

    pub struct S {
        db: Database,
        ks: Keyspace,
    }

    pub fn open(dir: &Path) -> Res<S> {
        let db = Database::builder(dir.join("fjall")).open()?;
        let ks = db.keyspace("records", KeyspaceCreateOptions::default)?;
        Ok(S { db, ks })
    }

    impl Store for S {
        fn commit(&mut self, pairs: &[(Vec<u8>, Vec<u8>)], durable: bool) -> Res<()> {
            let mut b = self.db.batch();
            for (k, v) in pairs {
                b.insert(&self.ks, k.as_slice(), v.as_slice());
            }
            b.commit()?;
            if durable {
                self.db.persist(PersistMode::SyncAll)?;
            }
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Res<bool> {
            Ok(self.ks.get(key)?.is_some())
        }
        fn scan(&self) -> Res<(u64, u64)> {
            let snap = self.db.snapshot();
            let (mut n, mut bytes) = (0, 0);
            for g in snap.iter(&self.ks) {
                let (k, v) = g.into_inner()?;
                n += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            Ok((n, bytes))
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

/// One store's results: (name, seconds, unit count, unit) per workload, and disk bytes.
struct Results {
    rows: Vec<(&'static str, Duration, f64, &'static str)>,
    disk: u64,
}

fn timed<T>(f: impl FnOnce() -> Res<T>) -> Res<(T, Duration)> {
    let t = Instant::now();
    let out = f()?;
    Ok((out, t.elapsed()))
}

fn run(store: &mut dyn Store, dir: &Path, scale: u64) -> Res<Results> {
    let mut rows = Vec::new();
    let value = vec![b'v'; 100];
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    // apply: batches of random keys, durable every DURABLE_EVERY commits.
    let commits = APPLY_COMMITS * scale;
    let mut written = Vec::with_capacity((commits * BATCH) as usize);
    let ((), took) = timed(|| {
        for c in 0..commits {
            let pairs: Vec<_> = (0..BATCH)
                .map(|_| {
                    let k = key(dice.next() % 1_000_000, dice.next() % 16);
                    written.push(k.clone());
                    (k, value.clone())
                })
                .collect();
            store.commit(&pairs, (c + 1) % DURABLE_EVERY == 0)?;
        }
        Ok(())
    })?;
    rows.push((
        "apply (16 x 100 B, sync every 1024)",
        took,
        commits as f64,
        "commits",
    ));
    let ((), took) = timed(|| {
        for _ in 0..SYNC_COMMITS {
            let pairs: Vec<_> = (0..BATCH)
                .map(|_| (key(dice.next() % 1_000_000, 99), value.clone()))
                .collect();
            store.commit(&pairs, true)?;
        }
        Ok(())
    })?;
    rows.push((
        "apply-sync (every commit synced)",
        took,
        SYNC_COMMITS as f64,
        "commits",
    ));
    let gets = GETS * scale;
    let (found, took) = timed(|| {
        let mut found = 0u64;
        for _ in 0..gets {
            let k = &written[(dice.next() % written.len() as u64) as usize];
            found += store.get(k)? as u64;
        }
        Ok(found)
    })?;
    assert_eq!(found, gets, "every written key is found");
    rows.push(("get (random, present)", took, gets as f64, "reads"));
    // load: what a learner does, into a fresh key range after the existing one.
    let big = vec![b'b'; LOAD_VALUE];
    let records = LOAD_RECORDS * scale;
    let ((), took) = timed(|| {
        let (mut chunk, mut size, mut since_durable) = (Vec::new(), 0, 0);
        for r in 0..records {
            let mut k = key(2_000_000 + r / 100, r % 100);
            k[0] = 0xFF; // after every other key, in order
            size += k.len() + big.len();
            chunk.push((k, big.clone()));
            if size >= CHUNK || r + 1 == records {
                since_durable += size;
                let durable = since_durable >= DURABLE_LOAD || r + 1 == records;
                store.commit(&chunk, durable)?;
                if durable {
                    since_durable = 0;
                }
                chunk.clear();
                size = 0;
            }
        }
        Ok(())
    })?;
    rows.push((
        "load (1000 B in key order, 1 MB commits)",
        took,
        (records * (LOAD_VALUE as u64 + 22)) as f64 / 1e6,
        "MB",
    ));
    let ((n, bytes), took) = timed(|| store.scan())?;
    assert!(n >= records, "the scan sees every loaded record");
    rows.push((
        "scan (one consistent view, all)",
        took,
        bytes as f64 / 1e6,
        "MB",
    ));
    Ok(Results {
        rows,
        disk: dir_bytes(dir),
    })
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let mut scale = 1;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scale" => scale = args.next().ok_or("--scale needs N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let base = std::env::current_dir()?;
    let rdir = tempfile::tempdir_in(&base)?;
    let fdir = tempfile::tempdir_in(&base)?;
    let r = run(&mut redb_store::open(rdir.path())?, rdir.path(), scale)?;
    let f = run(&mut fjall_store::open(fdir.path())?, fdir.path(), scale)?;
    println!(
        "{:<42} {:>9} {:>13} {:>9} {:>13} {:>11}",
        "workload", "redb s", "redb rate", "fjall s", "fjall rate", "redb/fjall"
    );
    for (rr, fr) in r.rows.iter().zip(&f.rows) {
        let rate = |d: &Duration, n: f64| n / d.as_secs_f64();
        println!(
            "{:<42} {:>9.2} {:>9.0} {:<3} {:>9.2} {:>9.0} {:<3} {:>11.2}",
            rr.0,
            rr.1.as_secs_f64(),
            rate(&rr.1, rr.2),
            &rr.3[..3.min(rr.3.len())],
            fr.1.as_secs_f64(),
            rate(&fr.1, fr.2),
            &fr.3[..3.min(fr.3.len())],
            rate(&rr.1, rr.2) / rate(&fr.1, fr.2)
        );
    }
    println!(
        "{:<42} {:>9} {:>9.0} MB  {:>9} {:>9.0} MB  {:>11.2}",
        "bytes on disk at the end",
        "",
        r.disk as f64 / 1e6,
        "",
        f.disk as f64 / 1e6,
        r.disk as f64 / f.disk.max(1) as f64
    );
    Ok(())
}
