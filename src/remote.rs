//! The remote-command registry every server process answers (Pegasus's
//! `command_manager`): a static list of named commands with typed arguments and JSON
//! replies. The meta server and replica servers each register their own list; `help`
//! and `server-info` are common to both. The gRPC `Cli` service is a thin adapter over
//! [`Registry::call`].

use serde_json::{Value, json};

/// What a command returns: a JSON reply, or an error message for a bad argument (which
/// must leave every setting unchanged).
pub type CommandResult = std::result::Result<Value, String>;

/// One remote command.
pub struct RemoteCommand<C: 'static> {
    /// The name operators type, e.g. `meta.lb.assign_delay_ms`.
    pub name: &'static str,
    /// Its argument synopsis, e.g. `[num|DEFAULT]`.
    pub args: &'static str,
    /// One line saying what it does.
    pub help: &'static str,
    /// Runs it against the process's context.
    pub run: fn(&C, &[String]) -> CommandResult,
}

/// A process's commands, plus the common `help`.
pub struct Registry<C: 'static> {
    commands: &'static [RemoteCommand<C>],
}

impl<C> Registry<C> {
    /// Wraps a static command list.
    pub const fn new(commands: &'static [RemoteCommand<C>]) -> Registry<C> {
        Registry { commands }
    }

    /// Every command's name, `help` included, sorted (for completion).
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self
            .commands
            .iter()
            .map(|c| c.name)
            .chain(["help"])
            .collect();
        names.sort_unstable();
        names
    }

    /// Runs `name` with `args`. Returns `(ok, json)`: `ok` is false for an unknown
    /// command or a refused argument, and the JSON then carries `{"error": "ERR: …"}`.
    pub fn call(&self, ctx: &C, name: &str, args: &[String]) -> (bool, Value) {
        if matches!(name, "help" | "h" | "H" | "Help") {
            return self.help(args);
        }
        match self.commands.iter().find(|c| c.name == name) {
            Some(cmd) => match (cmd.run)(ctx, args) {
                Ok(value) => (true, value),
                Err(msg) => (false, json!({ "error": format!("ERR: {msg}") })),
            },
            None => (
                false,
                json!({ "error": format!("ERR: unknown command '{name}'") }),
            ),
        }
    }

    fn help(&self, args: &[String]) -> (bool, Value) {
        let entries: Vec<Value> = self
            .commands
            .iter()
            .filter(|c| args.is_empty() || args.iter().any(|a| a == c.name))
            .map(|c| json!({ "command": c.name, "args": c.args, "help": c.help }))
            .collect();
        if entries.is_empty() && !args.is_empty() {
            return (
                false,
                json!({ "error": format!("ERR: unknown command '{}'", args[0]) }),
            );
        }
        (true, json!({ "error": "ok", "commands": entries }))
    }
}

/// Parses the argument of an integer setter: none = query, `DEFAULT` = restore, else a
/// number in `range`. Pegasus's int-setter contract.
pub fn int_setter_arg(
    args: &[String],
    range: std::ops::RangeInclusive<u64>,
) -> std::result::Result<SetterArg<u64>, String> {
    match args {
        [] => Ok(SetterArg::Query),
        [a] if a == "DEFAULT" => Ok(SetterArg::Default),
        [a] => match a.parse::<u64>() {
            Ok(v) if range.contains(&v) => Ok(SetterArg::Set(v)),
            _ => Err(format!(
                "invalid argument '{a}': expected an integer in [{}, {}] or DEFAULT",
                range.start(),
                range.end()
            )),
        },
        _ => Err(format!("expected at most one argument, got {}", args.len())),
    }
}

/// Parses the argument of a boolean setter: none = query, `true`/`false` = set.
pub fn bool_setter_arg(args: &[String]) -> std::result::Result<SetterArg<bool>, String> {
    match args {
        [] => Ok(SetterArg::Query),
        [a] if a == "DEFAULT" => Ok(SetterArg::Default),
        [a] => match a.as_str() {
            "true" => Ok(SetterArg::Set(true)),
            "false" => Ok(SetterArg::Set(false)),
            _ => Err(format!(
                "invalid argument '{a}': expected true, false or DEFAULT"
            )),
        },
        _ => Err(format!("expected at most one argument, got {}", args.len())),
    }
}

/// What a setter command was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetterArg<T> {
    /// Report the current value.
    Query,
    /// Restore the configured value.
    Default,
    /// Set a new value.
    Set(T),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Ctx {
        value: AtomicU64,
    }

    fn knob(ctx: &Ctx, args: &[String]) -> CommandResult {
        match int_setter_arg(args, 0..=100)? {
            SetterArg::Query => {}
            SetterArg::Default => ctx.value.store(65, Ordering::SeqCst),
            SetterArg::Set(v) => ctx.value.store(v, Ordering::SeqCst),
        }
        Ok(json!({ "error": "ok", "knob": ctx.value.load(Ordering::SeqCst) }))
    }

    static COMMANDS: &[RemoteCommand<Ctx>] = &[RemoteCommand {
        name: "knob",
        args: "[num|DEFAULT]",
        help: "a knob",
        run: knob,
    }];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn setter_query_set_default_and_refusal() {
        let reg = Registry::new(COMMANDS);
        let ctx = Ctx {
            value: AtomicU64::new(65),
        };
        assert_eq!(reg.call(&ctx, "knob", &[]).1["knob"], 65);
        assert!(reg.call(&ctx, "knob", &args(&["10"])).0);
        assert_eq!(ctx.value.load(Ordering::SeqCst), 10);
        let (ok, reply) = reg.call(&ctx, "knob", &args(&["101"]));
        assert!(!ok);
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .starts_with("ERR: invalid argument '101'")
        );
        assert_eq!(
            ctx.value.load(Ordering::SeqCst),
            10,
            "a refused argument changes nothing"
        );
        let (ok, _) = reg.call(&ctx, "knob", &args(&["-1"]));
        assert!(!ok);
        assert!(reg.call(&ctx, "knob", &args(&["DEFAULT"])).0);
        assert_eq!(ctx.value.load(Ordering::SeqCst), 65);
    }

    #[test]
    fn unknown_commands_fail_and_help_lists() {
        let reg = Registry::new(COMMANDS);
        let ctx = Ctx {
            value: AtomicU64::new(0),
        };
        let (ok, reply) = reg.call(&ctx, "nope", &[]);
        assert!(!ok);
        assert_eq!(reply["error"], "ERR: unknown command 'nope'");
        let (ok, reply) = reg.call(&ctx, "help", &[]);
        assert!(ok);
        assert_eq!(reply["commands"][0]["command"], "knob");
        assert_eq!(reg.names(), vec!["help", "knob"]);
        assert!(!reg.call(&ctx, "help", &args(&["nope"])).0);
    }

    #[test]
    fn bool_setter_parses() {
        assert_eq!(bool_setter_arg(&[]).unwrap(), SetterArg::Query);
        assert_eq!(
            bool_setter_arg(&args(&["true"])).unwrap(),
            SetterArg::Set(true)
        );
        assert!(bool_setter_arg(&args(&["yes"])).is_err());
    }
}
