//! A replica server: holds replicas, beacons to the meta server, and answers remote
//! commands.
//!
//! - [`core`] is the PacificA state machine of one replica (pure, one owner);
//! - [`worker`] is the task that owns a replica's core; [`io`] its I/O thread, the only
//!   place its [`plog`] (prepare log) and [`storage`] (store) are written;
//! - [`transport`] carries its messages to peers and the meta server, [`wire`] converts
//!   them to and from the gRPC contract;
//! - [`node`] is what the replicas share (lease, peers, limits), [`node_dir`] the data
//!   directory (lock, identity, format);
//! - [`beacon`] is the loop that reports and takes assignments;
//! - [`data_service`], [`service`] and [`remote_commands`] are the gRPC and
//!   `remote_command` adapters.

pub mod base;
pub mod base_files;
pub mod beacon;
pub mod calls;
pub mod copy_link;
pub mod core;
pub mod data_service;
pub mod faults;
pub mod io;
pub mod layered;
pub mod learned;
pub mod lease;
pub mod leave;
pub mod limiter;
pub mod links;
pub mod node;
pub mod node_dir;
pub mod pending;
pub mod plog;
pub mod prepares;
pub mod presence;
pub mod reads;
pub mod remote_commands;
pub mod service;
pub mod snapshot;
pub mod storage;
pub mod tagged;
#[cfg(test)]
pub mod test_peer;
pub mod transport;
pub mod wire;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::client::MetaClient;
use crate::error::{Error, Result};
use crate::model::Gpid;
use crate::pb;
use crate::replica::core::{Core, CoreConfig, Input};
use crate::server::ServerHandle;
use crate::timeutil::{format_ms, now_ms};
use faults::Faults;
use node::Node;
use node_dir::NodeDir;
use worker::{Msg, Shared};

/// How long a replica server waits for the meta server on a configuration change.
const META_TIMEOUT: Duration = Duration::from_secs(3);

/// What a replica server is started with.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The meta servers' addresses.
    pub meta: Vec<String>,
    /// Where the replicas' data lives.
    pub data_dir: PathBuf,
    /// The beacon interval to use until the meta server hands out its own.
    pub initial_beacon_interval: Duration,
    /// Disk faults a test injects (none in production).
    pub faults: Arc<Faults>,
    /// The page cache each replica's store may keep, in bytes.
    pub store_cache_bytes: usize,
}

impl ReplicaConfig {
    /// A configuration with no injected faults and the default store cache.
    pub fn new(meta: Vec<String>, data_dir: PathBuf, initial_beacon_interval: Duration) -> Self {
        ReplicaConfig {
            meta,
            data_dir,
            initial_beacon_interval,
            faults: Arc::default(),
            store_cache_bytes: storage::DEFAULT_CACHE_BYTES,
        }
    }
}

/// A running replica: its worker's queue, what it publishes, its I/O thread.
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
    io: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Handle {
    /// Sends a message to the replica's worker.
    pub fn send(&self, msg: Msg) -> Result<()> {
        self.tx.send(msg).map_err(|_| {
            Error::Unavailable(format!("the replica of {} is closed", self.shared.gpid))
        })
    }

    /// What the worker publishes.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }
}

/// A replica server.
pub struct Replica {
    node: Arc<Node>,
    dir: NodeDir,
    started: Instant,
    started_ms: u64,
    replicas: Mutex<BTreeMap<Gpid, Arc<Handle>>>,
    /// The I/O threads of replicas deleted, until they are done removing their files:
    /// a replica opened again first waits for its old thread.
    closing: Mutex<BTreeMap<Gpid, std::thread::JoinHandle<()>>>,
    /// The page cache each replica's store may keep, in bytes.
    store_cache_bytes: usize,
    /// Early beacons and the stop of beacons.
    beacon_control: leave::BeaconControl,
    /// Set when the server stops: peers' prepare streams end (after their prepares in
    /// flight are answered), so the server's graceful stop is not held open by them.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Replica {
    /// The node's address: its name in the cluster.
    pub fn address(&self) -> &str {
        self.node.address()
    }

    /// What the replicas share.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Fires when the server stops serving.
    pub fn stopping(&self) -> crate::server::ShutdownSignal {
        self.stopping.subscribe()
    }

    /// The data directory's identity.
    pub fn incarnation(&self) -> &str {
        self.dir.incarnation()
    }

    /// Early beacons and the stop of beacons (see [`leave::BeaconControl`]).
    pub fn beacon_control(&self) -> &leave::BeaconControl {
        &self.beacon_control
    }

    /// Free space on the data directory's disk, in bytes.
    pub fn disk_free(&self) -> u64 {
        self.dir.free_bytes()
    }

    /// How long the server has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The snapshot copy budget.
    pub fn limiter(&self) -> &limiter::CopyLimiter {
        &self.node.limiter
    }

    /// The disk faults tests inject.
    pub fn faults(&self) -> &Faults {
        &self.node.faults
    }

    /// The running replica of `gpid`.
    pub fn handle(&self, gpid: Gpid) -> Result<Arc<Handle>> {
        self.replicas
            .lock()
            .expect("replicas")
            .get(&gpid)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("this node holds no replica of {gpid}")))
    }

    /// Every replica this node runs.
    pub fn held_gpids(&self) -> Vec<Gpid> {
        self.replicas
            .lock()
            .expect("replicas")
            .keys()
            .copied()
            .collect()
    }

    /// Replicas holding verified data (the embedded cluster waits on this).
    pub fn held(&self) -> usize {
        self.reports()
            .iter()
            .filter(|r| r.data == pb::ReplicaData::Valid as i32)
            .count()
    }

    /// The directory replica `gpid`'s files live in.
    pub fn replica_dir(&self, gpid: Gpid) -> PathBuf {
        self.dir.replica_dir(gpid)
    }

    /// Opens replica `gpid` (replaying its log, off the runtime), unless it runs.
    pub async fn open(self: &Arc<Self>, gpid: Gpid) -> Result<Arc<Handle>> {
        if let Ok(handle) = self.handle(gpid) {
            return Ok(handle);
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.open_blocking(gpid))
            .await
            .map_err(|e| Error::Internal(format!("opening {gpid} failed: {e}")))
    }

    fn open_blocking(&self, gpid: Gpid) -> Arc<Handle> {
        if let Ok(handle) = self.handle(gpid) {
            return handle;
        }
        // A copy deleted a moment ago may still be removing its directory: opening
        // before it is done would hand the new copy's files to that removal.
        let old = self.closing.lock().expect("closing").remove(&gpid);
        if let Some(old) = old {
            let _ = old.join();
        }
        let shared = Arc::new(Shared::new(gpid));
        let (tx, rx) = mpsc::unbounded_channel();
        let dir = self.dir.replica_dir(gpid);
        let (io, recovered) = io::Io::open(
            gpid,
            dir,
            shared.clone(),
            self.node.faults.clone(),
            self.store_cache_bytes,
            tx.clone(),
        );
        let now = self.node.now_ms();
        let core = Core::new(
            gpid,
            self.address(),
            self.node.core_config.clone(),
            recovered,
            now,
        );
        let (io_tx, io_thread) = io::spawn(io);
        let handle = Arc::new(Handle {
            tx: tx.clone(),
            shared: shared.clone(),
            io: Mutex::new(Some(io_thread)),
        });
        let node = self.node.clone();
        tokio::runtime::Handle::current().spawn(worker::run(core, node, shared, io_tx, tx, rx));
        self.replicas
            .lock()
            .expect("replicas")
            .insert(gpid, handle.clone());
        handle
    }

    /// Closes replica `gpid` and deletes its files (nothing needs it any more).
    pub fn delete(&self, gpid: Gpid) {
        let handle = self.replicas.lock().expect("replicas").remove(&gpid);
        if let Some(handle) = handle {
            tracing::info!(%gpid, "replica deleted as garbage");
            let _ = handle.send(Msg::Delete);
            if let Some(io) = handle.io.lock().expect("io").take() {
                let mut closing = self.closing.lock().expect("closing");
                closing.retain(|_, t| !t.is_finished());
                closing.insert(gpid, io);
            }
        }
    }

    /// What every replica reports (for the beacon).
    pub fn reports(&self) -> Vec<pb::ReplicaReport> {
        let handles: Vec<Arc<Handle>> = self
            .replicas
            .lock()
            .expect("replicas")
            .values()
            .cloned()
            .collect();
        handles.iter().map(|h| h.shared.report()).collect()
    }

    /// `replica.kill_partition`: deletes replicas (all, a table's, or one partition's)
    /// and keeps a marker that they were lost; returns the gpids.
    pub fn kill_partitions(&self, app_id: Option<u32>, pidx: Option<u32>) -> Vec<Gpid> {
        let handles: Vec<(Gpid, Arc<Handle>)> = self
            .replicas
            .lock()
            .expect("replicas")
            .iter()
            .filter(|(g, _)| {
                app_id.is_none_or(|a| g.app_id == a) && pidx.is_none_or(|p| g.pidx == p)
            })
            .map(|(g, h)| (*g, h.clone()))
            .collect();
        for (gpid, handle) in &handles {
            tracing::warn!(%gpid, "replica.kill_partition: deleting the replica");
            let _ = handle.send(Msg::Step(Input::Kill));
        }
        handles.into_iter().map(|(g, _)| g).collect()
    }

    /// Stops every replica and waits for their I/O threads (their files closed).
    pub async fn close_all(&self) {
        let handles: Vec<Arc<Handle>> =
            std::mem::take(&mut *self.replicas.lock().expect("replicas"))
                .into_values()
                .collect();
        for h in &handles {
            let _ = h.send(Msg::Stop);
        }
        let mut threads: Vec<_> = handles
            .iter()
            .filter_map(|h| h.io.lock().expect("io").take())
            .collect();
        threads.extend(std::mem::take(&mut *self.closing.lock().expect("closing")).into_values());
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    /// The `server-info` reply.
    pub fn server_info(&self) -> Value {
        let reports = self.reports();
        let primaries = reports
            .iter()
            .filter(|r| r.role == pb::ReplicaRole::Primary as i32)
            .count();
        let learned = self.node.learned();
        let totals = self.node.learn_totals();
        json!({
            "error": "ok",
            "role": "replica-server",
            "version": env!("CARGO_PKG_VERSION"),
            "address": self.address(),
            "incarnation": self.incarnation(),
            "start_time": format_ms(self.started_ms),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "serving": self.node.lease_valid(),
            "replica_count": reports.len(),
            "primary_count": primaries,
            "max_copy_rate_megabytes_per_disk": self.node.limiter.rate_mb(),
            "last_learned_bytes": learned.map_or(0, |l| l.0),
            "last_learned_seconds": learned.map_or(0.0, |l| l.1),
            "learned_snapshots": totals.snapshots,
            "learned_snapshot_bytes": totals.bytes,
            "learned_from_log": totals.from_log,
            "learned_base_files": totals.base_files,
            "learned_on_copy_links": totals.copy_links,
        })
    }
}

/// Starts a replica server on `listener`; its address in the cluster is the listener's.
/// Refuses (changing nothing) if another process holds `data_dir`.
pub async fn start(
    config: ReplicaConfig,
    listener: TcpListener,
) -> Result<(ServerHandle, Arc<Replica>)> {
    let address = listener.local_addr()?.to_string();
    if config.meta.is_empty() {
        return Err(Error::InvalidInput("a replica server needs --meta".into()));
    }
    let data_dir = config.data_dir.clone();
    let dir = tokio::task::spawn_blocking(move || NodeDir::open(&data_dir))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let held = dir.held()?;
    let meta = MetaClient::new(&config.meta, META_TIMEOUT)?;
    let node = Arc::new(Node::new(
        address,
        meta,
        config.faults.clone(),
        CoreConfig {
            resend_ms: 1000,
            ..CoreConfig::default()
        },
    ));
    let replica = Arc::new(Replica {
        node,
        dir,
        started: Instant::now(),
        started_ms: now_ms(),
        replicas: Mutex::new(BTreeMap::new()),
        closing: Mutex::new(BTreeMap::new()),
        store_cache_bytes: config.store_cache_bytes,
        beacon_control: leave::BeaconControl::default(),
        stopping: tokio::sync::watch::Sender::new(false),
    });
    // Held replicas are recovered before serving: a secondary must answer prepares as
    // soon as it is back. Their roles come with the first beacon reply.
    for gpid in held {
        replica.open(gpid).await?;
    }
    let timeout = config.initial_beacon_interval * 2 / 3;
    let client = MetaClient::new(&config.meta, timeout.max(Duration::from_millis(50)))?;
    let service = service::ReplicaService::new(replica.clone());
    let data = data_service::DataService::new(replica.clone());
    let router = crate::server::builder()
        .add_service(pb::cli_server::CliServer::new(service))
        .add_service(
            pb::replica_server::ReplicaServer::new(data)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        );
    let beacon_replica = replica.clone();
    let presence_replica = replica.clone();
    let presence_client = MetaClient::new(&config.meta, META_TIMEOUT)?;
    let stop_replica = replica.clone();
    let interval = config.initial_beacon_interval;
    let tickets = replica.node().copy_tickets.clone();
    let door = crate::server::SideDoor {
        selects: copy_link::is_link,
        serve: Arc::new(move |link| {
            let tickets = tickets.clone();
            tokio::spawn(async move { copy_link::accept(&tickets, link).await });
        }),
    };
    let handle = ServerHandle::start_with_door(router, listener, Some(door), move |signal| {
        let stop_signal = signal.clone();
        vec![
            tokio::spawn(presence::run(
                presence_replica,
                presence_client,
                signal.clone(),
            )),
            tokio::spawn(beacon::run(beacon_replica, client, interval, signal)),
            tokio::spawn(async move {
                crate::server::stopped(stop_signal).await;
                stop_replica.stopping.send_replace(true);
                stop_replica.close_all().await;
            }),
        ]
    })?;
    tracing::info!(address = replica.address(), "replica server serving");
    Ok((handle, replica))
}
