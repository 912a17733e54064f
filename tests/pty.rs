//! The interactive REPL in a pseudo-terminal: prompt and banner, tab completion of verbs,
//! levels and live table names, greyed hints, colour on a terminal, Ctrl-C dropping the
//! line, errors (and a byte that is not UTF-8) that leave the session going, a
//! destructive verb asking for confirmation,
//! Ctrl-D leaving, and history kept across sessions in the user's data directory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Session};

use crate::util::{SHELL, TestCluster, file_contains};

fn spawn_repl(meta: &str, data_home: &Path) -> OsSession {
    let mut cmd = Command::new(SHELL);
    cmd.args(["--meta", meta])
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
