//! Reads on a replica's store: one record, a hash key's range, a page of the whole
//! partition, a count. Each runs in its own read transaction (a consistent view), off
//! the replica's I/O thread, so a long scan never holds up writes. A store with a
//! base file under it is read through it ([`super::layered`]).

use redb::{ReadableDatabase, ReadableTableMetadata};

use crate::data::{decode_key, decode_value, encode_key, expired, hash_key_range};
use crate::error::Result;
use crate::replica::layered::{Merged, point};
use crate::replica::storage::{RECORDS, Record, ReplicaStore, storage};

impl ReplicaStore {
    /// One record's value and expiry, unless absent or expired at `now_secs`.
    pub fn get(
        &self,
        hash_key: &[u8],
        sort_key: &[u8],
        now_secs: u64,
    ) -> Result<Option<(Vec<u8>, u32)>> {
        let (tx, under) = self.view()?;
        let records = tx.open_table(RECORDS).map_err(storage)?;
        let under = under.as_ref().map(|(b, s)| (s, b.as_ref()));
        let Some(stored) = point(&records, under, &encode_key(hash_key, sort_key)?)? else {
            return Ok(None);
        };
        let (expire_ts, value) = decode_value(&stored)?;
        Ok((!expired(expire_ts, now_secs)).then(|| (value.to_vec(), expire_ts)))
    }

    /// Up to `limit` live records of `hash_key` with sort keys in `[start, stop)` (an
    /// empty `stop` means no upper bound), in sort-key order.
    pub fn scan_hash_key(
        &self,
        hash_key: &[u8],
        start: &[u8],
        stop: &[u8],
        limit: usize,
        now_secs: u64,
    ) -> Result<Vec<Record>> {
        let (tx, under) = self.view()?;
        let records = tx.open_table(RECORDS).map_err(storage)?;
        let from = encode_key(hash_key, start)?;
        let (_, end) = hash_key_range(hash_key)?;
        let to = if stop.is_empty() {
            end
        } else {
            Some(encode_key(hash_key, stop)?)
        };
        let mut out = Vec::new();
        for entry in Merged::new(&records, under.as_ref(), &from, to.as_deref())? {
            let (k, v) = entry?;
            let (_, sort_key) = decode_key(&k)?;
            let (expire_ts, value) = decode_value(&v)?;
            if !expired(expire_ts, now_secs) {
                out.push((sort_key.to_vec(), value.to_vec(), expire_ts));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` live records after the encoded key `after` (all from the start if
    /// empty), as (hash key, sort key, value, expiry), in key order; for full scans and
    /// for streaming a consistent snapshot to a learner.
    pub fn scan_all(
        &self,
        after: &[u8],
        limit: usize,
        now_secs: u64,
    ) -> Result<Vec<(Vec<u8>, Record)>> {
        let (tx, under) = self.view()?;
        let records = tx.open_table(RECORDS).map_err(storage)?;
        let mut out = Vec::new();
        for entry in Merged::new(&records, under.as_ref(), after, None)? {
            let (k, v) = entry?;
            if k == after {
                continue;
            }
            let (hash_key, sort_key) = decode_key(&k)?;
            let (expire_ts, value) = decode_value(&v)?;
            if !expired(expire_ts, now_secs) {
                out.push((
                    hash_key.to_vec(),
                    (sort_key.to_vec(), value.to_vec(), expire_ts),
                ));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many records the store holds, expired ones included (an estimate, as
    /// Pegasus's `count_data` without `-c`: with a base file, records rewritten or
    /// deleted since it was loaded may count twice or still count).
    pub fn estimate_count(&self) -> Result<u64> {
        let base = self.base().map_or(0, |b| b.records());
        let tx = self.db.begin_read().map_err(storage)?;
        let records = tx.open_table(RECORDS).map_err(storage)?;
        Ok(records.len().map_err(storage)? + base)
    }
}
