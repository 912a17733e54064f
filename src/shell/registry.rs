//! The verb registry: every shell verb is one [`Verb`] in one file under `commands/`,
//! listed once in [`crate::shell::commands::VERBS`]. Help, REPL completion and hints,
//! one-shot mode and the generated completion scripts all read that list, so they
//! cannot disagree about names or flags.

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::shell::commands::VERBS;
use crate::shell::context::Context;
use crate::shell::error::ShellError;

/// What the session does after a verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next command.
    Continue,
    /// Leave the shell.
    Exit,
}

/// One shell verb.
#[tonic::async_trait]
pub trait Verb: Sync {
    /// The name operators type (Pegasus's, where Pegasus has the verb).
    fn name(&self) -> &'static str;
    /// Other names that run the same verb.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// One line saying what it does.
    fn about(&self) -> &'static str;
    /// The help page, `commands/<name>.md`.
    fn page(&self) -> &'static str;
    /// Adds the verb's arguments to its (named) command.
    fn args(&self, cmd: Command) -> Command;
    /// Whether it only reads: it changes neither the cluster nor the session, and prints
    /// only to its output. A script runs such lines side by side (printing in order).
    fn reads_only(&self) -> bool {
        false
    }
    /// Runs it.
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError>;
}

/// The verb's full clap command: name, about, aliases, `-h/--help`, and its arguments.
pub fn command(verb: &dyn Verb) -> Command {
    let base = Command::new(verb.name())
        .about(verb.about())
        .aliases(verb.aliases().iter().copied())
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue)
                .help("Print this verb's help page"),
        );
    verb.args(base)
}

/// The verb called `name` (or one of its aliases).
pub fn find(name: &str) -> Option<&'static dyn Verb> {
    VERBS
        .iter()
        .copied()
        .find(|v| v.name() == name || v.aliases().contains(&name))
}

/// A one-line synopsis in Pegasus's style: `nodes [-d|--detailed] [-s|--status all|alive|unalive]`.
pub fn usage(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_name().to_string()];
    for arg in cmd.get_arguments() {
        if arg.get_id() == "help" || arg.is_hide_set() {
            continue;
        }
        let values = value_hint(arg);
        let part = if arg.is_positional() {
            let name = values.unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            let dots = if matches!(arg.get_action(), ArgAction::Append) {
                "..."
            } else {
                ""
            };
            if arg.is_required_set() {
                format!("<{name}>{dots}")
            } else {
                format!("[{name}]{dots}")
            }
        } else {
            let mut flag = String::new();
            if let Some(s) = arg.get_short() {
                flag.push_str(&format!("-{s}"));
            }
            if let Some(l) = arg.get_long() {
                if !flag.is_empty() {
                    flag.push('|');
                }
                flag.push_str(&format!("--{l}"));
            }
            if let Some(values) = values {
                flag = format!("{flag} {values}");
            }
            if arg.is_required_set() {
                format!("<{flag}>")
            } else {
                format!("[{flag}]")
            }
        };
        parts.push(part);
    }
    let subcommands: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
    if !subcommands.is_empty() {
        parts.push(format!("<{}>", subcommands.join("|")));
    }
    parts.join(" ")
}

/// What an option takes: its possible values joined with `|`, or its value name.
fn value_hint(arg: &Arg) -> Option<String> {
    if !arg.get_action().takes_values() {
        return None;
    }
    let possible = arg.get_possible_values();
    if !possible.is_empty() {
        return Some(
            possible
                .iter()
                .map(|p| p.get_name().to_string())
                .collect::<Vec<_>>()
                .join("|"),
        );
    }
    // Every value an option takes (`--force-primary GPID ADDR`); a positional's one.
    let names = arg.get_value_names().map(|v| {
        let shown = if arg.is_positional() { &v[..1] } else { v };
        shown
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    });
    Some(names.unwrap_or_else(|| arg.get_id().to_string().to_uppercase()))
}

/// Turns clap's multi-line error into one line: the message, then the verb's usage.
pub fn one_line_error(err: &clap::Error, cmd: &Command) -> String {
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message}; usage: {}", usage(cmd))
}
