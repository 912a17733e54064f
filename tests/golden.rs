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

/// The real addresses (the meta server's, then the nodes' in address order) paired with
/// the normalised ones transcripts show.
fn address_pairs(meta: &str, nodes: &[String]) -> Vec<(String, String)> {
    let mut sorted = nodes.to_vec();
    sorted.sort();
    let mut pairs = vec![(meta.to_string(), "127.0.0.1:34601".to_string())];
    for (i, addr) in sorted.into_iter().enumerate() {
        pairs.push((addr, format!("127.0.0.1:{}", 34801 + i)));
    }
    pairs
}

/// Replaces each `from` with its `to` in one pass: a real port may equal a normalised one
/// (the OS hands out 34801 too), so replacing pair by pair could rewrite an address twice.
fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (i, (from, _)) in pairs.iter().enumerate() {
        out = out.replace(from, &format!("\u{0}{i}\u{0}"));
    }
    for (i, (_, to)) in pairs.iter().enumerate() {
        out = out.replace(&format!("\u{0}{i}\u{0}"), to);
    }
    out
}

/// Replaces every address and timestamp that varies between runs.
fn normalise(text: &str, meta: &str, nodes: &[String]) -> String {
    let pairs = address_pairs(meta, nodes);
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(r, n)| (r.as_str(), n.as_str()))
        .collect();
    mask_times(&substitute(text, &pairs))
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
                // Bytes, or `null` before the node has reported them.
                let rest = rest.strip_prefix("null").unwrap_or(rest);
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
    // A node row's disk not yet reported in a beacon reads `unknown`: when the beacon
    // comes is timing, so in a row naming a node it is a size like any other.
    let node_row = line.contains("127.0.0.1:");
    let is_size = |w: &str| {
        (node_row && w == "unknown")
            || ["KB", "MB", "GB", "TB", "B"].iter().any(|u| {
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
    let pairs = address_pairs(&cluster.meta(), &addrs);
    let back: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(r, n)| (n.as_str(), r.as_str()))
        .collect();
    for command in commands {
        // Commands name nodes by their normalised addresses; run them with the real ones.
        let real = substitute(command, &back);
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

#[test]
fn a_real_port_equal_to_a_normalised_one_is_mapped_once_each_way() {
    // The OS may hand a node 34803: it sorts first, so it shows as 34801, while the
    // node that shows as 34803 has another port.
    let nodes = [
        "127.0.0.1:34803".to_string(),
        "127.0.0.1:50000".to_string(),
        "127.0.0.1:50001".to_string(),
    ];
    let text = "move 127.0.0.1:34803 -> 127.0.0.1:50001\n";
    assert_eq!(
        normalise(text, "127.0.0.1:40000", &nodes),
        "move 127.0.0.1:34801 -> 127.0.0.1:34803\n"
    );
    let pairs = address_pairs("127.0.0.1:40000", &nodes);
    let back: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(r, n)| (n.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        substitute("-f 127.0.0.1:34801 -t 127.0.0.1:34803", &back),
        "-f 127.0.0.1:34803 -t 127.0.0.1:50001"
    );
}
