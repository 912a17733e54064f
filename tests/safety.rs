//! The replica core's promises end to end, through real `meta-server` and
//! `replica-server` processes and the shell — each a defect an operator or reviewer hit:
//!
//! - a node restarted on an empty data directory inside the grace period is a new, empty
//!   node: no acknowledged write becomes unreadable;
//! - `replica.kill_partition` on one node of a restarted `--local` cluster loses nothing;
//! - a partition whose every replica is lost (Pegasus's DDD) is reported, refuses reads
//!   and writes with a message that says so, and waits for an operator's decision;
//! - a second `replica-server` on a running node's data directory refuses to start and
//!   changes nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::data::{assert_all_readable, configs, keys_by_partition};
use crate::scale::ProcCluster;
use crate::util::{REPLICA_SERVER, shell, wait_for};

/// `set k{i} s v{i}` for every i in `range`, after `use t` and a long data timeout.
fn sets(range: std::ops::Range<usize>) -> String {
    let mut script = String::from("use t\ntimeout 30000\n");
    for i in range {
        script.push_str(&format!("set k{i} s v{i}\n"));
    }
    script
}

#[test]
fn a_node_restarted_on_an_empty_data_dir_inside_the_grace_period_loses_nothing() {
    // A long grace period (4 s): the wiped node is back long before it could be declared
    // dead, as after a disk swap or an unmounted volume.
    let mut c = ProcCluster::start_timed(4, 3000, 4000);
    c.script("create t -p 8 -r 3\nwait healthy --timeout 30\n")
        .ok();
    c.script(&sets(0..200)).ok();
    let victim = configs(&c, "t")[0].1.clone();
    c.stop(&victim);
    std::fs::remove_dir_all(c.data_dir(&victim)).unwrap();
    c.restart(&victim);
    // Writes go on while the cluster sorts it out; every one is acknowledged.
    c.script(&sets(200..300)).ok();
    c.script("wait healthy --timeout 60\n").ok();
    assert_all_readable(&c, 300);
}

/// The nodes of the `--local` cluster kept in `dir`.
fn local_nodes(dir: &Path) -> Vec<String> {
    let ports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("local.json")).unwrap()).unwrap();
    ports["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn kill_partition_on_one_node_of_a_restarted_local_cluster_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut first = String::from("use temp\ntimeout 30000\n");
    for i in 0..200 {
        first.push_str(&format!("set k{i} s v{i}\n"));
    }
    shell(&["--local", "4", "--data-dir", data], Some(&first)).ok();
    let node = local_nodes(dir.path())[0].clone();
    let mut second = format!(
        "remote_command --yes -l {node} replica.kill_partition\n\
         use temp\ntimeout 30000\n"
    );
    for i in 0..200 {
        second.push_str(&format!("get k{i} s\n"));
    }
    second.push_str("wait healthy --timeout 60\ncount_data -c\n");
    let run = shell(&["--local", "4", "--data-dir", data], Some(&second));
    let out = run.ok();
    for i in 0..200 {
        assert!(
            out.contains(&format!("\"v{i}\"\n")),
            "k{i} lost after kill_partition on {node}:\n{out}\n{}",
            run.stderr
        );
    }
    let total = out
        .lines()
        .find(|l| l.starts_with("(total)"))
        .and_then(|l| l.split_whitespace().last());
    assert_eq!(total, Some("200"), "{out}");
}

#[test]
fn a_partition_that_lost_every_replica_waits_for_an_operator_and_says_so() {
    let c = ProcCluster::start(3);
    c.script("create t -p 2 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let keys = keys_by_partition(2);
    let (lost_key, kept_key) = (&keys[0], &keys[1]);
    c.script(&format!(
        "use t\nset {lost_key} s before\nset {kept_key} s kept\n"
    ))
    .ok();
    let app_id = c.json("app t -j")["general"]["app_id"].as_u64().unwrap();
    // The safety rail: deleting every replica of a partition is refused (exit 4, nothing
    // deleted) without --force, and in a script without --yes.
    let kill = format!("replica.kill_partition {app_id} 0");
    for flags in ["", "--yes", "--force"] {
        let refused = c.script(&format!(
            "remote_command {flags} -t replica-server {kill}\n"
        ));
        assert_eq!(refused.code, 4, "{flags}: {refused:?}");
    }
    assert_eq!(
        c.json("app t -d -j")["healthy"]["fully_healthy_partition_count"],
        2
    );
    c.script(&format!(
        "remote_command --yes --force -t replica-server {kill}\n"
    ))
    .ok();
    // The meta server reports the partition as having lost every replica...
    let gpid = format!("{app_id}.0");
    let ddd = wait_for(
        "the partition to be reported DDD",
        Duration::from_secs(20),
        || {
            let run = shell(&["--meta", c.meta(), "-e", "ddd_diagnose -j"], None);
            let json: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
            let rows = json["partitions"].as_array()?.clone();
            rows.iter()
                .any(|p| p["gpid"] == gpid.as_str())
                .then_some(json)
        },
    );
    assert!(ddd.to_string().contains("lost"), "{ddd}");
    // ...never rebuilds it empty and calls it healthy...
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let ls = c.json("ls -d -j");
        let row = &ls["healthy_info"][0];
        assert_eq!(row["fully_healthy"], 1, "{ls}");
        assert_eq!(row["read_unhealthy"], 1, "{ls}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let wait = c.script("wait healthy --timeout 1\n");
    assert_eq!(wait.code, 5, "{wait:?}");
    // ...and its reads and writes fail with a message that says why, not "not found".
    for cmd in [
        format!("get {lost_key} s"),
        format!("set {lost_key} s after"),
        "count_data -c".to_string(),
    ] {
        let run = c.script(&format!("use t\ntimeout 3000\n{cmd}\n"));
        assert_eq!(run.code, 1, "{cmd}: {run:?}");
        assert!(run.stderr.contains("lost every replica"), "{cmd}: {run:?}");
    }
    let other = c.script(&format!("use t\nget {kept_key} s\n"));
    assert!(other.ok().contains("\"kept\""), "{other:?}");
    // The operator decides: the partition comes back on the chosen node, empty, and the
    // shell says what was lost.
    let node = c.addrs()[0].clone();
    let force = c.script(&format!(
        "ddd_diagnose --force-primary {gpid} {node} --yes\n"
    ));
    assert!(force.ok().contains("may be lost"), "{force:?}");
    c.script("wait healthy --timeout 60\n").ok();
    let after = c.script(&format!(
        "use t\nset {lost_key} s again\nget {lost_key} s\n"
    ));
    assert!(after.ok().contains("\"again\""), "{after:?}");
}

/// Every file under `dir` with its contents.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_second_replica_server_on_a_running_nodes_data_dir_refuses_and_changes_nothing() {
    let c = ProcCluster::start(3);
    c.script("create t -p 4 -r 3\nwait healthy --timeout 30\n")
        .ok();
    c.script(&sets(0..20)).ok();
    let victim = c.addrs()[0].clone();
    let dir = c.data_dir(&victim);
    let before = tree(&dir);
    let started = Instant::now();
    let mut second = Command::new(REPLICA_SERVER)
        .args(["--listen", "127.0.0.1:0", "--meta", c.meta(), "--data-dir"])
        .arg(&dir)
        .args(["--beacon-interval-ms", "100"])
        .env_remove("BALLAST_META")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_for(
        "the second process to exit",
        Duration::from_secs(60),
        || match second.try_wait().unwrap() {
            Some(status) => Some(Some(status)),
            None if Instant::now() > started + Duration::from_secs(10) => {
                let _ = second.kill();
                Some(None)
            }
            None => None,
        },
    );
    let out = second.wait_with_output().unwrap();
    assert!(exited.is_some(), "the second process kept running");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second process ran: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(out.stdout.is_empty(), "it never listened");
    assert!(tree(&dir) == before, "the running node's files changed");
    let nodes = c.json("nodes -j");
    assert_eq!(nodes["details"].as_array().unwrap().len(), 3, "{nodes}");
    assert_all_readable(&c, 20);
}
