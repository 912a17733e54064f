//! Long output on a terminal goes through a pager, as git does: `$PAGER` (run by the
//! shell, so it may carry arguments), else `less`; `LESS` defaults to `FRX` (quit at
//! once if it fits the screen, keep colours, leave the text on the screen). `PAGER=cat`
//! or an empty `PAGER` prints directly, and so does a pager that cannot be started.

use std::io::Write;
use std::process::{Command, Stdio};

/// The pager command to run, if any.
fn pager() -> Option<String> {
    match std::env::var("PAGER") {
        Ok(p) if p.trim().is_empty() || p.trim() == "cat" => None,
        Ok(p) => Some(p),
        Err(_) => Some("less".to_string()),
    }
}

/// Shows `text` through the pager; returns `false` if no pager ran (print it yourself).
pub fn page(text: &str) -> bool {
    let Some(pager) = pager() else {
        return false;
    };
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &pager]).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        cmd.env("LESS", "FRX");
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager quit early (q) closes its input: not an error.
        let _ = stdin.write_all(text.as_bytes());
    }
    child
        .wait()
        .is_ok_and(|s| s.success() || s.code().is_some())
}
