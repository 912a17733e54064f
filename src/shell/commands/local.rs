//! `local add_node | stop_node ADDR | start_node ADDR | add_meta | stop_meta ID |
//! start_meta ID | logs [-n N]`: changes the embedded cluster of `shell --local`, so every procedure (scale out, scale in, node
//! migration) can be rehearsed with nothing else running. `stop_node` stops a replica
//! server at once, as a crash or `kill` would; `start_node` brings it back on the same
//! address and data; `logs` shows the tail of the servers' log file (they never log over
//! the prompt).

use clap::{ArgMatches, Command, FromArgMatches, Subcommand};

use crate::shell::commands::balance::parse_addr;
use crate::shell::context::Context;
use crate::shell::error::ShellError;
use crate::shell::registry::{Flow, Verb};

/// The `local` verb.
pub struct Local;

// The variants are the subcommands operators type (add_node, stop_node, start_node, logs).
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand, Debug)]
#[command(rename_all = "snake_case")]
enum LocalCommand {
    /// Start one more replica server.
    AddNode,
    /// Stop a replica server at once.
    StopNode {
        /// The node's address.
        #[arg(value_name = "ADDR", value_parser = parse_addr)]
        address: String,
    },
    /// Start a stopped replica server again.
    StartNode {
        /// The node's address.
        #[arg(value_name = "ADDR", value_parser = parse_addr)]
        address: String,
    },
    /// Start one more meta server, which joins the group (--metas 2 or more).
    AddMeta,
    /// Stop meta server ID at once.
    StopMeta {
        /// The meta server's id.
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Start stopped meta server ID again.
    StartMeta {
        /// The meta server's id.
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Show the last lines of the embedded servers' log.
    Logs {
        /// How many lines.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
        lines: usize,
    },
}

#[tonic::async_trait]
impl Verb for Local {
    fn name(&self) -> &'static str {
        "local"
    }
    fn about(&self) -> &'static str {
        "Add, stop or start replica servers of the embedded cluster (--local)"
    }
    fn page(&self) -> &'static str {
        include_str!("../../../commands/local.md")
    }
    fn args(&self, cmd: Command) -> Command {
        LocalCommand::augment_subcommands(cmd)
            .subcommand_required(true)
            .disable_help_subcommand(true)
    }
    async fn run(&self, ctx: &mut Context, m: &ArgMatches) -> Result<Flow, ShellError> {
        let command = LocalCommand::from_arg_matches(m)?;
        let cluster = ctx.local.as_mut().ok_or_else(|| {
            ShellError::Usage(
                "local needs the embedded cluster: start the shell with --local".into(),
            )
        })?;
        let line = match command {
            LocalCommand::AddNode => format!("added node {}", cluster.add_node().await?),
            LocalCommand::StopNode { address } => {
                cluster.stop_node(&address).await?;
                format!("stopped node {address}")
            }
            LocalCommand::StartNode { address } => {
                cluster.start_node(&address).await?;
                format!("started node {address}")
            }
            LocalCommand::AddMeta => {
                let (id, address) = cluster.add_meta().await?;
                format!("added meta server {id} at {address}")
            }
            LocalCommand::StopMeta { id } => {
                format!(
                    "stopped meta server {id} at {}",
                    cluster.stop_meta(id).await?
                )
            }
            LocalCommand::StartMeta { id } => {
                format!(
                    "started meta server {id} at {}",
                    cluster.start_meta(id).await?
                )
            }
            LocalCommand::Logs { lines } => {
                let path = cluster.log_path();
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ShellError::Failed(format!("cannot read {}: {e}", path.display()))
                })?;
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
        };
        ctx.println(line)?;
        Ok(Flow::Continue)
    }
}
