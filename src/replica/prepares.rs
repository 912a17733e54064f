//! The receiving end of a peer's `Prepares` stream ([`tagged::serve`]): each prepare goes
//! to its replica's worker in the order it arrived (so a partition's prepares keep their
//! order), and the answers go back batched as they come. A prepare whose replica is
//! missing or closing is answered without a reply. A stopping server answers what is in
//! flight for as long as the sender waits for it at most.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
use crate::replica::links::PREPARE_TIMEOUT;
use crate::replica::tagged::{self, Answer};
use crate::replica::wire;
use crate::replica::worker::Msg;

/// The replies of one stream, as they come.
pub type ReplyStream = ReceiverStream<Result<pb::PrepareReplyBatch, Status>>;

/// Serves one `Prepares` stream until the peer closes it (or stops reading).
pub fn serve(replica: Arc<Replica>, inbound: tonic::Streaming<pb::PrepareBatch>) -> ReplyStream {
    tagged::serve(
        replica.stopping(),
        PREPARE_TIMEOUT,
        inbound,
        move |batch: pb::PrepareBatch| {
            batch
                .prepares
                .into_iter()
                .map(|t| forward(&replica, t))
                .collect()
        },
        |replies| pb::PrepareReplyBatch { replies },
    )
}

/// Hands a prepare to its replica's worker; the future is its answer. Without a worker to
/// take it, the answer — no reply — is ready at once.
fn forward(replica: &Replica, tagged: pb::TaggedPrepare) -> Answer<pb::TaggedPrepareReply> {
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
