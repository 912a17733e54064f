//! The replica server's data-plane gRPC service, as a thin adapter. Writes, prepares and
//! learn requests go to the replica's worker (its core decides); reads go to the store,
//! only while the replica is its partition's serving primary and the node's lease holds.
//! A snapshot for a learner is streamed from a view the I/O thread opened, paced by the
//! node's copy-rate limit.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::data::MAX_HASH_KEY_LEN;
use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
use crate::replica::core::{LearnRequest, Write};
use crate::replica::io::LearnStart;
use crate::replica::pending::Seen;
use crate::replica::storage::{Record, ReplicaStore};
use crate::replica::wire;
use crate::replica::worker::Msg;
use crate::timeutil::now_ms;

mod learn;
mod writes;

use learn::stream_snapshot;
use writes::{stamp_atomic, write_kind};

/// Scan pages hold at most this many records.
const PAGE: usize = 1000;

/// Serves the `Replica` service over one shared [`Replica`].
#[derive(Clone)]
pub struct DataService {
    replica: Arc<Replica>,
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn record(hash_key: &[u8], (sort_key, value, expire_ts): Record) -> pb::Record {
    pb::Record {
        hash_key: hash_key.to_vec(),
        sort_key,
        value,
        expire_ts,
    }
}

type LearnStream =
    Pin<Box<dyn tokio_stream::Stream<Item = std::result::Result<pb::LearnChunk, Status>> + Send>>;

impl DataService {
    /// Wraps the shared replica server.
    pub fn new(replica: Arc<Replica>) -> DataService {
        DataService { replica }
    }

    /// Sends `msg` (built around a fresh answer channel) to `gpid`'s worker and awaits
    /// the answer.
    async fn ask<T>(&self, gpid: Gpid, msg: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T> {
        let handle = self.replica.handle(gpid)?;
        let (tx, rx) = oneshot::channel();
        handle
            .send(msg(tx))
            .map_err(|_| Error::NotPrimary(format!("the replica of {gpid} is closing")))?;
        rx.await
            .map_err(|_| Error::NotPrimary(format!("the replica of {gpid} closed")))
    }

    /// Runs `read` on the store of `gpid`'s serving primary, off the runtime, once the
    /// store has applied everything committed.
    async fn read<T: Send + 'static>(
        &self,
        gpid: Gpid,
        read: impl FnOnce(&ReplicaStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.serving_store(gpid)?;
        self.replica.handle(gpid)?.shared().wait_applied().await?;
        run_read(store, read).await
    }

    /// Reads records of one hash key: with what the committed entries the store may lack
    /// say of them (see [`crate::replica::pending`]), or once the store has applied
    /// them all (`None`) when those entries cannot tell.
    async fn point_read<T: Send + 'static>(
        &self,
        gpid: Gpid,
        hash_key: Vec<u8>,
        sort_keys: Vec<Vec<u8>>,
        read: impl FnOnce(&ReplicaStore, Vec<u8>, Vec<Vec<u8>>, Option<Vec<Seen>>) -> Result<T>
        + Send
        + 'static,
    ) -> Result<T> {
        let store = self.serving_store(gpid)?;
        let handle = self.replica.handle(gpid)?;
        let seen = handle
            .shared()
            .pending_view(&hash_key, &sort_keys, now_secs());
        if seen.is_none() {
            handle.shared().wait_applied().await?;
        }
        run_read(store, move |store| read(store, hash_key, sort_keys, seen)).await
    }

    /// The store of `gpid`, if this node holds its serving primary under a valid lease.
    fn serving_store(&self, gpid: Gpid) -> Result<Arc<ReplicaStore>> {
        if !self.replica.node().lease_valid() {
            return Err(Error::LeaseExpired(format!(
                "the lease of this node ran out: it does not serve {gpid}"
            )));
        }
        let handle = self.replica.handle(gpid)?;
        let store = match handle.shared().store() {
            Some(store) if handle.shared().serving() => store,
            _ => {
                return Err(Error::NotPrimary(format!(
                    "this node is not the serving primary of {gpid}"
                )));
            }
        };
        Ok(store)
    }
}

/// Runs `read` on `store` off the runtime.
async fn run_read<T: Send + 'static>(
    store: Arc<ReplicaStore>,
    read: impl FnOnce(&ReplicaStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
}

#[tonic::async_trait]
impl pb::replica_server::Replica for DataService {
    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> std::result::Result<Response<pb::WriteReply>, Status> {
        let r = req.into_inner();
        if r.mutations.is_empty() {
            return Err(Error::InvalidInput("a write needs at least one mutation".into()).into());
        }
        if let Some(m) = r
            .mutations
            .iter()
            .find(|m| m.hash_key.len() > MAX_HASH_KEY_LEN)
        {
            return Err(Error::InvalidInput(format!(
                "hash key of {} bytes is longer than {MAX_HASH_KEY_LEN}",
                m.hash_key.len()
            ))
            .into());
        }
        let gpid = Gpid::new(r.app_id, r.pidx);
        if !self.replica.node().lease_valid() {
            return Err(Error::LeaseExpired(format!(
                "the lease of this node ran out: it does not serve {gpid}"
            ))
            .into());
        }
        let start = Instant::now();
        let op = write_kind(&r.mutations);
        let mut mutations = r.mutations;
        let atomic = stamp_atomic(&mut mutations, r.request)?;
        let write = Write {
            mutations,
            request: r.request,
        };
        let decree = self.ask(gpid, |tx| Msg::Write(write, tx)).await??;
        let result = match atomic {
            Some(id) => Some(self.atomic_result(gpid, id, decree).await?),
            None => None,
        };
        let stats = &self.replica.node().stats;
        stats.record(r.app_id, op, start.elapsed());
        Ok(Response::new(pb::WriteReply { decree, result }))
    }

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> std::result::Result<Response<pb::ReadReply>, Status> {
        let r = req.into_inner();
        let (start, app_id) = (Instant::now(), r.app_id);
        let op = if r.sort_keys.len() == 1 {
            "get"
        } else {
            "multi_get"
        };
        let gpid = Gpid::new(r.app_id, r.pidx);
        let records = self
            .point_read(
                gpid,
                r.hash_key,
                r.sort_keys,
                move |store, hash_key, sort_keys, seen| {
                    let now = now_secs();
                    let mut out = Vec::new();
                    for (i, sk) in sort_keys.into_iter().enumerate() {
                        let found = match seen.as_ref().map(|s| &s[i]) {
                            Some(Seen::Set(value, expire_ts)) => Some((value.clone(), *expire_ts)),
                            Some(Seen::Gone) => None,
                            Some(Seen::Untouched) | None => store.get(&hash_key, &sk, now)?,
                        };
                        if let Some((value, expire_ts)) = found {
                            out.push(record(&hash_key, (sk, value, expire_ts)));
                        }
                    }
                    Ok(out)
                },
            )
            .await?;
        let stats = &self.replica.node().stats;
        stats.record(app_id, op, start.elapsed());
        Ok(Response::new(pb::ReadReply { records }))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> std::result::Result<Response<pb::ScanReply>, Status> {
        let r = req.into_inner();
        let (start, app_id) = (Instant::now(), r.app_id);
        let gpid = Gpid::new(r.app_id, r.pidx);
        let limit = match r.limit as usize {
            0 => PAGE,
            n => n.min(PAGE),
        };
        let records = self
            .read(gpid, move |store| -> Result<Vec<pb::Record>> {
                let now = now_secs();
                if r.by_hash_key {
                    let start = r.after.as_ref().map_or(r.start_sort_key.clone(), |a| {
                        let mut next = a.sort_key.clone();
                        next.push(0);
                        next
                    });
                    let found = store.scan_hash_key(
                        &r.hash_key,
                        &start,
                        &r.stop_sort_key,
                        limit + 1,
                        now,
                    )?;
                    Ok(found.into_iter().map(|x| record(&r.hash_key, x)).collect())
                } else {
                    let after = match &r.after {
                        Some(a) => crate::data::encode_key(&a.hash_key, &a.sort_key)?,
                        None => Vec::new(),
                    };
                    let found = store.scan_all(&after, limit + 1, now)?;
                    Ok(found.into_iter().map(|(hk, x)| record(&hk, x)).collect())
                }
            })
            .await?;
        let stats = &self.replica.node().stats;
        stats.record(app_id, "scan", start.elapsed());
        let more = records.len() > limit;
        let records = records.into_iter().take(limit).collect();
        Ok(Response::new(pb::ScanReply { records, more }))
    }

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> std::result::Result<Response<pb::CountReply>, Status> {
        let r = req.into_inner();
        let gpid = Gpid::new(r.app_id, r.pidx);
        let count = self
            .read(gpid, move |store| {
                if !r.precise {
                    return store.estimate_count();
                }
                let now = now_secs();
                let mut after = Vec::new();
                let mut count = 0;
                loop {
                    let page = store.scan_all(&after, 10_000, now)?;
                    let Some((hk, (sk, _, _))) = page.last() else {
                        return Ok(count);
                    };
                    after = crate::data::encode_key(hk, sk)?;
                    count += page.len() as u64;
                }
            })
            .await?;
        Ok(Response::new(pb::CountReply { count }))
    }

    async fn prepare(
        &self,
        req: Request<pb::PrepareRequest>,
    ) -> std::result::Result<Response<pb::PrepareReply>, Status> {
        let r = req.into_inner();
        let gpid = Gpid::new(r.app_id, r.pidx);
        let prepare = wire::prepare_from_pb(r);
        let reply = self.ask(gpid, |tx| Msg::Prepare(prepare, tx)).await?;
        Ok(Response::new(wire::prepare_reply_to_pb(&reply)))
    }

    type PreparesStream = crate::replica::prepares::ReplyStream;

    async fn prepares(
        &self,
        req: Request<tonic::Streaming<pb::PrepareBatch>>,
    ) -> std::result::Result<Response<Self::PreparesStream>, Status> {
        let replies = crate::replica::prepares::serve(self.replica.clone(), req.into_inner());
        Ok(Response::new(replies))
    }

    type CallsStream = crate::replica::calls::ReplyStream;

    async fn calls(
        &self,
        req: Request<tonic::Streaming<pb::CallBatch>>,
    ) -> std::result::Result<Response<Self::CallsStream>, Status> {
        let stopping = self.replica.stopping();
        let replies = crate::replica::calls::serve(self.clone(), stopping, req.into_inner());
        Ok(Response::new(replies))
    }

    type LearnStream = LearnStream;

    async fn learn(
        &self,
        req: Request<pb::LearnRequest>,
    ) -> std::result::Result<Response<LearnStream>, Status> {
        let r = req.into_inner();
        let gpid = Gpid::new(r.app_id, r.pidx);
        let taking = learn::Taking::from_request(&r);
        let request = LearnRequest {
            ballot: r.ballot,
            learner: r.learner.clone(),
            committed: r.committed,
            last: r.last_decree.map(|d| (d, r.last_ballot)),
            attempt: 0,
        };
        let start = self.ask(gpid, |tx| Msg::Learn(request, tx)).await??;
        let (tx, rx) = mpsc::channel(4);
        match start {
            LearnStart::Incremental => {
                let first = pb::LearnChunk {
                    incremental: true,
                    ..Default::default()
                };
                let _ = tx.send(Ok(first)).await;
            }
            LearnStart::Snapshot(snapshot) => {
                let replica = self.replica.clone();
                tokio::task::spawn_blocking(move || {
                    stream_snapshot(replica, gpid, *snapshot, taking, tx);
                });
            }
        }
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as LearnStream
        ))
    }
}
