//! A replica server: holds replicas, beacons to the meta server, and answers remote
//! commands.
//!
//! - [`record`] keeps the held replicas on disk across restarts;
//! - [`lease`] decides whether the node may serve;
//! - [`beacon`] is the loop that registers, reports and learns assignments;
//! - [`partition`] is one replica (its [`storage`] and [`plog`] prepare log) and the
//!   PacificA rules every replica follows; [`primary`] is a primary's write pipeline and
//!   [`learn`] how a new replica gets its data;
//! - [`service`], [`data_service`] and [`remote_commands`] are the gRPC and
//!   `remote_command` adapters.

pub mod beacon;
pub mod core;
pub mod data_service;
pub mod learn;
pub mod lease;
pub mod partition;
pub mod plog;
pub mod primary;
pub mod record;
pub mod remote_commands;
pub mod service;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::client::MetaClient;
use crate::error::{Error, Result};
use crate::model::{Gpid, ReplicaRole};
use crate::pb;
use crate::server::ServerHandle;
use crate::timeutil::{format_ms, now_ms};
use learn::CopyLimiter;
use lease::Lease;
use partition::{Partition, View};
use record::ReplicaRecord;

/// How long a replica server waits for the meta server on a configuration change.
const META_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a replica server waits on another one (connects and unary requests).
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// What a replica server is started with.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The meta servers' addresses.
    pub meta: Vec<String>,
    /// Where the replica record (and, later, the replicas' data) lives.
    pub data_dir: PathBuf,
    /// The beacon interval to use until the meta server hands out its own.
    pub initial_beacon_interval: Duration,
}

/// The replica server's shared core.
pub struct Replica {
    address: String,
    record: Mutex<ReplicaRecord>,
    lease: Mutex<Lease>,
    /// The assignment version of the last beacon reply applied.
    assignment_version: std::sync::atomic::AtomicU64,
    started: Instant,
    started_ms: u64,
    data_dir: PathBuf,
    partitions: Mutex<BTreeMap<Gpid, Arc<Partition>>>,
    peers: Mutex<HashMap<String, Channel>>,
    meta: MetaClient,
    /// The snapshot copy budget (`nfs.max_copy_rate_megabytes_per_disk`).
    pub limiter: CopyLimiter,
    stopping: AtomicBool,
    /// (bytes, seconds) of the last snapshot this node learned.
    learned: Mutex<Option<(u64, f64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Replica {
    /// The node's address: its name in the cluster.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The record of held replicas.
    pub fn record(&self) -> MutexGuard<'_, ReplicaRecord> {
        lock(&self.record)
    }

    /// Whether the lease allows serving now.
    pub fn serving(&self) -> bool {
        lock(&self.lease).is_valid(Instant::now())
    }

    /// Renews the lease after an acknowledged beacon sent at `sent`.
    pub fn renew_lease(&self, sent: Instant, length: Duration) {
        lock(&self.lease).renew(sent, length);
    }

    /// The meta client for configuration changes.
    pub fn meta(&self) -> &MetaClient {
        &self.meta
    }

    /// Whether the server is shutting down (background tasks end).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A data-plane client of the replica server at `addr` (channels are reused).
    pub fn peer(&self, addr: &str) -> Result<pb::replica_client::ReplicaClient<Channel>> {
        let mut peers = lock(&self.peers);
        let channel = match peers.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = crate::client::channel(addr, PEER_TIMEOUT)?;
                peers.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(pb::replica_client::ReplicaClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// The replica of `gpid`, if this node holds it.
    pub fn partition(&self, gpid: Gpid) -> Option<Arc<Partition>> {
        lock(&self.partitions).get(&gpid).cloned()
    }

    /// Records a completed learning (for `server-info`).
    pub fn record_learned(&self, bytes: u64, elapsed: Duration) {
        *lock(&self.learned) = Some((bytes, elapsed.as_secs_f64()));
    }

    fn partition_dir(&self, gpid: Gpid) -> PathBuf {
        self.data_dir
            .join("replicas")
            .join(format!("{}.{}", gpid.app_id, gpid.pidx))
    }

    fn open_partition(&self, gpid: Gpid, view: View) -> Result<Arc<Partition>> {
        let mut parts = lock(&self.partitions);
        if let Some(p) = parts.get(&gpid) {
            return Ok(p.clone());
        }
        let part = Arc::new(Partition::open(gpid, &self.partition_dir(gpid), view)?);
        parts.insert(gpid, part.clone());
        Ok(part)
    }

    /// Opens a replica a primary prepares to before the meta server assigned it here
    /// (a partition that has committed nothing yet).
    pub fn open_fresh(&self, gpid: Gpid, ballot: i64, primary: &str) -> Result<Arc<Partition>> {
        let view = View {
            ballot,
            role: ReplicaRole::Secondary,
            primary: Some(primary.to_string()),
            secondaries: vec![],
        };
        self.open_partition(gpid, view)
    }

    /// Takes the meta server's assignments: opens assigned replicas, updates their view
    /// of the configuration, starts a primary's pipeline or a learner's learning; held
    /// replicas no longer assigned turn inactive; `garbage` is deleted.
    pub fn sync_partitions(self: &Arc<Self>, assignments: &[pb::Assignment], garbage: &[Gpid]) {
        for a in assignments {
            let gpid = Gpid {
                app_id: a.app_id,
                pidx: a.pidx,
            };
            let view = View {
                ballot: a.ballot,
                role: ReplicaRole::from_pb(a.role),
                primary: (!a.primary.is_empty()).then(|| a.primary.clone()),
                secondaries: a.secondaries.clone(),
            };
            let part = match self.open_partition(gpid, view.clone()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(%gpid, "cannot open replica: {e}");
                    continue;
                }
            };
            let role = {
                let mut st = part.state();
                if !st.adopt(view.clone()) {
                    tracing::debug!(%gpid, held = st.view.ballot, assigned = view.ballot, "older assignment ignored");
                }
                st.view.role
            };
            match role {
                ReplicaRole::Primary => primary::ensure_running(self, &part),
                ReplicaRole::Learner => learn::ensure_running(self, &part),
                _ => {}
            }
        }
        let parts: Vec<Arc<Partition>> = lock(&self.partitions).values().cloned().collect();
        for part in parts {
            if !assignments
                .iter()
                .any(|a| a.app_id == part.gpid.app_id && a.pidx == part.gpid.pidx)
            {
                let mut st = part.state();
                if st.view.role != ReplicaRole::Inactive {
                    st.view.role = ReplicaRole::Inactive;
                    st.serving = false;
                    st.learners.clear();
                }
            }
        }
        for gpid in garbage {
            self.destroy_partition(*gpid);
        }
    }

    /// Closes a replica and deletes its files.
    pub fn destroy_partition(&self, gpid: Gpid) {
        let part = lock(&self.partitions).remove(&gpid);
        if let Some(part) = part {
            part.state().view.role = ReplicaRole::Inactive;
        }
        let dir = self.partition_dir(gpid);
        // The files go once the last user of the replica lets go (a task may hold it
        // for a moment); deleting the directory now is safe on Unix.
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%gpid, "cannot delete replica files: {e}");
        }
    }

    /// The beacon's report: every recorded replica with its size on disk. A replica
    /// whose data is incomplete (and is not being learned) is left out, so the meta
    /// server sees a member that lost its replica and takes it out of the
    /// configuration.
    pub fn reports(&self) -> Vec<pb::ReplicaReport> {
        let mut reports = self.record().reports();
        let parts = lock(&self.partitions);
        reports.retain_mut(|r| {
            let gpid = Gpid {
                app_id: r.app_id,
                pidx: r.pidx,
            };
            let Some(part) = parts.get(&gpid) else {
                return true;
            };
            let (reportable, disk_bytes) = part.report();
            r.disk_bytes = disk_bytes;
            reportable
        });
        reports
    }

    /// The `server-info` reply.
    pub fn server_info(&self) -> Value {
        let record = self.record();
        let primaries = record
            .entries()
            .filter(|e| e.role == crate::model::ReplicaRole::Primary)
            .count();
        json!({
            "error": "ok",
            "role": "replica-server",
            "version": env!("CARGO_PKG_VERSION"),
            "address": self.address,
            "start_time": format_ms(self.started_ms),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "serving": self.serving(),
            "replica_count": record.entries().count(),
            "primary_count": primaries,
            "max_copy_rate_megabytes_per_disk": self.limiter.rate_mb(),
            "last_learned_bytes": lock(&self.learned).map_or(0, |l| l.0),
            "last_learned_seconds": lock(&self.learned).map_or(0.0, |l| l.1),
        })
    }
}

/// Starts a replica server on `listener`; its address in the cluster is the listener's.
pub async fn start(
    config: ReplicaConfig,
    listener: TcpListener,
) -> Result<(ServerHandle, Arc<Replica>)> {
    let address = listener.local_addr()?.to_string();
    if config.meta.is_empty() {
        return Err(Error::InvalidInput("a replica server needs --meta".into()));
    }
    let record = ReplicaRecord::load(&config.data_dir)?;
    let held: Vec<(Gpid, View)> = record
        .entries()
        .map(|e| {
            let view = View {
                ballot: e.ballot,
                role: ReplicaRole::Inactive,
                primary: None,
                secondaries: vec![],
            };
            (e.gpid, view)
        })
        .collect();
    let replica = Arc::new(Replica {
        address,
        record: Mutex::new(record),
        lease: Mutex::new(Lease::default()),
        assignment_version: std::sync::atomic::AtomicU64::new(0),
        started: Instant::now(),
        started_ms: now_ms(),
        data_dir: config.data_dir.clone(),
        partitions: Mutex::new(BTreeMap::new()),
        peers: Mutex::new(HashMap::new()),
        meta: MetaClient::new(&config.meta, META_TIMEOUT)?,
        limiter: CopyLimiter::default(),
        stopping: AtomicBool::new(false),
        learned: Mutex::new(None),
    });
    // Held replicas are recovered before serving: a secondary must answer prepares as
    // soon as it is back. Their roles come with the first beacon reply.
    for (gpid, view) in held {
        replica.open_partition(gpid, view)?;
    }
    let timeout = config.initial_beacon_interval * 2 / 3;
    let client = MetaClient::new(&config.meta, timeout.max(Duration::from_millis(50)))?;
    let service = service::ReplicaService::new(replica.clone());
    let data = data_service::DataService::new(replica.clone());
    let router = tonic::transport::Server::builder()
        .add_service(pb::cli_server::CliServer::new(service))
        .add_service(
            pb::replica_server::ReplicaServer::new(data)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        );
    let beacon_replica = replica.clone();
    let stop_replica = replica.clone();
    let interval = config.initial_beacon_interval;
    let handle = ServerHandle::start(router, listener, move |signal| {
        let stop_signal = signal.clone();
        vec![
            tokio::spawn(beacon::run(beacon_replica, client, interval, signal)),
            tokio::spawn(async move {
                crate::server::stopped(stop_signal).await;
                stop_replica.stopping.store(true, Ordering::Release);
            }),
        ]
    })?;
    tracing::info!(address = replica.address(), "replica server serving");
    Ok((handle, replica))
}
