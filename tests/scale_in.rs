//! Scaling in safely, through the real binaries: the shell stops calling a crashed node's
//! partitions healthy at once (so Pegasus's scale-in script, run node after node, waits
//! for real), decommission under write load (two nodes at once, cancel), drop_node and
//! its rail, and a planned stop (SIGTERM) that moves primaries before leaving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ballast::client::{DataClient, MetaClient};
use serde_json::Value;

use crate::data::configs;
use crate::scale::ProcCluster;
use crate::util::{shell, wait_for};

/// A node's row in `nodes -a -j`.
fn node_row(c: &ProcCluster, addr: &str) -> Option<Value> {
    let json = c.json("nodes -a -d -j");
    json["details"]
        .as_array()?
        .iter()
        .find(|n| n["address"] == addr)
        .cloned()
}

/// Whether `ls -d` calls every partition fully healthy, as an operator's loop reads it.
fn ls_says_healthy(c: &ProcCluster) -> bool {
    let json = c.json("ls -d -j");
    json["summary"]["fully_healthy_app_count"] == json["summary"]["total_app_count"]
}

/// Members (primary first) of every partition of `app`.
fn members(c: &ProcCluster, app: &str) -> Vec<Vec<String>> {
    configs(c, app)
        .into_iter()
        .map(|(_, primary, secondaries)| {
            let primary = (!primary.is_empty()).then_some(primary);
            primary.into_iter().chain(secondaries).collect()
        })
        .collect()
}

/// A client writing `k0, k1, ...` to table `t` until stopped; returns the acknowledged
/// keys and the longest run of time during which writes failed.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<u64>, Duration)>,
}

impl Writer {
    fn start(meta: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let meta = meta.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = MetaClient::new(&[meta], Duration::from_secs(5)).unwrap();
                let data = DataClient::new(client, Duration::from_secs(10));
                let (mut acked, mut i) = (Vec::new(), 0u64);
                let (mut failing_since, mut worst) = (None::<Instant>, Duration::ZERO);
                while !flag.load(Ordering::Relaxed) {
                    let key = format!("k{i}");
                    let pair = (b"s".to_vec(), format!("v{i}").into_bytes());
                    match data.set("t", key.as_bytes(), &[pair], 0).await {
                        Ok(_) => {
                            if let Some(since) = failing_since.take() {
                                worst = worst.max(since.elapsed());
                            }
                            acked.push(i);
                            i += 1;
                        }
                        Err(_) => {
                            failing_since.get_or_insert_with(Instant::now);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (acked, worst)
            })
        });
        Writer { stop, thread }
    }

    fn finish(self) -> (Vec<u64>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Reads back every acknowledged key through one shell script.
fn assert_readable(c: &ProcCluster, acked: &[u64]) {
    assert!(!acked.is_empty(), "the writer got writes through");
    let mut script = String::from("use t\ntimeout 30000\n");
    for i in acked {
        script.push_str(&format!("get k{i} s\n"));
    }
    let out = c.script(&script);
    let values: Vec<&str> = out.ok().lines().collect();
    for (i, line) in acked.iter().zip(values.iter()) {
        assert_eq!(*line, format!("\"v{i}\""), "k{i} lost or wrong");
    }
    assert_eq!(values.len(), acked.len(), "every key answered");
}

#[test]
fn a_killed_replica_server_stops_counting_as_healthy_at_once() {
    // A 1.5 s beacon and a 10 s grace period: the node stays ALIVE for 10 s and its
    // beacons are not missed for 3 s, so only the lost connection can make the shell
    // tell the truth sooner.
    let mut c = ProcCluster::start_beaconing(3, 1_500, 8_000, 10_000);
    c.script("create t -p 4 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let victim = c.addrs()[0].clone();
    c.stop(&victim);
    wait_for(
        "the shell to stop calling it healthy",
        Duration::from_millis(2_500),
        || {
            let row = node_row(&c, &victim)?;
            (row["connection"] == "LOST" && !ls_says_healthy(&c)).then_some(())
        },
    );
    let row = node_row(&c, &victim).unwrap();
    assert_eq!(row["status"], "ALIVE", "still within the grace period");
    let app = c.json("app t -d -j");
    assert_eq!(app["healthy"]["fully_healthy_partition_count"], 0);
    let info = c.json("cluster_info -j");
    assert_eq!(info["cluster_info"]["serving_node_count"], 2);
    assert_eq!(info["cluster_info"]["unhealthy_partition_count"], 4);
    let run = c.script("wait healthy --timeout 1\n");
    assert_eq!(run.code, 5, "wait healthy does not pass: {run:?}");
    // Back on the same data: connected, and healthy again.
    c.restart(&victim);
    c.script("wait healthy --timeout 30\n").ok();
    assert_eq!(node_row(&c, &victim).unwrap()["connection"], "CONNECTED");
}

#[test]
fn the_pegasus_scale_in_script_on_two_nodes_one_after_the_other_loses_nothing() {
    // Six nodes: with two of them gone, 4 of 6 ALIVE stays above the 65% auto-freeze
    // threshold, as the procedure's first step checks.
    let mut c = ProcCluster::start(6);
    c.script("create t -p 8 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let writer = Writer::start(c.meta());
    let (a, b) = (c.addrs()[0].clone(), c.addrs()[1].clone());
    c.script(&format!(
        "set_meta_level steady\n\
         remote_command -t meta-server meta.lb.assign_secondary_black_list {a},{b}\n\
         remote_command -t meta-server meta.lb.assign_delay_ms 10\n"
    ))
    .ok();
    for node in [&a, &b] {
        c.stop(node);
        // The operator's loop: `ls -d` until every partition is fully healthy. The first
        // answer it trusts must already have the stopped node out of every partition.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ls_says_healthy(&c) {
            if Instant::now() > deadline {
                let why = shell(
                    &["--meta", c.meta(), "-e", "nodes -d; app t -d; cluster_info"],
                    None,
                );
                panic!(
                    "ls -d never said healthy after stopping {node}:\n{}",
                    why.stdout
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let placement = members(&c, "t");
        assert!(
            placement.iter().all(|m| m.len() == 3 && !m.contains(node)),
            "ls -d said healthy with {node} still a member: {placement:?}"
        );
    }
    let (acked, _) = writer.finish();
    assert_readable(&c, &acked);
}

/// Decommissions the last `leaving` of `nodes` replica servers under write load with
/// `--wait`: they end DECOMMISSIONED with nothing, every acknowledged write is readable,
/// and writes never fail for long. Once stopped, a decommissioned node leaves `nodes`.
fn decommission_under_load(nodes: usize, leaving: usize) {
    let mut c = ProcCluster::start(nodes);
    c.script("create t -p 8 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let writer = Writer::start(c.meta());
    let batch: Vec<String> = c.addrs()[nodes - leaving..].to_vec();
    let names = batch.join(" ");
    // Without --yes a script is refused, and nothing changes.
    let refused = c.script(&format!("decommission {names}\n"));
    assert_eq!(refused.code, 4, "{refused:?}");
    assert_eq!(node_row(&c, &batch[0]).unwrap()["state"], "NORMAL");
    let run = c.script(&format!(
        "decommission {names} --yes --wait --timeout 120\n"
    ));
    let out = run.ok();
    for node in &batch {
        assert!(out.contains(&format!("{node}: DECOMMISSIONED")), "{out}");
        let row = node_row(&c, node).unwrap();
        assert_eq!(row["state"], "DECOMMISSIONED");
        assert_eq!(row["replica_count"], 0, "{row}");
    }
    let placement = members(&c, "t");
    assert!(
        placement
            .iter()
            .all(|m| m.len() == 3 && batch.iter().all(|b| !m.contains(b))),
        "{placement:?}"
    );
    let (acked, worst) = writer.finish();
    assert!(
        worst < Duration::from_secs(5),
        "writes failed for {worst:?}"
    );
    assert_readable(&c, &acked);
    let status = c.json("decommission_status -j");
    assert_eq!(status["decommission"][0]["percent"], 100.0);
    c.stop(&batch[0]);
    wait_for(
        "the stopped node to leave `nodes`",
        Duration::from_secs(10),
        || {
            let listed = c.json("nodes -j").to_string().contains(&batch[0]);
            (!listed && node_row(&c, &batch[0])?["state"] == "DROPPED").then_some(())
        },
    );
}

#[test]
fn decommission_of_one_node_of_four_under_write_load_loses_nothing() {
    decommission_under_load(4, 1);
}

#[test]
fn decommission_of_two_nodes_at_once_under_write_load_loses_nothing() {
    decommission_under_load(5, 2);
}

#[test]
fn a_cancelled_decommission_returns_the_node_to_normal() {
    let c = ProcCluster::start(4);
    c.script("create t -p 16 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let a = c.addrs()[3].clone();
    let out = c.script(&format!(
        "decommission {a} --yes\ncancel_decommission {a}\n"
    ));
    assert!(
        out.ok()
            .contains(&format!("{a}: decommission cancelled; NORMAL")),
        "{out:?}"
    );
    assert_eq!(node_row(&c, &a).unwrap()["state"], "NORMAL");
    c.script("wait healthy --timeout 30\n").ok();
    let left = node_row(&c, &a).unwrap()["replica_count"].as_u64().unwrap();
    assert!(left > 0, "cancelled before its replicas were all moved");
}

#[test]
fn drop_node_forgets_a_dead_node_and_refuses_to_lose_a_last_replica_without_force() {
    let mut c = ProcCluster::start(3);
    c.script("create t -p 4 -r 1\nwait healthy --timeout 30\n")
        .ok();
    let victim = members(&c, "t")[0][0].clone();
    c.stop(&victim);
    crate::util::wait_node_status(c.meta(), &victim, "UNALIVE", Duration::from_secs(10));
    let refused = c.script(&format!("drop_node {victim} --yes\n"));
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.stderr.contains("last replica"), "{refused:?}");
    let out = c.script(&format!("drop_node {victim} --yes --force\n"));
    assert!(out.ok().contains("DROPPED by force"), "{out:?}");
    let nodes = c.json("nodes -j");
    assert!(
        !nodes.to_string().contains(&victim),
        "left `nodes`: {nodes}"
    );
    assert_eq!(node_row(&c, &victim).unwrap()["state"], "DROPPED");
    // Its old data directory is refused: it never comes back into `nodes`.
    c.restart(&victim);
    let run = shell(&["--meta", c.meta(), "-e", "sleep 1; nodes -j"], None);
    assert!(
        !run.ok().contains(&victim),
        "a dropped node's old directory is refused"
    );
    // Wiped, it joins as a new node.
    c.stop(&victim);
    std::fs::remove_dir_all(c.data_dir(&victim)).unwrap();
    c.restart(&victim);
    wait_for("the wiped node to join", Duration::from_secs(10), || {
        let row = node_row(&c, &victim)?;
        (row["state"] == "NORMAL" && row["status"] == "ALIVE").then_some(())
    });
}

#[test]
fn sigterm_moves_primaries_then_leaves_before_the_grace_period() {
    let mut c = ProcCluster::start_timed(4, 8_000, 10_000);
    c.script("create t -p 8 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let writer = Writer::start(c.meta());
    let victim = members(&c, "t")[0][0].clone();
    let stopped = Instant::now();
    c.terminate(&victim);
    let took = stopped.elapsed();
    // Out of every configuration long before the 10 s grace period.
    let placement = members(&c, "t");
    assert!(
        placement.iter().all(|m| !m.contains(&victim)),
        "{placement:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the planned stop took {took:?}"
    );
    let (acked, worst) = writer.finish();
    assert!(
        worst < Duration::from_secs(3),
        "writes failed for {worst:?}"
    );
    assert_readable(&c, &acked);
}
