//! The embedded cluster behind `shell --local [N] [--metas M]`: one meta server (or a group
//! of M, for rehearsing Databend's and Doris's meta-server procedures) and N replica
//! servers in this process, on loopback ports, with data in a temporary directory (or
//! `--data-dir`, where the chosen ports are remembered so a restart keeps node names).
//! It creates the table `temp` and is ready once every node is ALIVE, `temp` is healthy
//! and every node holds its assignments. Tests use it as their in-process cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::meta::config::MetaConfig;
use crate::model::{AppStatus, HealthCounts};
use crate::replica::faults::Faults;
use crate::replica::{Replica, ReplicaConfig};
use crate::server::{ServerHandle, bind};

mod metas;
use metas::LocalMeta;

/// How the embedded cluster is timed: faster than production so that a stopped node turns
/// UNALIVE within seconds, yet with the same grace > lease > beacon ordering.
pub fn local_meta_config(nodes: usize) -> MetaConfig {
    MetaConfig {
        beacon_interval: Duration::from_millis(500),
        lease: Duration::from_millis(4000),
        grace: Duration::from_millis(5000),
        lb_interval: Duration::from_millis(1000),
        action_timeout: Duration::from_secs(60),
        min_live_node_count_for_unfreeze: nodes.clamp(1, 3) as u32,
        ..MetaConfig::default()
    }
}

/// One replica server of the embedded cluster.
struct LocalNode {
    address: String,
    data_dir: PathBuf,
    faults: Arc<Faults>,
    running: Option<(ServerHandle, Arc<Replica>)>,
}

/// The addresses an embedded cluster in a data directory used, so a restart reuses them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ports {
    /// The meta server's address (the first member's, for a group).
    pub meta: String,
    /// Every member's address, for a group (in id order).
    #[serde(default)]
    pub metas: Vec<String>,
    /// The replica servers' addresses, in start order.
    pub replicas: Vec<String>,
}

/// A running embedded cluster.
pub struct LocalCluster {
    meta: Option<(ServerHandle, Arc<Meta>)>,
    meta_addr: String,
    metas: Vec<LocalMeta>,
    config: MetaConfig,
    nodes: Vec<LocalNode>,
    beacon: Duration,
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
}

impl LocalCluster {
    /// Starts a meta server and `n` replica servers under `data_dir` (a temporary
    /// directory if `None`).
    pub async fn start(
        n: usize,
        data_dir: Option<&Path>,
        config: MetaConfig,
    ) -> Result<LocalCluster> {
        LocalCluster::start_on(n, data_dir, config, None).await
    }

    /// Pegasus's default addresses for a cluster of `n` replica servers (meta
    /// 127.0.0.1:34601, replica servers 127.0.0.1:34801 and up), if every one is free now.
    pub fn pegasus_ports_if_free(n: usize) -> Option<Ports> {
        let meta = "127.0.0.1:34601".to_string();
        let replicas: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", 34801 + i)).collect();
        let free = std::iter::once(&meta)
            .chain(&replicas)
            .all(|a| std::net::TcpListener::bind(a).is_ok());
        free.then_some(Ports {
            meta,
            metas: Vec::new(),
            replicas,
        })
    }

    /// Like [`LocalCluster::start`], on `preferred` addresses when given (ports a
    /// `--data-dir` remembers win).
    pub async fn start_on(
        n: usize,
        data_dir: Option<&Path>,
        config: MetaConfig,
        preferred: Option<Ports>,
    ) -> Result<LocalCluster> {
        LocalCluster::start_group_on(n, 1, data_dir, config, preferred).await
    }

    /// Like [`LocalCluster::start_on`] with `metas` meta servers: more than one makes a
    /// group (member 1 starts it, the others join).
    pub async fn start_group_on(
        n: usize,
        metas: usize,
        data_dir: Option<&Path>,
        config: MetaConfig,
        preferred: Option<Ports>,
    ) -> Result<LocalCluster> {
        let (tmp, root) = match data_dir {
            Some(dir) => (None, dir.to_path_buf()),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("ballast-local-")
                    .tempdir()?;
                let root = tmp.path().to_path_buf();
                (Some(tmp), root)
            }
        };
        std::fs::create_dir_all(&root)?;
        let ports_file = root.join("local.json");
        let remembered: Option<Ports> = std::fs::read(&ports_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .or(preferred);
        let meta_listen = remembered
            .as_ref()
            .map_or("127.0.0.1:0".to_string(), |p| p.meta.clone());
        let beacon = config.beacon_interval;
        let mut cluster = LocalCluster {
            meta: None,
            meta_addr: String::new(),
            metas: Vec::new(),
            config: config.clone(),
            nodes: Vec::new(),
            beacon,
            _tmp: tmp,
            root: root.clone(),
        };
        if metas <= 1 {
            let listener = bind(&meta_listen).await?;
            let (handle, meta) = crate::meta::start(config, &root.join("meta"), listener).await?;
            cluster.meta_addr = handle.addr().to_string();
            cluster.meta = Some((handle, meta));
        } else {
            for id in 1..=metas as u64 {
                let listen = remembered
                    .as_ref()
                    .and_then(|p| p.metas.get(id as usize - 1).cloned())
                    .unwrap_or_else(|| "127.0.0.1:0".to_string());
                cluster.start_member(id, &listen).await?;
            }
            cluster.meta_addr = cluster.metas[0].address.clone();
        }
        for i in 0..n {
            let listen = remembered
                .as_ref()
                .and_then(|p| p.replicas.get(i).cloned())
                .unwrap_or_else(|| "127.0.0.1:0".to_string());
            cluster
                .add_node_at(&listen, root.join(format!("replica-{}", i + 1)))
                .await?;
        }
        cluster.remember_ports()?;
        Ok(cluster)
    }

    fn remember_ports(&self) -> Result<()> {
        let ports = Ports {
            meta: self.meta_addr.clone(),
            metas: self.metas.iter().map(|m| m.address.clone()).collect(),
            replicas: self.nodes.iter().map(|n| n.address.clone()).collect(),
        };
        let bytes =
            serde_json::to_vec_pretty(&ports).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(self.root.join("local.json"), bytes)?;
        Ok(())
    }

    async fn add_node_at(&mut self, listen: &str, data_dir: PathBuf) -> Result<String> {
        let listener = bind(listen).await?;
        let faults = Arc::new(Faults::default());
        let config = ReplicaConfig {
            faults: faults.clone(),
            ..ReplicaConfig::new(self.meta_addrs(), data_dir.clone(), self.beacon)
        };
        let (handle, replica) = crate::replica::start(config, listener).await?;
        let address = handle.addr().to_string();
        self.nodes.push(LocalNode {
            address: address.clone(),
            data_dir,
            faults,
            running: Some((handle, replica)),
        });
        Ok(address)
    }

    /// Starts one more replica server on a new loopback port.
    pub async fn add_node(&mut self) -> Result<String> {
        let dir = self.root.join(format!("replica-{}", self.nodes.len() + 1));
        let address = self.add_node_at("127.0.0.1:0", dir).await?;
        self.remember_ports()?;
        Ok(address)
    }

    /// The meta server's address (the first member's, for a group).
    pub fn meta_addr(&self) -> &str {
        &self.meta_addr
    }

    /// Every meta server's address (one, or every member of the group).
    pub fn meta_addrs(&self) -> Vec<String> {
        if self.metas.is_empty() {
            vec![self.meta_addr.clone()]
        } else {
            self.metas.iter().map(|m| m.address.clone()).collect()
        }
    }

    /// The replica servers' addresses, in start order.
    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// The disk faults injected into node `address` (tests).
    pub fn faults(&self, address: &str) -> Option<Arc<Faults>> {
        self.nodes
            .iter()
            .find(|n| n.address == address)
            .map(|n| n.faults.clone())
    }

    /// The running replica server at `address` (tests).
    pub fn replica(&self, address: &str) -> Option<Arc<Replica>> {
        self.nodes
            .iter()
            .find(|n| n.address == address)
            .and_then(|n| n.running.as_ref().map(|(_, r)| r.clone()))
    }

    /// The in-process meta state acted on (the group leader's), for inspection.
    pub fn meta(&self) -> Option<Arc<Meta>> {
        if let Some((_, meta)) = &self.meta {
            return Some(meta.clone());
        }
        self.metas
            .iter()
            .filter_map(|m| m.running.as_ref())
            .find_map(|(_, holder)| holder.meta().ok())
    }

    /// Where the servers of `shell --local` log (`local logs` shows its tail).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("cluster.log")
    }

    /// The cluster's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops a replica server at once, as a crash would, and returns once the meta server
    /// no longer counts it as beaconing (so a following `wait healthy` sees it gone).
    pub async fn stop_node(&mut self, address: &str) -> Result<()> {
        let node = self.node_mut(address)?;
        let Some((handle, replica)) = node.running.take() else {
            return Err(Error::Refused(format!("node {address} is already stopped")));
        };
        handle.shutdown().await;
        // The replicas' files stay open until the node's last task lets go of it; a
        // restart in this process must find them closed.
        wait_until(
            Instant::now() + Duration::from_secs(10),
            "the stopped node's tasks to end",
            || std::sync::Arc::strong_count(&replica) == 1,
        )
        .await?;
        drop(replica);
        let Some(meta) = self.meta() else {
            return Ok(());
        };
        let silent = self.beacon * 2;
        wait_until(
            Instant::now() + silent * 4,
            "the meta server to miss the node's beacons",
            || {
                let nodes = meta.lock().list_nodes(Instant::now());
                nodes
                    .iter()
                    .any(|n| n.address == address && n.last_beacon_ago > silent)
            },
        )
        .await
    }

    /// Starts a stopped replica server again on the same address and data.
    pub async fn start_node(&mut self, address: &str) -> Result<()> {
        let (meta_addrs, beacon) = (self.meta_addrs(), self.beacon);
        let node = self.node_mut(address)?;
        if node.running.is_some() {
            return Err(Error::Refused(format!("node {address} is already running")));
        }
        let listener = bind(address).await?;
        let config = ReplicaConfig {
            faults: node.faults.clone(),
            ..ReplicaConfig::new(meta_addrs, node.data_dir.clone(), beacon)
        };
        node.running = Some(crate::replica::start(config, listener).await?);
        Ok(())
    }

    fn node_mut(&mut self, address: &str) -> Result<&mut LocalNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.address == address)
            .ok_or_else(|| Error::NotFound(format!("{address} is not a node of the local cluster")))
    }

    /// Waits until every running node has beaconed and counts as serving (its presence
    /// stream open), or `deadline`.
    pub async fn wait_all_serving(&self, deadline: Instant) -> Result<()> {
        let meta = self.await_meta(deadline).await?;
        let running = self.nodes.iter().filter(|n| n.running.is_some()).count();
        wait_until(deadline, "every node to beacon", || {
            meta.lock()
                .list_nodes(Instant::now())
                .iter()
                .filter(|n| n.alive && n.reported && n.serving)
                .count()
                >= running
        })
        .await
    }

    /// Creates `name` (if missing) once every node is ALIVE, then waits until it is
    /// healthy and every running node holds what it is assigned.
    pub async fn create_table_and_wait(
        &self,
        name: &str,
        partitions: u32,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let meta = self.await_meta(deadline).await?;
        self.wait_all_serving(deadline).await?;
        let running = self.nodes.iter().filter(|n| n.running.is_some()).count();
        let replicas = running.clamp(1, 3) as u32;
        meta.lock()
            .create_app(name, partitions, replicas, false, Default::default())?;
        wait_until(
            deadline,
            &format!("table {name} to be healthy on every node"),
            || {
                let state = meta.lock();
                let Ok(app) = state.app_by_name(name) else {
                    return false;
                };
                let healthy = app.record.status == AppStatus::Available
                    && HealthCounts::of(&app.partitions, app.record.max_replica_count, |m| {
                        state.is_alive(m)
                    })
                    .unhealthy
                        == 0;
                healthy
                    && self
                        .nodes
                        .iter()
                        .filter_map(|n| n.running.as_ref())
                        .all(|(_, r)| r.held() == state.assignments(r.address()).len())
            },
        )
        .await
    }

    /// Stops everything and waits for it to end.
    pub async fn shutdown(mut self) {
        for node in &mut self.nodes {
            if let Some((handle, _)) = node.running.take() {
                handle.shutdown().await;
            }
        }
        if let Some((handle, _)) = self.meta.take() {
            handle.shutdown().await;
        }
        for member in &mut self.metas {
            if let Some((handle, _)) = member.running.take() {
                handle.shutdown().await;
            }
        }
    }

    /// The meta state acted on, waiting for a group to have a leader.
    async fn await_meta(&self, deadline: Instant) -> Result<Arc<Meta>> {
        wait_until(deadline, "a meta server to lead", || self.meta().is_some()).await?;
        self.meta()
            .ok_or_else(|| Error::Unavailable("no meta server leads".into()))
    }
}

/// Polls `done` every 20 ms until it holds or `deadline` passes.
pub async fn wait_until(
    deadline: Instant,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
