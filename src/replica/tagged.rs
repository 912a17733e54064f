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

/// Requests of one stream in flight (handed on, not yet answered, or answered and not
/// yet sent) at most: past it the stream reads no more, so a sender that sends faster
/// than it reads is held back by HTTP/2 flow control instead of growing the server's
/// memory.
const MAX_IN_FLIGHT: usize = 4096;

/// A request handed on: its answer to come, or (when there is nothing to wait for) the
/// answer now.
pub type Answer<T> = Result<BoxFuture<'static, T>, T>;

/// Serves one stream until its sender closes it (or stops reading): `take` hands on the
/// requests of each message, `pack` makes one message of answers. Waiting to send
/// answers (a sender that does not read) never holds a stopping server past `drain`.
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
            if !taking && waiting.is_empty() && ready.is_empty() {
                return;
            }
            let room = waiting.len() + ready.len() < MAX_IN_FLIGHT;
            tokio::select! {
                _ = &mut stopped, if taking => {
                    taking = false;
                    drain_by = tokio::time::Instant::now() + drain;
                }
                _ = tokio::time::sleep_until(drain_by), if !taking => return,
                msg = inbound.message(), if taking && room => match msg {
                    Ok(Some(batch)) => {
                        for answer in take(batch) {
                            match answer {
                                Ok(wait) => waiting.push(wait),
                                Err(now) => ready.push(now),
                            }
                        }
                    }
                    // The sender sent its last request: answer what it sent, then end.
                    Ok(None) => {
                        taking = false;
                        drain_by = tokio::time::Instant::now() + drain;
                    }
                    Err(_) => return,
                },
                Some(done) = waiting.next(), if !waiting.is_empty() => {
                    ready.push(done);
                    while let Some(Some(more)) = waiting.next().now_or_never() {
                        ready.push(more);
                    }
                }
                permit = out.reserve(), if !ready.is_empty() => match permit {
                    Ok(permit) => permit.send(Ok(pack(std::mem::take(&mut ready)))),
                    Err(_) => return,
                },
            }
        }
    });
    ReceiverStream::new(rx)
}
