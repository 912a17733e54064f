//! `fuzz-shell`: random lines through the shell's lexer and every verb's argument parser
//! ([`ballast::shell::fuzz`]); prints the cases tried and each crash with its input, and
//! fails on any crash.

use std::time::Instant;

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct FuzzShellArgs {
    /// How many random lines.
    #[arg(long, default_value_t = 100_000)]
    cases: u64,
    /// The random seed (the same seed gives the same lines).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs it; returns whether nothing crashed.
pub fn run(args: FuzzShellArgs) -> bool {
    let started = Instant::now();
    std::panic::set_hook(Box::new(|_| {}));
    let report = ballast::shell::fuzz::run(args.cases, args.seed);
    let _ = std::panic::take_hook();
    for input in &report.crashes {
        println!("crash on: {input:?}");
    }
    let ok = report.crashes.is_empty();
    println!(
        "fuzz-shell {}: seed {}, cases tried {}, crashes {}, in {:.1} s",
        if ok { "passed" } else { "FAILED" },
        args.seed,
        report.tried,
        report.crashes.len(),
        started.elapsed().as_secs_f64()
    );
    ok
}
