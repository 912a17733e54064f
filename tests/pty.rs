//! The interactive REPL in a pseudo-terminal: prompt and banner, tab completion of verbs,
//! levels and live table names, greyed hints, colour on a terminal, Ctrl-C dropping the
//! line, errors (and a byte that is not UTF-8) that leave the session going, a
//! destructive verb asking for confirmation, pasted and typed-ahead lines run in order, help
//! pages rendered and paged, embedded-cluster logs kept off the terminal,
//! Ctrl-D leaving, and history kept across sessions in the user's data directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Session};

use crate::util::{SHELL, TestCluster, file_contains};

fn spawn_repl(meta: &str, data_home: &Path) -> OsSession {
    spawn_repl_paging(meta, data_home, "cat")
}

fn spawn_repl_paging(meta: &str, data_home: &Path, pager: &str) -> OsSession {
    let mut cmd = Command::new(SHELL);
    cmd.args(["--meta", meta])
        .env("PAGER", pager)
        .env("XDG_DATA_HOME", data_home)
        .env("HOME", data_home)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR")
        .env_remove("BALLAST_META");
    let mut session = Session::spawn(cmd).expect("spawn the shell in a pty");
    session.set_expect_timeout(Some(Duration::from_secs(15)));
    session
}

#[test]
fn repl_completes_hints_colours_and_keeps_history() {
    let c = TestCluster::start(3, true);
    let home = tempfile::tempdir().unwrap();
    let mut s = spawn_repl(&c.meta(), home.path());
    s.expect("The cluster meta list is:").unwrap();
    s.expect(">>> ").unwrap();

    // Tab completes a verb; the output is coloured on a terminal.
    s.send("nod\t").unwrap();
    s.expect("nodes ").unwrap();
    s.send("-d\r").unwrap();
    s.expect("\x1b[32mALIVE").unwrap();
    s.expect(">>> ").unwrap();

    // Tab completes a level, and a greyed hint follows a verb.
    s.send("set_meta_level li\t").unwrap();
    s.expect("lively").unwrap();
    s.send("\r").unwrap();
    s.expect("control meta level ok, the old level is fl_steady")
        .unwrap();
    s.send("app ").unwrap();
    s.expect("\x1b[90m<APP>").unwrap();

    // Tab completes a live value: a table name fetched from the cluster.
    s.send("te\t").unwrap();
    s.expect("temp").unwrap();
    s.send("\r").unwrap();
    s.expect("max_replica_count").unwrap();
    s.expect(">>> ").unwrap();

    // Ctrl-C drops the line; a bad command prints an error and the session goes on.
    s.send("this line is dropped\x03").unwrap();
    s.expect(">>> ").unwrap();
    s.send("frobnicate\r").unwrap();
    s.expect("unknown command 'frobnicate'").unwrap();
    s.expect(">>> ").unwrap();
    s.send("get_meta_level\r").unwrap();
    s.expect("current meta level is fl_lively").unwrap();
    s.expect(">>> ").unwrap();

    // A destructive verb asks on a terminal: "n" does nothing; "y" goes on (here to the
    // meta server, which knows no such node).
    s.send("drop_node 127.0.0.1:5\r").unwrap();
    s.expect("Proceed? [y/N]").unwrap();
    s.send("n\r").unwrap();
    s.expect("not confirmed; nothing was done").unwrap();
    s.expect(">>> ").unwrap();
    s.send("drop_node 127.0.0.1:5\r").unwrap();
    s.expect("Proceed? [y/N]").unwrap();
    s.send("y\r").unwrap();
    s.expect("no node 127.0.0.1:5").unwrap();
    s.expect(">>> ").unwrap();

    // A byte that is not UTF-8 drops the line with one message; the session goes on.
    s.send(b"nodes \xff\xfe\r").unwrap();
    s.expect("not UTF-8 and was dropped").unwrap();
    s.send("version\r").unwrap();
    s.expect("Ballast Shell").unwrap();
    s.expect(">>> ").unwrap();
    s.send("get_meta_level\r").unwrap();
    s.expect("current meta level is fl_lively").unwrap();
    s.expect(">>> ").unwrap();

    // Ctrl-D leaves.
    s.send("\x04").unwrap();
    s.expect(Eof).unwrap();
    let history = home.path().join("ballast").join("history");
    assert!(
        file_contains(&history, "set_meta_level lively"),
        "history is saved"
    );
    assert!(
        !file_contains(&history, "this line is dropped"),
        "a dropped line is not history"
    );

    // A new session recalls the last command with the up arrow.
    let mut s = spawn_repl(&c.meta(), home.path());
    s.expect(">>> ").unwrap();
    s.send("\x1b[A").unwrap();
    s.expect("get_meta_level").unwrap();
    s.send("\r").unwrap();
    s.expect("current meta level is fl_lively").unwrap();
    s.send("exit\r").unwrap();
    s.expect(Eof).unwrap();
}

/// Lines pasted into the REPL run one by one, in order, as if typed: without bracketed
/// paste (the lines arrive at once), with it (the terminal wraps them in ESC[200~ …
/// ESC[201~), and typed ahead while a command runs.
#[test]
fn pasted_and_typed_ahead_lines_run_in_order() {
    let home = tempfile::tempdir().unwrap();
    let mut s = spawn_repl("127.0.0.1:1", home.path());
    s.expect(">>> ").unwrap();
    // Plain paste: four lines in one write.
    s.send("timeout 1111\rtimeout\rtimeout 2222\rtimeout\r")
        .unwrap();
    s.expect("Current timeout: 1111 ms").unwrap();
    s.expect("Current timeout: 2222 ms").unwrap();
    // Bracketed paste: the lines arrive as one edit, then Enter.
    s.send("\x1b[200~timeout 3333\ntimeout\ntimeout 4444\ntimeout\x1b[201~\r")
        .unwrap();
    s.expect("Current timeout: 3333 ms").unwrap();
    s.expect("Current timeout: 4444 ms").unwrap();
    // Type-ahead: typed while `sleep` runs (it cannot have ended yet).
    s.send("sleep 1\r").unwrap();
    s.send("timeout 5555\r").unwrap();
    s.send("timeout\r").unwrap();
    s.expect("Current timeout: 5555 ms").unwrap();
    s.send("exit\r").unwrap();
    s.expect(Eof).unwrap();
}

/// `help VERB` on a terminal is rendered (no Markdown marks) and goes through `$PAGER`;
/// piped, it is printed as written (`shell_cli` checks that side).
#[test]
fn help_pages_are_rendered_and_paged_on_a_terminal() {
    let home = tempfile::tempdir().unwrap();
    let mut s = spawn_repl_paging("127.0.0.1:1", home.path(), "sed 's/^/PAGED| /'");
    s.expect(">>> ").unwrap();
    s.send("help nodes\r").unwrap();
    s.expect("PAGED| ").unwrap();
    s.expect("SYNOPSIS").unwrap();
    let found = s.expect(">>> ").unwrap();
    let text = String::from_utf8_lossy(found.before());
    assert!(!text.contains("```") && !text.contains("## "), "{text}");
    s.send("exit\r").unwrap();
    s.expect(Eof).unwrap();
}

/// With `--local`, the embedded servers log to a file in the cluster's directory: no log
/// line is drawn over the prompt in a terminal, and `local logs` shows the tail.
#[test]
fn embedded_cluster_logs_stay_off_the_terminal() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(SHELL);
    cmd.args(["--local", "2"])
        .env("BALLAST_LOCAL_PORTS", "random")
        .env("PAGER", "cat")
        .env("XDG_DATA_HOME", home.path())
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .env_remove("BALLAST_META");
    let mut s = Session::spawn(cmd).expect("spawn the shell in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(30)));
    s.expect(">>> ").unwrap();
    s.send("local add_node\r").unwrap();
    let added = s.expect(">>> ").unwrap();
    let screen = String::from_utf8_lossy(added.before()).to_string();
    s.send("nodes\r").unwrap();
    let listed = s.expect(">>> ").unwrap();
    let screen = screen + &String::from_utf8_lossy(listed.before());
    for level in [" INFO ", " WARN ", "INFO ballast"] {
        assert!(
            !screen.contains(level),
            "a log line on the terminal: {screen}"
        );
    }
    s.send("local logs -n 200\r").unwrap();
    s.expect("replica server serving").unwrap();
    s.expect(">>> ").unwrap();
    s.send("exit\r").unwrap();
    s.expect(Eof).unwrap();
}
