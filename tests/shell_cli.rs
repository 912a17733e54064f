//! The `shell` binary in script and one-shot mode: exit codes, bad input, where output
//! goes, and the script rules (comments, stop at the first failure, no banner).

use std::time::{Duration, Instant};

use crate::util::{TestCluster, dead_address, shell, shell_bytes};

#[test]
fn help_version_and_exit_work_without_a_cluster() {
    let run = shell(&["-e", "help; version; help nodes"], None);
    let out = run.ok();
    assert!(out.contains("nodes [-d|--detailed]"), "{out}");
    assert!(out.contains(&format!("Ballast Shell {}", env!("CARGO_PKG_VERSION"))));
    assert!(out.contains("# nodes"), "help VERB prints the page");
    assert_eq!(
        shell(&["--version"], None).ok().trim(),
        format!("Ballast Shell {}", env!("CARGO_PKG_VERSION"))
    );
    let run = shell(&[], Some("version\nexit\nnodes -d\n"));
    assert_eq!(
        run.code, 0,
        "exit stops the script before the command that needs a cluster"
    );
    assert!(!run.stdout.contains(">>>"), "no prompt in script mode");
    assert!(
        !run.stdout.contains("Type \"help\""),
        "no banner in script mode"
    );
}

#[test]
fn bad_usage_exits_2_with_one_line_on_stderr() {
    let cases = [
        ("frobnicate", "unknown command 'frobnicate'"),
        ("nodes --bogus", "unexpected argument '--bogus'"),
        ("nodes -s dead", "invalid value 'dead'"),
        ("set_meta_level fast", "invalid value 'fast'"),
        ("create ''", "the table name is empty"),
        ("create 'a b'", "has ' '"),
        ("app", "required"),
        ("create t -p 0", "0 is not in 1..=4096"),
        ("set k 'unbalanced", "unbalanced quote"),
        ("recall x", "invalid value 'x'"),
        ("sleep soon", "not a number of seconds"),
    ];
    for (line, needle) in cases {
        let run = shell(&["--meta", "127.0.0.1:1", "-e", line], None);
        assert_eq!(run.code, 2, "{line}: {run:?}");
        assert!(run.stdout.is_empty(), "{line}: nothing on stdout: {run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{line}: one line on stderr: {run:?}");
        assert!(
            lines[0].starts_with("ERROR: ") && lines[0].contains(needle),
            "{line}: {run:?}"
        );
    }
}

#[test]
fn an_unreachable_meta_server_exits_3_within_five_seconds() {
    let addr = dead_address();
    let started = Instant::now();
    let run = shell(&["--meta", &addr, "-e", "nodes -d"], None);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("cannot reach the meta server"),
        "{run:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let run = shell(&["-e", "nodes"], None);
    assert_eq!(run.code, 2, "no meta address at all is bad usage: {run:?}");
    assert!(run.stderr.contains("--meta"), "{run:?}");
}

#[test]
fn cluster_refusals_exit_1_and_scripts_stop_at_the_first_failure() {
    let c = TestCluster::start(3, true);
    let run = c.exec("app nosuch");
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr.trim(), "ERROR: table 'nosuch' does not exist");
    let run = c.script("# set up\n\ncreate t1 -p 4\ndrop nosuch\ncreate t2 -p 4\n");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("create app \"t1\" succeed"), "{run:?}");
    let ls = c.exec("ls -j").json();
    let names: Vec<&str> = ls["general_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["temp", "t1"],
        "t2 was not created after the failure"
    );
    let run = c.exec("create t1 -f");
    assert_eq!(run.code, 1, "-f on an existing table: {run:?}");
    assert!(run.stderr.contains("already exists"));
    let run = c.exec("create t9 -r 4");
    assert_eq!(run.code, 1, "more replicas than nodes: {run:?}");
    assert!(run.stderr.contains("there are 3"), "{run:?}");
    let run = c.exec("set_meta_level freezed; create t3");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("fl_freezed"), "{run:?}");
    let run = c.exec("remote_command -t meta-server meta.live_percentage 101");
    assert_eq!(run.code, 1, "a refused remote argument: {run:?}");
    let run = c.exec("remote_command -t meta-server meta.live_percentage");
    assert!(
        run.ok()
            .contains("\"node_live_percentage_threshold_for_update\": 65"),
        "unchanged"
    );
}

#[test]
fn json_output_is_typed_and_output_files_are_written() {
    let c = TestCluster::start(3, true);
    let nodes = c.exec("nodes -d -j").json();
    let rows = nodes["details"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r["replica_count"].as_u64() == Some(8)),
        "{nodes}"
    );
    assert_eq!(nodes["summary"]["alive_node_count"], 3);
    let app = c.exec("app temp -d -j").json();
    assert_eq!(app["replicas"].as_array().unwrap().len(), 8);
    assert_eq!(
        app["replicas"][0]["secondaries"].as_array().unwrap().len(),
        2
    );
    assert_eq!(app["healthy"]["fully_healthy_partition_count"], 8);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nodes.txt");
    let run = c.exec(&format!("nodes -d -o {}", file.display()));
    assert!(run.ok().is_empty(), "output went to the file, not stdout");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("[details]\naddress"), "{text}");
    let run = c.exec("nodes -o /nonexistent/dir/x");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("cannot write"), "{run:?}");
}

#[test]
fn one_shot_mode_runs_a_single_verb() {
    let c = TestCluster::start(3, true);
    let run = shell(&["--meta", &c.meta(), "get_meta_level"], None);
    assert_eq!(run.ok().trim(), "current meta level is fl_steady");
    let run = shell(&["--meta", &c.meta(), "app", "nosuch"], None);
    assert_eq!(run.code, 1, "{run:?}");
    let run = shell(&["--meta", &c.meta(), "nodes", "--bogus"], None);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn a_dropped_table_expires_and_cannot_be_recalled() {
    let c = TestCluster::start(3, true);
    let run = c.exec("drop temp -r 0");
    assert!(
        run.ok().contains("drop app \"temp\" succeed, app_id = 1"),
        "{run:?}"
    );
    crate::util::wait_for(
        "the dropped table to expire",
        Duration::from_secs(10),
        || {
            let all = c.exec("ls -a -j").json();
            all["general_info"]
                .as_array()
                .unwrap()
                .is_empty()
                .then_some(())
        },
    );
    let run = c.exec("recall 1");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("does not exist or is gone"), "{run:?}");
    let run = c.exec("create temp -p 2");
    assert!(
        run.ok().contains("app_id = 2"),
        "ids are never reused: {run:?}"
    );
}

#[test]
fn a_remote_command_to_a_dead_server_fails_that_target_only() {
    let c = TestCluster::start(3, true);
    let dead = dead_address();
    let list = format!("{},{}", c.meta(), dead);
    let run = c.exec(&format!("remote_command -l {list} server-info"));
    assert_eq!(run.code, 1, "{run:?}");
    let envelope: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(envelope["succeed_count"], 1);
    assert_eq!(envelope["failed_count"], 1);
    assert_eq!(envelope["details"][&dead]["acked"], false);
    assert_eq!(
        envelope["details"][c.meta()]["message"]["role"],
        "meta-server"
    );
    assert!(
        run.stderr
            .contains("remote command failed on 1 of 2 targets"),
        "{run:?}"
    );
}

#[test]
fn local_rehearses_scale_out_then_scale_in_in_one_session() {
    // Choose the embedded cluster's loopback ports (kept in DIR/local.json) so the
    // script can name its nodes.
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<String> = (0..5).map(|_| dead_address()).collect();
    let layout = serde_json::json!({ "meta": ports[0], "replicas": ports[1..] });
    std::fs::write(dir.path().join("local.json"), layout.to_string()).unwrap();
    let victim = &ports[1];
    let script = format!(
        "local add_node\n\
         set_meta_level lively\n\
         wait balanced --timeout 60\n\
         set_meta_level steady\n\
         nodes -d -j\n\
         remote_command -t meta-server meta.lb.assign_secondary_black_list {victim}\n\
         remote_command -t meta-server meta.lb.assign_delay_ms 10\n\
         local stop_node {victim}\n\
         wait healthy --timeout 60\n\
         nodes -d -j\n"
    );
    let data_dir = dir.path().to_str().unwrap();
    let run = shell(&["--local", "4", "--data-dir", data_dir], Some(&script));
    let out = run.ok();
    let added = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("added node ")
        .unwrap()
        .to_string();
    let reports: Vec<serde_json::Value> = out
        .match_indices("{\n  \"details\"")
        .map(|(i, _)| {
            serde_json::Deserializer::from_str(&out[i..])
                .into_iter()
                .next()
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(reports.len(), 2, "{out}");
    let counts = |json: &serde_json::Value| -> Vec<(String, String, u64)> {
        json["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let addr = r["address"].as_str().unwrap().to_string();
                (
                    addr,
                    r["status"].as_str().unwrap().to_string(),
                    r["replica_count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // Scale out: five nodes, counts within one, the new node holding its share.
    let out_counts = counts(&reports[0]);
    assert_eq!(out_counts.len(), 5);
    let values: Vec<u64> = out_counts.iter().map(|c| c.2).collect();
    assert!(
        values.iter().max().unwrap() - values.iter().min().unwrap() <= 1,
        "{out_counts:?}"
    );
    assert!(
        out_counts.iter().any(|c| c.0 == added && c.2 > 0),
        "{out_counts:?}"
    );
    // Scale in: the stopped node is UNALIVE and holds nothing; every partition is whole.
    let in_counts = counts(&reports[1]);
    let gone = in_counts.iter().find(|c| c.0 == *victim).unwrap();
    assert_eq!((gone.1.as_str(), gone.2), ("UNALIVE", 0), "{in_counts:?}");
    assert!(out.contains("healthy: 8/8 partitions healthy"), "{out}");
}

#[test]
fn script_errors_name_their_line_and_command_and_keep_going_runs_the_rest() {
    let c = TestCluster::start(3, true);
    let meta = c.meta();
    // A runtime error names its line and command; the script stops there.
    let run = c.script("version\n\nuse nosuch\nversion\n");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with("ERROR: line 3: use nosuch: "),
        "{run:?}"
    );
    assert_eq!(
        run.stdout.matches("Ballast Shell").count(),
        1,
        "stopped at line 3"
    );
    // --keep-going runs the rest and exits with the first failure's code.
    let run = shell(
        &["--meta", &meta, "--keep-going"],
        Some("use nosuch\nnodes --bogus\nversion\n"),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr.matches("ERROR: line").count(), 2, "{run:?}");
    assert!(
        run.stderr.contains("ERROR: line 2: nodes --bogus: "),
        "{run:?}"
    );
    assert!(run.stdout.contains("Ballast Shell"), "the last line ran");
    let run = shell(&["--meta", &meta, "-k", "-e", "frob; version"], None);
    assert_eq!(
        (run.code, run.stdout.contains("Ballast Shell")),
        (2, true),
        "{run:?}"
    );
    // A line that is not UTF-8 is bad usage naming its line and the byte.
    let run = shell_bytes(&["--meta", &meta], b"version\nset a b \xff\n");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("line 2: ") && run.stderr.contains("byte 0xFF"),
        "{run:?}"
    );
    // ttl: the whole seconds left of a record set with a TTL.
    let run = c.exec("use temp; set h t v 3600; ttl h t");
    let left: u64 = run.ok().lines().last().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&left), "{run:?}");
    // Verbs that only change the session print nothing in scripts: JSON pipes cleanly.
    let run = c.exec("use temp; timeout 3000; count_data -j");
    assert!(run.json().is_object(), "{run:?}");
    // An escape the shell does not know is an error naming it, not a dropped backslash.
    for line in [
        r#"use temp; set k s "\q""#,
        r#"use temp; set k s "\u00e9""#,
        r"use temp; set k s \q",
    ] {
        let run = c.exec(line);
        assert_eq!(run.code, 2, "{line}: {run:?}");
        assert!(run.stderr.contains("unknown escape"), "{line}: {run:?}");
    }
}

#[test]
fn bad_addresses_long_names_and_help_texts() {
    let run = shell(&["--meta", "47601", "-e", "nodes"], None);
    assert_eq!(run.code, 2, "a bad --meta is bad usage: {run:?}");
    let long = "a".repeat(100_000);
    let run = shell(
        &["--meta", "127.0.0.1:1", "-e", &format!("create {long}")],
        None,
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.len() < 1_000,
        "the name is cut: {} bytes",
        run.stderr.len()
    );
    let help = shell(&["--help"], None);
    assert!(help.ok().contains("--completions"), "{help:?}");
    for (bin, says) in [
        (crate::util::META_SERVER, "meta server"),
        (crate::util::REPLICA_SERVER, "replica server"),
    ] {
        let out = std::process::Command::new(bin)
            .arg("--help")
            .output()
            .unwrap();
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        assert!(first.contains(says), "{bin}: {first}");
    }
}

#[test]
fn a_hung_meta_address_does_not_stop_failover_to_a_good_one() {
    let c = TestCluster::start(3, false);
    // Accepts connections (the kernel completes them) and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_addr = hung.local_addr().unwrap().to_string();
    let both = format!("{hung_addr},{}", c.meta());
    let run = shell(&["--meta", &both, "-e", "nodes; get_meta_level"], None);
    assert_eq!(run.code, 0, "the second address answers: {run:?}");
    assert!(run.stdout.contains("current meta level"), "{run:?}");
    drop(hung);
}

#[test]
fn a_black_list_entry_that_is_no_node_is_warned_about() {
    let c = TestCluster::start(3, false);
    let run =
        c.exec("remote_command -t meta-server meta.lb.assign_secondary_black_list 127.0.0.9:1");
    let json = run.json();
    let message = json["details"][c.meta().as_str()]["message"].clone();
    assert_eq!(message["error"], "ok", "{json}");
    assert!(
        message["warning"].as_str().unwrap().contains("127.0.0.9:1"),
        "{json}"
    );
    assert!(
        run.stderr.contains("WARNING:") && run.stderr.contains("not a known node"),
        "{run:?}"
    );
}

#[test]
fn local_uses_pegasus_default_ports_when_they_are_free() {
    let mut cmd = std::process::Command::new(crate::util::SHELL);
    let out = cmd
        .args(["--local", "1", "-e", "cluster_info -j"])
        .env_remove("BALLAST_META")
        .env_remove("BALLAST_LOCAL_PORTS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let meta = json["cluster_info"]["primary_meta_server"]
        .as_str()
        .unwrap()
        .to_string();
    // Another process may hold the port; then the shell says so and picks a random one.
    assert!(
        meta == "127.0.0.1:34601" || stderr.contains("are in use: using random ports"),
        "{meta} {stderr}"
    );
}

#[test]
fn local_servers_log_to_a_file_not_over_the_shell() {
    let run = shell(
        &["--local", "2", "-e", "local add_node; local logs -n 200"],
        None,
    );
    let out = run.ok();
    assert!(
        out.contains("replica server serving"),
        "the log's tail: {out}"
    );
    for level in [" INFO ", " WARN ", " ERROR "] {
        assert!(
            !run.stderr.contains(level),
            "no log line on stderr: {run:?}"
        );
    }
}

/// Consecutive read-only lines of a script run side by side, yet the script prints and
/// exits as if they ran one by one: outputs in line order, a write between reads seen by
/// the reads after it, the first failure stopping the rest unprinted (or, with -k, every
/// line printed and the first failure's code).
#[test]
fn a_script_of_reads_runs_side_by_side_and_prints_as_if_one_by_one() {
    let c = TestCluster::start(3, true);
    let mut script = String::from("use temp\n");
    for i in 0..40 {
        script.push_str(&format!("set k{i} s v{i}\n"));
    }
    script.push_str("get before s\n");
    for i in 0..40 {
        script.push_str(&format!("get k{i} s\n"));
    }
    script.push_str("set before s now\nget before s\nexist before s\n");
    let out = c.script(&script);
    let lines: Vec<&str> = out.ok().lines().filter(|l| *l != "OK").collect();
    let mut want = vec!["Not found".to_string()];
    want.extend((0..40).map(|i| format!("\"v{i}\"")));
    want.extend(["\"now\"".to_string(), "True".to_string()]);
    assert_eq!(
        lines, want,
        "in line order, each read after the writes before it"
    );

    let stop = "use temp\nget k1 s\nget k2 s\napp nosuch\nget k3 s\nget k4 s\n";
    let run = c.script(stop);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), ["\"v1\"", "\"v2\""]);
    assert!(run.stderr.contains("ERROR: line 4: app nosuch"), "{run:?}");

    let run = shell(&["--meta", &c.meta(), "-k"], Some(stop));
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["\"v1\"", "\"v2\"", "\"v3\"", "\"v4\""]
    );
}

/// A script fed a line at a time (its writer waits for each answer) is never read ahead
/// of: every answer comes before the next line is sent.
#[test]
fn a_script_fed_line_by_line_gets_each_answer_before_the_next_line() {
    use std::io::{BufRead, BufReader, Write};
    let c = TestCluster::start(1, false);
    let mut child = std::process::Command::new(crate::util::SHELL)
        .args(["--meta", &c.meta()])
        .env_remove("BALLAST_META")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut answered = true;
    'lines: for _ in 0..3 {
        stdin.write_all(b"get_meta_level\n").unwrap();
        stdin.flush().unwrap();
        // The answer must come while the next line has not been written.
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => assert!(line.starts_with("current meta level is"), "{line}"),
            Err(_) => {
                answered = false;
                break 'lines;
            }
        }
        // Whatever else it printed ends before `version`'s line.
        stdin.write_all(b"version\n").unwrap();
        stdin.flush().unwrap();
        while !lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .starts_with("Ballast Shell")
        {}
    }
    if !answered {
        let _ = child.kill();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(answered, "no answer before the next line was sent");
    assert!(status.success());
}
