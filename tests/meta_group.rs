//! Several meta servers as one group, with real processes: three members and four replica
//! servers under a table and a writer; kill -9 of the leader; a new leader serves the shell
//! within 5 s, keeps every table and every write acknowledged before, during and after,
//! and leases are renewed by whichever member leads. Then Databend's scale-out and
//! scale-in (a fourth member joins, leads, leaves) and Doris's observer; reads with
//! `--stale-ok` from any member (liveness unknown), also once the quorum is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{Proc, shell, start_meta_member, start_replica, wait_for};

fn status(metas: &str) -> serde_json::Value {
    shell(&["--meta", metas, "-e", "meta status -j"], None).json()
}

fn leader_of(status: &serde_json::Value) -> Option<u64> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["role"] == "leader")
        .and_then(|m| m["id"].as_u64())
}

fn alive(metas: &str) -> usize {
    let run = shell(&["--meta", metas, "-e", "nodes -j"], None);
    if run.code != 0 {
        return 0;
    }
    run.json()["summary"]["alive_node_count"]
        .as_u64()
        .unwrap_or(0) as usize
}

/// Starts a group of three meta servers in `dir` (1 with `--single`, 2 and 3 joining
/// through 1); returns them and their addresses as one `--meta` list.
fn start_three(dir: &std::path::Path) -> (Vec<Proc>, String) {
    let first = start_meta_member(dir, 1, None, false);
    let join = first.addr.clone();
    let mut metas = vec![first];
    for id in 2..=3 {
        metas.push(start_meta_member(dir, id, Some(&join), false));
    }
    let all = addresses(&metas);
    (metas, all)
}

fn addresses(metas: &[Proc]) -> String {
    metas
        .iter()
        .map(|p| p.addr.clone())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn three_meta_servers_fail_over_within_seconds_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut metas, all) = start_three(dir.path());
    let s = status(&all);
    assert_eq!(s["voters"], serde_json::json!([1, 2, 3]), "{s}");
    let _replicas: Vec<Proc> = (1..=4)
        .map(|i| start_replica(dir.path(), i, &all))
        .collect();
    wait_for("4 ALIVE nodes", Duration::from_secs(15), || {
        (alive(&all) == 4).then_some(())
    });
    shell(&["--meta", &all, "-e", "create t -p 8 -r 3"], None).ok();
    let writes: String = (0..40).map(|i| format!("set k{i} s v{i}\n")).collect();
    shell(&["--meta", &all], Some(&format!("use t\n{writes}"))).ok();

    // Runtime settings are held by every member: the next leader keeps them.
    shell(
        &[
            "--meta",
            &all,
            "-e",
            "set_meta_level lively; remote_command -t meta-server meta.lb.assign_delay_ms 12345",
        ],
        None,
    );
    // Under write load: a writer keeps setting keys through its own shells; what it saw
    // acknowledged must all read back after the failover.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, acked, all) = (stop.clone(), acked.clone(), all.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let cmd = format!("use t; set w{i} s x{i}");
                if shell(&["--meta", &all, "-e", &cmd], None).code == 0 {
                    acked.lock().unwrap().push(i);
                }
                i += 1;
            }
        })
    };
    wait_for("writes under way", Duration::from_secs(10), || {
        (acked.lock().unwrap().len() >= 5).then_some(())
    });
    let leader = leader_of(&status(&all)).expect("a leader");
    let started = Instant::now();
    metas[leader as usize - 1].kill();
    // A new leader serves nodes -d and DDL within 5 s.
    wait_for(
        "a new leader serving nodes -d",
        Duration::from_secs(5),
        || {
            let run = shell(&["--meta", &all, "-e", "nodes -d -j"], None);
            (run.code == 0).then_some(())
        },
    );
    shell(&["--meta", &all, "-e", "create t2 -p 4 -r 3"], None).ok();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failover took {:?}",
        started.elapsed()
    );
    let s = status(&all);
    let new_leader = leader_of(&s).expect("a new leader");
    assert_ne!(new_leader, leader, "{s}");
    // Every acknowledged write is still there, and the tables too.
    let reads: String = (0..40).map(|i| format!("get k{i} s\n")).collect();
    let out = shell(&["--meta", &all], Some(&format!("use t\n{reads}")));
    for i in 0..40 {
        assert!(
            out.ok().contains(&format!("\"v{i}\"")),
            "k{i} lost: {out:?}"
        );
    }
    let ls = shell(&["--meta", &all, "-e", "ls -j"], None).json();
    assert_eq!(ls["general_info"].as_array().unwrap().len(), 2, "{ls}");
    let level = shell(&["--meta", &all, "-e", "get_meta_level"], None);
    assert!(level.ok().contains("fl_lively"), "{level:?}");
    let leader_addr = metas[new_leader as usize - 1].addr.clone();
    let delay = shell(
        &[
            "--meta",
            &all,
            "-e",
            &format!("remote_command -l {leader_addr} meta.lb.assign_delay_ms"),
        ],
        None,
    );
    assert!(delay.ok().contains("12345"), "{delay:?}");
    let before = acked.lock().unwrap().len();
    wait_for("writes after the failover", Duration::from_secs(10), || {
        (acked.lock().unwrap().len() >= before + 5).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let reads: String = acked.iter().map(|i| format!("get w{i} s\n")).collect();
    let out = shell(&["--meta", &all], Some(&format!("use t\n{reads}")));
    for i in &acked {
        assert!(
            out.ok().contains(&format!("\"x{i}\"")),
            "w{i} lost: {out:?}"
        );
    }
    // The replica servers follow the new leader: all four stay ALIVE.
    wait_for(
        "4 ALIVE under the new leader",
        Duration::from_secs(10),
        || (alive(&all) == 4).then_some(()),
    );
}

#[test]
fn a_fourth_member_joins_leads_and_leaves_and_an_observer_never_votes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut metas, _) = start_three(dir.path());
    let join = metas[0].addr.clone();
    // Databend's scale-out: join a fourth through --join; it becomes a voter.
    metas.push(start_meta_member(
        dir.path(),
        4,
        Some(&metas[1].addr),
        false,
    ));
    let all = addresses(&metas);
    assert_eq!(status(&all)["voters"], serde_json::json!([1, 2, 3, 4]));
    // Transfer leadership to it, then make it leave: the group is three again.
    shell(&["--meta", &all, "-e", "meta transfer_leader --to 4"], None).ok();
    wait_for("4 to lead", Duration::from_secs(5), || {
        (leader_of(&status(&all)) == Some(4)).then_some(())
    });
    let refused = shell(&["--meta", &all, "-e", "meta leave 4"], None);
    assert_eq!(refused.code, 4, "a script must confirm: {refused:?}");
    shell(&["--meta", &all, "-e", "meta leave 4 --yes"], None).ok();
    wait_for("three voters", Duration::from_secs(5), || {
        (status(&all)["voters"] == serde_json::json!([1, 2, 3])).then_some(())
    });
    // Three voters: one more leaving would leave an even count.
    let even = shell(&["--meta", &all, "-e", "meta leave 3 --yes"], None);
    assert_eq!(even.code, 4, "{even:?}");
    assert!(even.stderr.contains("even"), "{even:?}");
    // Doris's observer: it replicates, never votes, and can be dropped.
    let observer = start_meta_member(dir.path(), 5, Some(&join), true);
    let s = status(&all);
    assert_eq!(s["learners"], serde_json::json!([5]), "{s}");
    assert_eq!(s["voters"], serde_json::json!([1, 2, 3]), "{s}");
    let obs = shell(&["--meta", &observer.addr, "-e", "meta status -j"], None).json();
    let row = obs["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == 5)
        .cloned()
        .unwrap();
    assert_eq!(row["role"], "learner", "{obs}");
    // It serves reads (stale ones: it is not the leader).
    let read = shell(
        &[
            "--meta",
            &observer.addr,
            "--stale-ok",
            "-e",
            "cluster_info -j",
        ],
        None,
    )
    .json();
    assert_eq!(read["stale_read"]["member_id"], 5, "{read}");
    shell(&["--meta", &all, "-e", "meta leave 5 --yes"], None).ok();
    wait_for("no learners", Duration::from_secs(5), || {
        (status(&all)["learners"] == serde_json::json!([])).then_some(())
    });
}

#[test]
fn local_rehearses_the_databend_procedure_with_a_group_of_meta_servers() {
    let script = "meta status -j\n\
                  local add_meta\n\
                  meta status -j\n\
                  local stop_meta 1\n\
                  nodes -j\n\
                  local start_meta 1\n\
                  meta transfer_leader --to 4\n\
                  get_meta_level\n\
                  meta leave 4 --yes\n\
                  meta status -j\n";
    let run = shell(&["--local", "3", "--metas", "3"], Some(script));
    let out = run.ok();
    assert!(out.contains("added meta server 4 at 127.0.0.1:"), "{out}");
    assert!(out.contains("stopped meta server 1"), "{out}");
    assert!(out.contains("started meta server 1"), "{out}");
    assert!(out.contains("meta server 4 leads"), "{out}");
    assert!(out.contains("meta server 4 left"), "{out}");
    assert!(out.contains("current meta level is"), "{out}");
    // The last status: three voters again, and 4's id is gone.
    let last = out.rfind("{\n  \"members\"").unwrap();
    let status: serde_json::Value = serde_json::from_str(&out[last..]).unwrap();
    assert_eq!(status["voters"], serde_json::json!([1, 2, 3]), "{out}");
    // nodes answered while member 1 was down.
    assert!(out.contains("\"alive_node_count\": 3"), "{out}");
}

#[test]
fn any_member_answers_reads_with_stale_ok_and_never_calls_a_node_alive() {
    let dir = tempfile::tempdir().unwrap();
    let (mut metas, all) = start_three(dir.path());
    let _replicas: Vec<Proc> = (1..=3)
        .map(|i| start_replica(dir.path(), i, &all))
        .collect();
    wait_for("3 ALIVE nodes", Duration::from_secs(15), || {
        (alive(&all) == 3).then_some(())
    });
    shell(&["--meta", &all, "-e", "create t -p 4 -r 3"], None).ok();
    let leader = leader_of(&status(&all)).expect("a leader");
    let follower = (1..=3u64).find(|id| *id != leader).unwrap();
    let addrs: Vec<String> = metas.iter().map(|p| p.addr.clone()).collect();
    let at = |id: u64| addrs[id as usize - 1].clone();
    let stale = |id: u64, verb: &str| shell(&["--meta", &at(id), "--stale-ok", "-e", verb], None);
    // Without --stale-ok a follower's address reaches the leader: liveness known.
    let fresh = shell(&["--meta", &at(follower), "-e", "nodes -j"], None).json();
    assert_eq!(fresh["summary"]["alive_node_count"], 3, "{fresh}");
    // With it, the follower answers itself, says so, and knows no liveness. It has the
    // table once it applied the create (it answers as of its own applied index).
    let ls = wait_for(
        "the follower to have the table",
        Duration::from_secs(5),
        || {
            let ls = stale(follower, "ls -d -j").json();
            (ls["general_info"].as_array().unwrap().len() == 1).then_some(ls)
        },
    );
    assert_eq!(ls["stale_read"]["member_id"], follower, "{ls}");
    assert_eq!(ls["stale_read"]["leader"], at(leader), "{ls}");
    assert!(
        ls["stale_read"]["applied_index"].as_u64().unwrap() > 0,
        "{ls}"
    );
    assert_eq!(
        ls["healthy_info"][0]["fully_healthy"],
        serde_json::Value::Null
    );
    assert_eq!(
        ls["summary"]["fully_healthy_app_count"],
        serde_json::Value::Null
    );
    let nodes = stale(follower, "nodes -d -j").json();
    let rows = nodes["details"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{nodes}");
    for row in rows {
        assert_eq!(row["status"], "UNKNOWN", "{nodes}");
        assert_eq!(row["connection"], "UNKNOWN", "{nodes}");
    }
    assert_eq!(nodes["summary"]["alive_node_count"], 0, "{nodes}");
    assert_eq!(nodes["summary"]["unknown_node_count"], 3, "{nodes}");
    let app = stale(follower, "app t -d -j").json();
    assert_eq!(app["replicas"].as_array().unwrap().len(), 4, "{app}");
    assert_eq!(
        app["healthy"]["unhealthy_partition_count"],
        serde_json::Value::Null
    );
    let info = stale(follower, "cluster_info -j").json();
    assert_eq!(info["cluster_info"]["app_count"], 1, "{info}");
    assert_eq!(
        info["cluster_info"]["alive_node_count"],
        serde_json::Value::Null
    );
    // `wait` needs liveness: refused at once rather than waiting on unknowns.
    let wait = stale(follower, "wait healthy --timeout 2");
    assert_eq!(wait.code, 2, "{wait:?}");

    // The quorum lost (the leader and one more killed): only stale reads are answered,
    // and the text never says ALIVE or healthy.
    let survivor = follower;
    for id in (1..=3u64).filter(|id| *id != survivor) {
        metas[id as usize - 1].kill();
    }
    let refused = shell(&["--meta", &at(survivor), "-e", "nodes"], None);
    assert_ne!(
        refused.code, 0,
        "no leader, no authoritative answer: {refused:?}"
    );
    let text = stale(survivor, "nodes -d");
    let out = text.ok();
    assert!(!out.contains("ALIVE") && out.contains("UNKNOWN"), "{out}");
    assert!(out.contains("[stale_read]"), "{out}");
    let ls = stale(survivor, "ls -d").ok().to_string();
    assert!(ls.contains(" t ") && ls.contains("unknown"), "{ls}");
    let summary = ls
        .lines()
        .find(|l| l.starts_with("fully_healthy_app_count"))
        .unwrap_or_default();
    assert!(summary.ends_with("unknown"), "{ls}");
}
