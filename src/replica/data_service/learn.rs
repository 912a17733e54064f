//! A snapshot streamed to a learner: its decree first, then its data paced by the node's
//! copy-rate limit, then the client sessions. The data is the store's records in key
//! order — or, from a store standing on a base file to a learner that takes one, that
//! file's bytes as they lie on disk (no record decoded or re-encoded on either side),
//! then the records and deletions over it ([`StoreSnapshot::pieces`]). The file's bytes
//! go on the learner's copy link if it opens one ([`crate::replica::copy_link`]), else in
//! the stream. Runs on a blocking thread, from a view the I/O thread opened, so the
//! partition is not held while it copies.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tonic::Status;

use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
use crate::replica::copy_link::LINK_WAIT;
use crate::replica::core::Chunk;
use crate::replica::snapshot::StoreSnapshot;
use crate::replica::wire;

/// Snapshot chunks are about this big.
const CHUNK_BYTES: usize = 1 << 20;

/// How a learner takes a snapshot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Taking {
    /// Only as records (a learner of an older build).
    Records,
    /// A base file's bytes in the stream.
    File,
    /// A base file's bytes on a copy link.
    FileOnLink,
}

impl Taking {
    /// What a learner's request says it takes.
    pub(super) fn from_request(r: &pb::LearnRequest) -> Taking {
        match (r.accepts_base_file, r.accepts_copy_link) {
            (false, _) => Taking::Records,
            (true, false) => Taking::File,
            (true, true) => Taking::FileOnLink,
        }
    }
}

type Tx = mpsc::Sender<std::result::Result<pb::LearnChunk, Status>>;

/// Streams a snapshot to a learner: its decree first, then its data (paced by the
/// copy-rate limit), then the client sessions.
pub(super) fn stream_snapshot(
    replica: Arc<Replica>,
    gpid: Gpid,
    snapshot: StoreSnapshot,
    taking: Taking,
    tx: Tx,
) {
    let send = |chunk: pb::LearnChunk| tx.blocking_send(Ok(chunk)).is_ok();
    let first = pb::LearnChunk {
        snapshot_decree: snapshot.decree,
        ..Default::default()
    };
    if !send(first) {
        return;
    }
    let mut link = None;
    for chunk in snapshot.pieces(taking != Taking::Records, CHUNK_BYTES) {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::from(e)));
                return;
            }
        };
        let wait = replica
            .node()
            .limiter
            .reserve(chunk.bytes(), Instant::now());
        std::thread::sleep(wait);
        let sent = match chunk {
            Chunk::File(run) if taking == Taking::FileOnLink => {
                if link.is_none() {
                    link = open_link(&replica, &snapshot, &tx);
                }
                // The stream gone: the learner gave up (or this server is stopping).
                match link.as_mut() {
                    Some(l) if !tx.is_closed() => l.write_all(&run).is_ok(),
                    _ => false,
                }
            }
            chunk => send(wire::chunk_to_pb(chunk)),
        };
        if !sent {
            tracing::warn!(%gpid, "learner went away mid-snapshot");
            return;
        }
    }
    let sessions = serde_json::to_vec(&snapshot.sessions).unwrap_or_default();
    send(pb::LearnChunk {
        end: true,
        sessions,
        ..Default::default()
    });
}

/// Names a ticket and the base file's length in the stream and waits for the learner's
/// copy link; `None` (the learner told why, if it still listens) if it does not come.
fn open_link(replica: &Replica, snapshot: &StoreSnapshot, tx: &Tx) -> Option<TcpStream> {
    let tickets = &replica.node().copy_tickets;
    let (ticket, arrives) = tickets.open();
    let named = pb::LearnChunk {
        copy_ticket: ticket,
        copy_bytes: snapshot.base().map_or(0, |b| b.bytes()),
        ..Default::default()
    };
    let link = match tx.blocking_send(Ok(named)) {
        Ok(()) => arrives.recv_timeout(LINK_WAIT).ok(),
        Err(_) => None,
    };
    if link.is_none() {
        tickets.close(ticket);
        let why = format!("no copy link came within {LINK_WAIT:?}");
        let _ = tx.blocking_send(Err(Status::unavailable(why)));
    }
    link
}
