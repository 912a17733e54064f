//! The copy link: a learner's own connection to its primary's port, on which the
//! primary writes its base file's bytes as they lie on disk — no HTTP/2 frames and no
//! message encoding around them, so each byte is copied twice fewer on its way, and the
//! copy runs at the disk's rate rather than the RPC stack's. The learning stream stays
//! the conversation: in it the primary names a ticket and a length, the learner opens a
//! connection, says [`MAGIC`] and the ticket, and reads that many bytes; the stream then
//! goes on with the records over the file. The server tells a link from a gRPC
//! connection by its first byte (an HTTP/2 client's first byte is always `P`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// What a copy link says first: this, then its ticket (8 bytes, little-endian).
pub const MAGIC: &[u8; 8] = b"BLSTCOPY";
/// How long either side waits for the other: for a link's hello, for the learner to
/// connect, for each run of bytes and for the learner to take them.
pub const LINK_WAIT: Duration = Duration::from_secs(20);

/// Copies waiting for their learner's link, by ticket.
#[derive(Default)]
pub struct Tickets {
    waiting: Mutex<HashMap<u64, SyncSender<std::net::TcpStream>>>,
    issued: AtomicU64,
    keys: RandomState,
}

impl Tickets {
    /// A new ticket (never 0, hard to guess), and where its link will arrive.
    pub fn open(&self) -> (u64, Receiver<std::net::TcpStream>) {
        let (tx, rx) = sync_channel(1);
        let mut waiting = self.waiting.lock().expect("tickets");
        loop {
            let n = self.issued.fetch_add(1, Ordering::Relaxed);
            let ticket = self.keys.hash_one(n);
            if ticket != 0 && !waiting.contains_key(&ticket) {
                waiting.insert(ticket, tx);
                return (ticket, rx);
            }
        }
    }

    /// Withdraws `ticket` (its copy gave up waiting).
    pub fn close(&self, ticket: u64) {
        self.waiting.lock().expect("tickets").remove(&ticket);
    }

    /// Hands `link` to the copy waiting for `ticket`; whether one was.
    fn hand_over(&self, ticket: u64, link: std::net::TcpStream) -> bool {
        let waiter = self.waiting.lock().expect("tickets").remove(&ticket);
        waiter.is_some_and(|tx| tx.send(link).is_ok())
    }

    /// Copies waiting for their link.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.lock().expect("tickets").len()
    }
}

/// Whether a connection whose first byte is `first` is a copy link.
pub fn is_link(first: u8) -> bool {
    first == MAGIC[0]
}

/// Serves an accepted copy link: reads its hello and hands it, as a blocking stream, to
/// the copy waiting for its ticket. A link that says something else, or names no
/// waiting ticket, is closed.
pub async fn accept(tickets: &Tickets, mut link: TcpStream) {
    let mut hello = [0u8; 16];
    let said = tokio::time::timeout(LINK_WAIT, link.read_exact(&mut hello)).await;
    if !matches!(said, Ok(Ok(_))) || &hello[..8] != MAGIC {
        tracing::warn!("closed a connection that began like a copy link but was not one");
        return;
    }
    let ticket = u64::from_le_bytes(hello[8..].try_into().expect("8 bytes"));
    let handed = link
        .into_std()
        .and_then(|l| l.set_nonblocking(false).map(|()| l))
        .and_then(|l| l.set_write_timeout(Some(LINK_WAIT)).map(|()| l))
        .map(|l| tickets.hand_over(ticket, l));
    if !matches!(handed, Ok(true)) {
        tracing::warn!("closed a copy link for no waiting copy (ticket {ticket:#x})");
    }
}

/// Opens a copy link to the server at `addr` for `ticket` (the learner's side).
pub async fn connect(addr: &str, ticket: u64) -> Result<TcpStream> {
    let unavailable = |e: std::io::Error| Error::Unavailable(format!("copy link to {addr}: {e}"));
    let open = async {
        let mut link = TcpStream::connect(addr).await?;
        link.set_nodelay(true)?;
        let mut hello = [0u8; 16];
        hello[..8].copy_from_slice(MAGIC);
        hello[8..].copy_from_slice(&ticket.to_le_bytes());
        link.write_all(&hello).await?;
        Ok(link)
    };
    match tokio::time::timeout(LINK_WAIT, open).await {
        Ok(opened) => opened.map_err(unavailable),
        Err(_) => Err(Error::Unavailable(format!(
            "copy link to {addr}: timed out"
        ))),
    }
}

/// The next run of a link with `left` bytes still to come: `min(left, max)` bytes.
pub async fn read_run(link: &mut TcpStream, left: u64, max: usize) -> Result<Vec<u8>> {
    let mut run = vec![0u8; left.min(max as u64) as usize];
    match tokio::time::timeout(LINK_WAIT, link.read_exact(&mut run)).await {
        Ok(Ok(_)) => Ok(run),
        Ok(Err(e)) => Err(Error::Unavailable(format!(
            "copy link ended with {left} bytes to come: {e}"
        ))),
        Err(_) => Err(Error::Unavailable(format!(
            "copy link silent for {LINK_WAIT:?} with {left} bytes to come"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use crate::pb;
    use crate::replica::test_peer::{Streams, TestPeer};
    use crate::server::SideDoor;

    /// A fake replica server whose port also takes copy links for `tickets`.
    async fn server(tickets: &Arc<Tickets>) -> crate::server::ServerHandle {
        let tickets = tickets.clone();
        let door = SideDoor {
            selects: is_link,
            serve: Arc::new(move |link| {
                let tickets = tickets.clone();
                tokio::spawn(async move { accept(&tickets, link).await });
            }),
        };
        let (handle, _) = TestPeer(Streams::Echo)
            .start_with_door("127.0.0.1:0", Some(door))
            .await;
        handle
    }

    /// `len` bytes that differ from one position to the next.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// Waits on a blocking thread for the link `arrives` brings.
    async fn arrival(arrives: Receiver<std::net::TcpStream>) -> Option<std::net::TcpStream> {
        tokio::task::spawn_blocking(move || arrives.recv_timeout(Duration::from_secs(5)).ok())
            .await
            .unwrap()
    }

    #[test]
    fn tickets_are_distinct_never_zero_and_withdrawn() {
        let tickets = Tickets::default();
        let opened: Vec<_> = (0..1000).map(|_| tickets.open()).collect();
        let mut numbers: Vec<u64> = opened.iter().map(|(t, _)| *t).collect();
        assert!(numbers.iter().all(|t| *t != 0));
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 1000);
        assert_eq!(tickets.waiting(), 1000);
        for (t, _) in &opened {
            tickets.close(*t);
        }
        assert_eq!(tickets.waiting(), 0);
    }

    #[tokio::test]
    async fn a_link_on_the_grpc_port_reaches_its_copy_and_grpc_still_answers() {
        let tickets = Arc::new(Tickets::default());
        let server = server(&tickets).await;
        let addr = server.addr().to_string();
        let (ticket, arrives) = tickets.open();
        let _decoy = tickets.open();
        let mut link = connect(&addr, ticket).await.unwrap();
        let sending = pattern(3 << 20);
        let sent = sending.clone();
        let mut primary_side = arrival(arrives).await.expect("the link came to its copy");
        let writer = std::thread::spawn(move || primary_side.write_all(&sent).unwrap());
        let (mut got, mut left) = (Vec::new(), sending.len() as u64);
        while left > 0 {
            let run = read_run(&mut link, left, 1 << 20).await.unwrap();
            assert!(run.len() <= 1 << 20);
            left -= run.len() as u64;
            got.extend(run);
        }
        writer.join().unwrap();
        assert!(got == sending, "the bytes came as they were sent");
        assert_eq!(tickets.waiting(), 1, "only the decoy still waits");
        // The same port still serves gRPC.
        let channel = crate::client::channel(&addr, Duration::from_secs(5)).unwrap();
        let mut client = pb::replica_client::ReplicaClient::new(channel);
        let reply = client
            .write(pb::WriteRequest {
                pidx: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().decree, 1003);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_link_with_a_wrong_hello_or_an_unknown_ticket_is_closed_and_reaches_nobody() {
        let tickets = Arc::new(Tickets::default());
        let server = server(&tickets).await;
        let addr = server.addr().to_string();
        let (ticket, arrives) = tickets.open();
        // Right first byte, wrong greeting.
        let mut wrong = TcpStream::connect(&addr).await.unwrap();
        wrong
            .write_all(b"BLSTXXXX\x01\x02\x03\x04\x05\x06\x07\x08")
            .await
            .unwrap();
        let mut unknown = connect(&addr, ticket ^ 1).await.unwrap();
        for link in [&mut wrong, &mut unknown] {
            let ended = read_run(link, 10, 10).await.unwrap_err();
            assert!(ended.to_string().contains("ended with 10 bytes"), "{ended}");
        }
        assert!(arrives.try_recv().is_err(), "no link reached the copy");
        assert_eq!(tickets.waiting(), 1, "its ticket still waits");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_link_that_stops_short_is_an_error_not_a_short_file() {
        let tickets = Arc::new(Tickets::default());
        let server = server(&tickets).await;
        let (ticket, arrives) = tickets.open();
        let mut link = connect(&server.addr().to_string(), ticket).await.unwrap();
        let mut primary_side = arrival(arrives).await.unwrap();
        primary_side.write_all(&pattern(1000)).unwrap();
        drop(primary_side);
        let first = read_run(&mut link, 4000, 1000).await.unwrap();
        assert_eq!(first, pattern(1000));
        let short = read_run(&mut link, 3000, 1000).await.unwrap_err();
        assert!(short.to_string().contains("3000 bytes to come"), "{short}");
        server.shutdown().await;
    }
}
