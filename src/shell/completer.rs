//! Tab completion and hints for the REPL, read from the verb registry: verbs, their
//! flags, fixed values (levels, statuses), and live values fetched from the cluster
//! (table names, node addresses), cached for a few seconds so completion stays fast.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Arg, Command};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::client::MetaClient;
use crate::meta::remote_commands::META_COMMANDS;
use crate::pb;
use crate::replica::remote_commands::REPLICA_COMMANDS;
use crate::shell::commands::VERBS;
use crate::shell::lexer::word_start;
use crate::shell::registry::{command, find, usage};

/// How long fetched table names and node addresses are reused.
const LIVE_TTL: Duration = Duration::from_secs(3);

/// Live values: table names and node addresses.
#[derive(Clone, Default)]
struct Live {
    apps: Vec<String>,
    nodes: Vec<String>,
}

/// The REPL's rustyline helper.
pub struct ShellHelper {
    client: Option<MetaClient>,
    runtime: tokio::runtime::Handle,
    color: bool,
    cache: Mutex<Option<(Instant, Live)>>,
}

impl ShellHelper {
    /// A helper that fetches live values from `meta_addrs` on `runtime`.
    pub fn new(
        meta_addrs: Vec<String>,
        runtime: tokio::runtime::Handle,
        color: bool,
    ) -> ShellHelper {
        // Channels are created inside the runtime they will run on.
        let client = {
            let _guard = runtime.enter();
            MetaClient::new(&meta_addrs, Duration::from_secs(1)).ok()
        };
        ShellHelper {
            client,
            runtime,
            color,
            cache: Mutex::new(None),
        }
    }

    fn live(&self) -> Live {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, live)) = cache.as_ref()
            && at.elapsed() < LIVE_TTL
        {
            return live.clone();
        }
        let Some(client) = self.client.clone() else {
            return Live::default();
        };
        let live = self.runtime.block_on(async move {
            let apps = client
                .list_apps(pb::AppStatus::Available)
                .await
                .unwrap_or_default();
            let nodes = client
                .list_nodes(pb::NodeStatus::Unspecified)
                .await
                .unwrap_or_default();
            Live {
                apps: apps
                    .into_iter()
                    .filter_map(|a| a.info.map(|i| i.app_name))
                    .collect(),
                nodes: nodes.into_iter().map(|n| n.address).collect(),
            }
        });
        *cache = Some((Instant::now(), live.clone()));
        live
    }

    /// Candidates for the word `prefix` after `words` (the statement so far).
    pub fn candidates(&self, words: &[String], prefix: &str) -> Vec<String> {
        let Some(first) = words.first() else {
            return VERBS
                .iter()
                .flat_map(|v| std::iter::once(v.name()).chain(v.aliases().iter().copied()))
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string)
                .collect();
        };
        let Some(verb) = find(first) else {
            return Vec::new();
        };
        let mut cmd = command(verb);
        let mut words = words;
        // A verb with subcommands (`local`): complete the subcommand, then its arguments.
        if cmd.has_subcommands() {
            match words.get(1) {
                None => {
                    return cmd
                        .get_subcommands()
                        .map(|c| c.get_name().to_string())
                        .filter(|n| n.starts_with(prefix))
                        .collect();
                }
                Some(sub) => match cmd.find_subcommand(sub) {
                    Some(found) => {
                        cmd = found.clone();
                        words = &words[1..];
                    }
                    None => return Vec::new(),
                },
            }
        }
        if prefix.starts_with('-') {
            return flags(&cmd)
                .into_iter()
                .filter(|f| f.starts_with(prefix))
                .collect();
        }
        let arg = value_slot(&cmd, &words[1..]);
        let Some(arg) = arg else { return Vec::new() };
        self.values_for(arg, prefix)
    }

    fn values_for(&self, arg: &Arg, prefix: &str) -> Vec<String> {
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|p| p.get_name().to_string())
            .collect();
        let kind = arg
            .get_value_names()
            .and_then(|v| v.first())
            .map(|s| s.to_string());
        let (head, tail) = match prefix.rfind(',') {
            Some(i) if kind.as_deref() == Some("ADDRS") => prefix.split_at(i + 1),
            _ => ("", prefix),
        };
        let pool: Vec<String> = if !possible.is_empty() {
            possible
        } else {
            match kind.as_deref() {
                Some("APP") => self.live().apps,
                Some("ADDR" | "ADDRS") => self.live().nodes,
                Some("VERB") => VERBS.iter().map(|v| v.name().to_string()).collect(),
                Some("COMMAND") => {
                    let mut names: Vec<String> = META_COMMANDS
                        .names()
                        .into_iter()
                        .chain(REPLICA_COMMANDS.names())
                        .map(str::to_string)
                        .collect();
                    names.sort();
                    names.dedup();
                    names
                }
                _ => Vec::new(),
            }
        };
        pool.into_iter()
            .filter(|v| v.starts_with(tail))
            .map(|v| format!("{head}{v}"))
            .collect()
    }
}

/// Every flag of a verb, long and short.
fn flags(cmd: &Command) -> Vec<String> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
        if let Some(l) = arg.get_long() {
            out.push(format!("--{l}"));
        }
        if let Some(s) = arg.get_short() {
            out.push(format!("-{s}"));
        }
    }
    out
}

/// The argument the next word fills: the value of a just-typed option, or the next
/// positional.
fn value_slot<'a>(cmd: &'a Command, typed: &[String]) -> Option<&'a Arg> {
    let takes_value = |a: &Arg| a.get_action().takes_values();
    let option = |word: &str| {
        cmd.get_arguments().find(|a| {
            !a.is_positional()
                && (a.get_long().is_some_and(|l| word == format!("--{l}"))
                    || a.get_short().is_some_and(|s| word == format!("-{s}")))
        })
    };
    if let Some(arg) = typed
        .last()
        .and_then(|last| option(last))
        .filter(|a| takes_value(a))
    {
        return Some(arg);
    }
    let mut positionals = 0;
    let mut skip = false;
    for word in typed {
        if skip {
            skip = false;
        } else if word.starts_with('-') {
            skip = option(word).is_some_and(takes_value);
        } else {
            positionals += 1;
        }
    }
    let mut slots: Vec<&Arg> = cmd.get_positionals().collect();
    if let Some(&last) = slots.last()
        && matches!(last.get_action(), clap::ArgAction::Append)
    {
        slots.extend(std::iter::repeat_n(last, positionals));
    }
    slots.get(positionals).copied()
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        let statement_start = line[..start].rfind(';').map_or(0, |i| i + 1);
        let words: Vec<String> = line[statement_start..start]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let prefix = &line[start..pos];
        let candidates = self
            .candidates(&words, prefix)
            .into_iter()
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((start, candidates))
    }
}

/// A greyed usage hint; never inserted into the line.
pub struct UsageHint(String);

impl Hint for UsageHint {
    fn display(&self) -> &str {
        &self.0
    }
    fn completion(&self) -> Option<&str> {
        None
    }
}

impl Hinter for ShellHelper {
    type Hint = UsageHint;

    /// After a verb and a space, shows the rest of its synopsis.
    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<UsageHint> {
        if pos < line.len() {
            return None;
        }
        let statement = &line[line.rfind(';').map_or(0, |i| i + 1)..];
        let word = statement.trim_start();
        let name = word.strip_suffix(' ')?;
        if name.contains(char::is_whitespace) {
            return None;
        }
        let verb = find(name)?;
        let synopsis = usage(&command(verb));
        let rest = synopsis.split_once(' ').map(|(_, rest)| rest)?;
        Some(UsageHint(rest.to_string()))
    }
}

impl Highlighter for ShellHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ShellHelper {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let helper = ShellHelper::new(vec![], rt.handle().clone(), false);
        std::mem::forget(rt);
        helper
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn completes_verbs_flags_and_fixed_values() {
        let h = helper();
        assert_eq!(h.candidates(&[], "nod"), ["nodes"]);
        assert!(h.candidates(&[], "q").contains(&"quit".to_string()));
        assert_eq!(h.candidates(&words("set_meta_level"), "li"), ["lively"]);
        assert_eq!(h.candidates(&words("nodes -s"), "un"), ["unalive"]);
        assert!(
            h.candidates(&words("nodes"), "--d")
                .contains(&"--detailed".to_string())
        );
        assert!(h.candidates(&words("ls"), "-").contains(&"-a".to_string()));
        assert_eq!(h.candidates(&words("help"), "set_m"), ["set_meta_level"]);
        assert!(
            h.candidates(&words("remote_command -t meta-server"), "meta.lb.assign_d")
                .contains(&"meta.lb.assign_delay_ms".to_string())
        );
        assert!(h.candidates(&words("bogus"), "x").is_empty());
        assert_eq!(
            h.candidates(&words("local"), "st"),
            ["stop_node", "start_node", "stop_meta", "start_meta"]
        );
        assert_eq!(h.candidates(&words("balance -p"), "move"), ["move_pri"]);
    }

    #[test]
    fn value_slots_skip_option_values() {
        let cmd = command(find("remote_command").unwrap());
        let slot = value_slot(&cmd, &words("-t meta-server")).unwrap();
        assert_eq!(slot.get_id(), "words");
        let slot = value_slot(&cmd, &words("-t")).unwrap();
        assert_eq!(slot.get_id(), "target");
        let cmd = command(find("app").unwrap());
        assert_eq!(value_slot(&cmd, &[]).unwrap().get_id(), "name");
        assert!(value_slot(&cmd, &words("t1")).is_none());
    }
}
