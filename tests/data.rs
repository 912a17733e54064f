//! The data plane end to end, through real `meta-server` and `replica-server` processes:
//! acknowledged writes survive the loss of a primary, a new node learns its replicas'
//! data (it serves them once made primary), a primary whose lease ran out stops
//! serving, a 20 s `ballast-bench kill-test --wipe --kill-meta` loses nothing, and the learning,
//! catch-up and primary-move benchmarks run and report (a node back after seconds down
//! copies nothing). In process: one partition's stalled disk
//! holds up nothing but that partition's writes; an atomic write retried under its
//! request id is applied once, also at a new primary; a replica deleted and opened
//! again at once keeps the new copy's files.

use std::process::Command;
use std::time::{Duration, Instant};

use ballast::client::{DataClient, MetaClient};
use ballast::pb;

use crate::scale::ProcCluster;
use crate::util::{TestCluster, wait_node_status};

const BENCH: &str = env!("CARGO_BIN_EXE_ballast-bench");

/// (pidx, primary, secondaries) of every partition of `app`.
pub(crate) fn configs(c: &ProcCluster, app: &str) -> Vec<(u64, String, Vec<String>)> {
    let json = c.json(&format!("app {app} -d -j"));
    json["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let secondaries = r["secondaries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            (
                r["pidx"].as_u64().unwrap(),
                r["primary"].as_str().unwrap_or_default().to_string(),
                secondaries,
            )
        })
        .collect()
}

pub(crate) fn assert_all_readable(c: &ProcCluster, n: usize) {
    let gets: String = (0..n).map(|i| format!("get k{i} s\n")).collect();
    let run = c.script(&format!("use t\n{gets}"));
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), n, "{out}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("\"v{i}\""), "key k{i}");
    }
}

#[test]
fn acknowledged_writes_survive_failover_and_learned_replicas_serve_them() {
    // Four nodes, so that losing one leaves enough ALIVE not to freeze.
    let mut c = ProcCluster::start(4);
    c.script("create t -p 4 -r 3\nwait healthy --timeout 30\n")
        .ok();
    let sets: String = (0..60).map(|i| format!("set k{i} s v{i}\n")).collect();
    c.script(&format!("use t\n{sets}")).ok();
    // Lose the primary of partition 0: a secondary takes over with every write.
    let victim = configs(&c, "t")[0].1.clone();
    c.stop(&victim);
    wait_node_status(c.meta(), &victim, "UNALIVE", Duration::from_secs(15));
    assert_all_readable(&c, 60);
    // The lost replicas are learned (snapshot + log) by the spare node; then a new node
    // learns its share as the balancer copies replicas to it.
    c.script(
        "remote_command -t meta-server meta.lb.assign_delay_ms 10\n\
         wait healthy --timeout 60\n",
    )
    .ok();
    let new = c.add_replica();
    c.script("set_meta_level lively\nwait balanced --timeout 60\n")
        .ok();
    let run = c.script(&format!(
        "remote_command -l {new} nfs.max_copy_rate_megabytes_per_disk 100\n\
         remote_command -l {new} server-info\n"
    ));
    let out = run.ok();
    assert!(
        out.contains("\"max_copy_rate_megabytes_per_disk\": 100"),
        "{out}"
    );
    let learned: u64 = out
        .split("\"last_learned_bytes\": ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(learned > 0, "the new node learned data: {out}");
    // Make the new node primary wherever it holds a replica: its data must be whole.
    // (At steady, so the balancer does not even the primaries out again.)
    c.script("set_meta_level steady\n").ok();
    let app_id = c.json("app t -j")["general"]["app_id"].as_u64().unwrap();
    let mut moved = 0;
    for (pidx, primary, secondaries) in configs(&c, "t") {
        if secondaries.contains(&new) {
            c.script(&format!(
                "balance -g {app_id}.{pidx} -p move_pri -f {primary} -t {new}\n"
            ))
            .ok();
            moved += 1;
        }
    }
    assert!(moved > 0, "the new node received replicas");
    let deadline = Instant::now() + Duration::from_secs(30);
    while configs(&c, "t").iter().filter(|p| p.1 == new).count() < moved {
        assert!(Instant::now() < deadline, "primaries did not move to {new}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_all_readable(&c, 60);
    let nodes = c.json("nodes -d -j");
    let row = nodes["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == new.as_str())
        .unwrap()
        .clone();
    assert!(row["disk_usage"].as_u64().unwrap() > 0, "{row}");
}

#[test]
fn a_primary_whose_lease_ran_out_stops_serving() {
    let mut c = ProcCluster::start(3);
    c.script("create t -p 1 -r 3\nwait healthy --timeout 30\nuse t\nset k s v\n")
        .ok();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = rt.enter();
    let meta = MetaClient::new(&[c.meta().to_string()], Duration::from_secs(2)).unwrap();
    let data = DataClient::new(meta, Duration::from_millis(300));
    let found = rt.block_on(data.get("t", b"k", &[b"s".to_vec()])).unwrap();
    assert_eq!(found[0].value, b"v", "serves with a lease");
    let app_id = c.json("app t -j")["general"]["app_id"].as_u64().unwrap() as u32;
    let primary = configs(&c, "t")[0].1.clone();
    // Without the meta server no beacon is acknowledged: the lease (800 ms) runs out.
    c.meta.kill();
    let channel = ballast::client::channel(&primary, Duration::from_secs(1)).unwrap();
    let mut direct = pb::replica_client::ReplicaClient::new(channel);
    let request = pb::ReadRequest {
        app_id,
        pidx: 0,
        hash_key: b"k".to_vec(),
        sort_keys: vec![b"s".to_vec()],
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        match rt.block_on(direct.read(request.clone())) {
            Err(status) if status.message().contains("lease") => break status,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the primary kept serving");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("lease of this node ran out"),
        "{refused:?}"
    );
}

/// Runs `ballast-bench ARGS`, killing it if it outlives `limit`; returns (success,
/// stdout, stderr).
fn bench(args: &[&str], limit: Duration) -> (bool, String, String) {
    let child = Command::new(BENCH)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The bench gives itself deadlines; this one catches a bench that hangs anyway.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("ballast-bench {args:?} did not finish within {limit:?}");
        }
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number after `label` in `line`.
fn number_after(line: &str, label: &str) -> f64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        + label.len();
    line[at..]
        .split_whitespace()
        .next()
        .and_then(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
}

#[test]
fn a_20s_kill_test_with_wiped_disks_partition_and_meta_kills_loses_nothing() {
    // The killer's choices follow the seed; only how many steps fit in 20 s depends on the
    // machine. Seed 15's first three steps are a partition kill, a restart on an emptied
    // data directory and a kill -9 of a meta server of the group of three.
    let (ok, stdout, stderr) = bench(
        &[
            "kill-test",
            "--duration",
            "20s",
            "--wipe",
            "--kill-meta",
            "--seed",
            "15",
        ],
        Duration::from_secs(240),
    );
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(ok, "{stdout}\n{stderr}");
    assert!(last.starts_with("kill-test passed:"), "{last}");
    let learning = stdout.lines().rev().nth(1).unwrap_or_default();
    assert!(
        learning.starts_with("kill-test learning")
            && learning.contains("base files copied whole")
            && learning.contains("on copy links"),
        "{learning}"
    );
    assert!(last.ends_with("lost = 0"), "{last}");
    let count = |label: &str| number_after(&last, label) as u64;
    assert_eq!(count("wrong"), 0, "{last}");
    assert!(count("writes acknowledged") > 0, "{last}");
    assert!(count("meta kills") > 0, "{last}");
    assert!(count("kills") > 0 && count("wipes") > 0, "{last}");
    assert!(count("partition kills") > 0, "{last}");
}

#[test]
fn the_learning_benchmark_copies_the_replica_and_reports_it_beside_dd() {
    let (ok, stdout, stderr) = bench(
        &["learn", "--size-mb", "8", "--value-size", "500"],
        Duration::from_secs(180),
    );
    assert!(ok, "{stdout}\n{stderr}");
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{stdout}"))
            .to_string()
    };
    // what, MB, seconds, MB/s, x dd
    let learn = row("learn (snapshot+log)");
    let learned_mb = number_after(&learn, "learn (snapshot+log)");
    assert!(learned_mb >= 8.0, "the whole replica is copied: {learn}");
    let cols: Vec<f64> = learn
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(cols.len(), 4, "{learn}");
    assert!(cols[1] > 0.0 && cols[2] > 0.0 && cols[3] > 0.0, "{learn}");
    let dd = row("dd conv=fdatasync");
    assert!(dd.trim_end().ends_with("1.00"), "{dd}");
}

#[test]
fn a_node_back_after_seconds_down_under_writes_catches_up_from_the_log() {
    let (ok, stdout, stderr) = bench(
        &[
            "catch-up",
            "--size-mb",
            "32",
            "--down",
            "3s",
            "--partitions",
            "4",
            "--writers",
            "2",
        ],
        Duration::from_secs(180),
    );
    assert!(ok, "{stdout}\n{stderr}");
    let mut lines = stdout.lines();
    lines
        .find(|l| l.starts_with("replicas "))
        .unwrap_or_else(|| panic!("no table:\n{stdout}"));
    let row: Vec<f64> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches('%').parse().ok())
        .collect();
    // replicas, from_log, snapshots, copied_MB, held_MB, copied/held. 8 MB per partition:
    // logs are trimmed (at 2 MB) while the node is down; without the kept log and the
    // learner's matching entry this copied 96% of the node's data.
    assert_eq!(row.len(), 6, "{stdout}");
    assert!(row[0] >= 1.0, "the killed node held replicas: {stdout}");
    assert_eq!(
        row[1], row[0],
        "every replica caught up from the log: {stdout}"
    );
    assert_eq!((row[2], row[3]), (0.0, 0.0), "nothing copied: {stdout}");
    let down = number_after(&stdout, "while down:");
    assert!(
        down > 0.0,
        "writes went on while the node was down: {stdout}"
    );
}

#[test]
fn the_primary_move_benchmark_measures_stalls_and_loses_nothing() {
    let (ok, stdout, stderr) = bench(
        &[
            "move-pri",
            "--moves",
            "2",
            "--baseline",
            "1s",
            "--settle",
            "500ms",
        ],
        Duration::from_secs(180),
    );
    assert!(ok, "{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("move-pri passed:"), "{last}");
    assert!(last.ends_with("lost = 0"), "{last}");
    let worst = number_after(&last, "worst stall");
    assert!(worst > 0.0, "{last}");
    // A move must not cost a data client's whole timeout (10 s): writes resume.
    assert!(worst < 10_000.0, "{last}");
    assert!(number_after(&last, "writes acknowledged") > 0.0, "{last}");
    assert_eq!(
        stdout
            .lines()
            .filter(
                |l| l.contains(" -> ") && l.trim_start().starts_with(|c: char| c.is_ascii_digit())
            )
            .count(),
        2,
        "one row per move:\n{stdout}"
    );
}

#[test]
fn kill_test_rejects_a_bad_duration() {
    let out = Command::new(BENCH)
        .args(["kill-test", "--duration", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

/// One hash key in each of `count` partitions, by pidx.
pub(crate) fn keys_by_partition(count: u32) -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; count as usize];
    for i in 0.. {
        let key = format!("k{i}");
        let pidx = ballast::data::partition_index(key.as_bytes(), b"", count) as usize;
        keys[pidx].get_or_insert(key);
        if keys.iter().all(Option::is_some) {
            return keys.into_iter().flatten().collect();
        }
    }
    unreachable!()
}

/// Every replica server keeps one prepare stream open to each peer it replicates to. A
/// server that stops gracefully ends the streams its peers opened to it rather than wait
/// for them (its stop hung before), and the others go on taking writes.
#[test]
fn a_server_stops_gracefully_while_its_peers_hold_prepare_streams_open_to_it() {
    let mut c = TestCluster::start(4, true);
    let keys = keys_by_partition(8);
    let write_all = |c: &TestCluster, value: &[u8]| {
        c.block_on(async {
            let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
            let data = DataClient::new(client, Duration::from_secs(30));
            for key in &keys {
                data.set(
                    "temp",
                    key.as_bytes(),
                    &[(b"s".to_vec(), value.to_vec())],
                    0,
                )
                .await
                .unwrap();
            }
        })
    };
    // Writes to every partition open the streams between every pair of servers.
    write_all(&c, b"1");
    let node = c.cluster().node_addrs()[0].clone();
    // Fails (instead of hanging) if the stop is held open.
    c.stop_node(&node);
    write_all(&c, b"2");
}

/// A client that opens a `Calls` stream, asks for more than every buffer between it and the
/// server holds, and then never reads its answers does not hold the server's stop open:
/// the stream's answers wait for a reader that never comes (HTTP/2 flow control), and the
/// stop used to wait for them for ever.
#[test]
fn a_server_stops_in_time_while_a_client_holds_a_stream_it_does_not_read() {
    use ballast::pb::tagged_call::Call;
    let mut c = TestCluster::start(3, true);
    let key = keys_by_partition(8)[0].clone();
    let (app_id, primary) = {
        let meta = c.cluster().meta().unwrap().clone();
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        (
            app.record.app_id,
            app.partitions[0].primary.clone().unwrap(),
        )
    };
    let replica = c.cluster().replica(&primary).unwrap();
    let reads_served = move || -> u64 {
        let sample = replica.node().stats.sample();
        sample.get(&app_id).map_or(0, |ops| {
            ["get", "multi_get"]
                .iter()
                .filter_map(|op| ops.get(*op))
                .map(|c| c.count)
                .sum()
        })
    };
    let (stream, calls_tx) = c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        let data = DataClient::new(client, Duration::from_secs(30));
        let big = vec![7u8; 1 << 20];
        data.set("temp", key.as_bytes(), &[(b"s".to_vec(), big)], 0)
            .await
            .unwrap();
        let mut raw = pb::replica_client::ReplicaClient::connect(format!("http://{primary}"))
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let calls = (0..64)
            .map(|id| pb::TaggedCall {
                id,
                call: Some(Call::Read(pb::ReadRequest {
                    app_id,
                    pidx: 0,
                    hash_key: key.as_bytes().to_vec(),
                    sort_keys: vec![b"s".to_vec()],
                })),
            })
            .collect();
        tx.send(pb::CallBatch { calls }).await.unwrap();
        let stream = raw
            .calls(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (stream, tx)
    });
    // 64 MB of answers, and the client reads none of them.
    crate::util::wait_for(
        "the server to serve the 64 reads",
        Duration::from_secs(20),
        || (reads_served() >= 64).then_some(()),
    );
    // The stop waits for the server's last reference to the node to go.
    drop(reads_served);
    let started = Instant::now();
    c.stop_node(&primary);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "the stop took {took:?}");
    drop((stream, calls_tx));
}

#[test]
fn with_one_partitions_disk_stalled_beacons_reads_and_other_partitions_still_answer() {
    let c = TestCluster::start(3, true);
    let cluster = c.cluster();
    let meta = cluster.meta().unwrap().clone();
    let keys = keys_by_partition(8);
    let (gpid, primary) = {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        let primary = app.partitions[0].primary.clone().unwrap();
        (ballast::model::Gpid::new(app.record.app_id, 0), primary)
    };
    let faults = cluster.faults(&primary).unwrap();
    c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        let data = std::sync::Arc::new(DataClient::new(client, Duration::from_secs(30)));
        let sort = [b"s".to_vec()];
        let value = |v: &str| vec![(b"s".to_vec(), v.as_bytes().to_vec())];
        for k in &keys {
            data.set("temp", k.as_bytes(), &value("before"), 0)
                .await
                .unwrap();
        }
        // Three grace periods (1 s each) with partition 0's I/O on its primary stuck.
        let stall = Duration::from_secs(3);
        let start = Instant::now();
        faults.stall(gpid, stall);
        let stalled = {
            let data = data.clone();
            let key = keys[0].clone();
            tokio::spawn(async move { data.set("temp", key.as_bytes(), &value("during"), 0).await })
        };
        let answer = Duration::from_secs(1);
        let mut rounds = 0;
        while start.elapsed() < stall - Duration::from_millis(500) {
            for k in &keys[1..] {
                tokio::time::timeout(answer, data.set("temp", k.as_bytes(), &value("during"), 0))
                    .await
                    .expect("another partition's write answers")
                    .unwrap();
            }
            let read = tokio::time::timeout(answer, data.get("temp", keys[0].as_bytes(), &sort))
                .await
                .expect("the stalled partition still serves reads")
                .unwrap();
            assert_eq!(
                read[0].value, b"before",
                "an unacknowledged write is not read"
            );
            let node = meta
                .lock()
                .list_nodes(Instant::now())
                .into_iter()
                .find(|n| n.address == primary)
                .unwrap();
            assert!(node.alive, "the stalled node keeps beaconing");
            assert!(node.last_beacon_ago < answer, "{:?}", node.last_beacon_ago);
            rounds += 1;
        }
        assert!(rounds >= 2, "only {rounds} rounds in the stall");
        assert!(
            !stalled.is_finished(),
            "a write is not acknowledged before it is durable"
        );
        let decree = tokio::time::timeout(Duration::from_secs(20), stalled)
            .await
            .expect("the write completes once the disk moves again")
            .unwrap()
            .unwrap();
        assert!(decree > 0);
        for k in &keys {
            let read = data.get("temp", k.as_bytes(), &sort).await.unwrap();
            assert_eq!(read[0].value, b"during", "{k}");
        }
    });
}

/// A replica deleted as garbage and assigned back at once: the old copy's I/O thread,
/// still stuck in a log write when the delete came, removes its directory when it gets
/// to the delete — which must not take the new copy's files with it.
#[test]
fn a_replica_opened_again_right_after_its_delete_keeps_the_new_copys_files() {
    let c = TestCluster::start(3, true);
    let cluster = c.cluster();
    let meta = cluster.meta().unwrap().clone();
    let key = keys_by_partition(8)[0].clone();
    let (gpid, node) = {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        let node = app.partitions[0].secondaries[0].clone();
        (ballast::model::Gpid::new(app.record.app_id, 0), node)
    };
    let replica = cluster.replica(&node).unwrap();
    let faults = cluster.faults(&node).unwrap();
    let log_dir = replica.replica_dir(gpid).join("log");
    c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        let data = std::sync::Arc::new(DataClient::new(client, Duration::from_secs(30)));
        // The secondary's I/O thread gets stuck in the log write of a new write.
        let stall = Duration::from_millis(1500);
        faults.stall(gpid, stall);
        let stuck_until = Instant::now() + stall;
        let key2 = key.clone();
        let write = {
            let data = data.clone();
            tokio::spawn(async move {
                data.set("temp", key.as_bytes(), &[(b"s".to_vec(), b"v".to_vec())], 0)
                    .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !faults.is_stalling(gpid) {
            assert!(
                Instant::now() < deadline,
                "the log write never reached the I/O thread"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        replica.delete(gpid);
        replica.open(gpid).await.unwrap();
        // Whatever the new copy found or made on disk when it opened is its own: past the
        // stall the old I/O thread reaches its delete, and must already have done it.
        let existed = log_dir.exists();
        while Instant::now() < stuck_until + Duration::from_millis(1500) {
            assert!(
                !existed || log_dir.exists(),
                "the old copy's delete removed the new copy's files"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The write goes through, and is read back.
        tokio::time::timeout(Duration::from_secs(30), write)
            .await
            .expect("the write completes")
            .unwrap()
            .unwrap();
        let read = data
            .get("temp", key2.as_bytes(), &[b"s".to_vec()])
            .await
            .unwrap();
        assert_eq!(read[0].value, b"v");
    });
}

/// A write is answered once committed, while its apply may still run: a read that
/// comes after the answer waits for the apply and sees the write, and an atomic write's
/// outcome is the applied one.
#[test]
fn a_read_right_after_a_write_answered_before_its_apply_sees_the_write() {
    use pb::atomic_result::Outcome;
    let c = TestCluster::start(3, true);
    let meta = c.cluster().meta().unwrap().clone();
    let key = keys_by_partition(8)[0].clone();
    let (gpid, primary) = {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        let primary = app.partitions[0].primary.clone().unwrap();
        (ballast::model::Gpid::new(app.record.app_id, 0), primary)
    };
    let faults = c.cluster().faults(&primary).unwrap();
    c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        let data = DataClient::new(client, Duration::from_secs(30));
        let slow = Duration::from_millis(1500);
        faults.slow_applies(gpid, slow);
        let started = Instant::now();
        data.set("temp", key.as_bytes(), &[(b"s".to_vec(), b"v".to_vec())], 0)
            .await
            .unwrap();
        let answered = started.elapsed();
        assert!(
            answered < slow / 2,
            "the write waited for its apply: answered after {answered:?}"
        );
        let read = data
            .get("temp", key.as_bytes(), &[b"s".to_vec()])
            .await
            .unwrap();
        assert_eq!(read.len(), 1, "the read missed the answered write");
        assert_eq!(read[0].value, b"v");
        let incr = |delta| data.atomic("temp", key.as_bytes(), b"n", pb::atomic::Op::Incr(delta));
        assert_eq!(incr(5).await.unwrap(), Outcome::IncrValue(5));
        assert_eq!(
            incr(2).await.unwrap(),
            Outcome::IncrValue(7),
            "an atomic write's outcome is the applied one"
        );
    });
}

/// An `incr` retried under its request id — while the first attempt is still in flight,
/// after it was applied, and at a new primary after the old one stopped — is applied once,
/// and every retry is answered with the first outcome.
#[test]
fn an_atomic_write_retried_under_its_request_id_is_applied_once_even_at_a_new_primary() {
    use pb::atomic_result::Outcome;
    let mut c = TestCluster::start(4, true);
    let meta = c.cluster().meta().unwrap().clone();
    let key = keys_by_partition(8)[0].clone();
    let (app_id, gpid, primary) = {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        let primary = app.partitions[0].primary.clone().unwrap();
        let id = app.record.app_id;
        (id, ballast::model::Gpid::new(id, 0), primary)
    };
    let faults = c.cluster().faults(&primary).unwrap();
    let data = c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        DataClient::new(client, Duration::from_secs(30))
    });
    let incr = |seq: u64, delta: i64| pb::WriteRequest {
        app_id,
        pidx: 0,
        mutations: vec![pb::Mutation {
            hash_key: key.as_bytes().to_vec(),
            sort_key: b"n".to_vec(),
            atomic: Some(pb::Atomic {
                op: Some(pb::atomic::Op::Incr(delta)),
                ..Default::default()
            }),
            ..Default::default()
        }],
        request: Some(pb::RequestId {
            client: 4242,
            seq,
            acked_below: 0,
        }),
    };
    let send = |req: pb::WriteRequest| {
        data.on_partition("temp", 0, move |mut c, _, _| {
            let req = req.clone();
            async move { c.write(req).await }
        })
    };
    let value = |r: &pb::WriteReply| r.result.clone().and_then(|r| r.outcome);
    let first = c.block_on(async {
        faults.stall(gpid, Duration::from_millis(800));
        let (a, b) = tokio::join!(send(incr(1, 5)), send(incr(1, 5)));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(value(&a), Some(Outcome::IncrValue(5)));
        assert_eq!(
            (a.decree, value(&a)),
            (b.decree, value(&b)),
            "a retry in flight"
        );
        let again = send(incr(1, 5)).await.unwrap();
        assert_eq!(
            (again.decree, value(&again)),
            (a.decree, value(&a)),
            "after apply"
        );
        a
    });
    c.stop_node(&primary);
    c.block_on(async {
        let moved = send(incr(1, 5)).await.unwrap();
        assert_eq!(
            (moved.decree, value(&moved)),
            (first.decree, value(&first)),
            "a retry at the new primary gets the first outcome"
        );
        let read = data
            .get("temp", key.as_bytes(), &[b"n".to_vec()])
            .await
            .unwrap();
        assert_eq!(read[0].value, b"5", "applied once");
        let next = send(incr(2, 1)).await.unwrap();
        assert_eq!(value(&next), Some(Outcome::IncrValue(6)));
    });
}

/// `app_stat` and `server_stat` report the traffic of their sample interval: rates of
/// the kinds sent, none of the kinds not sent, and a p99 for what was timed.
#[test]
fn app_stat_and_server_stat_count_the_requests_of_the_interval() {
    let c = TestCluster::start(3, true);
    let data = c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        std::sync::Arc::new(DataClient::new(client, Duration::from_secs(10)))
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (data, stop) = (data.clone(), stop.clone());
        let runtime = c.block_on(async { tokio::runtime::Handle::current() });
        runtime.spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("k{}", i % 64);
                let pair = vec![(b"s".to_vec(), b"v".to_vec())];
                data.set("temp", key.as_bytes(), &pair, 0).await.unwrap();
                data.get("temp", key.as_bytes(), &[b"s".to_vec()])
                    .await
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    let app = c.exec("app_stat -a temp -i 700 -j").json();
    let nodes = c.exec("server_stat -i 700 -j").json();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = c.block_on(traffic).unwrap();
    assert!(sent > 20, "only {sent} writes");
    let temp = &app["app_stat"][0];
    assert_eq!(temp["app_name"], "temp");
    for kind in ["put", "get"] {
        let qps = temp[format!("{kind}_qps")].as_f64().unwrap();
        assert!(qps > 5.0, "{kind}_qps {qps}: {app}");
        let p99 = temp[format!("{kind}_p99(ms)")].as_f64().unwrap();
        assert!(p99 > 0.0, "{kind} p99: {app}");
    }
    assert_eq!(temp["incr_qps"].as_f64(), Some(0.0), "nothing else counted");
    assert_eq!(temp["multi_put_p99(ms)"], serde_json::Value::Null);
    assert_eq!(
        app["app_stat"][1]["put_qps"], temp["put_qps"],
        "the total row"
    );
    let rows = nodes["server_stat"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let puts: f64 = rows.iter().map(|r| r["put_qps"].as_f64().unwrap()).sum();
    assert!(puts > 5.0, "{nodes}");
}

/// Malformed requests to every server RPC (schema-aware, truncated, bit-flipped, random,
/// lying lengths, huge fields) crash no server: `ballast-bench fuzz-rpc`, short.
#[test]
fn malformed_requests_to_every_rpc_crash_no_server() {
    let (ok, out, err) = bench(
        &["fuzz-rpc", "--cases", "1500", "--seed", "3"],
        Duration::from_secs(120),
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("fuzz-rpc passed") && out.contains("crashes 0"),
        "{out}"
    );
    assert!(out.contains("cases tried 1500 over"), "{out}");
}

#[test]
fn meta_bench_reports_raft_beside_a_single_meta_server() {
    let (ok, stdout, stderr) = bench(&["meta-bench", "--ops", "5"], Duration::from_secs(120));
    assert!(ok, "{stdout}\n{stderr}");
    for op in ["create", "set_app_envs"] {
        for store in ["single", "raft-3-voters"] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(op) && l.contains(store))
                .unwrap_or_else(|| panic!("no {op} {store} row in {stdout}"));
            let p50: u64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!(p50 > 0, "{row}");
        }
    }
    assert!(stdout.contains("raft / single: create p50"), "{stdout}");
}

#[test]
fn meta_scale_places_every_replica_and_cures_a_dead_nodes_partitions() {
    let (ok, stdout, stderr) = bench(
        &[
            "meta-scale",
            "--nodes",
            "12",
            "--replicas",
            "120",
            "--beacon-ms",
            "200",
            "--window",
            "1s",
            "--runs",
            "1",
        ],
        Duration::from_secs(120),
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 tables x 40 partitions x 3 = 120 replicas"),
        "{stdout}"
    );
    let value = |prefix: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' line in {stdout}"));
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("beacons/s") > 0.0, "{stdout}");
    assert!(value("meta rss / peak (MB)") > 0.0, "{stdout}");
    assert!(
        value("shell nodes -d  median / worst (ms)") > 0.0,
        "{stdout}"
    );
    let death = stdout
        .lines()
        .find(|l| l.starts_with("node death: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(death.contains("all led again"), "{death}");
}

/// Bytes a directory's files take on disk: (store files, log segments).
fn disk_of(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut store, mut log) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().ends_with(".seg") {
                log += meta.blocks() * 512;
            } else {
                store += meta.blocks() * 512;
            }
        }
    }
    (store, log)
}

/// Once writes stop, each replica settles: its store is made durable, its log compacted
/// to a fresh segment, and its store file rewritten in key order — the table takes at
/// most 1.5 bytes of disk per byte of payload per replica (the goal), and every
/// record reads back.
#[test]
fn a_quiet_table_keeps_little_log_and_packed_stores() {
    let c = TestCluster::start(3, true);
    let cluster = c.cluster();
    let meta = cluster.meta().unwrap().clone();
    let dirs: Vec<std::path::PathBuf> = {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        app.partitions
            .iter()
            .enumerate()
            .flat_map(|(pidx, p)| {
                let gpid = ballast::model::Gpid::new(app.record.app_id, pidx as u32);
                p.primary
                    .iter()
                    .chain(&p.secondaries)
                    .map(|n| cluster.replica(n).unwrap().replica_dir(gpid))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(dirs.len(), 24);
    let (writers, each, value) = (16, 400, vec![b'v'; 1000]);
    fill_temp(&c, writers, each, &value);
    let payload: u64 = (0..writers)
        .flat_map(|w| (0..each).map(move |i| format!("w{w}_{i}").len() as u64 + 1 + 1000))
        .sum();
    // Settled: each log down to a fresh segment's preallocation, the stores packed.
    let (store, log) =
        crate::util::wait_for("the replicas to settle", Duration::from_secs(60), || {
            let (store, log) = dirs
                .iter()
                .map(|d| disk_of(d))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            let packed = (store + log) as f64 <= 1.5 * (3 * payload) as f64;
            (log <= 24 * 2 * (64 << 10) && packed).then_some((store, log))
        });
    eprintln!("settled: store {store}, log {log} for {payload} x 3");
    assert_temp_filled(&c, writers, each, &value);
}

/// Writes `writers` x `each` records of `value` to `temp` (hash key `w{w}_{i}`, sort
/// key `s`), the writers at once.
fn fill_temp(c: &TestCluster, writers: usize, each: usize, value: &[u8]) {
    c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        let data = std::sync::Arc::new(DataClient::new(client, Duration::from_secs(30)));
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (data, value) = (data.clone(), value.to_vec());
                tokio::spawn(async move {
                    for i in 0..each {
                        let key = format!("w{w}_{i}");
                        let record = vec![(b"s".to_vec(), value.clone())];
                        data.set("temp", key.as_bytes(), &record, 0).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Reads back every record [`fill_temp`] wrote.
fn assert_temp_filled(c: &TestCluster, writers: usize, each: usize, value: &[u8]) {
    c.block_on(async {
        let client = MetaClient::new(&[c.meta()], Duration::from_secs(5)).unwrap();
        let data = DataClient::new(client, Duration::from_secs(30));
        for w in 0..writers {
            for i in 0..each {
                let key = format!("w{w}_{i}");
                let read = data
                    .get("temp", key.as_bytes(), &[b"s".to_vec()])
                    .await
                    .unwrap();
                assert_eq!(read[0].value, value, "{key}");
            }
        }
    });
}

/// A settled replica folds into a base file, and a node that joins is given that file
/// byte for byte, then the writes and deletes over it; as primary it serves every
/// record and none that was deleted.
#[test]
fn a_joining_node_is_given_its_primarys_base_file_and_the_writes_over_it() {
    let mut c = TestCluster::start(3, true);
    // About 330 KB per partition: enough for a settled replica to fold.
    let (writers, each, value) = (8, 330, vec![b'b'; 1000]);
    fill_temp(&c, writers, each + 10, &value);
    let meta = c.cluster().meta().unwrap().clone();
    let app_id = meta.lock().app_by_name("temp").unwrap().record.app_id;
    let base_of = |c: &TestCluster, node: &str, pidx: u32| {
        let dir = c
            .cluster()
            .replica(node)?
            .replica_dir(ballast::model::Gpid::new(app_id, pidx));
        std::fs::read(dir.join(ballast::replica::base::BASE)).ok()
    };
    let primaries = || -> Vec<String> {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        app.partitions
            .iter()
            .map(|p| p.primary.clone().unwrap())
            .collect()
    };
    crate::util::wait_for(
        "every primary settled into a base file",
        Duration::from_secs(60),
        || {
            (primaries().iter().enumerate())
                .all(|(pidx, node)| base_of(&c, node, pidx as u32).is_some())
                .then_some(())
        },
    );
    // Over the bases: the last ten keys of each writer deleted, the first ten rewritten.
    let mut script = String::from("use temp\n");
    for w in 0..writers {
        for i in each..each + 10 {
            script.push_str(&format!("del w{w}_{i} s\n"));
        }
    }
    c.script(&script).ok();
    fill_temp(&c, writers, 10, &value);
    let bases: Vec<Vec<u8>> = (primaries().iter().enumerate())
        .map(|(pidx, node)| base_of(&c, node, pidx as u32).unwrap())
        .collect();

    let new = c.add_node();
    c.script("set_meta_level lively\nwait balanced --timeout 60\nset_meta_level steady\n")
        .ok();
    let held: Vec<(usize, String)> = {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        app.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.secondaries.contains(&new))
            .map(|(pidx, p)| (pidx, p.primary.clone().unwrap()))
            .collect()
    };
    assert!(!held.is_empty(), "the new node holds replicas");
    let learned = c.cluster().replica(&new).unwrap().node().learn_totals();
    assert!(
        learned.copy_links >= held.len() as u64 && learned.copy_links == learned.base_files,
        "every base file came on a copy link: {learned:?}"
    );
    for (pidx, _) in &held {
        let copied = base_of(&c, &new, *pidx as u32).expect("a base file");
        assert!(
            copied == bases[*pidx],
            "partition {pidx}: the same base file"
        );
    }
    for (pidx, primary) in &held {
        c.script(&format!(
            "balance -g {app_id}.{pidx} -p move_pri -f {primary} -t {new}\n"
        ))
        .ok();
    }
    crate::util::wait_for("the new node to lead them", Duration::from_secs(30), || {
        let state = meta.lock();
        let app = state.app_by_name("temp").unwrap();
        held.iter()
            .all(|(pidx, _)| app.partitions[*pidx].primary.as_deref() == Some(new.as_str()))
            .then_some(())
    });
    assert_temp_filled(&c, writers, each, &value);
    let mut gets = String::from("use temp\n");
    for w in 0..writers {
        gets.push_str(&format!("get w{w}_{each} s\nget w{w}_{} s\n", each + 9));
    }
    let out = c.script(&gets);
    assert_eq!(
        out.ok().matches("Not found").count(),
        2 * writers,
        "a deleted record came back: {}",
        out.stdout
    );
}
