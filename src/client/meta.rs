//! The meta server client. It holds one lazy channel per configured meta server, tries
//! the last one that answered first, follows a NotLeader redirect, fails over on
//! transport errors and on an address that does not answer in its share of the time, and
//! gives up (as `Unavailable`) when the deadline passes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::client::channel;
use crate::error::{Error, Result};
use crate::pb;
use crate::pb::meta_client::MetaClient as RawClient;

/// A cheap-to-clone client of the meta servers.
#[derive(Clone)]
pub struct MetaClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The addresses given, then leaders learned from redirects (never removed).
    servers: std::sync::RwLock<Vec<(String, Channel)>>,
    given: Vec<String>,
    leader: AtomicUsize,
    timeout: Duration,
    /// Reads allow a stale answer from a follower (`--stale-ok`).
    stale_ok: bool,
}

impl Inner {
    fn len(&self) -> usize {
        self.servers.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn channel(&self, idx: usize) -> Channel {
        self.servers.read().unwrap_or_else(|p| p.into_inner())[idx]
            .1
            .clone()
    }

    /// The index of `addr`, adding it (a leader named by a redirect that was not among
    /// the addresses given: a meta server that joined the group later).
    fn index_of(&self, addr: &str) -> Option<usize> {
        let mut servers = self.servers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = servers.iter().position(|(a, _)| a == addr) {
            return Some(i);
        }
        let channel = channel(addr, self.timeout).ok()?;
        servers.push((addr.to_string(), channel));
        Some(servers.len() - 1)
    }
}

impl MetaClient {
    /// A client of `addrs` whose requests give up after `timeout` in all.
    pub fn new(addrs: &[String], timeout: Duration) -> Result<MetaClient> {
        MetaClient::build(addrs, timeout, false)
    }

    /// Like [`MetaClient::new`], but the reads (`list_nodes`, `list_apps`, `query_app`,
    /// `cluster_info`) allow a stale answer: any meta server of a group answers them from
    /// its own copy of the state, marked stale (see `pb::StaleRead`), instead of naming
    /// the leader. For when the group has no leader, or to spare it.
    pub fn allowing_stale_reads(addrs: &[String], timeout: Duration) -> Result<MetaClient> {
        MetaClient::build(addrs, timeout, true)
    }

    fn build(addrs: &[String], timeout: Duration, stale_ok: bool) -> Result<MetaClient> {
        if addrs.is_empty() {
            return Err(Error::InvalidInput("no meta server address given".into()));
        }
        let channels = addrs
            .iter()
            .map(|a| channel(a, timeout))
            .collect::<Result<Vec<_>>>()?;
        let inner = Inner {
            servers: std::sync::RwLock::new(addrs.iter().cloned().zip(channels).collect()),
            given: addrs.to_vec(),
            leader: AtomicUsize::new(0),
            timeout,
            stale_ok,
        };
        Ok(MetaClient {
            inner: Arc::new(inner),
        })
    }

    /// The configured meta addresses.
    pub fn addrs(&self) -> &[String] {
        &self.inner.given
    }

    /// A read request, with the header that allows a stale answer if this client does.
    fn read_request<T>(&self, req: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(req);
        if self.inner.stale_ok {
            req.metadata_mut().insert(
                crate::meta::service::STALE_OK_HEADER,
                tonic::metadata::MetadataValue::from_static("1"),
            );
        }
        req
    }

    /// Sends one request, trying meta servers until one answers or the deadline passes.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(RawClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<T>, Status>>,
    {
        let inner = &self.inner;
        let deadline = Instant::now() + inner.timeout;
        let mut idx = inner.leader.load(Ordering::Relaxed) % inner.len();
        let mut last_error = None;
        // Each address gets a try, plus one redirect per address. On the first pass, with
        // several addresses, each try gets a share of the budget, so an address that
        // accepts connections and never answers cannot use it all up; later tries get
        // what is left.
        let n = inner.len();
        let share = (inner.timeout / (2 * n as u32)).max(Duration::from_millis(250));
        // A member that answered "not the leader" means a group that is electing or
        // whose leader just died: keep trying (paced) until the deadline. Addresses that
        // all refuse get two passes, as before.
        let mut group_seen = false;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || (attempt >= n * 2 && !group_seen) {
                break;
            }
            if attempt >= n * 2 {
                tokio::time::sleep(Duration::from_millis(100).min(remaining)).await;
            }
            attempt += 1;
            let attempt = attempt - 1;
            let budget = if n > 1 && attempt < n {
                remaining.min(share)
            } else {
                remaining
            };
            let raw = RawClient::new(inner.channel(idx));
            let outcome = tokio::time::timeout(budget, f(raw)).await;
            let err = match outcome {
                Ok(Ok(reply)) => {
                    inner.leader.store(idx, Ordering::Relaxed);
                    return Ok(reply.into_inner());
                }
                Ok(Err(status)) => Error::from(status),
                Err(_) => Error::Unavailable("timed out".into()),
            };
            if matches!(err, Error::NotLeader { .. }) {
                group_seen = true;
            }
            match &err {
                Error::NotLeader {
                    leader: Some(leader),
                } => match inner.index_of(leader) {
                    // A leader that was just named but refuses is dead or deposed: the
                    // next member may know better.
                    Some(i) if i != idx => idx = i,
                    _ => idx = (idx + 1) % inner.len(),
                },
                e if e.is_retryable() || matches!(e, Error::Internal(_)) => {
                    idx = (idx + 1) % inner.len();
                }
                _ => return Err(err),
            }
            last_error = Some(err);
        }
        let why = last_error.map(|e| format!(": {e}")).unwrap_or_default();
        Err(Error::Unavailable(format!(
            "cannot reach the meta server at {} within {:?}{why}",
            inner.given.join(","),
            inner.timeout
        )))
    }

    /// A replica server's beacon.
    pub async fn beacon(&self, req: pb::BeaconRequest) -> Result<pb::BeaconReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.beacon(req).await }
        })
        .await
    }

    /// Every node, optionally of one status.
    pub async fn list_nodes(&self, status: pb::NodeStatus) -> Result<Vec<pb::NodeInfo>> {
        self.list_nodes_with(status, false).await
    }

    /// Every node, optionally of one status; with `all`, dropped ones too.
    pub async fn list_nodes_with(
        &self,
        status: pb::NodeStatus,
        all: bool,
    ) -> Result<Vec<pb::NodeInfo>> {
        Ok(self.list_nodes_reply(status, all).await?.nodes)
    }

    /// The whole answer of [`MetaClient::list_nodes_with`] (it says whether it is stale).
    pub async fn list_nodes_reply(
        &self,
        status: pb::NodeStatus,
        all: bool,
    ) -> Result<pb::ListNodesReply> {
        let req = pb::ListNodesRequest {
            status: status as i32,
            all,
        };
        self.call(|mut c| {
            let req = self.read_request(req);
            async move { c.list_nodes(req).await }
        })
        .await
    }

    /// Tables with their partitions, optionally of one status.
    pub async fn list_apps(&self, status: pb::AppStatus) -> Result<Vec<pb::AppDetail>> {
        Ok(self.list_apps_reply(status).await?.apps)
    }

    /// The whole answer of [`MetaClient::list_apps`] (it says whether it is stale).
    pub async fn list_apps_reply(&self, status: pb::AppStatus) -> Result<pb::ListAppsReply> {
        let req = pb::ListAppsRequest {
            status: status as i32,
        };
        self.call(|mut c| {
            let req = self.read_request(req);
            async move { c.list_apps(req).await }
        })
        .await
    }

    /// One table by name, with its partitions and the ALIVE nodes among their members.
    pub async fn query_app(&self, name: &str) -> Result<pb::QueryAppReply> {
        let req = pb::QueryAppRequest {
            app_name: name.to_string(),
        };
        self.call(|mut c| {
            let req = self.read_request(req.clone());
            async move { c.query_app(req).await }
        })
        .await
    }

    /// Creates a table.
    pub async fn create_app(&self, req: pb::CreateAppRequest) -> Result<pb::CreateAppReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.create_app(req).await }
        })
        .await
    }

    /// Drops a table.
    pub async fn drop_app(&self, req: pb::DropAppRequest) -> Result<pb::DropAppReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.drop_app(req).await }
        })
        .await
    }

    /// Renames a table.
    pub async fn rename_app(&self, req: pb::RenameAppRequest) -> Result<pb::RenameAppReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.rename_app(req).await }
        })
        .await
    }

    /// Changes a table's environment variables.
    pub async fn update_app_envs(
        &self,
        req: pb::UpdateAppEnvsRequest,
    ) -> Result<pb::UpdateAppEnvsReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.update_app_envs(req).await }
        })
        .await
    }

    /// Recalls a dropped table.
    pub async fn recall_app(&self, req: pb::RecallAppRequest) -> Result<pb::RecallAppReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.recall_app(req).await }
        })
        .await
    }

    /// Reads (level unspecified) or sets the meta level.
    pub async fn control_meta(&self, level: pb::MetaLevel) -> Result<pb::ControlMetaReply> {
        let req = pb::ControlMetaRequest {
            level: level as i32,
        };
        self.call(|mut c| async move { c.control_meta(req).await })
            .await
    }

    /// The cluster summary.
    pub async fn cluster_info(&self) -> Result<pb::ClusterInfoReply> {
        self.call(|mut c| {
            let req = self.read_request(pb::ClusterInfoRequest {});
            async move { c.cluster_info(req).await }
        })
        .await
    }

    /// Sends a manual configuration change.
    pub async fn propose(&self, req: pb::ProposeRequest) -> Result<pb::ProposeReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.propose(req).await }
        })
        .await
    }

    /// Partitions that lost every replica; with a force, an operator's decision.
    pub async fn ddd_diagnose(&self, req: pb::DddDiagnoseRequest) -> Result<pb::DddDiagnoseReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.ddd_diagnose(req).await }
        })
        .await
    }

    /// A primary's configuration change (compare-and-set on the ballot).
    pub async fn update_partition(
        &self,
        req: pb::UpdatePartitionRequest,
    ) -> Result<pb::UpdatePartitionReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.update_partition(req).await }
        })
        .await
    }

    /// Opens this replica server's presence stream (see `Meta.Presence`).
    pub async fn presence(
        &self,
        req: pb::PresenceRequest,
    ) -> Result<tonic::Streaming<pb::PresenceEvent>> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.presence(req).await }
        })
        .await
    }

    /// A stopping replica server's request.
    pub async fn leave(&self, req: pb::LeaveRequest) -> Result<pb::LeaveReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.leave(req).await }
        })
        .await
    }

    /// Checks, plans and (unless a dry run) starts a decommission.
    pub async fn decommission(
        &self,
        req: pb::DecommissionRequest,
    ) -> Result<pb::DecommissionReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.decommission(req).await }
        })
        .await
    }

    /// Every departing node's progress.
    pub async fn decommission_status(&self) -> Result<pb::DecommissionStatusReply> {
        self.call(|mut c| async move {
            c.decommission_status(pb::DecommissionStatusRequest {})
                .await
        })
        .await
    }

    /// Returns DECOMMISSIONING nodes to NORMAL.
    pub async fn cancel_decommission(
        &self,
        nodes: Vec<String>,
    ) -> Result<pb::CancelDecommissionReply> {
        let req = pb::CancelDecommissionRequest { nodes };
        self.call(|mut c| {
            let req = req.clone();
            async move { c.cancel_decommission(req).await }
        })
        .await
    }

    /// Forgets a node.
    pub async fn drop_node(&self, req: pb::DropNodeRequest) -> Result<pb::DropNodeReply> {
        self.call(|mut c| {
            let req = req.clone();
            async move { c.drop_node(req).await }
        })
        .await
    }
}
