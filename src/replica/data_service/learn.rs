//! A snapshot streamed to a learner: its decree first, then its data paced by the node's
//! copy-rate limit, then the client sessions. The data is the store's records in key
//! order — or, from a store standing on a base file to a learner that takes one, that
//! file's bytes as they lie on disk (no record decoded or re-encoded on either side),
//! then the records and deletions over it ([`StoreSnapshot::pieces`]). Runs on a
//! blocking thread, from a view the I/O thread opened, so the partition is not held
//! while it copies.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tonic::Status;

use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
use crate::replica::snapshot::StoreSnapshot;
use crate::replica::wire;

/// Snapshot chunks are about this big.
const CHUNK_BYTES: usize = 1 << 20;

/// Streams a snapshot to a learner: its decree first, then its data (paced by the
/// copy-rate limit), then the client sessions. `takes_file`: the learner takes a base
/// file byte for byte.
pub(super) fn stream_snapshot(
    replica: Arc<Replica>,
    gpid: Gpid,
    snapshot: StoreSnapshot,
    takes_file: bool,
    tx: mpsc::Sender<std::result::Result<pb::LearnChunk, Status>>,
) {
    let send = |chunk: pb::LearnChunk| tx.blocking_send(Ok(chunk)).is_ok();
    let first = pb::LearnChunk {
        snapshot_decree: snapshot.decree,
        ..Default::default()
    };
    if !send(first) {
        return;
    }
    for chunk in snapshot.pieces(takes_file, CHUNK_BYTES) {
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
        if !send(wire::chunk_to_pb(chunk)) {
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
