//! A fake replica server for tests of the links that talk to one (prepare links, a
//! client's call links): it answers unary calls with what the request names, and serves
//! the streams — or not, like an older build — as the test chooses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::pb;
use crate::replica::core::PrepareReply;
use crate::replica::wire;

/// How the fake serves the `Prepares` and `Calls` streams.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Not at all: UNIMPLEMENTED (an older build).
    Unimplemented,
    /// Each call answered as its unary call is.
    Echo,
    /// Opened, then ended at once without an answer.
    End,
    /// Opened and held open, never read and never answered (a server that stopped reading).
    Stall,
}

/// The fake server. A unary `Write` is answered with decree `1000 + pidx`, a `Read` with
/// one record whose value is the hash key, a `Prepare` with an acknowledgement of its
/// ballot at decree 7.
#[derive(Clone, Copy)]
pub struct TestPeer(pub Streams);

/// A stream of answers.
pub type Answers<T> = futures_util::stream::BoxStream<'static, Result<T, Status>>;

fn write_reply(req: &pb::WriteRequest) -> pb::WriteReply {
    pb::WriteReply {
        decree: 1000 + u64::from(req.pidx),
        result: None,
    }
}

fn read_reply(req: &pb::ReadRequest) -> pb::ReadReply {
    pb::ReadReply {
        records: vec![pb::Record {
            value: req.hash_key.clone(),
            ..Default::default()
        }],
    }
}

impl TestPeer {
    /// Serves on a loopback port; the handle stops it.
    pub async fn start(self) -> crate::server::ServerHandle {
        self.start_counting().await.0
    }

    /// Serves on a loopback port, counting the streams open to it.
    pub async fn start_counting(self) -> (crate::server::ServerHandle, Arc<AtomicUsize>) {
        self.start_on("127.0.0.1:0").await
    }

    /// Serves on `addr` (a loopback address), counting the streams open to it.
    pub async fn start_on(self, addr: &str) -> (crate::server::ServerHandle, Arc<AtomicUsize>) {
        self.start_with_door(addr, None).await
    }

    /// [`TestPeer::start_on`], with `door` taking its connections on the same port.
    pub async fn start_with_door(
        self,
        addr: &str,
        door: Option<crate::server::SideDoor>,
    ) -> (crate::server::ServerHandle, Arc<AtomicUsize>) {
        let listener = crate::server::bind(addr).await.expect("bind");
        let open = Arc::new(AtomicUsize::new(0));
        let served = Served {
            streams: self.0,
            open: open.clone(),
        };
        let router =
            crate::server::builder().add_service(pb::replica_server::ReplicaServer::new(served));
        let handle =
            crate::server::ServerHandle::start_with_door(router, listener, door, |_| vec![])
                .expect("start");
        (handle, open)
    }
}

/// The fake's service: how it serves streams, and how many are open.
struct Served {
    streams: Streams,
    open: Arc<AtomicUsize>,
}

/// Counts a stream open for as long as it lives.
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(open: &Arc<AtomicUsize>) -> OpenStream {
        open.fetch_add(1, Ordering::SeqCst);
        OpenStream(open.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Served {
    fn stream<In, Out: Send + 'static>(
        &self,
        inbound: Streaming<In>,
        answer: impl Fn(In) -> Out + Send + 'static,
    ) -> Result<Response<Answers<Out>>, Status>
    where
        In: Send + 'static,
    {
        match self.streams {
            Streams::Unimplemented => Err(Status::unimplemented("not in this build")),
            Streams::End => Ok(Response::new(futures_util::stream::empty().boxed())),
            Streams::Stall => {
                let held = (inbound, OpenStream::new(&self.open));
                Ok(Response::new(
                    futures_util::stream::pending()
                        .map(move |()| {
                            let _held = &held;
                            Err(Status::internal("never"))
                        })
                        .boxed(),
                ))
            }
            Streams::Echo => {
                let open = OpenStream::new(&self.open);
                Ok(Response::new(
                    inbound
                        .take_while(|m| std::future::ready(m.is_ok()))
                        .map(move |m| {
                            let _counted = &open;
                            Ok(answer(m.expect("ok")))
                        })
                        .boxed(),
                ))
            }
        }
    }
}

#[tonic::async_trait]
impl pb::replica_server::Replica for Served {
    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteReply>, Status> {
        Ok(Response::new(write_reply(req.get_ref())))
    }
    async fn read(&self, req: Request<pb::ReadRequest>) -> Result<Response<pb::ReadReply>, Status> {
        Ok(Response::new(read_reply(req.get_ref())))
    }
    async fn scan(&self, _: Request<pb::ScanRequest>) -> Result<Response<pb::ScanReply>, Status> {
        Err(Status::unimplemented("scan"))
    }
    async fn count(
        &self,
        _: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountReply>, Status> {
        Err(Status::unimplemented("count"))
    }
    async fn prepare(
        &self,
        req: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::PrepareReply>, Status> {
        let ack = PrepareReply::Ack {
            ballot: req.get_ref().ballot,
            prepared: 7,
            ready: true,
        };
        Ok(Response::new(wire::prepare_reply_to_pb(&ack)))
    }
    type PreparesStream = Answers<pb::PrepareReplyBatch>;
    async fn prepares(
        &self,
        req: Request<Streaming<pb::PrepareBatch>>,
    ) -> Result<Response<Self::PreparesStream>, Status> {
        self.stream(req.into_inner(), |batch: pb::PrepareBatch| {
            let replies = batch
                .prepares
                .into_iter()
                .map(|t| {
                    let ballot = t.prepare.map_or(0, |p| p.ballot);
                    let ack = PrepareReply::Ack {
                        ballot,
                        prepared: 7,
                        ready: true,
                    };
                    pb::TaggedPrepareReply {
                        id: t.id,
                        reply: Some(wire::prepare_reply_to_pb(&ack)),
                    }
                })
                .collect();
            pb::PrepareReplyBatch { replies }
        })
    }
    type CallsStream = Answers<pb::CallReplyBatch>;
    async fn calls(
        &self,
        req: Request<Streaming<pb::CallBatch>>,
    ) -> Result<Response<Self::CallsStream>, Status> {
        use pb::tagged_call::Call;
        use pb::tagged_call_reply::Reply;
        self.stream(req.into_inner(), |batch: pb::CallBatch| {
            let replies = batch
                .calls
                .into_iter()
                .map(|t| pb::TaggedCallReply {
                    id: t.id,
                    reply: t.call.map(|c| match c {
                        Call::Write(w) => Reply::Write(write_reply(&w)),
                        Call::Read(r) => Reply::Read(read_reply(&r)),
                    }),
                })
                .collect();
            pb::CallReplyBatch { replies }
        })
    }
    type LearnStream = Answers<pb::LearnChunk>;
    async fn learn(
        &self,
        _: Request<pb::LearnRequest>,
    ) -> Result<Response<Self::LearnStream>, Status> {
        Err(Status::unimplemented("learn"))
    }
}
