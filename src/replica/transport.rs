//! The network side of a worker's effects, each reporting back to the worker as a core
//! input: a prepare to a peer (on the node's link to it; its answer, or `None` if it did
//! not arrive), a configuration change asked of the meta server (its answer, or why there
//! was none), and a learner's request to its primary (the plan, then the snapshot's
//! chunks — at most a few ahead of what the I/O thread has loaded — and the sessions;
//! a base file's bytes come on a copy link, [`copy_link`], when the primary names one).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc};

use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::pb;
use crate::replica::copy_link;
use crate::replica::core::sessions::Sessions;
use crate::replica::core::{Chunk, ConfigRequest, Input, LearnPlan, LearnRequest, Prepare};
use crate::replica::links::{Outgoing, Waiter};
use crate::replica::node::{Came, Node};
use crate::replica::wire;
use crate::replica::worker::{LEARN_READ_AHEAD, Msg};

/// A base file's bytes are read from a copy link in runs of this many.
const LINK_RUN_BYTES: usize = 1 << 20;

/// Sends a prepare to `to` on the node's link to it; its answer (or `None`) goes back
/// to the worker.
pub fn send_prepare(
    node: &Arc<Node>,
    gpid: Gpid,
    to: String,
    prepare: Prepare,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let out = Outgoing {
        prepare: wire::prepare_to_pb(gpid, &prepare),
        waiter: Waiter {
            queued: Instant::now(),
            to,
            reply: tx,
        },
    };
    node.links.send(out, |to| node.peer(to).ok());
}

/// Asks the meta server for a configuration change; its answer goes back to the worker.
pub fn ask_meta(
    node: &Arc<Node>,
    gpid: Gpid,
    ballot: i64,
    request: ConfigRequest,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let node = node.clone();
    tokio::spawn(async move {
        let req = wire::config_request_to_pb(gpid, ballot, node.address(), &request);
        let answer = match node.meta().update_partition(req).await {
            Ok(reply) => wire::config_answer_from_pb(reply),
            Err(e) => Err(e),
        };
        let _ = tx.send(Msg::Step(Input::MetaAnswer(answer)));
    });
}

/// Asks `primary` to teach this replica, and feeds the plan and the snapshot to the
/// worker.
pub fn learn(
    node: &Arc<Node>,
    gpid: Gpid,
    primary: String,
    request: LearnRequest,
    tx: mpsc::UnboundedSender<Msg>,
    permits: Arc<Semaphore>,
) {
    let node = node.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let attempt = request.attempt;
        let step = |input: Input| {
            let _ = tx.send(Msg::Step(input));
        };
        // A new attempt starts with its full read-ahead (an abandoned one may have kept
        // permits).
        let missing = LEARN_READ_AHEAD.saturating_sub(permits.available_permits());
        permits.add_permits(missing);
        let req = pb::LearnRequest {
            app_id: gpid.app_id,
            pidx: gpid.pidx,
            ballot: request.ballot,
            learner: request.learner,
            committed: request.committed,
            last_decree: request.last.map(|(d, _)| d),
            last_ballot: request.last.map_or(0, |(_, b)| b),
            accepts_base_file: true,
            accepts_copy_link: true,
        };
        let stream = match node.peer(&primary) {
            Ok(mut client) => client.learn(req).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(e) => return step(Input::LearnAnswer(attempt, Err(e))),
        };
        let first = match stream.message().await {
            Ok(Some(first)) => first,
            Ok(None) => {
                return step(Input::LearnAnswer(
                    attempt,
                    Err(Error::Unavailable(
                        "the primary ended the learning stream at once".into(),
                    )),
                ));
            }
            Err(status) => return step(Input::LearnAnswer(attempt, Err(status.into()))),
        };
        if first.incremental {
            node.record_learned_from_log();
            return step(Input::LearnAnswer(attempt, Ok(LearnPlan::Incremental)));
        }
        let plan = LearnPlan::Snapshot(first.snapshot_decree);
        step(Input::LearnAnswer(attempt, Ok(plan)));
        let (mut bytes, mut came) = (0u64, Came::Records);
        loop {
            let chunk = match stream.message().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    return step(Input::SnapshotFailed(
                        attempt,
                        "the stream ended early".into(),
                    ));
                }
                Err(status) => {
                    return step(Input::SnapshotFailed(attempt, status.message().to_string()));
                }
            };
            if chunk.end {
                let sessions: Sessions = match serde_json::from_slice(&chunk.sessions) {
                    Ok(s) => s,
                    Err(e) => {
                        return step(Input::SnapshotFailed(attempt, format!("bad sessions: {e}")));
                    }
                };
                let _ = tx.send(Msg::Received(bytes, started, came));
                return step(Input::SnapshotEnd(attempt, sessions));
            }
            if chunk.copy_ticket != 0 {
                let (ticket, len) = (chunk.copy_ticket, chunk.copy_bytes);
                let taken = take_link(&primary, ticket, len, &permits, |run| {
                    step(Input::SnapshotChunk(attempt, Chunk::File(run)))
                });
                match taken.await {
                    Ok(()) => (bytes, came) = (bytes + len, Came::FileOnLink),
                    Err(e) => return step(Input::SnapshotFailed(attempt, e.to_string())),
                }
                continue;
            }
            let piece = match wire::chunk_from_pb(chunk) {
                Ok(p) => p,
                Err(e) => return step(Input::SnapshotFailed(attempt, e.to_string())),
            };
            bytes += piece.bytes() as u64;
            if matches!(piece, Chunk::File(_)) {
                came = Came::File;
            }
            // At most a few chunks ahead of the loads: the I/O thread gives the permit
            // back once it has loaded one.
            match permits.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => return,
            }
            step(Input::SnapshotChunk(attempt, piece));
        }
    });
}

/// Reads `len` bytes of a base file from a copy link to `primary` for `ticket`, and
/// gives them to `load` in runs, at most [`LEARN_READ_AHEAD`] runs ahead of the loads
/// (each load gives its permit back).
async fn take_link(
    primary: &str,
    ticket: u64,
    len: u64,
    permits: &Semaphore,
    load: impl Fn(Vec<u8>),
) -> Result<()> {
    let mut link = copy_link::connect(primary, ticket).await?;
    let mut left = len;
    while left > 0 {
        let run = copy_link::read_run(&mut link, left, LINK_RUN_BYTES).await?;
        left -= run.len() as u64;
        permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("the replica closed".into()))?
            .forget();
        load(run);
    }
    Ok(())
}
