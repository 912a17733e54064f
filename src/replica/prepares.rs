//! The receiving end of a peer's `Prepares` stream: each prepare goes to its replica's
//! worker in the order it arrived (so a partition's prepares keep their order), and the
//! answers go back as they come — everything ready when the stream's task wakes, in one
//! message. A prepare whose replica is missing or closing is answered without a reply.
//! When the server stops, the stream takes no more prepares, answers those in flight (for
//! as long as the sender waits for them at most) and ends — a long-lived stream would
//! otherwise hold the server's graceful stop open.

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::{FutureExt, future::BoxFuture};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
use crate::replica::links::PREPARE_TIMEOUT;
use crate::replica::wire;
use crate::replica::worker::Msg;

/// Answer messages queued for the peer at most (then the task waits for it to read).
const OUT_QUEUE: usize = 64;

/// The replies of one stream, as they come.
pub type ReplyStream = ReceiverStream<Result<pb::PrepareReplyBatch, Status>>;

/// Serves one `Prepares` stream until the peer closes it (or stops reading).
pub fn serve(
    replica: Arc<Replica>,
    mut inbound: tonic::Streaming<pb::PrepareBatch>,
) -> ReplyStream {
    let (out, rx) = mpsc::channel(OUT_QUEUE);
    let stopping = replica.stopping();
    tokio::spawn(async move {
        let mut waiting: FuturesUnordered<BoxFuture<'static, pb::TaggedPrepareReply>> =
            FuturesUnordered::new();
        let mut ready = Vec::new();
        let mut taking = true;
        let mut drain_by = tokio::time::Instant::now();
        let stopped = crate::server::stopped(stopping);
        tokio::pin!(stopped);
        loop {
            if !taking && waiting.is_empty() {
                return;
            }
            tokio::select! {
                _ = &mut stopped, if taking => {
                    taking = false;
                    drain_by = tokio::time::Instant::now() + PREPARE_TIMEOUT;
                }
                _ = tokio::time::sleep_until(drain_by), if !taking => return,
                msg = inbound.message(), if taking => match msg {
                    Ok(Some(batch)) => {
                        for tagged in batch.prepares {
                            match forward(&replica, tagged) {
                                Ok(wait) => waiting.push(wait),
                                Err(none) => ready.push(none),
                            }
                        }
                    }
                    _ => return,
                },
                Some(done) = waiting.next(), if !waiting.is_empty() => {
                    ready.push(done);
                    while let Some(Some(more)) = waiting.next().now_or_never() {
                        ready.push(more);
                    }
                }
            }
            if !ready.is_empty() {
                let replies = std::mem::take(&mut ready);
                if out
                    .send(Ok(pb::PrepareReplyBatch { replies }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Hands a prepare to its replica's worker; the future is its answer. Without a worker to
/// take it, the answer — no reply — is ready at once.
fn forward(
    replica: &Replica,
    tagged: pb::TaggedPrepare,
) -> Result<BoxFuture<'static, pb::TaggedPrepareReply>, pb::TaggedPrepareReply> {
    let id = tagged.id;
    let none = pb::TaggedPrepareReply { id, reply: None };
    let Some(prepare) = tagged.prepare else {
        return Err(none);
    };
    let Ok(handle) = replica.handle(Gpid::new(prepare.app_id, prepare.pidx)) else {
        return Err(none);
    };
    let (tx, rx) = oneshot::channel();
    if handle
        .send(Msg::Prepare(wire::prepare_from_pb(prepare), tx))
        .is_err()
    {
        return Err(none);
    }
    Ok(async move {
        let reply = rx.await.ok().map(|r| wire::prepare_reply_to_pb(&r));
        pb::TaggedPrepareReply { id, reply }
    }
    .boxed())
}
