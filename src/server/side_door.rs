//! A second protocol on a server's port: each accepted connection is sorted by its first
//! byte, either to a [`SideDoor`] or to gRPC, in a task of its own so a silent connection
//! holds up no other.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;

use super::{ShutdownSignal, stopped};

/// How long a new connection may stay silent before it is taken for gRPC anyway (an
/// HTTP/2 client speaks first, at once).
const SNIFF_WAIT: Duration = Duration::from_secs(10);

/// Another protocol on a server's port: each connection whose first byte `selects` is
/// given to `serve` instead of to gRPC (which never sees it).
#[derive(Clone)]
pub struct SideDoor {
    /// Whether a connection's first byte belongs to the side door.
    pub selects: fn(u8) -> bool,
    /// Takes a connection of the side door's (its first byte still unread).
    pub serve: Arc<dyn Fn(TcpStream) + Send + Sync>,
}

/// Accepted connections, for gRPC.
pub(super) type Accepted =
    Pin<Box<dyn futures_util::Stream<Item = std::io::Result<TcpStream>> + Send>>;

/// Sends each connection `accepted` to `serve` or to `grpc` by its first byte, until
/// the server stops. The first bytes are awaited in tasks of their own, so a silent
/// connection holds up no other.
pub(super) async fn sort(
    mut accepted: TcpIncoming,
    door: SideDoor,
    grpc: mpsc::Sender<std::io::Result<TcpStream>>,
    signal: ShutdownSignal,
) {
    loop {
        let next = tokio::select! {
            _ = stopped(signal.clone()) => return,
            next = accepted.next() => next,
        };
        let io = match next {
            Some(Ok(io)) => io,
            Some(Err(e)) => match grpc.send(Err(e)).await {
                Ok(()) => continue,
                Err(_) => return,
            },
            None => return,
        };
        let (door, grpc) = (door.clone(), grpc.clone());
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(SNIFF_WAIT, io.peek(&mut first)).await;
            if matches!(peeked, Ok(Ok(1))) && (door.selects)(first[0]) {
                (door.serve)(io);
            } else {
                let _ = grpc.send(Ok(io)).await;
            }
        });
    }
}
