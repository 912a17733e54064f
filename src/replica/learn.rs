//! Learning: how a new replica gets its partition's data.
//!
//! The learner asks the primary to `Learn`. Under the partition's lock the primary
//! registers the learner (every prepare from then on is sent to it too), opens a
//! consistent view of its store (at the decree it has applied) and copies its log after
//! that decree; it then streams the view in chunks, at most
//! `nfs.max_copy_rate_megabytes_per_disk` per second across the node, and the log after
//! it. The learner logs prepares as they come but applies nothing until the snapshot is
//! in; then it checks it holds every decree after the snapshot, applies what is
//! committed, and reports `LearnCompleted`, on which the primary asks the meta server to
//! make it a member. The primary keeps its log while any learner is registered.
//!
//! A marker file marks a replica whose snapshot is incomplete, so a restart mid-way does
//! not mistake a partial copy for data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::data::{decode_key, decode_value};
use crate::error::{Error, Result};
use crate::model::ReplicaRole;
use crate::pb;
use crate::replica::Replica;
use crate::replica::partition::Partition;
use crate::replica::storage::StoreSnapshot;

/// Snapshot chunks are about this big.
const CHUNK_BYTES: usize = 1 << 20;
/// Snapshot chunks a learner receives ahead of the one it is loading.
const READ_AHEAD: usize = 4;
/// A learner makes its load durable every this many bytes, so no one commit (made
/// under the partition's lock) has to write back hundreds of MB at once.
const DURABLE_LOAD_BYTES: u64 = 32 << 20;
/// Pegasus's default `nfs.max_copy_rate_megabytes_per_disk`.
pub const DEFAULT_COPY_RATE_MB: u64 = 500;
/// The file whose presence marks an incomplete snapshot.
pub const MARKER: &str = "learning";

/// Limits how fast this node streams snapshots (one budget for the node's one disk).
pub struct CopyLimiter {
    rate_mb: AtomicU64,
    next_free: std::sync::Mutex<Instant>,
}

impl Default for CopyLimiter {
    fn default() -> CopyLimiter {
        CopyLimiter {
            rate_mb: AtomicU64::new(DEFAULT_COPY_RATE_MB),
            next_free: std::sync::Mutex::new(Instant::now()),
        }
    }
}

impl CopyLimiter {
    /// The limit in MB/s.
    pub fn rate_mb(&self) -> u64 {
        self.rate_mb.load(Ordering::Relaxed)
    }

    /// Sets the limit in MB/s (at least 1).
    pub fn set_rate_mb(&self, mb: u64) {
        self.rate_mb.store(mb.max(1), Ordering::Relaxed);
    }

    /// Reserves `bytes` of the budget; returns how long to wait before sending them.
    pub fn reserve(&self, bytes: usize, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / (self.rate_mb() as f64 * 1e6));
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now);
        *next = start + cost;
        start - now
    }
}

/// Primary side: registers `learner` and opens the snapshot and the log after it.
pub fn begin(
    part: &Partition,
    learner: &str,
    ballot: i64,
) -> Result<(StoreSnapshot, Vec<pb::LogEntry>, u64)> {
    let mut st = part.state();
    if st.view.role != ReplicaRole::Primary || !st.serving {
        return Err(Error::Refused(format!(
            "this node is not the serving primary of {}",
            part.gpid
        )));
    }
    if ballot > st.view.ballot {
        return Err(Error::Refused(format!(
            "stale ballot {}: the learner has seen {ballot}",
            st.view.ballot
        )));
    }
    st.learners.insert(learner.to_string());
    let snapshot = st.store.snapshot()?;
    let entries = st.log.since(snapshot.decree + 1);
    tracing::info!(gpid = %part.gpid, learner, decree = snapshot.decree, "learning starts");
    Ok((snapshot, entries, st.committed))
}

/// Primary side: streams the snapshot, then the log entries, into `tx` (blocking).
pub fn stream(
    limiter: &CopyLimiter,
    snapshot: StoreSnapshot,
    entries: Vec<pb::LogEntry>,
    committed: u64,
    tx: mpsc::Sender<std::result::Result<pb::LearnChunk, tonic::Status>>,
) -> Result<()> {
    let mut after = Vec::new();
    loop {
        let pairs = snapshot.chunk(&after, CHUNK_BYTES)?;
        let Some((last, _)) = pairs.last() else { break };
        after = last.clone();
        let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let (keys, values) = pairs.into_iter().unzip();
        std::thread::sleep(limiter.reserve(bytes, Instant::now()));
        let chunk = pb::LearnChunk {
            snapshot_decree: snapshot.decree,
            keys,
            values,
            entries: vec![],
            committed_decree: committed,
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Err(Error::Unavailable("the learner went away".into()));
        }
    }
    let last = pb::LearnChunk {
        snapshot_decree: snapshot.decree,
        keys: vec![],
        values: vec![],
        entries,
        committed_decree: committed,
    };
    tx.blocking_send(Ok(last))
        .map_err(|_| Error::Unavailable("the learner went away".into()))
}

/// A chunk's records, checked to be well-formed before they are loaded as they are.
fn raw_pairs(keys: Vec<Vec<u8>>, values: Vec<Vec<u8>>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if keys.len() != values.len() {
        return Err(Error::Internal(format!(
            "a snapshot chunk has {} keys and {} values",
            keys.len(),
            values.len()
        )));
    }
    for (k, v) in keys.iter().zip(&values) {
        decode_key(k)?;
        decode_value(v)?;
    }
    Ok(keys.into_iter().zip(values).collect())
}

/// Receives and decodes the next chunks while the current one is loaded.
fn read_ahead(
    mut stream: tonic::Streaming<pb::LearnChunk>,
) -> mpsc::Receiver<Result<pb::LearnChunk>> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        loop {
            let next = stream.message().await.map_err(Error::from).transpose();
            let Some(next) = next else { break };
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Learner side: starts learning `part` unless a learning task runs.
pub fn ensure_running(replica: &Arc<Replica>, part: &Arc<Partition>) {
    if part.learning.swap(true, Ordering::AcqRel) {
        return;
    }
    let (replica, part) = (replica.clone(), part.clone());
    tokio::spawn(async move {
        loop {
            let role = part.state().view.role;
            if role != ReplicaRole::Learner || replica.stopping() {
                break;
            }
            match learn_once(&replica, &part).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(gpid = %part.gpid, "learning failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        part.learning.store(false, Ordering::Release);
    });
}

async fn learn_once(replica: &Arc<Replica>, part: &Arc<Partition>) -> Result<()> {
    let (primary, ballot) = {
        let st = part.state();
        (st.view.primary.clone(), st.view.ballot)
    };
    let primary = primary.ok_or_else(|| {
        Error::Unavailable(format!(
            "no primary to learn from (configuration ballot {ballot})"
        ))
    })?;
    let started = Instant::now();
    part.with_state(|st| -> Result<()> {
        st.loaded = false;
        st.set_marker(true)?;
        st.store.clear()?;
        st.log.clear()?;
        st.applied = 0;
        st.committed = 0;
        st.reset_durable();
        Ok(())
    })
    .await??;
    let me = replica.address().to_string();
    let request = pb::LearnRequest {
        app_id: part.gpid.app_id,
        pidx: part.gpid.pidx,
        ballot,
        learner: me.clone(),
    };
    let stream = replica
        .peer(&primary)?
        .learn(request)
        .await
        .map_err(Error::from)?
        .into_inner();
    let mut chunks = read_ahead(stream);
    let mut decree = 0;
    let mut bytes = 0u64;
    let (mut waiting, mut loading) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t = Instant::now();
        let Some(chunk) = chunks.recv().await.transpose()? else {
            break;
        };
        waiting += t.elapsed();
        let t = Instant::now();
        decree = chunk.snapshot_decree;
        let pairs = raw_pairs(chunk.keys, chunk.values)?;
        let chunk_bytes = pairs
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>();
        let durable = (bytes + chunk_bytes) / DURABLE_LOAD_BYTES > bytes / DURABLE_LOAD_BYTES;
        bytes += chunk_bytes;
        let entries = chunk.entries;
        let committed = chunk.committed_decree;
        part.with_state(move |st| -> Result<()> {
            st.store.load_raw(&pairs, durable)?;
            let fresh: Vec<pb::LogEntry> = entries.into_iter().filter(|e| !st.log.has(e)).collect();
            st.log.append(&fresh)?;
            st.committed = st.committed.max(committed);
            Ok(())
        })
        .await??;
        loading += t.elapsed();
    }
    part.with_state(move |st| -> Result<()> {
        st.store.apply(decree, &[], true)?;
        st.applied = decree;
        st.reset_durable();
        st.committed = st.committed.max(decree);
        let last = st.log.last_decree();
        if !st.log.contiguous(decree + 1, last) {
            return Err(Error::Unavailable(format!(
                "prepares after decree {decree} are missing"
            )));
        }
        st.loaded = true;
        st.set_marker(false)?;
        st.apply_committed()
    })
    .await??;
    tracing::info!(gpid = %part.gpid, decree, bytes, ?waiting, ?loading, elapsed = ?started.elapsed(), "snapshot learned");
    let done = pb::LearnCompletedRequest {
        app_id: part.gpid.app_id,
        pidx: part.gpid.pidx,
        ballot,
        learner: me,
    };
    replica.record_learned(bytes, started.elapsed());
    replica
        .peer(&primary)?
        .learn_completed(done)
        .await
        .map_err(Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_spaces_chunks_at_the_configured_rate() {
        let limiter = CopyLimiter::default();
        limiter.set_rate_mb(10);
        let now = Instant::now();
        assert_eq!(limiter.reserve(1_000_000, now), Duration::ZERO);
        let wait = limiter.reserve(1_000_000, now);
        assert!(
            (wait.as_secs_f64() - 0.1).abs() < 1e-6,
            "1 MB at 10 MB/s waits 100 ms, got {wait:?}"
        );
        limiter.set_rate_mb(0);
        assert_eq!(limiter.rate_mb(), 1, "at least 1 MB/s");
    }
}
