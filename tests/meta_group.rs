//! Several meta servers as one group, with real processes: three members and four replica
//! servers under a table and a writer; kill -9 of the leader; a new leader serves the shell
//! within 5 s, keeps every table and every write acknowledged before, during and after,
//! and leases are renewed by whichever member leads. Then Databend's scale-out and
//! scale-in (a fourth member joins, leads, leaves) and Doris's observer.

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

#[test]
fn three_meta_servers_fail_over_within_seconds_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_meta_member(dir.path(), 1, None, false);
    let mut metas: Vec<Proc> = vec![first];
    for id in 2..=3 {
        let join = metas[0].addr.clone();
        metas.push(start_meta_member(dir.path(), id, Some(&join), false));
    }
    let all = metas
        .iter()
        .map(|p| p.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
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
    let first = start_meta_member(dir.path(), 1, None, false);
    let join = first.addr.clone();
    let mut metas = vec![first];
    for id in 2..=3 {
        metas.push(start_meta_member(dir.path(), id, Some(&join), false));
    }
    // Databend's scale-out: join a fourth through --join; it becomes a voter.
    metas.push(start_meta_member(
        dir.path(),
        4,
        Some(&metas[1].addr),
        false,
    ));
    let all = metas
        .iter()
        .map(|p| p.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
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
