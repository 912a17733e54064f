//! Messages between members and the client side of Raft's network. A message is a
//! [`Request`] encoded as JSON bytes and sent over a [`Transport`] — one gRPC call between
//! processes, a function call in tests — which answers a [`Response`]. The receiving side
//! is [`super::group::Member::handle`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkV2};
use serde::{Deserialize, Serialize};

use super::state_machine::{Snapshot, SnapshotMeta};
use super::{MetaNode, TypeConfig, Vote, io_err};

/// One member's status, as `meta status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: u64,
    /// Its address.
    pub address: String,
    /// `leader`, `follower`, `learner` or `candidate`.
    pub role: String,
    /// Its current term.
    pub term: u64,
    /// The index of its last log entry.
    pub last_log_index: u64,
    /// The index of its last applied entry.
    pub applied_index: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// Voter ids of the membership it has (possibly not yet committed).
    pub voters: Vec<u64>,
    /// Learner ids of the same.
    pub learners: Vec<u64>,
    /// Leader only: how far each member's log is behind the leader's (entries).
    pub lags: Vec<(u64, u64)>,
    /// Every member's address, by id.
    pub addresses: Vec<(u64, String)>,
}

/// A message to a member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// Raft: append entries (or heartbeat).
    Append(AppendEntriesRequest<TypeConfig>),
    /// Raft: vote.
    Vote(VoteRequest<TypeConfig>),
    /// Raft: install a whole snapshot.
    Snapshot {
        /// The sender's vote.
        vote: Vote,
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// The state.
        data: Vec<u8>,
    },
    /// Raft: take over leadership.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// Admin: add this node to the group (forwarded to the leader).
    Join {
        /// The joining node's id.
        id: u64,
        /// Its address and incarnation.
        node: MetaNode,
        /// A learner that never votes (an observer).
        observer: bool,
    },
    /// Admin: remove member `id` (forwarded to the leader).
    Leave {
        /// The member to remove.
        id: u64,
        /// Allow an even voter count.
        force: bool,
    },
    /// Admin: hand leadership to `to`, or to the most caught-up voter that is up.
    Transfer {
        /// The member to lead.
        to: Option<u64>,
    },
    /// Admin: a request a follower sent on to the leader (never forwarded again).
    Forward(Box<Request>),
    /// Admin: this member's status.
    Status,
    /// A runtime setting the leader changed (a meta remote command, or the level): every
    /// member holds the latest of each, so a new leader keeps them.
    Setting {
        /// The remote command (or `meta.level`).
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// A member's answer.
#[derive(Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// To [`Request::Append`].
    Append(AppendEntriesResponse<TypeConfig>),
    /// To [`Request::Vote`].
    Vote(VoteResponse<TypeConfig>),
    /// To [`Request::Snapshot`].
    Snapshot(SnapshotResponse<TypeConfig>),
    /// To [`Request::TransferLeader`].
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// An admin request succeeded, with what it did.
    Done(String),
    /// To [`Request::Status`].
    Status(MemberStatus),
    /// An admin request was refused (a safety check): do not retry elsewhere.
    Refused(String),
    /// The request failed here (not the leader and no leader known, shutting down, …).
    Failed(String),
}

/// A request with the incarnation of the member it is meant for: a member answers Raft's
/// messages only if they are meant for its own data directory, so a wiped member that came
/// back at the same address under the same id is never mistaken for the old one (its empty
/// log would look like a log that went backwards, which Raft cannot survive).
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The incarnation the sender believes the receiver has; empty from admin clients.
    pub to_incarnation: String,
    /// The request.
    pub request: Request,
}

/// Carries encoded requests to a member and brings back its encoded answer.
#[tonic::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to the member at `to` and waits for its answer.
    async fn send(&self, to: &str, request: Vec<u8>) -> io::Result<Vec<u8>>;
}

/// Sends `request` to `to` over `transport`, within `timeout`.
pub async fn call(
    transport: &dyn Transport,
    to: &str,
    request: Request,
    timeout: Duration,
) -> io::Result<Response> {
    call_incarnation(transport, to, "", request, timeout).await
}

/// Sends `request` to `to`, meant for its data directory `incarnation`.
pub async fn call_incarnation(
    transport: &dyn Transport,
    to: &str,
    incarnation: &str,
    request: Request,
    timeout: Duration,
) -> io::Result<Response> {
    let envelope = Envelope {
        to_incarnation: incarnation.to_string(),
        request,
    };
    let bytes = serde_json::to_vec(&envelope).map_err(io_err)?;
    let answer = tokio::time::timeout(timeout, transport.send(to, bytes))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{to} did not answer")))??;
    serde_json::from_slice(&answer).map_err(io_err)
}

/// Raft's network: one [`Connection`] per target over a shared transport.
#[derive(Clone)]
pub struct Network {
    transport: Arc<dyn Transport>,
}

impl Network {
    /// A network over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Network {
        Network { transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, _target: u64, node: &MetaNode) -> Connection {
        Connection {
            transport: self.transport.clone(),
            address: node.address.clone(),
            incarnation: node.incarnation.clone(),
        }
    }
}

/// Raft's client to one member.
pub struct Connection {
    transport: Arc<dyn Transport>,
    address: String,
    incarnation: String,
}

fn unreachable(e: io::Error) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(&e))
}

fn unexpected(what: &str, got: Response) -> RPCError<TypeConfig> {
    let e = io::Error::other(format!("expected a {what} answer, got {got:?}"));
    RPCError::Network(NetworkError::new(&e))
}

impl Connection {
    async fn call(&self, request: Request, option: &RPCOption) -> io::Result<Response> {
        call_incarnation(
            self.transport.as_ref(),
            &self.address,
            &self.incarnation,
            request,
            option.hard_ttl(),
        )
        .await
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::Append(rpc), &option).await {
            Ok(Response::Append(r)) => Ok(r),
            Ok(other) => Err(unexpected("append", other)),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::Vote(rpc), &option).await {
            Ok(Response::Vote(r)) => Ok(r),
            Ok(other) => Err(unexpected("vote", other)),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = Request::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            answer = self.call(request, &option) => match answer {
                Ok(Response::Snapshot(r)) => Ok(r),
                Ok(other) => {
                    let e = io::Error::other(format!("expected a snapshot answer, got {other:?}"));
                    Err(StreamingError::Network(NetworkError::new(&e)))
                }
                Err(e) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
            },
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::TransferLeader(req), &option).await {
            Ok(Response::TransferLeader(r)) => Ok(r),
            Ok(other) => Err(unexpected("transfer-leader", other)),
            Err(e) => Err(unreachable(e)),
        }
    }
}
