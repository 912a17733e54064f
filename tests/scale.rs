//! The operators' procedures end to end, through the real binaries and `shell < script`:
//! (a) scale out, (b) scale in, (c) auto-freeze and recovery, (d) node migration. (The
//! meta server restart that must not move anything until every node has reported is in
//! `binaries`.) Processes run with sub-second timings and an lb round every 100 ms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::util::{
    Proc, Run, shell, start_meta, start_meta_timed, start_replica, start_replica_on,
    wait_node_status,
};

/// A meta-server process and replica-server processes in a temporary directory.
pub(crate) struct ProcCluster {
    dir: tempfile::TempDir,
    pub(crate) meta: Proc,
    replicas: Vec<Option<Proc>>,
    addrs: Vec<String>,
}

impl ProcCluster {
    pub(crate) fn start(n: usize) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let meta = start_meta(dir.path(), "127.0.0.1:0");
        ProcCluster::with_meta(dir, meta, n)
    }

    /// A cluster whose meta server has the given lease and grace period (ms).
    pub(crate) fn start_timed(n: usize, lease_ms: u64, grace_ms: u64) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let meta = start_meta_timed(dir.path(), "127.0.0.1:0", lease_ms, grace_ms);
        ProcCluster::with_meta(dir, meta, n)
    }

    /// A cluster whose meta server hands out the given beacon interval, lease and grace
    /// period (ms).
    pub(crate) fn start_beaconing(
        n: usize,
        beacon_ms: u64,
        lease_ms: u64,
        grace_ms: u64,
    ) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::util::start_meta_beaconing(
            dir.path(),
            "127.0.0.1:0",
            beacon_ms,
            lease_ms,
            grace_ms,
        );
        ProcCluster::with_meta(dir, meta, n)
    }

    fn with_meta(dir: tempfile::TempDir, meta: Proc, n: usize) -> ProcCluster {
        let mut c = ProcCluster {
            dir,
            meta,
            replicas: Vec::new(),
            addrs: Vec::new(),
        };
        for _ in 0..n {
            c.add_replica();
        }
        c
    }

    pub(crate) fn meta(&self) -> &str {
        &self.meta.addr
    }

    /// The replica servers' addresses, in start order.
    pub(crate) fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The data directory of the replica server at `addr`.
    pub(crate) fn data_dir(&self, addr: &str) -> std::path::PathBuf {
        let i = self.addrs.iter().position(|a| a == addr).unwrap();
        self.dir.path().join(format!("replica-{}", i + 1))
    }

    pub(crate) fn add_replica(&mut self) -> String {
        let i = self.replicas.len() + 1;
        let p = start_replica(self.dir.path(), i, &self.meta.addr);
        let addr = p.addr.clone();
        wait_node_status(&self.meta.addr, &addr, "ALIVE", Duration::from_secs(15));
        self.replicas.push(Some(p));
        self.addrs.push(addr.clone());
        addr
    }

    pub(crate) fn stop(&mut self, addr: &str) {
        let i = self.addrs.iter().position(|a| a == addr).unwrap();
        self.replicas[i].take().expect("running").kill();
    }

    /// Stops the replica server at `addr` the planned way (SIGTERM) and waits for it.
    pub(crate) fn terminate(&mut self, addr: &str) {
        let i = self.addrs.iter().position(|a| a == addr).unwrap();
        let mut p = self.replicas[i].take().expect("running");
        p.terminate(Duration::from_secs(40));
    }

    pub(crate) fn restart(&mut self, addr: &str) {
        let i = self.addrs.iter().position(|a| a == addr).unwrap();
        let dir: &Path = self.dir.path();
        self.replicas[i] = Some(start_replica_on(dir, i + 1, &self.meta.addr, addr));
    }

    /// Runs `script` through `shell --meta ... < script`.
    pub(crate) fn script(&self, script: &str) -> Run {
        shell(&["--meta", &self.meta.addr], Some(script))
    }

    pub(crate) fn json(&self, command: &str) -> Value {
        shell(&["--meta", &self.meta.addr, "-e", command], None).json()
    }

    /// Members per partition of table `app`.
    fn placement(&self, app: &str) -> Vec<BTreeSet<String>> {
        let json = self.json(&format!("app {app} -d -j"));
        json["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut members: BTreeSet<String> = r["secondaries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                if let Some(p) = r["primary"].as_str() {
                    members.insert(p.to_string());
                }
                members
            })
            .collect()
    }

    /// (replicas, primaries) per node of table `app`, over `nodes` (0 if absent).
    fn counts(&self, app: &str, nodes: &[String]) -> BTreeMap<String, (u64, u64)> {
        let json = self.json(&format!("app {app} -d -j"));
        let mut counts: BTreeMap<String, (u64, u64)> =
            nodes.iter().map(|n| (n.clone(), (0, 0))).collect();
        for row in json["nodes"].as_array().unwrap() {
            let node = row["node"].as_str().unwrap().to_string();
            counts.insert(
                node,
                (
                    row["total"].as_u64().unwrap(),
                    row["primary"].as_u64().unwrap(),
                ),
            );
        }
        counts
    }
}

fn spread(values: impl Iterator<Item = u64> + Clone) -> u64 {
    values.clone().max().unwrap() - values.min().unwrap()
}

fn assert_balanced(c: &ProcCluster, app: &str, nodes: &[String]) {
    let counts = c.counts(app, nodes);
    assert!(
        spread(counts.values().map(|v| v.0)) <= 1,
        "replicas within 1: {counts:?}"
    );
    assert!(
        spread(counts.values().map(|v| v.1)) <= 1,
        "primaries within 1: {counts:?}"
    );
}

#[test]
fn a_scale_out_new_node_waits_at_steady_and_takes_its_share_at_lively() {
    let mut c = ProcCluster::start(3);
    c.script("create t -p 16 -r 3\n").ok();
    let new = c.add_replica();
    // At steady the balancer only counts what it would move.
    crate::util::wait_for(
        "the balancer to count moves at steady",
        Duration::from_secs(10),
        || {
            let info = c.json("cluster_info -j");
            (info["cluster_info"]["balance_operation_count"]["total"].as_i64() > Some(0))
                .then_some(())
        },
    );
    let nodes = c.json("nodes -d -j");
    let row = nodes["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == new.as_str())
        .unwrap();
    assert_eq!(
        (row["status"].as_str(), row["replica_count"].as_u64()),
        (Some("ALIVE"), Some(0))
    );
    let run =
        c.script("set_meta_level lively\nwait balanced --timeout 60\nset_meta_level steady\n");
    assert!(
        run.ok().contains("balanced: 16/16 partitions healthy"),
        "{run:?}"
    );
    assert_balanced(&c, "t", &c.addrs.clone());
}

#[test]
fn b_scale_in_drains_a_black_listed_node_and_places_nothing_on_another() {
    let mut c = ProcCluster::start(5);
    c.script("create t -p 10 -r 3\n").ok();
    let (leaving, staying) = (c.addrs[4].clone(), c.addrs[3].clone());
    let before = c.counts("t", &c.addrs.clone())[&staying].0;
    let setup = format!(
        "set_meta_level steady\n\
         remote_command -t meta-server meta.lb.assign_secondary_black_list {leaving},{staying}\n\
         remote_command -t meta-server meta.lb.assign_delay_ms 10\n"
    );
    c.script(&setup).ok();
    c.stop(&leaving);
    wait_node_status(c.meta(), &leaving, "UNALIVE", Duration::from_secs(10));
    let run = c.script("wait healthy --timeout 60\n");
    assert!(run.ok().contains("healthy: 10/10"), "{run:?}");
    let placement = c.placement("t");
    assert!(
        placement
            .iter()
            .all(|m| m.len() == 3 && !m.contains(&leaving)),
        "{placement:?}"
    );
    assert!(
        c.counts("t", &c.addrs.clone())[&staying].0 <= before,
        "nothing new on the other black-listed node"
    );
    let reset = "remote_command -t meta-server meta.lb.assign_delay_ms DEFAULT\n\
                 remote_command -t meta-server meta.lb.assign_secondary_black_list clear\n";
    c.script(reset).ok();
}

#[test]
fn c_losing_too_many_nodes_auto_freezes_and_recovery_unfreezes() {
    let mut c = ProcCluster::start(4);
    c.script("create t -p 8 -r 3\n").ok();
    let (a, b) = (c.addrs[0].clone(), c.addrs[1].clone());
    c.stop(&a);
    c.stop(&b);
    crate::util::wait_for("auto-freeze", Duration::from_secs(10), || {
        let run = shell(&["--meta", c.meta(), "-e", "get_meta_level"], None);
        run.stdout
            .contains("effective meta level is fl_freezed")
            .then_some(())
    });
    let info = c.json("cluster_info -j");
    assert_eq!(info["cluster_info"]["meta_function_level"], "freezed");
    assert_eq!(info["cluster_info"]["stored_meta_function_level"], "steady");
    let run = c.script("create t2\n");
    assert_eq!(run.code, 1, "DDL refused while frozen: {run:?}");
    let run = c.script("wait healthy --timeout 2\n");
    assert_eq!(run.code, 5, "no cure while frozen: {run:?}");
    c.restart(&a);
    c.restart(&b);
    let run = c.script("wait healthy --timeout 20\nget_meta_level\n");
    if run.code != 0 {
        eprintln!(
            "{}",
            shell(
                &["--meta", c.meta(), "-e", "app t -d; nodes -d; cluster_info"],
                None
            )
            .stdout
        );
    }
    let out = run.ok();
    assert!(
        out.contains("current meta level is fl_steady") && !out.contains("effective"),
        "{out}"
    );
}

#[test]
fn d_node_migration_copies_no_more_than_needed() {
    let mut c = ProcCluster::start(4);
    c.script("create t -p 12 -r 3\n").ok();
    let initial = c.placement("t");
    let added = c.add_replica();
    let leaving = c.addrs[0].clone();
    let lost = initial.iter().filter(|m| m.contains(&leaving)).count() as u64;
    let setup = format!(
        "remote_command -t meta-server meta.lb.assign_secondary_black_list {leaving}\n\
         remote_command -t meta-server meta.lb.assign_delay_ms 10\n"
    );
    c.script(&setup).ok();
    c.stop(&leaving);
    wait_node_status(c.meta(), &leaving, "UNALIVE", Duration::from_secs(10));
    c.script("wait healthy --timeout 60\n").ok();
    let nodes: Vec<String> = c.addrs.iter().filter(|a| **a != leaving).cloned().collect();
    // The lower bound of the balancing that remains after healing.
    let healed = c.counts("t", &nodes);
    let total: u64 = healed.values().map(|v| v.0).sum();
    let low = total / nodes.len() as u64;
    let bound: u64 = healed.values().map(|v| low.saturating_sub(v.0)).sum();
    let run =
        c.script("set_meta_level lively\nwait balanced --timeout 60\nset_meta_level steady\n");
    run.ok();
    let fin = c.placement("t");
    let copies: u64 = fin
        .iter()
        .zip(&initial)
        .map(|(f, i)| f.difference(i).count() as u64)
        .sum();
    assert!(
        copies <= lost + bound,
        "copies {copies} > lost {lost} + bound {bound}"
    );
    assert!(
        fin.iter().any(|m| m.contains(&added)),
        "the new node took replicas"
    );
    assert_balanced(&c, "t", &nodes);
}
