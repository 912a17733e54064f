//! The primary's write pipeline (PacificA), one task per partition while this node is
//! its primary:
//!
//! 1. On taking over, re-stamp every uncommitted entry with this primary's ballot and
//!    prepare it again, so entries of an older primary are overwritten; serve only then.
//! 2. Take queued writes as one batch, give it the next decree, write it to the log.
//! 3. Send every uncommitted entry, with the commit point, to every secondary and
//!    learner while the local log is synced; commit once the local log and every
//!    secondary have it on disk (learners are fed but not waited for: one that fails
//!    stops being fed and must learn again).
//! 4. A secondary that does not answer is removed through the meta server (a
//!    compare-and-set on the ballot); the write proceeds only once the new
//!    configuration is persisted. If the meta server cannot be reached the write fails
//!    and stays uncommitted: it is prepared again with the next one.
//! 5. Apply the batch, answer the writers.
//!
//! Learner upgrades are queued on the same pipeline, so no write is in flight while the
//! configuration changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::model::ReplicaRole;
use crate::pb;
use crate::replica::Replica;
use crate::replica::partition::{Partition, View};

/// How long a secondary has to log a prepare.
const PREPARE_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a batch may take to commit before its writers are told it failed.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(8);
/// At most this many writes per batch.
const MAX_BATCH: usize = 256;

/// Work for the pipeline.
pub enum JobKind {
    /// A client's mutations (applied atomically).
    Write(Vec<pb::Mutation>),
    /// A learner has caught up: ask the meta server to make it a member.
    Upgrade(String),
}

/// A job and where its answer goes (a write's decree, or the new ballot).
pub struct Job {
    /// What to do.
    pub kind: JobKind,
    /// The answer.
    pub reply: oneshot::Sender<Result<u64>>,
}

/// Starts the pipeline for `part` unless it already runs.
pub fn ensure_running(replica: &Arc<Replica>, part: &Arc<Partition>) {
    let mut queue = part.queue.lock().unwrap_or_else(|p| p.into_inner());
    if queue.as_ref().is_some_and(|q| !q.is_closed()) {
        return;
    }
    let (tx, rx) = mpsc::channel(4096);
    *queue = Some(tx);
    tokio::spawn(run(replica.clone(), part.clone(), rx));
}

/// Queues a job on `part`'s pipeline and waits for its answer.
pub async fn submit(part: &Partition, kind: JobKind) -> Result<u64> {
    let queue = part.queue.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let not_primary = || Error::Refused(format!("this node is not the primary of {}", part.gpid));
    let queue = queue.ok_or_else(not_primary)?;
    let (tx, rx) = oneshot::channel();
    queue
        .send(Job { kind, reply: tx })
        .await
        .map_err(|_| not_primary())?;
    rx.await.map_err(|_| not_primary())?
}

fn is_primary(part: &Partition) -> bool {
    part.state().view.role == ReplicaRole::Primary
}

async fn run(replica: Arc<Replica>, part: Arc<Partition>, mut rx: mpsc::Receiver<Job>) {
    let gpid = part.gpid;
    tracing::info!(%gpid, "primary: taking over");
    let mut ready = false;
    while !ready && is_primary(&part) && !replica.stopping() {
        ready = take_over(&replica, &part).await.is_ok();
        if !ready {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if ready {
        part.state().serving = true;
        tracing::info!(%gpid, "primary: serving");
    }
    while ready && is_primary(&part) && !replica.stopping() {
        let first = tokio::select! {
            job = rx.recv() => job,
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        let Some(first) = first else { break };
        let mut writes = Vec::new();
        let mut upgrades = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job.kind {
                JobKind::Write(m) => writes.push((m, job.reply)),
                JobKind::Upgrade(l) => upgrades.push((l, job.reply)),
            }
            next = if writes.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !writes.is_empty() {
            let outcome = write_batch(&replica, &part, &mut writes).await;
            for (_, reply) in writes {
                let _ = reply.send(outcome.clone());
            }
        }
        for (learner, reply) in upgrades {
            let _ = reply.send(upgrade(&replica, &part, &learner).await);
        }
    }
    part.state().serving = false;
    *part.queue.lock().unwrap_or_else(|p| p.into_inner()) = None;
    rx.close();
    while let Ok(job) = rx.try_recv() {
        let _ = job.reply.send(Err(Error::Refused(format!(
            "this node is no longer the primary of {gpid}"
        ))));
    }
    tracing::info!(%gpid, "primary: stepped down");
}

/// Re-stamps and re-prepares the uncommitted entries, then commits them.
async fn take_over(replica: &Arc<Replica>, part: &Arc<Partition>) -> Result<()> {
    if !part.state().loaded {
        return Err(Error::Refused(format!(
            "{}: this replica's data is incomplete; it cannot be primary",
            part.gpid
        )));
    }
    part.with_state(|st| st.restamp_uncommitted()).await??;
    let last = replicate(replica, part).await?;
    part.with_state(move |st| st.commit(last)).await?
}

async fn write_batch(
    replica: &Arc<Replica>,
    part: &Arc<Partition>,
    writes: &mut [(Vec<pb::Mutation>, oneshot::Sender<Result<u64>>)],
) -> Result<u64> {
    let mutations: Vec<pb::Mutation> = writes.iter_mut().flat_map(|(m, _)| m.drain(..)).collect();
    let (decree, sync) = part
        .with_state(move |st| st.prepare_local(mutations))
        .await??;
    // The local fsync and the secondaries' run at once; commit needs both.
    let local = tokio::task::spawn_blocking(move || sync.wait());
    let replicated = replicate(replica, part).await;
    local
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))??;
    let last = replicated?;
    part.with_state(move |st| st.commit(last)).await??;
    Ok(decree)
}

/// Prepares every uncommitted entry on every secondary and learner until all
/// secondaries have logged it (removing those that fail through the meta server).
/// Returns the decree now safe to commit.
async fn replicate(replica: &Arc<Replica>, part: &Arc<Partition>) -> Result<u64> {
    let deadline = Instant::now() + COMMIT_TIMEOUT;
    loop {
        let (request, secondaries, learners) = {
            let st = part.state();
            if st.view.role != ReplicaRole::Primary {
                return Err(Error::Refused(format!(
                    "this node is no longer the primary of {}",
                    part.gpid
                )));
            }
            let request = pb::PrepareRequest {
                app_id: part.gpid.app_id,
                pidx: part.gpid.pidx,
                ballot: st.view.ballot,
                from: replica.address().to_string(),
                entries: st.uncommitted(),
                committed_decree: st.committed,
            };
            let learners: Vec<String> = st.learners.iter().cloned().collect();
            (request, st.view.secondaries.clone(), learners)
        };
        let last = request
            .entries
            .last()
            .map_or(request.committed_decree, |e| e.decree);
        let targets: Vec<String> = secondaries.iter().chain(&learners).cloned().collect();
        let sends = targets.iter().map(|t| {
            let (replica, target, request) = (replica.clone(), t.clone(), request.clone());
            async move {
                let result = send_prepare(&replica, &target, request).await;
                (target, result)
            }
        });
        let results = join_all(sends).await;
        let mut failed = Vec::new();
        for (target, result) in results {
            let Err(e) = result else { continue };
            if learners.contains(&target) {
                tracing::warn!(gpid = %part.gpid, learner = target, "learner missed a prepare: {e}");
                part.state().learners.remove(&target);
            } else {
                tracing::warn!(gpid = %part.gpid, secondary = target, "secondary did not log a prepare: {e}");
                failed.push(target);
            }
        }
        if failed.is_empty() {
            return Ok(last);
        }
        for node in failed {
            if let Err(e) = change_config(replica, part, pb::UpdateKind::Remove, &node).await {
                tracing::warn!(gpid = %part.gpid, node, "cannot remove member: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Unavailable(format!(
                "write to {} not committed within {COMMIT_TIMEOUT:?}: a secondary does not answer",
                part.gpid
            )));
        }
    }
}

async fn send_prepare(replica: &Replica, target: &str, request: pb::PrepareRequest) -> Result<()> {
    let mut client = replica.peer(target)?;
    match tokio::time::timeout(PREPARE_TIMEOUT, client.prepare(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(Error::from(status)),
        Err(_) => Err(Error::Timeout(format!(
            "no answer within {PREPARE_TIMEOUT:?}"
        ))),
    }
}

/// Asks the meta server for a configuration change at this primary's ballot and takes
/// the configuration it answers with (changed or not). Returns whether it was applied.
async fn change_config(
    replica: &Arc<Replica>,
    part: &Arc<Partition>,
    kind: pb::UpdateKind,
    node: &str,
) -> Result<bool> {
    let ballot = part.state().view.ballot;
    let reply = replica
        .meta()
        .update_partition(pb::UpdatePartitionRequest {
            app_id: part.gpid.app_id,
            pidx: part.gpid.pidx,
            ballot,
            from: replica.address().to_string(),
            kind: kind as i32,
            node: node.to_string(),
        })
        .await?;
    if let Some(config) = reply.config {
        let view = View::of(&config, replica.address());
        let mut st = part.state();
        st.adopt(view);
        if reply.applied {
            st.learners.remove(node);
        }
    }
    Ok(reply.applied)
}

/// A learner reports it has caught up: make sure it holds everything prepared so far,
/// then ask the meta server to make it a member.
async fn upgrade(replica: &Arc<Replica>, part: &Arc<Partition>, learner: &str) -> Result<u64> {
    let fed = || part.state().learners.contains(learner);
    if !fed() {
        return Err(Error::Refused(format!(
            "{learner} is not being fed prepares for {}: learn again",
            part.gpid
        )));
    }
    let last = replicate(replica, part).await?;
    part.with_state(move |st| st.commit(last)).await??;
    if !fed() {
        return Err(Error::Refused(format!(
            "{learner} missed a prepare: learn again"
        )));
    }
    if !change_config(replica, part, pb::UpdateKind::UpgradeLearner, learner).await? {
        return Err(Error::Refused(format!(
            "the configuration of {} moved on",
            part.gpid
        )));
    }
    tracing::info!(gpid = %part.gpid, learner, "learner upgraded");
    Ok(part.state().view.ballot as u64)
}

/// Awaits every future (in order) — a small join_all without a futures dependency.
async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<(usize, F::Output)> = Vec::new();
    while let Some(done) = set.join_next().await {
        if let Ok(pair) = done {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}
