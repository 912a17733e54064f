//! One member of the meta servers' Raft group: opening it, starting a group of one (and
//! migrating a single server's state into it), joining (Databend's client side: skip if the
//! committed membership holds us, never via our own address, each address three times),
//! writes, status, and answering the other members' messages. Admin requests (join, leave,
//! transfer) sent to a follower are forwarded to the leader, once; the leader carries them
//! out in `admin.rs`; runtime settings are held and forwarded in `settings.rs`.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use super::log_store::LogStore;
use super::membership::Members;
use super::network::{Envelope, MemberStatus, Network, Request, Response, Transport, call};
use super::state_machine::{Snapshot, StateMachine, View};
use super::{Command, MetaNode, Raft, Timings, io_err};
use crate::meta::store::{RedbStore, StoreOp};

/// One member of the group.
pub struct Member {
    pub(super) id: u64,
    pub(super) node: MetaNode,
    pub(super) raft: Raft,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) view: Arc<RwLock<View>>,
    pub(super) timings: Timings,
    pub(super) admin: tokio::sync::Mutex<()>,
    /// Runtime settings as the leader last forwarded them: the latest args per command.
    pub(super) settings: std::sync::Mutex<Vec<(String, Vec<String>)>>,
}

/// Why a write did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// This member is not the leader; the leader's address if known.
    NotLeader(Option<String>),
    /// The write may or may not have committed (the leader changed meanwhile), or failed.
    Failed(String),
}

impl Member {
    /// Opens member `id` at `node` over its log and its state machine's store, talking to
    /// the others through `transport`. Nothing is joined or initialized yet.
    pub async fn open(
        id: u64,
        node: MetaNode,
        log: LogStore,
        store: RedbStore,
        transport: Arc<dyn Transport>,
        timings: Timings,
    ) -> io::Result<Arc<Member>> {
        let sm = StateMachine::open(store)?;
        let view = sm.view();
        let config = Arc::new(super::config(timings)?);
        let network = Network::new(transport.clone());
        let raft = Raft::new(id, config, network, log, sm)
            .await
            .map_err(io_err)?;
        Ok(Arc::new(Member {
            id,
            node,
            raft,
            transport,
            view,
            timings,
            admin: tokio::sync::Mutex::new(()),
            settings: std::sync::Mutex::new(Vec::new()),
        }))
    }

    /// Raft's metrics as of now.
    pub(super) fn metrics(&self) -> openraft::RaftMetrics<super::TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The state machine's view (the replicated meta state as applied here).
    pub fn view(&self) -> Arc<RwLock<View>> {
        self.view.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// How long an admin step (a join's catch-up, a transfer) may take.
    pub(super) fn admin_timeout(&self) -> Duration {
        Duration::from_millis(self.timings.election_min_ms * 40)
    }

    /// Starts a new group of this member alone, once: a member already initialized (a
    /// restart with the same flags) is left as it is. A store that holds a single meta
    /// server's state is migrated: once leader, the state is written as the group's first
    /// command, so every member that joins later receives it.
    pub async fn initialize(&self) -> io::Result<()> {
        if !self.raft.is_initialized().await.map_err(io_err)? {
            let members = BTreeMap::from([(self.id, self.node.clone())]);
            self.raft.initialize(members).await.map_err(io_err)?;
            self.raft
                .wait(Some(self.admin_timeout()))
                .state(ServerState::Leader, "lead the new group")
                .await
                .map_err(io_err)?;
        }
        self.migrate_if_pending().await
    }

    /// Writes a single server's state into the log if it was never replicated.
    async fn migrate_if_pending(&self) -> io::Result<()> {
        let pending = self.read().migration_pending;
        if !pending {
            return Ok(());
        }
        self.raft
            .wait(Some(self.admin_timeout()))
            .state(ServerState::Leader, "lead the group of one")
            .await
            .map_err(io_err)?;
        let ops = self.read().state.to_ops();
        self.raft
            .client_write(Command::Migrate(ops))
            .await
            .map_err(io_err)?;
        Ok(())
    }

    /// Whether the committed membership holds this member as a voter (or, for an
    /// observer, as a learner): then it does not join again.
    pub fn is_member(&self, observer: bool) -> bool {
        let view = self.read();
        let m = view.membership.membership();
        if observer {
            m.learner_ids().any(|id| id == self.id)
        } else {
            m.voter_ids().any(|id| id == self.id)
        }
    }

    /// Joins the group through any of `via` (skipping this member's own address), trying
    /// each up to three times; a refusal (a safety check) ends it at once. A member the
    /// committed membership already holds does nothing.
    pub async fn join(&self, via: &[String], observer: bool) -> Result<(), String> {
        if self.is_member(observer) {
            return Ok(());
        }
        let request = Request::Join {
            id: self.id,
            node: self.node.clone(),
            observer,
        };
        let mut last = format!(
            "no --join address other than this meta server's own ({})",
            self.node.address
        );
        for addr in via.iter().filter(|a| **a != self.node.address) {
            for _ in 0..3 {
                match call(
                    self.transport.as_ref(),
                    addr,
                    request.clone(),
                    self.admin_timeout(),
                )
                .await
                {
                    Ok(Response::Done(_)) => return self.await_membership(observer).await,
                    Ok(Response::Refused(why)) => return Err(why),
                    Ok(other) => last = format!("{addr}: {}", describe(&other)),
                    Err(e) => last = format!("{addr}: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(self.timings.election_min_ms)).await;
            }
        }
        Err(last)
    }

    /// Waits until the membership applied here holds this member as asked.
    async fn await_membership(&self, observer: bool) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.admin_timeout();
        while !self.is_member(observer) {
            if tokio::time::Instant::now() > deadline {
                return Err("joined, but the membership did not reach this member".into());
            }
            tokio::time::sleep(Duration::from_millis(self.timings.heartbeat_ms)).await;
        }
        Ok(())
    }

    /// The group as this member's Raft sees it (possibly not yet committed), with the
    /// retired ids.
    pub fn members(&self) -> Members {
        let metrics = self.metrics();
        let m = metrics.membership_config.membership();
        Members {
            voters: m.voter_ids().collect(),
            learners: m.learner_ids().collect(),
            nodes: m.nodes().map(|(id, n)| (*id, n.clone())).collect(),
            retired: self.read().retired.clone(),
        }
    }

    /// The leader's id and address, if known.
    pub fn leader(&self) -> Option<(u64, String)> {
        let metrics = self.metrics();
        let id = metrics.current_leader?;
        let address = metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.address.clone())?;
        Some((id, address))
    }

    /// Whether this member leads now (by its own account; see [`Member::ensure_leader`]).
    pub fn is_leader(&self) -> bool {
        self.metrics().state == ServerState::Leader
    }

    /// Confirms leadership with a quorum (read index) and waits until everything committed
    /// is applied here: a deposed leader learns it here, a new one catches up.
    pub async fn ensure_leader(&self) -> Result<(), WriteError> {
        self.linearize(openraft::ReadPolicy::ReadIndex).await
    }

    /// Confirms leadership by the leader's lease (a quorum acknowledged it within the
    /// lease; no round trip): before renewing a replica server's lease.
    pub async fn ensure_lease(&self) -> Result<(), WriteError> {
        self.linearize(openraft::ReadPolicy::LeaseRead).await
    }

    async fn linearize(&self, policy: openraft::ReadPolicy) -> Result<(), WriteError> {
        self.raft
            .ensure_linearizable(policy)
            .await
            .map(|_| ())
            .map_err(|e| write_error(e.forward_to_leader(), &e))
    }

    /// The address of every member, voters first.
    pub fn addresses(&self) -> Vec<String> {
        let m = self.members();
        m.voters
            .iter()
            .chain(&m.learners)
            .filter_map(|id| m.nodes.get(id).map(|n| n.address.clone()))
            .collect()
    }

    /// Commits `ops` through the group (leader only).
    pub async fn write(&self, ops: Vec<StoreOp>) -> Result<(), WriteError> {
        self.raft
            .client_write(Command::Ops(ops))
            .await
            .map(|_| ())
            .map_err(|e| write_error(e.forward_to_leader(), &e))
    }

    /// This member's status row.
    pub fn status(&self) -> MemberStatus {
        let metrics = self.metrics();
        let m = metrics.membership_config.membership();
        let voters: Vec<u64> = m.voter_ids().collect();
        let learners: Vec<u64> = m.learner_ids().collect();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            _ if voters.contains(&self.id) => "follower",
            _ => "learner",
        };
        let last = metrics.last_log_index.unwrap_or(0);
        let lags = metrics
            .replication
            .iter()
            .flatten()
            .map(|(id, matched)| (*id, last.saturating_sub(matched.map_or(0, |l| l.index))))
            .collect();
        MemberStatus {
            id: self.id,
            address: self.node.address.clone(),
            role: role.into(),
            term: metrics.current_term,
            last_log_index: last,
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            leader: metrics.current_leader,
            voters,
            learners,
            lags,
            addresses: m.nodes().map(|(id, n)| (*id, n.address.clone())).collect(),
        }
    }

    /// Answers one encoded message from another member (or an admin client).
    pub async fn handle_bytes(&self, request: &[u8]) -> Vec<u8> {
        let response = match serde_json::from_slice::<Envelope>(request) {
            Ok(e) if !e.to_incarnation.is_empty() && e.to_incarnation != self.node.incarnation => {
                Response::Failed(format!(
                    "meta server {} has data directory {}, not {}: it is not the member the \
                     sender knows under this id",
                    self.id, self.node.incarnation, e.to_incarnation
                ))
            }
            Ok(e) => self.handle(e.request, false).await,
            Err(e) => Response::Failed(format!("malformed request: {e}")),
        };
        serde_json::to_vec(&response).unwrap_or_default()
    }

    /// Answers one message; `forwarded` says a follower sent it on already.
    pub async fn handle(&self, request: Request, forwarded: bool) -> Response {
        let failed = |e: &dyn std::fmt::Display| Response::Failed(e.to_string());
        match request {
            Request::Append(r) => match self.raft.append_entries(r).await {
                Ok(r) => Response::Append(r),
                Err(e) => failed(&e),
            },
            Request::Vote(r) => match self.raft.vote(r).await {
                Ok(r) => Response::Vote(r),
                Err(e) => failed(&e),
            },
            Request::Snapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: data,
                };
                match self.raft.install_full_snapshot(vote, snapshot).await {
                    Ok(r) => Response::Snapshot(r),
                    Err(e) => failed(&e),
                }
            }
            Request::TransferLeader(r) => match self.raft.handle_transfer_leader(r).await {
                Ok(r) => Response::TransferLeader(r),
                Err(e) => failed(&e),
            },
            Request::Status => Response::Status(self.status()),
            Request::Setting { command, args } => {
                self.hold_setting(command, args);
                Response::Done("held".into())
            }
            admin => self.admin(admin, forwarded).await,
        }
    }

    /// Stops this member's Raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// A Raft error as a [`WriteError`]: "not the leader" (with the leader's address if known)
/// when Raft says to forward, else a failure.
fn write_error(
    forward: Option<&openraft::error::ForwardToLeader<super::TypeConfig>>,
    e: &dyn std::fmt::Display,
) -> WriteError {
    match forward {
        Some(f) => WriteError::NotLeader(f.leader_node.as_ref().map(|n| n.address.clone())),
        None => WriteError::Failed(e.to_string()),
    }
}

fn describe(response: &Response) -> String {
    match response {
        Response::Failed(why) | Response::Refused(why) | Response::Done(why) => why.clone(),
        other => format!("unexpected answer {other:?}"),
    }
}

#[tonic::async_trait]
impl super::mem_transport::Handler for Member {
    async fn handle(&self, request: Vec<u8>) -> Vec<u8> {
        self.handle_bytes(&request).await
    }
}
