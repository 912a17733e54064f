//! A replica server: holds replicas, beacons to the meta server, and answers remote
//! commands.
//!
//! - [`record`] keeps the held replicas on disk across restarts;
//! - [`lease`] decides whether the node may serve;
//! - [`beacon`] is the loop that registers, reports and learns assignments;
//! - [`service`] and [`remote_commands`] are the gRPC and `remote_command` adapters.

pub mod beacon;
pub mod lease;
pub mod record;
pub mod remote_commands;
pub mod service;
pub mod storage;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::client::MetaClient;
use crate::error::{Error, Result};
use crate::pb;
use crate::server::ServerHandle;
use crate::timeutil::{format_ms, now_ms};
use lease::Lease;
use record::ReplicaRecord;

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
    let replica = Arc::new(Replica {
        address,
        record: Mutex::new(record),
        lease: Mutex::new(Lease::default()),
        assignment_version: std::sync::atomic::AtomicU64::new(0),
        started: Instant::now(),
        started_ms: now_ms(),
    });
    let timeout = config.initial_beacon_interval * 2 / 3;
    let client = MetaClient::new(&config.meta, timeout.max(Duration::from_millis(50)))?;
    let service = service::ReplicaService::new(replica.clone());
    let router =
        tonic::transport::Server::builder().add_service(pb::cli_server::CliServer::new(service));
    let beacon_replica = replica.clone();
    let interval = config.initial_beacon_interval;
    let handle = ServerHandle::start(router, listener, move |signal| {
        vec![tokio::spawn(beacon::run(
            beacon_replica,
            client,
            interval,
            signal,
        ))]
    })?;
    tracing::info!(address = replica.address(), "replica server serving");
    Ok((handle, replica))
}
