//! `remote_command [-t all|meta-server|replica-server] [-l ADDR,...] CMD [ARGS...]`:
//! runs a named command on server processes in parallel and prints one JSON envelope,
//! Pegasus's shape: `{"command", "details": {addr: {"acked", "succeed", "role",
//! "message"}}, "failed_count", "succeed_count"}`. Exit 1 if any target failed.

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde_json::{Map, Value, json};

use crate::client::call_remote;
use crate::error::Error;
use crate::model::{Gpid, PartitionConfig};
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
    /// Confirm a command that destroys data without being asked (needed in scripts).
    /// Goes before the command name; everything after the name goes to the server.
    #[arg(long = "yes")]
    yes: bool,
    /// Run a destructive command even though partitions lose their last replica.
    #[arg(long = "force")]
    force: bool,
    /// The command (`help` lists a server's commands), then its arguments, passed as
    /// typed (even ones that look like flags).
    #[arg(value_name = "COMMAND", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    words: Vec<String>,
}

/// Remote commands that destroy data and cannot be undone: they ask on a terminal, need
/// `--yes` in scripts, and refuse to leave a partition without a replica unless
/// `--force`.
const DESTRUCTIVE: &[&str] = &["replica.kill_partition"];

/// The partitions `replica.kill_partition ARGS` on `targets` would leave with no
/// member, and how many replicas it deletes.
fn kill_partition_effect(
    apps: &[pb::AppDetail],
    targets: &[String],
    args: &[String],
) -> Result<(Vec<Gpid>, usize), ShellError> {
    let number = |s: &String| {
        s.parse::<u32>().map_err(|_| {
            ShellError::Usage(format!("replica.kill_partition: '{s}' is not a number"))
        })
    };
    let (app_id, pidx) = match args {
        [] => (None, None),
        [a] => (Some(number(a)?), None),
        [a, p] => (Some(number(a)?), Some(number(p)?)),
        _ => {
            return Err(ShellError::Usage(
                "replica.kill_partition takes at most APP_ID PIDX".into(),
            ));
        }
    };
    let mut emptied = Vec::new();
    let mut replicas = 0;
    for app in apps {
        let Some(info) = &app.info else { continue };
        if app_id.is_some_and(|id| id != info.app_id) {
            continue;
        }
        for p in &app.partitions {
            if pidx.is_some_and(|i| i != p.pidx) {
                continue;
            }
            let config = PartitionConfig::from_pb(p);
            let hit = config
                .members()
                .filter(|m| targets.iter().any(|t| t == m))
                .count();
            replicas += hit;
            if hit > 0 && hit == config.members().count() {
                emptied.push(Gpid::new(info.app_id, p.pidx));
            }
        }
    }
    Ok((emptied, replicas))
}

/// The safety rail of `replica.kill_partition`.
async fn guard_kill_partition(
    ctx: &mut Context,
    targets: &[String],
    args: &[String],
    yes: bool,
    force: bool,
) -> Result<(), ShellError> {
    let apps = ctx.meta()?.list_apps(pb::AppStatus::Unspecified).await?;
    let (emptied, replicas) = kill_partition_effect(&apps, targets, args)?;
    if !emptied.is_empty() {
        let names: Vec<String> = emptied.iter().map(Gpid::to_string).collect();
        let shown = names.iter().take(16).cloned().collect::<Vec<_>>().join(" ");
        if !force {
            return Err(Error::Unsafe(format!(
                "replica.kill_partition would delete every replica of {} partition(s) ({shown}): their data would be lost. Add --force (before the command name) to do it anyway",
                names.len()
            ))
            .into());
        }
        eprintln!(
            "WARNING: --force: {} partition(s) lose every replica: {shown}",
            names.len()
        );
    }
    ctx.confirm(
        &format!(
            "replica.kill_partition deletes {replicas} replica(s) on {} node(s)",
            targets.len()
        ),
        yes,
    )
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
    // A server's warning (in its JSON) is also said on stderr, where people look.
    if let Some(details) = envelope["details"].as_object() {
        for (addr, d) in details {
            if let Some(warning) = d["message"]["warning"].as_str() {
                eprintln!("WARNING: {addr}: {warning}");
            }
        }
    }
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
        if DESTRUCTIVE.contains(&command.as_str()) {
            let targets: Vec<String> = resolve(ctx, &args.targets)
                .await?
                .into_iter()
                .filter(|(_, role)| *role != "meta-server")
                .map(|(addr, _)| addr)
                .collect();
            guard_kill_partition(ctx, &targets, rest, args.yes, args.force).await?;
        }
        let (envelope, ok) = run_on_targets(ctx, &args.targets, command, rest).await?;
        print_envelope(ctx, &envelope, ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(app_id: u32, parts: &[(&str, &[&str])]) -> pb::AppDetail {
        pb::AppDetail {
            info: Some(pb::AppInfo {
                app_id,
                ..Default::default()
            }),
            partitions: parts
                .iter()
                .enumerate()
                .map(|(i, (primary, secondaries))| pb::PartitionConfig {
                    pidx: i as u32,
                    primary: primary.to_string(),
                    secondaries: secondaries.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn kill_partition_names_the_partitions_it_would_empty() {
        let apps = [
            app(1, &[("a", &["b"]), ("b", &["c"])]),
            app(2, &[("a", &[])]),
        ];
        let targets = vec!["a".to_string(), "b".to_string()];
        let (emptied, replicas) = kill_partition_effect(&apps, &targets, &[]).unwrap();
        assert_eq!(emptied, vec![Gpid::new(1, 0), Gpid::new(2, 0)]);
        assert_eq!(replicas, 4);
        // One table only, then one partition only.
        let (emptied, _) = kill_partition_effect(&apps, &targets, &["1".into()]).unwrap();
        assert_eq!(emptied, vec![Gpid::new(1, 0)]);
        let (emptied, replicas) =
            kill_partition_effect(&apps, &targets, &["1".into(), "1".into()]).unwrap();
        assert!(emptied.is_empty(), "c still holds 1.1");
        assert_eq!(replicas, 1);
        assert!(kill_partition_effect(&apps, &targets, &["x".into()]).is_err());
    }
}
