//! The data client's record verbs — set, del, get, scan and count — built on
//! [`DataClient::write`] and [`DataClient::on_partition`], the routed calls with their
//! retries.

use super::DataClient;
use crate::error::Result;
use crate::pb;
use crate::pb::tagged_call::Call;
use crate::pb::tagged_call_reply::Reply;

impl DataClient {
    /// Sets records of one hash key: (sort key, value) pairs, expiring after `ttl`
    /// seconds (0 = never).
    pub async fn set(
        &self,
        table: &str,
        hash_key: &[u8],
        pairs: &[(Vec<u8>, Vec<u8>)],
        ttl: u32,
    ) -> Result<u64> {
        let expire_ts = crate::data::expire_ts_for(ttl, crate::timeutil::now_ms());
        let mutations = pairs
            .iter()
            .map(|(sk, v)| pb::Mutation {
                hash_key: hash_key.to_vec(),
                sort_key: sk.clone(),
                value: v.clone(),
                expire_ts,
                ..Default::default()
            })
            .collect();
        self.write(table, hash_key, mutations).await
    }

    /// Deletes records of one hash key.
    pub async fn del(&self, table: &str, hash_key: &[u8], sort_keys: &[Vec<u8>]) -> Result<u64> {
        let mutations = sort_keys
            .iter()
            .map(|sk| pb::Mutation {
                hash_key: hash_key.to_vec(),
                sort_key: sk.clone(),
                delete: true,
                ..Default::default()
            })
            .collect();
        self.write(table, hash_key, mutations).await
    }

    /// Reads records of one hash key (absent ones are left out).
    pub async fn get(
        &self,
        table: &str,
        hash_key: &[u8],
        sort_keys: &[Vec<u8>],
    ) -> Result<Vec<pb::Record>> {
        let pidx = self.pidx(table, hash_key).await?;
        let read = |app_id, pidx| {
            Call::Read(pb::ReadRequest {
                app_id,
                pidx,
                hash_key: hash_key.to_vec(),
                sort_keys: sort_keys.to_vec(),
            })
        };
        let reply = self
            .stream_attempts(table, pidx, false, read, |r| match r {
                Reply::Read(r) => Some(r),
                _ => None,
            })
            .await?;
        Ok(reply.records)
    }

    /// Up to `max` records: of one hash key (sort keys in `[start, stop)`), or — with
    /// `hash_key` `None` — of the whole table, partition by partition.
    pub async fn scan(
        &self,
        table: &str,
        hash_key: Option<&[u8]>,
        (start, stop): (&[u8], &[u8]),
        max: usize,
    ) -> Result<Vec<pb::Record>> {
        let (_, count) = self.table(table).await?;
        let partitions: Vec<u32> = match hash_key {
            Some(hk) => vec![self.pidx(table, hk).await?],
            None => (0..count).collect(),
        };
        let mut out = Vec::new();
        for pidx in partitions {
            let mut after: Option<pb::Record> = None;
            while out.len() < max {
                let limit = (max - out.len()).min(1000) as u32;
                let reply = self
                    .on_partition(table, pidx, |mut c, app_id, pidx| {
                        let req = pb::ScanRequest {
                            app_id,
                            pidx,
                            by_hash_key: hash_key.is_some(),
                            hash_key: hash_key.unwrap_or_default().to_vec(),
                            after: after.clone(),
                            start_sort_key: start.to_vec(),
                            stop_sort_key: stop.to_vec(),
                            limit,
                        };
                        async move { c.scan(req).await }
                    })
                    .await?;
                after = reply.records.last().cloned();
                out.extend(reply.records);
                if !reply.more {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Each partition's record count: estimated, or `precise` (a full scan).
    pub async fn count(&self, table: &str, precise: bool) -> Result<Vec<u64>> {
        let (_, count) = self.table(table).await?;
        let mut out = Vec::new();
        for pidx in 0..count {
            let reply = self
                .on_partition(table, pidx, |mut c, app_id, pidx| async move {
                    c.count(pb::CountRequest {
                        app_id,
                        pidx,
                        precise,
                    })
                    .await
                })
                .await?;
            out.push(reply.count);
        }
        Ok(out)
    }
}
