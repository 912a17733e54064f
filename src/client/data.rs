//! The data client: routes each request to its partition's primary. It hashes the key
//! to a partition ([`crate::data::partition_index`]), caches each table's partition
//! configuration from the meta server, and on an answer that says the node is not the
//! serving primary (wrong primary, stale ballot, lease ran out, replica not here) or on
//! an unreachable node, refreshes the configuration and retries until its timeout.
//! Writes are retried whole; they are idempotent puts and deletes, so a write that was
//! committed before its answer was lost is harmless to repeat.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::transport::Channel;

use crate::client::{MetaClient, channel};
use crate::data::partition_index;
use crate::error::{Error, Result};
use crate::pb;
use crate::pb::replica_client::ReplicaClient;

/// A table's routing information.
#[derive(Debug, Clone)]
struct Route {
    app_id: u32,
    primaries: Vec<String>,
}

/// A client of one cluster's data.
pub struct DataClient {
    meta: MetaClient,
    timeout: Duration,
    routes: Mutex<HashMap<String, Route>>,
    channels: Mutex<HashMap<String, Channel>>,
}

fn retryable(status: &Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::FailedPrecondition
            | Code::NotFound
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

impl DataClient {
    /// A client that gives each operation `timeout` in all.
    pub fn new(meta: MetaClient, timeout: Duration) -> DataClient {
        DataClient {
            meta,
            timeout,
            routes: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
        }
    }

    async fn route(&self, table: &str, refresh: bool) -> Result<Route> {
        if !refresh && let Some(r) = self.routes.lock().expect("routes").get(table) {
            return Ok(r.clone());
        }
        let reply = self.meta.query_app(table).await?;
        let app = reply
            .app
            .ok_or_else(|| Error::Internal("query_app answered without the table".into()))?;
        let info = app
            .info
            .ok_or_else(|| Error::Internal("query_app answered without table info".into()))?;
        let route = Route {
            app_id: info.app_id,
            primaries: app.partitions.iter().map(|p| p.primary.clone()).collect(),
        };
        self.routes
            .lock()
            .expect("routes")
            .insert(table.to_string(), route.clone());
        Ok(route)
    }

    /// The number of partitions and the table id of `table`.
    pub async fn table(&self, table: &str) -> Result<(u32, u32)> {
        let r = self.route(table, false).await?;
        Ok((r.app_id, r.primaries.len() as u32))
    }

    fn client(&self, addr: &str) -> Result<ReplicaClient<Channel>> {
        let mut channels = self.channels.lock().expect("channels");
        let ch = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = channel(addr, self.timeout)?;
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(ReplicaClient::new(ch).max_decoding_message_size(usize::MAX))
    }

    /// Runs `op` on partition `pidx`'s primary, refreshing the route and retrying until
    /// the timeout. `op` gets a client, the table id and the partition index.
    pub async fn on_partition<T, F, Fut>(&self, table: &str, pidx: u32, op: F) -> Result<T>
    where
        F: Fn(ReplicaClient<Channel>, u32, u32) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut refresh = false;
        let mut pause = Duration::from_millis(20);
        let mut last: String;
        loop {
            let attempt = async {
                let route = self.route(table, refresh).await?;
                let primary = route
                    .primaries
                    .get(pidx as usize)
                    .ok_or_else(|| Error::InvalidInput(format!("{table} has no partition {pidx}")))?
                    .clone();
                if primary.is_empty() {
                    return Ok(Err(format!(
                        "partition {}.{pidx} has no primary",
                        route.app_id
                    )));
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                let call = op(self.client(&primary)?, route.app_id, pidx);
                Ok(match tokio::time::timeout(remaining, call).await {
                    Ok(Ok(reply)) => Ok(reply.into_inner()),
                    Ok(Err(status)) if retryable(&status) => {
                        Err(format!("{primary}: {}", status.message()))
                    }
                    Ok(Err(status)) => return Err(Error::from(status)),
                    Err(_) => Err(format!("{primary} did not answer")),
                })
            };
            match attempt.await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(why)) => last = why,
                Err(e @ (Error::InvalidInput(_) | Error::NotFound(_))) => return Err(e),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() + pause >= deadline {
                return Err(Error::Timeout(format!(
                    "{table} partition {pidx}: no answer within {:?} ({last})",
                    self.timeout
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            refresh = true;
        }
    }

    async fn pidx(&self, table: &str, hash_key: &[u8]) -> Result<u32> {
        let (_, count) = self.table(table).await?;
        Ok(partition_index(hash_key, b"", count))
    }

    /// Writes mutations of one hash key atomically.
    pub async fn write(
        &self,
        table: &str,
        hash_key: &[u8],
        mutations: Vec<pb::Mutation>,
    ) -> Result<u64> {
        let pidx = self.pidx(table, hash_key).await?;
        let reply = self
            .on_partition(table, pidx, |mut c, app_id, pidx| {
                let req = pb::WriteRequest {
                    app_id,
                    pidx,
                    mutations: mutations.clone(),
                    request: None,
                };
                async move { c.write(req).await }
            })
            .await?;
        Ok(reply.decree)
    }

    /// Sets records of one hash key: (sort key, value) pairs, expiring after `ttl`
    /// seconds (0 = never).
    pub async fn set(
        &self,
        table: &str,
        hash_key: &[u8],
        pairs: &[(Vec<u8>, Vec<u8>)],
        ttl: u32,
    ) -> Result<u64> {
        let expire_ts = if ttl == 0 {
            0
        } else {
            (crate::timeutil::now_ms() / 1000) as u32 + ttl
        };
        let mutations = pairs
            .iter()
            .map(|(sk, v)| pb::Mutation {
                hash_key: hash_key.to_vec(),
                sort_key: sk.clone(),
                value: v.clone(),
                expire_ts,
                delete: false,
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
        let reply = self
            .on_partition(table, pidx, |mut c, app_id, pidx| {
                let req = pb::ReadRequest {
                    app_id,
                    pidx,
                    hash_key: hash_key.to_vec(),
                    sort_keys: sort_keys.to_vec(),
                };
                async move { c.read(req).await }
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
