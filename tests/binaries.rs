//! The real binaries as an operator runs them: a `meta-server` process and several
//! `replica-server` processes on loopback ports they chose, driven by `shell --meta`.
//! Nodes show ALIVE; a killed replica server turns UNALIVE within the grace period; a
//! meta server killed with -9 and restarted on the same data keeps every table and
//! placement.

use std::process::Command;
use std::time::Duration;

use crate::util::{
    META_SERVER, Proc, node_statuses, shell, start_meta, start_replica, wait_for, wait_node_status,
};

fn alive_count(meta: &str) -> usize {
    node_statuses(meta)
        .iter()
        .filter(|(_, s)| s == "ALIVE")
        .count()
}

#[test]
fn real_processes_join_die_and_survive_a_meta_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = start_meta(dir.path(), "127.0.0.1:0");
    let meta_addr = meta.addr.clone();
    let mut replicas: Vec<Proc> = (1..=4)
        .map(|i| start_replica(dir.path(), i, &meta_addr))
        .collect();
    wait_for("4 ALIVE nodes", Duration::from_secs(15), || {
        (alive_count(&meta_addr) == 4).then_some(())
    });
    let run = shell(
        &[
            "--meta",
            &meta_addr,
            "-e",
            "create t1 -p 8 -r 3; create t2 -p 4 -r 2",
        ],
        None,
    );
    run.ok();
    let created = shell(&["--meta", &meta_addr, "-e", "app t1 -d -j"], None).json();
    assert_eq!(created["healthy"]["fully_healthy_partition_count"], 8);

    // A killed replica server turns UNALIVE once the grace period passes, leaves every
    // configuration, and its primaries are promoted elsewhere (the secondaries wait for
    // the assign delay).
    let victim = replicas.pop().unwrap();
    let victim_addr = victim.addr.clone();
    drop(victim);
    wait_node_status(&meta_addr, &victim_addr, "UNALIVE", Duration::from_secs(10));
    let mut before_app = wait_for(
        "every partition to have a primary",
        Duration::from_secs(10),
        || {
            let app = shell(&["--meta", &meta_addr, "-e", "app t1 -d -j"], None).json();
            let ok = app["replicas"].as_array().unwrap().iter().all(|r| {
                r["primary"].is_string() && !r["secondaries"].to_string().contains(&victim_addr)
            });
            ok.then_some(app)
        },
    );
    let before_ls = shell(&["--meta", &meta_addr, "-e", "ls -j"], None).json();

    // kill -9 the meta server and start it on the same address and data: tables and
    // placements are back, and nothing moves while the dead node has not been declared
    // dead again (cure waits for every known node to report).
    meta.kill();
    let restarted = start_meta(dir.path(), &meta_addr);
    assert_eq!(restarted.addr, meta_addr);
    let mut after_app = shell(&["--meta", &meta_addr, "-e", "app t1 -d -j"], None).json();
    // Disk usage is what nodes report at runtime, not placement.
    for app in [&mut after_app, &mut before_app] {
        for r in app["replicas"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("disk_usage");
        }
    }
    let after_ls = shell(&["--meta", &meta_addr, "-e", "ls -j"], None).json();
    assert_eq!(
        after_app["replicas"], before_app["replicas"],
        "placements survive kill -9"
    );
    assert_eq!(
        after_ls["general_info"], before_ls["general_info"],
        "tables survive kill -9"
    );
    let level = shell(&["--meta", &meta_addr, "-e", "get_meta_level"], None);
    assert!(level.ok().starts_with("current meta level is fl_steady"));
    // Every node is known again; the dead one goes UNALIVE after a fresh grace period.
    wait_for(
        "live nodes to beacon the new meta server",
        Duration::from_secs(10),
        || (alive_count(&meta_addr) == 3).then_some(()),
    );
    wait_node_status(&meta_addr, &victim_addr, "UNALIVE", Duration::from_secs(10));
    // The replica servers keep each replica in its own directory, beside the data
    // directory's identity.
    let data = dir.path().join("replica-1");
    assert!(crate::util::file_contains(
        &data.join("node.json"),
        "\"incarnation\""
    ));
    let held = std::fs::read_dir(data.join("replicas")).unwrap().count();
    assert!(held > 0, "replica directories on disk");
    let info = shell(
        &["--meta", &meta_addr, "-e", "server_info -t replica-server"],
        None,
    )
    .json();
    assert_eq!(info["succeed_count"], 3, "{info}");
    drop(replicas);
    drop(restarted);
}

#[test]
fn meta_server_refuses_grace_not_above_lease() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(META_SERVER)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--beacon-interval-ms",
            "100",
            "--lease-ms",
            "1000",
            "--grace-ms",
            "1000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(
        stderr.starts_with("ERROR: ") && stderr.contains("must exceed the lease"),
        "{stderr}"
    );
}

#[test]
fn replica_server_refuses_a_store_cache_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "lots", "-1"] {
        let out = Command::new(crate::util::REPLICA_SERVER)
            .args(["--listen", "127.0.0.1:0", "--meta", "127.0.0.1:9"])
            .arg("--data-dir")
            .arg(dir.path())
            .arg(format!("--store-cache-mb={bad}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--store-cache-mb {bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("invalid value") && stderr.contains("--store-cache-mb"),
            "{stderr}"
        );
    }
    // Nothing was created in the data directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn servers_read_their_flags_from_a_config_file_and_refuse_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let meta_toml = dir.path().join("meta.toml");
    std::fs::write(
        &meta_toml,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nbeacon_interval_ms = 100\nlease_ms = 800\ngrace_ms = 1000\n",
            dir.path().join("meta").display()
        ),
    )
    .unwrap();
    let meta = Proc::spawn(META_SERVER, &["--config", meta_toml.to_str().unwrap()]);
    let replica_toml = dir.path().join("replica.toml");
    std::fs::write(
        &replica_toml,
        format!(
            "listen = \"127.0.0.1:0\"\nmeta = [\"{}\"]\ndata_dir = \"{}\"\nbeacon_interval_ms = 100\nstore_cache_mb = 8\nworker_threads = 1\n",
            meta.addr,
            dir.path().join("r1").display()
        ),
    )
    .unwrap();
    // A flag on the command line wins over the file's key.
    let replica = Proc::spawn(
        crate::util::REPLICA_SERVER,
        &[
            "--config",
            replica_toml.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    wait_node_status(&meta.addr, &replica.addr, "ALIVE", Duration::from_secs(15));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(META_SERVER)
        .args(["--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown key 'lisen'"), "{stderr}");
}
