//! Golden transcripts of the shell (toydb's goldenscript idea): each `tests/scripts/*.txt`
//! holds commands (`> cmd`) each followed by what the real `shell` binary printed —
//! stdout, then stderr, then `(exit N)` when it failed — against a fresh in-process
//! cluster. Addresses and times are normalised (meta 127.0.0.1:34601, replica servers
//! 127.0.0.1:34801.. in address order, times as YYYY-MM-DD_hh:mm:ss) so transcripts
//! are stable. Regenerate with `UPDATE_GOLDENFILES=1 cargo test golden` and review the diff.
//!
//! A transcript may start with `# nodes: N` (default 3) and `# temp: no`. Commands may
//! name nodes by their normalised addresses; they run with the real ones.

use std::path::Path;

use crate::util::TestCluster;

/// Replaces every address and timestamp that varies between runs.
fn normalise(text: &str, meta: &str, nodes: &[String]) -> String {
    let mut out = text.replace(meta, "127.0.0.1:34601");
    let mut sorted = nodes.to_vec();
    sorted.sort();
    for (i, addr) in sorted.iter().enumerate() {
        out = out.replace(addr.as_str(), &format!("127.0.0.1:{}", 34801 + i));
    }
    mask_times(&out)
}

/// Masks `YYYY-MM-DD_hh:mm:ss` timestamps and uptimes, keeping widths.
fn mask_times(text: &str) -> String {
    const SHAPE: &[u8] = b"dddd-dd-dd_dd:dd:dd";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= SHAPE.len()
            && SHAPE.iter().zip(&bytes[i..]).all(|(s, b)| {
                if *s == b'd' {
                    b.is_ascii_digit()
                } else {
                    s == b
                }
            });
        if fits {
            out.push_str("YYYY-MM-DD_hh:mm:ss");
            i += SHAPE.len();
        } else {
            let ch = text[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        let mut line = line.to_string();
        for key in ["\"uptime_seconds\": ", "\"disk_usage\": "] {
            if let Some((head, rest)) = line.split_once(key) {
                let tail = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                line = format!("{head}{key}0{tail}");
            }
        }
        lines.push(mask_sizes(&line));
    }
    let mut joined = lines.join("\n");
    if out.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// Disk sizes (`12.3KB`) vary from run to run: a line showing one has each size
/// replaced by `SIZE` and its spacing collapsed (so column widths cannot differ).
fn mask_sizes(line: &str) -> String {
    let is_size = |w: &str| {
        ["KB", "MB", "GB", "TB", "B"].iter().any(|u| {
            w.strip_suffix(u)
                .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok())
        })
    };
    if !line.split_whitespace().any(is_size) {
        return line.to_string();
    }
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| if is_size(w) { "SIZE" } else { w })
        .collect();
    words.join(" ")
}

/// Runs one transcript file; with UPDATE_GOLDENFILES set, rewrites it.
fn run_transcript(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(format!("{name}.txt"));
    let original =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header: Vec<&str> = original
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect();
    let nodes = header
        .iter()
        .find_map(|l| l.strip_prefix("# nodes: "))
        .map_or(3, |n| n.trim().parse().expect("# nodes: N"));
    let with_temp = !header.iter().any(|l| l.trim() == "# temp: no");
    let commands: Vec<&str> = original
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .collect();
    assert!(!commands.is_empty(), "{name} has no commands");
    let cluster = TestCluster::start(nodes, with_temp);
    let addrs = cluster.cluster().node_addrs();
    let mut actual = header.join("\n");
    actual.push('\n');
    let mut sorted = addrs.clone();
    sorted.sort();
    for command in commands {
        // Commands name nodes by their normalised addresses; run them with the real ones.
        let mut real = command.replace("127.0.0.1:34601", &cluster.meta());
        for (i, addr) in sorted.iter().enumerate() {
            real = real.replace(&format!("127.0.0.1:{}", 34801 + i), addr);
        }
        let run = cluster.exec(&real);
        actual.push_str(&format!("\n> {command}\n"));
        actual.push_str(&run.stdout);
        actual.push_str(&run.stderr);
        if run.code != 0 {
            actual.push_str(&format!("(exit {})\n", run.code));
        }
    }
    let actual = normalise(&actual, &cluster.meta(), &addrs);
    if std::env::var_os("UPDATE_GOLDENFILES").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    if actual != original {
        let diff: Vec<String> = original
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "transcript {name} differs (UPDATE_GOLDENFILES=1 cargo test golden to accept):\n{}\n--- actual ---\n{actual}",
            diff.join("\n")
        );
    }
}

macro_rules! transcripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_transcript(stringify!($name).trim_start_matches("r#"));
            }
        )*

        #[test]
        fn every_transcript_file_has_a_test() {
            let listed = [$(stringify!($name).trim_start_matches("r#")),*];
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
                assert!(listed.contains(&stem.as_str()), "tests/scripts/{stem}.txt has no test");
            }
        }
    };
}

transcripts!(
    app,
    bad_input,
    balance,
    cluster_info,
    create,
    ddd_diagnose,
    decommission,
    decommission_status,
    decommission_refused,
    cancel_decommission,
    drop_node,
    exist,
    ttl,
    incr,
    check_and_set,
    drop,
    exit,
    get_meta_level,
    help,
    local,
    ls,
    nodes,
    propose,
    recall,
    rename,
    get_app_envs,
    set_app_envs,
    del_app_envs,
    clear_app_envs,
    remote_command,
    server_info,
    meta,
    server_stat,
    app_stat,
    set_meta_level,
    sleep,
    version,
    wait,
    r#use,
    timeout,
    set,
    get,
    del,
    multi_set,
    multi_get,
    multi_del,
    hash_scan,
    full_scan,
    count_data,
);

#[test]
fn every_verb_has_a_transcript() {
    for verb in ballast::shell::commands::VERBS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/scripts/{}.txt", verb.name()));
        assert!(path.exists(), "verb {} has no transcript", verb.name());
    }
}

#[test]
fn disk_sizes_are_masked() {
    assert_eq!(
        mask_sizes("127.0.0.1:1  ALIVE   8   12.5KB"),
        "127.0.0.1:1 ALIVE 8 SIZE"
    );
    assert_eq!(
        mask_sizes("a  b 12"),
        "a  b 12",
        "lines without sizes keep their spacing"
    );
}

#[test]
fn normalising_keeps_widths() {
    let text = "127.0.0.1:45678  x 2026-11-22_17:44:24\n\"uptime_seconds\": 12,\n";
    let got = normalise(text, "127.0.0.1:40000", &["127.0.0.1:45678".to_string()]);
    assert_eq!(
        got,
        "127.0.0.1:34801  x YYYY-MM-DD_hh:mm:ss\n\"uptime_seconds\": 0,\n"
    );
}
