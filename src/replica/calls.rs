//! The receiving end of a client's `Calls` stream ([`super::tagged::serve`]): each write
//! and read in a message is served at once, side by side, exactly as its unary call
//! would be (the same checks, the same answer, the same error as a status), and the
//! answers go back batched as they come.

use futures_util::FutureExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

use crate::error::status_to_pb;
use crate::pb;
use crate::pb::replica_server::Replica as _;
use crate::replica::data_service::DataService;
use crate::replica::tagged::{self, Answer};

/// How long a stopping server keeps answering the calls in flight on a stream.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The replies of one stream, as they come.
pub type ReplyStream = ReceiverStream<Result<pb::CallReplyBatch, Status>>;

/// Serves one `Calls` stream until the client closes it (or stops reading).
pub fn serve(
    service: DataService,
    stopping: crate::server::ShutdownSignal,
    inbound: tonic::Streaming<pb::CallBatch>,
) -> ReplyStream {
    tagged::serve(
        stopping,
        DRAIN,
        inbound,
        move |batch: pb::CallBatch| {
            batch
                .calls
                .into_iter()
                .map(|c| call(service.clone(), c))
                .collect()
        },
        |replies| pb::CallReplyBatch { replies },
    )
}

/// Serves one call as its unary call; the future is its reply.
fn call(service: DataService, tagged: pb::TaggedCall) -> Answer<pb::TaggedCallReply> {
    use pb::tagged_call::Call;
    use pb::tagged_call_reply::Reply;
    let id = tagged.id;
    let reply = move |r: Result<Reply, Status>| pb::TaggedCallReply {
        id,
        reply: Some(r.unwrap_or_else(|status| Reply::Error(status_to_pb(&status)))),
    };
    match tagged.call {
        None => Err(reply(Err(Status::invalid_argument(
            "a call on a Calls stream carries no request",
        )))),
        Some(Call::Write(req)) => Ok(async move {
            let r = service.write(Request::new(req)).await;
            reply(r.map(|r| Reply::Write(r.into_inner())))
        }
        .boxed()),
        Some(Call::Read(req)) => Ok(async move {
            let r = service.read(Request::new(req)).await;
            reply(r.map(|r| Reply::Read(r.into_inner())))
        }
        .boxed()),
    }
}
