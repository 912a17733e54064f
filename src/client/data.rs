//! The data client: routes each request to its partition's primary. It hashes the key
//! to a partition ([`crate::data::partition_index`]), caches each table's partition
//! configuration from the meta server, and when a replica answers that it is not the one
//! to ask (not the serving primary, a stale ballot, its lease ran out, its data is not
//! loaded, it holds no such replica) or cannot be reached, refreshes the configuration
//! and tries again until its timeout. A partition that lost every replica fails at once.
//!
//! Every write carries a request id (this client's random id and a sequence number), kept
//! across retries: a write whose outcome was unknown (sent, then no answer) is sent again
//! and applied once. A write that runs out of time after it was sent reports "outcome
//! unknown", never "failed".

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::transport::Channel;

use crate::client::calls::Calls;
use crate::client::{MetaClient, channel};
use crate::data::partition_index;
use crate::error::{Error, Result};
use crate::pb;
use crate::pb::replica_client::ReplicaClient;
use crate::pb::tagged_call::Call;
use crate::pb::tagged_call_reply::Reply;

/// A table's routing information.
#[derive(Debug, Clone)]
struct Route {
    app_id: u32,
    primaries: Vec<String>,
    /// Partitions that lost every replica.
    lost: Vec<u32>,
}

/// A client of one cluster's data.
pub struct DataClient {
    meta: MetaClient,
    timeout: Duration,
    routes: Mutex<HashMap<String, Route>>,
    channels: Mutex<HashMap<String, Channel>>,
    /// This client's id for request ids.
    id: u64,
    next_seq: AtomicU64,
    /// Writes sent and not yet answered, by sequence number.
    in_flight: Mutex<BTreeSet<u64>>,
    /// Writes and reads travel on one stream per server.
    calls: Calls,
}

/// A random client id (64 bits of the system's random source).
fn client_id() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    match random {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => crate::timeutil::now_ms() ^ (u64::from(std::process::id()) << 40),
    }
}

/// How a failed attempt is treated.
enum Next {
    /// Refresh the route and try again.
    Retry(String),
    /// The write was sent and its outcome is unknown: try again with the same id.
    Unknown(String),
}

impl DataClient {
    /// A client that gives each operation `timeout` in all.
    pub fn new(meta: MetaClient, timeout: Duration) -> DataClient {
        DataClient {
            meta,
            timeout,
            routes: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            id: client_id(),
            next_seq: AtomicU64::new(1),
            in_flight: Mutex::new(BTreeSet::new()),
            calls: Calls::default(),
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
            lost: reply.ddd_partitions.clone(),
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
        self.attempts(table, pidx, false, |_, c, app_id, pidx| op(c, app_id, pidx))
            .await
    }

    /// Sends `call` to partition `pidx`'s primary on the client's stream to that
    /// server, with [`DataClient::attempts`]'s retries; `pick` takes the reply it expects.
    async fn stream_attempts<T>(
        &self,
        table: &str,
        pidx: u32,
        write: bool,
        call: impl Fn(u32, u32) -> Call,
        pick: fn(Reply) -> Option<T>,
    ) -> Result<T> {
        self.attempts(table, pidx, write, |addr, c, app_id, pidx| {
            let (addr, call) = (addr.to_string(), call(app_id, pidx));
            async move {
                let reply = self.calls.call(&addr, c, call).await?;
                pick(reply).map(tonic::Response::new).ok_or_else(|| {
                    Status::internal(format!("{addr} answered with another call's reply"))
                })
            }
        })
        .await
    }

    /// [`DataClient::on_partition`], for a write when `write`: once an attempt was sent
    /// and not answered, running out of time is an unknown outcome.
    async fn attempts<T, F, Fut>(&self, table: &str, pidx: u32, write: bool, op: F) -> Result<T>
    where
        F: Fn(&str, ReplicaClient<Channel>, u32, u32) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut refresh = false;
        // The first retry follows at once: after a primary move the new primary serves
        // within a few milliseconds of the old one refusing (a 20 ms first pause was
        // most of a move's write stall in `ballast-bench move-pri`); a partition that
        // stays without a primary is asked ever less often, up to every 500 ms.
        let mut pause = Duration::from_millis(1);
        let mut unknown = false;
        let mut last: String;
        loop {
            let attempt = async {
                let route = self.route(table, refresh).await?;
                let primary = route
                    .primaries
                    .get(pidx as usize)
                    .ok_or_else(|| Error::InvalidInput(format!("{table} has no partition {pidx}")))?
                    .clone();
                if primary.is_empty() && route.lost.contains(&pidx) {
                    return Err(Error::PartitionLost(format!(
                        "partition {}.{pidx} of {table} lost every replica: it serves nothing until its last member is back or an operator chooses a primary (ddd_diagnose)",
                        route.app_id
                    )));
                }
                if primary.is_empty() {
                    return Ok(Err(Next::Retry(format!(
                        "partition {}.{pidx} has no primary",
                        route.app_id
                    ))));
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                let call = op(&primary, self.client(&primary)?, route.app_id, pidx);
                Ok(match tokio::time::timeout(remaining, call).await {
                    Ok(Ok(reply)) => Ok(reply.into_inner()),
                    Ok(Err(status)) => {
                        let err = Error::from(status);
                        let why = format!("{primary}: {err}");
                        match err {
                            Error::OutcomeUnknown(_) => Err(Next::Unknown(why)),
                            Error::Unavailable(_) | Error::Timeout(_) | Error::Internal(_)
                                if write =>
                            {
                                Err(Next::Unknown(why))
                            }
                            e if e.needs_reroute()
                                || matches!(e, Error::Timeout(_) | Error::Internal(_)) =>
                            {
                                Err(Next::Retry(why))
                            }
                            e => return Err(e),
                        }
                    }
                    Err(_) if write => Err(Next::Unknown(format!("{primary} did not answer"))),
                    Err(_) => Err(Next::Retry(format!("{primary} did not answer"))),
                })
            };
            match attempt.await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Next::Retry(why))) => last = why,
                Ok(Err(Next::Unknown(why))) => {
                    unknown = true;
                    last = why;
                }
                Err(
                    e @ (Error::InvalidInput(_) | Error::NotFound(_) | Error::PartitionLost(_)),
                ) => {
                    return Err(e);
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() + pause >= deadline {
                let why = format!(
                    "{table} partition {pidx}: no answer within {:?} ({last})",
                    self.timeout
                );
                return Err(if unknown {
                    Error::OutcomeUnknown(format!(
                        "{why}; the write was sent and may have been applied (sending it again with its request id applies it once)"
                    ))
                } else {
                    Error::Timeout(why)
                });
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

    /// Writes mutations of one hash key atomically; returns the decree.
    pub async fn write(
        &self,
        table: &str,
        hash_key: &[u8],
        mutations: Vec<pb::Mutation>,
    ) -> Result<u64> {
        Ok(self.write_reply(table, hash_key, mutations).await?.decree)
    }

    /// Applies one atomic operation (`incr`, `check_and_set`) to records of `hash_key`
    /// (`sort_key` is incr's record); returns its outcome. Retried under one request id,
    /// so it is applied once.
    pub async fn atomic(
        &self,
        table: &str,
        hash_key: &[u8],
        sort_key: &[u8],
        op: pb::atomic::Op,
    ) -> Result<pb::atomic_result::Outcome> {
        let m = pb::Mutation {
            hash_key: hash_key.to_vec(),
            sort_key: sort_key.to_vec(),
            atomic: Some(pb::Atomic {
                op: Some(op),
                ..Default::default()
            }),
            ..Default::default()
        };
        let reply = self.write_reply(table, hash_key, vec![m]).await?;
        match reply.result.and_then(|r| r.outcome) {
            Some(pb::atomic_result::Outcome::Error(e)) => Err(Error::InvalidInput(e)),
            Some(outcome) => Ok(outcome),
            None => Err(Error::Internal(
                "the replica server answered an atomic write without its outcome".into(),
            )),
        }
    }

    /// Writes mutations of one hash key atomically; returns the whole reply.
    async fn write_reply(
        &self,
        table: &str,
        hash_key: &[u8],
        mutations: Vec<pb::Mutation>,
    ) -> Result<pb::WriteReply> {
        let pidx = self.pidx(table, hash_key).await?;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let acked_below = {
            let mut in_flight = self.in_flight.lock().expect("in flight");
            in_flight.insert(seq);
            *in_flight.first().expect("just inserted")
        };
        let request = pb::RequestId {
            client: self.id,
            seq,
            acked_below,
        };
        let write = |app_id, pidx| {
            Call::Write(pb::WriteRequest {
                app_id,
                pidx,
                mutations: mutations.clone(),
                request: Some(request),
            })
        };
        let reply = self
            .stream_attempts(table, pidx, true, write, |r| match r {
                Reply::Write(w) => Some(w),
                _ => None,
            })
            .await;
        // Answered, or given up: this id is not sent again (a caller's retry is a new
        // write), so the replicas may forget it.
        self.in_flight.lock().expect("in flight").remove(&seq);
        reply
    }
}

mod verbs;
