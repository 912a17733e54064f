//! The receiving end of a stream of batched, tagged requests (`Prepares` from peers,
//! `Calls` from clients): every request in a message is handed on at once, in arrival
//! order, and the answers go back as they come — everything ready when the stream's task
//! wakes, in one message. When the server stops, the stream takes no more requests,
//! answers those in flight (for at most `drain`) and ends: a long-lived stream would
//! otherwise hold the server's graceful stop open.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::server::ShutdownSignal;

/// Answer messages queued for the sender at most (then the task waits for it to read).
const OUT_QUEUE: usize = 64;

/// A request handed on: its answer to come, or (when there is nothing to wait for) the
/// answer now.
pub type Answer<T> = Result<BoxFuture<'static, T>, T>;

/// Serves one stream until its sender closes it (or stops reading): `take` hands on the
/// requests of each message, `pack` makes one message of answers.
pub fn serve<In, Out, Item>(
    stopping: ShutdownSignal,
    drain: Duration,
    mut inbound: tonic::Streaming<In>,
    mut take: impl FnMut(In) -> Vec<Answer<Item>> + Send + 'static,
    pack: fn(Vec<Item>) -> Out,
) -> ReceiverStream<Result<Out, Status>>
where
    In: Send + 'static,
    Out: Send + 'static,
    Item: Send + 'static,
{
    let (out, rx) = mpsc::channel(OUT_QUEUE);
    tokio::spawn(async move {
        let mut waiting: FuturesUnordered<BoxFuture<'static, Item>> = FuturesUnordered::new();
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
                    drain_by = tokio::time::Instant::now() + drain;
                }
                _ = tokio::time::sleep_until(drain_by), if !taking => return,
                msg = inbound.message(), if taking => match msg {
                    Ok(Some(batch)) => {
                        for answer in take(batch) {
                            match answer {
                                Ok(wait) => waiting.push(wait),
                                Err(now) => ready.push(now),
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
            if !ready.is_empty()
                && out
                    .send(Ok(pack(std::mem::take(&mut ready))))
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}
