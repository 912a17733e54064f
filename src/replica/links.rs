//! Prepares to peers, one link per peer server: every partition's prepares for that peer
//! travel in order on one `Prepares` stream, and whatever is queued when the link wakes
//! goes out as one message — one h2 frame and one syscall for several partitions instead
//! of a call (a stream, its headers, a task and a timer) per prepare. Each prepare's
//! answer goes back to its replica's worker as a core input: the reply, or `None` when
//! none came within [`PREPARE_TIMEOUT`] of its queueing or the stream broke (as a failed
//! call would).
//!
//! A link holds the peer's client, never the node, so it ends when the node drops its
//! queue. A stream that fails — or whose queue is full: the peer stopped reading — is
//! dropped with everything pending on it, and the next prepare opens a new one. A peer
//! that does not know the stream (an older server, mid-upgrade) gets a call per prepare.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::pb;
use crate::replica::core::{Input, PrepareReply};
use crate::replica::wire;
use crate::replica::worker::Msg;

/// How long a peer has to answer a prepare before it counts as not arrived.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a link looks for prepares past their timeout.
const EXPIRY_CHECK: Duration = Duration::from_millis(100);
/// Prepares taken into one message at most.
const MAX_BATCH: usize = 256;
/// Messages queued on a stream at most; beyond it the peer is not keeping up, and new
/// prepares are answered `None` at once instead of queueing without bound.
const STREAM_QUEUE: usize = 256;

/// A prepare on its way, and where its answer goes.
pub struct Outgoing {
    /// The prepare as sent.
    pub prepare: pb::PrepareRequest,
    /// Who waits for its answer.
    pub waiter: Waiter,
}

/// Where a prepare's answer goes.
pub struct Waiter {
    /// When the prepare was queued (its timeout counts from here).
    pub queued: Instant,
    /// The peer's address (the answer names it).
    pub to: String,
    /// The worker of the replica that sent it.
    pub reply: mpsc::UnboundedSender<Msg>,
}

impl Waiter {
    /// Gives the worker the answer (or `None`).
    fn answer(self, reply: Option<PrepareReply>) {
        let _ = self
            .reply
            .send(Msg::Step(Input::PrepareReply(self.to, reply)));
    }
}

/// Prepares sent on a stream and not yet answered: pure bookkeeping, so expiry and
/// failure are tested without a network.
#[derive(Default)]
pub struct Pending {
    next_id: u64,
    waiting: HashMap<u64, Waiter>,
}

impl Pending {
    /// Records a prepare sent for `waiter`; returns its id.
    pub fn add(&mut self, waiter: Waiter) -> u64 {
        self.next_id += 1;
        self.waiting.insert(self.next_id, waiter);
        self.next_id
    }

    /// Answers the prepare `id` (a reply for one already answered is ignored).
    pub fn resolve(&mut self, id: u64, reply: Option<PrepareReply>) {
        if let Some(waiter) = self.waiting.remove(&id) {
            waiter.answer(reply);
        }
    }

    /// Answers `None` for every prepare queued before `now - timeout`.
    pub fn expire(&mut self, now: Instant, timeout: Duration) {
        let late: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, w)| now.duration_since(w.queued) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.resolve(id, None);
        }
    }

    /// Answers `None` for everything (the stream broke).
    pub fn fail_all(&mut self) {
        for (_, waiter) in self.waiting.drain() {
            waiter.answer(None);
        }
    }

    /// How many prepares wait for an answer.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// A node's links to its peers, opened on first use.
#[derive(Default)]
pub struct Links {
    links: Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>,
}

impl Links {
    /// Queues `out` on the link to its peer, opening the link (over `client(address)`)
    /// if there is none or it has ended.
    pub fn send(
        &self,
        out: Outgoing,
        client: impl FnOnce(&str) -> Option<pb::replica_client::ReplicaClient<Channel>>,
    ) {
        let mut links = self.links.lock().expect("links");
        let out = match links.get(&out.waiter.to) {
            Some(tx) => match tx.send(out) {
                Ok(()) => return,
                Err(mpsc::error::SendError(out)) => out,
            },
            None => out,
        };
        let Some(client) = client(&out.waiter.to) else {
            return out.waiter.answer(None);
        };
        let (tx, rx) = mpsc::unbounded_channel();
        links.insert(out.waiter.to.clone(), tx.clone());
        let _ = tx.send(out);
        tokio::spawn(run_link(client, rx));
    }
}

/// An open stream: where messages go, and where replies come from.
type Stream = (
    mpsc::Sender<pb::PrepareBatch>,
    tonic::Streaming<pb::PrepareReplyBatch>,
);

/// What opening a stream came to.
enum Opened {
    /// A stream.
    Stream(Box<Stream>),
    /// No stream now (the peer is down or did not answer in time).
    Failed,
    /// The peer does not serve `Prepares`: it gets a call per prepare.
    Unary,
}

/// Opens a `Prepares` stream (within the prepare timeout).
async fn open(client: &mut pb::replica_client::ReplicaClient<Channel>) -> Opened {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let call = client.prepares(ReceiverStream::new(rx));
    match tokio::time::timeout(PREPARE_TIMEOUT, call).await {
        Ok(Ok(response)) => Opened::Stream(Box::new((tx, response.into_inner()))),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Opened::Unary,
        _ => Opened::Failed,
    }
}

/// Sends one prepare as its own call (to a peer without `Prepares`); the answer, or
/// `None` past its timeout, goes to its worker.
fn send_unary(mut client: pb::replica_client::ReplicaClient<Channel>, out: Outgoing) {
    tokio::spawn(async move {
        let left = PREPARE_TIMEOUT.saturating_sub(out.waiter.queued.elapsed());
        let answer = match tokio::time::timeout(left, client.prepare(out.prepare)).await {
            Ok(Ok(reply)) => Some(wire::prepare_reply_from_pb(reply.into_inner())),
            _ => None,
        };
        out.waiter.answer(answer);
    });
}

/// The next message of the stream, if one is open (never ready otherwise).
async fn next_replies(
    stream: &mut Option<Stream>,
) -> Result<Option<pb::PrepareReplyBatch>, tonic::Status> {
    match stream {
        Some((_, replies)) => replies.message().await,
        None => std::future::pending().await,
    }
}

/// One link's task: sends what is queued, matches replies, expires the late.
async fn run_link(
    mut client: pb::replica_client::ReplicaClient<Channel>,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut pending = Pending::default();
    let mut stream: Option<Stream> = None;
    let mut unary = false;
    let mut check = tokio::time::interval(EXPIRY_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            first = queue.recv() => {
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                if stream.is_none() && !unary {
                    match open(&mut client).await {
                        Opened::Stream(s) => stream = Some(*s),
                        Opened::Failed => {}
                        Opened::Unary => {
                            tracing::warn!("a peer does not serve Prepares streams: one call per prepare");
                            unary = true;
                        }
                    }
                }
                if unary {
                    batch.into_iter().for_each(|out| send_unary(client.clone(), out));
                } else {
                    send(&mut stream, &mut pending, batch);
                }
            }
            replies = next_replies(&mut stream) => match replies {
                Ok(Some(replies)) => {
                    for r in replies.replies {
                        pending.resolve(r.id, r.reply.map(wire::prepare_reply_from_pb));
                    }
                }
                _ => {
                    stream = None;
                    pending.fail_all();
                }
            },
            _ = check.tick(), if !pending.is_empty() => {
                pending.expire(Instant::now(), PREPARE_TIMEOUT);
            }
        }
    }
    pending.fail_all();
}

/// Sends `batch` as one message on `stream` — or, without a stream, answers every
/// prepare in it `None`. A stream whose queue is full (the peer stopped reading) or
/// closed is dropped, and everything pending on it answered `None`.
fn send(stream: &mut Option<Stream>, pending: &mut Pending, batch: Vec<Outgoing>) {
    let queued = match stream {
        Some((tx, _)) => send_on(tx, pending, batch),
        None => {
            batch.into_iter().for_each(|out| out.waiter.answer(None));
            true
        }
    };
    if !queued {
        *stream = None;
        pending.fail_all();
    }
}

/// Sends `batch` as one message on `tx`, each prepare pending under its id. Returns
/// false if the message could not be queued (the stream is full or closed).
fn send_on(
    tx: &mpsc::Sender<pb::PrepareBatch>,
    pending: &mut Pending,
    batch: Vec<Outgoing>,
) -> bool {
    let mut msg = pb::PrepareBatch::default();
    for out in batch {
        let id = pending.add(out.waiter);
        msg.prepares.push(pb::TaggedPrepare {
            id,
            prepare: Some(out.prepare),
        });
    }
    tx.try_send(msg).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::core::Input;

    fn outgoing(to: &str) -> (Outgoing, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiter = Waiter {
            queued: Instant::now(),
            to: to.into(),
            reply: tx,
        };
        let out = Outgoing {
            prepare: pb::PrepareRequest::default(),
            waiter,
        };
        (out, rx)
    }

    fn answered(rx: &mut mpsc::UnboundedReceiver<Msg>) -> Option<Option<PrepareReply>> {
        match rx.try_recv() {
            Ok(Msg::Step(Input::PrepareReply(_, r))) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn a_reply_answers_its_prepare_once() {
        let mut p = Pending::default();
        let (out, mut rx) = outgoing("b");
        let id = p.add(out.waiter);
        assert!(
            answered(&mut rx).is_none(),
            "nothing answered before the reply"
        );
        let ack = PrepareReply::Ack {
            ballot: 2,
            prepared: 3,
            ready: true,
        };
        p.resolve(id, Some(ack.clone()));
        assert_eq!(answered(&mut rx), Some(Some(ack.clone())));
        p.resolve(id, Some(ack));
        assert!(answered(&mut rx).is_none(), "a second reply is ignored");
        assert!(p.is_empty());
    }

    #[test]
    fn a_prepare_past_its_timeout_is_answered_none_and_the_others_wait() {
        let mut p = Pending::default();
        let t0 = Instant::now();
        let (mut old, mut old_rx) = outgoing("b");
        let (mut young, mut young_rx) = outgoing("b");
        old.waiter.queued = t0;
        young.waiter.queued = t0 + Duration::from_millis(1500);
        p.add(old.waiter);
        p.add(young.waiter);
        p.expire(t0 + Duration::from_millis(2000), PREPARE_TIMEOUT);
        assert_eq!(answered(&mut old_rx), Some(None));
        assert!(answered(&mut young_rx).is_none());
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn a_broken_stream_answers_every_pending_prepare_none() {
        let mut p = Pending::default();
        let mut rxs = Vec::new();
        for _ in 0..3 {
            let (out, rx) = outgoing("b");
            p.add(out.waiter);
            rxs.push(rx);
        }
        p.fail_all();
        for rx in &mut rxs {
            assert_eq!(answered(rx), Some(None));
        }
        assert!(p.is_empty());
    }

    #[test]
    fn without_a_stream_a_batch_is_answered_none_at_once() {
        let mut p = Pending::default();
        let (out, mut rx) = outgoing("b");
        send(&mut None, &mut p, vec![out]);
        assert_eq!(answered(&mut rx), Some(None));
        assert!(p.is_empty());
    }

    #[test]
    fn a_batch_goes_out_as_one_message_with_ids_in_queue_order() {
        let mut p = Pending::default();
        let (tx, mut msgs) = mpsc::channel(4);
        let mut rxs = Vec::new();
        let mut batch = Vec::new();
        for _ in 0..3 {
            let (out, rx) = outgoing("b");
            batch.push(out);
            rxs.push(rx);
        }
        assert!(send_on(&tx, &mut p, batch));
        let msg = msgs.try_recv().expect("one message");
        let ids: Vec<u64> = msg.prepares.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(msgs.try_recv().is_err(), "only one message");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn a_closed_stream_refuses_its_batch() {
        let mut p = Pending::default();
        let (tx, msgs) = mpsc::channel(4);
        drop(msgs);
        let (out, mut rx) = outgoing("b");
        assert!(
            !send_on(&tx, &mut p, vec![out]),
            "the stream counts as closed"
        );
        assert_eq!(p.len(), 1, "pending until the link drops the stream");
        p.fail_all();
        assert_eq!(answered(&mut rx), Some(None));
    }

    #[tokio::test]
    async fn a_peer_without_prepare_streams_gets_a_call_per_prepare() {
        use crate::replica::test_peer::{Streams, TestPeer};
        let server = TestPeer(Streams::Unimplemented).start().await;
        let addr = server.addr().to_string();
        let links = Links::default();
        let mut answers = Vec::new();
        for ballot in [3, 4] {
            let (mut out, rx) = outgoing(&addr);
            out.prepare.ballot = ballot;
            let client = crate::client::channel(&addr, Duration::from_secs(3)).unwrap();
            links.send(out, |_| {
                Some(pb::replica_client::ReplicaClient::new(client))
            });
            answers.push((ballot, rx));
        }
        for (ballot, mut rx) in answers {
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("answered in time");
            match got {
                Some(Msg::Step(Input::PrepareReply(to, reply))) => {
                    assert_eq!(to, addr);
                    let want = PrepareReply::Ack {
                        ballot,
                        prepared: 7,
                        ready: true,
                    };
                    assert_eq!(reply, Some(want), "the old peer's own answer");
                }
                _ => panic!("no prepare reply"),
            }
        }
        server.shutdown().await;
    }
}
