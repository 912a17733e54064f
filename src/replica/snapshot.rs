//! A consistent point-in-time view of a replica's store, to stream to a learner: writes
//! applied after it was taken are not seen. Read either as the store's records in key
//! order (through any base file), or — for a store standing on a base file, to a
//! learner that takes one — as that file's bytes followed by what the store holds over
//! it: its own records and the keys deleted from the base since.

use std::sync::Arc;

use redb::ReadOnlyTable;

use crate::error::Result;
use crate::replica::base::BaseFile;
use crate::replica::base_files::FileCopy;
use crate::replica::core::Chunk;
use crate::replica::core::sessions::Sessions;
use crate::replica::layered::{Merged, Under};
use crate::replica::storage::{
    LAST_APPLIED, RECORDS, ReplicaStore, SESSIONS, meta_value, read_sessions, storage,
};

/// A consistent point-in-time view of a store.
pub struct StoreSnapshot {
    records: ReadOnlyTable<&'static [u8], &'static [u8]>,
    under: Option<Under>,
    /// The decree the view reflects.
    pub decree: u64,
    /// The client sessions as of `decree`.
    pub sessions: Sessions,
}

/// Raw (encoded key, encoded value) pairs.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Up to about `max_bytes` of `items` whose keys come after `after` (all of them if it
/// is empty: no stored key is empty).
fn page<T>(
    items: impl Iterator<Item = Result<T>>,
    key: impl Fn(&T) -> &[u8],
    size: impl Fn(&T) -> usize,
    after: &[u8],
    max_bytes: usize,
) -> Result<Vec<T>> {
    let (mut out, mut bytes) = (Vec::new(), 0);
    for item in items {
        let item = item?;
        if key(&item) == after {
            continue;
        }
        bytes += size(&item);
        out.push(item);
        if bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}

fn pair_key(p: &(Vec<u8>, Vec<u8>)) -> &[u8] {
    &p.0
}

fn pair_size(p: &(Vec<u8>, Vec<u8>)) -> usize {
    p.0.len() + p.1.len()
}

impl StoreSnapshot {
    /// Raw pairs of the whole store (read through its base) after `after` (from the
    /// start if empty), up to about `max_bytes` of them.
    pub fn chunk(&self, after: &[u8], max_bytes: usize) -> Result<Pairs> {
        let merged = Merged::new(&self.records, self.under.as_ref(), after, None)?;
        page(merged, pair_key, pair_size, after, max_bytes)
    }

    /// The base file the store stands on, if any.
    pub fn base(&self) -> Option<&Arc<BaseFile>> {
        self.under.as_ref().map(|(base, _)| base)
    }

    /// Raw pairs the store holds itself (over its base) after `after`, up to about
    /// `max_bytes` of them.
    pub fn overlay_chunk(&self, after: &[u8], max_bytes: usize) -> Result<Pairs> {
        let range = self.records.range(after..).map_err(storage)?.map(|e| {
            let (k, v) = e.map_err(storage)?;
            Ok((k.value().to_vec(), v.value().to_vec()))
        });
        page(range, pair_key, pair_size, after, max_bytes)
    }

    /// Keys deleted from the base since it was written, after `after`, up to about
    /// `max_bytes` of them (none with no base).
    pub fn deleted_chunk(&self, after: &[u8], max_bytes: usize) -> Result<Vec<Vec<u8>>> {
        let Some((_, shadow)) = &self.under else {
            return Ok(Vec::new());
        };
        let keys = shadow
            .range(after..)
            .map_err(storage)?
            .map(|e| Ok(e.map_err(storage)?.0.value().to_vec()));
        page(keys, |k| k.as_slice(), Vec::len, after, max_bytes)
    }
}

/// Where a [`Pieces`] walk is.
enum Stage {
    Records,
    File(FileCopy),
    Puts,
    Deleted,
    Done,
}

/// A snapshot's data as the chunks a learner loads, each about `max_bytes`.
pub struct Pieces<'a> {
    snapshot: &'a StoreSnapshot,
    max_bytes: usize,
    stage: Stage,
    after: Vec<u8>,
}

impl StoreSnapshot {
    /// The snapshot's data in chunks of about `max_bytes`: its base file's bytes and
    /// then what the store holds over it, if it stands on one and `takes_file` (the
    /// learner takes a base file byte for byte); else every record, in key order.
    pub fn pieces(&self, takes_file: bool, max_bytes: usize) -> Pieces<'_> {
        let stage = match self.base() {
            Some(base) if takes_file => Stage::File(FileCopy::new(base.clone())),
            _ => Stage::Records,
        };
        Pieces {
            snapshot: self,
            max_bytes,
            stage,
            after: Vec::new(),
        }
    }
}

impl Pieces<'_> {
    fn step(&mut self) -> Result<Option<Chunk>> {
        let (snap, max) = (self.snapshot, self.max_bytes);
        loop {
            let next = match &mut self.stage {
                Stage::Done => return Ok(None),
                Stage::Records => {
                    let pairs = snap.chunk(&self.after, max)?;
                    let last = pairs.last().map(|(k, _)| k.clone());
                    last.map(|k| (k, Chunk::Records(pairs)))
                }
                Stage::File(copy) => match copy.next_run(max)? {
                    Some(run) => return Ok(Some(Chunk::File(run))),
                    None => {
                        self.stage = Stage::Puts;
                        continue;
                    }
                },
                Stage::Puts => {
                    let puts = snap.overlay_chunk(&self.after, max)?;
                    let last = puts.last().map(|(k, _)| k.clone());
                    let deleted = Vec::new();
                    last.map(|k| (k, Chunk::Overlay { puts, deleted }))
                }
                Stage::Deleted => {
                    let deleted = snap.deleted_chunk(&self.after, max)?;
                    let last = deleted.last().cloned();
                    let puts = Vec::new();
                    last.map(|k| (k, Chunk::Overlay { puts, deleted }))
                }
            };
            match next {
                Some((last, chunk)) => {
                    self.after = last;
                    return Ok(Some(chunk));
                }
                None => {
                    self.after.clear();
                    self.stage = match self.stage {
                        Stage::Puts => Stage::Deleted,
                        _ => Stage::Done,
                    };
                }
            }
        }
    }
}

impl Iterator for Pieces<'_> {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.step();
        if next.is_err() {
            self.stage = Stage::Done;
        }
        next.transpose()
    }
}

impl ReplicaStore {
    /// A consistent view of the store as of now, with its sessions.
    pub fn snapshot(&self) -> Result<StoreSnapshot> {
        let (tx, under) = self.view()?;
        let decree = meta_value(&tx, LAST_APPLIED)?;
        let sessions = read_sessions(&tx.open_table(SESSIONS).map_err(storage)?)?;
        let records = tx.open_table(RECORDS).map_err(storage)?;
        Ok(StoreSnapshot {
            records,
            under,
            decree,
            sessions,
        })
    }
}
