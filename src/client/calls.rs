//! A data client's link to each replica server (TiKV's batch commands): its writes and
//! reads to that server, whatever their partitions, travel on one `Calls` stream, and
//! whatever is queued when the link wakes goes out as one message — one h2 frame and one
//! syscall for many requests instead of a stream, its headers and a server task each.
//! Answers match by id; each is exactly what the unary call would have returned (an
//! error comes back as that call's status).
//!
//! A stream that breaks fails every call pending on it with UNAVAILABLE (a write's outcome
//! is then unknown, and the client sends it again under its request id), and the next
//! call opens a new one. A stream whose queue is full (the server is not reading) holds
//! the next message back, and the calls behind it wait in the link's queue, until it has
//! room again — instead of all failing at once and coming straight back — for up to 5 s,
//! when the stream is given up (its calls fail UNAVAILABLE). A server that does not know
//! the stream (an older build, mid-upgrade) gets a unary call per request, and a stream is
//! tried again a minute later (it may have been upgraded since). A caller that gave up (its deadline
//! passed) is forgotten within a second; a stream idle for a minute is closed (the next
//! call opens another), so a client holds no stream, and no server task, for servers it
//! no longer calls.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::Channel;

use crate::error::status_from_pb;
use crate::pb;
use crate::pb::replica_client::ReplicaClient;
use crate::pb::tagged_call::Call;
use crate::pb::tagged_call_reply::Reply;

/// How long opening a stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a link forgets the calls whose callers gave up.
const SWEEP: Duration = Duration::from_secs(1);
/// Calls taken into one message at most...
const MAX_BATCH: usize = 256;
/// ...and about this many bytes of them.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Messages queued on a stream at most; beyond it the server is not keeping up.
#[cfg(not(test))]
const STREAM_QUEUE: usize = 256;
#[cfg(test)]
const STREAM_QUEUE: usize = 4;
/// A stream that takes no message for this long (the server stopped reading it) is given
/// up: its calls fail UNAVAILABLE and the next call opens another.
const HOLD_AT_MOST: Duration = Duration::from_secs(5);
/// A stream with nothing pending for this long is closed.
#[cfg(not(test))]
const IDLE: Duration = Duration::from_secs(60);
#[cfg(test)]
const IDLE: Duration = Duration::from_millis(300);
/// How long a link to a server without `Calls` sends unary calls before it tries a stream
/// again.
#[cfg(not(test))]
const UNARY_FOR: Duration = Duration::from_secs(60);
#[cfg(test)]
const UNARY_FOR: Duration = Duration::from_millis(300);

/// A call's answer: the reply, or the status its unary call would have returned.
pub type Answer = Result<Reply, Status>;

/// A call on its way, and who waits for its answer.
struct Queued {
    call: Call,
    answer: oneshot::Sender<Answer>,
}

/// A client's links to replica servers, opened on first use.
#[derive(Default)]
pub struct Calls {
    links: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
}

impl Calls {
    /// Sends `call` to the server at `addr` (opening the link over `client` if there is
    /// none or it ended) and waits for its answer.
    pub async fn call(&self, addr: &str, client: ReplicaClient<Channel>, call: Call) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.queue(addr, client, Queued { call, answer: tx });
        rx.await
            .unwrap_or_else(|_| Err(Status::unavailable(format!("{addr}: the link ended"))))
    }

    fn queue(&self, addr: &str, client: ReplicaClient<Channel>, queued: Queued) {
        let mut links = self.links.lock().expect("links");
        let queued = match links.get(addr) {
            Some(tx) => match tx.send(queued) {
                Ok(()) => return,
                Err(mpsc::error::SendError(queued)) => queued,
            },
            None => queued,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(queued);
        links.insert(addr.to_string(), tx);
        tokio::spawn(run_link(addr.to_string(), client, rx));
    }
}

/// Calls sent on a stream and not yet answered.
#[derive(Default)]
struct Pending {
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
}

impl Pending {
    fn add(&mut self, answer: oneshot::Sender<Answer>) -> u64 {
        self.next_id += 1;
        self.waiting.insert(self.next_id, answer);
        self.next_id
    }

    fn resolve(&mut self, id: u64, answer: Answer) {
        if let Some(tx) = self.waiting.remove(&id) {
            let _ = tx.send(answer);
        }
    }

    fn fail_all(&mut self, why: &str) {
        for (_, tx) in self.waiting.drain() {
            let _ = tx.send(Err(Status::unavailable(why)));
        }
    }
}

/// An open stream: where messages go, and where replies come from.
type Stream = (
    mpsc::Sender<pb::CallBatch>,
    tonic::Streaming<pb::CallReplyBatch>,
);

/// What opening a stream came to.
enum Opened {
    Stream(Box<Stream>),
    /// No stream now: why.
    Failed(Status),
    /// The server does not serve `Calls`: it gets a unary call per request.
    Unary,
}

async fn open(client: &mut ReplicaClient<Channel>) -> Opened {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    match tokio::time::timeout(OPEN_TIMEOUT, client.calls(ReceiverStream::new(rx))).await {
        Ok(Ok(response)) => Opened::Stream(Box::new((tx, response.into_inner()))),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Opened::Unary,
        Ok(Err(status)) => Opened::Failed(status),
        Err(_) => Opened::Failed(Status::unavailable(format!(
            "no Calls stream within {OPEN_TIMEOUT:?}"
        ))),
    }
}

/// Sends one call as its unary call (to a server without `Calls`).
fn send_unary(mut client: ReplicaClient<Channel>, queued: Queued) {
    tokio::spawn(async move {
        let answer = match queued.call {
            Call::Write(req) => client
                .write(req)
                .await
                .map(|r| Reply::Write(r.into_inner())),
            Call::Read(req) => client.read(req).await.map(|r| Reply::Read(r.into_inner())),
        };
        let _ = queued.answer.send(answer);
    });
}

async fn next_replies(stream: &mut Option<Stream>) -> Result<Option<pb::CallReplyBatch>, Status> {
    match stream {
        Some((_, replies)) => replies.message().await,
        None => std::future::pending().await,
    }
}

/// The calls queued now, up to a message's worth.
fn take_batch(first: Queued, queue: &mut mpsc::UnboundedReceiver<Queued>) -> Vec<Queued> {
    let mut bytes = first.call.encoded_len();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        match queue.try_recv() {
            Ok(more) => {
                bytes += more.call.encoded_len();
                batch.push(more);
            }
            Err(_) => break,
        }
    }
    batch
}

/// Waits for room on the stream `tx` (none: never).
async fn room(tx: Option<mpsc::Sender<pb::CallBatch>>) -> Option<mpsc::OwnedPermit<pb::CallBatch>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

/// Gives up a link's stream: drops it (and the calls it held back), and fails every call
/// pending on it with UNAVAILABLE because `why`.
fn give_up(
    stream: &mut Option<Stream>,
    held: &mut Vec<pb::TaggedCall>,
    pending: &mut Pending,
    why: &str,
) {
    *stream = None;
    held.clear();
    pending.fail_all(why);
}

/// One link's task: sends what is queued, matches replies, forgets abandoned calls.
async fn run_link(
    addr: String,
    mut client: ReplicaClient<Channel>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    let mut pending = Pending::default();
    let mut stream: Option<Stream> = None;
    // Calls sent on the stream (in `pending`) that its full queue has not taken yet.
    let mut held: Vec<pb::TaggedCall> = Vec::new();
    let mut held_since = Instant::now();
    let mut unary_since: Option<Instant> = None;
    let mut last_used = Instant::now();
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let spare = match (&stream, held.is_empty()) {
            (Some((tx, _)), false) => Some(tx.clone()),
            _ => None,
        };
        tokio::select! {
            first = queue.recv(), if held.is_empty() => {
                let Some(first) = first else { break };
                last_used = Instant::now();
                let batch = take_batch(first, &mut queue);
                if unary_since.is_some_and(|since| since.elapsed() >= UNARY_FOR) {
                    unary_since = None;
                }
                if stream.is_none() && unary_since.is_none() {
                    match open(&mut client).await {
                        Opened::Stream(s) => stream = Some(*s),
                        Opened::Failed(status) => {
                            for q in batch {
                                let _ = q.answer.send(Err(status.clone()));
                            }
                            continue;
                        }
                        Opened::Unary => {
                            tracing::warn!("{addr} does not serve Calls streams: one call per request");
                            unary_since = Some(Instant::now());
                        }
                    }
                }
                // A caller that gave up (its deadline passed while the stream opened) is
                // not sent: its write was reported as of unknown outcome, and should not
                // be applied seconds later.
                let batch: Vec<Queued> = batch.into_iter().filter(|q| !q.answer.is_closed()).collect();
                match &stream {
                    Some((tx, _)) if unary_since.is_none() => {
                        let mut msg = pb::CallBatch::default();
                        for q in batch {
                            let id = pending.add(q.answer);
                            msg.calls.push(pb::TaggedCall { id, call: Some(q.call) });
                        }
                        match tx.try_send(msg) {
                            Ok(()) => {}
                            Err(TrySendError::Full(msg)) => {
                                held = msg.calls;
                                held_since = Instant::now();
                            }
                            Err(TrySendError::Closed(_)) => {
                                let why = format!("{addr}: the Calls stream closed");
                                give_up(&mut stream, &mut held, &mut pending, &why);
                            }
                        }
                    }
                    _ => batch.into_iter().for_each(|q| send_unary(client.clone(), q)),
                }
            }
            permit = room(spare), if !held.is_empty() => match permit {
                Some(permit) => {
                    // Callers that gave up while the stream was full are not sent.
                    let calls = std::mem::take(&mut held)
                        .into_iter()
                        .filter(|c| pending.waiting.get(&c.id).is_some_and(|tx| !tx.is_closed()))
                        .collect::<Vec<_>>();
                    if !calls.is_empty() {
                        permit.send(pb::CallBatch { calls });
                    }
                }
                None => {
                    let why = format!("{addr}: the Calls stream closed");
                    give_up(&mut stream, &mut held, &mut pending, &why);
                }
            },
            replies = next_replies(&mut stream) => match replies {
                Ok(Some(replies)) => {
                    for r in replies.replies {
                        let answer = match r.reply {
                            Some(Reply::Error(e)) => Err(status_from_pb(e)),
                            Some(reply) => Ok(reply),
                            None => Err(Status::internal("a Calls reply without an answer")),
                        };
                        pending.resolve(r.id, answer);
                    }
                }
                Ok(None) => {
                    let why = format!("{addr} ended the Calls stream");
                    give_up(&mut stream, &mut held, &mut pending, &why);
                }
                Err(status) => {
                    let why = format!("{addr}: the Calls stream broke: {}", status.message());
                    give_up(&mut stream, &mut held, &mut pending, &why);
                }
            },
            _ = sweep.tick(), if stream.is_some() || !pending.waiting.is_empty() => {
                pending.waiting.retain(|_, tx| !tx.is_closed());
                // Held calls whose callers all gave up are not sent (and no longer keep
                // the link from its queue — or from seeing that its client is gone).
                held.retain(|c| pending.waiting.contains_key(&c.id));
                if !held.is_empty() && held_since.elapsed() >= HOLD_AT_MOST {
                    let why = format!("{addr} has not read the Calls stream for {HOLD_AT_MOST:?}");
                    give_up(&mut stream, &mut held, &mut pending, &why);
                }
                if stream.is_some() && pending.waiting.is_empty() && last_used.elapsed() >= IDLE {
                    // Drops the stream: the server sees it end and lets go of its task.
                    stream = None;
                }
            }
        }
    }
    pending.fail_all(&format!("{addr}: the link ended"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::test_peer::{Streams, TestPeer};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn client(addr: &str) -> ReplicaClient<Channel> {
        ReplicaClient::new(crate::client::channel(addr, Duration::from_secs(3)).unwrap())
    }

    fn write(pidx: u32) -> Call {
        Call::Write(pb::WriteRequest {
            pidx,
            ..Default::default()
        })
    }

    /// `n` calls at once to `addr`; the decree of each answer (or its status).
    async fn writes(calls: &Calls, addr: &str, n: u32) -> Vec<Result<u64, tonic::Code>> {
        let all = (0..n).map(|pidx| async move {
            match calls.call(addr, client(addr), write(pidx)).await {
                Ok(Reply::Write(w)) => Ok(w.decree),
                Ok(_) => panic!("another call's reply"),
                Err(status) => Err(status.code()),
            }
        });
        tokio::time::timeout(Duration::from_secs(10), futures_util::future::join_all(all))
            .await
            .expect("every call answered in time")
    }

    #[tokio::test]
    async fn calls_sent_together_each_get_their_own_answer() {
        let server = TestPeer(Streams::Echo).start().await;
        let addr = server.addr().to_string();
        let calls = Calls::default();
        let got = writes(&calls, &addr, 200).await;
        let want: Vec<_> = (0..200u64).map(|pidx| Ok(1000 + pidx)).collect();
        assert_eq!(got, want, "answers matched to their calls by id");
        let read = Call::Read(pb::ReadRequest {
            hash_key: b"hk".to_vec(),
            ..Default::default()
        });
        match calls.call(&addr, client(&addr), read).await {
            Ok(Reply::Read(r)) => assert_eq!(r.records[0].value, b"hk"),
            _ => panic!("no read reply"),
        }
        // Dropping the client ends its link and so its stream (the server's graceful stop
        // waits for open streams).
        drop(calls);
        server.shutdown().await;
    }

    /// A TCP relay on loopback to `to` that can stop passing bytes on (both ways) while
    /// keeping its connections open: a network that drops packets, or a peer host gone.
    async fn relay(to: String) -> (String, Arc<AtomicBool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let passing = Arc::new(AtomicBool::new(true));
        let pass = passing.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&to).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(pipe(ri, wo, pass.clone()));
                tokio::spawn(pipe(ro, wi, pass.clone()));
            }
        });
        (addr, passing)
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        passing: Arc<AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                return;
            }
            if passing.load(Ordering::Relaxed) && to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn calls_on_a_connection_whose_peer_went_silent_fail_once_pings_go_unanswered() {
        let server = TestPeer(Streams::Echo).start().await;
        let (addr, passing) = relay(server.addr().to_string()).await;
        let keepalive = Duration::from_millis(200);
        let client = || {
            let ch =
                crate::client::channel_with_keepalive(&addr, Duration::from_secs(30), keepalive);
            ReplicaClient::new(ch.unwrap())
        };
        let calls = Calls::default();
        assert!(matches!(
            calls.call(&addr, client(), write(1)).await,
            Ok(Reply::Write(_))
        ));
        passing.store(false, Ordering::Relaxed);
        // Without pings the call waits for an answer that never comes (TCP keeps the
        // connection up: every byte is acknowledged, none passed on).
        let silent = tokio::time::timeout(
            Duration::from_secs(5),
            calls.call(&addr, client(), write(2)),
        );
        match silent.await {
            Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
            Ok(Ok(_)) => panic!("answered through a relay that passes nothing"),
            Err(_) => panic!("still waiting 5 s after the peer went silent"),
        }
        passing.store(true, Ordering::Relaxed);
        let again = tokio::time::timeout(
            Duration::from_secs(5),
            calls.call(&addr, client(), write(3)),
        );
        assert!(
            matches!(again.await, Ok(Ok(Reply::Write(w))) if w.decree == 1003),
            "a new connection serves the next call"
        );
        drop(calls);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_server_without_calls_streams_gets_a_call_per_request() {
        let server = TestPeer(Streams::Unimplemented).start().await;
        let addr = server.addr().to_string();
        let got = writes(&Calls::default(), &addr, 3).await;
        assert_eq!(got, vec![Ok(1000), Ok(1001), Ok(1002)], "the unary answers");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_stream_that_ends_fails_its_calls_unavailable_and_the_next_call_reopens() {
        let server = TestPeer(Streams::End).start().await;
        let addr = server.addr().to_string();
        let calls = Calls::default();
        let got = writes(&calls, &addr, 3).await;
        assert!(
            got.iter().all(|r| *r == Err(tonic::Code::Unavailable)),
            "{got:?}"
        );
        // The link lives on and opens a new stream for the next call.
        assert_eq!(
            writes(&calls, &addr, 1).await,
            vec![Err(tonic::Code::Unavailable)]
        );
        server.shutdown().await;
        let down = writes(&calls, &addr, 1).await;
        assert_eq!(down, vec![Err(tonic::Code::Unavailable)], "a server gone");
    }

    /// Waits (polling) until `open` streams are open to a fake server.
    async fn open_streams(open: &AtomicUsize, want: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while open.load(Ordering::SeqCst) != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} streams open, want {want}",
                open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_stream_idle_for_a_while_is_closed_and_the_next_call_opens_another() {
        let (server, open) = TestPeer(Streams::Echo).start_counting().await;
        let addr = server.addr().to_string();
        let calls = Calls::default();
        assert_eq!(writes(&calls, &addr, 1).await, vec![Ok(1000)]);
        assert_eq!(open.load(Ordering::SeqCst), 1, "the call opened a stream");
        open_streams(&open, 0).await;
        assert_eq!(writes(&calls, &addr, 2).await, vec![Ok(1000), Ok(1001)]);
        assert_eq!(
            open.load(Ordering::SeqCst),
            1,
            "the next call opened another"
        );
        drop(calls);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_server_upgraded_to_calls_streams_gets_them_soon_after_its_link_fell_back_to_unary() {
        let (old, _) = TestPeer(Streams::Unimplemented).start_counting().await;
        let addr = old.addr().to_string();
        let calls = Calls::default();
        assert_eq!(writes(&calls, &addr, 1).await, vec![Ok(1000)], "unary");
        old.shutdown().await;
        // The same address, now a build that serves the stream.
        let (new, open) = TestPeer(Streams::Echo).start_on(&addr).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while open.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still unary after 5 s"
            );
            // A call that raced onto the old server's closing connection may fail.
            let got = writes(&calls, &addr, 1).await;
            assert!(
                matches!(got[..], [Ok(1000)] | [Err(tonic::Code::Unavailable)]),
                "{got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(calls);
        new.shutdown().await;
    }

    #[tokio::test]
    async fn calls_to_a_server_that_stopped_reading_wait_instead_of_failing_all_at_once() {
        let (server, open) = TestPeer(Streams::Stall).start_counting().await;
        let addr = server.addr().to_string();
        let calls = Arc::new(Calls::default());
        let mut sent = Vec::new();
        // Each call its own message (the link wakes for each), with values larger than
        // the HTTP/2 window: the stream's queue fills after a few.
        for pidx in 0..40 {
            let calls = calls.clone();
            let addr = addr.clone();
            sent.push(tokio::spawn(async move {
                let call = Call::Read(pb::ReadRequest {
                    pidx,
                    hash_key: vec![7; 100 << 10],
                    ..Default::default()
                });
                calls.call(&addr, client(&addr), call).await
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        open_streams(&open, 1).await;
        // The first of the calls answered within `limit`, if any.
        type Sent = tokio::task::JoinHandle<Answer>;
        async fn first_answer(sent: &mut [Sent], limit: Duration) -> Option<Answer> {
            let first = futures_util::future::select_all(sent.iter_mut());
            let (answer, _, _) = tokio::time::timeout(limit, first).await.ok()?;
            Some(answer.expect("the call's task"))
        }
        let answered = first_answer(&mut sent, Duration::from_secs(1)).await;
        assert!(
            answered.is_none(),
            "a call was answered by a server that reads nothing: {:?}",
            answered.map(|r| r.map(|_| ()))
        );
        // The held message is given up in the end, and with it the stream.
        let status = first_answer(&mut sent, HOLD_AT_MOST * 2)
            .await
            .expect("the stream given up in time")
            .expect_err("answered by a server that reads nothing");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("has not read"), "{status}");
        for call in &sent {
            call.abort();
        }
        drop(sent);
        drop(calls);
        // A graceful stop would wait for the stalled stream (HTTP/2 cannot end a stream
        // whose data is not flow-controlled through); a crash ends it.
        drop(server);
    }
}
