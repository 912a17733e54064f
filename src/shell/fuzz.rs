//! Random input for the shell's parsing: lines built from the characters that matter to
//! the lexer (quotes, backslashes, `;`, `#`, escapes, flags, multi-byte characters) and
//! verb names, run through the lexer and every verb's argument parser. Nothing may panic;
//! a bad line is an error. The suite runs a few thousand cases; `ballast-bench
//! fuzz-shell --cases N` runs many more and reports each crash with its input.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::shell::commands::VERBS;
use crate::shell::lexer::split_statements;
use crate::shell::registry::command;
use crate::sim::rng::Rng;

/// What a fuzz run found.
#[derive(Debug, Default)]
pub struct FuzzReport {
    /// Cases tried.
    pub tried: u64,
    /// Inputs that made the lexer or a parser panic.
    pub crashes: Vec<String>,
}

const PIECES: &[&str] = &[
    " ",
    " ",
    " ",
    "\"",
    "'",
    "\\",
    ";",
    "#",
    "-",
    "--",
    "-d",
    "-j",
    "-o",
    "-g",
    "-p",
    "-t",
    "-n",
    "-f",
    "-r",
    "-e",
    "--yes",
    "--force",
    "--timeout",
    "--dry-run",
    "--wait",
    "\\x",
    "\\x4",
    "\\xff",
    "\\n",
    "\\q",
    "\\u00e9",
    "1",
    "0",
    "-1",
    "99999999999999999999",
    "1.0",
    "1.1",
    "127.0.0.1:34801",
    "127.0.0.1:",
    ":1",
    "a",
    "temp",
    "k",
    "é",
    "日本",
    "\u{0}",
    "\t",
    "=",
    ",",
    "k1=v1",
    "all",
    "alive",
    "healthy",
    "lively",
    "move_pri",
    "ADD_SECONDARY",
    "DEFAULT",
];

/// One random line.
fn line(rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.chance(0.8) {
        let verb = VERBS[rng.range(0, VERBS.len() as u64) as usize];
        out.push_str(verb.name());
        out.push(' ');
    }
    for _ in 0..rng.range(0, 12) {
        out.push_str(PIECES[rng.range(0, PIECES.len() as u64) as usize]);
    }
    out
}

/// Lexes `input` and parses every statement with its verb's parser (help included).
fn parse(input: &str) {
    let Ok(statements) = split_statements(input) else {
        return;
    };
    for words in statements {
        let Some(verb) = VERBS
            .iter()
            .find(|v| Some(v.name()) == words.first().map(String::as_str))
        else {
            continue;
        };
        let _ = command(*verb).try_get_matches_from(&words);
    }
}

/// Runs `cases` random lines from `seed`. A panic is caught and its input kept (the
/// panic hook still prints it; the benchmark silences it).
pub fn run(cases: u64, seed: u64) -> FuzzReport {
    let mut rng = Rng::new(seed);
    let mut report = FuzzReport::default();
    for _ in 0..cases {
        let input = line(&mut rng);
        report.tried += 1;
        if catch_unwind(AssertUnwindSafe(|| parse(&input))).is_err() {
            report.crashes.push(input);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_lines_never_crash_the_lexer_or_a_parser() {
        let report = run(3_000, 7);
        assert_eq!(report.tried, 3_000);
        assert!(
            report.crashes.is_empty(),
            "crashed on: {:?}",
            report.crashes
        );
    }
}
