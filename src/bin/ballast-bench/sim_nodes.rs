//! Simulated replica servers for `meta-scale`: lightweight clients in this process that
//! do what a replica server does towards the meta server and nothing else. Each beacons
//! at the interval the meta server gives, reporting every replica it is assigned (with
//! the assigned role and ballot, its data valid), holds a presence stream open (so a
//! killed one is seen the moment its stream ends) and beacons at once when asked on it.
//! What a primary would do after a learner caught up — ask the meta server to upgrade
//! it — the simulated learner asks on its primary's behalf at once (there is no data to
//! copy). Proposals (moves, downgrades) are ignored: the benchmark runs at `steady`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast::client::MetaClient;
use ballast::pb;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Nodes that share one connection to the meta server (a server allows a bounded number
/// of concurrent streams per connection, and each node holds one presence stream).
const NODES_PER_CONNECTION: usize = 50;

/// One simulated node's state.
struct Node {
    address: String,
    assignments: Mutex<Vec<pb::Assignment>>,
    /// (app, pidx, ballot) upgrades already asked for.
    asked: Mutex<HashSet<(u32, u32, i64)>>,
    kick: Notify,
}

/// A set of simulated replica servers, running until dropped or killed one by one.
pub struct SimNodes {
    nodes: Vec<Arc<Node>>,
    tasks: Vec<Vec<JoinHandle<()>>>,
    beacons: Arc<AtomicU64>,
}

impl SimNodes {
    /// Starts `n` nodes named `127.0.0.1:PORT` for ports from `first_port`, beaconing to
    /// `meta` (they never listen: the meta server only names them).
    pub fn start(meta: &[String], n: usize, first_port: u16) -> anyhow::Result<SimNodes> {
        let beacons = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut nodes = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        let mut client = None;
        for i in 0..n {
            if i % NODES_PER_CONNECTION == 0 {
                client = Some(MetaClient::new(meta, Duration::from_secs(10))?);
            }
            let client = client.clone().expect("made on the first node");
            let node = Arc::new(Node {
                address: format!("127.0.0.1:{}", u32::from(first_port) + i as u32),
                assignments: Mutex::new(Vec::new()),
                asked: Mutex::new(HashSet::new()),
                kick: Notify::new(),
            });
            // Spread the first beacons over a second, as servers started one by one.
            let offset = Duration::from_millis((i as u64 * 1000) / n.max(1) as u64);
            tasks.push(vec![
                tokio::spawn(beacon_loop(
                    node.clone(),
                    client.clone(),
                    beacons.clone(),
                    started,
                    offset,
                )),
                tokio::spawn(presence_loop(node.clone(), client)),
            ]);
            nodes.push(node);
        }
        Ok(SimNodes {
            nodes,
            tasks,
            beacons,
        })
    }

    /// Every node's address.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// Beacons answered so far, over all nodes.
    pub fn beacons(&self) -> u64 {
        self.beacons.load(Ordering::Relaxed)
    }

    /// Stops node `i` at once, as a `kill -9`: no more beacons, its presence stream ends.
    pub fn kill(&mut self, i: usize) {
        for task in self.tasks[i].drain(..) {
            task.abort();
        }
    }
}

impl Drop for SimNodes {
    fn drop(&mut self) {
        for task in self.tasks.iter().flatten() {
            task.abort();
        }
    }
}

/// What a node reports for its assignments.
fn reports(assignments: &[pb::Assignment]) -> Vec<pb::ReplicaReport> {
    assignments
        .iter()
        .map(|a| {
            let learner = a.role == pb::ReplicaRole::Learner as i32;
            pb::ReplicaReport {
                app_id: a.app_id,
                pidx: a.pidx,
                ballot: a.ballot,
                role: a.role,
                data: if learner {
                    pb::ReplicaData::Learning
                } else {
                    pb::ReplicaData::Valid
                } as i32,
                ..Default::default()
            }
        })
        .collect()
}

async fn beacon_loop(
    node: Arc<Node>,
    client: MetaClient,
    beacons: Arc<AtomicU64>,
    started: Instant,
    offset: Duration,
) {
    tokio::time::sleep(offset).await;
    let mut interval = Duration::from_secs(1);
    loop {
        let replicas = reports(&node.assignments.lock().unwrap_or_else(|p| p.into_inner()));
        let req = pb::BeaconRequest {
            address: node.address.clone(),
            replicas,
            uptime_ms: started.elapsed().as_millis() as u64,
            incarnation: format!("sim-{}", node.address),
            disk_free_bytes: 1 << 40,
        };
        if let Ok(reply) = client.beacon(req).await {
            beacons.fetch_add(1, Ordering::Relaxed);
            interval = Duration::from_millis(reply.beacon_interval_ms.max(10));
            upgrade_learners(&node, &client, &reply.assignments);
            *node.assignments.lock().unwrap_or_else(|p| p.into_inner()) = reply.assignments;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = node.kick.notified() => {}
        }
    }
}

/// Asks, once per learner and ballot, for the upgrade its primary would ask for.
fn upgrade_learners(node: &Arc<Node>, client: &MetaClient, assignments: &[pb::Assignment]) {
    for a in assignments {
        if a.role != pb::ReplicaRole::Learner as i32 || a.primary.is_empty() {
            continue;
        }
        let fresh = node
            .asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((a.app_id, a.pidx, a.ballot));
        if !fresh {
            continue;
        }
        let req = pb::UpdatePartitionRequest {
            app_id: a.app_id,
            pidx: a.pidx,
            ballot: a.ballot,
            from: a.primary.clone(),
            kind: pb::UpdateKind::UpgradeLearner as i32,
            node: node.address.clone(),
        };
        let client = client.clone();
        tokio::spawn(async move {
            let _ = client.update_partition(req).await;
        });
    }
}

async fn presence_loop(node: Arc<Node>, client: MetaClient) {
    loop {
        let req = pb::PresenceRequest {
            address: node.address.clone(),
            incarnation: format!("sim-{}", node.address),
        };
        if let Ok(mut stream) = client.presence(req).await {
            while let Ok(Some(event)) = stream.message().await {
                if event.beacon_now {
                    node.kick.notify_one();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
