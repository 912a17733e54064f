//! A snapshot streamed to a learner: its decree first, then chunks of records paced by
//! the node's copy-rate limit, then the client sessions. Runs on a blocking thread, from
//! a view the I/O thread opened, so the partition is not held while it copies.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tonic::Status;

use crate::model::Gpid;
use crate::pb;
use crate::replica::Replica;
use crate::replica::storage::StoreSnapshot;

/// Snapshot chunks are about this big.
const CHUNK_BYTES: usize = 1 << 20;

/// Streams a snapshot to a learner: its decree first, then chunks of records (paced by
/// the copy-rate limit), then the client sessions.
pub(super) fn stream_snapshot(
    replica: Arc<Replica>,
    gpid: Gpid,
    snapshot: StoreSnapshot,
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
    let mut after = Vec::new();
    loop {
        let pairs = match snapshot.chunk(&after, CHUNK_BYTES) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::from(e)));
                return;
            }
        };
        let Some((last, _)) = pairs.last() else { break };
        after = last.clone();
        let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let (keys, values) = pairs.into_iter().unzip();
        std::thread::sleep(replica.node().limiter.reserve(bytes, Instant::now()));
        if !send(pb::LearnChunk {
            keys,
            values,
            ..Default::default()
        }) {
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
