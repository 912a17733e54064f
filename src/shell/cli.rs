//! The `shell` binary's own flags and its three modes: interactive (a terminal on
//! stdin), script (`-e "cmd; cmd"` or lines on stdin: no prompt or banner, stop at the
//! first failure, exit code says what failed) and one-shot (`shell nodes -d`). Also
//! `--local [N]` (an embedded cluster) and the hidden `--completions SHELL`.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgMatches, Command, value_parser};
use clap_complete::Shell as CompletionShell;

use crate::local::{LocalCluster, local_meta_config};
use crate::shell::commands::VERBS;
use crate::shell::context::Context;
use crate::shell::error::{ShellError, exit_code};
use crate::shell::pipeline::{self, Pending};
use crate::shell::registry::{Flow, command};
use crate::shell::{Shell, repl};

/// The binary's command tree: its flags plus every verb as a subcommand (one-shot mode).
/// The completion scripts in `completions/` are generated from it.
pub fn cli() -> Command {
    flags().subcommands(VERBS.iter().map(|v| command(*v)))
}

/// The binary's own flags. Parsing uses these with verbs as external subcommands, so a
/// one-shot verb goes through the same parser (and one-line errors) as a script line.
fn flags() -> Command {
    Command::new("shell")
        .about("Ballast's admin shell: inspect and operate a cluster (REPL, scripts, one-shot)")
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .arg(
            Arg::new("version")
                .short('V')
                .long("version")
                .action(clap::ArgAction::SetTrue)
                .help("Print the version"),
        )
        .arg(
            Arg::new("meta")
                .long("meta")
                .env("BALLAST_META")
                .value_name("ADDRS")
                .value_delimiter(',')
                .help("Meta servers, host:port[,host:port...]"),
        )
        .arg(
            Arg::new("execute")
                .short('e')
                .long("execute")
                .value_name("COMMANDS")
                .help("Run these ';'-separated commands as a script and exit"),
        )
        .arg(
            Arg::new("local")
                .long("local")
                .value_name("N")
                .num_args(0..=1)
                .default_missing_value("3")
                .value_parser(value_parser!(u32).range(1..=64))
                .conflicts_with("meta")
                .help(
                    "Start an embedded cluster of 1 meta server and N replica servers (default 3)",
                ),
        )
        .arg(
            Arg::new("metas")
                .long("metas")
                .value_name("M")
                .value_parser(value_parser!(u32).range(1..=9))
                .requires("local")
                .help("With --local, start M meta servers as a Raft group (default 1: one alone)"),
        )
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .requires("local")
                .help("Keep the embedded cluster's data in DIR instead of a temporary directory"),
        )
        .arg(
            Arg::new("stale-ok")
                .long("stale-ok")
                .action(clap::ArgAction::SetTrue)
                .help("Let any meta server answer nodes, ls, app and cluster_info from its own copy of the state (liveness unknown)"),
        )
        .arg(
            Arg::new("keep-going")
                .short('k')
                .long("keep-going")
                .action(clap::ArgAction::SetTrue)
                .help("In scripts, run the rest after a failure and exit with the first failure's code"),
        )
        .arg(
            Arg::new("completions")
                .long("completions")
                .value_name("SHELL")
                .value_parser(value_parser!(CompletionShell))
                .help("Print the completion script for SHELL (bash, zsh, fish, ...)"),
        )
}

/// Whether colour is allowed on a stream that is (or is not) a terminal.
fn colour_allowed(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none()
}

/// Runs the shell binary; returns its exit code.
pub fn main() -> i32 {
    let matches = match flags().allow_external_subcommands(true).try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            };
        }
    };
    if matches.get_flag("version") {
        println!("{}", crate::shell::commands::version::version_line());
        return exit_code::OK;
    }
    if let Some(shell) = matches.get_one::<CompletionShell>("completions") {
        clap_complete::generate(*shell, &mut cli(), "shell", &mut std::io::stdout());
        return exit_code::OK;
    }
    // A script or one-shot command runs one request at a time: a runtime on this thread
    // answers fastest (no hand-off between threads). The REPL (its completer fetches
    // live names while the editor holds this thread) and an embedded cluster (its
    // servers run while the shell waits) need worker threads.
    let repl = matches.subcommand().is_none()
        && !matches.contains_id("execute")
        && std::io::stdin().is_terminal();
    let mut builder = if repl || matches.contains_id("local") {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR: cannot start the runtime: {e}");
            return exit_code::FAILED;
        }
    };
    if matches.contains_id("local") {
        // The embedded servers log to the cluster's directory; without --local the shell
        // has nothing to log and installs no logger (it starts faster).
        quiet_logging();
    }
    let mut meta: Vec<String> = matches
        .get_many::<String>("meta")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if let Some(bad) = meta
        .iter()
        .find_map(|a| crate::model::validate_address(a).err())
    {
        eprintln!("ERROR: --meta: {bad}");
        return exit_code::USAGE;
    }
    let mut local = None;
    if let Some(n) = matches.get_one::<u32>("local") {
        let metas = matches.get_one::<u32>("metas").copied().unwrap_or(1) as usize;
        match runtime.block_on(start_local(
            *n as usize,
            metas,
            matches.get_one::<PathBuf>("data-dir"),
        )) {
            Ok(cluster) => {
                meta = cluster.meta_addrs();
                local = Some(cluster);
            }
            Err(e) => {
                eprintln!("ERROR: cannot start the local cluster: {e}");
                return e.exit_code();
            }
        }
    }
    let stdout = std::io::stdout();
    let color = colour_allowed(stdout.is_terminal());
    let stdout_terminal = stdout.is_terminal();
    let mut ctx = Context::new(meta, Box::new(stdout), color);
    ctx.set_stdout_terminal(stdout_terminal);
    ctx.set_stale_ok(matches.get_flag("stale-ok"));
    ctx.local = local;
    let mut shell = Shell::new(
        ctx,
        Box::new(std::io::stderr()),
        colour_allowed(std::io::stderr().is_terminal()),
    );
    let code = run_mode(&mut shell, &matches, &runtime);
    if let Some(cluster) = shell.ctx.local.take() {
        runtime.block_on(cluster.shutdown());
    }
    code
}

fn run_mode(shell: &mut Shell, matches: &ArgMatches, runtime: &tokio::runtime::Runtime) -> i32 {
    if let Some((name, sub)) = matches.subcommand() {
        let rest = sub.get_many::<std::ffi::OsString>("").into_iter().flatten();
        let words: Vec<String> = std::iter::once(name.to_string())
            .chain(rest.map(|w| w.to_string_lossy().into_owned()))
            .collect();
        let result = runtime.block_on(shell.run_words(&words));
        return finish(shell, result);
    }
    let keep_going = matches.get_flag("keep-going");
    if let Some(commands) = matches.get_one::<String>("execute") {
        if keep_going {
            return run_statements_keep_going(shell, runtime, commands);
        }
        let result = runtime.block_on(shell.run_line(commands));
        return finish(shell, result);
    }
    if std::io::stdin().is_terminal() {
        return repl::run(shell, runtime);
    }
    run_script(shell, runtime, std::io::stdin().lock(), keep_going)
}

/// Runs lines from `input` as a script: skip blanks and comments, stop at the first
/// failure (or, with `keep_going`, run the rest and return the first failure's code),
/// and return the exit code. Every error names its line and command; a line that is not
/// UTF-8 is a usage error naming its line and the first bad byte. Consecutive read-only
/// lines that have already arrived run side by side ([`pipeline`]), printing in order.
pub fn run_script(
    shell: &mut Shell,
    runtime: &tokio::runtime::Runtime,
    input: impl Read,
    keep_going: bool,
) -> i32 {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut first_failure = None;
    let mut batch: Vec<Pending> = Vec::new();
    let mut raw = Vec::new();
    let mut number = 0;
    loop {
        // Never wait for more input (or pass a line that is not read-only) while lines
        // wait in a batch.
        let more_ready = input.buffer().contains(&b'\n');
        if !batch.is_empty()
            && (batch.len() >= pipeline::WINDOW || !more_ready)
            && let Some(code) = flush(shell, runtime, &mut batch, keep_going, &mut first_failure)
        {
            return code;
        }
        raw.clear();
        match input.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => number += 1,
            Err(e) => {
                shell.report_error(
                    &ShellError::Failed(format!("cannot read the script: {e}")).at(number + 1, ""),
                );
                return exit_code::FAILED;
            }
        }
        if let Ok(line) = std::str::from_utf8(&raw)
            && let Some(words) = pipeline::batchable(line)
        {
            batch.push(Pending {
                number,
                line: line.to_string(),
                words,
            });
            continue;
        }
        if let Some(code) = flush(shell, runtime, &mut batch, keep_going, &mut first_failure) {
            return code;
        }
        let result = match std::str::from_utf8(&raw) {
            Ok(line) => runtime
                .block_on(shell.run_line(line))
                .map_err(|e| e.at(number, line)),
            Err(bad) => {
                let at = bad.valid_up_to();
                let lossy = String::from_utf8_lossy(&raw);
                Err(ShellError::Usage(format!(
                    "not valid UTF-8: byte 0x{:02X} at column {}",
                    raw[at],
                    at + 1
                ))
                .at(number, &lossy))
            }
        };
        match result {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit) => return first_failure.unwrap_or(exit_code::OK),
            Err(e) => {
                shell.report_error(&e);
                if !keep_going {
                    return e.exit_code();
                }
                first_failure.get_or_insert(e.exit_code());
            }
        }
    }
    if let Some(code) = flush(shell, runtime, &mut batch, keep_going, &mut first_failure) {
        return code;
    }
    first_failure.unwrap_or(exit_code::OK)
}

/// Runs the waiting batch (one line alone, more side by side); returns the exit code if
/// the script stops.
fn flush(
    shell: &mut Shell,
    runtime: &tokio::runtime::Runtime,
    batch: &mut Vec<Pending>,
    keep_going: bool,
    first_failure: &mut Option<i32>,
) -> Option<i32> {
    let lines = std::mem::take(batch);
    if lines.is_empty() {
        return None;
    }
    let outcome = runtime.block_on(pipeline::run_batch(shell, lines, keep_going));
    if let Some(code) = outcome.first_failure {
        first_failure.get_or_insert(code);
    }
    outcome.stop
}

/// `-e` with `--keep-going`: every statement runs; the first failure's code is returned.
fn run_statements_keep_going(
    shell: &mut Shell,
    runtime: &tokio::runtime::Runtime,
    commands: &str,
) -> i32 {
    let statements = match crate::shell::lexer::split_statements(commands) {
        Ok(statements) => statements,
        Err(e) => return finish(shell, Err(ShellError::Usage(e.0))),
    };
    let mut first_failure = None;
    for words in statements {
        match runtime.block_on(shell.run_words(&words)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit) => break,
            Err(e) => {
                shell.report_error(&e);
                first_failure.get_or_insert(e.exit_code());
            }
        }
    }
    first_failure.unwrap_or(exit_code::OK)
}

fn finish(shell: &mut Shell, result: Result<Flow, ShellError>) -> i32 {
    match result {
        Ok(_) => exit_code::OK,
        Err(e) => {
            shell.report_error(&e);
            e.exit_code()
        }
    }
}

/// Servers started in-process (`--local`) log to a file in the cluster's directory
/// (`local logs` shows its tail), never over the prompt or a progress bar.
fn quiet_logging() {
    let _ = crate::server::init_logging_to_file("info");
}

async fn start_local(
    n: usize,
    metas: usize,
    data_dir: Option<&PathBuf>,
) -> Result<LocalCluster, ShellError> {
    eprintln!(
        "starting a local cluster: {metas} meta server{}, {n} replica server{}, data in {}",
        if metas == 1 { "" } else { "s" },
        if n == 1 { "" } else { "s" },
        data_dir.map_or("a temporary directory".to_string(), |d| d
            .display()
            .to_string())
    );
    // Pegasus's default ports when they are free, so the README's samples paste; random
    // ones otherwise (and in tests, which set BALLAST_LOCAL_PORTS=random).
    let random = std::env::var("BALLAST_LOCAL_PORTS").is_ok_and(|v| v == "random");
    let preferred = if random {
        None
    } else {
        let ports = LocalCluster::pegasus_ports_if_free(n);
        if ports.is_none() {
            eprintln!(
                "Pegasus's default ports (meta 34601, replica servers 34801..) are in use: using random ports"
            );
        }
        ports
    };
    let cluster = LocalCluster::start_group_on(
        n,
        metas,
        data_dir.map(PathBuf::as_path),
        local_meta_config(n),
        preferred,
    )
    .await?;
    let log = cluster.log_path();
    if let Err(e) = crate::server::set_log_file(&log) {
        eprintln!("cannot write the servers' log to {}: {e}", log.display());
    }
    cluster
        .create_table_and_wait("temp", 8, Duration::from_secs(30))
        .await?;
    eprintln!(
        "local cluster ready: meta server{} {}, replica servers {}, table temp",
        if metas == 1 { "" } else { "s" },
        cluster.meta_addrs().join(","),
        cluster.node_addrs().join(",")
    );
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_valid_and_has_every_verb() {
        let cli = cli();
        cli.clone().debug_assert();
        for verb in VERBS {
            assert!(
                cli.find_subcommand(verb.name()).is_some(),
                "{} missing",
                verb.name()
            );
        }
    }

    #[test]
    fn local_and_meta_conflict_and_data_dir_needs_local() {
        assert!(
            cli()
                .try_get_matches_from(["shell", "--local", "--meta", "a:1"])
                .is_err()
        );
        assert!(
            cli()
                .try_get_matches_from(["shell", "--data-dir", "/tmp/x"])
                .is_err()
        );
        let m = cli().try_get_matches_from(["shell", "--local"]).unwrap();
        assert_eq!(m.get_one::<u32>("local"), Some(&3));
    }
}
