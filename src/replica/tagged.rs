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

/// Answers of one stream waiting to be sent at most: past it the stream reads no more
/// requests, so a sender that does not read its answers is held back by HTTP/2 flow
/// control instead of growing the server's memory. (Requests waiting for their answers —
/// a partition whose disk stalled — do not stop the reading: the stream serves every
/// partition of the server.)
const MAX_UNSENT: usize = 4096;

/// A request handed on: its answer to come, or (when there is nothing to wait for) the
/// answer now.
pub type Answer<T> = Result<BoxFuture<'static, T>, T>;

/// Serves one stream until its sender closes it (or stops reading): `take` hands on the
/// requests of each message, `pack` makes one message of answers. A sender that ends its
/// side gets the answers to what it sent; waiting to send answers (a sender that does not
/// read) never holds a stopping server past `drain`.
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
        let mut reading = true;
        let mut stopping_now = false;
        let mut drain_by = tokio::time::Instant::now();
        let stopped = crate::server::stopped(stopping);
        tokio::pin!(stopped);
        loop {
            if !reading && waiting.is_empty() && ready.is_empty() {
                return;
            }
            let room = ready.len() < MAX_UNSENT;
            tokio::select! {
                _ = &mut stopped, if !stopping_now => {
                    stopping_now = true;
                    reading = false;
                    drain_by = tokio::time::Instant::now() + drain;
                }
                _ = tokio::time::sleep_until(drain_by), if stopping_now => return,
                // The reader is gone (it reset the stream): nobody to answer.
                _ = out.closed() => return,
                msg = inbound.message(), if reading && room => match msg {
                    Ok(Some(batch)) => {
                        for answer in take(batch) {
                            match answer {
                                Ok(wait) => waiting.push(wait),
                                Err(now) => ready.push(now),
                            }
                        }
                    }
                    // The sender sent its last request: answer what it sent, then end.
                    Ok(None) => reading = false,
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
