//! The replica server's data-plane gRPC service, as a thin adapter: find the replica,
//! check it may serve, hand the work to [`super::primary`], [`super::partition`] or
//! [`super::learn`].

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::data::MAX_HASH_KEY_LEN;
use crate::error::{Error, Result};
use crate::model::{Gpid, ReplicaRole};
use crate::pb;
use crate::replica::Replica;
use crate::replica::partition::Partition;
use crate::replica::primary::{self, JobKind};
use crate::replica::{learn, storage::Record};
use crate::timeutil::now_ms;

/// Scan pages hold at most this many records.
const PAGE: usize = 1000;

/// Serves the `Replica` service over one shared [`Replica`].
#[derive(Clone)]
pub struct DataService {
    replica: Arc<Replica>,
}

impl DataService {
    /// Wraps the shared replica server.
    pub fn new(replica: Arc<Replica>) -> DataService {
        DataService { replica }
    }

    fn held(&self, app_id: u32, pidx: u32) -> Result<Arc<Partition>> {
        let gpid = Gpid { app_id, pidx };
        self.replica
            .partition(gpid)
            .ok_or_else(|| Error::NotFound(format!("this node holds no replica of {gpid}")))
    }

    /// The replica, if this node is its serving primary with a valid lease.
    fn serving(&self, app_id: u32, pidx: u32) -> Result<Arc<Partition>> {
        let part = self.held(app_id, pidx)?;
        {
            let st = part.state();
            if st.view.role != ReplicaRole::Primary || !st.serving {
                return Err(Error::Refused(format!(
                    "this node is not the serving primary of {}",
                    part.gpid
                )));
            }
        }
        if !self.replica.serving() {
            return Err(Error::Refused(format!(
                "the lease of this node ran out: it does not serve {}",
                part.gpid
            )));
        }
        Ok(part)
    }
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
        let part = self.serving(r.app_id, r.pidx)?;
        let decree = primary::submit(&part, JobKind::Write(r.mutations)).await?;
        Ok(Response::new(pb::WriteReply { decree }))
    }

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> std::result::Result<Response<pb::ReadReply>, Status> {
        let r = req.into_inner();
        let part = self.serving(r.app_id, r.pidx)?;
        let records = part
            .read_store(move |store| {
                let now = now_secs();
                let mut out = Vec::new();
                for sk in r.sort_keys {
                    if let Some((value, expire_ts)) = store.get(&r.hash_key, &sk, now)? {
                        out.push(record(&r.hash_key, (sk, value, expire_ts)));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(Response::new(pb::ReadReply { records }))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> std::result::Result<Response<pb::ScanReply>, Status> {
        let r = req.into_inner();
        let part = self.serving(r.app_id, r.pidx)?;
        let limit = match r.limit as usize {
            0 => PAGE,
            n => n.min(PAGE),
        };
        let records = part
            .read_store(move |store| -> Result<Vec<pb::Record>> {
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
        let more = records.len() > limit;
        let records = records.into_iter().take(limit).collect();
        Ok(Response::new(pb::ScanReply { records, more }))
    }

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> std::result::Result<Response<pb::CountReply>, Status> {
        let r = req.into_inner();
        let part = self.serving(r.app_id, r.pidx)?;
        let count = part
            .read_store(move |store| {
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
        let part = match self.held(r.app_id, r.pidx) {
            Ok(part) => part,
            // A brand-new partition: its primary may reach this node before the meta
            // server's assignment does. Anything else unknown must be learned.
            Err(_) if r.committed_decree == 0 => self.replica.open_fresh(
                Gpid {
                    app_id: r.app_id,
                    pidx: r.pidx,
                },
                r.ballot,
                &r.from,
            )?,
            Err(e) => return Err(e.into()),
        };
        let last_prepared = part
            .with_state(move |st| {
                st.accept_prepare(r.ballot, &r.from, r.entries, r.committed_decree)
            })
            .await??;
        Ok(Response::new(pb::PrepareReply { last_prepared }))
    }

    type LearnStream = LearnStream;

    async fn learn(
        &self,
        req: Request<pb::LearnRequest>,
    ) -> std::result::Result<Response<LearnStream>, Status> {
        let r = req.into_inner();
        let part = self.held(r.app_id, r.pidx)?;
        let (snapshot, entries, committed) = learn::begin(&part, &r.learner, r.ballot)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let replica = self.replica.clone();
        let gpid = part.gpid;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = learn::stream(&replica.limiter, snapshot, entries, committed, tx) {
                tracing::warn!(%gpid, learner = r.learner, "learning stream ended: {e}");
            }
        });
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as LearnStream
        ))
    }

    async fn learn_completed(
        &self,
        req: Request<pb::LearnCompletedRequest>,
    ) -> std::result::Result<Response<pb::LearnCompletedReply>, Status> {
        let r = req.into_inner();
        let part = self.held(r.app_id, r.pidx)?;
        let ballot = primary::submit(&part, JobKind::Upgrade(r.learner)).await?;
        Ok(Response::new(pb::LearnCompletedReply {
            ballot: ballot as i64,
        }))
    }
}
