//! `remote_command [-t all|meta-server|replica-server] [-l ADDR,...] CMD [ARGS...]`:
//! runs a named command on server processes in parallel and prints one JSON envelope,
//! Pegasus's shape: `{"command", "details": {addr: {"acked", "succeed", "role",
//! "message"}}, "failed_count", "succeed_count"}`. Exit 1 if any target failed.

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::{Map, Value, json};

use crate::client::call_remote;
use crate::pb;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `remote_command` verb.
pub struct RemoteCommand;

/// Which processes a remote command goes to.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Which servers: every meta server, every ALIVE replica server, or both.
    #[arg(short = 't', long = "type", default_value = "all", value_parser = ["all", "meta-server", "replica-server"], conflicts_with = "list")]
    pub target: String,
    /// Exactly these servers.
    #[arg(
        short = 'l',
        long = "list",
        value_name = "ADDRS",
        value_delimiter = ','
    )]
    pub list: Vec<String>,
}

#[derive(Args, Debug)]
struct RemoteCommandArgs {
    #[command(flatten)]
    targets: TargetArgs,
    /// The command (`help` lists a server's commands), then its arguments, passed as
    /// typed (even ones that look like flags).
    #[arg(value_name = "COMMAND", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    words: Vec<String>,
}

/// Resolves the targets to (address, role) pairs.
async fn resolve(
    ctx: &mut Context,
    t: &TargetArgs,
) -> Result<Vec<(String, &'static str)>, ShellError> {
    if !t.list.is_empty() {
        for addr in &t.list {
            crate::model::validate_address(addr).map_err(|e| ShellError::Usage(e.to_string()))?;
        }
        return Ok(t
            .list
            .iter()
            .map(|a| (a.clone(), "user-specified"))
            .collect());
    }
    let mut targets = Vec::new();
    if t.target == "all" || t.target == "meta-server" {
        targets.extend(ctx.meta_addrs().iter().map(|a| (a.clone(), "meta-server")));
    }
    if t.target == "all" || t.target == "replica-server" {
        let nodes = ctx.meta()?.list_nodes(pb::NodeStatus::Alive).await?;
        targets.extend(nodes.into_iter().map(|n| (n.address, "replica-server")));
    }
    Ok(targets)
}

/// Runs `command` on the targets in parallel and builds the envelope. Returns it and
/// whether every target succeeded.
pub async fn run_on_targets(
    ctx: &mut Context,
    targets: &TargetArgs,
    command: &str,
    args: &[String],
) -> Result<(Value, bool), ShellError> {
    let resolved = resolve(ctx, targets).await?;
    if resolved.is_empty() {
        return Err(ShellError::Failed(
            "no target server to send the command to".into(),
        ));
    }
    let timeout = ctx.timeout();
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, role) in resolved {
        let (command, args) = (command.to_string(), args.to_vec());
        tasks.spawn(async move {
            let result = call_remote(&addr, &command, &args, timeout).await;
            (addr, role, result)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answers.push(joined.map_err(|e| ShellError::Failed(e.to_string()))?);
    }
    // Answers arrive in any order; the envelope lists targets by address.
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut details = Map::new();
    let (mut succeeded, mut failed) = (0u32, 0u32);
    for (addr, role, result) in answers {
        let (acked, ok, message) = match result {
            Ok((ok, message)) => (true, ok, message),
            Err(e) => (false, false, Value::String(e.to_string())),
        };
        if ok {
            succeeded += 1
        } else {
            failed += 1
        }
        details.insert(
            addr,
            json!({ "acked": acked, "succeed": ok, "role": role, "message": message }),
        );
    }
    let full = std::iter::once(command)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>();
    let envelope = json!({
        "command": full.join(" "),
        "details": details,
        "failed_count": failed,
        "succeed_count": succeeded,
    });
    Ok((envelope, failed == 0))
}

/// Prints the envelope; a failure on any target makes the verb fail (exit 1).
pub fn print_envelope(
    ctx: &mut Context,
    envelope: &Value,
    all_ok: bool,
) -> Result<Flow, ShellError> {
    let text =
        serde_json::to_string_pretty(envelope).map_err(|e| ShellError::Failed(e.to_string()))?;
    ctx.println(text)?;
    if all_ok {
        Ok(Flow::Continue)
    } else {
        Err(ShellError::Failed(format!(
            "remote command failed on {} of {} targets",
            envelope["failed_count"],
            envelope["details"].as_object().map_or(0, Map::len)
        )))
    }
}

#[tonic::async_trait]
impl Verb for RemoteCommand {
    fn name(&self) -> &'static str {
        "remote_command"
    }
    fn about(&self) -> &'static str {
        "Run a named command on meta and/or replica servers; prints JSON"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/remote_command.md")
    }
    fn args(&self, cmd: Command) -> Command {
        RemoteCommandArgs::augment_args(cmd)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let args = RemoteCommandArgs::from_arg_matches(m)?;
        let (command, rest) = args.words.split_first().expect("clap requires COMMAND");
        let (envelope, ok) = run_on_targets(ctx, &args.targets, command, rest).await?;
        print_envelope(ctx, &envelope, ok)
    }
}
